//! PostgreSQL beyond the conformance suite: the notification-id guarantee under
//! heavier contention, the application on PostgreSQL, tables and schemas,
//! timeouts, and configuration.

#[path = "pg_support/mod.rs"]
mod pg_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use es_core::persistence::{
    AggregateRecorder, ApplicationRecorder, EventQuery, Notification, OriginatorIdType,
    PostgresConfig, PostgresDatabase, PostgresRecorder, StoredEvent,
};
use es_core::prelude::*;
use es_core::{Environment, Persistence};

use pg_support::{DropTables, server, unique_prefix, url};

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

fn event(originator_id: Uuid, version: u64) -> StoredEvent {
    StoredEvent {
        originator_id: originator_id.into(),
        originator_version: version,
        topic: "T".into(),
        state: version.to_be_bytes().to_vec(),
    }
}

/// Writers on several threads commit batches of different sizes while a
/// follower pages through the log: the follower must see every event exactly
/// once, in id order, and never miss one that committed late below an id it had
/// already passed (the sequence-gap problem the table lock exists to prevent).
///
/// The writers use three recorders on one table, as three processes would:
/// saves through one recorder share its transactions, so only across
/// recorders are transactions concurrent, and only there can ids go out of
/// commit order if the lock does not hold them.
#[test]
fn a_follower_never_misses_an_event_under_heavy_contention() {
    const WRITERS: usize = 6;
    const RECORDERS: usize = 3;
    const SAVES: u64 = 60;
    let Some(mut config) = server("a_follower_never_misses_an_event_under_heavy_contention") else {
        return;
    };
    config.pool_size = WRITERS as u32 + 2;
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    let recorders: Vec<Arc<PostgresRecorder>> = (0..RECORDERS)
        .map(|_| {
            let db = PostgresDatabase::open(&config).expect("pool");
            Arc::new(PostgresRecorder::events(db, Some(&prefix), true).expect("recorder"))
        })
        .collect();
    let recorder = recorders[0].clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = Arc::new(AtomicBool::new(false));

    let follower = {
        let (recorder, done) = (recorder.clone(), done.clone());
        thread::spawn(move || {
            let mut seen: Vec<Notification> = Vec::new();
            let mut next = 1;
            loop {
                assert!(Instant::now() < deadline, "the follower ran out of time");
                let finished = done.load(Ordering::SeqCst);
                let page = recorder
                    .select_notifications(next, 50, None, &[])
                    .expect("follow");
                if let Some(last) = page.last() {
                    next = last.id + 1;
                }
                let empty = page.is_empty();
                seen.extend(page);
                if finished && empty {
                    return seen;
                }
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let recorder = recorders[writer % RECORDERS].clone();
            thread::spawn(move || {
                let id = Uuid::new_v4();
                let mut version = 0;
                for save in 0..SAVES {
                    assert!(Instant::now() < deadline, "writer {writer} ran out of time");
                    // Batches of 1 to 4 events: long and short transactions interleave.
                    let size = 1 + (save + writer as u64) % 4;
                    let batch: Vec<StoredEvent> =
                        (1..=size).map(|i| event(id, version + i)).collect();
                    let ids = recorder.insert_events(&batch).expect("insert");
                    assert_eq!(ids.len(), batch.len());
                    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
                    version += size;
                }
                (id, version)
            })
        })
        .collect();
    let written: Vec<(Uuid, u64)> = writers
        .into_iter()
        .map(|w| w.join().expect("writer thread"))
        .collect();
    done.store(true, Ordering::SeqCst);
    let seen = follower.join().expect("follower thread");

    assert!(
        seen.windows(2).all(|w| w[0].id < w[1].id),
        "in id order, no repeats"
    );
    let keys: HashSet<(OriginatorId, u64)> = seen
        .iter()
        .map(|n| (n.event.originator_id.clone(), n.event.originator_version))
        .collect();
    assert_eq!(keys.len(), seen.len(), "each event once");
    let total: u64 = written.iter().map(|(_, version)| version).sum();
    assert_eq!(seen.len() as u64, total, "the follower saw every event");
    let all = recorder
        .select_notifications(1, usize::MAX, None, &[])
        .expect("select");
    assert_eq!(
        seen.iter().map(|n| n.id).collect::<Vec<_>>(),
        all.iter().map(|n| n.id).collect::<Vec<_>>()
    );
    for (id, version) in written {
        let versions: Vec<u64> = seen
            .iter()
            .filter(|n| n.event.originator_id == id)
            .map(|n| n.event.originator_version)
            .collect();
        assert_eq!(versions, (1..=version).collect::<Vec<_>>());
    }
}

/// Sixteen threads save at once, round after round; in every other round half
/// of them race for the same versions of one aggregate. Saves that arrive
/// together share a transaction, yet each conflict undoes only its own save:
/// exactly one racer wins, the others get a conflict and wrote nothing, every
/// other save is stored whole, and each transaction's ids come after those of
/// the transactions before it. Rows written together share an `xmin` (the
/// transaction's, or in a round with a conflict each save's savepoint's).
#[test]
fn racing_saves_share_commits_and_a_conflict_undoes_only_its_own_save() {
    const THREADS: usize = 16;
    const ROUNDS: usize = 8;
    let Some(mut config) = server("racing_saves_share_commits") else {
        return;
    };
    config.pool_size = 4;
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    let db = PostgresDatabase::open(&config).expect("pool");
    let recorder = Arc::new(PostgresRecorder::events(db, Some(&prefix), true).expect("recorder"));
    let barrier = Arc::new(std::sync::Barrier::new(THREADS));
    let contested: Vec<Uuid> = (0..ROUNDS).map(|_| Uuid::new_v4()).collect();
    let threads: Vec<_> = (0..THREADS)
        .map(|n| {
            let (recorder, barrier, contested) =
                (recorder.clone(), barrier.clone(), contested.clone());
            thread::spawn(move || {
                let mut results = Vec::new();
                for (round, contested) in contested.into_iter().enumerate() {
                    let races = round % 2 == 0 && n % 2 == 0;
                    let id = if races { contested } else { Uuid::new_v4() };
                    let save: Vec<StoredEvent> = (1..=2)
                        .map(|version| StoredEvent {
                            state: vec![n as u8, version as u8],
                            ..event(id, version)
                        })
                        .collect();
                    barrier.wait();
                    results.push((save.clone(), recorder.insert_events(&save)));
                }
                results
            })
        })
        .collect();
    let results: Vec<_> = threads
        .into_iter()
        .flat_map(|thread| thread.join().expect("no panic"))
        .collect();

    let mut acknowledged = Vec::new();
    let mut conflicts = 0;
    for (save, result) in &results {
        match result {
            Ok(ids) => {
                assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
                acknowledged.extend(ids.iter().copied().zip(save.iter().cloned()));
            }
            Err(error) => {
                assert!(error.is_conflict(), "{error}");
                conflicts += 1;
            }
        }
    }
    assert_eq!(
        conflicts,
        ROUNDS / 2 * (THREADS / 2 - 1),
        "one winner per race"
    );
    // The log holds exactly the acknowledged saves, whole, under their ids:
    // a conflicting save wrote nothing.
    acknowledged.sort_by_key(|(id, _)| *id);
    let log: Vec<(u64, StoredEvent)> = recorder
        .select_notifications(1, usize::MAX, None, &[])
        .expect("log")
        .into_iter()
        .map(|n| (n.id, n.event))
        .collect();
    assert_eq!(log, acknowledged);

    let mut client = postgres::Client::connect(&url(), postgres::NoTls).expect("connect");
    let rows = client
        .query(
            &format!(
                "SELECT xmin::text::bigint, min(notification_id), max(notification_id) \
                 FROM {prefix}_events GROUP BY 1 ORDER BY 2"
            ),
            &[],
        )
        .expect("transactions");
    let transactions: Vec<(i64, i64)> = rows.iter().map(|row| (row.get(1), row.get(2))).collect();
    assert!(
        transactions.windows(2).all(|w| w[0].1 < w[1].0),
        "the ids of one transaction interleave with another's: {transactions:?}"
    );
    let saves = results.len() - conflicts;
    assert!(
        transactions.len() < saves,
        "{saves} saves took {} transactions: none shared one",
        transactions.len()
    );
}

fn application(config: &PostgresConfig, name: &str) -> Application {
    Application::builder()
        .name(name)
        .postgres(config.clone())
        .snapshotting_interval::<Account>(3)
        .build()
        .expect("application")
}

#[test]
fn the_application_saves_gets_conflicts_and_snapshots_on_postgres() {
    let Some(config) = server("the_application_saves_gets_conflicts_and_snapshots_on_postgres")
    else {
        return;
    };
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    let app = application(&config, &prefix);
    match app.persistence() {
        Persistence::Postgres(used) => assert_eq!(used.table_prefix.as_deref(), Some(&*prefix)),
        other => panic!("{other:?}"),
    }

    let mut account = Account::open("Alice".into(), 10);
    account.deposit(5);
    let recordings = app.save(&mut account).expect("save");
    assert_eq!(
        recordings
            .iter()
            .map(|r| r.notification_id)
            .collect::<Vec<_>>(),
        [1, 2]
    );
    account.deposit(7); // version 3: a snapshot falls due
    app.save(&mut account).expect("save");
    let got: Account = app.repository().get(account.id()).expect("get");
    assert_eq!(got, account);
    assert_eq!(
        app.repository()
            .get_at::<Account>(account.id(), 2)
            .expect("get at")
            .balance,
        15
    );
    let snapshots = app.snapshot_recorder().expect("snapshotting");
    let taken = snapshots
        .select_events(&account.id(), EventQuery::new())
        .expect("select");
    assert_eq!(
        taken
            .iter()
            .map(|s| s.originator_version)
            .collect::<Vec<_>>(),
        [3]
    );
    app.take_snapshot::<Account>(account.id())
        .expect("twice is harmless");

    // A second application on the same tables (as another process would be):
    // the tables exist already, and its stale copy conflicts.
    let other = application(&config, &prefix);
    let mut stale: Account = other.repository().get(account.id()).expect("get");
    account.deposit(1);
    app.save(&mut account).expect("save");
    stale.deposit(2);
    let error = other.save(&mut stale).expect_err("version 4 is taken");
    assert!(
        matches!(&error, Error::Conflict { originator_id, originator_version: 4 } if *originator_id == account.id()),
        "{error}"
    );
    assert_eq!(stale.pending_events().len(), 1, "kept for a retry");
    assert_eq!(
        other
            .repository()
            .get::<Account>(account.id())
            .expect("get")
            .balance,
        23
    );
    assert_eq!(other.notification_log().max_id().expect("max"), Some(4));
}

#[test]
fn a_save_of_several_aggregates_is_all_or_nothing_on_postgres() {
    let Some(config) = server("a_save_of_several_aggregates_is_all_or_nothing_on_postgres") else {
        return;
    };
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    let app = application(&config, &prefix);
    let mut a = Account::open("A".into(), 0);
    let mut b = Account::open("B".into(), 0);
    app.save(&mut [&mut a, &mut b]).expect("save");
    let mut b_elsewhere: Account = app.repository().get(b.id()).expect("get");
    b_elsewhere.deposit(1);
    app.save(&mut b_elsewhere).expect("save");
    a.deposit(10);
    b.deposit(-10);
    let error = app.save(&mut [&mut a, &mut b]).expect_err("b moved on");
    assert!(
        matches!(&error, Error::Conflict { originator_id, originator_version: 2 } if *originator_id == b.id()),
        "{error}"
    );
    assert_eq!(
        app.repository()
            .get::<Account>(a.id())
            .expect("get")
            .version(),
        1
    );
}

#[test]
fn the_environment_alone_configures_postgres_and_names_the_tables() {
    let Some(_) = server("the_environment_alone_configures_postgres_and_names_the_tables") else {
        return;
    };
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    let env = Environment::from_vars([
        ("PERSISTENCE_MODULE", "eventsourcing.postgres".to_owned()),
        ("POSTGRES_URL", url()),
        ("POSTGRES_POOL_SIZE", "2".to_owned()),
        ("POSTGRES_LOCK_TIMEOUT", "5".to_owned()),
        ("IS_SNAPSHOTTING_ENABLED", "yes".to_owned()),
    ]);
    let app = Application::builder()
        .name(&prefix)
        .environment(env)
        .build()
        .expect("application");
    assert!(app.persistence().to_string().starts_with("postgres://"));
    app.save(&mut Account::open("Env".into(), 1)).expect("save");
    let mut client = postgres::Client::connect(&url(), postgres::NoTls).expect("connect");
    let tables: Vec<String> = client
        .query(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE $1 \
             ORDER BY tablename",
            &[&format!("{prefix}%")],
        )
        .expect("query")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        tables,
        [
            format!("{prefix}_events"),
            format!("{prefix}_snapshots"),
            format!("{prefix}_tracking")
        ]
    );
}

#[test]
fn a_schema_of_its_own_is_created_and_used() {
    let Some(mut config) = server("a_schema_of_its_own_is_created_and_used") else {
        return;
    };
    let schema = unique_prefix();
    config.schema = schema.clone();
    config.table_prefix = Some("shop".into());
    let result = std::panic::catch_unwind(|| {
        let app = Application::builder()
            .postgres(config)
            .build()
            .expect("application");
        let mut account = Account::open("Schema".into(), 1);
        app.save(&mut account).expect("save");
        assert_eq!(
            app.recorder()
                .select_events(&account.id(), EventQuery::new())
                .expect("select")
                .len(),
            1
        );
    });
    let mut client = postgres::Client::connect(&url(), postgres::NoTls).expect("connect");
    let found: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = 'shop_events'",
            &[&schema],
        )
        .expect("query")
        .get(0);
    client
        .batch_execute(&format!("DROP SCHEMA \"{schema}\" CASCADE"))
        .expect("drop schema");
    assert!(result.is_ok(), "the application failed in its own schema");
    assert_eq!(found, 1);
}

#[test]
fn without_create_table_a_missing_table_is_a_database_error_naming_it() {
    let Some(mut config) =
        server("without_create_table_a_missing_table_is_a_database_error_naming_it")
    else {
        return;
    };
    let prefix = unique_prefix();
    config.table_prefix = Some(prefix.clone());
    let app = Application::builder()
        .postgres(config)
        .environment(Environment::from_vars([("CREATE_TABLE", "no")]))
        .build()
        .expect("application");
    let error = app
        .save(&mut Account::open("X".into(), 0))
        .expect_err("no table");
    assert!(matches!(error, Error::Database { .. }), "{error}");
    assert!(
        error.to_string().contains(&format!("{prefix}_events")),
        "{error}"
    );
}

#[test]
fn two_processes_creating_the_same_tables_at_once_both_succeed() {
    let Some(config) = server("two_processes_creating_the_same_tables_at_once_both_succeed") else {
        return;
    };
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    let barrier = Arc::new(std::sync::Barrier::new(4));
    let builders: Vec<_> = (0..4)
        .map(|_| {
            let (config, prefix, barrier) = (config.clone(), prefix.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let db = PostgresDatabase::open(&config)?;
                PostgresRecorder::events(db.clone(), Some(&prefix), true)?;
                PostgresRecorder::snapshots(db, Some(&prefix), true).map(|_| ())
            })
        })
        .collect();
    for builder in builders {
        builder.join().expect("thread").expect("tables created");
    }
}

/// Saves that queue while the lock is held fail together at the lock timeout,
/// each with the server's error as its source, as a save alone does, and
/// write nothing.
#[test]
fn a_group_waiting_for_the_table_lock_fails_whole_each_save_with_the_servers_error() {
    let Some(mut config) = server("a_group_waiting_for_the_table_lock_fails_whole") else {
        return;
    };
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    config.lock_timeout = Duration::from_millis(300);
    let db = PostgresDatabase::open(&config).expect("pool");
    let recorder = Arc::new(PostgresRecorder::events(db, Some(&prefix), true).expect("recorder"));
    let mut holder = postgres::Client::connect(&url(), postgres::NoTls).expect("connect");
    let mut transaction = holder.transaction().expect("begin");
    transaction
        .batch_execute(&format!(
            "LOCK TABLE \"public\".\"{prefix}_events\" IN EXCLUSIVE MODE"
        ))
        .expect("lock");
    // The first save waits for the lock alone; the others queue behind it
    // and wait as one group.
    let savers: Vec<_> = (0..6)
        .map(|n| {
            let recorder = recorder.clone();
            thread::spawn(move || {
                thread::sleep(Duration::from_millis(if n == 0 { 0 } else { 100 }));
                recorder.insert_events(&[event(Uuid::new_v4(), 1)])
            })
        })
        .collect();
    for saver in savers {
        let error = saver
            .join()
            .expect("no panic")
            .expect_err("the lock is held");
        let source = std::error::Error::source(&error).expect("the driver's error");
        let db_error = source
            .downcast_ref::<postgres::error::DbError>()
            .unwrap_or_else(|| panic!("the server's error: {error}"));
        assert_eq!(
            db_error.code(),
            &postgres::error::SqlState::LOCK_NOT_AVAILABLE
        );
    }
    transaction.rollback().expect("rollback");
    assert_eq!(recorder.max_notification_id().expect("read"), None);
}

#[test]
fn a_write_waiting_for_the_table_lock_gives_up_at_the_lock_timeout() {
    let Some(mut config) =
        server("a_write_waiting_for_the_table_lock_gives_up_at_the_lock_timeout")
    else {
        return;
    };
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    config.lock_timeout = Duration::from_millis(300);
    let db = PostgresDatabase::open(&config).expect("pool");
    let recorder = PostgresRecorder::events(db, Some(&prefix), true).expect("recorder");
    recorder
        .insert_events(&[event(Uuid::new_v4(), 1)])
        .expect("insert");

    // Another writer holds the lock, as a slow transaction would.
    let mut holder = postgres::Client::connect(&url(), postgres::NoTls).expect("connect");
    let mut transaction = holder.transaction().expect("begin");
    transaction
        .batch_execute(&format!(
            "LOCK TABLE \"public\".\"{prefix}_events\" IN EXCLUSIVE MODE"
        ))
        .expect("lock");

    // Readers are not blocked by it.
    assert_eq!(recorder.max_notification_id().expect("read"), Some(1));
    let started = Instant::now();
    let error = recorder
        .insert_events(&[event(Uuid::new_v4(), 1)])
        .expect_err("the lock is held");
    let waited = started.elapsed();
    assert!(matches!(error, Error::Database { .. }), "{error}");
    assert!(error.to_string().contains("lock timeout"), "{error}");
    let source = std::error::Error::source(&error).expect("the driver's error");
    let db_error = source
        .downcast_ref::<postgres::error::DbError>()
        .expect("the server's error");
    assert_eq!(
        db_error.code(),
        &postgres::error::SqlState::LOCK_NOT_AVAILABLE
    );
    assert!(waited < Duration::from_secs(5), "waited {waited:?}");
    transaction.rollback().expect("rollback");
    recorder
        .insert_events(&[event(Uuid::new_v4(), 1)])
        .expect("the lock is free again");
}

#[test]
fn an_unreachable_server_fails_within_the_connect_timeout_without_the_password() {
    // Needs no server: port 9 on loopback refuses, or drops, connections.
    let mut config = PostgresConfig::new("127.0.0.1", "test", "postgres").with_password("hunter2");
    config.port = 9;
    config.connect_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let error = Application::builder()
        .postgres(config)
        .build()
        .expect_err("nothing listens there");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, Error::Database { .. }), "{error}");
    let message = format!("{error} {error:?}");
    assert!(message.contains("connection"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[test]
fn a_prefix_that_is_not_a_plain_name_is_refused_clearly() {
    let config = PostgresConfig::new("127.0.0.1", "test", "postgres");
    // (An application's name always gives a valid prefix: see postgres_config.rs.)
    for name in ["x; drop table stored_events", "9lives", "dog\"school"] {
        let mut bad = config.clone();
        bad.table_prefix = Some(name.into());
        let error = Application::builder()
            .postgres(bad)
            .build()
            .expect_err(name);
        let message = error.to_string();
        assert!(
            matches!(&error, Error::Config { variable, .. } if variable == "table prefix"),
            "{message}"
        );
        assert!(
            message.contains("letters, digits and underscores"),
            "{message}"
        );
    }
}

/// An aggregate with a text id, as the README shows.
#[aggregate]
#[derive(Debug, Clone)]
pub struct Member {
    name: String,
    visits: u32,
}

#[aggregate]
impl Member {
    #[event("Joined", id = &id)]
    pub fn join(id: OriginatorId, name: String) -> Self {
        let _ = id;
        Member { name, visits: 0 }
    }

    #[event("Visited")]
    pub fn visit(&mut self) {
        self.visits += 1;
    }
}

#[test]
fn originator_id_type_text_keeps_text_ids_from_the_environment_alone() {
    let Some(_) = server("originator_id_type_text_keeps_text_ids_from_the_environment_alone")
    else {
        return;
    };
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    let env = |id_type: &str| {
        Environment::from_vars([
            ("PERSISTENCE_MODULE", "postgres".to_owned()),
            ("POSTGRES_URL", url()),
            ("IS_SNAPSHOTTING_ENABLED", "yes".to_owned()),
            (
                format!("{}_ORIGINATOR_ID_TYPE", prefix.to_uppercase()).as_str(),
                id_type.to_owned(),
            ),
        ])
    };
    let app = Application::builder()
        .name(&prefix)
        .environment(env("text"))
        .build()
        .expect("application");
    let id = OriginatorId::text("member-ada").expect("valid");
    let mut member = Member::join(id.clone(), "Ada".into());
    member.visit();
    app.save(&mut member).expect("save");
    app.take_snapshot::<Member>(&id).expect("snapshot");
    member.visit();
    let mut uuid_account = Account::open("UUIDs too".into(), 1);
    app.save(&mut (&mut member, &mut uuid_account))
        .expect("save both");

    let copy: Member = app.repository().get(&id).expect("get by text");
    assert_eq!(
        (copy.name.as_str(), copy.visits, copy.version()),
        ("Ada", 2, 3)
    );
    let account: Account = app
        .repository()
        .get(uuid_account.id())
        .expect("get by uuid");
    assert_eq!(account.balance, 1);
    let log = app.notification_log().select(1, 10).expect("log");
    assert_eq!(log[0].event.originator_id, "member-ada");
    assert_eq!(log[3].event.originator_id, uuid_account.id());
    let error = app
        .save(&mut Member::join(id.clone(), "Another".into()))
        .expect_err("taken");
    assert!(
        error.is_conflict() && error.to_string().contains("member-ada"),
        "{error}"
    );

    let mut client = postgres::Client::connect(&url(), postgres::NoTls).expect("connect");
    let types: Vec<String> = client
        .query(
            "SELECT data_type FROM information_schema.columns \
             WHERE table_name LIKE $1 AND column_name = 'originator_id'",
            &[&format!("{prefix}%")],
        )
        .expect("query")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(types, ["text", "text"]);

    // The same tables with the other setting: refused by name at startup.
    let error = Application::builder()
        .name(&prefix)
        .environment(env("uuid"))
        .build()
        .map(|_| ())
        .expect_err("a text table is not a uuid one");
    let message = error.to_string();
    assert!(matches!(error, Error::Config { .. }), "{message}");
    assert!(
        message.contains("ORIGINATOR_ID_TYPE") && message.contains("text"),
        "{message}"
    );
}

#[test]
fn a_uuid_store_refuses_text_ids_clearly_and_writes_nothing() {
    let Some(mut config) = server("a_uuid_store_refuses_text_ids_clearly_and_writes_nothing")
    else {
        return;
    };
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    config.table_prefix = Some(prefix.clone());
    assert_eq!(
        config.originator_id_type, None,
        "the default: uuid for new tables"
    );
    let app = Application::builder()
        .postgres(config)
        .build()
        .expect("application");
    let id = OriginatorId::text("member-bob").expect("valid");
    let mut account = Account::open("fine".into(), 1);
    let error = app
        .save(&mut (&mut account, &mut Member::join(id.clone(), "Bob".into())))
        .expect_err("a text id in a uuid table");
    let message = error.to_string();
    assert!(matches!(error, Error::InvalidId { .. }), "{message}");
    assert!(
        message.contains("member-bob")
            && message.contains("ORIGINATOR_ID_TYPE=text")
            && message.contains(&format!("{prefix}_events")),
        "{message}"
    );
    assert_eq!(
        app.notification_log().max_id().expect("log"),
        None,
        "nothing written"
    );
    let error = app
        .repository()
        .get::<Member>(&id)
        .expect_err("no text ids here");
    assert!(
        error.to_string().contains("ORIGINATOR_ID_TYPE=text"),
        "{error}"
    );
    app.save(&mut account).expect("UUID ids still work");
}

#[test]
fn a_stored_text_id_that_is_not_valid_is_an_error_naming_it_not_a_panic() {
    let Some(mut config) =
        server("a_stored_text_id_that_is_not_valid_is_an_error_naming_it_not_a_panic")
    else {
        return;
    };
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    config.originator_id_type = Some(OriginatorIdType::Text);
    let recorder = PostgresRecorder::events(
        PostgresDatabase::open(&config).expect("pool"),
        Some(&prefix),
        true,
    )
    .expect("recorder");
    // A row written by something other than this crate, with an id it would refuse.
    let mut client = postgres::Client::connect(&url(), postgres::NoTls).expect("connect");
    client
        .execute(
            &format!(
                "INSERT INTO {prefix}_events (originator_id, originator_version, topic, state) \
                 VALUES ($1, 1, 'T', '')"
            ),
            &[&"x".repeat(300)],
        )
        .expect("insert");
    let error = recorder
        .select_notifications(1, 10, None, &[])
        .expect_err("a stored id that is too long");
    let message = error.to_string();
    assert!(matches!(error, Error::Corrupt(_)), "{message}");
    assert!(
        message.contains(&format!("{prefix}_events")) && message.contains("255 bytes"),
        "{message}"
    );
}

/// Tables made by hand with a column of another type than es-core creates: a
/// row that does not decode is an `Error::Corrupt` naming the event (id and
/// version as far as they could be read) and the column, never a bare
/// database error.
#[test]
fn a_row_that_does_not_decode_is_corrupt_and_named_never_a_bare_database_error() {
    let Some(config) = server("a_row_that_does_not_decode_is_corrupt_and_named") else {
        return;
    };
    let cases = [
        // (column types, the row's values, what the error names)
        (
            "originator_version bigint, topic text, state text",
            "1, 'T', 'a'",
            "version 1",
            "state",
        ),
        (
            "originator_version bigint, topic bytea, state bytea",
            "1, '\\xfffe41', ''",
            "version 1",
            "topic",
        ),
        (
            "originator_version text, topic text, state bytea",
            "'one', 'T', ''",
            "an event of",
            "originator_version",
        ),
    ];
    let mut client = postgres::Client::connect(&url(), postgres::NoTls).expect("connect");
    for (columns, values, names, column) in cases {
        let prefix = unique_prefix();
        let _drop = DropTables::new(&prefix);
        let id = Uuid::new_v4();
        client
            .batch_execute(&format!(
                "CREATE TABLE {prefix}_events (originator_id uuid NOT NULL, {columns}, \
                 notification_id bigserial NOT NULL UNIQUE); \
                 INSERT INTO {prefix}_events (originator_id, originator_version, topic, state) \
                 VALUES ('{id}', {values})"
            ))
            .expect("a table made by hand");
        let db = PostgresDatabase::open(&config).expect("pool");
        let recorder = PostgresRecorder::events(db, Some(&prefix), false).expect("recorder");
        let error = recorder
            .select_events(&id.into(), EventQuery::new())
            .expect_err("a row that does not decode");
        let message = error.to_string();
        assert!(matches!(error, Error::Corrupt(_)), "{message}");
        assert!(
            message.contains(&id.to_string()) && message.contains(names),
            "{message}"
        );
        assert!(
            message.contains(column) && message.contains(&format!("{prefix}_events")),
            "{message}"
        );
        let error = recorder
            .select_notifications(1, 10, None, &[])
            .expect_err("a row that does not decode");
        let message = error.to_string();
        assert!(matches!(error, Error::Corrupt(_)), "{message}");
        assert!(
            message.contains("notification 1") && message.contains(column),
            "{message}"
        );
    }
}

/// The sync client ends a session by blocking on a runtime of its own, which
/// tokio refuses on a thread driving async tasks: an application (or a
/// subscription's listener) dropped by an async server's task must end its
/// sessions elsewhere rather than panic, or abort the process if the task
/// is already unwinding.
#[test]
fn an_application_on_postgres_can_be_dropped_inside_an_async_runtime() {
    let Some(mut config) =
        server("an_application_on_postgres_can_be_dropped_inside_an_async_runtime")
    else {
        return;
    };
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    config.table_prefix = Some(prefix);
    let app = application(&config, "dropped");
    app.save(&mut Account::open("Alice".into(), 10))
        .expect("a save opens a pooled session");
    let subscription = app.log_subscription(None).expect("a listening session");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        drop(subscription);
        drop(app);
    });
}
