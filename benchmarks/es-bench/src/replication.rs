//! The replication workloads (R1, R2 of benchmarks/README.md): a master's
//! changes delivered over HTTP on loopback to a replica with a database of
//! its own, beside the same records POSTed and upserted with nothing of
//! es-core (R1-raw), and the lag from a master's save to the replica's
//! commit under a steady load.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use es_core::interface::replication::signature::{
    DEFAULT_TOLERANCE_SECONDS, SIGNATURE_HEADER, TIMESTAMP_HEADER, check_freshness, verify,
};
use es_core::interface::replication::{
    Applied, Batch, CALLBACK_PATH, CallbackConfig, DeliveryConfig, HistoryRecord, HistoryType,
    Replica, Replicator, Start, SubscriptionRequest, callback_router,
};
use es_core::persistence::{PostgresConfig, PostgresDatabase, SqliteDatabase, SslMode};
use es_core::prelude::*;
use serde::Deserialize;

use crate::measure::{Record, rate};
use crate::ours::{Backend, Result, SYSTEM};
use crate::sizes::Sizes;

/// What the master replicates: a contract, signed then amended.
#[replicating("contract")]
#[aggregate]
pub struct Contract {
    number: String,
    customer: String,
    amount: u64,
}

#[aggregate]
impl Contract {
    #[event("Signed")]
    pub fn sign(number: String, customer: String, amount: u64) -> Self {
        Contract {
            number,
            customer,
            amount,
        }
    }

    #[event("Amended")]
    pub fn amend(&mut self, amount: u64) {
        self.amount = amount;
    }
}

/// A contract as the replica keeps it.
#[replicated("contract")]
#[derive(Deserialize)]
pub struct ContractCopy {
    number: String,
    amount: u64,
}

/// Records per delivery, and changes per master save while the store is filled.
const BATCH: usize = 100;
const PER_SAVE: usize = 100;
/// The subscription's name, and the secret it is signed with.
const SUBSCRIPTION: &str = "bench-replica";
const SECRET: &str = "es-bench: a fixed secret, for loopback only";
/// The PostgreSQL schemas of the master, the replica and the raw baseline,
/// each dropped before each run.
const MASTER_SCHEMA: &str = "es_bench_replication_master";
const REPLICA_SCHEMA: &str = "es_bench_replication_replica";
const RAW_SCHEMA: &str = "es_bench_replication_raw";
/// How long a delivery may take before the run fails.
const PATIENCE: Duration = Duration::from_secs(600);

/// R1, R1-raw and R2 on `backend` (SQLite or PostgreSQL), `sizes.runs` times.
pub fn run(backend: &Backend, sizes: &Sizes) -> Result<Vec<Record>> {
    let (name, durability) = (backend.name(), backend.durability());
    let changes = sizes.replicated_entities * sizes.changes_per_entity as usize;
    let mut delivered = Record::new(SYSTEM, name, "R1", "changes/s", durability);
    delivered.note = Some(format!(
        "{changes} changes of {} entities, from the master's log to a replica's own database \
         over HTTP on loopback (callback_router under axum), subscribed from the beginning, \
         batches of {BATCH}, signed",
        sizes.replicated_entities
    ));
    let mut ceiling = Record::new(crate::raw::SYSTEM, name, "R1-raw", "changes/s", durability);
    ceiling.note = Some(format!(
        "the same records POSTed in batches of {BATCH} (ureq, axum on loopback), parsed with \
         serde_json and upserted with plain SQL, one transaction per batch; no signatures, \
         no log reading"
    ));
    let mut lag = Record::new(SYSTEM, name, "R2", "ms", durability);
    lag.note = Some(format!(
        "p99 of master save returned to replica commit, {} changes/s, one change per save, \
         batches of up to {BATCH}, linger 0",
        sizes.lag_changes_per_second
    ));
    for _ in 0..sizes.runs {
        let dir = tempfile::tempdir()?;

        eprintln!("  es-rs replication on {name}: {changes} changes delivered");
        reset(backend)?;
        let (rate, bodies) = delivery(backend, dir.path(), "r1", sizes)?;
        delivered.runs.push(rate);

        eprintln!("  raw replication on {name}");
        ceiling
            .runs
            .push(raw_upserts(backend, dir.path(), &bodies, sizes)?);
        drop(bodies);

        eprintln!(
            "  es-rs replication on {name}: lag at {} changes/s",
            sizes.lag_changes_per_second
        );
        reset(backend)?;
        let latencies = live_lag(backend, dir.path(), "r2", sizes)?;
        lag.latencies(latencies);
        let p99_us = lag.p99_us.last().copied().unwrap_or(f64::NAN);
        lag.runs.push(p99_us / 1e3);
    }
    Ok(vec![delivered, ceiling, lag])
}

/// Drops and makes again the schemas of a run on PostgreSQL.
fn reset(backend: &Backend) -> Result<()> {
    if let Backend::Postgres(url) = backend {
        for schema in [MASTER_SCHEMA, REPLICA_SCHEMA, RAW_SCHEMA] {
            crate::raw::reset_schema(url, schema)?;
        }
    }
    Ok(())
}

/// The master's application: a SQLite file of its own in `dir`, or its
/// tables in [`MASTER_SCHEMA`].
fn master(backend: &Backend, dir: &Path, run: &str) -> Result<Arc<Application>> {
    let builder = Application::builder().name("replication_master");
    let builder = match backend {
        Backend::Sqlite(synchronous) => builder
            .sqlite(dir.join(format!("{run}-master.sqlite3")))
            .sqlite_synchronous(*synchronous),
        Backend::Postgres(url) => builder.postgres(postgres_config(url, MASTER_SCHEMA)?),
        Backend::Memory | Backend::Nats { .. } => {
            return Err("replication is measured on SQLite and PostgreSQL".into());
        }
    };
    Ok(Arc::new(builder.build()?))
}

/// The replica: a SQLite file of its own in `dir`, or its table in [`REPLICA_SCHEMA`].
fn replica(backend: &Backend, dir: &Path, run: &str) -> Result<Replica> {
    let replica = match backend {
        Backend::Sqlite(synchronous) => Replica::sqlite(SqliteDatabase::open_with(
            dir.join(format!("{run}-replica.sqlite3")),
            Duration::from_secs(5),
            *synchronous,
        )?)?,
        Backend::Postgres(url) => Replica::postgres(PostgresDatabase::open(&postgres_config(
            url,
            REPLICA_SCHEMA,
        )?)?)?,
        Backend::Memory | Backend::Nats { .. } => {
            return Err("replication is measured on SQLite and PostgreSQL".into());
        }
    };
    Ok(replica.replicate::<ContractCopy>())
}

fn postgres_config(url: &str, schema: &str) -> Result<PostgresConfig> {
    let mut config = PostgresConfig::from_url(url)?;
    // Plain text over loopback, as every other part (see ours.rs).
    config.ssl_mode = SslMode::Disable;
    config.schema = schema.into();
    Ok(config)
}

/// `router` served on a free port of loopback until dropped.
struct Server {
    runtime: tokio::runtime::Runtime,
    base: String,
}

impl Server {
    fn start(router: axum::Router) -> Result<Server> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let base = format!("http://{}", listener.local_addr()?);
        runtime.spawn(async move { axum::serve(listener, router).await });
        Ok(Server { runtime, base })
    }

    fn stop(self) {
        self.runtime.shutdown_timeout(Duration::from_secs(5));
    }
}

/// R1: fills the master with every change, then times a subscription from
/// the beginning until the last change is delivered; checks the replica.
/// The rate, and the batches' bodies as the master would send them (for R1-raw).
fn delivery(
    backend: &Backend,
    dir: &Path,
    run: &str,
    sizes: &Sizes,
) -> Result<(f64, Vec<Vec<u8>>)> {
    let master = master(backend, dir, run)?;
    let (last, records) = fill(&master, sizes)?;
    let last_id = records.last().map_or(0, |record| record.history_id);
    let bodies = records
        .chunks(BATCH)
        .map(|chunk| serde_json::to_vec(&Batch::new(chunk.to_vec())))
        .collect::<Result<Vec<_>, _>>()?;
    drop(records);

    let replica = Arc::new(replica(backend, dir, run)?);
    let server = Server::start(callback_router(
        Arc::clone(&replica),
        CallbackConfig::new(SECRET),
    ))?;
    let replicator = Replicator::builder(Arc::clone(&master))
        .replicate::<Contract>()
        .delivery(DeliveryConfig::default().batch_size(BATCH))
        .start()?;
    let request = SubscriptionRequest::new(
        SUBSCRIPTION,
        format!("{}{CALLBACK_PATH}", server.base),
        ["contract".parse()?],
    )
    .starting(Start::Beginning)
    .with_secret(SECRET);
    let started = Instant::now();
    replicator.subscribe(request)?;
    replicator.wait(SUBSCRIPTION, last_id, PATIENCE)?;
    let elapsed = started.elapsed();
    replicator.stop();
    server.stop();

    let held: LastStates = replica
        .all::<ContractCopy>()?
        .into_iter()
        .map(|copy| {
            let ContractCopy { number, amount } = copy.value;
            (copy.uid, (copy.version, number, amount))
        })
        .collect();
    let behind = last
        .iter()
        .filter(|&(uid, state)| held.get(uid) != Some(state))
        .count();
    if behind > 0 || held.len() != last.len() {
        return Err(format!(
            "the replica holds {} entities, {behind} of the master's {} not as at their last version",
            held.len(),
            last.len()
        )
        .into());
    }
    Ok((
        rate(last.len() * sizes.changes_per_entity as usize, elapsed),
        bodies,
    ))
}

/// Each entity's version, number and amount after its last change, by uid.
type LastStates = HashMap<String, (u64, String, u64)>;

/// The master's store of R1: every entity created, then amended, one
/// change of each of `PER_SAVE` entities to a save. Each entity's last
/// state, and the history records of the changes in log order, made as
/// the master makes them (the state after each change, as JSON).
fn fill(master: &Application, sizes: &Sizes) -> Result<(LastStates, Vec<HistoryRecord>)> {
    let mut contracts: Vec<Contract> = Vec::with_capacity(sizes.replicated_entities);
    let mut records = Vec::new();
    for change in 0..sizes.changes_per_entity {
        for first in (0..sizes.replicated_entities).step_by(PER_SAVE) {
            let last = (first + PER_SAVE).min(sizes.replicated_entities);
            if change == 0 {
                contracts.extend(
                    (first..last).map(|i| {
                        Contract::sign(format!("C-{i:06}"), format!("customer-{i}"), 1_000)
                    }),
                );
            } else {
                for contract in &mut contracts[first..last] {
                    contract.amend(1_000 + change * 10);
                }
            }
            let saved = master.save(&mut contracts[first..last])?;
            for (recording, contract) in saved.iter().zip(&contracts[first..last]) {
                records.push(history_record(recording, contract)?);
            }
        }
    }
    let last = contracts
        .iter()
        .map(|contract| {
            let state = (contract.version(), contract.number.clone(), contract.amount);
            (contract.id().to_string(), state)
        })
        .collect();
    Ok((last, records))
}

/// The record of `recording`, a change of `contract`, as the master makes
/// it: the whole state after the change, as JSON.
fn history_record(recording: &Recording, contract: &Contract) -> Result<HistoryRecord> {
    let event = &recording.event;
    if event.originator_id != contract.id() || event.originator_version != contract.version() {
        return Err("a save's recordings are not in the order of its aggregates".into());
    }
    let serde_json::Value::Object(fields) = serde_json::to_value(contract)? else {
        return Err("a contract does not serialize as an object of fields".into());
    };
    Ok(HistoryRecord {
        history_id: recording.notification_id,
        history_date: event.timestamp,
        history_change_reason: None,
        history_user_id: None,
        history_type: if event.originator_version == 1 {
            HistoryType::Created
        } else {
            HistoryType::Changed
        },
        uid: contract.id().to_string(),
        kind: "contract".into(),
        version: event.originator_version,
        fields,
    })
}

/// A batch as the raw receiver reads it: plain serde types.
#[derive(Deserialize)]
struct RawBatch {
    count: usize,
    results: Vec<RawRecord>,
}

#[derive(Deserialize)]
struct RawRecord {
    history_id: i64,
    history_date: String,
    history_type: String,
    // Read so that they stay out of `fields`, as the replica's records keep them.
    #[allow(dead_code)]
    history_change_reason: Option<String>,
    #[allow(dead_code)]
    history_user_id: Option<String>,
    #[serde(rename = "_uid")]
    uid: String,
    #[serde(rename = "_type")]
    kind: String,
    #[serde(rename = "_version")]
    version: i64,
    #[serde(flatten)]
    fields: serde_json::Map<String, serde_json::Value>,
}

/// The raw receiver's table: the replica's, one row per entity.
trait RawTable: Send + Sync {
    /// Upserts the batch's records in one transaction; how many rows changed.
    fn upsert(&self, batch: &RawBatch) -> Result<usize>;
    /// How many rows there are, and how many at `version`.
    fn count(&self, version: i64) -> Result<(usize, usize)>;
}

/// A row is replaced only by a newer version, as the replica's.
const RAW_SQLITE_DDL: &str = "CREATE TABLE entities (
    type TEXT NOT NULL, uid TEXT NOT NULL, version INTEGER NOT NULL,
    deleted INTEGER NOT NULL, state TEXT NOT NULL, history_id INTEGER NOT NULL,
    history_date TEXT NOT NULL, PRIMARY KEY (type, uid)) WITHOUT ROWID;";
const RAW_SQLITE_UPSERT: &str = "INSERT INTO entities \
    (type, uid, version, deleted, state, history_id, history_date) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
    ON CONFLICT (type, uid) DO UPDATE SET version = excluded.version, \
    deleted = excluded.deleted, state = excluded.state, history_id = excluded.history_id, \
    history_date = excluded.history_date WHERE entities.version < excluded.version";

struct RawSqlite(Mutex<rusqlite::Connection>);

impl RawSqlite {
    fn open(path: &Path, synchronous: &str) -> Result<Self> {
        let connection = rusqlite::Connection::open(path)?;
        connection.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        connection.execute_batch(&format!("PRAGMA synchronous = {synchronous};"))?;
        connection.execute_batch(RAW_SQLITE_DDL)?;
        Ok(RawSqlite(Mutex::new(connection)))
    }
}

impl RawTable for RawSqlite {
    fn upsert(&self, batch: &RawBatch) -> Result<usize> {
        let mut connection = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut changed = 0;
        {
            let mut upsert = transaction.prepare_cached(RAW_SQLITE_UPSERT)?;
            for record in &batch.results {
                changed += upsert.execute(rusqlite::params![
                    record.kind,
                    record.uid,
                    record.version,
                    record.history_type == "-",
                    serde_json::to_string(&record.fields)?,
                    record.history_id,
                    record.history_date,
                ])?;
            }
        }
        transaction.commit()?;
        Ok(changed)
    }

    fn count(&self, version: i64) -> Result<(usize, usize)> {
        let connection = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(connection.query_row(
            "SELECT count(*), count(*) FILTER (WHERE version = ?1) FROM entities",
            [version],
            |row| {
                Ok((
                    row.get::<_, i64>(0)? as usize,
                    row.get::<_, i64>(1)? as usize,
                ))
            },
        )?)
    }
}

struct RawPostgres {
    client: Mutex<postgres::Client>,
    upsert: postgres::Statement,
}

impl RawPostgres {
    fn open(url: &str) -> Result<Self> {
        let mut client = postgres::Client::connect(url, postgres::NoTls)?;
        client.batch_execute(&format!(
            "CREATE TABLE {RAW_SCHEMA}.entities (
                type text NOT NULL, uid text NOT NULL, version bigint NOT NULL,
                deleted boolean NOT NULL, state jsonb NOT NULL, history_id bigint NOT NULL,
                history_date timestamptz NOT NULL, PRIMARY KEY (type, uid))"
        ))?;
        let upsert = client.prepare(&format!(
            "INSERT INTO {RAW_SCHEMA}.entities AS e \
             (type, uid, version, deleted, state, history_id, history_date) \
             VALUES ($1, $2, $3, $4, ($5::text)::jsonb, $6, ($7::text)::timestamptz) \
             ON CONFLICT (type, uid) DO UPDATE SET version = EXCLUDED.version, \
             deleted = EXCLUDED.deleted, state = EXCLUDED.state, \
             history_id = EXCLUDED.history_id, history_date = EXCLUDED.history_date \
             WHERE e.version < EXCLUDED.version"
        ))?;
        Ok(RawPostgres {
            client: Mutex::new(client),
            upsert,
        })
    }
}

impl RawTable for RawPostgres {
    fn upsert(&self, batch: &RawBatch) -> Result<usize> {
        let mut client = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        let mut transaction = client.transaction()?;
        let mut changed = 0;
        for record in &batch.results {
            let state = serde_json::to_string(&record.fields)?;
            changed += transaction.execute(
                &self.upsert,
                &[
                    &record.kind,
                    &record.uid,
                    &record.version,
                    &(record.history_type == "-"),
                    &state,
                    &record.history_id,
                    &record.history_date,
                ],
            )? as usize;
        }
        transaction.commit()?;
        Ok(changed)
    }

    fn count(&self, version: i64) -> Result<(usize, usize)> {
        let mut client = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        let row = client.query_one(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE version = $1) FROM {RAW_SCHEMA}.entities"
            ),
            &[&version],
        )?;
        Ok((row.get::<_, i64>(0) as usize, row.get::<_, i64>(1) as usize))
    }
}

/// The raw receiver: parses the batch, upserts it on a blocking thread.
async fn raw_receive(
    State(table): State<Arc<dyn RawTable>>,
    body: Bytes,
) -> Result<axum::Json<serde_json::Value>, (StatusCode, String)> {
    let batch: RawBatch =
        serde_json::from_slice(&body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    if batch.count != batch.results.len() {
        return Err((StatusCode::BAD_REQUEST, "count".into()));
    }
    let changed = tokio::task::spawn_blocking(move || table.upsert(&batch))
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(axum::Json(serde_json::json!({ "applied": changed })))
}

/// R1-raw: `bodies` POSTed one after the other to the raw receiver; the
/// rate of changes, after checking every entity is at its last version.
fn raw_upserts(backend: &Backend, dir: &Path, bodies: &[Vec<u8>], sizes: &Sizes) -> Result<f64> {
    let table: Arc<dyn RawTable> = match backend {
        Backend::Sqlite(synchronous) => {
            let pragma = match synchronous {
                es_core::persistence::Synchronous::Normal => "NORMAL",
                _ => "FULL",
            };
            Arc::new(RawSqlite::open(&dir.join("raw-replica.sqlite3"), pragma)?)
        }
        Backend::Postgres(url) => Arc::new(RawPostgres::open(url)?),
        Backend::Memory | Backend::Nats { .. } => {
            return Err("replication is measured on SQLite and PostgreSQL".into());
        }
    };
    let server = Server::start(
        axum::Router::new()
            .route("/raw", post(raw_receive))
            .with_state(Arc::clone(&table)),
    )?;
    let url = format!("{}/raw", server.base);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let started = Instant::now();
    for body in bodies {
        let status = agent
            .post(&url)
            .header("content-type", "application/json")
            .send(&body[..])?
            .status();
        if !status.is_success() {
            return Err(format!("the raw receiver answered {status}").into());
        }
    }
    let elapsed = started.elapsed();
    server.stop();
    let entities = sizes.replicated_entities;
    let (rows, at_last) = table.count(sizes.changes_per_entity as i64)?;
    if (rows, at_last) != (entities, entities) {
        return Err(format!(
            "the raw replica holds {rows} entities, {at_last} of {entities} at their last version"
        )
        .into());
    }
    Ok(rate(entities * sizes.changes_per_entity as usize, elapsed))
}

/// R2's receiver: the replica's webhook, written here so that it notes
/// when each record's transaction committed.
struct Stamping {
    replica: Arc<Replica>,
    /// When each (uid, version) was first applied.
    committed: Mutex<HashMap<(String, u64), Instant>>,
}

fn unauthorized(why: impl ToString) -> (StatusCode, String) {
    (StatusCode::UNAUTHORIZED, why.to_string())
}

async fn stamp(
    State(stamping): State<Arc<Stamping>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<Applied>, (StatusCode, String)> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| unauthorized(format!("no {name}")))
    };
    let timestamp: u64 = header(TIMESTAMP_HEADER)?
        .parse()
        .map_err(|_| unauthorized("the timestamp is not a number"))?;
    let signature = header(SIGNATURE_HEADER)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    check_freshness(timestamp, now, DEFAULT_TOLERANCE_SECONDS).map_err(unauthorized)?;
    verify(SECRET.as_bytes(), timestamp, &body, signature).map_err(unauthorized)?;
    let batch: Batch =
        serde_json::from_slice(&body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let applied = tokio::task::spawn_blocking(move || {
        // `apply` returns once the batch's transaction committed.
        let applied = stamping.replica.apply(&batch)?;
        let now = Instant::now();
        let mut committed = stamping
            .committed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for record in &batch.results {
            committed
                .entry((record.uid.clone(), record.version))
                .or_insert(now);
        }
        Ok::<_, es_core::interface::replication::ReplicaError>(applied)
    })
    .await
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(axum::Json(applied))
}

/// Entities R2's changes go round.
const LIVE_ENTITIES: usize = 100;

/// R2: with the subscription live, the master saves one change at a
/// steady rate; for each, the time from its save returning to the commit
/// of the replica's transaction that applied it.
fn live_lag(backend: &Backend, dir: &Path, run: &str, sizes: &Sizes) -> Result<Vec<Duration>> {
    let master = master(backend, dir, run)?;
    let stamping = Arc::new(Stamping {
        replica: Arc::new(replica(backend, dir, run)?),
        committed: Mutex::default(),
    });
    let server = Server::start(
        axum::Router::new()
            .route(CALLBACK_PATH, post(stamp))
            .with_state(Arc::clone(&stamping)),
    )?;
    let replicator = Replicator::builder(Arc::clone(&master))
        .replicate::<Contract>()
        .delivery(
            DeliveryConfig::default()
                .batch_size(BATCH)
                .linger(Duration::ZERO),
        )
        .start()?;
    replicator.subscribe(
        SubscriptionRequest::new(
            SUBSCRIPTION,
            format!("{}{CALLBACK_PATH}", server.base),
            ["contract".parse()?],
        )
        .starting(Start::Beginning)
        .with_secret(SECRET),
    )?;

    let interval = Duration::from_secs_f64(1.0 / sizes.lag_changes_per_second as f64);
    let mut contracts: Vec<Contract> = Vec::with_capacity(LIVE_ENTITIES);
    let mut saved = Vec::with_capacity(sizes.lag_changes);
    let mut last_id = 0;
    let start = Instant::now();
    for n in 0..sizes.lag_changes {
        let due = start + interval * n as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let i = n % LIVE_ENTITIES;
        if i == contracts.len() {
            contracts.push(Contract::sign(
                format!("L-{i:06}"),
                format!("customer-{i}"),
                1_000,
            ));
        } else {
            contracts[i].amend(1_000 + n as u64);
        }
        let contract = &mut contracts[i];
        let recordings = master.save(contract)?;
        let returned = Instant::now();
        last_id = recordings.last().map_or(last_id, |r| r.notification_id);
        saved.push((contract.id().to_string(), contract.version(), returned));
    }
    replicator.wait(SUBSCRIPTION, last_id, PATIENCE)?;
    replicator.stop();
    server.stop();

    let committed = stamping
        .committed
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    saved
        .into_iter()
        .map(|(uid, version, returned)| {
            committed
                .get(&(uid.clone(), version))
                .map(|at| at.saturating_duration_since(returned))
                .ok_or_else(|| format!("no commit of {uid} at version {version}").into())
        })
        .collect()
}
