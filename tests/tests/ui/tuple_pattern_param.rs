use es_core::prelude::*;

#[aggregate]
pub struct Dog {
    name: String,
    position: (i32, i32),
}

#[aggregate]
impl Dog {
    #[event("Registered")]
    pub fn register(name: String) -> Self {
        Dog { name, position: (0, 0) }
    }

    #[event("Moved")]
    pub fn move_to(&mut self, (x, y): (i32, i32)) {
        self.position = (x, y);
    }
}

fn main() {
    let mut dog = Dog::register("Fido".into());
    dog.move_to((1, 2));
}
