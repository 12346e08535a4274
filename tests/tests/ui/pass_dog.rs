//! Every supported shape in one place: named, bare and struct events, custom
//! topics and ids, plain methods next to event methods.

use es_core::prelude::*;

#[event]
#[derive(PartialEq)]
pub struct Renamed {
    pub name: String,
}

#[aggregate]
#[derive(Clone, Debug)]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
    walks: u32,
}

#[aggregate(name = "Canine")]
impl Dog {
    /// Registers a dog.
    #[event("Registered", id = create_id(&name))]
    pub fn register(name: String) -> Self {
        Dog { name, tricks: Vec::new(), walks: 0 }
    }

    #[event("TrickAdded", topic = "canine.trick-added.v2")]
    pub fn add_trick(&mut self, mut trick: String) {
        trick.make_ascii_lowercase();
        self.tricks.push(trick);
    }

    #[event]
    pub fn walked(&mut self) {
        self.walks += 1;
    }

    #[event(Renamed)]
    pub fn rename(&mut self, event: Renamed) {
        self.name = event.name;
    }

    pub fn teach(&mut self, trick: &str) -> Result<(), String> {
        if self.tricks.iter().any(|known| known == trick) {
            return Err(format!("{} already knows {trick}", self.name));
        }
        self.add_trick(trick.to_owned());
        Ok(())
    }
}

fn main() -> Result<(), Error> {
    let app = Application::builder().in_memory().build()?;
    let mut dog = Dog::register("Fido".into());
    dog.add_trick("Sit".into());
    dog.walked();
    dog.rename(Renamed { name: "Rex".into() });
    assert!(dog.teach("sit").is_err());
    app.save(&mut dog)?;
    let copy: Dog = app.repository().get(dog.id())?;
    assert_eq!(copy.name, "Rex");
    assert_eq!(copy.tricks, ["sit"]);
    assert_eq!(copy.walks, 1);
    assert_eq!(copy.version(), 4);
    assert_eq!(dog.id(), create_id("Fido"));
    let topics: Vec<_> = dog.pending_events().iter().map(|e| e.topic()).collect();
    assert!(topics.is_empty());
    assert_eq!(<Dog as Aggregate>::NAME, "Canine");
    Ok(())
}
