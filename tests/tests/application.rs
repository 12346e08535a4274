//! The application layer over every backend: saving, getting back, snapshots,
//! subscribers, the notification log and configuration.

use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use es_core::persistence::{EventQuery, StoredEvent};
use es_core::prelude::*;
use es_core::{Environment, Persistence};

#[aggregate]
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    owner: String,
    balance: i64,
}

#[aggregate]
impl Account {
    #[event("Opened")]
    pub fn open(owner: String, balance: i64) -> Self {
        Account { owner, balance }
    }

    #[event("Deposited")]
    pub fn deposit(&mut self, amount: i64) {
        self.balance += amount;
    }
}

#[aggregate]
pub struct Note {
    text: String,
}

#[aggregate]
impl Note {
    #[event("Written")]
    pub fn write(text: String) -> Self {
        Note { text }
    }
}

fn memory() -> Application {
    Application::builder()
        .in_memory()
        .build()
        .expect("application")
}

#[path = "pg_support/mod.rs"]
mod pg_support;

#[path = "nats_support/mod.rs"]
mod nats_support;

/// An application on a NATS server of its own, configured by the
/// environment only, as an operator moves one there; the node is the guard.
fn nats(
    what: &str,
    builder: impl FnOnce(es_core::ApplicationBuilder) -> es_core::ApplicationBuilder,
) -> Option<(Application, Guard)> {
    let node = nats_support::single(what)?;
    let environment = es_core::Environment::from_vars([
        ("PERSISTENCE_MODULE", "nats".to_owned()),
        ("NATS_URL", node.url()),
    ]);
    let app = builder(Application::builder().environment(environment))
        .build()
        .expect("nats");
    Some((app, Some(Box::new(node))))
}

/// What a backend needs kept until the test ends (a directory, tables to drop).
type Guard = Option<Box<dyn std::any::Any>>;

/// Every backend, so each test below runs on all of them (PostgreSQL when its
/// server is there, on fresh tables).
fn backends() -> Vec<(&'static str, Application, Guard)> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = Application::builder()
        .sqlite(dir.path().join("events.sqlite3"))
        .build()
        .expect("sqlite file");
    let postgres =
        pg_support::server("the PostgreSQL backend of an application test").map(|config| {
            let prefix = pg_support::unique_prefix();
            let guard: Box<dyn std::any::Any> = Box::new(pg_support::DropTables::new(&prefix));
            let app = Application::builder()
                .name(&prefix)
                .postgres(config)
                .build()
                .expect("postgres");
            ("postgres", app, Some(guard))
        });
    let mut backends: Vec<(&'static str, Application, Guard)> = vec![
        ("memory", memory(), None),
        (
            "sqlite in memory",
            Application::builder()
                .sqlite(":memory:")
                .build()
                .expect("sqlite"),
            None,
        ),
        ("sqlite file", file, Some(Box::new(dir))),
    ];
    backends.extend(postgres);
    backends.extend(
        nats("the NATS backend of an application test", |builder| builder)
            .map(|(app, guard)| ("nats", app, guard)),
    );
    backends
}

#[test]
fn saved_aggregates_are_got_back_at_any_version() {
    for (backend, app, _dir) in backends() {
        let mut account = Account::open("Alice".into(), 10);
        account.deposit(5);
        app.save(&mut account).expect(backend);
        account.deposit(7);
        app.save(&mut account).expect(backend);

        let repository = app.repository();
        let latest: Account = repository.get(account.id()).expect(backend);
        assert_eq!(latest, account, "{backend}");
        assert_eq!(latest.version(), 3);
        assert_eq!(
            repository
                .get_at::<Account>(account.id(), 2)
                .expect(backend)
                .balance,
            15
        );
        assert_eq!(
            repository
                .get_at::<Account>(account.id(), 1)
                .expect(backend)
                .balance,
            10
        );
        for version in [0, 4] {
            let error = repository
                .get_at::<Account>(account.id(), version)
                .expect_err(backend);
            assert!(
                matches!(error, Error::AggregateNotFound { version: Some(v), .. } if v == version),
                "{error}"
            );
        }
        assert!(repository.contains(account.id()).expect(backend));
        let unknown = Uuid::new_v4();
        assert!(!repository.contains(unknown).expect(backend));
        let error = repository.get::<Account>(unknown).expect_err(backend);
        assert!(
            matches!(&error, Error::AggregateNotFound { id, version: None } if *id == unknown),
            "{error}"
        );
        assert!(error.to_string().contains(&unknown.to_string()));
    }
}

#[test]
fn a_save_of_several_aggregates_is_all_or_nothing() {
    for (backend, app, _dir) in backends() {
        let mut a = Account::open("A".into(), 0);
        let mut b = Account::open("B".into(), 0);
        app.save(&mut [&mut a, &mut b]).expect(backend);

        // Another writer moves b on first.
        let mut b_elsewhere: Account = app.repository().get(b.id()).expect(backend);
        b_elsewhere.deposit(1);
        app.save(&mut b_elsewhere).expect(backend);

        a.deposit(10);
        b.deposit(-10);
        let mut note = Note::write("transfer".into());
        let error = app
            .save(&mut (&mut a, &mut b, &mut note))
            .expect_err(backend);
        assert!(
            matches!(&error, Error::Conflict { originator_id, originator_version: 2 } if *originator_id == b.id()),
            "{error}"
        );
        assert_eq!(
            app.repository()
                .get::<Account>(a.id())
                .expect(backend)
                .version(),
            1,
            "{backend}: a untouched"
        );
        assert!(
            !app.repository().contains(note.id()).expect(backend),
            "{backend}: note untouched"
        );
        assert_eq!(
            a.pending_events().len(),
            1,
            "a failed save keeps the pending events"
        );
        assert_eq!(note.pending_events().len(), 1);
    }
}

#[test]
fn save_returns_recordings_and_clears_pending_events() {
    let app = memory();
    let mut account = Account::open("Alice".into(), 1);
    account.deposit(2);
    let recordings = app.save(&mut account).expect("save");
    assert_eq!(
        recordings
            .iter()
            .map(|r| r.notification_id)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(matches!(
        recordings[1].event.downcast_ref::<AccountEvent>(),
        Some(AccountEvent::Deposited { amount: 2 })
    ));
    assert!(account.pending_events().is_empty());
    assert!(app.save(&mut account).expect("nothing to save").is_empty());
}

#[test]
fn two_threads_racing_to_save_one_version_conflict_exactly_once() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("race.sqlite3");
    let app = Arc::new(
        Application::builder()
            .sqlite(&path)
            .build()
            .expect("application"),
    );
    for round in 0..10 {
        let mut account = Account::open(format!("owner {round}"), 0);
        app.save(&mut account).expect("save");
        let barrier = Arc::new(Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|i| {
                let (app, barrier) = (app.clone(), barrier.clone());
                let id = account.id();
                thread::spawn(move || {
                    let mut copy: Account = app.repository().get(id).expect("get");
                    copy.deposit(100 + i);
                    barrier.wait();
                    app.save(&mut copy)
                })
            })
            .collect();
        let results: Vec<_> = racers
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(e) if e.is_conflict())),
            "{results:?}"
        );
        let stored = app
            .recorder()
            .select_events(&account.id(), EventQuery::new())
            .expect("select");
        assert_eq!(
            stored
                .iter()
                .map(|e| e.originator_version)
                .collect::<Vec<_>>(),
            [1, 2],
            "no gap, no duplicate"
        );
    }
}

#[test]
fn snapshots_are_taken_on_demand_and_every_n_events() {
    for (backend, app, _dir) in [
        (
            "memory",
            Application::builder()
                .in_memory()
                .snapshotting_interval::<Account>(3)
                .build(),
            None,
        ),
        (
            "sqlite",
            Application::builder()
                .sqlite(":memory:")
                .snapshotting_interval::<Account>(3)
                .build(),
            None::<Box<dyn std::any::Any>>,
        ),
    ]
    .into_iter()
    .chain(
        nats("the NATS backend of the snapshots test", |builder| {
            builder.snapshotting_interval::<Account>(3)
        })
        .map(|(app, guard)| ("nats", Ok(app), guard)),
    ) {
        let app = app.expect(backend);
        let mut account = Account::open("Alice".into(), 0);
        for _ in 0..4 {
            account.deposit(1);
        }
        app.save(&mut account).expect(backend); // versions 1..=5 cross 3
        let snapshots = app.snapshot_recorder().expect("snapshotting is on");
        let taken = |id: OriginatorId| {
            snapshots
                .select_events(&id, EventQuery::new())
                .expect("select")
        };
        assert_eq!(
            taken(account.id())
                .iter()
                .map(|s| s.originator_version)
                .collect::<Vec<_>>(),
            [5]
        );
        account.deposit(1);
        app.save(&mut account).expect(backend); // version 6 is a multiple of 3
        assert_eq!(taken(account.id()).len(), 2);

        app.take_snapshot::<Account>(account.id()).expect(backend);
        app.take_snapshot::<Account>(account.id())
            .expect("twice is harmless");
        account.deposit(1);
        app.save(&mut account).expect(backend);
        let got: Account = app.repository().get(account.id()).expect(backend);
        assert_eq!((got.balance, got.version()), (6, 7));
        assert_eq!(got.created_on(), account.created_on());
        // Below the latest snapshot, replay starts from an earlier one, or from scratch.
        assert_eq!(
            app.repository()
                .get_at::<Account>(account.id(), 2)
                .expect(backend)
                .balance,
            1
        );
        assert_eq!(
            app.repository()
                .get_at::<Account>(account.id(), 5)
                .expect(backend)
                .balance,
            4
        );

        // Notes have no interval: no snapshot.
        let mut note = Note::write("hi".into());
        app.save(&mut note).expect(backend);
        assert!(taken(note.id()).is_empty());
    }
}

#[test]
fn get_starts_from_the_snapshot_and_replays_only_later_events() {
    let app = Application::builder()
        .in_memory()
        .snapshotting(true)
        .build()
        .expect("application");
    let mut account = Account::open("Alice".into(), 0);
    account.deposit(1);
    app.save(&mut account).expect("save");
    app.take_snapshot::<Account>(account.id())
        .expect("snapshot");
    account.deposit(2);
    app.save(&mut account).expect("save");
    // Were the events before the snapshot read, this undecodable one would fail `get`.
    let snapshots = app.snapshot_recorder().expect("on");
    let snapshot = &snapshots
        .select_events(&account.id(), EventQuery::new())
        .expect("select")[0];
    assert_eq!(snapshot.originator_version, 2);
    let doctored = Application::builder()
        .in_memory()
        .snapshotting(true)
        .build()
        .expect("application");
    doctored
        .recorder()
        .insert_events(&[
            StoredEvent {
                state: b"garbage".to_vec(),
                ..stored(&app, account.id(), 1)
            },
            stored(&app, account.id(), 2),
            stored(&app, account.id(), 3),
        ])
        .expect("insert");
    doctored
        .snapshot_recorder()
        .expect("on")
        .insert_events(std::slice::from_ref(snapshot))
        .expect("insert");
    assert_eq!(
        doctored
            .repository()
            .get::<Account>(account.id())
            .expect("from the snapshot")
            .balance,
        3
    );
    assert!(
        doctored
            .repository()
            .get_at::<Account>(account.id(), 1)
            .is_err(),
        "below it, the bad event is read"
    );
}

fn stored(app: &Application, id: impl Into<OriginatorId>, version: u64) -> StoredEvent {
    app.recorder()
        .select_events(&id.into(), EventQuery::new().gt(version - 1).lte(version))
        .expect("select")
        .remove(0)
}

#[test]
fn taking_a_snapshot_without_snapshotting_is_a_clear_error() {
    let app = memory();
    let mut note = Note::write("x".into());
    app.save(&mut note).expect("save");
    let error = app.take_snapshot::<Note>(note.id()).expect_err("disabled");
    assert!(matches!(error, Error::SnapshottingDisabled));
    assert!(error.to_string().contains("IS_SNAPSHOTTING_ENABLED"));
}

#[test]
fn subscribers_are_called_in_order_after_each_save_and_errors_do_not_undo_it() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = |name: &'static str| {
        let calls = calls.clone();
        move |recordings: &[Recording]| -> Result<(), BoxError> {
            calls.lock().expect("lock").push((name, recordings.len()));
            Ok(())
        }
    };
    let mut app = Application::builder()
        .in_memory()
        .subscribe(log("first"))
        .build()
        .expect("application");
    app.subscribe(|_| Err("the mail server is down".into()));
    app.subscribe(log("third"));

    let mut account = Account::open("Alice".into(), 0);
    account.deposit(1);
    let error = app
        .save(&mut account)
        .expect_err("the second subscriber fails");
    assert!(
        matches!(&error, Error::Subscriber { index: 1, notification_ids, .. } if notification_ids == &[1, 2]),
        "{error}"
    );
    assert!(error.to_string().contains("mail server"));
    assert_eq!(*calls.lock().expect("lock"), [("first", 2), ("third", 2)]);
    assert!(account.pending_events().is_empty(), "the save stood");
    assert_eq!(
        app.repository()
            .get::<Account>(account.id())
            .expect("get")
            .balance,
        1
    );
}

use es_core::BoxError;

#[test]
fn the_notification_log_reads_in_sections_and_streams_from_a_position() {
    for (backend, app, _dir) in backends() {
        let mut accounts: Vec<Account> = (0..1205)
            .map(|i| Account::open(format!("{i}"), i))
            .collect();
        app.save(&mut accounts).expect(backend);
        let log = app.notification_log();
        let section = log.section("1,10").expect(backend);
        assert_eq!(section.id.as_deref(), Some("1,10"));
        assert_eq!(section.next_id.as_deref(), Some("11,20"));
        let section = log.section("1201,1300").expect(backend);
        assert_eq!(section.id.as_deref(), Some("1201,1205"));
        assert_eq!(section.next_id, None);
        let empty = log.section("2000,2010").expect(backend);
        assert_eq!(
            (empty.id, empty.items.len(), empty.next_id),
            (None, 0, None)
        );
        let backwards = log.section("10,1").expect(backend);
        assert_eq!((backwards.id, backwards.next_id), (None, None));
        assert!(matches!(
            log.section("10;1"),
            Err(Error::InvalidSectionId { .. })
        ));

        let all: Vec<u64> = log.iter_from(1).map(|n| n.expect(backend).id).collect();
        assert_eq!(all, (1..=1205).collect::<Vec<_>>(), "{backend}");
        assert_eq!(log.iter_from(1200).count(), 6);
        assert_eq!(log.max_id().expect(backend), Some(1205));

        let first = log.iter_from(1).next().expect("one").expect(backend);
        let event = app.mapper().to_any_event(&first.event).expect(backend);
        assert!(matches!(
            event.downcast_ref::<AccountEvent>(),
            Some(AccountEvent::Opened { balance: 0, .. })
        ));
    }
}

fn env(vars: &[(&str, &str)]) -> Environment {
    Environment::from_vars(vars.iter().copied())
}

#[test]
fn configuration_comes_from_the_environment_with_the_name_prefix_first() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("bank.sqlite3");
    let app = Application::builder()
        .name("bank")
        .environment(env(&[
            ("PERSISTENCE_MODULE", "memory"),
            ("BANK_PERSISTENCE_MODULE", "eventsourcing.sqlite"),
            ("BANK_SQLITE_DBNAME", path.to_str().expect("utf-8 path")),
            ("IS_SNAPSHOTTING_ENABLED", "y"),
            ("SQLITE_LOCK_TIMEOUT", "0.25"),
        ]))
        .build()
        .expect("application");
    assert_eq!(
        app.persistence(),
        &Persistence::Sqlite { path: path.clone() }
    );
    assert!(app.is_snapshotting_enabled());
    assert!(path.exists());

    let other = Application::builder()
        .name("other")
        .environment(env(&[
            ("PERSISTENCE_MODULE", "popo"),
            ("BANK_PERSISTENCE_MODULE", "sqlite"),
        ]))
        .build()
        .expect("application");
    assert_eq!(other.persistence(), &Persistence::Memory);
    assert!(!other.is_snapshotting_enabled());

    // Code wins over the environment.
    let coded = Application::builder()
        .in_memory()
        .snapshotting(false)
        .environment(env(&[
            ("PERSISTENCE_MODULE", "sqlite"),
            ("IS_SNAPSHOTTING_ENABLED", "yes"),
        ]))
        .build()
        .expect("application");
    assert_eq!(coded.persistence(), &Persistence::Memory);
    assert!(!coded.is_snapshotting_enabled());
}

#[test]
fn bad_configuration_values_name_the_variable_and_the_accepted_values() {
    type Vars<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Vars<'_>, &str, &str)] = &[
        (
            &[("PERSISTENCE_MODULE", "postgress")],
            "PERSISTENCE_MODULE",
            "memory (also popo, eventsourcing.popo), nats, postgres",
        ),
        (
            &[
                ("PERSISTENCE_MODULE", "memory"),
                ("IS_SNAPSHOTTING_ENABLED", "maybe"),
            ],
            "IS_SNAPSHOTTING_ENABLED",
            "yes",
        ),
        (
            &[("PERSISTENCE_MODULE", "memory"), ("CREATE_TABLE", "2")],
            "CREATE_TABLE",
            "yes",
        ),
        (
            &[("SQLITE_DBNAME", ":memory:"), ("SQLITE_LOCK_TIMEOUT", "-1")],
            "SQLITE_LOCK_TIMEOUT",
            "seconds",
        ),
        (
            &[
                ("SQLITE_DBNAME", ":memory:"),
                ("SQLITE_LOCK_TIMEOUT", "soon"),
            ],
            "SQLITE_LOCK_TIMEOUT",
            "seconds",
        ),
        (
            &[("SHOP_PERSISTENCE_MODULE", "mongo")],
            "SHOP_PERSISTENCE_MODULE",
            "memory",
        ),
    ];
    for (vars, variable, accepted) in cases {
        let error = Application::builder()
            .name("shop")
            .environment(env(vars))
            .build()
            .expect_err(variable);
        let message = error.to_string();
        assert!(
            matches!(&error, Error::Config { variable: v, .. } if v == variable),
            "{message}"
        );
        assert!(message.contains(accepted), "{message}");
    }
}

#[test]
fn tables_are_not_created_when_create_table_is_off() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("none.sqlite3");
    let app = Application::builder()
        .sqlite(&path)
        .create_table(false)
        .build()
        .expect("application");
    let error = app
        .save(&mut Note::write("x".into()))
        .expect_err("no table");
    assert!(matches!(error, Error::Database { .. }), "{error}");
    assert!(error.to_string().contains("stored_events"), "{error}");
}

fn insert(app: &Application, events: &[StoredEvent]) {
    app.recorder().insert_events(events).expect("insert");
}

#[test]
fn bad_stored_data_is_an_error_naming_the_originator_and_version() {
    let app = memory();
    let mut account = Account::open("Alice".into(), 0);
    app.save(&mut account).expect("save");
    let id = account.id();
    let good = stored(&app, &id, 1);

    let check = |events: Vec<StoredEvent>, expect: &dyn Fn(&Error) -> bool| {
        let app = memory();
        insert(&app, &events);
        let error = app.repository().get::<Account>(&id).expect_err("bad data");
        assert!(expect(&error), "unexpected: {error}");
        let message = error.to_string();
        assert!(message.contains(&id.to_string()), "{message}");
        message
    };

    let message = check(
        vec![
            good.clone(),
            StoredEvent {
                topic: "Account.Vanished".into(),
                ..stored(&app, &id, 1)
            }
            .with_version(2),
        ],
        &|e| {
            matches!(
                e,
                Error::UnknownTopic {
                    originator_version: 2,
                    ..
                }
            )
        },
    );
    assert!(message.contains("Account.Vanished"));
    check(
        vec![StoredEvent {
            state: b"{\"timestamp\":1}".to_vec(),
            ..good.clone()
        }],
        &|e| {
            matches!(
                e,
                Error::Decode {
                    originator_version: 1,
                    ..
                }
            )
        },
    );
    check(
        vec![StoredEvent {
            state: vec![0xff, 0x00],
            ..good.clone()
        }],
        &|e| matches!(e, Error::Decode { .. }),
    );
    check(vec![good.clone(), good.clone().with_version(3)], &|e| {
        matches!(
            e,
            Error::OutOfSequence {
                expected: 2,
                found: 3,
                ..
            }
        )
    });
    check(vec![good.clone().with_version(2)], &|e| {
        matches!(
            e,
            Error::OutOfSequence {
                expected: 1,
                found: 2,
                ..
            }
        )
    });
    check(vec![good.clone(), good.clone().with_version(2)], &|e| {
        matches!(
            e,
            Error::UnexpectedEvent {
                originator_version: 2,
                ..
            }
        )
    });
    // An event of another aggregate type under this id.
    let mut note = Note::write("x".into());
    app.save(&mut note).expect("save");
    let foreign = StoredEvent {
        originator_id: id.clone(),
        ..stored(&app, note.id(), 1)
    };
    let message = check(vec![foreign], &|e| {
        matches!(e, Error::UnexpectedEvent { .. })
    });
    assert!(message.contains("Note.Written"), "{message}");
    // The same data read through the log without naming a type.
    let bad = StoredEvent {
        topic: "Nobody.Knows".into(),
        ..good
    };
    let error = app.mapper().to_any_event(&bad).expect_err("unknown");
    assert!(matches!(error, Error::UnknownTopic { .. }), "{error}");
}

trait WithVersion {
    fn with_version(self, version: u64) -> Self;
}

impl WithVersion for StoredEvent {
    fn with_version(self, version: u64) -> Self {
        StoredEvent {
            originator_version: version,
            ..self
        }
    }
}

/// An aggregate with a text id: the user's name, checked before the command.
#[aggregate]
#[derive(Debug, Clone)]
pub struct User {
    name: String,
    logins: u32,
}

#[aggregate]
impl User {
    /// A name that cannot make an id (empty, NUL, too long) is an error here,
    /// before any event exists: the command itself cannot fail.
    pub fn register(name: &str) -> Result<Self, Error> {
        let id = OriginatorId::text(format!("user-{name}"))?;
        Ok(Self::registered(id, name.to_owned()))
    }

    #[event("Registered", id = &id)]
    fn registered(id: OriginatorId, name: String) -> Self {
        let _ = id;
        User { name, logins: 0 }
    }

    #[event("LoggedIn")]
    pub fn log_in(&mut self) {
        self.logins += 1;
    }
}

fn user_id(name: &str) -> OriginatorId {
    OriginatorId::text(format!("user-{name}")).expect("a valid id")
}

#[test]
fn aggregates_with_text_ids_are_saved_and_got_back_by_that_text() {
    for (backend, app, _guard) in backends() {
        let name = format!("ada-{}", Uuid::new_v4().simple());
        let mut user = User::register(&name).expect(backend);
        assert_eq!(user.id(), user_id(&name));
        user.log_in();
        let saved = app.save(&mut user);
        if backend == "postgres" {
            // The default PostgreSQL store has uuid columns: a clear error, not a driver's.
            let error = saved.expect_err(backend);
            let message = error.to_string();
            assert!(matches!(error, Error::InvalidId { .. }), "{message}");
            assert!(
                message.contains(&format!("user-{name}"))
                    && message.contains("ORIGINATOR_ID_TYPE=text"),
                "{message}"
            );
            assert_eq!(app.notification_log().max_id().expect(backend), None);
            continue;
        }
        saved.expect(backend);
        user.log_in();
        app.save(&mut user).expect(backend);

        let repository = app.repository();
        let text = format!("user-{name}");
        let copy: User = repository
            .get(OriginatorId::text(&text).expect("valid"))
            .expect(backend);
        assert_eq!(
            (copy.name.as_str(), copy.logins, copy.version()),
            (name.as_str(), 2, 3)
        );
        assert_eq!(copy.id(), text.as_str());
        assert_eq!(
            repository
                .get_at::<User>(user.id(), 2)
                .expect(backend)
                .logins,
            1
        );
        assert!(repository.contains(user.id()).expect(backend));
        assert!(!repository.contains(user_id("nobody")).expect(backend));
        let missing = repository
            .get::<User>(user_id("nobody"))
            .expect_err(backend);
        assert!(missing.to_string().contains("user-nobody"), "{missing}");

        let log = app.notification_log().select(1, 10).expect(backend);
        assert_eq!(log.len(), 3);
        assert!(log.iter().all(|n| n.event.originator_id == user.id()));
        let decoded = app.mapper().to_any_event(&log[0].event).expect(backend);
        assert_eq!(decoded.originator_id, user_id(&name));

        // Another aggregate registered under the same name is a conflict naming the id.
        let error = app
            .save(&mut User::register(&name).expect(backend))
            .expect_err(backend);
        assert!(
            matches!(&error, Error::Conflict { originator_id, originator_version: 1 } if *originator_id == user.id()),
            "{error}"
        );
        assert!(error.to_string().contains(&text), "{error}");
    }
}

#[test]
fn text_ids_that_cannot_be_ids_are_refused_before_any_event() {
    for name in ["bad\0name".to_owned(), "x".repeat(300)] {
        let error = User::register(&name).expect_err("not an id");
        assert!(matches!(error, Error::InvalidId { .. }), "{error}");
    }
    // "user-" and a UUID is text; the canonical text of a UUID alone is the UUID.
    let uuid = Uuid::new_v4();
    assert_eq!(OriginatorId::text(uuid.to_string()).expect("valid"), uuid);
}

#[test]
fn snapshots_of_aggregates_with_text_ids_are_taken_and_used() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let apps = [
        Application::builder()
            .in_memory()
            .snapshotting(true)
            .build()
            .expect("memory"),
        Application::builder()
            .sqlite(dir.path().join("events.sqlite3"))
            .snapshotting(true)
            .build()
            .expect("sqlite"),
    ];
    for app in apps {
        let mut user = User::register("grace").expect("valid");
        user.log_in();
        app.save(&mut user).expect("save");
        app.take_snapshot::<User>(user_id("grace"))
            .expect("snapshot");
        user.log_in();
        app.save(&mut user).expect("save");
        let snapshots = app.snapshot_recorder().expect("on");
        let stored = snapshots
            .select_events(&user.id(), EventQuery::new())
            .expect("select");
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].originator_id, "user-grace");
        let copy: User = app.repository().get(user_id("grace")).expect("get");
        assert_eq!((copy.logins, copy.version()), (2, 3));
    }
}

/// Every notification id a reader gets by following `next_id` from `"1,10"`.
fn ids_read_by_following_next_id(app: &Application) -> Vec<u64> {
    let log = app.notification_log();
    let (mut read, mut next) = (Vec::new(), Some("1,10".to_owned()));
    while let Some(section_id) = next {
        let section = log.section(&section_id).expect("section");
        read.extend(section.items.iter().map(|n| n.id));
        next = section.next_id;
    }
    read
}

/// Saves 35 accounts, calling `make_gap` after some, and checks that a reader
/// following `next_id` reads the whole log, gaps and all.
fn check_sections_cross_gaps(app: &Application, make_gap: impl Fn()) {
    for i in 0..35 {
        app.save(&mut Account::open(format!("{i}"), i))
            .expect("save");
        if i % 6 == 2 {
            make_gap();
        }
    }
    let all: Vec<u64> = app
        .notification_log()
        .iter_from(1)
        .map(|n| n.expect("notification").id)
        .collect();
    assert!(
        all.last().is_some_and(|&last| last > all.len() as u64),
        "no gap was made: {all:?}"
    );
    assert_eq!(ids_read_by_following_next_id(app), all);
}

#[test]
fn sections_followed_by_next_id_read_the_whole_log_across_gaps_on_sqlite() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("events.sqlite3");
    let app = Application::builder()
        .sqlite(&path)
        .build()
        .expect("sqlite");
    check_sections_cross_gaps(&app, || {
        // SQLite skips ids only when its AUTOINCREMENT counter is raised.
        let connection = rusqlite::Connection::open(&path).expect("second connection");
        connection
            .execute(
                "UPDATE sqlite_sequence SET seq = seq + 2 WHERE name = 'stored_events'",
                [],
            )
            .expect("raise the id counter");
    });
}

#[test]
fn sections_followed_by_next_id_read_the_whole_log_across_gaps_on_postgres() {
    let Some(config) = pg_support::server("sections across gaps on PostgreSQL") else {
        return;
    };
    let prefix = pg_support::unique_prefix();
    let _tables = pg_support::DropTables::new(&prefix);
    let app = Application::builder()
        .name(&prefix)
        .postgres(config)
        .build()
        .expect("postgres");
    let mut contested = Account::open("contested".into(), 0);
    app.save(&mut contested).expect("save");
    check_sections_cross_gaps(&app, || {
        // A save that conflicts has drawn its ids already: they stay unused.
        let mut stale: Account = app.repository().get(contested.id()).expect("get");
        let mut fresh: Account = app.repository().get(contested.id()).expect("get");
        fresh.deposit(1);
        app.save(&mut fresh).expect("save");
        stale.deposit(1);
        assert!(app.save(&mut stale).is_err_and(|e| e.is_conflict()));
    });
}

fn check_history_decodes_every_event_oldest_first(app: &Application) {
    let mut account = Account::open("Ada".into(), 3);
    account.deposit(4);
    app.save(&mut account).expect("save");
    account.deposit(5);
    app.save(&mut account).expect("save");
    let history = app
        .repository()
        .history::<Account>(account.id())
        .expect("history");
    let versions: Vec<u64> = history.iter().map(|e| e.originator_version).collect();
    assert_eq!(versions, [1, 2, 3]);
    assert!(history.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    assert!(
        matches!(&history[0].payload, AccountEvent::Opened { owner, balance: 3 } if owner == "Ada")
    );
    assert!(matches!(
        history[2].payload,
        AccountEvent::Deposited { amount: 5 }
    ));
    assert!(history.iter().all(|e| e.originator_id == account.id()));

    let missing = app.repository().history::<Account>(Uuid::new_v4());
    assert!(matches!(
        missing,
        Err(Error::AggregateNotFound { version: None, .. })
    ));
    let mut note = Note::write("not an account".into());
    app.save(&mut note).expect("save");
    let error = app
        .repository()
        .history::<Account>(note.id())
        .expect_err("a note's events are not an account's");
    assert!(
        error.to_string().contains(&note.id().to_string()),
        "{error}"
    );
}

#[test]
fn history_decodes_every_event_oldest_first_in_memory() {
    check_history_decodes_every_event_oldest_first(&memory());
}

#[test]
fn history_decodes_every_event_oldest_first_on_sqlite() {
    let app = Application::builder()
        .sqlite(":memory:")
        .build()
        .expect("sqlite");
    check_history_decodes_every_event_oldest_first(&app);
}

fn snapshot_versions(app: &Application, id: OriginatorId) -> Vec<u64> {
    app.snapshot_recorder()
        .expect("snapshotting is on")
        .select_events(&id, EventQuery::new())
        .expect("select")
        .iter()
        .map(|s| s.originator_version)
        .collect()
}

#[test]
fn snapshotting_intervals_come_from_the_environment_and_the_builder_wins() {
    let app = Application::builder()
        .name("kennel")
        .in_memory()
        .environment(env(&[
            ("SNAPSHOTTING_INTERVALS", "Account:100"),
            ("KENNEL_SNAPSHOTTING_INTERVALS", " Account:2 , Note:1 "),
        ]))
        .build()
        .expect("application");
    assert!(app.is_snapshotting_enabled());
    let mut account = Account::open("Alice".into(), 0);
    app.save(&mut account).expect("save");
    account.deposit(1);
    account.deposit(1);
    app.save(&mut account).expect("save"); // 1 -> 3 crosses 2
    account.deposit(1);
    app.save(&mut account).expect("save"); // 4 is a multiple of 2
    assert_eq!(snapshot_versions(&app, account.id()), [3, 4]);
    let mut note = Note::write("hi".into());
    app.save(&mut note).expect("save");
    assert_eq!(snapshot_versions(&app, note.id()), [1]);

    let app = Application::builder()
        .in_memory()
        .environment(env(&[("SNAPSHOTTING_INTERVALS", "Account:2")]))
        .snapshotting_interval::<Account>(5)
        .build()
        .expect("application");
    let mut account = Account::open("Bob".into(), 0);
    for _ in 0..3 {
        account.deposit(1);
    }
    app.save(&mut account).expect("save");
    assert!(snapshot_versions(&app, account.id()).is_empty());
}

#[test]
fn bad_snapshotting_intervals_are_config_errors_naming_the_variable() {
    for bad in [
        "Account",
        "Account:0",
        "Account:-1",
        "Account:x",
        ":5",
        "Acount:5",
        "Account:5;Note:2",
    ] {
        let error = Application::builder()
            .in_memory()
            .environment(env(&[("SNAPSHOTTING_INTERVALS", bad)]))
            .build()
            .expect_err(bad);
        assert!(
            matches!(&error, Error::Config { variable, .. } if variable == "SNAPSHOTTING_INTERVALS"),
            "{bad}: {error}"
        );
        assert!(error.to_string().contains(bad), "{bad}: {error}");
    }
    let error = Application::builder()
        .in_memory()
        .environment(env(&[("SNAPSHOTTING_INTERVALS", "Acount:5")]))
        .build()
        .expect_err("a typo");
    assert!(error.to_string().contains("Account"), "{error}");
}

#[test]
fn a_snapshot_is_taken_at_a_chosen_version_and_used_below_newer_ones() {
    let app = Application::builder()
        .in_memory()
        .snapshotting(true)
        .build()
        .expect("application");
    let mut account = Account::open("Alice".into(), 0);
    for _ in 0..5 {
        account.deposit(2);
    }
    app.save(&mut account).expect("save");
    app.take_snapshot_at::<Account>(account.id(), 3)
        .expect("snapshot");
    assert_eq!(snapshot_versions(&app, account.id()), [3]);
    let at_four: Account = app.repository().get_at(account.id(), 4).expect("get");
    assert_eq!((at_four.balance, at_four.version()), (6, 4));
    assert!(matches!(
        app.take_snapshot_at::<Account>(account.id(), 7),
        Err(Error::AggregateNotFound {
            version: Some(7),
            ..
        })
    ));
    let plain = memory();
    assert!(matches!(
        plain.take_snapshot_at::<Account>(account.id(), 1),
        Err(Error::SnapshottingDisabled)
    ));
}

/// Records `account`'s next event straight in the store, as another process would.
fn deposit_behind_the_cache(app: &Application, account: &Account, amount: i64) {
    let mut other = account.clone();
    other.deposit(amount);
    let stored: Vec<StoredEvent> = other
        .pending_events()
        .iter()
        .filter(|e| e.originator_version > account.version())
        .map(|e| app.mapper().to_stored_event(e).expect("encode"))
        .collect();
    app.recorder().insert_events(&stored).expect("insert");
}

fn cached(fastforward: bool, maxsize: usize) -> Application {
    Application::builder()
        .in_memory()
        .aggregate_cache(maxsize)
        .aggregate_cache_fastforward(fastforward)
        .build()
        .expect("application")
}

#[test]
fn the_cache_serves_gets_and_fast_forward_reads_what_others_recorded() {
    let app = cached(false, 10);
    let mut account = Account::open("Alice".into(), 1);
    app.save(&mut account).expect("save");
    deposit_behind_the_cache(&app, &account, 5);
    let got: Account = app.repository().get(account.id()).expect("get");
    assert_eq!(
        (got.version(), got.balance),
        (1, 1),
        "served from the cache"
    );
    assert_eq!(
        app.repository()
            .get_at::<Account>(account.id(), 2)
            .expect("get_at")
            .balance,
        6,
        "a version asked for is read from the store"
    );

    let app = cached(true, 10);
    let mut account = Account::open("Bob".into(), 1);
    app.save(&mut account).expect("save");
    deposit_behind_the_cache(&app, &account, 5);
    let got: Account = app.repository().get(account.id()).expect("get");
    assert_eq!((got.version(), got.balance), (2, 6), "fast-forwarded");
    assert_eq!(got.created_on(), account.created_on());
    assert!(got.pending_events().is_empty());
}

#[test]
fn the_least_recently_used_aggregate_leaves_the_cache_first() {
    let app = cached(false, 2);
    let accounts: Vec<Account> = (0..3)
        .map(|i| {
            let mut account = Account::open(format!("{i}"), i);
            app.save(&mut account).expect("save");
            account
        })
        .collect();
    // Saving the third made room by dropping the first; the second stays.
    deposit_behind_the_cache(&app, &accounts[0], 10);
    deposit_behind_the_cache(&app, &accounts[1], 10);
    let second: Account = app.repository().get(accounts[1].id()).expect("get");
    let first: Account = app.repository().get(accounts[0].id()).expect("get");
    assert_eq!(first.balance, 10, "read from the store");
    assert_eq!(second.balance, 1, "still cached");
}

#[test]
fn a_conflict_removes_the_stale_copy_from_the_cache() {
    let app = cached(false, 10);
    let mut account = Account::open("Alice".into(), 0);
    app.save(&mut account).expect("save");
    deposit_behind_the_cache(&app, &account, 7);
    let mut stale: Account = app.repository().get(account.id()).expect("get");
    stale.deposit(1);
    assert!(app.save(&mut stale).is_err_and(|e| e.is_conflict()));
    let fresh: Account = app.repository().get(account.id()).expect("get");
    assert_eq!((fresh.version(), fresh.balance), (2, 7));
}

#[test]
fn the_cache_is_configured_from_the_environment_and_off_by_default() {
    let app = Application::builder()
        .in_memory()
        .environment(env(&[
            ("AGGREGATE_CACHE_MAXSIZE", "3"),
            ("AGGREGATE_CACHE_FASTFORWARD", "no"),
        ]))
        .build()
        .expect("application");
    let shown = format!("{app:?}");
    assert!(
        shown.contains("maxsize: 3") && shown.contains("fastforward: false"),
        "{shown}"
    );
    for vars in [&[][..], &[("AGGREGATE_CACHE_MAXSIZE", " ")][..]] {
        let app = Application::builder()
            .in_memory()
            .environment(env(vars))
            .build()
            .expect("app");
        assert!(format!("{app:?}").contains("cache: None"), "{app:?}");
    }
    let app = Application::builder()
        .in_memory()
        .environment(env(&[("AGGREGATE_CACHE_MAXSIZE", "-1")]))
        .build()
        .expect("application");
    assert!(format!("{app:?}").contains("maxsize: 0"), "{app:?}");
    let app = Application::builder()
        .in_memory()
        .environment(env(&[("AGGREGATE_CACHE_MAXSIZE", "3")]))
        .aggregate_cache(None)
        .build()
        .expect("application");
    assert!(format!("{app:?}").contains("cache: None"), "{app:?}");
    for (variable, value) in [
        ("AGGREGATE_CACHE_MAXSIZE", "many"),
        ("AGGREGATE_CACHE_FASTFORWARD", "maybe"),
    ] {
        let error = Application::builder()
            .in_memory()
            .environment(env(&[("AGGREGATE_CACHE_MAXSIZE", "5"), (variable, value)]))
            .build()
            .expect_err(value);
        assert!(
            matches!(&error, Error::Config { variable: v, .. } if v == variable),
            "{error}"
        );
    }
}

const RACERS: usize = 16;
const SAVES_PER_RACER: u64 = 15;

/// 16 threads get, deposit 1 and save one account, retrying on conflicts:
/// the balance is the number of saves that succeeded, and a get after each
/// save sees at least the version that save recorded.
fn check_racing_writers_through_the_cache(app: Application) {
    let app = Arc::new(app);
    let mut account = Account::open("shared".into(), 0);
    app.save(&mut account).expect("save");
    let id = account.id();
    let barrier = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|_| {
            let (app, barrier, id) = (app.clone(), barrier.clone(), id.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut conflicts = 0;
                for _ in 0..SAVES_PER_RACER {
                    loop {
                        let mut account: Account = app.repository().get(id.clone()).expect("get");
                        account.deposit(1);
                        match app.save(&mut account) {
                            Ok(_) => {
                                let seen: Account = app.repository().get(id.clone()).expect("get");
                                assert!(
                                    seen.version() >= account.version(),
                                    "a get after saving version {} saw version {}",
                                    account.version(),
                                    seen.version()
                                );
                                break;
                            }
                            Err(error) if error.is_conflict() => conflicts += 1,
                            Err(error) => panic!("{error}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let conflicts: usize = racers.into_iter().map(|r| r.join().expect("racer")).sum();
    let saves = RACERS as u64 * SAVES_PER_RACER;
    let got: Account = app.repository().get(id.clone()).expect("get");
    assert_eq!(
        (got.balance, got.version()),
        (saves as i64, saves + 1),
        "{conflicts} conflicts"
    );
    let uncached = app
        .repository()
        .get_at::<Account>(id, saves + 1)
        .expect("get_at");
    assert_eq!(uncached.balance, saves as i64);
}

#[test]
fn racing_writers_through_the_cache_in_memory() {
    check_racing_writers_through_the_cache(cached(true, 4));
}

#[test]
fn racing_writers_through_the_cache_without_fast_forward_in_memory() {
    check_racing_writers_through_the_cache(cached(false, 4));
}

#[test]
fn racing_writers_through_the_cache_on_a_sqlite_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let app = Application::builder()
        .sqlite(dir.path().join("events.sqlite3"))
        .aggregate_cache(4)
        .build()
        .expect("sqlite");
    check_racing_writers_through_the_cache(app);
}

#[test]
fn racing_writers_through_the_cache_without_fast_forward_on_a_sqlite_file() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let app = Application::builder()
        .sqlite(dir.path().join("events.sqlite3"))
        .aggregate_cache(4)
        .aggregate_cache_fastforward(false)
        .build()
        .expect("sqlite");
    check_racing_writers_through_the_cache(app);
}

/// A backend es-core does not know, as a distributed one would plug in: its
/// recorders in memory, its location from its own variable.
#[derive(Debug)]
struct Cluster;

impl es_core::PersistenceFactory for Cluster {
    fn open(
        &self,
        settings: &es_core::FactorySettings<'_>,
    ) -> Result<es_core::OpenedPersistence, Error> {
        let (_, nodes) =
            settings
                .environment
                .get("CLUSTER_NODES")
                .ok_or_else(|| Error::Config {
                    variable: "CLUSTER_NODES".into(),
                    value: String::new(),
                    expected: "the cluster's nodes".into(),
                })?;
        let snapshots = settings.snapshotting.then(|| {
            Arc::new(es_core::persistence::MemoryRecorder::new())
                as Arc<dyn es_core::persistence::AggregateRecorder>
        });
        Ok(es_core::OpenedPersistence {
            persistence: Persistence::Other {
                module: "cluster".into(),
                location: format!("{nodes} as {}", settings.application_name.unwrap_or("-")),
            },
            events: Arc::new(es_core::persistence::MemoryRecorder::new()),
            snapshots,
        })
    }
}

es_core::persistence_module!(["test.cluster", "cluster"], || Box::new(Cluster));

#[test]
fn a_backend_from_outside_es_core_is_chosen_by_persistence_module() {
    let app = Application::builder()
        .name("shop")
        .environment(env(&[
            ("SHOP_PERSISTENCE_MODULE", "Test.Cluster"),
            ("CLUSTER_NODES", "a,b"),
            ("IS_SNAPSHOTTING_ENABLED", "yes"),
        ]))
        .build()
        .expect("application");
    assert_eq!(app.persistence().to_string(), "cluster:a,b as shop");
    assert!(app.is_snapshotting_enabled());
    let mut account = Account::open("Alice".into(), 3);
    app.save(&mut account).expect("save");
    assert_eq!(
        app.repository()
            .get::<Account>(account.id())
            .expect("get")
            .balance,
        3
    );

    let error = Application::builder()
        .environment(env(&[("PERSISTENCE_MODULE", "cluster")]))
        .build()
        .expect_err("the factory's own variable is missing");
    assert!(
        matches!(&error, Error::Config { variable, .. } if variable == "CLUSTER_NODES"),
        "{error}"
    );

    let app = Application::builder()
        .environment(env(&[
            ("PERSISTENCE_MODULE", "memory"),
            ("CLUSTER_NODES", "c"),
        ]))
        .persistence_factory(Cluster)
        .build()
        .expect("application");
    assert_eq!(app.persistence().to_string(), "cluster:c as -");

    let error = Application::builder()
        .persistence(app.persistence().clone())
        .build()
        .expect_err("a description is not a factory");
    assert!(error.to_string().contains("persistence_factory"), "{error}");
}

#[test]
fn the_legacy_factory_variables_are_read_after_persistence_module() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("legacy.sqlite3");
    let path_text = path.to_str().expect("utf-8 path");
    let cases: &[(&[(&str, &str)], Persistence)] = &[
        (
            &[("INFRASTRUCTURE_FACTORY", "eventsourcing.sqlite:Factory")],
            Persistence::Sqlite { path: path.clone() },
        ),
        (
            &[("FACTORY_TOPIC", "eventsourcing.popo:POPOFactory")],
            Persistence::Memory,
        ),
        (
            &[
                ("PERSISTENCE_MODULE", "popo"),
                ("INFRASTRUCTURE_FACTORY", "eventsourcing.sqlite:Factory"),
            ],
            Persistence::Memory,
        ),
        (
            &[
                ("INFRASTRUCTURE_FACTORY", "eventsourcing.popo:Factory"),
                ("FACTORY_TOPIC", "eventsourcing.sqlite:Factory"),
            ],
            Persistence::Memory,
        ),
        (
            &[
                ("PERSISTENCE_MODULE", " "),
                ("INFRASTRUCTURE_FACTORY", "eventsourcing.popo:Factory"),
            ],
            Persistence::Memory,
        ),
        (
            &[("PERSISTENCE_MODULE", "")],
            Persistence::Sqlite { path: path.clone() },
        ),
    ];
    for (vars, expected) in cases {
        let mut vars = vars.to_vec();
        vars.push(("SQLITE_DBNAME", path_text));
        let app = Application::builder()
            .environment(env(&vars))
            .build()
            .expect("application");
        assert_eq!(app.persistence(), expected, "{vars:?}");
    }
    let error = Application::builder()
        .environment(env(&[(
            "INFRASTRUCTURE_FACTORY",
            "eventsourcing.mongo:Factory",
        )]))
        .build()
        .expect_err("unknown");
    assert!(
        matches!(&error, Error::Config { variable, .. } if variable == "INFRASTRUCTURE_FACTORY"),
        "{error}"
    );
}

#[test]
fn sqlite_settings_made_in_code_win_over_the_environment() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let app = Application::builder()
        .environment(env(&[
            ("SQLITE_LOCK_TIMEOUT", "soon"),
            ("SQLITE_SYNCHRONOUS", "OFF"),
        ]))
        .sqlite(dir.path().join("events.sqlite3"))
        .sqlite_lock_timeout(std::time::Duration::from_millis(250))
        .sqlite_synchronous(es_core::persistence::Synchronous::Normal)
        .build()
        .expect("the bad variables are not read");
    assert!(matches!(app.persistence(), Persistence::Sqlite { .. }));
}

#[test]
fn history_decodes_every_event_oldest_first_on_postgres() {
    let Some(config) = pg_support::server("history on PostgreSQL") else {
        return;
    };
    let prefix = pg_support::unique_prefix();
    let _tables = pg_support::DropTables::new(&prefix);
    let app = Application::builder()
        .name(&prefix)
        .postgres(config)
        .build()
        .expect("postgres");
    check_history_decodes_every_event_oldest_first(&app);
}
