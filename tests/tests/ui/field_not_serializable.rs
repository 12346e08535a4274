use es_core::prelude::*;

#[derive(Clone, Debug)]
pub struct Trick {
    name: String,
}

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
    pub fn add_trick(&mut self, trick: Trick) {
        self.tricks.push(trick.name);
    }
}

fn main() {
    let mut dog = Dog::register("Fido".into());
    dog.add_trick(Trick { name: "sit".into() });
}
