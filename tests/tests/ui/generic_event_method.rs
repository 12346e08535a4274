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

    #[event("TrickAdded")]
    pub fn add_trick<T: Into<String>>(&mut self, trick: T) {
        self.tricks.push(trick.into());
    }
}

fn main() {
    let mut dog = Dog::register("Fido".into());
    dog.add_trick("sit");
}
