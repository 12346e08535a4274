use es_core::prelude::*;

#[aggregate]
pub struct Dog<T> {
    name: String,
    tricks: Vec<T>,
}

#[aggregate]
impl<T> Dog<T> {
    #[event("Registered")]
    pub fn register(name: String) -> Self {
        Dog { name, tricks: Vec::new() }
    }
}

fn main() {
    let _dog = Dog::<String>::register("Fido".into());
}
