use es_core::prelude::*;

#[aggregate]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
}

#[aggregate]
impl Dog {
    #[event("Registered")]
    pub fn register(name: String) -> Option<Self> {
        Some(Dog { name, tricks: Vec::new() })
    }
}

fn main() {
    let _dog = Dog::register("Fido".into());
}
