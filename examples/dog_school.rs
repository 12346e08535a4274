//! The dog school: the smallest whole event-sourced application.
//!
//! Shows an aggregate declared with `#[aggregate]` and `#[event]`, commands that
//! record events, saving two aggregates at once, getting one back by replaying
//! its events (now and as it was at an earlier version), a plain method that
//! validates before it triggers an event, and the notification log.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p examples --example dog_school
//! ```
//!
//! Events go to the SQLite file `events.sqlite3` in the working directory, so
//! each run adds to what the runs before it stored. Configure it from the
//! environment only, e.g. `PERSISTENCE_MODULE=memory` to keep everything in
//! memory, or `SQLITE_DBNAME=dogs.sqlite3` to use another file.

use es_core::Error;
use es_core::prelude::*;

/// A dog and the tricks it has learned. Its state is only ever changed by events.
#[aggregate]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
}

#[aggregate]
impl Dog {
    /// Registers a new dog: the creation event.
    #[event("Registered")]
    pub fn register(name: String) -> Self {
        Dog {
            name,
            tricks: Vec::new(),
        }
    }

    /// The event's body is replayed every time the dog is loaded, so it cannot
    /// fail: the checks belong in `teach`, which runs only once, when the
    /// command is given.
    #[event("TrickAdded")]
    fn add_trick(&mut self, trick: String) {
        self.tricks.push(trick);
    }

    /// Teaches the dog a trick, unless it knows it already. A refused command
    /// records no event.
    pub fn teach(&mut self, trick: &str) -> Result<(), AlreadyKnown> {
        if self.tricks.iter().any(|known| known == trick) {
            return Err(AlreadyKnown {
                dog: self.name.clone(),
                trick: trick.to_owned(),
            });
        }
        self.add_trick(trick.to_owned());
        Ok(())
    }

    /// The dog's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The tricks the dog knows, in the order it learned them.
    pub fn tricks(&self) -> &[String] {
        &self.tricks
    }
}

/// The dog already knows the trick it was to be taught.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlreadyKnown {
    dog: String,
    trick: String,
}

impl std::fmt::Display for AlreadyKnown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} already knows how to {}", self.dog, self.trick)
    }
}

impl std::error::Error for AlreadyKnown {}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = Application::from_env()?;
    println!("Events are kept in {:?}.\n", app.persistence());

    // Commands change the dogs in memory and record events; nothing is stored yet.
    let mut fido = Dog::register("Fido".into());
    fido.teach("roll over")?;
    fido.teach("fetch ball")?;
    let mut buster = Dog::register("Buster".into());
    buster.teach("play dead")?;
    println!(
        "Fido has {} unsaved events, Buster {}.",
        fido.pending_events().len(),
        buster.pending_events().len()
    );

    // One save stores the events of both dogs in one transaction: all or none.
    let recordings = app.save(&mut [&mut fido, &mut buster])?;
    for recording in &recordings {
        println!(
            "  saved {:<16} as notification {}",
            recording.event.topic(),
            recording.notification_id
        );
    }

    // A refused command is an ordinary error value: here it is reported and the
    // walk-through goes on. No event was recorded, so there is nothing to save.
    if let Err(refusal) = fido.teach("roll over") {
        println!("\nRefused: {refusal}.");
    }
    println!("Fido has {} unsaved events.", fido.pending_events().len());

    // Getting a dog back replays its stored events, so the copy is Fido as saved.
    let copy: Dog = app.repository().get(fido.id())?;
    println!("\nFido, rebuilt from the store:");
    println!("  id       {}", copy.id());
    println!("  name     {}", copy.name());
    println!("  tricks   {}", copy.tricks().join(", "));
    println!("  version  {}", copy.version());
    println!("  created  {}", copy.created_on());
    println!("  modified {}", copy.modified_on());

    // Every earlier state can be rebuilt too, by replaying fewer events.
    for version in 1..=copy.version() {
        let then: Dog = app.repository().get_at(fido.id(), version)?;
        println!(
            "  at version {version}: tricks [{}]",
            then.tricks().join(", ")
        );
    }

    // The notification log holds every event of the application, of every
    // aggregate, in the order they were committed: what a downstream reader
    // follows. Earlier runs (or other applications sharing the same database)
    // wrote to it too, so this run's events need not be among the first ten.
    let log = app.notification_log();
    let section = log.section("1,10")?;
    println!(
        "\nNotification log, section {}:",
        section.id.as_deref().unwrap_or("(empty)")
    );
    for notification in &section.items {
        println!(
            "  {:>3}  {:<24} {}",
            notification.id,
            notification.event.topic,
            describe(&app, notification)?
        );
    }
    // A full section names the next one; a reader polls it for what comes later.
    match &section.next_id {
        Some(next_id) => println!("  next section to read: {next_id}"),
        None => println!("  (end of the log for now)"),
    }
    if let Some(max_id) = log.max_id()? {
        println!("The log holds notifications up to id {max_id}.");
    }
    Ok(())
}

/// What a notification says happened, decoded from its stored form.
fn describe(app: &Application, notification: &Notification) -> Result<String, Error> {
    let event = match app
        .mapper()
        .to_domain_event::<DogEvent>(&notification.event)
    {
        Ok(event) => event,
        // The log may hold events of aggregates this program does not know.
        Err(Error::UnknownTopic { .. }) => return Ok("(not an event of this program)".to_owned()),
        Err(error) => return Err(error),
    };
    let dog = event.originator_id;
    Ok(match event.payload {
        DogEvent::Registered { name } => format!("dog {dog} registered as {name}"),
        DogEvent::TrickAdded { trick } => format!("dog {dog} learned to {trick}"),
    })
}

#[cfg(test)]
mod tests {
    use es_core::testing::AggregateTest;

    use super::*;

    fn registered() -> DogEvent {
        DogEvent::Registered {
            name: "Fido".into(),
        }
    }

    fn trick_added(trick: &str) -> DogEvent {
        DogEvent::TrickAdded {
            trick: trick.into(),
        }
    }

    #[test]
    fn registering_a_dog_records_its_name() {
        AggregateTest::<Dog>::when_created(|| Dog::register("Fido".into()))
            .then_expect([registered()]);
    }

    #[test]
    fn a_new_trick_is_learned() {
        let dog = AggregateTest::<Dog>::given([registered(), trick_added("sit")])
            .when(|dog| dog.teach("roll over"))
            .then_expect([trick_added("roll over")]);
        assert_eq!(dog.tricks(), ["sit", "roll over"]);
    }

    #[test]
    fn a_known_trick_is_refused_and_records_nothing() {
        AggregateTest::<Dog>::given([registered(), trick_added("sit")])
            .when(|dog| dog.teach("sit"))
            .then_expect_error(AlreadyKnown {
                dog: "Fido".into(),
                trick: "sit".into(),
            });
        let refusal = AlreadyKnown {
            dog: "Fido".into(),
            trick: "sit".into(),
        };
        assert_eq!(refusal.to_string(), "Fido already knows how to sit");
    }

    #[test]
    fn a_saved_dog_is_rebuilt_from_its_events() -> Result<(), Box<dyn std::error::Error>> {
        let app = Application::builder().in_memory().build()?;
        let mut dog = Dog::register("Fido".into());
        dog.teach("sit")?;
        app.save(&mut dog)?;
        let copy: Dog = app.repository().get(dog.id())?;
        assert_eq!(
            (copy.name(), copy.tricks(), copy.version()),
            ("Fido", &["sit".to_owned()][..], 2)
        );
        let first = app.notification_log().section("1,10")?;
        assert_eq!(first.id.as_deref(), Some("1,2"));
        assert_eq!(
            describe(&app, &first.items[0])?,
            format!("dog {} registered as Fido", dog.id())
        );
        Ok(())
    }
}
