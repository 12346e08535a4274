//! Faults a store must survive without losing or doubling an acknowledged
//! save, and without a panic: sessions terminated under a PostgreSQL writer, a
//! SQLite file locked by another process past the lock timeout, and sixteen
//! threads racing for the same aggregates. Each test records what it tried
//! for RELIABILITY.md (see `reliability_log`).

mod pg_support;
mod reliability_log;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use es_core::prelude::*;
use es_core::{Environment, Error};
use reliability_log::{Trial, record, scale};

#[aggregate]
pub struct Till {
    total: u64,
}

#[aggregate]
impl Till {
    #[event("Opened")]
    pub fn open() -> Self {
        Till { total: 0 }
    }

    #[event("Rung")]
    pub fn ring(&mut self, amount: u64) {
        self.total += amount;
    }
}

/// Every notification of `app`, checked: ids strictly increasing, and no
/// (aggregate, version) twice. Returns them as (id, version) pairs.
fn whole_log(app: &Application) -> Vec<(OriginatorId, u64)> {
    let log = app.notification_log();
    let (mut start, mut last, mut seen) = (1, 0, Vec::new());
    let mut unique = HashSet::new();
    loop {
        let page = log.select(start, 500).expect("the log reads");
        let Some(end) = page.last() else { break };
        start = end.id + 1;
        for notification in page {
            assert!(notification.id > last, "ids strictly increase");
            last = notification.id;
            let key = (
                notification.event.originator_id.clone(),
                notification.event.originator_version,
            );
            assert!(unique.insert(key.clone()), "{key:?} is in the log twice");
            seen.push(key);
        }
    }
    seen
}

/// Sixteen threads on a few shared tills, each command a get, a ring and a
/// save, retried from a fresh get on a conflict. Every failure must be a
/// conflict; the totals must be exactly what was acknowledged.
fn racing_writers(app: Arc<Application>, backend: &str) {
    const THREADS: usize = 16;
    let commands_per_thread = 40 * scale();
    let mut tills = Vec::new();
    for _ in 0..4 {
        let mut till = Till::open();
        app.save(&mut till).expect("open");
        tills.push(till.id());
    }
    let tills = Arc::new(tills);
    let writers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (app, tills) = (app.clone(), tills.clone());
            std::thread::spawn(move || {
                let (mut acknowledged, mut conflicts) = (vec![0u64; tills.len()], 0);
                for n in 0..commands_per_thread {
                    let which = (thread + n) % tills.len();
                    let amount = (thread * 1000 + n) as u64;
                    loop {
                        let mut till: Till =
                            app.repository().get(tills[which].clone()).expect("get");
                        till.ring(amount);
                        match app.save(&mut till) {
                            Ok(_) => break,
                            Err(error) if error.is_conflict() => conflicts += 1,
                            Err(error) => panic!("only conflicts may fail a save here: {error}"),
                        }
                    }
                    acknowledged[which] += amount;
                }
                (acknowledged, conflicts)
            })
        })
        .collect();
    let mut expected = vec![0u64; tills.len()];
    let mut conflicts = 0;
    for writer in writers {
        let (acknowledged, more) = writer.join().expect("no writer panicked");
        for (total, amount) in expected.iter_mut().zip(acknowledged) {
            *total += amount;
        }
        conflicts += more;
    }
    let mut events = 0;
    for (id, total) in tills.iter().zip(&expected) {
        let till: Till = app.repository().get(id.clone()).expect("get");
        assert_eq!(
            till.total, *total,
            "{backend}: the total is what was acknowledged"
        );
        events += till.version() as usize;
    }
    let logged = whole_log(&app);
    assert_eq!(
        logged.len(),
        events,
        "{backend}: each event once in the log"
    );
    assert!(
        conflicts > 0,
        "{backend}: the threads never collided, so nothing was tested"
    );
    record(Trial {
        fault: "16 threads racing for 4 aggregates, conflicts retried by reloading",
        backend,
        trials: THREADS * commands_per_thread,
        checked: format!(
            "{conflicts} conflicts, all reported as Error::Conflict; totals equal the acknowledged \
             commands; the log holds each of {events} events once"
        ),
    });
}

#[test]
fn racing_writers_in_memory() {
    racing_writers(
        Arc::new(Application::builder().in_memory().build().expect("app")),
        "memory",
    );
}

#[test]
fn racing_writers_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let app = Application::builder()
        .sqlite(dir.path().join("race.sqlite3"))
        .build()
        .expect("app");
    racing_writers(Arc::new(app), "sqlite");
}

#[test]
fn racing_writers_on_postgres() {
    let Some(mut config) = pg_support::server("racing_writers_on_postgres") else {
        return;
    };
    let prefix = pg_support::unique_prefix();
    let _drop = pg_support::DropTables::new(&prefix);
    config.table_prefix = Some(prefix);
    config.pool_size = 16;
    let app = Application::builder()
        .postgres(config)
        .build()
        .expect("app");
    racing_writers(Arc::new(app), "postgres");
}

/// Ends every server session that has touched `prefix`'s tables, as an
/// operator's `pg_terminate_backend` or a server restart would.
fn terminate_sessions(prefix: &str) -> u64 {
    let mut client =
        postgres::Client::connect(&pg_support::url(), postgres::NoTls).expect("connect");
    let row = client
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE pid <> pg_backend_pid() AND query LIKE '%' || $1 || '%'",
            &[&prefix],
        )
        .expect("terminate");
    row.get::<_, i64>(0) as u64
}

#[test]
fn sessions_terminated_under_writers_lose_and_double_nothing_and_the_pool_recovers() {
    let Some(mut config) = pg_support::server("sessions_terminated_under_writers") else {
        return;
    };
    let prefix = pg_support::unique_prefix();
    let _drop = pg_support::DropTables::new(&prefix);
    config.table_prefix = Some(prefix.clone());
    config.pool_size = 4;
    config.connect_timeout = Duration::from_secs(5);
    let app = Arc::new(
        Application::builder()
            .postgres(config)
            .build()
            .expect("app"),
    );

    let rounds = 20 * scale();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> =
        (0..4)
            .map(|_| {
                let (app, stop) = (app.clone(), stop.clone());
                std::thread::spawn(move || {
                    let (mut acknowledged, mut errors) = (Vec::new(), Vec::new());
                    let mut till = Till::open();
                    while !stop.load(Ordering::Relaxed) {
                        let started = Instant::now();
                        match app.save(&mut till) {
                            Ok(recordings) => acknowledged.extend(recordings.iter().map(|r| {
                                (r.event.originator_id.clone(), r.event.originator_version)
                            })),
                            Err(error) => {
                                assert!(
                                    matches!(
                                        error,
                                        Error::Database { .. } | Error::OutcomeUnknown { .. }
                                    ),
                                    "a lost session is a database error: {error}"
                                );
                                errors.push(error.to_string());
                                // As a user would: start again from what is stored.
                                till = app
                                    .repository()
                                    .get(till.id())
                                    .unwrap_or_else(|_| Till::open());
                            }
                        }
                        assert!(
                            started.elapsed() < Duration::from_secs(10),
                            "a save took {:?}, past the connect timeout",
                            started.elapsed()
                        );
                        till.ring(1);
                    }
                    (acknowledged, errors)
                })
            })
            .collect();
    let mut terminated = 0;
    for _ in 0..rounds {
        std::thread::sleep(Duration::from_millis(25));
        terminated += terminate_sessions(&prefix);
    }
    stop.store(true, Ordering::Relaxed);
    let (mut acknowledged, mut errors) = (Vec::new(), Vec::new());
    for writer in writers {
        let (more, more_errors) = writer.join().expect("no writer panicked");
        acknowledged.extend(more);
        errors.extend(more_errors);
    }
    assert!(
        terminated > 0,
        "no session was terminated, so nothing was tested"
    );

    // Recovered by itself: the next save and read need no help.
    let mut after = Till::open();
    after.ring(1);
    app.save(&mut after).expect("the pool recovered");
    let logged: HashSet<_> = whole_log(&app).into_iter().collect();
    let missing = acknowledged
        .iter()
        .filter(|key| !logged.contains(key))
        .count();
    assert_eq!(missing, 0, "acknowledged events missing from the log");
    record(Trial {
        fault: "pg_terminate_backend of the sessions of 4 writers, every 25 ms",
        backend: "postgres",
        trials: rounds,
        checked: format!(
            "{terminated} sessions ended; {} acknowledged events all present once; {} saves \
             failed with Error::Database (none with a panic or past the timeout); the next save \
             worked",
            acknowledged.len(),
            errors.len()
        ),
    });
}

const LOCK_PATH: &str = "ES_FAULTS_HOLD_LOCK_PATH";

/// The other process's side: holds SQLite's write lock on the file, says so,
/// and keeps it until its stdin closes. Runs only when started by the test below.
#[test]
fn hold_sqlite_write_lock() {
    let Some(path) = std::env::var_os(LOCK_PATH) else {
        return;
    };
    // Another program's transaction, left open: the store's API never does that.
    let connection = rusqlite::Connection::open(&path).expect("open");
    connection.execute_batch("BEGIN IMMEDIATE").expect("lock");
    println!("locked");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

#[test]
fn a_file_locked_by_another_process_fails_a_save_after_the_timeout_and_then_recovers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("locked.sqlite3");
    let timeout = Duration::from_millis(300);
    let app = Application::builder()
        .sqlite(&path)
        .sqlite_lock_timeout(timeout)
        .build()
        .expect("app");
    let mut before = Till::open();
    app.save(&mut before).expect("unlocked");

    let trials = 3 * scale();
    for _ in 0..trials {
        let mut holder = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "hold_sqlite_write_lock",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(LOCK_PATH, &path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the lock holder starts");
        let mut out = std::io::BufReader::new(holder.stdout.take().expect("stdout"));
        let mut line = String::new();
        while !line.contains("locked") {
            line.clear();
            let read = std::io::BufRead::read_line(&mut out, &mut line).expect("read");
            assert!(read > 0, "the lock holder stopped before it locked");
        }

        let mut till = Till::open();
        let started = Instant::now();
        let error = app.save(&mut till).expect_err("the file is locked");
        let waited = started.elapsed();
        assert!(matches!(error, Error::Database { .. }), "{error}");
        assert!(error.to_string().contains("locked"), "says why: {error}");
        assert!(
            waited >= timeout && waited < timeout + Duration::from_secs(5),
            "waited {waited:?} for a lock timeout of {timeout:?}"
        );
        assert_eq!(till.pending_events().len(), 1, "the save kept its events");

        drop(holder.stdin.take());
        holder.wait().expect("the lock holder ends");
        app.save(&mut till).expect("saved once the lock is gone");
    }
    assert_eq!(
        whole_log(&app).len(),
        1 + trials,
        "each save once, none lost"
    );
    record(Trial {
        fault: "SQLite file write-locked by another process past SQLITE_LOCK_TIMEOUT",
        backend: "sqlite",
        trials,
        checked: "each save failed with Error::Database saying the database is locked, after \
                  the timeout and within 5 s of it; nothing written; the same save succeeded \
                  once the lock was released"
            .into(),
    });
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notes.sqlite3");
    std::fs::write(&path, "these are my notes, not a database\n".repeat(200)).expect("write");
    let error = Application::builder()
        .sqlite(&path)
        .build()
        .expect_err("not a database");
    assert!(matches!(error, Error::Database { .. }), "{error}");
    assert!(error.to_string().contains("not a database"), "{error}");
    assert_eq!(
        std::fs::read_to_string(&path).expect("read").len(),
        "these are my notes, not a database\n".len() * 200,
        "the file was left as it was"
    );
    record(Trial {
        fault: "a file that is not a SQLite database as SQLITE_DBNAME",
        backend: "sqlite",
        trials: 1,
        checked: "Error::Database saying it is not a database; the file left untouched".into(),
    });
}

#[test]
fn a_topic_with_nul_or_invalid_utf8_in_the_store_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("odd.sqlite3");
    let app = Application::builder().sqlite(&path).build().expect("app");
    let mut till = Till::open();
    app.save(&mut till).expect("save");
    let connection = rusqlite::Connection::open(&path).expect("open");
    connection
        .execute_batch(
            "UPDATE stored_events SET topic = 'Till.Opened' || char(0) || 'x' WHERE notification_id = 1;
             INSERT INTO stored_events (originator_id, originator_version, topic, state)
                 VALUES ('a', 1, CAST(x'fffe41' AS TEXT), x'7b7d');",
        )
        .expect("rows another program wrote");
    let Err(error) = app.repository().get::<Till>(till.id()) else {
        panic!("a NUL in the topic was read as the event");
    };
    assert!(
        matches!(
            error,
            Error::UnknownTopic { .. } | Error::UnexpectedEvent { .. }
        ),
        "{error}"
    );
    let error = app
        .notification_log()
        .select(2, 10)
        .expect_err("invalid UTF-8 in the topic");
    assert!(
        matches!(error, Error::Corrupt(_)) && error.to_string().contains("notification 2"),
        "{error}"
    );
    record(Trial {
        fault: "stored topics with NUL and with invalid UTF-8",
        backend: "sqlite",
        trials: 2,
        checked: "an unknown-topic error and a corrupt-data error naming the row; no panic".into(),
    });
}

#[test]
fn bad_configuration_values_are_errors_naming_the_variable() {
    let cases: &[(&str, &str)] = &[
        ("PERSISTENCE_MODULE", "mongodb"),
        ("SQLITE_LOCK_TIMEOUT", "-1"),
        ("SQLITE_LOCK_TIMEOUT", "soon"),
        ("SQLITE_SYNCHRONOUS", "OFF"),
        ("IS_SNAPSHOTTING_ENABLED", "perhaps"),
        ("CREATE_TABLE", "2"),
        ("TRANSCODER", "yaml"),
        ("COMPRESSOR_TOPIC", "lz4"),
        ("CIPHER_KEY", "c2hvcnQ="),
        ("CIPHER_KEY", "not base64!"),
        ("MAX_EVENT_SIZE", "-5"),
        ("MAX_EVENT_SIZE", "1e9"),
        ("POSTGRES_PORT", "70000"),
        ("POSTGRES_POOL_SIZE", "-1"),
        ("POSTGRES_SCHEMA", "public; DROP TABLE x"),
        ("ORIGINATOR_ID_TYPE", "varchar"),
    ];
    for (variable, value) in cases {
        let mut vars = vec![("SQLITE_DBNAME", ":memory:"), (*variable, *value)];
        if variable.starts_with("POSTGRES") || *variable == "ORIGINATOR_ID_TYPE" {
            vars.extend([
                ("PERSISTENCE_MODULE", "postgres"),
                ("POSTGRES_DBNAME", "test"),
                ("POSTGRES_HOST", "127.0.0.1"),
                ("POSTGRES_USER", "postgres"),
            ]);
        }
        let error = Application::builder()
            .environment(Environment::from_vars(vars))
            .build()
            .expect_err(variable);
        let message = error.to_string();
        assert!(
            matches!(error, Error::Config { .. }),
            "{variable}={value}: {message}"
        );
        assert!(message.contains(variable), "{variable}={value}: {message}");
        if *variable == "CIPHER_KEY" {
            assert!(
                !message.contains(value),
                "the key is not repeated: {message}"
            );
        }
    }
    record(Trial {
        fault: "malformed, negative, unknown or injected configuration values",
        backend: "any",
        trials: cases.len(),
        checked: "each an Error::Config naming the variable and what it accepts; a cipher key is \
                  never repeated in the error"
            .into(),
    });
}

#[test]
fn secrets_never_show_in_debug_output() {
    let key = es_core::persistence::Cipher::create_key().expect("key");
    let env = Environment::from_vars([
        ("PERSISTENCE_MODULE", "postgres"),
        ("POSTGRES_DBNAME", "test"),
        ("POSTGRES_HOST", "127.0.0.1"),
        ("POSTGRES_USER", "postgres"),
        ("POSTGRES_PASSWORD", "hunter2-very-secret"),
        ("CIPHER_KEY", key.as_str()),
    ]);
    let shown = format!("{env:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains(key.as_str()),
        "{shown}"
    );
    let app = Application::builder()
        .in_memory()
        .environment(env)
        .build()
        .expect("app");
    let shown = format!("{app:?} {:?}", app.mapper());
    assert!(
        !shown.contains("hunter2") && !shown.contains(key.as_str()),
        "{shown}"
    );
    record(Trial {
        fault: "Debug output of the environment, application and mapper holding a password and a cipher key",
        backend: "any",
        trials: 3,
        checked: "neither secret appears".into(),
    });
}
