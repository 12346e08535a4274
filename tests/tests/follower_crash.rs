//! Exactly once across crashes: a follower process is killed with SIGKILL at
//! random moments while it processes its leader's events, and started again,
//! over and over. In the end every leader event has exactly one receipt, and
//! the follower's position is the leader's last notification.
//!
//! Before each start the leader sells a few more tickets, so that every run
//! has work to be killed in; each run reads pages and records batches of
//! sizes drawn at random. The moments come from `ES_CRASH_SEED` (printed
//! with any failure); `ES_FAULT_SCALE` multiplies the number of kills.

#![cfg(unix)]

#[path = "../bin/box_office.rs"]
mod box_office;

#[path = "pg_support/mod.rs"]
mod pg_support;

mod reliability_log;

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use es_core::persistence::PostgresConfig;
use es_core::prelude::*;

use box_office::{FOLLOWER, LEADER, ReceiptEvent, Ticket};
use pg_support::{DropTables, server};

/// Kills per backend at `ES_FAULT_SCALE=1`.
const KILLS: usize = 30;
const DEFAULT_SEED: u64 = 20_261_207;
/// Tickets sold before each start of the follower.
const SOLD: (u64, u64) = (20, 120);
/// The longest the follower first runs after opening its stores before it
/// is killed (a random time up to it). How long a catch-up takes depends on
/// the disk by orders of magnitude, so the bound then follows the runs: it
/// shrinks after a run the kill missed by coming late (the follower was
/// done) and grows after one it missed by coming early (nothing processed).
const FIRST_MAX_WAIT: Duration = Duration::from_millis(40);
const MIN_MAX_WAIT: Duration = Duration::from_micros(200);
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const POSTGRES_PREFIX: &str = "es_crash_follower";
const FAULT: &str = "SIGKILL of a follower process while it processes its leader's log";
const FAULT_OVER_HTTP: &str = "SIGKILL of a follower process reading its leader's log over \
                               HTTP, and of the log server";

/// A small random number generator (splitmix64), so a seed replays a run.
struct Rng(u64);

impl Rng {
    fn between(&mut self, low: u64, high: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        low + (z ^ (z >> 31)) % (high - low + 1)
    }
}

fn seed() -> u64 {
    std::env::var("ES_CRASH_SEED")
        .ok()
        .and_then(|seed| seed.trim().parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

#[allow(clippy::large_enum_variant)] // One value per test.
enum Follower {
    Sqlite(std::path::PathBuf),
    Postgres(PostgresConfig),
}

impl Follower {
    fn backend(&self) -> &'static str {
        match self {
            Follower::Sqlite(_) => "sqlite",
            Follower::Postgres(_) => "postgres",
        }
    }

    fn args(&self) -> Vec<String> {
        match self {
            Follower::Sqlite(path) => vec!["sqlite".into(), path.display().to_string()],
            Follower::Postgres(_) => {
                vec!["postgres".into(), pg_support::url(), POSTGRES_PREFIX.into()]
            }
        }
    }

    fn open(&self) -> Application {
        let builder = Application::builder().name(FOLLOWER);
        match self {
            Follower::Sqlite(path) => builder.sqlite(path),
            Follower::Postgres(config) => builder.postgres(config.clone()),
        }
        .build()
        .expect("the follower's store opens")
    }
}

#[test]
fn a_sqlite_follower_processes_each_event_once_across_kills() {
    let dir = tempfile::tempdir().expect("temporary directory");
    crash_test(
        dir.path(),
        &Follower::Sqlite(dir.path().join("receipts.sqlite3")),
        Reading::File,
    );
}

#[test]
fn a_follower_over_http_processes_each_event_once_across_kills_of_it_and_its_server() {
    let dir = tempfile::tempdir().expect("temporary directory");
    crash_test(
        dir.path(),
        &Follower::Sqlite(dir.path().join("receipts.sqlite3")),
        Reading::OverHttp,
    );
}

#[test]
fn a_postgres_follower_processes_each_event_once_across_kills() {
    let Some(mut config) = server("a_postgres_follower_processes_each_event_once_across_kills")
    else {
        return;
    };
    // A fixed prefix, so that tables left by an interrupted run are dropped here.
    drop(DropTables::new(POSTGRES_PREFIX));
    let _drop = DropTables::new(POSTGRES_PREFIX);
    config.table_prefix = Some(POSTGRES_PREFIX.into());
    let dir = tempfile::tempdir().expect("temporary directory");
    crash_test(dir.path(), &Follower::Postgres(config), Reading::File);
}

/// How one run of the follower ended.
enum Ended {
    Killed { after_ready: bool },
    Done,
}

/// Where the follower reads the leader's log: its SQLite file, or a log
/// server over HTTP that the test kills and starts again now and then.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    File,
    OverHttp,
}

fn crash_test(dir: &Path, follower: &Follower, reading: Reading) {
    let seed = seed();
    let backend = follower.backend();
    let kills = KILLS * reliability_log::scale();
    let leader_path = dir.join("box_office.sqlite3");
    let server = (reading == Reading::OverHttp)
        .then(|| Arc::new(Mutex::new(LogServer::start(&leader_path))));
    let leader_argument = match &server {
        Some(server) => lock(server).url(),
        None => leader_path.display().to_string(),
    };
    let mut server_restarts = 0;
    let leader = Application::builder()
        .name(LEADER)
        .sqlite(&leader_path)
        .build()
        .expect("leader");
    let mut rng = Rng(seed);
    let (mut sold, mut seat) = (0u64, 0u64);
    let (mut killed_mid_way, mut runs) = (0, 0);
    let mut max_wait = FIRST_MAX_WAIT;
    // The follower's store, as the test sees it between runs.
    let watched = follower.open();
    let position = || {
        watched
            .process_recorder()
            .max_tracking_id(LEADER)
            .expect("position")
            .unwrap_or(0)
    };
    while killed_mid_way < kills {
        runs += 1;
        assert!(
            runs < kills * 10,
            "{backend}, ES_CRASH_SEED={seed}: the kills keep missing"
        );
        let mut tickets: Vec<Ticket> = (0..rng.between(SOLD.0, SOLD.1))
            .map(|_| {
                seat += 1;
                Ticket::sell(seat)
            })
            .collect();
        sold += tickets.len() as u64;
        leader.save(&mut tickets).expect("sell");
        let sizes = (rng.between(1, 50), rng.between(1, 20));
        let wait = Duration::from_micros(rng.between(0, micros(max_wait)));
        let before = position();
        // Every other run, the log server is killed and started again while
        // the follower reads from it.
        let restart = server.as_ref().filter(|_| runs % 2 == 0).map(|server| {
            let (server, pause) = (
                Arc::clone(server),
                Duration::from_micros(rng.between(0, micros(max_wait))),
            );
            std::thread::spawn(move || {
                std::thread::sleep(pause);
                lock(&server).restart();
            })
        });
        let ended = run(&leader_argument, follower, sizes, Some(wait), seed);
        if let Some(restart) = restart {
            restart.join().expect("the server's restart");
            server_restarts += 1;
        }
        let after = position();
        match ended {
            // Counted only if it was killed part of the way through.
            Ended::Killed { after_ready: true } if before < after && after < sold => {
                killed_mid_way += 1;
            }
            Ended::Killed { after_ready: true } if after == before => {
                max_wait = max_wait.mul_f64(1.5);
            }
            _ => max_wait = (max_wait.mul_f64(2.0 / 3.0)).max(MIN_MAX_WAIT),
        }
    }
    // Once more, to the end.
    assert!(matches!(
        run(&leader_argument, follower, (37, 5), None, seed),
        Ended::Done
    ));
    check(
        &follower.open(),
        sold,
        &format!("{backend}, ES_CRASH_SEED={seed}"),
    );
    let (fault, also) = match reading {
        Reading::File => (FAULT, String::new()),
        Reading::OverHttp => (
            FAULT_OVER_HTTP,
            format!("; the log server killed and started again {server_restarts} times"),
        ),
    };
    reliability_log::record(reliability_log::Trial {
        fault,
        backend,
        trials: kills,
        checked: format!(
            "{sold} leader events, each with exactly one derived event; the follower's \
             position at the leader's last id; counted are kills that landed part of the \
             way through a catch-up ({runs} runs in all){also}"
        ),
    });
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The box office's log served by a `log-server` process on a port of its
/// own, which keeps the port when it is started again.
struct LogServer {
    path: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl LogServer {
    fn start(path: &Path) -> Self {
        // A free port, given up for the server to take.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut server = LogServer {
            path: path.to_owned(),
            port,
            child: None,
        };
        server.spawn();
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process and waits until it listens (trying again while
    /// the port is still held by the process killed before it).
    fn spawn(&mut self) {
        for _ in 0..100 {
            let mut child = Command::new(env!("CARGO_BIN_EXE_log-server"))
                .arg(&self.path)
                .arg(self.port.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("starting the log server");
            let mut line = String::new();
            let stdout = child.stdout.take().expect("stdout");
            let _ = BufReader::new(stdout).read_line(&mut line);
            if line.trim() == "listening" {
                self.child = Some(child);
                return;
            }
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the log server did not start on port {}", self.port);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for LogServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// Starts the follower, kills it `kill_after` its stores are open (or lets it
/// finish), and says how it ended.
fn run(
    leader: &str,
    follower: &Follower,
    (page_size, batch_size): (u64, u64),
    kill_after: Option<Duration>,
    seed: u64,
) -> Ended {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-follower"))
        .arg(page_size.to_string())
        .arg(batch_size.to_string())
        .arg(leader)
        .args(follower.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting the follower");
    let (ready_tx, ready_rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    // Reads to the end (the pipe closes when the follower ends), telling
    // the first line as soon as it comes.
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.is_empty() {
                let _ = ready_tx.send(line.clone());
            }
            lines.push(line);
        }
        lines
    });
    let ready = ready_rx.recv_timeout(READY_TIMEOUT).ok();
    if let Some(wait) = kill_after {
        std::thread::sleep(wait);
        let _ = child.kill();
    }
    let status = child.wait().expect("the follower's status");
    let lines = reader.join().expect("the reader");
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    if lines.iter().any(|line| line == "done") {
        return Ended::Done;
    }
    if kill_after.is_none() || !stderr.is_empty() {
        panic!(
            "{}, ES_CRASH_SEED={seed}: the follower failed ({status}): {stderr}",
            follower.backend()
        );
    }
    Ended::Killed {
        after_ready: ready.as_deref() == Some("ready"),
    }
}

/// One receipt per sale, and the follower's position at the last sale.
fn check(follower: &Application, sold: u64, context: &str) {
    let mut receipts: HashMap<u64, usize> = HashMap::new();
    let log = follower
        .recorder()
        .select_notifications(1, usize::MAX >> 1, None, &[])
        .expect("the follower's log");
    for notification in &log {
        let receipt = follower
            .mapper()
            .to_domain_event::<ReceiptEvent>(&notification.event)
            .expect("a receipt");
        let ReceiptEvent::Issued { sale } = receipt.payload;
        *receipts.entry(sale).or_default() += 1;
    }
    let twice: Vec<_> = receipts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{context}: sales with more than one receipt: {twice:?}"
    );
    let missing: Vec<u64> = (1..=sold)
        .filter(|sale| !receipts.contains_key(sale))
        .collect();
    assert!(
        missing.is_empty(),
        "{context}: sales without a receipt: {missing:?}"
    );
    assert_eq!(receipts.len() as u64, sold, "{context}");
    assert_eq!(
        follower
            .process_recorder()
            .max_tracking_id(LEADER)
            .expect("position"),
        Some(sold),
        "{context}"
    );
}
