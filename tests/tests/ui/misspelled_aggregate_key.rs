use es_core::prelude::*;

#[aggregate]
pub struct Dog {
    name: String,
}

#[aggregate(nmae = "Kennel.Dog")]
impl Dog {
    #[event("Registered")]
    pub fn register(name: String) -> Self {
        Dog { name }
    }
}

fn main() {
    let _dog = Dog::register("Fido".into());
}
