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

    #[event("TrickAdded", topic = "dog.trick")]
    pub fn add_trick(&mut self, trick: String) {
        self.tricks.push(trick);
    }

    #[event("TricksAdded", topic = "dog.trick")]
    pub fn add_tricks(&mut self, tricks: Vec<String>) {
        self.tricks.extend(tricks);
    }
}

fn main() {
    let mut dog = Dog::register("Fido".into());
    dog.add_trick("sit".into());
    dog.add_tricks(vec!["roll over".into()]);
}
