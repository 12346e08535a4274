use es_core::prelude::*;

#[aggregate]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
}

impl Dog {
    #[event("Registered")]
    pub fn register(name: String) -> Self {
        Dog { name, tricks: Vec::new() }
    }

    #[event("TrickAdded")]
    pub fn add_trick(&mut self, trick: String) {
        self.tricks.push(trick);
    }
}

fn main() -> Result<(), Error> {
    let app = Application::builder().in_memory().build()?;
    let mut dog = Dog::register("Fido".into());
    dog.add_trick("sit".into());
    let _copy = app.repository().get::<Dog>(Uuid::nil())?;
    Ok(())
}
