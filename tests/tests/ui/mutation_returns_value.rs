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
    pub fn add_trick(&mut self, trick: String) -> usize {
        self.tricks.push(trick);
        self.tricks.len()
    }
}

fn main() {
    let mut dog = Dog::register("Fido".into());
    let _count: usize = dog.add_trick("sit".into());
}
