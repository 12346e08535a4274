use es_core::prelude::*;

#[aggregate]
pub struct Dog {
    name: String,
}

#[aggregate]
impl Dog {
    #[event("Registered", topic = "dog\0registered")]
    pub fn register(name: String) -> Self {
        Dog { name }
    }
}

fn main() {
    let _ = Dog::register("Fido".into());
}
