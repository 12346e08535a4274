//! Crash safety: a process saving aggregates from several threads is killed
//! with SIGKILL at random moments, again and again on the same store, and after
//! each kill the store must open, hold every save the process had seen succeed,
//! in full, hold no save in part, keep its notification ids strictly increasing,
//! and take the next save.
//!
//! The moments are drawn from a seed: `ES_CRASH_SEED` (default below), printed
//! with every failure. The writer's threads race, so a replay repeats the kill
//! times and save sizes, not the exact interleaving. `ES_FAULT_SCALE` multiplies
//! the number of kills.

#![cfg(unix)]

#[path = "../bin/ticker.rs"]
mod ticker;

#[path = "pg_support/mod.rs"]
mod pg_support;

mod reliability_log;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, BufRead as _, BufReader, Read};
use std::os::unix::process::ExitStatusExt as _;
use std::path::PathBuf;
use std::process::{ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use es_core::persistence::{Notification, PostgresConfig};
use es_core::prelude::*;

use pg_support::{DropTables, server};
use ticker::{Partner, Rng, Ticker, TickerEvent};

/// Kills per backend at `ES_FAULT_SCALE=1`.
const KILLS: usize = 50;
/// The writer's threads.
const THREADS: u32 = 4;
const DEFAULT_SEED: u64 = 20_261_123;
/// How long the writer runs before it is killed, in milliseconds: counted from
/// when the store is open, so that a loaded machine, slow to start a process,
/// still sees the kills land among the saves.
const WAIT_MS: (u64, u64) = (5, 80);
/// One kill in `FROM_START` comes instead `FROM_START_MS` after the writer's
/// start, to hit it while it opens (or, the first time, creates) the store.
const FROM_START: u64 = 5;
const FROM_START_MS: (u64, u64) = (0, 15);
/// The longest a writer may take to open the store.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const SIGKILL: i32 = 9;
const POSTGRES_PREFIX: &str = "es_crash_test";
const FAULT: &str = "SIGKILL of a process saving from 4 threads";

#[test]
fn sqlite_keeps_every_acknowledged_save_across_kills() {
    let dir = tempfile::tempdir().expect("temporary directory");
    crash_test(&Store::Sqlite(dir.path().join("crash.sqlite3")));
}

#[test]
fn postgres_keeps_every_acknowledged_save_across_kills() {
    let Some(mut config) = server("postgres_keeps_every_acknowledged_save_across_kills") else {
        return;
    };
    // A fixed prefix, so that tables left by an interrupted run are dropped here.
    drop(DropTables::new(POSTGRES_PREFIX));
    let _drop = DropTables::new(POSTGRES_PREFIX);
    config.table_prefix = Some(POSTGRES_PREFIX.into());
    crash_test(&Store::Postgres(config));
}

#[allow(clippy::large_enum_variant)] // One value per test.
enum Store {
    Sqlite(PathBuf),
    Postgres(PostgresConfig),
}

impl Store {
    fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// The writer's arguments after the seed and thread count.
    fn args(&self) -> Vec<String> {
        match self {
            Store::Sqlite(path) => vec!["sqlite".into(), path.display().to_string()],
            Store::Postgres(_) => {
                vec!["postgres".into(), pg_support::url(), POSTGRES_PREFIX.into()]
            }
        }
    }

    fn open(&self) -> Result<Application, Error> {
        match self {
            Store::Sqlite(path) => Application::builder().sqlite(path).build(),
            Store::Postgres(config) => Application::builder().postgres(config.clone()).build(),
        }
    }
}

fn seed() -> u64 {
    match std::env::var("ES_CRASH_SEED") {
        Ok(seed) => seed
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("ES_CRASH_SEED={seed} is not a number")),
        Err(_) => DEFAULT_SEED,
    }
}

/// Where a failure happened, for every assertion message: enough to replay it.
#[derive(Clone, Copy)]
struct Context {
    backend: &'static str,
    seed: u64,
    kill: usize,
    kills: usize,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} with ES_CRASH_SEED={}, kill {} of {}",
            self.backend, self.seed, self.kill, self.kills
        )
    }
}

/// A saved event as `save` reported it: to the writer's stdout, or to the test.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ack {
    notification_id: u64,
    originator_id: String,
    version: u64,
    save: u64,
    part: u32,
    of: u32,
}

impl Ack {
    fn parse(line: &str) -> Option<Ack> {
        let mut words = line.strip_prefix("ack ")?.split(' ');
        let ack = Ack {
            notification_id: words.next()?.parse().ok()?,
            originator_id: words.next()?.to_owned(),
            version: words.next()?.parse().ok()?,
            save: words.next()?.parse().ok()?,
            part: words.next()?.parse().ok()?,
            of: words.next()?.parse().ok()?,
        };
        words.next().is_none().then_some(ack)
    }
}

/// What one writer process printed before it was killed.
struct Run {
    ready: bool,
    acks: Vec<Ack>,
    cut_line: bool,
}

/// Starts the writer on `store`, kills it `wait` after its start (or after the
/// store is open, unless `from_start`), and reads what it acknowledged.
fn kill_writer(
    store: &Store,
    writer_seed: u64,
    from_start: bool,
    wait: Duration,
    context: Context,
) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .arg(writer_seed.to_string())
        .arg(THREADS.to_string())
        .args(store.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("{context}: starting the writer: {error}"));
    let (ready, is_ready) = mpsc::channel();
    let stdout = read_stdout(child.stdout.take(), ready);
    let stderr = read_to_end(child.stderr.take());
    if !from_start {
        match is_ready.recv_timeout(READY_TIMEOUT) {
            // Disconnected: the writer's stdout closed, so it has ended, and
            // its status says why below.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {}
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("{context}: the writer did not open the store in {READY_TIMEOUT:?}");
            }
        }
    }
    thread::sleep(wait);
    child
        .kill()
        .unwrap_or_else(|error| panic!("{context}: killing the writer: {error}"));
    let status = child
        .wait()
        .unwrap_or_else(|error| panic!("{context}: waiting for the writer: {error}"));
    let stdout = stdout
        .join()
        .expect("the stdout reader")
        .unwrap_or_else(|error| panic!("{context}: reading the writer's stdout: {error}"));
    let stderr = stderr
        .join()
        .expect("the stderr reader")
        .unwrap_or_else(|error| panic!("{context}: reading the writer's stderr: {error}"));
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "{context}: the writer ended by itself ({status}) before it was killed:\n{stderr}"
    );
    assert!(
        stderr.is_empty(),
        "{context}: the writer wrote to stderr (a panic or an error):\n{stderr}"
    );

    // The last line is whole only if it ends in a newline; a kill mid-write
    // leaves the rest unwritten, and that save is simply not acknowledged.
    let whole = stdout
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |end| end + 1);
    let text = std::str::from_utf8(&stdout[..whole])
        .unwrap_or_else(|error| panic!("{context}: the writer's output is not UTF-8: {error}"));
    let mut run = Run {
        ready: false,
        acks: Vec::new(),
        cut_line: whole < stdout.len(),
    };
    for line in text.lines() {
        if line == "ready" {
            run.ready = true;
        } else {
            let ack = Ack::parse(line)
                .unwrap_or_else(|| panic!("{context}: the writer printed {line:?}"));
            run.acks.push(ack);
        }
    }
    run
}

/// Reads the writer's stdout to its end, and says when the store is open.
fn read_stdout(
    pipe: Option<ChildStdout>,
    ready: mpsc::Sender<()>,
) -> thread::JoinHandle<io::Result<Vec<u8>>> {
    let mut pipe = BufReader::new(pipe.expect("a piped stdout"));
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut ready = Some(ready);
        loop {
            let start = bytes.len();
            if pipe.read_until(b'\n', &mut bytes)? == 0 {
                break;
            }
            if bytes[start..] == *b"ready\n"
                && let Some(ready) = ready.take()
            {
                let _ = ready.send(());
            }
        }
        Ok(bytes)
    })
}

fn read_to_end(
    pipe: Option<impl Read + Send + 'static>,
) -> thread::JoinHandle<io::Result<Vec<u8>>> {
    let mut pipe = pipe.expect("a piped stream");
    thread::spawn(move || {
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes)?;
        Ok(bytes)
    })
}

/// A save: its aggregate's id and its number among the aggregate's saves.
type SaveOf = (String, u64);

/// Where an aggregate stands in the log: its last version, and the save that
/// version belongs to.
struct AggregateState {
    version: u64,
    save: u64,
    part: u32,
    of: u32,
    partner: Partner,
}

/// Everything verified so far. Each check reads the whole log again: what was
/// verified before must come back unchanged, byte for byte and id for id, and
/// only what follows is decoded and checked event by event.
#[derive(Default)]
struct Verified {
    notifications: Vec<Notification>,
    /// Per notification: `(save, part, of)`.
    places: Vec<(u64, u32, u32)>,
    index: HashMap<u64, usize>,
    by_version: HashMap<(OriginatorId, u64), u64>,
    aggregates: HashMap<OriginatorId, AggregateState>,
    /// Each save made together with another aggregate: (id, save) → the other's (id, save).
    pairs: HashMap<SaveOf, SaveOf>,
}

impl Verified {
    /// Checks the whole log, then every acknowledgement in `acks`. Returns how
    /// many of the events new to the log no acknowledgement named.
    fn check(&mut self, app: &Application, acks: &[Ack], context: Context) -> usize {
        const PAGE: usize = 1000;
        let before = self.notifications.len();
        let mut position = 0;
        let mut last_id = 0;
        let mut new_pairs = Vec::new();
        loop {
            let page = app
                .notification_log()
                .select(last_id + 1, PAGE)
                .unwrap_or_else(|error| {
                    panic!("{context}: reading the log after id {last_id}: {error}")
                });
            if page.is_empty() {
                break;
            }
            for notification in page {
                assert!(
                    notification.id > last_id,
                    "{context}: notification id {} follows {last_id}",
                    notification.id
                );
                last_id = notification.id;
                if position < before {
                    let known = &self.notifications[position];
                    assert!(
                        notification == *known,
                        "{context}: the log changed at position {position}: \
                         {known:?} became {notification:?}"
                    );
                } else {
                    self.add(app, notification, &mut new_pairs, context);
                }
                position += 1;
            }
        }
        assert!(
            position >= before,
            "{context}: the log shrank from {before} events to {position}"
        );

        for (id, state) in &self.aggregates {
            assert!(
                state.part == state.of,
                "{context}: save {} of {id} is present in part: {} of its {} events \
                 (up to version {})",
                state.save,
                state.part,
                state.of,
                state.version
            );
        }
        for (this, other) in new_pairs {
            assert_eq!(
                self.pairs.get(&other),
                Some(&this),
                "{context}: save {} of {} was saved together with save {} of {}, \
                 which is not present whole with it",
                this.1,
                this.0,
                other.1,
                other.0
            );
        }

        for ack in acks {
            self.check_ack(ack, context);
        }
        let acknowledged: HashSet<u64> = acks.iter().map(|ack| ack.notification_id).collect();
        self.notifications[before..]
            .iter()
            .filter(|notification| !acknowledged.contains(&notification.id))
            .count()
    }

    /// Checks one event new to the log against what its aggregate holds already.
    fn add(
        &mut self,
        app: &Application,
        notification: Notification,
        new_pairs: &mut Vec<(SaveOf, SaveOf)>,
        context: Context,
    ) {
        let event: DomainEvent<TickerEvent> = app
            .mapper()
            .to_domain_event(&notification.event)
            .unwrap_or_else(|error| {
                panic!(
                    "{context}: notification {} does not decode: {error}",
                    notification.id
                )
            });
        let (save, part, of, partner, created) = ticker::place(&event.payload);
        let id = event.originator_id.clone();
        let version = event.originator_version;
        let at = format!(
            "{context}: notification {} ({id} v{version})",
            notification.id
        );
        assert!(
            (1..=of).contains(&part),
            "{at}: part {part} of {of} is not a part"
        );
        match self.aggregates.get_mut(&id) {
            None => {
                assert!(
                    version == 1 && created && save == 1 && part == 1,
                    "{at}: the first event of an aggregate is not its creation \
                     (save {save}, part {part})"
                );
                self.aggregates.insert(
                    id.clone(),
                    AggregateState {
                        version,
                        save,
                        part,
                        of,
                        partner: partner.clone(),
                    },
                );
            }
            Some(state) => {
                assert_eq!(
                    version,
                    state.version + 1,
                    "{at}: the aggregate's versions jump from {}",
                    state.version
                );
                assert!(!created, "{at}: a creation event after version 1");
                if state.part == state.of {
                    assert!(
                        save == state.save + 1 && part == 1,
                        "{at}: save {} ended, then comes part {part} of save {save}",
                        state.save
                    );
                } else {
                    assert!(
                        save == state.save
                            && part == state.part + 1
                            && of == state.of
                            && *partner == state.partner,
                        "{at}: part {} of {} of save {} ({:?}) is followed by part \
                         {part} of {of} of save {save} ({partner:?})",
                        state.part,
                        state.of,
                        state.save,
                        state.partner
                    );
                }
                *state = AggregateState {
                    version,
                    save,
                    part,
                    of,
                    partner: partner.clone(),
                };
            }
        }
        if part == of
            && let Some(other) = partner
        {
            let this = (id.to_string(), save);
            self.pairs.insert(this.clone(), other.clone());
            new_pairs.push((this, other.clone()));
        }
        self.index.insert(notification.id, self.notifications.len());
        self.by_version.insert((id, version), notification.id);
        self.places.push((save, part, of));
        self.notifications.push(notification);
    }

    fn check_ack(&self, ack: &Ack, context: Context) {
        let at = ack
            .originator_id
            .parse::<OriginatorId>()
            .ok()
            .and_then(|id| self.by_version.get(&(id, ack.version)));
        let holder = match self.index.get(&ack.notification_id) {
            Some(&position) => {
                let event = &self.notifications[position].event;
                let (save, part, of) = self.places[position];
                format!(
                    "{} v{} (save {save}, part {part} of {of})",
                    event.originator_id, event.originator_version
                )
            }
            None => "not in the log".into(),
        };
        let Some(&at) = at else {
            panic!(
                "{context}: an acknowledged event is lost: {ack:?} is not in the log; \
                 notification {} is {holder}",
                ack.notification_id
            );
        };
        assert_eq!(
            at, ack.notification_id,
            "{context}: the acknowledged {ack:?} is at notification {at}, not at the id \
             its save returned, which is {holder}"
        );
        let (save, part, of) = self.places[self.index[&at]];
        assert_eq!(
            (save, part, of),
            (ack.save, ack.part, ack.of),
            "{context}: the acknowledged {ack:?} is stored as {holder}"
        );
    }
}

/// Saves a new aggregate and one more save of the aggregate last written, as
/// acknowledgements for the next check.
fn next_saves(app: &Application, verified: &Verified, rng: &mut Rng, context: Context) -> Vec<Ack> {
    let mut acks = Vec::new();
    let last_id = verified.notifications.last().map_or(0, |last| last.id);
    let mut record = |recordings: Vec<Recording>, what: &str| {
        for recording in recordings {
            let event = recording
                .event
                .downcast_ref::<TickerEvent>()
                .unwrap_or_else(|| panic!("{context}: {what} saved an event not a Ticker's"));
            let (save, part, of, _, _) = ticker::place(event);
            assert!(
                recording.notification_id > last_id,
                "{context}: {what} got notification id {} after {last_id}",
                recording.notification_id
            );
            acks.push(Ack {
                notification_id: recording.notification_id,
                originator_id: recording.event.originator_id.to_string(),
                version: recording.event.originator_version,
                save,
                part,
                of,
            });
        }
    };

    let mut fresh = Ticker::first_save(
        OriginatorId::from(Uuid::new_v4()),
        rng.between(1, 5) as u32,
        None,
    );
    let saved = app
        .save(&mut fresh)
        .unwrap_or_else(|error| panic!("{context}: the next save of a new aggregate: {error}"));
    record(saved, "the next save of a new aggregate");

    if let Some(last) = verified.notifications.last() {
        let id = &last.event.originator_id;
        let mut ticker: Ticker = app
            .repository()
            .get(id)
            .unwrap_or_else(|error| panic!("{context}: getting {id}, written last: {error}"));
        let logged = verified.aggregates.get(id).map(|state| state.save);
        assert_eq!(
            Some(ticker.next_save_number()),
            logged.map(|save| save + 1),
            "{context}: {id}, replayed, is not at the save the log shows"
        );
        ticker.next_save(rng.between(1, 5) as u32, None);
        let saved = app.save(&mut ticker).unwrap_or_else(|error| {
            panic!("{context}: the next save of {id}, written last: {error}")
        });
        record(saved, "the next save of the aggregate written last");
    }
    acks
}

fn crash_test(store: &Store) {
    let started = Instant::now();
    let seed = seed();
    let kills = KILLS * reliability_log::scale();
    let backend = store.backend();
    let mut rng = Rng(seed);
    let mut verified = Verified::default();
    let mut own_acks: Vec<Ack> = Vec::new();
    let (mut acknowledged, mut own_saves) = (0, 0);
    let (mut before_ready, mut before_ack, mut after_ack) = (0, 0, 0);
    let (mut with_unacknowledged, mut cut_lines) = (0, 0);
    println!("{backend}: ES_CRASH_SEED={seed}, {kills} kills");

    for kill in 1..=kills {
        let context = Context {
            backend,
            seed,
            kill,
            kills,
        };
        let writer_seed = rng.next();
        let from_start = rng.between(1, FROM_START) == 1;
        let (low, high) = if from_start { FROM_START_MS } else { WAIT_MS };
        let wait = Duration::from_millis(rng.between(low, high));
        let run = kill_writer(store, writer_seed, from_start, wait, context);
        match (run.ready, run.acks.is_empty()) {
            (false, _) => before_ready += 1,
            (true, true) => before_ack += 1,
            (true, false) => after_ack += 1,
        }
        cut_lines += usize::from(run.cut_line);
        acknowledged += run.acks.len();

        let app = store
            .open()
            .unwrap_or_else(|error| panic!("{context}: the store does not open: {error}"));
        let mut acks = std::mem::take(&mut own_acks);
        acks.extend(run.acks);
        if verified.check(&app, &acks, context) > 0 {
            with_unacknowledged += 1;
        }
        own_acks = next_saves(&app, &verified, &mut rng, context);
        own_saves += own_acks.len();
    }
    let context = Context {
        backend,
        seed,
        kill: kills,
        kills,
    };
    let app = store
        .open()
        .unwrap_or_else(|error| panic!("{context}: the store does not open: {error}"));
    verified.check(&app, &own_acks, context);

    println!(
        "{backend}: {kills} kills in {:.1?}: {before_ready} before the store was open, \
         {before_ack} before the first acknowledgement, {after_ack} after some; \
         {with_unacknowledged} left saves committed but not acknowledged, \
         {cut_lines} cut an acknowledgement line",
        started.elapsed()
    );
    println!(
        "{backend}: {acknowledged} acknowledged events checked present in full \
         ({own_saves} more saved by the checks), {} events in the log, {} aggregates",
        verified.notifications.len(),
        verified.aggregates.len()
    );
    assert!(
        after_ack * 2 >= kills,
        "{backend} with ES_CRASH_SEED={seed}: only {after_ack} of {kills} kills came after \
         a save was acknowledged, too few to test saving"
    );
    reliability_log::record(reliability_log::Trial {
        fault: FAULT,
        backend,
        trials: kills,
        checked: format!(
            "{acknowledged} acknowledged events present in full; no partial save; \
             ids strictly increasing; next save works"
        ),
    });
}
