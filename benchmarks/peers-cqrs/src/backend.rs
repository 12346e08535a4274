//! The two stores: cqrs-es's in-memory `MemStore` and postgres-es's
//! `PersistedEventStore<PostgresEventRepository, _>`.

use anyhow::{Context, Result, bail};
use cqrs_es::EventStore;
use cqrs_es::mem_store::MemStore;
use cqrs_es::persist::{PersistedEventRepository, PersistedEventStore};
use postgres_es::PostgresEventRepository;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Pool, Postgres};

use crate::account::BankAccount;

/// What the workloads need from a backend. Every `fresh_*` call returns an empty store.
pub trait Backend {
    /// `AC: Send` so that `CqrsFramework::execute` can run inside `tokio::spawn` (W5):
    /// it holds the loaded aggregate context across its awaits.
    type Store: EventStore<BankAccount, AC: Send> + 'static;

    fn system(&self) -> &'static str;
    fn backend(&self) -> &'static str;
    fn durability(&self) -> &str;
    /// Notes shared by every workload of this backend.
    fn setup_note(&self) -> &'static str;

    async fn fresh_store(&self) -> Result<Self::Store>;
    /// A second handle on the same data as `store` (the framework takes its store by
    /// value; the untimed checks read through this one).
    fn another_handle(&self, store: &Self::Store) -> Self::Store;
    /// `Ok(None)` when the backend cannot snapshot.
    async fn fresh_snapshot_store(&self, every: usize) -> Result<Option<Self::Store>>;
    /// Reads every event there is, in whatever order the library offers, and returns
    /// how many; `Ok(None)` when the library offers no way to do that.
    async fn read_all(&self) -> Result<Option<usize>>;
}

pub struct MemBackend;

impl Backend for MemBackend {
    type Store = MemStore<BankAccount>;

    fn system(&self) -> &'static str {
        "cqrs-es"
    }
    fn backend(&self) -> &'static str {
        "memory"
    }
    fn durability(&self) -> &str {
        "none (in memory)"
    }
    fn setup_note(&self) -> &'static str {
        "cqrs-es 0.5.0 MemStore, which println!s a line on every load and every commit (fd 1 \
         points at /dev/null here; the JSON goes to a copy of the real stdout). A load clones the \
         account's stored envelopes; a commit clones them again, appends, and writes the Vec back."
    }

    async fn fresh_store(&self) -> Result<Self::Store> {
        Ok(MemStore::default())
    }

    fn another_handle(&self, store: &Self::Store) -> Self::Store {
        // A MemStore clone shares the same Arc'd map.
        store.clone()
    }

    async fn fresh_snapshot_store(&self, _every: usize) -> Result<Option<Self::Store>> {
        // Snapshots exist only in cqrs_es::persist::PersistedEventStore.
        Ok(None)
    }

    async fn read_all(&self) -> Result<Option<usize>> {
        // MemStore keeps a HashMap of per-aggregate Vecs: there is no order across
        // aggregates, and no API that reads everything.
        Ok(None)
    }
}

/// The schema that holds this part's tables, so they cannot collide with the
/// other benchmark parts' tables in the same database.
const SCHEMA: &str = "cqrs_bench";
const EVENTS_TABLE: &str = "cqrs_bench.events";
const SNAPSHOTS_TABLE: &str = "cqrs_bench.snapshots";

/// Enough connections for the widest W5 (16 writers) to each hold one. postgres-es's own
/// `default_postgress_pool` makes 10, which would queue 6 of the 16 writers on the pool.
pub const POOL_SIZE: u32 = 16;

pub struct PgBackend {
    pool: Pool<Postgres>,
    durability: String,
}

impl PgBackend {
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .connect(url)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let fsync: String = sqlx::query_scalar("SHOW fsync").fetch_one(&pool).await?;
        let sync_commit: String = sqlx::query_scalar("SHOW synchronous_commit")
            .fetch_one(&pool)
            .await?;
        let durability = format!("server fsync {fsync}, synchronous_commit {sync_commit}");

        // The tables as postgres-es documents them (db/init.sql of the crate), in a
        // schema of our own; dropped first so that their definition is always this one.
        let ddl = [
            format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"),
            format!("CREATE SCHEMA {SCHEMA}"),
            format!(
                "CREATE TABLE {EVENTS_TABLE} (
                    aggregate_type text                         NOT NULL,
                    aggregate_id   text                         NOT NULL,
                    sequence       bigint CHECK (sequence >= 0) NOT NULL,
                    event_type     text                         NOT NULL,
                    event_version  text                         NOT NULL,
                    payload        json                         NOT NULL,
                    metadata       json                         NOT NULL,
                    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
                )"
            ),
            format!(
                "CREATE TABLE {SNAPSHOTS_TABLE} (
                    aggregate_type   text                                 NOT NULL,
                    aggregate_id     text                                 NOT NULL,
                    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
                    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
                    payload          json                                 NOT NULL,
                    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
                )"
            ),
        ];
        for statement in &ddl {
            sqlx::query(statement)
                .execute(&pool)
                .await
                .with_context(|| format!("running {statement}"))?;
        }
        Ok(Self { pool, durability })
    }

    /// Drops the schema; called once everything has run.
    pub async fn drop_tables(&self) -> Result<()> {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The repository, on our tables (postgres-es lets the table names be set).
    fn repository(&self) -> PostgresEventRepository {
        PostgresEventRepository::new(self.pool.clone()).with_tables(EVENTS_TABLE, SNAPSHOTS_TABLE)
    }

    async fn empty_tables(&self) -> Result<()> {
        sqlx::query(&format!("TRUNCATE {EVENTS_TABLE}, {SNAPSHOTS_TABLE}"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Backend for PgBackend {
    type Store = PersistedEventStore<PostgresEventRepository, BankAccount>;

    fn system(&self) -> &'static str {
        "postgres-es"
    }
    fn backend(&self) -> &'static str {
        "postgres"
    }
    fn durability(&self) -> &str {
        &self.durability
    }
    fn setup_note(&self) -> &'static str {
        "postgres-es 0.5.0 (sqlx 0.8, a pool of 16 connections), on the crate's documented \
         events and snapshots tables in a schema of their own. A commit is one transaction with \
         one INSERT per event; conflicts come from the primary key (aggregate_type, \
         aggregate_id, sequence)."
    }

    async fn fresh_store(&self) -> Result<Self::Store> {
        self.empty_tables().await?;
        Ok(PersistedEventStore::new_event_store(self.repository()))
    }

    fn another_handle(&self, _store: &Self::Store) -> Self::Store {
        PersistedEventStore::new_event_store(self.repository())
    }

    async fn fresh_snapshot_store(&self, every: usize) -> Result<Option<Self::Store>> {
        self.empty_tables().await?;
        Ok(Some(PersistedEventStore::new_snapshot_store(
            self.repository(),
            every,
        )))
    }

    async fn read_all(&self) -> Result<Option<usize>> {
        let mut stream = self
            .repository()
            .stream_all_events::<BankAccount>()
            .await
            .map_err(|e| anyhow::anyhow!("stream_all_events: {e}"))?;
        let mut count = 0;
        // `next` upcasts (none here) and deserializes each row into an EventEnvelope.
        while let Some(envelope) = stream.next::<BankAccount>(&[]).await {
            let envelope = envelope.map_err(|e| anyhow::anyhow!("stream_all_events: {e}"))?;
            std::hint::black_box(&envelope);
            count += 1;
        }
        if count == 0 {
            bail!("stream_all_events returned no events");
        }
        Ok(Some(count))
    }
}
