//! Raw baselines: the same rows written and read with no framework at all, by
//! direct rusqlite and postgres calls, and a map in memory. They mark the limit
//! of this machine for each workload.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};
use uuid::Uuid;

use crate::measure::{Record, median_time, rate, timed};
use crate::model::{DEPOSITED, OPENED, encode_deposited, encode_opened, replay_raw};
use crate::sizes::Sizes;

pub const SYSTEM: &str = "raw";

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// One save of a raw store: rows of one account, in one transaction.
pub(crate) trait RawStore: Send + Sync {
    fn insert(&self, id: Uuid, first_version: u64, rows: &[(&str, Vec<u8>)]) -> Result<()>;
    /// The account's (topic, state) rows in version order.
    fn select(&self, id: Uuid) -> Result<Vec<(String, Vec<u8>)>>;
    /// Up to `limit` rows of the log from notification id `start`; returns the
    /// number read and the last id.
    fn page(&self, start: i64, limit: usize) -> Result<(usize, i64)>;
}

/// Runs the raw workloads over stores made by `open` (each call a fresh one).
pub(crate) fn run_store<S: RawStore + 'static>(
    backend: &str,
    durability: &str,
    sizes: &Sizes,
    open: &dyn Fn() -> Result<S>,
    concurrent: bool,
) -> Result<Vec<Record>> {
    let mut w1 = Record::new(SYSTEM, backend, "W1", "events/s", durability);
    let mut w2 = Record::new(SYSTEM, backend, "W2", "commands/s", durability);
    let mut w3 = Record::new(SYSTEM, backend, "W3", "events/s", durability);
    let mut w4 = Record::new(SYSTEM, backend, "W4", "events/s", durability);
    let mut w5: Vec<Record> = sizes
        .writer_threads
        .iter()
        .map(|t| Record::new(SYSTEM, backend, &format!("W5-{t}"), "events/s", durability))
        .collect();
    for _ in 0..sizes.runs {
        eprintln!("  raw baseline on {backend}");
        let store = open()?;
        let (ids, elapsed) = timed(|| write_accounts(&store, sizes));
        let ids = ids?;
        w1.runs
            .push(rate(ids.len() * (1 + sizes.commands as usize), elapsed));
        let (cycled, elapsed) = timed(|| command_cycles(&store, &ids, sizes));
        w2.runs.push(rate(cycled?, elapsed));
        let (read, elapsed) = timed(|| read_log(&store, sizes.page));
        w4.runs.push(rate(read?, elapsed));
        drop(store);

        let store = open()?;
        let id = Uuid::new_v4();
        let mut version = 1;
        store.insert(id, 1, &[(OPENED, encode_opened(0))])?;
        while version < sizes.replay_events {
            let batch = (sizes.replay_events - version).min(100);
            let rows: Vec<_> = (0..batch)
                .map(|k| (DEPOSITED, encode_deposited(version + k)))
                .collect();
            store.insert(id, version + 1, &rows)?;
            version += batch;
        }
        let load = median_time(sizes.loads, || {
            let rows = store.select(id)?;
            let (_, replayed) = replay_raw(rows.iter().map(|(t, s)| (t.as_str(), s.as_slice())))?;
            assert_eq!(replayed, sizes.replay_events);
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })?;
        w3.runs.push(rate(sizes.replay_events as usize, load));
        drop(store);

        if concurrent {
            for (record, &threads) in w5.iter_mut().zip(&sizes.writer_threads) {
                let store = Arc::new(open()?);
                let (latencies, elapsed) = timed(|| concurrent_writers(&store, threads, sizes));
                let latencies = latencies?;
                record.runs.push(rate(latencies.len(), elapsed));
                record.latencies(latencies);
            }
        }
    }
    w3.note = Some("read the rows and decode them with serde_json".into());
    let mut records = vec![w1, w2, w3, w4];
    if concurrent {
        records.extend(w5);
    }
    Ok(records)
}

fn write_accounts(store: &dyn RawStore, sizes: &Sizes) -> Result<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(sizes.accounts);
    for i in 0..sizes.accounts {
        let id = Uuid::new_v4();
        store.insert(id, 1, &[(OPENED, encode_opened(i))])?;
        for k in 0..sizes.commands {
            store.insert(id, k + 2, &[(DEPOSITED, encode_deposited(k))])?;
        }
        ids.push(id);
    }
    Ok(ids)
}

fn command_cycles(store: &dyn RawStore, ids: &[Uuid], sizes: &Sizes) -> Result<usize> {
    for &id in ids {
        for cycle in 0..sizes.cycles {
            let rows = store.select(id)?;
            let (_balance, version) =
                replay_raw(rows.iter().map(|(t, s)| (t.as_str(), s.as_slice())))?;
            store.insert(
                id,
                version + 1,
                &[(DEPOSITED, encode_deposited(sizes.commands + cycle))],
            )?;
        }
    }
    Ok(ids.len() * sizes.cycles as usize)
}

fn read_log(store: &dyn RawStore, page: usize) -> Result<usize> {
    let (mut start, mut total) = (1, 0);
    loop {
        let (read, last) = store.page(start, page)?;
        if read == 0 {
            return Ok(total);
        }
        total += read;
        start = last + 1;
    }
}

fn concurrent_writers<S: RawStore + 'static>(
    store: &Arc<S>,
    threads: usize,
    sizes: &Sizes,
) -> Result<Vec<Duration>> {
    let share = sizes.concurrent_saves / threads;
    let commands = sizes.commands;
    let writers: Vec<_> = (0..threads)
        .map(|_| {
            let store = Arc::clone(store);
            std::thread::spawn(move || -> Result<Vec<Duration>> {
                let mut latencies = Vec::with_capacity(share);
                for n in 0.. {
                    let id = Uuid::new_v4();
                    for k in 0..=commands {
                        if latencies.len() == share {
                            return Ok(latencies);
                        }
                        let row = if k == 0 {
                            (OPENED, encode_opened(n))
                        } else {
                            (DEPOSITED, encode_deposited(k - 1))
                        };
                        let started = Instant::now();
                        store.insert(id, k + 1, &[row])?;
                        latencies.push(started.elapsed());
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for writer in writers {
        latencies.extend(writer.join().map_err(|_| "a writer thread panicked")??);
    }
    Ok(latencies)
}

/// Connections kept for reuse, one per thread at most in use, as a
/// hand-written program would keep them.
struct Idle<C>(Mutex<Vec<C>>);

impl<C> Idle<C> {
    fn new() -> Self {
        Idle(Mutex::new(Vec::new()))
    }

    /// Runs `f` on an idle connection, or on a new one from `open`, and keeps
    /// the connection for the next call.
    fn with<T, E>(
        &self,
        open: impl FnOnce() -> Result<C>,
        f: impl FnOnce(&mut C) -> Result<T, E>,
    ) -> Result<T>
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        let pooled = self.0.lock().map_err(|_| "poisoned")?.pop();
        let mut connection = match pooled {
            Some(connection) => connection,
            None => open()?,
        };
        let result = f(&mut connection);
        self.0.lock().map_err(|_| "poisoned")?.push(connection);
        Ok(result?)
    }
}

// SQLite, with es-core's schema and settings.

const SQLITE_DDL: &str = "CREATE TABLE stored_events (
    notification_id INTEGER PRIMARY KEY AUTOINCREMENT,
    originator_id TEXT NOT NULL,
    originator_version INTEGER NOT NULL,
    topic TEXT NOT NULL,
    state BLOB NOT NULL,
    UNIQUE (originator_id, originator_version)
);
CREATE INDEX stored_events_topic ON stored_events (topic, notification_id);";

/// A connection per thread, as a hand-written program would have; each save is
/// `BEGIN IMMEDIATE`, inserts, `COMMIT`.
struct RawSqlite {
    path: std::path::PathBuf,
    synchronous: &'static str,
    connections: Idle<Connection>,
}

impl RawSqlite {
    fn create(dir: &Path, synchronous: &'static str) -> Result<Self> {
        let path = dir.join(format!("raw-{}.sqlite3", Uuid::new_v4()));
        let store = RawSqlite {
            path,
            synchronous,
            connections: Idle::new(),
        };
        store.with(|c| c.execute_batch(SQLITE_DDL))?;
        Ok(store)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>) -> Result<T> {
        let open = || {
            let connection = Connection::open(&self.path)?;
            connection.busy_timeout(Duration::from_secs(30))?;
            connection.pragma_update(None, "journal_mode", "WAL")?;
            connection.pragma_update(None, "synchronous", self.synchronous)?;
            Ok(connection)
        };
        self.connections.with(open, f)
    }
}

impl RawStore for RawSqlite {
    fn insert(&self, id: Uuid, first_version: u64, rows: &[(&str, Vec<u8>)]) -> Result<()> {
        self.with(|connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            {
                let mut insert = transaction.prepare_cached(
                    "INSERT INTO stored_events (originator_id, originator_version, topic, state) \
                     VALUES (?1, ?2, ?3, ?4)",
                )?;
                let id = id.to_string();
                for (n, (topic, state)) in rows.iter().enumerate() {
                    insert.execute(rusqlite::params![
                        id,
                        (first_version + n as u64) as i64,
                        topic,
                        state
                    ])?;
                }
            }
            transaction.commit()
        })
    }

    fn select(&self, id: Uuid) -> Result<Vec<(String, Vec<u8>)>> {
        self.with(|connection| {
            let mut select = connection.prepare_cached(
                "SELECT topic, state FROM stored_events WHERE originator_id = ?1 \
                 ORDER BY originator_version",
            )?;
            let rows = select.query_map([id.to_string()], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect()
        })
    }

    fn page(&self, start: i64, limit: usize) -> Result<(usize, i64)> {
        self.with(|connection| {
            let mut select = connection.prepare_cached(
                "SELECT notification_id, originator_id, originator_version, topic, state \
                 FROM stored_events WHERE notification_id >= ?1 ORDER BY notification_id LIMIT ?2",
            )?;
            let rows = select.query_map(rusqlite::params![start, limit as i64], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, Vec<u8>>(4)?,
                ))
            })?;
            let rows: Vec<_> = rows.collect::<rusqlite::Result<_>>()?;
            Ok((rows.len(), rows.last().map_or(start, |row| row.0)))
        })
    }
}

pub fn run_sqlite(sizes: &Sizes, synchronous: &'static str) -> Result<Vec<Record>> {
    let dir = tempfile::tempdir()?;
    let (backend, durability) = match synchronous {
        "NORMAL" => (
            "sqlite-normal",
            "fsync at checkpoints (WAL, synchronous=NORMAL)",
        ),
        _ => ("sqlite", "fsync on (WAL, synchronous=FULL)"),
    };
    run_store(
        backend,
        durability,
        sizes,
        &|| RawSqlite::create(dir.path(), synchronous),
        true,
    )
}

// PostgreSQL, with es-core's schema.

const RAW_SCHEMA: &str = "raw_bench";

/// Drops `schema` and everything in it, then makes it again, empty.
pub fn reset_schema(url: &str, schema: &str) -> Result<()> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    client.batch_execute(&format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema};"
    ))?;
    Ok(())
}

struct RawPostgres {
    connections: Idle<PgConnection>,
    url: String,
}

/// A client with its statements prepared once, as a hand-written program keeps them.
struct PgConnection {
    client: postgres::Client,
    insert: postgres::Statement,
    select: postgres::Statement,
    page: postgres::Statement,
}

impl PgConnection {
    fn connect(url: &str) -> Result<Self> {
        let mut client = postgres::Client::connect(url, postgres::NoTls)?;
        let insert = client.prepare(&format!(
            "INSERT INTO {RAW_SCHEMA}.events (originator_id, originator_version, topic, state) \
             VALUES ($1, $2, $3, $4)"
        ))?;
        let select = client.prepare(&format!(
            "SELECT topic, state FROM {RAW_SCHEMA}.events WHERE originator_id = $1 \
             ORDER BY originator_version"
        ))?;
        let page = client.prepare(&format!(
            "SELECT notification_id, originator_id, originator_version, topic, state \
             FROM {RAW_SCHEMA}.events WHERE notification_id >= $1 \
             ORDER BY notification_id LIMIT $2"
        ))?;
        Ok(PgConnection {
            client,
            insert,
            select,
            page,
        })
    }
}

impl RawPostgres {
    fn create(url: &str) -> Result<Self> {
        reset_schema(url, RAW_SCHEMA)?;
        let mut client = postgres::Client::connect(url, postgres::NoTls)?;
        client.batch_execute(&format!(
            "CREATE TABLE {RAW_SCHEMA}.events (
                originator_id uuid NOT NULL,
                originator_version bigint NOT NULL,
                topic text NOT NULL,
                state bytea NOT NULL,
                notification_id bigserial NOT NULL UNIQUE,
                PRIMARY KEY (originator_id, originator_version)
            )"
        ))?;
        Ok(RawPostgres {
            connections: Idle::new(),
            url: url.to_owned(),
        })
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut PgConnection) -> Result<T, postgres::Error>,
    ) -> Result<T> {
        self.connections
            .with(|| PgConnection::connect(&self.url), f)
    }
}

impl RawStore for RawPostgres {
    fn insert(&self, id: Uuid, first_version: u64, rows: &[(&str, Vec<u8>)]) -> Result<()> {
        self.with(|connection| {
            let mut transaction = connection.client.transaction()?;
            for (n, (topic, state)) in rows.iter().enumerate() {
                let version = (first_version + n as u64) as i64;
                transaction.execute(&connection.insert, &[&id, &version, topic, state])?;
            }
            transaction.commit()
        })
    }

    fn select(&self, id: Uuid) -> Result<Vec<(String, Vec<u8>)>> {
        self.with(|connection| {
            Ok(connection
                .client
                .query(&connection.select, &[&id])?
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect())
        })
    }

    fn page(&self, start: i64, limit: usize) -> Result<(usize, i64)> {
        self.with(|connection| {
            let rows = connection
                .client
                .query(&connection.page, &[&start, &(limit as i64)])?;
            let mut last = start;
            for row in &rows {
                last = row.get(0);
                // Every column taken out, as a reader of the log would.
                let _: (Uuid, i64, String, Vec<u8>) =
                    (row.get(1), row.get(2), row.get(3), row.get(4));
            }
            Ok((rows.len(), last))
        })
    }
}

pub fn run_postgres(sizes: &Sizes, url: &str) -> Result<Vec<Record>> {
    run_store(
        "postgres",
        "server fsync on, synchronous_commit on",
        sizes,
        &|| RawPostgres::create(url),
        true,
    )
}

// Memory: a map of encoded events, and a log of them in order.

#[derive(Default)]
struct RawMemory {
    inner: Mutex<MemoryInner>,
}

#[derive(Default)]
struct MemoryInner {
    accounts: HashMap<Uuid, Vec<(String, Vec<u8>)>>,
    log: Vec<(Uuid, usize)>,
}

impl RawStore for RawMemory {
    fn insert(&self, id: Uuid, first_version: u64, rows: &[(&str, Vec<u8>)]) -> Result<()> {
        let mut inner = self.inner.lock().map_err(|_| "poisoned")?;
        let inner = &mut *inner;
        let events = inner.accounts.entry(id).or_default();
        if events.len() as u64 + 1 != first_version {
            return Err("conflict".into());
        }
        for (topic, state) in rows {
            inner.log.push((id, events.len()));
            events.push(((*topic).to_owned(), state.clone()));
        }
        Ok(())
    }

    fn select(&self, id: Uuid) -> Result<Vec<(String, Vec<u8>)>> {
        let inner = self.inner.lock().map_err(|_| "poisoned")?;
        Ok(inner.accounts.get(&id).cloned().unwrap_or_default())
    }

    fn page(&self, start: i64, limit: usize) -> Result<(usize, i64)> {
        let inner = self.inner.lock().map_err(|_| "poisoned")?;
        let from = (start as usize).saturating_sub(1).min(inner.log.len());
        let to = (from + limit).min(inner.log.len());
        // Copied out, as a reader of a store gets its own copy.
        let page: Vec<(Uuid, String, Vec<u8>)> = inner.log[from..to]
            .iter()
            .map(|&(id, index)| {
                let (topic, state) = &inner.accounts[&id][index];
                (id, topic.clone(), state.clone())
            })
            .collect();
        Ok((page.len(), to as i64))
    }
}

pub fn run_memory(sizes: &Sizes) -> Result<Vec<Record>> {
    run_store(
        "memory",
        "none (in memory)",
        sizes,
        &|| Ok(RawMemory::default()),
        true,
    )
}
