//! The receiving side of replication: copies of the master's entities, kept
//! in the replica's own database from the batches the master delivers.
//!
//! Deliveries may come twice, out of order or late; each record carries its
//! entity's whole state and version, so the rules are few:
//!
//! - a batch is applied in one transaction, its records in order (a batch
//!   may hold several versions of one entity), or not at all;
//! - a record whose version is not newer than the stored one (live or
//!   deleted) is skipped: duplicates and late changes change nothing;
//! - a change that arrives before its entity's creation is applied, as the
//!   whole state it is;
//! - a deletion leaves a tombstone with its version, so an older change
//!   delivered after it cannot bring the entity back;
//! - a record of a type not registered, or whose fields do not fit the
//!   type, fails the whole batch; a reference to an entity not yet
//!   replicated (`{"_uid": .., "_type": ..}`) is only data, never refused.
//!
//! The tables: `replica_entities` (`type`, `uid`, `version`, `deleted`,
//! `state` as JSON, `history_id`, `history_date`; key `(type, uid)`), and,
//! with [`Replica::with_history`], `replica_history`, one row per applied
//! record (key `(type, uid, version)`).

// Without SQLite or PostgreSQL there is no database to keep copies in: the
// types compile, for the master's side, but nothing builds a replica.
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

mod callback;
mod error;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

pub use callback::{CALLBACK_PATH, CallbackConfig, DEFAULT_MAX_BODY_BYTES, callback_router};
pub use error::ReplicaError;

use super::{Batch, HistoryRecord, HistoryType, Replicated};
use crate::error::{BoxError, Error};
use store::{EntityRow, HistoryRow, RecordRow, Store};

/// A value decoded from a record's fields, as its registered type.
type Decoded = Box<dyn Any>;

/// A callback on applied changes, of one type (the value downcast to it) or
/// of all.
type Callback = Arc<dyn Fn(&HistoryRecord, Option<&dyn Any>) -> Result<(), BoxError> + Send + Sync>;

/// A registered type: how to check its records, and its callbacks.
struct Kind {
    rust_type: TypeId,
    rust_name: &'static str,
    decode: fn(&serde_json::Map<String, serde_json::Value>) -> Result<Decoded, serde_json::Error>,
    callbacks: Vec<Callback>,
}

fn decode<T: Replicated>(
    fields: &serde_json::Map<String, serde_json::Value>,
) -> Result<Decoded, serde_json::Error> {
    let value: T = serde_json::from_value(serde_json::Value::Object(fields.clone()))?;
    Ok(Box::new(value))
}

/// Copies of replicated entities in the replica's own database (SQLite or
/// PostgreSQL), kept from the batches a master delivers: see the
/// [module](self) for the rules.
///
/// Built once, then shared (in an [`Arc`]) with the
/// [callback endpoint](callback_router). Its calls block on the database;
/// from async code, call them on a blocking thread.
///
/// ```
/// use es_core::interface::replication::{Batch, HistoryRecord, Replica, Replicated};
/// use es_core::persistence::SqliteDatabase;
///
/// #[derive(serde::Deserialize)]
/// struct DocLeaseCopy { number: String }
/// impl Replicated for DocLeaseCopy { const TYPE: &'static str = "doc_replica_lease"; }
///
/// let replica = Replica::sqlite(SqliteDatabase::open_in_memory()?)?.replicate::<DocLeaseCopy>();
/// let batch: Batch = serde_json::from_value(serde_json::json!({"count": 1, "results": [{
///     "history_id": 1, "history_date": "2024-01-01T00:00:00Z",
///     "history_change_reason": null, "history_user_id": null, "history_type": "+",
///     "_uid": "u1", "_type": "doc_replica_lease", "_version": 1, "number": "N14"
/// }]}))?;
/// assert_eq!(replica.apply(&batch)?.applied, 1);
/// assert_eq!(replica.apply(&batch)?.skipped, 1); // delivered twice: kept once
/// let copy = replica.get::<DocLeaseCopy>("u1")?.expect("applied");
/// assert_eq!((copy.version, copy.value.number.as_str()), (1, "N14"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Replica {
    store: Box<dyn Store>,
    kinds: HashMap<&'static str, Kind>,
    all_callbacks: Vec<Callback>,
    history: bool,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kinds: Vec<&&str> = self.kinds.keys().collect();
        kinds.sort();
        f.debug_struct("Replica")
            .field("store", &self.store)
            .field("types", &kinds)
            .field("history", &self.history)
            .finish_non_exhaustive()
    }
}

/// What [`Replica::apply`] did with a batch's records: answered by the
/// callback endpoint as `{"applied": n, "skipped": m}`.
///
/// ```
/// use es_core::interface::replication::Applied;
/// let done = Applied { applied: 2, skipped: 1 };
/// assert_eq!(serde_json::to_string(&done)?, r#"{"applied":2,"skipped":1}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Records newer than what was stored, now stored.
    pub applied: usize,
    /// Records not newer than what was stored (duplicates, late ones).
    pub skipped: usize,
}

/// A live copy of an entity, with what the replica keeps beside its fields.
///
/// (Not named `Copy`, which would hide the prelude's trait where imported.)
///
/// ```
/// use es_core::interface::replication::{Batch, Replica, Replicated};
/// #[derive(serde::Deserialize)]
/// struct DocCopyFlat { floor: u8 }
/// impl Replicated for DocCopyFlat { const TYPE: &'static str = "doc_copy_flat"; }
/// let replica = Replica::sqlite(es_core::persistence::SqliteDatabase::open_in_memory()?)?
///     .replicate::<DocCopyFlat>();
/// let batch: Batch = serde_json::from_value(serde_json::json!({"count": 1, "results": [{
///     "history_id": 7, "history_date": "2024-01-01T00:00:00Z", "history_change_reason": null,
///     "history_user_id": null, "history_type": "~", "_uid": "f1", "_type": "doc_copy_flat",
///     "_version": 3, "floor": 2
/// }]}))?;
/// replica.apply(&batch)?; // a change before its creation: the whole state all the same
/// let copy = replica.get::<DocCopyFlat>("f1")?.expect("live");
/// assert_eq!((copy.uid.as_str(), copy.version, copy.history_id, copy.value.floor), ("f1", 3, 7, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaCopy<T> {
    /// The entity's id (`_uid`).
    pub uid: String,
    /// The version of the change the copy is at (`_version`).
    pub version: u64,
    /// That change's id in the master's log.
    pub history_id: u64,
    /// When that change happened.
    pub history_date: DateTime<Utc>,
    /// The entity's fields.
    pub value: T,
}

/// The version a replica holds of an entity, and whether it was deleted.
///
/// ```
/// use es_core::interface::replication::{Batch, Replica, ReplicaVersion, Replicated};
/// #[derive(serde::Deserialize)]
/// struct DocVersionDesk {}
/// impl Replicated for DocVersionDesk { const TYPE: &'static str = "doc_version_desk"; }
/// let replica = Replica::sqlite(es_core::persistence::SqliteDatabase::open_in_memory()?)?
///     .replicate::<DocVersionDesk>();
/// let batch: Batch = serde_json::from_value(serde_json::json!({"count": 1, "results": [{
///     "history_id": 9, "history_date": "2024-01-01T00:00:00Z", "history_change_reason": null,
///     "history_user_id": null, "history_type": "-", "_uid": "d1", "_type": "doc_version_desk",
///     "_version": 4
/// }]}))?;
/// replica.apply(&batch)?; // a tombstone: older changes of d1 will be skipped
/// assert_eq!(replica.version::<DocVersionDesk>("d1")?, Some(ReplicaVersion { version: 4, deleted: true }));
/// assert!(replica.get::<DocVersionDesk>("d1")?.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaVersion {
    /// The version of the last applied change.
    pub version: u64,
    /// Whether that change deleted the entity (the row is a tombstone).
    pub deleted: bool,
}

impl Replica {
    fn with_store(store: Box<dyn Store>) -> Self {
        Replica {
            store,
            kinds: HashMap::new(),
            all_callbacks: Vec::new(),
            history: false,
        }
    }

    /// A replica whose copies are in `db`, a SQLite database (the
    /// application's own or another); creates `replica_entities` if it is
    /// not there. Batches are written with the database's writer connection,
    /// queued with the application's saves.
    ///
    /// ```
    /// use es_core::interface::replication::Replica;
    /// let replica = Replica::sqlite(es_core::persistence::SqliteDatabase::open_in_memory()?)?;
    /// # let _ = replica;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    #[cfg(feature = "sqlite")]
    pub fn sqlite(db: Arc<crate::persistence::SqliteDatabase>) -> Result<Self, Error> {
        Ok(Self::with_store(Box::new(sqlite::SqliteStore::new(db)?)))
    }

    /// A replica whose copies are in `db`, a PostgreSQL database, in its
    /// configured schema; creates the schema and `replica_entities` if they
    /// are not there. Each batch is one transaction on a pooled connection;
    /// two deliveries of one entity at once are applied one after the other.
    /// (Two batches that hold the same entities in opposite orders may
    /// deadlock: PostgreSQL then fails one of them, the endpoint answers 500,
    /// and the master's retry applies it.)
    ///
    /// ```
    /// use es_core::interface::replication::Replica;
    /// use es_core::persistence::{PostgresConfig, PostgresDatabase};
    /// # let url = std::env::var("ES_TEST_POSTGRES_URL")
    /// #     .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    /// let mut config = PostgresConfig::from_url(&url)?;
    /// config.schema = format!("doc_replica_{}", std::process::id());
    /// let replica = match Replica::postgres(PostgresDatabase::open(&config)?) {
    ///     Ok(replica) => replica,
    /// #   Err(es_core::Error::Database { .. }) if std::env::var("CI").as_deref() != Ok("true") => return Ok(()),
    ///     Err(error) => return Err(error.into()),
    /// };
    /// # let _ = replica;
    /// # let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
    /// # client.batch_execute(&format!("DROP SCHEMA \"{}\" CASCADE", config.schema))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "postgres")]
    pub fn postgres(db: Arc<crate::persistence::PostgresDatabase>) -> Result<Self, Error> {
        Ok(Self::with_store(Box::new(postgres::PostgresStore::new(
            db,
        )?)))
    }

    /// Keeps, besides each entity's copy, one row per applied record in
    /// `replica_history`, numbered in the order applied (created if it is
    /// not there), read with
    /// [`history`](Self::history).
    ///
    /// ```
    /// use es_core::interface::replication::Replica;
    /// let replica = Replica::sqlite(es_core::persistence::SqliteDatabase::open_in_memory()?)?
    ///     .with_history()?;
    /// # let _ = replica;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn with_history(mut self) -> Result<Self, Error> {
        self.store.create_history_table()?;
        self.history = true;
        Ok(self)
    }

    /// Registers `T`: records of type `T::TYPE` are applied, their fields
    /// checked by reading them as a `T`. Records of types not registered
    /// fail their batch.
    ///
    /// # Panics
    ///
    /// If another Rust type is already registered under `T::TYPE`: one
    /// program's mistake, found when the replica is built.
    ///
    /// ```
    /// use es_core::interface::replication::{Replica, Replicated};
    /// #[derive(serde::Deserialize)]
    /// struct DocTenantCopy { name: String }
    /// impl Replicated for DocTenantCopy { const TYPE: &'static str = "doc_replicate_tenant"; }
    /// let replica = Replica::sqlite(es_core::persistence::SqliteDatabase::open_in_memory()?)?
    ///     .replicate::<DocTenantCopy>();
    /// assert!(replica.is_replicated("doc_replicate_tenant"));
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn replicate<T: Replicated>(mut self) -> Self {
        self.kind_mut::<T>();
        self
    }

    /// Whether records of type `kind` are applied.
    pub fn is_replicated(&self, kind: &str) -> bool {
        self.kinds.contains_key(kind)
    }

    fn kind_mut<T: Replicated>(&mut self) -> &mut Kind {
        let kind = self.kinds.entry(T::TYPE).or_insert_with(|| Kind {
            rust_type: TypeId::of::<T>(),
            rust_name: std::any::type_name::<T>(),
            decode: decode::<T>,
            callbacks: Vec::new(),
        });
        assert!(
            kind.rust_type == TypeId::of::<T>(),
            "the replicated type {:?} is registered twice, by {} and by {}: one Rust type per type name",
            T::TYPE,
            kind.rust_name,
            std::any::type_name::<T>(),
        );
        kind
    }

    /// Registers `T` (as [`replicate`](Self::replicate)) and calls
    /// `callback` for each applied change of a `T`, inside the batch's
    /// transaction, after the copy is written: with the record (its uid,
    /// version, history type and fields) and the value, or `None` for a
    /// deletion. An error from it rolls the whole batch back (and the
    /// endpoint answers 500, so the master sends the batch again): the
    /// callback may run again for the same change, and should do what can
    /// be done twice, or nothing outside the replica's database.
    ///
    /// Skipped records (duplicates, late ones) call nothing.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use es_core::interface::replication::{Batch, HistoryRecord, Replica, Replicated};
    /// #[derive(serde::Deserialize)]
    /// struct DocRoomCopy { size: u32 }
    /// impl Replicated for DocRoomCopy { const TYPE: &'static str = "doc_on_change_room"; }
    ///
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// let replica = Replica::sqlite(es_core::persistence::SqliteDatabase::open_in_memory()?)?
    ///     .on_change::<DocRoomCopy>(move |record, room| {
    ///         log.lock().unwrap().push((record.uid.clone(), room.map(|room| room.size)));
    ///         Ok(())
    ///     });
    /// let batch: Batch = serde_json::from_value(serde_json::json!({"count": 2, "results": [
    ///     {"history_id": 1, "history_date": "2024-01-01T00:00:00Z", "history_change_reason": null,
    ///      "history_user_id": null, "history_type": "+", "_uid": "r1",
    ///      "_type": "doc_on_change_room", "_version": 1, "size": 20},
    ///     {"history_id": 2, "history_date": "2024-01-02T00:00:00Z", "history_change_reason": null,
    ///      "history_user_id": null, "history_type": "-", "_uid": "r1",
    ///      "_type": "doc_on_change_room", "_version": 2}
    /// ]}))?;
    /// replica.apply(&batch)?;
    /// assert_eq!(*seen.lock().unwrap(), [("r1".to_owned(), Some(20)), ("r1".to_owned(), None)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_change<T: Replicated>(
        mut self,
        callback: impl Fn(&HistoryRecord, Option<&T>) -> Result<(), BoxError> + Send + Sync + 'static,
    ) -> Self {
        let typed: Callback = Arc::new(move |record, value| {
            callback(record, value.and_then(|value| value.downcast_ref::<T>()))
        });
        self.kind_mut::<T>().callbacks.push(typed);
        self
    }

    /// Calls `callback` for each applied change of every registered type,
    /// after the callbacks of its type, inside the batch's transaction, with
    /// the record (its fields as JSON). As for [`on_change`](Self::on_change),
    /// an error rolls the batch back.
    ///
    /// ```
    /// use es_core::interface::replication::Replica;
    /// let replica = Replica::sqlite(es_core::persistence::SqliteDatabase::open_in_memory()?)?
    ///     .on_any_change(|record| {
    ///         println!("{} {} is at version {}", record.kind, record.uid, record.version);
    ///         Ok(())
    ///     });
    /// # let _ = replica;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn on_any_change(
        mut self,
        callback: impl Fn(&HistoryRecord) -> Result<(), BoxError> + Send + Sync + 'static,
    ) -> Self {
        self.all_callbacks
            .push(Arc::new(move |record, _| callback(record)));
        self
    }

    /// Applies `batch` in one transaction, by the rules of the
    /// [module](self): what was applied and what skipped, or, on any error,
    /// nothing applied. The records are checked (types registered, fields
    /// fitting them, `count` right) before the database is touched.
    ///
    /// ```
    /// use es_core::interface::replication::{Batch, Replica, ReplicaError};
    /// let replica = Replica::sqlite(es_core::persistence::SqliteDatabase::open_in_memory()?)?;
    /// let batch: Batch = serde_json::from_value(serde_json::json!({"count": 1, "results": [{
    ///     "history_id": 1, "history_date": "2024-01-01T00:00:00Z", "history_change_reason": null,
    ///     "history_user_id": null, "history_type": "+", "_uid": "u1", "_type": "doc_apply_unknown",
    ///     "_version": 1
    /// }]}))?;
    /// assert!(matches!(replica.apply(&batch), Err(ReplicaError::UnknownType { .. })));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn apply(&self, batch: &Batch) -> Result<Applied, ReplicaError> {
        if batch.count != batch.results.len() {
            return Err(ReplicaError::CountMismatch {
                count: batch.count,
                held: batch.results.len(),
            });
        }
        let checked = batch
            .results
            .iter()
            .map(|record| self.check(record))
            .collect::<Result<Vec<_>, _>>()?;
        let mut applied = 0;
        let rows: Vec<&RecordRow<'_>> = checked.iter().map(|record| &record.row).collect();
        self.store.write(&mut |writer| {
            // Counted from zero on each run of the work, so the count is
            // the committed transaction's.
            applied = 0;
            let written = writer.write_rows(&rows, self.history)?;
            for (record, written) in checked.iter().zip(written) {
                if written {
                    self.notify(record)?;
                    applied += 1;
                }
            }
            Ok(())
        })?;
        Ok(Applied {
            applied,
            skipped: batch.results.len() - applied,
        })
    }

    /// `record`'s type and fields checked, ready to write.
    fn check<'r>(&'r self, record: &'r HistoryRecord) -> Result<Checked<'r>, ReplicaError> {
        let kind =
            self.kinds
                .get(record.kind.as_str())
                .ok_or_else(|| ReplicaError::UnknownType {
                    kind: record.kind.clone(),
                })?;
        let invalid = |reason: String| ReplicaError::InvalidRecord {
            kind: record.kind.clone(),
            uid: record.uid.clone(),
            reason,
        };
        let deleted = record.history_type == HistoryType::Deleted;
        // A tombstone's fields may be empty: they are kept, not read.
        let value = if deleted {
            None
        } else {
            Some((kind.decode)(&record.fields).map_err(|e| invalid(e.to_string()))?)
        };
        let version = i64::try_from(record.version)
            .map_err(|_| invalid(format!("_version {} is beyond 2^63 - 1", record.version)))?;
        let history_id = i64::try_from(record.history_id).map_err(|_| {
            invalid(format!(
                "history_id {} is beyond 2^63 - 1",
                record.history_id
            ))
        })?;
        let state = serde_json::to_string(&record.fields).map_err(|e| invalid(e.to_string()))?;
        Ok(Checked {
            record,
            kind,
            value,
            row: RecordRow {
                kind: &record.kind,
                uid: &record.uid,
                version,
                deleted,
                state,
                history_id,
                history_date: date_to_sql(&record.history_date),
                history_type: record.history_type.code(),
                change_reason: record.history_change_reason.as_deref(),
                user_id: record.history_user_id.as_deref(),
            },
        })
    }

    fn notify(&self, checked: &Checked<'_>) -> Result<(), ReplicaError> {
        let value = checked.value.as_deref();
        for callback in checked.kind.callbacks.iter().chain(&self.all_callbacks) {
            callback(checked.record, value).map_err(ReplicaError::Callback)?;
        }
        Ok(())
    }

    fn known<T: Replicated>(&self) -> Result<(), ReplicaError> {
        if self.is_replicated(T::TYPE) {
            Ok(())
        } else {
            Err(ReplicaError::UnknownType {
                kind: T::TYPE.to_owned(),
            })
        }
    }

    /// The live copy of `uid`, or `None` if none was applied or the last
    /// applied change deleted it. `T` must be registered.
    ///
    /// ```
    /// use es_core::interface::replication::{Replica, Replicated};
    /// #[derive(serde::Deserialize)]
    /// struct DocGetCopy { name: String }
    /// impl Replicated for DocGetCopy { const TYPE: &'static str = "doc_get_copy"; }
    /// let replica = Replica::sqlite(es_core::persistence::SqliteDatabase::open_in_memory()?)?
    ///     .replicate::<DocGetCopy>();
    /// assert!(replica.get::<DocGetCopy>("nobody")?.is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get<T: Replicated>(&self, uid: &str) -> Result<Option<ReplicaCopy<T>>, ReplicaError> {
        self.known::<T>()?;
        match self.store.entity(T::TYPE, uid)? {
            Some(row) if !row.deleted => copy_of(row).map(Some),
            _ => Ok(None),
        }
    }

    /// The live copies of type `T`, in `uid` order (bytewise). `T` must be
    /// registered.
    ///
    /// ```
    /// use es_core::interface::replication::{Replica, Replicated};
    /// #[derive(serde::Deserialize)]
    /// struct DocAllCopy { name: String }
    /// impl Replicated for DocAllCopy { const TYPE: &'static str = "doc_all_copy"; }
    /// let replica = Replica::sqlite(es_core::persistence::SqliteDatabase::open_in_memory()?)?
    ///     .replicate::<DocAllCopy>();
    /// assert!(replica.all::<DocAllCopy>()?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn all<T: Replicated>(&self) -> Result<Vec<ReplicaCopy<T>>, ReplicaError> {
        self.known::<T>()?;
        self.store
            .live_entities(T::TYPE)?
            .into_iter()
            .map(copy_of)
            .collect()
    }

    /// The version held of `uid`, live or deleted, or `None` if no change of
    /// it was applied. `T` must be registered.
    ///
    /// ```
    /// use es_core::interface::replication::{Replica, Replicated};
    /// #[derive(serde::Deserialize)]
    /// struct DocVersionCopy {}
    /// impl Replicated for DocVersionCopy { const TYPE: &'static str = "doc_version_copy"; }
    /// let replica = Replica::sqlite(es_core::persistence::SqliteDatabase::open_in_memory()?)?
    ///     .replicate::<DocVersionCopy>();
    /// assert_eq!(replica.version::<DocVersionCopy>("u1")?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn version<T: Replicated>(
        &self,
        uid: &str,
    ) -> Result<Option<ReplicaVersion>, ReplicaError> {
        self.known::<T>()?;
        let Some(row) = self.store.entity(T::TYPE, uid)? else {
            return Ok(None);
        };
        Ok(Some(ReplicaVersion {
            version: from_sql(row.version, "version")?,
            deleted: row.deleted,
        }))
    }

    /// The applied records of `uid`, in the order they were applied, as they
    /// came (fields as JSON); since only a newer version is applied, their
    /// versions rise, and a record applied twice or out of order would show.
    /// Only for a replica built [`with_history`](Self::with_history).
    /// `T` must be registered.
    ///
    /// ```
    /// use es_core::interface::replication::{Replica, ReplicaError, Replicated};
    /// #[derive(serde::Deserialize)]
    /// struct DocHistoryCopy {}
    /// impl Replicated for DocHistoryCopy { const TYPE: &'static str = "doc_history_copy"; }
    /// let db = es_core::persistence::SqliteDatabase::open_in_memory()?;
    /// let without = Replica::sqlite(db.clone())?.replicate::<DocHistoryCopy>();
    /// assert!(matches!(without.history::<DocHistoryCopy>("u1"), Err(ReplicaError::HistoryNotKept)));
    /// let with = Replica::sqlite(db)?.with_history()?.replicate::<DocHistoryCopy>();
    /// assert!(with.history::<DocHistoryCopy>("u1")?.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn history<T: Replicated>(&self, uid: &str) -> Result<Vec<HistoryRecord>, ReplicaError> {
        self.known::<T>()?;
        if !self.history {
            return Err(ReplicaError::HistoryNotKept);
        }
        self.store
            .history(T::TYPE, uid)?
            .into_iter()
            .map(|row| history_record(T::TYPE, uid, row))
            .collect()
    }
}

/// A record checked against its type, with its row.
struct Checked<'r> {
    record: &'r HistoryRecord,
    kind: &'r Kind,
    value: Option<Decoded>,
    row: RecordRow<'r>,
}

fn date_to_sql(date: &DateTime<Utc>) -> String {
    date.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn date_from_sql(text: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(text)
        .map(|date| date.with_timezone(&Utc))
        .map_err(|e| Error::database("reading a replica's history_date", e))
}

fn from_sql(value: i64, column: &'static str) -> Result<u64, Error> {
    u64::try_from(value).map_err(|_| {
        Error::database(
            "reading a replica's copy",
            format!("{column} {value} is negative: the table was written by something else"),
        )
    })
}

fn copy_of<T: Replicated>(row: EntityRow) -> Result<ReplicaCopy<T>, ReplicaError> {
    let value = serde_json::from_str(&row.state).map_err(|e| ReplicaError::InvalidRecord {
        kind: T::TYPE.to_owned(),
        uid: row.uid.clone(),
        reason: format!("the stored copy cannot be read as the type: {e}"),
    })?;
    Ok(ReplicaCopy {
        version: from_sql(row.version, "version")?,
        history_id: from_sql(row.history_id, "history_id")?,
        history_date: date_from_sql(&row.history_date)?,
        uid: row.uid,
        value,
    })
}

fn history_record(kind: &str, uid: &str, row: HistoryRow) -> Result<HistoryRecord, ReplicaError> {
    let history_type = match row.history_type.as_str() {
        "+" => HistoryType::Created,
        "~" => HistoryType::Changed,
        "-" => HistoryType::Deleted,
        other => {
            return Err(Error::database(
                "reading a replica's history",
                format!("history_type {other:?} is none of +, ~, -"),
            )
            .into());
        }
    };
    let fields = serde_json::from_str(&row.fields)
        .map_err(|e| Error::database("reading a replica's history", e))?;
    Ok(HistoryRecord {
        history_id: from_sql(row.history_id, "history_id")?,
        history_date: date_from_sql(&row.history_date)?,
        history_change_reason: row.change_reason,
        history_user_id: row.user_id,
        history_type,
        uid: uid.to_owned(),
        kind: kind.to_owned(),
        version: from_sql(row.version, "version")?,
        fields,
    })
}

#[cfg(all(test, feature = "sqlite"))]
mod tests;
