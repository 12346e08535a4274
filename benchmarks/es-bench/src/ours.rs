//! This crate's workloads, written as its users would write them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use es_core::Environment;
use es_core::persistence::{PostgresConfig, SslMode, Synchronous};
use es_core::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Zipf};

use crate::measure::{Record, median_time, rate, timed};
use crate::model::{BankAccount, command, owner};
use crate::sizes::Sizes;

pub const SYSTEM: &str = "es-rs";

/// A store to measure on.
#[derive(Debug, Clone)]
pub enum Backend {
    Memory,
    Sqlite(Synchronous),
    Postgres(String),
    /// NATS JetStream servers, and how many keep each stream.
    Nats {
        urls: String,
        replicas: usize,
    },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Sqlite(Synchronous::Normal) => "sqlite-normal",
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
            Backend::Nats { replicas: 1, .. } => "nats",
            Backend::Nats { .. } => "nats-r3",
        }
    }

    pub fn durability(&self) -> &'static str {
        match self {
            Backend::Memory => "none (in memory)",
            Backend::Sqlite(Synchronous::Normal) => {
                "fsync at checkpoints (WAL, synchronous=NORMAL)"
            }
            Backend::Sqlite(_) => "fsync on (WAL, synchronous=FULL)",
            Backend::Postgres(_) => "server fsync on, synchronous_commit on",
            Backend::Nats { replicas: 1, .. } => crate::nats::DURABILITY_SINGLE,
            Backend::Nats { .. } => crate::nats::DURABILITY_CLUSTER,
        }
    }
}

/// The PostgreSQL schema this crate's runs use, dropped before each run.
const SCHEMA: &str = "es_bench";

/// A fresh, empty application on `backend`; SQLite files go in `dir`.
fn fresh_app(backend: &Backend, dir: &Path, snapshots: Option<u64>) -> Result<Application> {
    fresh_app_with(backend, dir, snapshots, None)
}

/// [`fresh_app`], with an aggregate cache of `cache` aggregates if given.
fn fresh_app_with(
    backend: &Backend,
    dir: &Path,
    snapshots: Option<u64>,
    cache: Option<usize>,
) -> Result<Application> {
    let builder = Application::builder();
    let builder = match backend {
        Backend::Memory => builder.in_memory(),
        Backend::Sqlite(synchronous) => {
            let path = fresh_file(dir);
            builder.sqlite(path).sqlite_synchronous(*synchronous)
        }
        Backend::Postgres(url) => {
            crate::raw::reset_schema(url, SCHEMA)?;
            let mut config = PostgresConfig::from_url(url)?;
            // Every system here talks to the server over loopback in plain
            // text (the raw baseline has no TLS; `run` sets PGSSLMODE=disable
            // for the others), so encryption is no part of any ratio.
            config.ssl_mode = SslMode::Disable;
            config.schema = SCHEMA.into();
            config.table_prefix = Some("bench".into());
            builder.postgres(config)
        }
        // As an operator moves an application there: by the environment
        // alone, on a stream of its own.
        Backend::Nats { urls, replicas } => builder.environment(Environment::from_vars([
            ("PERSISTENCE_MODULE", "nats".to_owned()),
            ("NATS_URL", urls.clone()),
            ("NATS_STREAM", format!("bench_{}", Uuid::new_v4().simple())),
            ("NATS_REPLICAS", replicas.to_string()),
        ])),
    };
    let builder = match snapshots {
        Some(every) => builder.snapshotting_interval::<BankAccount>(every),
        None => builder,
    };
    Ok(builder.aggregate_cache(cache).build()?)
}

fn fresh_file(dir: &Path) -> PathBuf {
    dir.join(format!("{}.sqlite3", Uuid::new_v4()))
}

pub type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// The PostgreSQL schema of the followers' workloads, whose applications
/// have names (and so tables) of their own; the caller resets it.
pub const FOLLOWERS_SCHEMA: &str = "es_bench_followers";

/// An application named `name` on `backend`, for the followers' workloads:
/// a SQLite file of its own in `dir`, or its own tables in [`FOLLOWERS_SCHEMA`].
pub fn named_app(backend: &Backend, dir: &Path, name: &str) -> Result<Application> {
    let builder = Application::builder().name(name);
    let builder = match backend {
        Backend::Memory => builder.in_memory(),
        Backend::Sqlite(synchronous) => builder
            .sqlite(dir.join(format!("{name}.sqlite3")))
            .sqlite_synchronous(*synchronous),
        Backend::Postgres(url) => {
            let mut config = PostgresConfig::from_url(url)?;
            config.ssl_mode = SslMode::Disable;
            config.schema = FOLLOWERS_SCHEMA.into();
            builder.postgres(config)
        }
        Backend::Nats { .. } => return Err("the followers' workloads are not run on NATS".into()),
    };
    Ok(builder.build()?)
}

/// Every workload of this crate on `backend`, `sizes.runs` times.
pub fn run(backend: &Backend, sizes: &Sizes) -> Result<Vec<Record>> {
    let (system, name, durability) = (SYSTEM, backend.name(), backend.durability());
    let mut w1 = Record::new(system, name, "W1", "events/s", durability);
    let mut w2 = Record::new(system, name, "W2", "commands/s", durability);
    let mut w2c = Record::new(system, name, "W2-cache", "commands/s", durability);
    w2c.note = Some("W2 with the aggregate cache on (fast-forward)".into());
    let mut w3 = Record::new(system, name, "W3", "events/s", durability);
    let mut w3s = Record::new(system, name, "W3-snapshots", "ms", durability);
    let mut w4 = Record::new(system, name, "W4", "events/s", durability);
    let mut w5: Vec<Record> = sizes
        .writer_threads
        .iter()
        .map(|threads| {
            Record::new(
                system,
                name,
                &format!("W5-{threads}"),
                "events/s",
                durability,
            )
        })
        .collect();
    let mut zipf = Record::new(system, name, "W5-zipf", "commands/s", durability);
    w3s.note = Some(format!("snapshot every {} events", sizes.snapshot_every));

    for _ in 0..sizes.runs {
        eprintln!("  es-rs on {name}");
        let dir = tempfile::tempdir()?;
        let app = fresh_app(backend, dir.path(), None)?;
        let (ids, elapsed) = timed(|| write_accounts(&app, sizes));
        let ids = ids?;
        w1.runs
            .push(rate(ids.len() * (1 + sizes.commands as usize), elapsed));

        let (cycled, elapsed) = timed(|| command_cycles(&app, &ids, sizes));
        w2.runs.push(rate(cycled?, elapsed));

        let (read, elapsed) = timed(|| read_log(&app, sizes.page));
        w4.runs.push(rate(read?, elapsed));
        drop(app);

        // W2 again on a store W1 made through an application with a cache.
        let app = fresh_app_with(backend, dir.path(), None, Some(sizes.accounts))?;
        let ids = write_accounts(&app, sizes)?;
        let (cycled, elapsed) = timed(|| command_cycles(&app, &ids, sizes));
        w2c.runs.push(rate(cycled?, elapsed));
        drop(app);

        let full = replay(backend, dir.path(), sizes, None)?;
        w3.runs.push(rate(sizes.replay_events as usize, full));
        let snapshotted = replay(backend, dir.path(), sizes, Some(sizes.snapshot_every))?;
        w3s.runs.push(snapshotted.as_secs_f64() * 1e3);

        for (record, &threads) in w5.iter_mut().zip(&sizes.writer_threads) {
            let app = Arc::new(fresh_app(backend, dir.path(), None)?);
            let (latencies, elapsed) = timed(|| concurrent_writers(&app, threads, sizes));
            let latencies = latencies?;
            record.runs.push(rate(latencies.len(), elapsed));
            record.latencies(latencies);
        }

        let app = Arc::new(fresh_app(backend, dir.path(), None)?);
        let (outcome, elapsed) = timed(|| hot_accounts(&app, sizes));
        let (latencies, conflicts) = outcome?;
        zipf.runs.push(rate(latencies.len(), elapsed));
        zipf.latencies(latencies);
        zipf.conflicts.push(conflicts);
    }
    Ok([w1, w2, w2c, w3, w3s, w4]
        .into_iter()
        .chain(w5)
        .chain([zipf])
        .collect())
}

/// W1: each account opened and saved, then commanded and saved, one at a time.
fn write_accounts(app: &Application, sizes: &Sizes) -> Result<Vec<OriginatorId>> {
    let mut ids = Vec::with_capacity(sizes.accounts);
    for i in 0..sizes.accounts {
        let mut account = BankAccount::open(owner(i), 100);
        app.save(&mut account)?;
        for k in 0..sizes.commands {
            let (amount, note) = command(k);
            account.deposit(amount, note);
            app.save(&mut account)?;
        }
        ids.push(account.id());
    }
    Ok(ids)
}

/// W2: get, command, save, for each account in turn, several times over.
fn command_cycles(app: &Application, ids: &[OriginatorId], sizes: &Sizes) -> Result<usize> {
    let repository = app.repository();
    for id in ids {
        for cycle in 0..sizes.cycles {
            let mut account: BankAccount = repository.get(id.clone())?;
            let (amount, note) = command(sizes.commands + cycle);
            account.deposit(amount, note);
            app.save(&mut account)?;
        }
    }
    Ok(ids.len() * sizes.cycles as usize)
}

/// W4: the whole notification log, page by page.
fn read_log(app: &Application, page: usize) -> Result<usize> {
    let log = app.notification_log();
    let (mut start, mut read) = (1, 0);
    loop {
        let notifications = log.select(start, page)?;
        let Some(last) = notifications.last() else {
            return Ok(read);
        };
        read += notifications.len();
        start = last.id + 1;
    }
}

/// Opens an account and gives it `events` events in all, saved in batches of 100.
fn long_account(app: &Application, events: u64) -> Result<OriginatorId> {
    let mut account = BankAccount::open(owner(0), 100);
    for k in 0..events - 1 {
        let (amount, note) = command(k);
        account.deposit(amount, note);
        if account.version().is_multiple_of(100) {
            app.save(&mut account)?;
        }
    }
    app.save(&mut account)?;
    Ok(account.id())
}

/// W3: the median time to load one long account, from its snapshots if given.
fn replay(
    backend: &Backend,
    dir: &Path,
    sizes: &Sizes,
    snapshots: Option<u64>,
) -> Result<Duration> {
    let app = fresh_app(backend, dir, snapshots)?;
    let id = long_account(&app, sizes.replay_events)?;
    let repository = app.repository();
    median_time(sizes.loads, || {
        let account: BankAccount = repository.get(id.clone())?;
        assert_eq!(account.version(), sizes.replay_events);
        Ok(())
    })
}

/// W5: `threads` writers share the saves, each on accounts of its own.
fn concurrent_writers(
    app: &Arc<Application>,
    threads: usize,
    sizes: &Sizes,
) -> Result<Vec<Duration>> {
    let share = sizes.concurrent_saves / threads;
    let writers: Vec<_> = (0..threads)
        .map(|_| {
            let app = Arc::clone(app);
            let commands = sizes.commands;
            std::thread::spawn(move || -> Result<Vec<Duration>> {
                let mut latencies = Vec::with_capacity(share);
                // W1's pattern: open and save, then each command saved.
                for n in 0.. {
                    let mut account = BankAccount::open(owner(n), 100);
                    for k in 0..=commands {
                        if latencies.len() == share {
                            return Ok(latencies);
                        }
                        if k > 0 {
                            let (amount, note) = command(k - 1);
                            account.deposit(amount, note);
                        }
                        let started = Instant::now();
                        app.save(&mut account)?;
                        latencies.push(started.elapsed());
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(sizes.concurrent_saves);
    for writer in writers {
        latencies.extend(writer.join().map_err(|_| "a writer thread panicked")??);
    }
    Ok(latencies)
}

/// W5-zipf: writers on shared hot accounts; a conflict reloads and tries again.
fn hot_accounts(app: &Arc<Application>, sizes: &Sizes) -> Result<(Vec<Duration>, u64)> {
    let mut ids = Vec::with_capacity(sizes.zipf_accounts);
    for i in 0..sizes.zipf_accounts {
        let mut account = BankAccount::open(owner(i), 100);
        app.save(&mut account)?;
        ids.push(account.id());
    }
    let ids = Arc::new(ids);
    let zipf = Zipf::new(sizes.zipf_accounts as f64, 1.0)?;
    let writers: Vec<_> = (0..sizes.zipf_threads)
        .map(|thread| {
            let (app, ids) = (Arc::clone(app), Arc::clone(&ids));
            let commands = sizes.zipf_commands_per_thread;
            std::thread::spawn(move || -> Result<(Vec<Duration>, u64)> {
                let mut rng = StdRng::seed_from_u64(thread as u64);
                let (mut latencies, mut conflicts) = (Vec::with_capacity(commands), 0);
                for k in 0..commands {
                    // Rank 1 is the hottest account.
                    let id = &ids[zipf.sample(&mut rng) as usize - 1];
                    let started = Instant::now();
                    loop {
                        let mut account: BankAccount = app.repository().get(id.clone())?;
                        let (amount, note) = command(k as u64);
                        account.deposit(amount, note);
                        match app.save(&mut account) {
                            Ok(_) => break,
                            Err(error) if error.is_conflict() => conflicts += 1,
                            Err(error) => return Err(error.into()),
                        }
                    }
                    latencies.push(started.elapsed());
                }
                Ok((latencies, conflicts))
            })
        })
        .collect();
    let (mut latencies, mut conflicts) = (Vec::new(), 0);
    for writer in writers {
        let (more, more_conflicts) = writer.join().map_err(|_| "a writer thread panicked")??;
        latencies.extend(more);
        conflicts += more_conflicts;
    }
    Ok((latencies, conflicts))
}
