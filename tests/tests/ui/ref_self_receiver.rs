use es_core::prelude::*;

#[aggregate]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
}

#[aggregate]
impl Dog {
    #[event("Registered")]
    pub fn register(name: String) -> Self {
        Dog { name, tricks: Vec::new() }
    }

    #[event("Barked")]
    pub fn bark(&self) {
        println!("{} barks", self.name);
    }
}

fn main() {
    let dog = Dog::register("Fido".into());
    dog.bark();
}
