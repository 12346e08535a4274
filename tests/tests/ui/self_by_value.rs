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

    #[event("Renamed")]
    pub fn rename(mut self, name: String) -> Self {
        self.name = name;
        self
    }
}

fn main() {
    let dog = Dog::register("Fido".into());
    let _dog = dog.rename("Rex".into());
}
