use es_core::prelude::*;

#[aggregate]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
}

#[aggregate]
impl<T> Dog {
    #[event("Registered")]
    pub fn register(name: String) -> Self {
        Dog { name, tricks: Vec::new() }
    }
}

fn main() {
    let _dog = Dog::register("Fido".into());
}
