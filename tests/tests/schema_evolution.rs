//! Stored data outlives the code that wrote it: events and snapshots stored by
//! an older version of the program are read back as the current types, through
//! declared upcast steps and topic aliases.

use es_core::persistence::{EventQuery, StoredEvent};
use es_core::prelude::*;
use es_core::serde_json::{Value, json};

/// The program as it was: dogs with a name and a list of tricks.
mod v1 {
    use es_core::prelude::*;

    #[aggregate]
    #[derive(Debug, Clone)]
    pub struct Dog {
        pub name: String,
        pub tricks: Vec<String>,
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
    }
}

/// The program as it is: a breed on registration, tricks with a difficulty and
/// a reward, and a count of tricks kept in the state.
mod v2 {
    use es_core::prelude::*;
    use es_core::serde_json::{Value, json};

    #[aggregate]
    #[derive(Debug, Clone)]
    pub struct Dog {
        pub name: String,
        pub breed: String,
        pub tricks: Vec<(String, u8)>,
        pub trick_count: usize,
    }

    #[aggregate(version = 2, upcast = [state_v1_to_v2])]
    impl Dog {
        #[event("Registered", version = 2, upcast = [registered_v1_to_v2])]
        pub fn register(name: String, breed: String) -> Self {
            Dog {
                name,
                breed,
                tricks: Vec::new(),
                trick_count: 0,
            }
        }

        #[event("TrickAdded", version = 3, upcast = [trick_v1_to_v2, trick_v2_to_v3])]
        pub fn add_trick(&mut self, trick: String, difficulty: u8, rewarded: bool) {
            if rewarded {
                self.tricks.push((trick, difficulty));
                self.trick_count += 1;
            }
        }
    }

    /// Dogs registered before breeds were recorded.
    fn registered_v1_to_v2(fields: &mut Value) {
        fields["breed"] = json!("unknown");
    }

    fn trick_v1_to_v2(fields: &mut Value) {
        fields["difficulty"] = json!(1);
    }

    fn trick_v2_to_v3(fields: &mut Value) {
        fields["rewarded"] = json!(true);
    }

    /// Snapshots of v1 state: tricks as names, no breed, no count.
    fn state_v1_to_v2(state: &mut Value) {
        let tricks: Vec<Value> = state["tricks"]
            .as_array()
            .map(|tricks| tricks.iter().map(|trick| json!([trick, 1])).collect())
            .unwrap_or_default();
        state["trick_count"] = json!(tricks.len());
        state["tricks"] = Value::Array(tricks);
        state["breed"] = json!("unknown");
    }
}

fn app() -> Application {
    Application::builder()
        .in_memory()
        .snapshotting(true)
        .build()
        .expect("application")
}

#[test]
fn events_stored_by_the_old_program_are_read_as_the_current_types() {
    let app = app();
    let mut old = v1::Dog::register("Fido".into());
    old.add_trick("sit".into());
    app.save(&mut old).expect("save with v1");

    let mut dog: v2::Dog = app.repository().get(old.id()).expect("read with v2");
    assert_eq!(dog.breed, "unknown");
    assert_eq!(dog.tricks, [("sit".to_owned(), 1)]);
    assert_eq!(dog.trick_count, 1);

    // New events are stored at the current version and read back with the old ones.
    dog.add_trick("beg".into(), 3, true);
    app.save(&mut dog).expect("save with v2");
    let stored = app
        .recorder()
        .select_events(&dog.id(), EventQuery::new())
        .expect("select");
    let versions: Vec<Option<u64>> = stored
        .iter()
        .map(|event| {
            serde_json::from_slice::<Value>(&event.state).expect("json")["version"].as_u64()
        })
        .collect();
    assert_eq!(
        versions,
        [None, None, Some(3)],
        "only new events carry a version"
    );
    let again: v2::Dog = app.repository().get(dog.id()).expect("read mixed versions");
    assert_eq!(again.tricks, [("sit".to_owned(), 1), ("beg".to_owned(), 3)]);

    let fresh = v2::Dog::register("Rex".into(), "collie".into());
    assert!(matches!(
        &fresh.pending_events()[0].payload,
        v2::DogEvent::Registered { breed, .. } if breed == "collie"
    ));
}

#[test]
fn snapshots_stored_by_the_old_program_are_upcast_too() {
    let app = app();
    let mut old = v1::Dog::register("Fido".into());
    old.add_trick("sit".into());
    old.add_trick("stay".into());
    app.save(&mut old).expect("save");
    app.take_snapshot::<v1::Dog>(old.id()).expect("v1 snapshot");

    let dog: v2::Dog = app
        .repository()
        .get(old.id())
        .expect("from the v1 snapshot");
    assert_eq!(dog.tricks, [("sit".to_owned(), 1), ("stay".to_owned(), 1)]);
    assert_eq!((dog.trick_count, dog.version()), (2, 3));
    assert_eq!(dog.breed, "unknown");
}

#[test]
fn data_from_a_newer_program_is_an_error_naming_the_event() {
    let app = app();
    let mut dog = v2::Dog::register("Fido".into(), "pug".into());
    app.save(&mut dog).expect("save");
    let mut stored = app
        .recorder()
        .select_events(&dog.id(), EventQuery::new())
        .expect("select")
        .remove(0);
    let mut state: Value = serde_json::from_slice(&stored.state).expect("json");
    state["version"] = json!(7);
    stored.state = serde_json::to_vec(&state).expect("json");
    stored.originator_id = Uuid::new_v4().into();
    app.recorder()
        .insert_events(&[stored.clone()])
        .expect("insert");
    let error = app
        .repository()
        .get::<v2::Dog>(&stored.originator_id)
        .expect_err("too new");
    let message = error.to_string();
    assert!(
        matches!(
            error,
            Error::Decode {
                originator_version: 1,
                ..
            }
        ),
        "{message}"
    );
    assert!(
        message.contains("schema version 7") && message.contains(&stored.originator_id.to_string()),
        "{message}"
    );
}

/// The program after a rename: `Pup` became `Puppy`, and its `NameChanged` event
/// became `Renamed`.
mod renamed {
    use es_core::prelude::*;

    #[aggregate]
    pub struct Puppy {
        pub name: String,
    }

    #[aggregate(name = "Puppy", aliases = ["Pup"])]
    impl Puppy {
        #[event("Born")]
        pub fn born(name: String) -> Self {
            Puppy { name }
        }

        #[event("Renamed", aliases = ["Pup.NameChanged"])]
        pub fn rename(&mut self, name: String) {
            self.name = name;
        }
    }
}

/// A row as the program wrote it before the rename.
fn old_row(id: Uuid, version: u64, topic: &str, data: Value) -> StoredEvent {
    StoredEvent {
        originator_id: id.into(),
        originator_version: version,
        topic: topic.into(),
        state: serde_json::to_vec(&json!({"timestamp": "2025-01-01T00:00:00Z", "data": data}))
            .expect("json"),
    }
}

#[test]
fn renamed_aggregates_and_events_still_read_their_old_topics() {
    let app = app();
    let id = Uuid::new_v4();
    app.recorder()
        .insert_events(&[
            old_row(id, 1, "Pup.Born", json!({"name": "Rex"})),
            old_row(id, 2, "Pup.NameChanged", json!({"name": "Max"})),
        ])
        .expect("insert");

    let mut puppy: renamed::Puppy = app.repository().get(id).expect("read old topics");
    assert_eq!((puppy.name.as_str(), puppy.version()), ("Max", 2));
    puppy.rename("Bo".into());
    app.save(&mut puppy).expect("save");
    let topics: Vec<String> = app
        .recorder()
        .select_events(&id.into(), EventQuery::new())
        .expect("select")
        .into_iter()
        .map(|event| event.topic)
        .collect();
    assert_eq!(
        topics,
        ["Pup.Born", "Pup.NameChanged", "Puppy.Renamed"],
        "new events use the new topics"
    );

    // A reader of the whole log decodes the old topics as the current type.
    let first = app
        .notification_log()
        .select(1, 1)
        .expect("select")
        .remove(0);
    let event = app
        .mapper()
        .to_any_event(&first.event)
        .expect("decode by the old topic");
    assert_eq!(event.topic(), "Puppy.Born");
    assert!(event.downcast_ref::<renamed::PuppyEvent>().is_some());
    assert!(es_core::topics::registered().contains(&("Pup.NameChanged", "Puppy")));

    // Snapshots taken under the old name are read too.
    let snapshots = app.snapshot_recorder().expect("on");
    snapshots
        .insert_events(&[StoredEvent {
            originator_id: id.into(),
            originator_version: 2,
            topic: "Pup.Snapshot".into(),
            state: serde_json::to_vec(&json!({
                "created_on": "2025-01-01T00:00:00Z",
                "modified_on": "2025-01-01T00:00:00Z",
                "state": {"name": "Snappy"},
            }))
            .expect("json"),
        }])
        .expect("insert");
    let from_snapshot: renamed::Puppy = app.repository().get(id).expect("old snapshot topic");
    assert_eq!(from_snapshot.name, "Bo");
    let at_two: renamed::Puppy = app.repository().get_at(id, 2).expect("at the snapshot");
    assert_eq!(at_two.name, "Snappy", "the snapshot was used");
}

/// Members with a text id given by a parameter (`id = &id`), as the program is
/// now: a level was added to the creation event.
mod members {
    use es_core::prelude::*;
    use es_core::serde_json::{Value, json};

    #[aggregate]
    pub struct Member {
        pub name: String,
        pub level: u8,
    }

    #[aggregate]
    impl Member {
        #[event("Joined", id = &id, version = 2, upcast = [joined_v1_to_v2])]
        pub fn join(id: OriginatorId, name: String, level: u8) -> Self {
            let _ = id;
            Member { name, level }
        }
    }

    /// The documented pattern: the stored fields replaced as a whole.
    fn joined_v1_to_v2(fields: &mut Value) {
        *fields = json!({ "name": fields["name"].clone(), "level": 1 });
    }
}

#[test]
fn a_creation_event_upcast_as_a_whole_keeps_the_id_given_by_a_parameter() {
    let app = app();
    let id = OriginatorId::text("member-ada").expect("id");
    // As version 1 stored it, with the id among the fields too.
    app.recorder()
        .insert_events(&[StoredEvent {
            originator_id: id.clone(),
            originator_version: 1,
            topic: "Member.Joined".into(),
            state: serde_json::to_vec(&json!({
                "timestamp": "2025-01-01T00:00:00Z",
                "data": {"id": "member-ada", "name": "ada"},
            }))
            .expect("json"),
        }])
        .expect("insert");

    let member: members::Member = app.repository().get(&id).expect("read the old event");
    assert_eq!(
        (member.id(), member.name.as_str(), member.level),
        (id, "ada", 1)
    );
}

#[test]
fn the_id_parameter_of_a_creation_event_is_stored_once_as_the_aggregates_id() {
    let app = app();
    let id = OriginatorId::text("member-bo").expect("id");
    let mut member = members::Member::join(id.clone(), "bo".into(), 3);
    assert!(matches!(
        &member.pending_events()[0].payload,
        members::MemberEvent::Joined { name, level: 3 } if name == "bo"
    ));
    app.save(&mut member).expect("save");

    let stored = app
        .recorder()
        .select_events(&id, EventQuery::new())
        .expect("select");
    let state: Value = serde_json::from_slice(&stored[0].state).expect("json");
    assert_eq!(state["data"], json!({"name": "bo", "level": 3}));
    let copy: members::Member = app.repository().get(&id).expect("get");
    assert_eq!((copy.id(), copy.name.as_str(), copy.level), (id, "bo", 3));
}
