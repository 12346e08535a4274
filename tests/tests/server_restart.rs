//! The PostgreSQL server stopped and started again under a writer: while it is
//! down every call fails with a database error within the connect timeout (no
//! panic, no hang); once it is back the pool recovers by itself; no
//! acknowledged event is lost and none is written twice.
//!
//! It stops the server every other test uses, so it runs only when
//! `ES_FAULT_RESTART_SERVER=1` (set by `.ci/run` and `tests/reliability` where
//! `pg_ctlcluster` can restart the local server), and alone in its binary.

mod pg_support;
mod reliability_log;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use es_core::Error;
use es_core::prelude::*;
use reliability_log::{Trial, record, scale};

#[aggregate]
pub struct Meter {
    reading: u64,
}

#[aggregate]
impl Meter {
    #[event("Installed")]
    pub fn install() -> Self {
        Meter { reading: 0 }
    }

    #[event("Read")]
    pub fn read(&mut self, reading: u64) {
        self.reading = reading;
    }
}

/// The local cluster `pg_ctlcluster` manages, as (version, name).
fn cluster() -> (String, String) {
    let versions = std::fs::read_dir("/etc/postgresql").expect("a Debian PostgreSQL install");
    let version = versions
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .max()
        .expect("a PostgreSQL version");
    (version, "main".into())
}

fn pg_ctl(action: &str) {
    let (version, name) = cluster();
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, &name, action])
        .args(if action == "stop" {
            &["-m", "fast"][..]
        } else {
            &[][..]
        })
        .status()
        .expect("pg_ctlcluster runs");
    assert!(status.success(), "pg_ctlcluster {action} failed");
}

/// Starts the server again however the test ends.
struct Restart;

impl Drop for Restart {
    fn drop(&mut self) {
        let (version, name) = cluster();
        let _ = Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, &name, "start"])
            .status();
    }
}

fn reachable() -> bool {
    postgres::Client::connect(&pg_support::url(), postgres::NoTls).is_ok()
}

#[test]
fn the_server_stopped_and_started_under_a_writer() {
    if std::env::var("ES_FAULT_RESTART_SERVER").as_deref() != Ok("1") {
        eprintln!("SKIPPED: set ES_FAULT_RESTART_SERVER=1 to stop and start the local server");
        return;
    }
    let Some(mut config) = pg_support::server("the_server_stopped_and_started_under_a_writer")
    else {
        return;
    };
    let prefix = pg_support::unique_prefix();
    let _drop = pg_support::DropTables::new(&prefix);
    config.table_prefix = Some(prefix);
    config.pool_size = 3;
    let timeout = Duration::from_secs(2);
    config.connect_timeout = timeout;
    let app = Application::builder()
        .postgres(config)
        .build()
        .expect("app");

    let (mut acknowledged, mut failures) = (Vec::new(), 0);
    let mut meter = Meter::install();
    let save = |meter: &mut Meter, acknowledged: &mut Vec<(OriginatorId, u64)>| {
        let started = Instant::now();
        let outcome = app.save(meter);
        assert!(
            started.elapsed() < timeout + Duration::from_secs(3),
            "a call took {:?} with a connect timeout of {timeout:?}",
            started.elapsed()
        );
        match outcome {
            Ok(recordings) => {
                acknowledged.extend(
                    recordings
                        .iter()
                        .map(|r| (r.event.originator_id.clone(), r.event.originator_version)),
                );
                true
            }
            Err(error) if error.is_conflict() => {
                // A commit whose reply was lost as the server went down, and
                // which could not be looked up then: it was recorded after all.
                *meter = app.repository().get(meter.id()).expect("get");
                false
            }
            Err(error) => {
                assert!(matches!(error, Error::Database { .. }), "{error}");
                false
            }
        }
    };
    let restarts = scale();
    for round in 0..restarts {
        for n in 0..5 {
            meter.read(n);
            assert!(save(&mut meter, &mut acknowledged), "the server is up");
        }
        let _restart = Restart;
        pg_ctl("stop");
        let down = Instant::now();
        while down.elapsed() < Duration::from_secs(3) {
            meter.read(100 + round as u64);
            if !save(&mut meter, &mut acknowledged) {
                failures += 1;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        pg_ctl("start");
        let back = Instant::now();
        while !reachable() {
            assert!(
                back.elapsed() < Duration::from_secs(30),
                "the server did not come back"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Recovered by itself: the pooled connections died with the server.
        meter.read(200 + round as u64);
        assert!(save(&mut meter, &mut acknowledged), "the pool recovered");
    }
    assert!(failures > 0, "no call failed while the server was down");
    let stored: Meter = app.repository().get(meter.id()).expect("get");
    assert_eq!(stored.version(), meter.version());
    let log = app.notification_log().select(1, 100_000).expect("log");
    let logged: HashSet<_> = log
        .iter()
        .map(|n| (n.event.originator_id.clone(), n.event.originator_version))
        .collect();
    assert_eq!(logged.len(), log.len(), "no event twice");
    assert!(
        acknowledged.iter().all(|key| logged.contains(key)),
        "every acknowledged event is there"
    );
    record(Trial {
        fault: "PostgreSQL server stopped for 3 s and started again under a writer",
        backend: "postgres",
        trials: restarts,
        checked: format!(
            "{failures} calls while it was down, each an Error::Database within the connect \
             timeout; {} acknowledged events all present once; the pool recovered by itself",
            acknowledged.len()
        ),
    });
}
