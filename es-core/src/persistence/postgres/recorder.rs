//! The recorder traits on PostgreSQL tables.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use postgres::error::SqlState;
use postgres::types::ToSql;
use uuid::Uuid;

use super::config::{OriginatorIdType, checked_prefix};
use super::pool::{PostgresDatabase, Transaction, pg_error};
use crate::domain::id::OriginatorId;
use crate::error::{Error, Result};
use crate::persistence::recorder::{AggregateRecorder, ApplicationRecorder, EventQuery};
use crate::persistence::sql::{
    clamp, notification_from_sql, notification_id_from_sql, version_from_sql, version_to_sql,
};
use crate::persistence::stored_event::{Notification, StoredEvent};

/// A recorder over one table of a [`PostgresDatabase`]: the events table (with
/// the notification log) or the snapshots table.
///
/// An insert is one transaction of three round trips whatever the number of
/// events (begin with the lock, one multi-row insert, commit); every statement
/// is prepared once per pooled connection. A connection the server closed is
/// replaced and the work done again where that cannot write twice; a lost
/// reply to a COMMIT is settled by looking for the events.
///
/// ```
/// use es_core::persistence::*;
/// # let url = std::env::var("ES_TEST_POSTGRES_URL")
/// #     .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
/// let db = PostgresDatabase::open(&PostgresConfig::from_url(&url)?)?;
/// let recorder = match PostgresRecorder::events(db, Some("doc_example"), true) {
///     Ok(recorder) => recorder,
/// #   Err(Error::Database { .. }) if std::env::var("CI").as_deref() != Ok("true") => return Ok(()),
///     Err(error) => return Err(error),
/// };
/// assert_eq!(recorder.table(), "public.doc_example_events");
/// let event = StoredEvent {
///     originator_id: uuid::Uuid::new_v4().into(), originator_version: 1, topic: "T".into(), state: vec![1],
/// };
/// let ids = recorder.insert_events(&[event.clone()])?;
/// assert!(recorder.insert_events(&[event]).unwrap_err().is_conflict());
/// assert_eq!(recorder.max_notification_id()?, ids.last().copied());
/// # use es_core::Error;
/// # Ok::<(), es_core::Error>(())
/// ```
#[derive(Debug)]
pub struct PostgresRecorder {
    pub(super) db: Arc<PostgresDatabase>,
    /// `schema.table`, for messages.
    pub(super) name: String,
    /// `"schema"."table"`, for SQL.
    pub(super) quoted: String,
    pub(super) with_log: bool,
    insert_sql: String,
    /// Starts a write: `BEGIN`, and for the events table its lock.
    begin_sql: String,
    pub(super) id_type: OriginatorIdType,
}

impl PostgresRecorder {
    /// The recorder of events and the notification log, in the table
    /// `<prefix>_events` (`stored_events` without a prefix). Creates the table
    /// if `create_table` and it does not exist yet.
    pub fn events(
        db: Arc<PostgresDatabase>,
        table_prefix: Option<&str>,
        create_table: bool,
    ) -> Result<Self> {
        let table = match table_prefix {
            Some(prefix) => format!("{}_events", checked_prefix(prefix)?),
            None => "stored_events".to_owned(),
        };
        Self::new(db, &table, true, create_table)
    }

    /// The recorder of snapshots, in the table `<prefix>_snapshots`
    /// (`snapshots` without a prefix). Creates the table if `create_table` and
    /// it does not exist yet.
    pub fn snapshots(
        db: Arc<PostgresDatabase>,
        table_prefix: Option<&str>,
        create_table: bool,
    ) -> Result<Self> {
        let table = match table_prefix {
            Some(prefix) => format!("{}_snapshots", checked_prefix(prefix)?),
            None => "snapshots".to_owned(),
        };
        Self::new(db, &table, false, create_table)
    }

    /// The table, as `schema.table`.
    pub fn table(&self) -> &str {
        &self.name
    }

    fn new(db: Arc<PostgresDatabase>, table: &str, with_log: bool, create: bool) -> Result<Self> {
        // Both names passed `checked_identifier`, so quoting is all they need.
        let quoted = format!("\"{}\".\"{}\"", db.schema, table);
        let name = format!("{}.{}", db.schema, table);
        let id_type = db.originator_id_type_of(table)?;
        let insert_sql = if with_log {
            // Ordinality keeps the batch's order through the insert, so the
            // sequence hands out ids in batch order.
            format!(
                "INSERT INTO {quoted} (originator_id, originator_version, topic, state) \
                 SELECT i, v, t, s FROM unnest($1::{id_type}[], $2::bigint[], $3::text[], $4::bytea[]) \
                 WITH ORDINALITY AS e(i, v, t, s, n) ORDER BY n \
                 RETURNING notification_id"
            )
        } else {
            format!(
                "INSERT INTO {quoted} (originator_id, originator_version, topic, state) \
                 SELECT * FROM unnest($1::{id_type}[], $2::bigint[], $3::text[], $4::bytea[])"
            )
        };
        let recorder = PostgresRecorder {
            // Notification ids come from a sequence, which hands them out when
            // rows are inserted, not when they commit: without more, a
            // transaction that took id 7 can commit after one that took id 8, and
            // a follower that has read up to 8 never sees 7. Holding this lock
            // from before the ids are taken until the commit makes writers take
            // ids and commit one at a time, so commit order is id order and a
            // reader that has seen id n will never find a new event below n
            // (only gaps left by rolled-back inserts, forever empty). This is
            // the Python library's choice; EXCLUSIVE mode does not conflict
            // with ACCESS SHARE, so plain SELECTs (readers, followers) are never
            // blocked by it. The cost is that writes to one application's events
            // table are serialized; the wait is bounded by the lock timeout.
            begin_sql: if with_log {
                format!("BEGIN; LOCK TABLE {quoted} IN EXCLUSIVE MODE")
            } else {
                "BEGIN".to_owned()
            },
            id_type,
            db,
            name,
            quoted,
            with_log,
            insert_sql,
        };
        if create {
            recorder.create_table()?;
        }
        Ok(recorder)
    }

    /// The batch's ids as the column wants them; a text id for a `uuid`
    /// column is an [`Error::InvalidId`] saying what to set.
    fn ids_to_sql(&self, events: &[StoredEvent]) -> Result<IdsParam> {
        match self.id_type {
            OriginatorIdType::Uuid => events
                .iter()
                .map(|event| self.uuid_of(&event.originator_id))
                .collect::<Result<_>>()
                .map(IdsParam::Uuid),
            OriginatorIdType::Text => Ok(IdsParam::Text(
                events.iter().map(|e| e.originator_id.to_string()).collect(),
            )),
        }
    }

    fn uuid_of(&self, id: &OriginatorId) -> Result<Uuid> {
        id.as_uuid().ok_or_else(|| Error::InvalidId {
            id: id.to_string(),
            reason: format!(
                "the PostgreSQL table {} keeps originator ids as uuid, and this is a text id; \
                 set ORIGINATOR_ID_TYPE=text (or PostgresConfig::originator_id_type) to keep \
                 text ids, in tables created with that setting",
                self.name
            ),
        })
    }

    /// One id as a query parameter.
    fn id_to_sql(&self, id: &OriginatorId) -> Result<Box<dyn ToSql + Sync>> {
        Ok(match self.id_type {
            OriginatorIdType::Uuid => Box::new(self.uuid_of(id)?),
            OriginatorIdType::Text => Box::new(id.to_string()),
        })
    }

    /// The id in column `index` of `row`: a stored text id that is not valid is
    /// an [`Error::Corrupt`] naming it, not a panic.
    fn id_from_row(&self, row: &postgres::Row, index: usize) -> Result<OriginatorId> {
        let read = |e| pg_error("reading originator ids", e);
        match self.id_type {
            OriginatorIdType::Uuid => row.try_get::<_, Uuid>(index).map(Into::into).map_err(read),
            OriginatorIdType::Text => {
                let text: String = row.try_get(index).map_err(read)?;
                OriginatorId::text(&text).map_err(|error| {
                    Error::Corrupt(format!(
                        "a stored originator id in {} is not valid: {error}",
                        self.name
                    ))
                })
            }
        }
    }

    /// The first event of `events` whose key was already recorded, after the
    /// insert failed on a unique violation (and so wrote nothing).
    fn first_taken(
        &self,
        events: &[StoredEvent],
        ids: &IdsParam,
        versions: &[i64],
    ) -> Result<Option<usize>> {
        let rows = self.rows_of(
            "finding the conflicting event",
            "originator_id, originator_version",
            ids,
            versions,
        )?;
        let taken = rows
            .iter()
            .map(|row| {
                let version = row
                    .try_get::<_, i64>(1)
                    .map_err(|e| pg_error("finding the conflicting event", e))?;
                Ok((self.id_from_row(row, 0)?, version))
            })
            .collect::<Result<HashSet<_>>>()?;
        Ok((0..events.len())
            .find(|&i| taken.contains(&(events[i].originator_id.clone(), versions[i]))))
    }

    /// The notification ids of `events` if every one of them is recorded just
    /// as it is here, else `None`: what a commit whose reply was lost did.
    fn recorded_ids(
        &self,
        events: &[StoredEvent],
        ids: &IdsParam,
        versions: &[i64],
    ) -> Result<Option<Vec<u64>>> {
        let columns = if self.with_log {
            "originator_id, originator_version, state, notification_id"
        } else {
            "originator_id, originator_version, state"
        };
        let operation = "checking a commit whose reply was lost";
        let rows = self.rows_of(operation, columns, ids, versions)?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            let version: i64 = row.try_get(1).map_err(|e| pg_error(operation, e))?;
            let state: Vec<u8> = row.try_get(2).map_err(|e| pg_error(operation, e))?;
            let notification_id = if self.with_log {
                Some(
                    row.try_get::<_, i64>(3)
                        .map_err(|e| pg_error(operation, e))?,
                )
            } else {
                None
            };
            found.insert(
                (self.id_from_row(row, 0)?, version),
                (state, notification_id),
            );
        }
        let mut notification_ids = Vec::with_capacity(events.len());
        for (event, version) in events.iter().zip(versions) {
            match found.get(&(event.originator_id.clone(), *version)) {
                Some((state, id)) if *state == event.state => {
                    if let Some(id) = id {
                        notification_ids.push(notification_id_from_sql(*id)?);
                    }
                }
                _ => return Ok(None),
            }
        }
        notification_ids.sort_unstable();
        Ok(Some(notification_ids))
    }

    /// `columns` of the rows with the given ids and versions.
    fn rows_of(
        &self,
        operation: &'static str,
        columns: &str,
        ids: &IdsParam,
        versions: &[i64],
    ) -> Result<Vec<postgres::Row>> {
        let sql = format!(
            "SELECT {columns} FROM {} \
             WHERE (originator_id, originator_version) IN \
             (SELECT * FROM unnest($1::{}[], $2::bigint[]))",
            self.quoted,
            self.id_type.as_str()
        );
        self.db.read(operation, |connection| {
            let statement = connection.prepare(&sql)?;
            connection
                .client
                .query(&statement, &[ids.as_sql(), &versions])
        })
    }
}

/// Where a write failed: before COMMIT was sent (the server rolls back), or
/// at the COMMIT itself (it may have happened).
enum Write {
    Before(postgres::Error),
    Commit(postgres::Error),
}

/// A batch's ids as one array parameter, of the column's type.
enum IdsParam {
    Uuid(Vec<Uuid>),
    Text(Vec<String>),
}

impl IdsParam {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            IdsParam::Uuid(ids) => ids,
            IdsParam::Text(ids) => ids,
        }
    }
}

impl AggregateRecorder for PostgresRecorder {
    fn insert_events(&self, events: &[StoredEvent]) -> Result<Vec<u64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut in_batch = HashSet::with_capacity(events.len());
        for event in events {
            if !in_batch.insert((&event.originator_id, event.originator_version)) {
                return Err(Error::Conflict {
                    originator_id: event.originator_id.clone(),
                    originator_version: event.originator_version,
                });
            }
        }
        let ids = self.ids_to_sql(events)?;
        let versions = events
            .iter()
            .map(|e| version_to_sql(&e.originator_id, e.originator_version))
            .collect::<Result<Vec<i64>>>()?;
        let topics: Vec<&str> = events.iter().map(|e| e.topic.as_str()).collect();
        let states: Vec<&[u8]> = events.iter().map(|e| e.state.as_slice()).collect();

        let params: [&(dyn ToSql + Sync); 4] = [ids.as_sql(), &versions, &topics, &states];
        let attempt = self.db.run(
            |connection| {
                let insert = connection
                    .prepare(&self.insert_sql)
                    .map_err(Write::Before)?;
                // BEGIN and the lock go in one round trip: a save is then as
                // many round trips as a bare transaction of one insert.
                let transaction = Transaction::begin(&mut connection.client, &self.begin_sql)
                    .map_err(Write::Before)?;
                let rows = transaction
                    .client
                    .query(&insert, &params)
                    .map_err(Write::Before)?;
                transaction.commit().map_err(Write::Commit)?;
                Ok(rows)
            },
            // A session that ends before COMMIT is rolled back by the server,
            // so only then is trying again sure not to write twice.
            |failure| matches!(failure, Write::Before(_)),
        )?;
        let rows = match attempt {
            Ok(rows) => rows,
            Err(Write::Before(error)) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                // The transaction rolled back, so nothing was written. Name the
                // first of the batch's events that another writer recorded.
                return match self.first_taken(events, &ids, &versions)? {
                    Some(i) => Err(Error::Conflict {
                        originator_id: events[i].originator_id.clone(),
                        originator_version: events[i].originator_version,
                    }),
                    None => Err(pg_error("inserting events", error)),
                };
            }
            Err(Write::Before(error)) => return Err(pg_error("inserting events", error)),
            Err(Write::Commit(error)) => {
                // The connection may have been lost after the server committed
                // and before it said so: look, rather than guess either way.
                return match self.recorded_ids(events, &ids, &versions)? {
                    Some(notification_ids) => Ok(notification_ids),
                    None => Err(pg_error(
                        "committing events (they were not recorded)",
                        error,
                    )),
                };
            }
        };
        let mut notification_ids = rows
            .iter()
            .map(|row| {
                let id: i64 = row
                    .try_get(0)
                    .map_err(|e| pg_error("reading notification ids", e))?;
                notification_id_from_sql(id)
            })
            .collect::<Result<Vec<u64>>>()?;
        // The ids were taken in batch order; RETURNING need not list them so.
        notification_ids.sort_unstable();
        Ok(notification_ids)
    }

    fn select_events(
        &self,
        originator_id: &OriginatorId,
        query: EventQuery,
    ) -> Result<Vec<StoredEvent>> {
        let id_param = self.id_to_sql(originator_id)?;
        let mut sql = format!(
            "SELECT originator_version, topic, state FROM {} WHERE originator_id = $1",
            self.quoted
        );
        let gt = query.gt.map(clamp);
        let lte = query.lte.map(clamp);
        let limit = query.limit.map(clamp);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![id_param.as_ref()];
        if let Some(gt) = &gt {
            params.push(gt);
            let _ = write!(sql, " AND originator_version > ${}", params.len());
        }
        if let Some(lte) = &lte {
            params.push(lte);
            let _ = write!(sql, " AND originator_version <= ${}", params.len());
        }
        sql.push_str(if query.desc {
            " ORDER BY originator_version DESC"
        } else {
            " ORDER BY originator_version"
        });
        if let Some(limit) = &limit {
            params.push(limit);
            let _ = write!(sql, " LIMIT ${}", params.len());
        }
        let rows = self.db.read("selecting events", |connection| {
            let statement = connection.prepare(&sql)?;
            connection.client.query(&statement, &params)
        })?;
        rows.iter()
            .map(|row| {
                let (version, topic, state) = (|| {
                    Ok::<_, postgres::Error>((
                        row.try_get::<_, i64>(0)?,
                        row.try_get::<_, String>(1)?,
                        row.try_get::<_, Vec<u8>>(2)?,
                    ))
                })()
                .map_err(|e| pg_error("reading events", e))?;
                Ok(StoredEvent {
                    originator_id: originator_id.clone(),
                    originator_version: version_from_sql(originator_id, version)?,
                    topic,
                    state,
                })
            })
            .collect()
    }
}

impl ApplicationRecorder for PostgresRecorder {
    fn select_notifications(
        &self,
        start: u64,
        limit: usize,
        stop: Option<u64>,
        topics: &[&str],
    ) -> Result<Vec<Notification>> {
        if !self.with_log {
            return Ok(Vec::new());
        }
        let mut sql = format!(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {} \
             WHERE notification_id >= $1",
            self.quoted
        );
        let start = clamp(start);
        let stop = stop.map(clamp);
        let limit = clamp(limit);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&start];
        if let Some(stop) = &stop {
            params.push(stop);
            let _ = write!(sql, " AND notification_id <= ${}", params.len());
        }
        if !topics.is_empty() {
            params.push(&topics);
            let _ = write!(sql, " AND topic = ANY(${}::text[])", params.len());
        }
        params.push(&limit);
        let _ = write!(sql, " ORDER BY notification_id LIMIT ${}", params.len());
        let rows = self.db.read("selecting notifications", |connection| {
            let statement = connection.prepare(&sql)?;
            connection.client.query(&statement, &params)
        })?;
        rows.iter()
            .map(|row| {
                let (id, version, topic, state) = (|| {
                    Ok::<_, postgres::Error>((
                        row.try_get::<_, i64>(0)?,
                        row.try_get::<_, i64>(2)?,
                        row.try_get::<_, String>(3)?,
                        row.try_get::<_, Vec<u8>>(4)?,
                    ))
                })()
                .map_err(|e| pg_error("reading notifications", e))?;
                let originator_id = self.id_from_row(row, 1)?;
                notification_from_sql(id, originator_id, version, topic, state)
            })
            .collect()
    }

    fn max_notification_id(&self) -> Result<Option<u64>> {
        if !self.with_log {
            return Ok(None);
        }
        let sql = format!("SELECT max(notification_id) FROM {}", self.quoted);
        let max: Option<i64> =
            self.db
                .read("reading the highest notification id", |connection| {
                    let statement = connection.prepare(&sql)?;
                    connection.client.query_one(&statement, &[])?.try_get(0)
                })?;
        max.map(notification_id_from_sql).transpose()
    }
}
