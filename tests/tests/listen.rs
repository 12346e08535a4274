//! Saves of another process are heard, not polled for: a subscription and
//! the multi-threaded runner in this process learn of tickets sold by a
//! child process within a fraction of a second, on SQLite (data_version)
//! and PostgreSQL (NOTIFY), and a PostgreSQL listener whose session is
//! terminated connects again without missing anything.

#![cfg(unix)]

#[path = "../bin/box_office.rs"]
mod box_office;

#[path = "pg_support/mod.rs"]
mod pg_support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use es_core::persistence::PostgresConfig;
use es_core::prelude::*;
use es_core::system::{MultiThreadedRunner, ProcessApplication, System};

use box_office::{FOLLOWER, LEADER, TicketEvent};
use pg_support::{DropTables, server, unique_prefix};

const TICKETS: u64 = 20;
/// Far longer than any listener takes; a notification this late was found by
/// a subscription's last read at its deadline, not heard.
const PATIENCE: Duration = Duration::from_secs(20);
/// The latest a sale may be heard. Polling that missed it would take
/// `PATIENCE`; the listeners take milliseconds.
const HEARD_WITHIN: Duration = Duration::from_secs(2);

/// Where the box office keeps its events, for this process and the child.
enum Store {
    Sqlite(std::path::PathBuf),
    Postgres(Box<PostgresConfig>, String),
}

impl Store {
    fn open(&self, name: &str) -> Application {
        let builder = Application::builder().name(name);
        match self {
            Store::Sqlite(path) => builder.sqlite(path.with_file_name(format!("{name}.sqlite3"))),
            Store::Postgres(config, prefix) => {
                let mut config = PostgresConfig::clone(config);
                config.table_prefix = Some(format!("{prefix}_{name}"));
                builder.postgres(config)
            }
        }
        .build()
        .expect("the store opens")
    }

    fn args(&self) -> Vec<String> {
        match self {
            Store::Sqlite(path) => vec![
                "sqlite".into(),
                path.with_file_name(format!("{LEADER}.sqlite3"))
                    .display()
                    .to_string(),
            ],
            Store::Postgres(_, prefix) => vec![
                "postgres".into(),
                pg_support::url(),
                format!("{prefix}_{LEADER}"),
            ],
        }
    }
}

/// The child process selling tickets, started and waiting for `go`.
struct Seller {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Seller {
    fn start(store: &Store, count: u64, pause_ms: u64) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sell-tickets"))
            .arg(count.to_string())
            .arg(pause_ms.to_string())
            .args(store.args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the seller");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("the seller's first line");
        assert_eq!(line.trim(), "ready", "the seller did not start");
        Seller { child, stdout }
    }

    fn go(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        writeln!(stdin, "go").expect("telling the seller to go");
    }

    /// Waits for the seller to finish; the last notification id it sold.
    fn finish(mut self) -> u64 {
        let mut last = 0;
        for line in (&mut self.stdout).lines() {
            let line = line.expect("the seller's output");
            if let Some(id) = line.strip_prefix("sold ") {
                last = id.parse().expect("a notification id");
            }
        }
        let status = self.child.wait().expect("the seller's status");
        assert!(status.success(), "the seller failed: {status}");
        last
    }
}

/// A subscription in this process hands out each ticket the child sells,
/// each within `HEARD_WITHIN` of its save.
fn subscription_hears_another_process(store: &Store) {
    let leader = store.open(LEADER);
    let mut subscription = leader.log_subscription(None).expect("subscribe");
    let mut seller = Seller::start(store, TICKETS, 20);
    seller.go();
    let mut latest = Duration::ZERO;
    for expected in 1..=TICKETS {
        let notification = subscription
            .next_within(PATIENCE)
            .expect("next")
            .unwrap_or_else(|| panic!("ticket {expected} never came"));
        let sale = leader
            .mapper()
            .to_domain_event::<TicketEvent>(&notification.event)
            .expect("a sale");
        let late = (es_core::Utc::now() - sale.timestamp)
            .to_std()
            .unwrap_or_default();
        latest = latest.max(late);
        assert_eq!(notification.id, expected);
    }
    assert_eq!(seller.finish(), TICKETS);
    assert!(
        latest < HEARD_WITHIN,
        "a sale was heard {latest:?} after it was saved"
    );
}

/// The multi-threaded runner, polling once an hour, processes the tickets
/// the child sells: only its listener can have woken the follower.
fn runner_hears_another_process(store: &Store) {
    let system = System::builder()
        .application(store.open(LEADER))
        .process(
            ProcessApplication::new(store.open(FOLLOWER), box_office::receipts())
                .expect("follower"),
        )
        .pipe([LEADER, FOLLOWER])
        .build()
        .expect("system");
    let runner = MultiThreadedRunner::start_with_poll_interval(system, Duration::from_secs(3600))
        .expect("runner");
    let mut seller = Seller::start(store, TICKETS, 5);
    seller.go();
    let last = seller.finish();
    runner
        .wait(FOLLOWER, LEADER, last, HEARD_WITHIN)
        .expect("the follower heard every sale");
    runner.stop().expect("stop");
}

fn sqlite_store(dir: &tempfile::TempDir) -> Store {
    Store::Sqlite(dir.path().join("unused"))
}

fn postgres_store(test: &str) -> Option<(Store, Vec<DropTables>)> {
    let config = server(test)?;
    let prefix = unique_prefix();
    let drops = [LEADER, FOLLOWER]
        .into_iter()
        .map(|name| DropTables::new(&format!("{prefix}_{name}")))
        .collect();
    Some((Store::Postgres(Box::new(config), prefix), drops))
}

#[test]
fn a_subscription_hears_another_process_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    subscription_hears_another_process(&sqlite_store(&dir));
}

#[test]
fn a_subscription_hears_another_process_on_postgres() {
    let Some((store, _drop)) = postgres_store("a_subscription_hears_another_process_on_postgres")
    else {
        return;
    };
    subscription_hears_another_process(&store);
}

#[test]
fn the_multi_threaded_runner_hears_another_process_on_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    runner_hears_another_process(&sqlite_store(&dir));
}

#[test]
fn the_multi_threaded_runner_hears_another_process_on_postgres() {
    let Some((store, _drop)) =
        postgres_store("the_multi_threaded_runner_hears_another_process_on_postgres")
    else {
        return;
    };
    runner_hears_another_process(&store);
}

/// The listener's session is terminated by the server between two sales:
/// the subscription connects again and hands out both, the second within
/// `HEARD_WITHIN`.
#[test]
fn a_postgres_listener_whose_session_is_terminated_listens_again() {
    let Some((store, _drop)) =
        postgres_store("a_postgres_listener_whose_session_is_terminated_listens_again")
    else {
        return;
    };
    let Store::Postgres(_, prefix) = &store else {
        unreachable!("a PostgreSQL store")
    };
    let leader = Arc::new(store.open(LEADER));
    let mut subscription = leader.log_subscription(None).expect("subscribe");
    leader
        .save(&mut box_office::Ticket::sell(1))
        .expect("first sale");
    let first = subscription.next_within(PATIENCE).expect("next");
    assert_eq!(first.map(|n| n.id), Some(1));
    let mut admin = postgres::Client::connect(&pg_support::url(), postgres::NoTls).expect("admin");
    let terminated: bool = admin
        .query_one(
            "SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN %' AND query LIKE '%' || $1 || '%'",
            &[&format!("{prefix}_{LEADER}")],
        )
        .expect("terminating the listener's session")
        .get::<_, Option<bool>>(0)
        .unwrap_or(false);
    assert!(
        terminated,
        "the listener's session was found and terminated"
    );
    let started = std::time::Instant::now();
    let saver = {
        let leader = Arc::clone(&leader);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            leader.save(&mut box_office::Ticket::sell(2))
        })
    };
    let second = subscription.next_within(PATIENCE).expect("next");
    saver.join().expect("saver").expect("second sale");
    assert_eq!(second.map(|n| n.id), Some(2));
    assert!(
        started.elapsed() < HEARD_WITHIN,
        "the second sale came {:?} later",
        started.elapsed()
    );
}
