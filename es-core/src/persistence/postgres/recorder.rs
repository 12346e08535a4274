//! The recorder traits on PostgreSQL tables.

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use uuid::Uuid;

use super::config::{OriginatorIdType, checked_prefix};
use super::listen::PostgresListener;
use super::pool::{CachingConnection, PostgresDatabase, Transaction, pg_error};
use super::tracking::{TrackingParam, TrackingTable};
use crate::domain::id::OriginatorId;
use crate::error::{Error, Result};
use crate::persistence::group_commit::GroupCommit;
use crate::persistence::listen::Listener;
use crate::persistence::recorder::{
    AggregateRecorder, ApplicationRecorder, EventQuery, SnapshotOrEvent, collect_visited,
    visit_from_snapshot_in_two_reads,
};
use crate::persistence::sql::{
    clamp, notification_from_sql, notification_id_from_sql, undecodable, version_from_sql,
    version_to_sql,
};
use crate::persistence::stored_event::{Notification, StoredEvent};

/// A recorder over one table of a [`PostgresDatabase`]: the events table (with
/// the notification log) or the snapshots table.
///
/// Saves from several threads that arrive while one is being written share
/// the next transaction (group commit), each undone alone if it conflicts. A
/// transaction is three round trips whatever the number of saves and events
/// (begin with the lock, one multi-row insert, commit); every statement is
/// prepared once per pooled connection. A connection the server closed is
/// replaced and the work done again where that cannot write twice; a lost
/// reply to a COMMIT is settled by looking for the events, and if the server
/// cannot be reached to look, the save fails with [`Error::OutcomeUnknown`].
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
    /// Starts a group's write: `begin_sql`, and a savepoint to undo the
    /// group's insert to if it hits a taken key.
    begin_group_sql: String,
    /// Where concurrent saves meet to share a transaction.
    commits: GroupCommit<Save, Written>,
    pub(super) id_type: OriginatorIdType,
    /// The follower positions' table, beside an events table.
    pub(super) tracking: Option<TrackingTable>,
    /// The channel an events table's commits notify, quoted; `None` for
    /// snapshots, which no one listens to.
    pub(super) channel: Option<String>,
    /// Ends a write that recorded events: the notification, then COMMIT.
    commit_sql: String,
}

impl PostgresRecorder {
    /// The database the recorder writes to, for tables kept beside its own.
    pub(crate) fn database(&self) -> &Arc<PostgresDatabase> {
        &self.db
    }

    /// The recorder of events and the notification log, in the table
    /// `<prefix>_events` (`stored_events` without a prefix). Creates the table
    /// if `create_table` and it does not exist yet.
    pub fn events(
        db: Arc<PostgresDatabase>,
        table_prefix: Option<&str>,
        create_table: bool,
    ) -> Result<Self> {
        let (table, tracking) = match table_prefix {
            Some(prefix) => {
                let prefix = checked_prefix(prefix)?;
                (format!("{prefix}_events"), format!("{prefix}_tracking"))
            }
            None => (
                "stored_events".to_owned(),
                "notification_tracking".to_owned(),
            ),
        };
        Self::new(db, &table, Some(&tracking), create_table)
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
        Self::new(db, &table, None, create_table)
    }

    /// The table, as `schema.table`.
    pub fn table(&self) -> &str {
        &self.name
    }

    /// A recorder of `table`; an events table (with the log) if it has a
    /// `tracking` table beside it.
    fn new(
        db: Arc<PostgresDatabase>,
        table: &str,
        tracking: Option<&str>,
        create: bool,
    ) -> Result<Self> {
        let with_log = tracking.is_some();
        // The names passed `checked_identifier`, so quoting is all they need.
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
        // blocked by it. Writes to one application's events table are thus
        // serialized, the wait bounded by the lock timeout; what keeps that
        // from capping throughput is that concurrent saves of one recorder
        // share a transaction, and so one turn with the lock (group_commit).
        let begin_sql = if with_log {
            format!("BEGIN; LOCK TABLE {quoted} IN EXCLUSIVE MODE")
        } else {
            "BEGIN".to_owned()
        };
        // The table's own name, as the Python library names its channel, so
        // that its listeners hear these commits too. Tables of one name in
        // two schemas share it, which only wakes each other's readers for
        // nothing.
        let channel = with_log.then(|| format!("\"{table}\""));
        let commit_sql = match &channel {
            Some(channel) => format!("NOTIFY {channel}; COMMIT"),
            None => "COMMIT".to_owned(),
        };
        let recorder = PostgresRecorder {
            channel,
            commit_sql,
            begin_sql: begin_sql.clone(),
            begin_group_sql: format!("{begin_sql}; SAVEPOINT es_group"),
            commits: GroupCommit::default(),
            id_type,
            tracking: tracking.map(|table| TrackingTable::new(&db.schema, table)),
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

    /// The id in column `index` of `row`, of the row named `row_name`: a
    /// stored id that does not decode or is not valid is an [`Error::Corrupt`]
    /// naming it, not a panic.
    fn id_from_row(
        &self,
        row: &postgres::Row,
        index: usize,
        row_name: &dyn std::fmt::Display,
    ) -> Result<OriginatorId> {
        let undecodable = |e| undecodable(row_name, &self.name, "originator_id", e);
        match self.id_type {
            OriginatorIdType::Uuid => row
                .try_get::<_, Uuid>(index)
                .map(Into::into)
                .map_err(undecodable),
            OriginatorIdType::Text => {
                let text: String = row.try_get(index).map_err(undecodable)?;
                OriginatorId::text(&text).map_err(|error| {
                    Error::Corrupt(format!(
                        "{row_name}: a stored originator id in {} is not valid: {error}",
                        self.name
                    ))
                })
            }
        }
    }

    /// One of `originator_id`'s events (or snapshots) from the columns
    /// (version, topic, state) of `row` from index `first` on.
    fn event_from_row(
        &self,
        originator_id: &OriginatorId,
        row: &postgres::Row,
        first: usize,
    ) -> Result<StoredEvent> {
        let version: i64 = row.try_get(first).map_err(|e| {
            undecodable(
                format_args!("an event of {originator_id}"),
                &self.name,
                "originator_version",
                e,
            )
        })?;
        let name = || format!("event {originator_id} version {version}");
        let topic: String = row
            .try_get(first + 1)
            .map_err(|e| undecodable(name(), &self.name, "topic", e))?;
        let state: Vec<u8> = row
            .try_get(first + 2)
            .map_err(|e| undecodable(name(), &self.name, "state", e))?;
        Ok(StoredEvent {
            originator_id: originator_id.clone(),
            originator_version: version_from_sql(originator_id, version)?,
            topic,
            state,
        })
    }

    /// A notification from a row of (id, originator id, version, topic, state).
    fn notification_from_row(&self, row: &postgres::Row) -> Result<Notification> {
        let id: i64 = row
            .try_get(0)
            .map_err(|e| undecodable("a notification", &self.name, "notification_id", e))?;
        let originator_id = self.id_from_row(row, 1, &format_args!("notification {id}"))?;
        let name = format!("notification {id} (an event of {originator_id})");
        let version: i64 = row
            .try_get(2)
            .map_err(|e| undecodable(&name, &self.name, "originator_version", e))?;
        let name = format!("notification {id} (event {originator_id} version {version})");
        let topic: String = row
            .try_get(3)
            .map_err(|e| undecodable(&name, &self.name, "topic", e))?;
        let state: Vec<u8> = row
            .try_get(4)
            .map_err(|e| undecodable(&name, &self.name, "state", e))?;
        notification_from_sql(id, originator_id, version, topic, state)
    }

    /// The statement and parameters that select `originator_id`'s events.
    fn select_events_sql(&self, query: EventQuery) -> (String, [Option<i64>; 3]) {
        let mut sql = format!(
            "SELECT originator_version, topic, state FROM {} WHERE originator_id = $1",
            self.quoted
        );
        let bounds = [
            query.gt.map(clamp),
            query.lte.map(clamp),
            query.limit.map(clamp),
        ];
        let mut next = 2;
        let mut param = |sql: &mut String, clause: &str, value: Option<i64>| {
            if value.is_some() {
                let _ = write!(sql, " {clause} ${next}");
                next += 1;
            }
        };
        param(&mut sql, "AND originator_version >", bounds[0]);
        param(&mut sql, "AND originator_version <=", bounds[1]);
        sql.push_str(if query.desc {
            " ORDER BY originator_version DESC"
        } else {
            " ORDER BY originator_version"
        });
        param(&mut sql, "LIMIT", bounds[2]);
        (sql, bounds)
    }

    /// The first of `events` whose key was already recorded, after their
    /// insert failed on a unique violation (and so wrote nothing).
    fn first_taken(&self, events: &[StoredEvent]) -> Result<Option<usize>> {
        let versions = versions_to_sql(events)?;
        let rows = self.rows_of(
            "finding the conflicting event",
            "originator_id, originator_version",
            &self.ids_to_sql(events)?,
            &versions,
        )?;
        let taken = rows
            .iter()
            .map(|row| {
                let version = row
                    .try_get::<_, i64>(1)
                    .map_err(|e| pg_error("finding the conflicting event", e))?;
                Ok((self.id_from_row(row, 0, &"a row")?, version))
            })
            .collect::<Result<HashSet<_>>>()?;
        Ok((0..events.len())
            .find(|&i| taken.contains(&(events[i].originator_id.clone(), versions[i]))))
    }

    /// What is recorded under the keys of `saves`: each key's state and
    /// notification id, to tell what a commit whose reply was lost did.
    fn recorded(&self, saves: &[&Save]) -> Result<Recorded> {
        #[cfg(test)]
        faults::check()?;
        let ids = IdsParam::concat(self.id_type, saves.iter().map(|save| &save.ids));
        let versions: Vec<i64> = saves
            .iter()
            .flat_map(|save| save.versions.iter().copied())
            .collect();
        let columns = if self.with_log {
            "originator_id, originator_version, state, notification_id"
        } else {
            "originator_id, originator_version, state"
        };
        let operation = "checking a commit whose reply was lost";
        let rows = self.rows_of(operation, columns, &ids, &versions)?;
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
                (self.id_from_row(row, 0, &"a row")?, version),
                (state, notification_id),
            );
        }
        Ok(found)
    }

    /// [`recorded`](Self::recorded), tried again on fresh connections with a
    /// growing pause when it fails: a lost commit reply usually means the
    /// server or the network just went away, and may be back in a moment.
    /// The last error if every attempt failed.
    fn recorded_with_retries(&self, saves: &[&Save]) -> std::result::Result<Recorded, Error> {
        let mut pause = SETTLE_FIRST_PAUSE;
        let mut attempt = 1;
        loop {
            match self.recorded(saves) {
                Ok(found) => return Ok(found),
                Err(error) if attempt >= SETTLE_ATTEMPTS => return Err(error),
                Err(_) => {
                    std::thread::sleep(pause);
                    pause *= 2;
                    attempt += 1;
                }
            }
        }
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

    /// Writes the saves of one group in one transaction under the table lock,
    /// and tells each its result: its notification ids, a conflict of its own,
    /// or the failure of the whole group.
    fn write_group(&self, saves: &[Save]) -> Vec<Result<Written>> {
        let group = GroupParams::of(self.id_type, saves);
        let attempt = self.db.run(
            |connection| self.try_group(connection, saves, &group),
            // A session that ends before COMMIT is rolled back by the server,
            // so only then is trying again sure not to write twice.
            |failure| matches!(failure, Write::Before(_)),
        );
        let outcomes = match attempt {
            Ok(Ok(outcomes)) => outcomes,
            Err(error) => return to_each(saves.len(), error),
            Ok(Err(Write::Before(error))) => {
                return to_each(saves.len(), pg_error("inserting events", error));
            }
            Ok(Err(Write::Commit(error, outcomes))) => {
                return self.settle_lost_commit(saves, outcomes, error);
            }
        };
        outcomes
            .into_iter()
            .map(|outcome| match outcome {
                Outcome::Inserted(ids) => notification_ids_from_sql(ids).map(Written::Ids),
                Outcome::Taken(error) => Ok(Written::Taken(error)),
                Outcome::Refused(error) => Err(error),
            })
            .collect()
    }

    /// One attempt at the group's transaction on `connection`.
    ///
    /// The whole group goes in one insert, so a group costs the round trips
    /// of a single save. If that insert hits a key already taken, it is
    /// undone (to a savepoint taken with the lock) and the saves go one by
    /// one, each in a savepoint of its own, so that a conflict undoes only the
    /// save that hit it. A group with tracking records goes one by one from
    /// the start, since each save's position is checked with its events.
    fn try_group(
        &self,
        connection: &mut CachingConnection,
        saves: &[Save],
        group: &GroupParams<'_>,
    ) -> std::result::Result<Vec<Outcome>, Write> {
        let insert = connection
            .prepare(&self.insert_sql)
            .map_err(Write::Before)?;
        let upsert = match &self.tracking {
            Some(table) if saves.iter().any(|save| save.tracking.is_some()) => Some(
                connection
                    .prepare(&table.upsert_sql)
                    .map_err(Write::Before)?,
            ),
            _ => None,
        };
        let statements = Statements {
            insert: &insert,
            upsert: upsert.as_ref(),
        };
        let alone = saves.len() == 1;
        // BEGIN, the lock and the savepoint go in one round trip: a group is
        // then as many round trips as a bare transaction of one insert.
        let begin = if alone {
            &self.begin_sql
        } else {
            &self.begin_group_sql
        };
        let transaction =
            Transaction::begin(&mut connection.client, begin).map_err(Write::Before)?;
        let outcomes = if alone {
            // Dropping the transaction rolls a refused save back.
            vec![self.insert_save(transaction.client, &statements, &saves[0])?]
        } else if statements.upsert.is_some() {
            transaction
                .client
                .batch_execute("SAVEPOINT es_save")
                .map_err(Write::Before)?;
            self.insert_one_by_one(transaction.client, &statements, saves)?
        } else {
            match transaction.client.query(&insert, &group.as_params()) {
                Ok(rows) => split_ids(self.ids_of(&rows).map_err(Write::Before)?, saves),
                Err(error) if is_unique_violation(&error) => {
                    transaction
                        .client
                        .batch_execute("ROLLBACK TO SAVEPOINT es_group; SAVEPOINT es_save")
                        .map_err(Write::Before)?;
                    self.insert_one_by_one(transaction.client, &statements, saves)?
                }
                Err(error) => return Err(Write::Before(error)),
            }
        };
        if !outcomes.iter().any(|o| matches!(o, Outcome::Inserted(_))) {
            return Ok(outcomes);
        }
        #[cfg(test)]
        if let Some(error) = faults::lose_commit_reply(transaction.client) {
            return Err(Write::Commit(error, outcomes));
        }
        // Listeners are told only of new events (a tracking record alone
        // adds nothing to the log); the notification is delivered at commit.
        let recorded = outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Inserted(ids) if !ids.is_empty()));
        let commit = if recorded {
            transaction.commit_with(&self.commit_sql)
        } else {
            transaction.commit()
        };
        match commit {
            Ok(()) => Ok(outcomes),
            Err(error) => Err(Write::Commit(error, outcomes)),
        }
    }

    /// Inserts each save in the savepoint `es_save`, which is open on entry:
    /// released after a save that went in, rolled back to after one that was
    /// refused (which leaves it open again for the next).
    fn insert_one_by_one(
        &self,
        client: &mut postgres::Client,
        statements: &Statements<'_>,
        saves: &[Save],
    ) -> std::result::Result<Vec<Outcome>, Write> {
        let mut outcomes = Vec::with_capacity(saves.len());
        for (i, save) in saves.iter().enumerate() {
            let last = i + 1 == saves.len();
            let outcome = self.insert_save(client, statements, save)?;
            let next = match outcome {
                Outcome::Inserted(_) if last => None,
                Outcome::Inserted(_) => Some("RELEASE SAVEPOINT es_save; SAVEPOINT es_save"),
                Outcome::Taken(_) | Outcome::Refused(_) => Some("ROLLBACK TO SAVEPOINT es_save"),
            };
            if let Some(sql) = next {
                client.batch_execute(sql).map_err(Write::Before)?;
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// One save's events, then its tracking record, if it has them. A
    /// refused save leaves what it wrote for the caller to roll back.
    fn insert_save(
        &self,
        client: &mut postgres::Client,
        statements: &Statements<'_>,
        save: &Save,
    ) -> std::result::Result<Outcome, Write> {
        let mut ids = Vec::new();
        if !save.events.is_empty() {
            let params = GroupParams::of(self.id_type, std::slice::from_ref(save));
            match client.query(statements.insert, &params.as_params()) {
                Ok(rows) => ids = self.ids_of(&rows).map_err(Write::Before)?,
                Err(error) if is_unique_violation(&error) => return Ok(Outcome::Taken(error)),
                Err(error) => return Err(Write::Before(error)),
            }
        }
        if let (Some(upsert), Some(tracking)) = (statements.upsert, &save.tracking) {
            // The events table's lock, held since BEGIN, keeps two processes
            // from inserting the same new row at once.
            let changed = client
                .execute(
                    upsert,
                    &[
                        &tracking.application_name,
                        &tracking.notification_id,
                        &tracking.lowest_id,
                    ],
                )
                .map_err(Write::Before)?;
            if changed == 0 {
                return Ok(Outcome::Refused(tracking.conflict()));
            }
        }
        Ok(Outcome::Inserted(ids))
    }

    /// The notification ids an insert returned, in the order they were taken
    /// (the batch's order), which RETURNING need not list them in.
    fn ids_of(&self, rows: &[postgres::Row]) -> std::result::Result<Vec<i64>, postgres::Error> {
        let mut ids = rows
            .iter()
            .map(|row| row.try_get::<_, i64>(0))
            .collect::<std::result::Result<Vec<i64>, _>>()?;
        ids.sort_unstable();
        Ok(ids)
    }

    /// The conflict of a save whose insert hit a taken key, naming the first
    /// of its events another save recorded.
    fn conflict(&self, events: &[StoredEvent], error: postgres::Error) -> Error {
        match self.first_taken(events) {
            Ok(Some(i)) => Error::Conflict {
                originator_id: events[i].originator_id.clone(),
                originator_version: events[i].originator_version,
            },
            Ok(None) => pg_error("inserting events", error),
            Err(error) => error,
        }
    }

    /// The results of a group whose COMMIT was sent and whose reply was lost:
    /// the connection may have gone after the server committed and before it
    /// said so. Look, rather than guess either way; if looking fails too, say
    /// that the outcome is unknown.
    fn settle_lost_commit(
        &self,
        saves: &[Save],
        outcomes: Vec<Outcome>,
        error: postgres::Error,
    ) -> Vec<Result<Written>> {
        let written: Vec<&Save> = saves
            .iter()
            .zip(&outcomes)
            .filter(|(_, outcome)| matches!(outcome, Outcome::Inserted(_)))
            .map(|(save, _)| save)
            .collect();
        let found = self.recorded_with_retries(&written);
        let not_recorded = Arc::new(pg_error(
            "committing events (they were not recorded)",
            error,
        ));
        saves
            .iter()
            .zip(outcomes)
            .map(|(save, outcome)| match (outcome, &found) {
                (Outcome::Taken(error), _) => Ok(Written::Taken(error)),
                (Outcome::Refused(error), _) => Err(error),
                // No events to look for: the position tells.
                (Outcome::Inserted(_), _) if save.events.is_empty() => {
                    match self.tracking_recorded(save.tracking.as_ref()) {
                        Ok(true) => Ok(Written::Ids(Vec::new())),
                        Ok(false) => Err(shared(&not_recorded)),
                        Err(check) => Err(check),
                    }
                }
                (Outcome::Inserted(_), Ok(found)) => match ids_if_recorded(save, found) {
                    Some(ids) => notification_ids_from_sql(ids).map(Written::Ids),
                    None => Err(shared(&not_recorded)),
                },
                (Outcome::Inserted(_), Err(check)) => Err(Error::OutcomeUnknown {
                    originator_id: save.events[0].originator_id.clone(),
                    originator_version: save.events[0].originator_version,
                    source: check.to_string().into(),
                }),
            })
            .collect()
    }
}

impl PostgresRecorder {
    /// Records `events` (checked by the caller) and `tracking` in the next
    /// group's transaction.
    pub(super) fn submit(
        &self,
        events: &[StoredEvent],
        tracking: Option<TrackingParam>,
    ) -> Result<Vec<u64>> {
        // Checked here, so that what one save got wrong never fails its group.
        let mut in_batch = HashSet::with_capacity(events.len());
        for event in events {
            if !in_batch.insert((&event.originator_id, event.originator_version)) {
                return Err(Error::Conflict {
                    originator_id: event.originator_id.clone(),
                    originator_version: event.originator_version,
                });
            }
        }
        let save = Save {
            ids: self.ids_to_sql(events)?,
            versions: versions_to_sql(events)?,
            events: events.to_vec(),
            tracking,
        };
        match self.commits.submit(save, |saves| self.write_group(saves))? {
            Written::Ids(ids) => Ok(ids),
            Written::Taken(error) => Err(self.conflict(events, error)),
        }
    }
}

/// How many times a commit whose reply was lost is looked for, and the pause
/// before the second look (doubled before each next one): about 1.5 s in all.
const SETTLE_ATTEMPTS: u32 = 5;
const SETTLE_FIRST_PAUSE: Duration = Duration::from_millis(100);

/// Each stored key's state and notification id.
type Recorded = HashMap<(OriginatorId, i64), (Vec<u8>, Option<i64>)>;

/// The notification ids of `save` if every one of its events is recorded just
/// as it is here, else `None`.
fn ids_if_recorded(save: &Save, found: &Recorded) -> Option<Vec<i64>> {
    let mut notification_ids = Vec::with_capacity(save.events.len());
    for (event, version) in save.events.iter().zip(&save.versions) {
        match found.get(&(event.originator_id.clone(), *version)) {
            Some((state, id)) if *state == event.state => {
                if let Some(id) = id {
                    notification_ids.push(*id);
                }
            }
            _ => return None,
        }
    }
    notification_ids.sort_unstable();
    Some(notification_ids)
}

fn versions_to_sql(events: &[StoredEvent]) -> Result<Vec<i64>> {
    events
        .iter()
        .map(|e| version_to_sql(&e.originator_id, e.originator_version))
        .collect()
}

fn notification_ids_from_sql(ids: Vec<i64>) -> Result<Vec<u64>> {
    ids.into_iter().map(notification_id_from_sql).collect()
}

fn is_unique_violation(error: &postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// The group's ids, in batch order, cut into each save's.
fn split_ids(ids: Vec<i64>, saves: &[Save]) -> Vec<Outcome> {
    let mut ids = ids.into_iter();
    saves
        .iter()
        .map(|save| {
            let count = if ids.len() == 0 { 0 } else { save.events.len() };
            Outcome::Inserted(ids.by_ref().take(count).collect())
        })
        .collect()
}

/// One failure, for each of `count` saves.
fn to_each<T>(count: usize, error: Error) -> Vec<Result<T>> {
    if count == 1 {
        return vec![Err(error)];
    }
    let error = Arc::new(error);
    (0..count).map(|_| Err(shared(&error))).collect()
}

/// A failure reported to several saves, each getting its own [`Error`] of the
/// same kind and message; the server's error, when that is the source, is
/// each one's source as it would be for a save alone.
fn shared(error: &Arc<Error>) -> Error {
    match &**error {
        Error::Database { operation, source } => Error::Database {
            operation,
            source: match source.downcast_ref::<postgres::error::DbError>() {
                Some(db_error) => Box::new(db_error.clone()),
                None => Box::new(SharedSource(Arc::clone(error))),
            },
        },
        other => Error::database("writing a group of saves", other.to_string()),
    }
}

/// The source of a shared [`Error::Database`].
#[derive(Debug)]
struct SharedSource(Arc<Error>);

impl std::fmt::Display for SharedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match std::error::Error::source(&*self.0) {
            Some(source) => write!(f, "{source}"),
            None => write!(f, "{}", self.0),
        }
    }
}

impl std::error::Error for SharedSource {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0).and_then(std::error::Error::source)
    }
}

/// One save, checked and waiting for its group's transaction.
pub(super) struct Save {
    events: Vec<StoredEvent>,
    ids: IdsParam,
    versions: Vec<i64>,
    tracking: Option<TrackingParam>,
}

/// The prepared statements a save is written with.
struct Statements<'a> {
    insert: &'a postgres::Statement,
    /// Present when a save of the group has a tracking record.
    upsert: Option<&'a postgres::Statement>,
}

/// What the writer of a group tells each saver.
pub(super) enum Written {
    /// Recorded, with these notification ids (if the table keeps the log).
    Ids(Vec<u64>),
    /// Not recorded: one of its keys was taken. The saver finds which on
    /// its own thread, so that looking does not hold up the next group.
    Taken(postgres::Error),
}

/// What became of one save in its group's transaction.
enum Outcome {
    /// Inserted, with these notification ids (if the table keeps the log).
    Inserted(Vec<i64>),
    /// Not inserted: one of its keys was taken (the driver's error).
    Taken(postgres::Error),
    /// Not inserted: its tracking record is at or below the recorded one.
    Refused(Error),
}

/// Where a write failed: before COMMIT was sent (the server rolls back), or
/// at the COMMIT itself (it may have happened), with what each save did.
enum Write {
    Before(postgres::Error),
    Commit(postgres::Error, Vec<Outcome>),
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

    /// The ids of several batches, one after the other.
    fn concat<'a>(id_type: OriginatorIdType, all: impl Iterator<Item = &'a IdsParam>) -> Self {
        let mut joined = match id_type {
            OriginatorIdType::Uuid => IdsParam::Uuid(Vec::new()),
            OriginatorIdType::Text => IdsParam::Text(Vec::new()),
        };
        for ids in all {
            match (&mut joined, ids) {
                (IdsParam::Uuid(joined), IdsParam::Uuid(ids)) => joined.extend_from_slice(ids),
                (IdsParam::Text(joined), IdsParam::Text(ids)) => joined.extend_from_slice(ids),
                // One recorder makes every batch of its group with its own type.
                _ => {}
            }
        }
        joined
    }
}

/// The insert's four array parameters over the saves of a group.
struct GroupParams<'a> {
    ids: IdsParam,
    versions: Vec<i64>,
    topics: Vec<&'a str>,
    states: Vec<&'a [u8]>,
}

impl<'a> GroupParams<'a> {
    fn of(id_type: OriginatorIdType, saves: &'a [Save]) -> Self {
        let events = || saves.iter().flat_map(|save| &save.events);
        GroupParams {
            ids: IdsParam::concat(id_type, saves.iter().map(|save| &save.ids)),
            versions: saves
                .iter()
                .flat_map(|save| save.versions.iter().copied())
                .collect(),
            topics: events().map(|e| e.topic.as_str()).collect(),
            states: events().map(|e| e.state.as_slice()).collect(),
        }
    }

    fn as_params(&self) -> [&(dyn ToSql + Sync); 4] {
        [
            self.ids.as_sql(),
            &self.versions,
            &self.topics,
            &self.states,
        ]
    }
}

impl AggregateRecorder for PostgresRecorder {
    fn insert_events(&self, events: &[StoredEvent]) -> Result<Vec<u64>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.submit(events, None)
    }

    fn select_events(
        &self,
        originator_id: &OriginatorId,
        query: EventQuery,
    ) -> Result<Vec<StoredEvent>> {
        collect_visited(|visit| self.visit_events(originator_id, query, visit))
    }

    /// Reads the rows as the server sends them (the driver's row iterator),
    /// each decoded and visited before the next is read.
    fn visit_events(
        &self,
        originator_id: &OriginatorId,
        query: EventQuery,
        visit: &mut dyn FnMut(StoredEvent) -> Result<()>,
    ) -> Result<()> {
        let id_param = self.id_to_sql(originator_id)?;
        let (sql, bounds) = self.select_events_sql(query);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![id_param.as_ref()];
        params.extend(bounds.iter().flatten().map(|b| b as &(dyn ToSql + Sync)));
        self.stream_rows("selecting events", &sql, &params, &mut |row| {
            visit(self.event_from_row(originator_id, row, 0)?)
        })
    }

    /// One statement when `snapshots` is a snapshots table of this database
    /// (see `select_from_snapshot_sql`); two reads otherwise.
    fn visit_from_snapshot(
        &self,
        snapshots: &dyn AggregateRecorder,
        originator_id: &OriginatorId,
        lte: Option<u64>,
        visit: &mut dyn FnMut(SnapshotOrEvent) -> Result<()>,
    ) -> Result<()> {
        let snapshots_here = (snapshots as &dyn Any)
            .downcast_ref::<PostgresRecorder>()
            .filter(|snapshots| Arc::ptr_eq(&snapshots.db, &self.db) && !snapshots.with_log);
        let Some(snapshots) = snapshots_here else {
            return visit_from_snapshot_in_two_reads(self, snapshots, originator_id, lte, visit);
        };
        let id_param = self.id_to_sql(originator_id)?;
        let lte = lte.map_or(i64::MAX, clamp);
        let sql = self.select_from_snapshot_sql(snapshots);
        let params: [&(dyn ToSql + Sync); 2] = [id_param.as_ref(), &lte];
        self.stream_rows(
            "selecting a snapshot and events",
            &sql,
            &params,
            &mut |row| {
                let is_snapshot: bool = row
                    .try_get(0)
                    .map_err(|e| pg_error("selecting a snapshot and events", e))?;
                visit(if is_snapshot {
                    SnapshotOrEvent::Snapshot(snapshots.event_from_row(originator_id, row, 1)?)
                } else {
                    SnapshotOrEvent::Event(self.event_from_row(originator_id, row, 1)?)
                })
            },
        )
    }
}

impl PostgresRecorder {
    /// Runs a statement and calls `on_row` with each row as it arrives.
    ///
    /// Work that fails in the driver is done again on another connection
    /// (see `PostgresDatabase::run`) only while no row has been handed on,
    /// since after that it would hand rows on twice.
    fn stream_rows(
        &self,
        operation: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        on_row: &mut dyn FnMut(&postgres::Row) -> Result<()>,
    ) -> Result<()> {
        #[cfg(test)]
        faults::count_statement();
        let handed_on = std::cell::Cell::new(false);
        let outcome = self.db.run(
            |connection| {
                let statement = connection.prepare(sql).map_err(Streamed::Driver)?;
                let mut rows = connection
                    .client
                    .query_raw(&statement, params.iter().copied())
                    .map_err(Streamed::Driver)?;
                while let Some(row) = rows.next().map_err(Streamed::Driver)? {
                    handed_on.set(true);
                    on_row(&row).map_err(Streamed::Visit)?;
                }
                Ok(())
            },
            |failure| matches!(failure, Streamed::Driver(_)) && !handed_on.get(),
        )?;
        match outcome {
            Ok(()) => Ok(()),
            Err(Streamed::Driver(error)) => Err(pg_error(operation, error)),
            Err(Streamed::Visit(error)) => Err(error),
        }
    }

    /// The statement that reads an aggregate's latest snapshot at or below
    /// `$2` from `snapshots` and this table's events after it up to `$2`, in
    /// version order, as rows of (is a snapshot, version, topic, state).
    ///
    /// The snapshot's version is below every event's after it, so ordering
    /// by version alone puts it first. Each branch is ordered on its own as
    /// well, so that the server merges the two (the snapshot's one row and
    /// the events in index order) instead of sorting all the events, which
    /// for a long history without a snapshot would go to disk.
    fn select_from_snapshot_sql(&self, snapshots: &PostgresRecorder) -> String {
        let (events, snapshots) = (&self.quoted, &snapshots.quoted);
        format!(
            "(SELECT * FROM (SELECT true, originator_version, topic, state FROM {snapshots} \
               WHERE originator_id = $1 AND originator_version <= $2 \
               ORDER BY originator_version DESC LIMIT 1) AS snapshot \
             ORDER BY originator_version) \
             UNION ALL \
             (SELECT false, originator_version, topic, state FROM {events} \
               WHERE originator_id = $1 AND originator_version <= $2 \
               AND originator_version > COALESCE((SELECT max(originator_version) FROM {snapshots} \
                 WHERE originator_id = $1 AND originator_version <= $2), 0) \
             ORDER BY originator_version) \
             ORDER BY 2"
        )
    }
}

/// Where reading row by row failed: in the driver, or in decoding or
/// visiting a row.
enum Streamed {
    Driver(postgres::Error),
    Visit(Error),
}

impl ApplicationRecorder for PostgresRecorder {
    /// `LISTEN` on a connection of the listener's own, for the `NOTIFY`
    /// each commit of events sends (from any process). If that connection
    /// is lost, the listener says "maybe" and connects again when next asked.
    fn listen(&self) -> Result<Box<dyn Listener>> {
        let channel = self.channel.as_deref().ok_or_else(|| {
            Error::database(
                "listening",
                format!("{} is a snapshots table, which has no log", self.name),
            )
        })?;
        Ok(Box::new(PostgresListener::new(
            Arc::clone(&self.db),
            channel.to_owned(),
        )?))
    }

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
            .map(|row| self.notification_from_row(row))
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

/// Faults the tests below inject at the moments no real fault can be timed to:
/// a COMMIT whose reply is lost, and a server that cannot be reached to check.
#[cfg(test)]
mod faults {
    use std::cell::Cell;

    use crate::error::{Error, Result};

    #[derive(Clone, Copy, Default)]
    pub(super) struct Plan {
        /// Lose the reply of the next COMMIT: `Some(true)` after committing,
        /// `Some(false)` without.
        pub lose_commit_reply: Option<bool>,
        /// Fail this many checks of what a commit did.
        pub failing_checks: u32,
    }

    thread_local! {
        static PLAN: Cell<Plan> = Cell::new(Plan::default());
    }

    pub(super) fn set(plan: Plan) {
        PLAN.set(plan);
    }

    pub(super) fn lose_commit_reply(client: &mut postgres::Client) -> Option<postgres::Error> {
        let mut plan = PLAN.get();
        let committed = plan.lose_commit_reply.take()?;
        PLAN.set(plan);
        if committed && let Err(error) = client.batch_execute("COMMIT") {
            return Some(error);
        }
        // A real driver error, standing for the reply that never came.
        client.batch_execute("SELECT 1/0").err()
    }

    thread_local! {
        static STATEMENTS: Cell<usize> = const { Cell::new(0) };
    }

    /// Counts the reading statements sent by this thread.
    pub(super) fn count_statement() {
        STATEMENTS.set(STATEMENTS.get() + 1);
    }

    /// How many reading statements this thread sent.
    pub(super) fn statements() -> usize {
        STATEMENTS.get()
    }

    pub(super) fn check() -> Result<()> {
        let mut plan = PLAN.get();
        if plan.failing_checks == 0 {
            return Ok(());
        }
        plan.failing_checks -= 1;
        PLAN.set(plan);
        Err(Error::database(
            "checking a commit whose reply was lost",
            "the server cannot be reached (injected)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persistence::PostgresConfig;

    /// A recorder on tables of its own, dropped with it; `None` (the test is
    /// skipped) when the server is not there outside CI.
    struct Scratch(PostgresRecorder);

    impl Drop for Scratch {
        fn drop(&mut self) {
            if let Ok(mut connection) = self.0.db.connection() {
                let _ = connection
                    .client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {}", self.0.quoted));
            }
        }
    }

    fn scratch() -> Option<Scratch> {
        let url = std::env::var("ES_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let db = PostgresDatabase::open(&PostgresConfig::from_url(&url).expect("url")).expect("db");
        let prefix = format!("es_unit_{}", Uuid::new_v4().simple());
        match PostgresRecorder::events(db, Some(&prefix), true) {
            Ok(recorder) => Some(Scratch(recorder)),
            Err(error) if std::env::var("CI").as_deref() != Ok("true") => {
                use std::io::Write as _;
                let _ = writeln!(std::io::stderr(), "SKIPPED: PostgreSQL at {url}: {error}");
                None
            }
            Err(error) => panic!("PostgreSQL at {url}: {error}"),
        }
    }

    fn save(id: Uuid) -> Vec<StoredEvent> {
        (1..=2)
            .map(|version| StoredEvent {
                originator_id: id.into(),
                originator_version: version,
                topic: "T".into(),
                state: vec![version as u8],
            })
            .collect()
    }

    #[test]
    fn a_snapshot_and_the_events_after_it_come_in_one_statement_as_two_reads_give_them() {
        let Some(scratch) = scratch() else { return };
        let events = &scratch.0;
        let prefix = events
            .name
            .trim_start_matches("public.")
            .trim_end_matches("_events");
        let snapshots = Scratch(
            PostgresRecorder::snapshots(Arc::clone(&events.db), Some(prefix), true)
                .expect("snapshots"),
        );
        let id = Uuid::new_v4();
        let stored = |version: u64, topic: &str| StoredEvent {
            originator_id: id.into(),
            originator_version: version,
            topic: topic.into(),
            state: vec![version as u8],
        };
        events
            .insert_events(&(1..=9).map(|v| stored(v, "E")).collect::<Vec<_>>())
            .expect("events");
        snapshots
            .0
            .insert_events(&[stored(3, "S"), stored(7, "S")])
            .expect("snapshots");
        let visited = |lte: Option<u64>, two_reads: bool| {
            let mut items = Vec::new();
            let mut visit = |item| {
                items.push(item);
                Ok(())
            };
            let before = faults::statements();
            if two_reads {
                visit_from_snapshot_in_two_reads(events, &snapshots.0, &id.into(), lte, &mut visit)
            } else {
                events.visit_from_snapshot(&snapshots.0, &id.into(), lte, &mut visit)
            }
            .expect("visit");
            (items, faults::statements() - before)
        };
        for lte in [
            None,
            Some(0),
            Some(2),
            Some(3),
            Some(5),
            Some(7),
            Some(9),
            Some(50),
        ] {
            let (one, statements) = visited(lte, false);
            let (two, _) = visited(lte, true);
            assert_eq!(one, two, "lte {lte:?}");
            assert_eq!(statements, 1, "lte {lte:?}: one statement");
        }
        let (items, _) = visited(Some(5), false);
        assert_eq!(
            items,
            [
                SnapshotOrEvent::Snapshot(stored(3, "S")),
                SnapshotOrEvent::Event(stored(4, "E")),
                SnapshotOrEvent::Event(stored(5, "E")),
            ]
        );
        // Snapshots elsewhere than this database: the two reads.
        let elsewhere = crate::persistence::MemoryRecorder::new();
        elsewhere
            .insert_events(&[stored(3, "S")])
            .expect("snapshot");
        let mut items = Vec::new();
        let before = faults::statements();
        events
            .visit_from_snapshot(&elsewhere, &id.into(), Some(5), &mut |item| {
                items.push(item);
                Ok(())
            })
            .expect("visit");
        assert_eq!(faults::statements() - before, 1, "the events' read only");
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn a_lost_commit_reply_is_settled_by_looking_again_until_the_server_answers() {
        let Some(scratch) = scratch() else { return };
        let recorder = &scratch.0;
        let events = save(Uuid::new_v4());
        faults::set(faults::Plan {
            lose_commit_reply: Some(true),
            failing_checks: SETTLE_ATTEMPTS - 1,
        });
        let ids = recorder
            .insert_events(&events)
            .expect("settled on the last look");
        assert_eq!(ids.len(), 2);
        assert_eq!(
            recorder.max_notification_id().expect("max"),
            ids.last().copied()
        );
    }

    #[test]
    fn a_lost_commit_reply_that_cannot_be_checked_is_an_unknown_outcome_naming_the_save() {
        let Some(scratch) = scratch() else { return };
        let recorder = &scratch.0;
        let id = Uuid::new_v4();
        faults::set(faults::Plan {
            lose_commit_reply: Some(true),
            failing_checks: SETTLE_ATTEMPTS,
        });
        let error = recorder
            .insert_events(&save(id))
            .expect_err("no look succeeded");
        let message = error.to_string();
        assert!(
            matches!(
                &error,
                Error::OutcomeUnknown { originator_id, originator_version: 1, .. }
                    if originator_id.as_uuid() == Some(id)
            ),
            "{message}"
        );
        assert!(message.contains("before retrying"), "{message}");
        // As the message says: read before retrying. Here it had committed.
        let stored = recorder.select_events(&id.into(), EventQuery::new());
        assert_eq!(stored.expect("select").len(), 2);
    }

    #[test]
    fn a_lost_commit_reply_of_a_commit_that_did_not_happen_is_a_database_error() {
        let Some(scratch) = scratch() else { return };
        let recorder = &scratch.0;
        let id = Uuid::new_v4();
        faults::set(faults::Plan {
            lose_commit_reply: Some(false),
            failing_checks: 1,
        });
        let error = recorder
            .insert_events(&save(id))
            .expect_err("not committed");
        assert!(
            matches!(error, Error::Database { .. }) && error.to_string().contains("not recorded"),
            "{error}"
        );
        let stored = recorder.select_events(&id.into(), EventQuery::new());
        assert!(stored.expect("select").is_empty());
    }
}
