//! The user-facing shape of `#[aggregate]` and `#[event]`: commands, metadata,
//! replay, event structs, topics and ids.

use es_core::prelude::*;

#[aggregate]
#[derive(Clone, Debug, PartialEq)]
pub struct Dog {
    name: String,
    tricks: Vec<String>,
}

#[aggregate]
impl Dog {
    #[event("Registered")]
    pub fn register(name: String) -> Self {
        Dog {
            name,
            tricks: Vec::new(),
        }
    }

    #[event("TrickAdded")]
    pub fn add_trick(&mut self, trick: String) {
        self.tricks.push(trick);
    }

    /// A plain method: validates, then triggers an event.
    pub fn teach(&mut self, trick: &str) -> Result<(), String> {
        if self.tricks.iter().any(|t| t == trick) {
            return Err(format!("{} already knows {trick}", self.name));
        }
        self.add_trick(trick.to_owned());
        Ok(())
    }
}

/// An event struct, shared by two methods of one aggregate and by another aggregate.
#[event]
pub struct Renamed {
    pub name: String,
    pub reason: String,
}

#[aggregate]
pub struct Page {
    title: String,
    slug: String,
    body: String,
    visits: u64,
}

#[aggregate(name = "WikiPage")]
impl Page {
    #[event("Created", id = create_id(&slug))]
    pub fn create(title: String, slug: String) -> Self {
        Self::blank(title, slug)
    }

    fn blank(title: String, slug: String) -> Self {
        Page {
            title,
            slug,
            body: String::new(),
            visits: 0,
        }
    }

    #[event(Renamed)]
    pub fn rename(&mut self, event: Renamed) {
        self.title = event.name;
    }

    #[event(Renamed, name = "TitleFixed")]
    pub fn fix_title(&mut self, fix: Renamed) {
        self.title = fix.name;
    }

    #[event]
    pub fn visited(&mut self) {
        self.visits += 1;
    }

    #[event("BodyEdited")]
    pub fn edit(&mut self, mut body: String) {
        body.push('\n');
        self.body = body;
    }
}

#[test]
fn commands_apply_events_and_record_them() {
    let mut dog = Dog::register("Fido".into());
    assert_eq!(dog.name, "Fido");
    assert_eq!(dog.version(), 1);
    assert_eq!(dog.created_on(), dog.modified_on());
    assert_eq!(dog.id().as_uuid().map(|id| id.get_version_num()), Some(4));

    dog.add_trick("roll over".into());
    dog.teach("play dead").expect("should succeed");
    assert_eq!(
        dog.teach("play dead").expect_err("refused"),
        "Fido already knows play dead"
    );
    assert_eq!(dog.tricks, ["roll over", "play dead"]);
    assert_eq!(dog.version(), 3);
    assert!(dog.modified_on() >= dog.created_on());

    let pending = dog.pending_events();
    assert_eq!(pending.len(), 3);
    assert_eq!(
        pending
            .iter()
            .map(|e| e.originator_version)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(pending.iter().all(|e| e.originator_id == dog.id()));
    assert_eq!(pending[0].topic(), "Dog.Registered");
    assert!(matches!(&pending[1].payload, DogEvent::TrickAdded { trick } if trick == "roll over"));
}

#[test]
fn topics_default_to_aggregate_and_event_name_and_can_be_overridden() {
    let mut page = Page::create("Home".into(), "home".into());
    page.rename(Renamed {
        name: "Start".into(),
        reason: "clearer".into(),
    });
    page.fix_title(Renamed {
        name: "Start page".into(),
        reason: "typo".into(),
    });
    page.visited();
    page.edit("Welcome".into());
    let topics: Vec<_> = page.pending_events().iter().map(|e| e.topic()).collect();
    assert_eq!(
        topics,
        [
            "WikiPage.Created",
            "WikiPage.Renamed",
            "WikiPage.TitleFixed",
            "WikiPage.Visited",
            "WikiPage.BodyEdited"
        ]
    );
    assert_eq!(page.title, "Start page");
    assert_eq!(page.visits, 1);
    assert_eq!(page.body, "Welcome\n");
    assert_eq!(<Page as Aggregate>::NAME, "WikiPage");
    let registered = es_core::topics::registered();
    assert!(registered.contains(&("WikiPage.TitleFixed", "WikiPage")));
    assert!(registered.contains(&("Dog.TrickAdded", "Dog")));
}

#[test]
fn creation_ids_can_be_derived_from_a_name() {
    let page = Page::create("Home".into(), "home".into());
    assert_eq!(page.id(), create_id("home"));
    assert_eq!(page.id().as_uuid().map(|id| id.get_version_num()), Some(5));
    assert_eq!(page.slug, "home");
}

#[test]
fn replay_rebuilds_the_same_state_from_stored_events() {
    let app = Application::builder()
        .in_memory()
        .build()
        .expect("should succeed");
    let mut dog = Dog::register("Fido".into());
    dog.add_trick("sit".into());
    app.save(&mut dog).expect("should succeed");
    let copy: Dog = app.repository().get(dog.id()).expect("should succeed");
    assert_eq!(copy, dog);
    assert_eq!(copy.created_on(), dog.created_on());
    assert_eq!(copy.modified_on(), dog.modified_on());
    assert!(copy.pending_events().is_empty());
}

#[test]
fn events_are_stored_as_readable_json_with_the_timestamp() {
    let app = Application::builder()
        .in_memory()
        .build()
        .expect("should succeed");
    let mut dog = Dog::register("Fido".into());
    app.save(&mut dog).expect("should succeed");
    let stored = app
        .notification_log()
        .select(1, 1)
        .expect("should succeed")
        .remove(0)
        .event;
    let json: serde_json::Value = serde_json::from_slice(&stored.state).expect("should succeed");
    assert_eq!(json["data"], serde_json::json!({"name": "Fido"}));
    assert!(
        json["timestamp"]
            .as_str()
            .expect("should succeed")
            .ends_with('Z')
    );
}

/// Generated code names only absolute paths: user items called like std's change nothing.
mod shadowing {
    #![allow(dead_code)]
    use es_core::prelude::*;

    type Result = ();
    struct Option;
    struct Clone;
    struct Vec;
    mod serde {}
    mod es_core_private {}

    #[aggregate]
    struct Shadowed {
        value: u8,
    }

    #[aggregate]
    impl Shadowed {
        #[event("Made")]
        fn make(value: u8) -> Self {
            Shadowed { value }
        }
    }

    #[test]
    fn aggregates_compile_next_to_shadowing_names() {
        assert_eq!(Shadowed::make(3).value, 3);
    }
}

#[test]
fn event_enums_are_serde_values_tagged_by_topic() {
    let mut page = Page::create("Home".into(), "home".into());
    page.fix_title(Renamed {
        name: "Start".into(),
        reason: "typo".into(),
    });
    let events: Vec<&PageEvent> = page.pending_events().iter().map(|e| &e.payload).collect();
    let json = serde_json::to_value(&events).expect("serialize");
    assert_eq!(
        json,
        serde_json::json!([
            {"event": "WikiPage.Created", "fields": {"title": "Home", "slug": "home"}},
            {"event": "WikiPage.TitleFixed", "fields": {"name": "Start", "reason": "typo"}},
        ])
    );
    let back: Vec<PageEvent> = serde_json::from_value(json).expect("deserialize");
    assert!(matches!(&back[1], PageEvent::TitleFixed(Renamed { name, .. }) if name == "Start"));
    let wrong = serde_json::json!({"event": "Dog.Registered", "fields": {"name": "Fido"}});
    assert!(
        serde_json::from_value::<PageEvent>(wrong).is_err(),
        "another aggregate's topic"
    );
}

/// An aggregate with a plain constructor that skips its creation event, as
/// `#[derive(Default)]` would if it were allowed.
#[aggregate]
pub struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    #[event("Opened")]
    pub fn open() -> Self {
        Account { balance: 0 }
    }

    #[event("Deposited")]
    pub fn deposit(&mut self, amount: u64) {
        self.balance += amount;
    }

    /// The mistake: an account that no creation event made.
    pub fn blank() -> Self {
        Account { balance: 0 }
    }
}

#[test]
fn an_aggregate_that_was_never_created_is_refused_before_anything_is_written() {
    let app = Application::builder()
        .in_memory()
        .build()
        .expect("application");
    let mut opened = Account::open();
    opened.deposit(1);
    let mut blank = Account::blank();
    blank.deposit(5);

    let error = app
        .save(&mut [&mut opened, &mut blank])
        .expect_err("a history without a creation event is refused");
    match &error {
        Error::NotCreated {
            aggregate, topic, ..
        } => assert_eq!(
            (*aggregate, topic.as_str()),
            ("Account", "Account.Deposited")
        ),
        other => panic!("expected NotCreated, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .contains("create it with its creation event"),
        "{error}"
    );
    assert_eq!(
        app.notification_log().max_id().expect("max id"),
        None,
        "nothing of the save was written"
    );
    assert_eq!(blank.pending_events().len(), 1, "the events stay pending");

    app.save(&mut opened).expect("a created aggregate saves");
    let copy: Account = app.repository().get(opened.id()).expect("get");
    assert_eq!(copy.balance, 1);
}

/// A creation event whose id parameter is a `Uuid`: replay gives it back from
/// the stored event's id.
#[aggregate]
pub struct Badge {
    serial: Uuid,
}

#[aggregate]
impl Badge {
    #[event("Issued", id = serial)]
    pub fn issue(serial: Uuid) -> Self {
        Badge { serial }
    }
}

#[test]
fn an_id_parameter_is_given_back_on_replay_and_a_stored_id_that_does_not_fit_it_is_an_error() {
    let app = Application::builder()
        .in_memory()
        .build()
        .expect("application");
    let serial = Uuid::new_v4();
    app.save(&mut Badge::issue(serial)).expect("save");
    let badge: Badge = app.repository().get(serial).expect("get");
    assert_eq!((badge.serial, badge.id()), (serial, serial.into()));

    // A text id cannot be the `Uuid` parameter: an error that says so, not a guess.
    let text = OriginatorId::text("badge-1").expect("id");
    app.recorder()
        .insert_events(&[es_core::persistence::StoredEvent {
            originator_id: text.clone(),
            originator_version: 1,
            topic: "Badge.Issued".into(),
            state: br#"{"timestamp":"2025-01-01T00:00:00Z","data":{}}"#.to_vec(),
        }])
        .expect("insert");
    match app.repository().get::<Badge>(&text) {
        Err(Error::UnexpectedEvent { reason, .. }) => {
            assert!(reason.contains("does not fit the id parameter"), "{reason}");
        }
        other => panic!(
            "expected UnexpectedEvent, got {:?}",
            other.map(|b| b.serial)
        ),
    }
}
