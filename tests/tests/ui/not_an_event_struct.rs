use es_core::prelude::*;

#[derive(Clone, Debug)]
pub struct Renamed {
    pub name: String,
}

#[aggregate]
pub struct Dog {
    name: String,
}

#[aggregate]
impl Dog {
    #[event("Registered")]
    pub fn register(name: String) -> Self {
        Dog { name }
    }

    #[event(Renamed)]
    pub fn rename(&mut self, event: Renamed) {
        self.name = event.name;
    }
}

fn main() {
    let mut dog = Dog::register("Fido".into());
    dog.rename(Renamed { name: "Rex".into() });
}
