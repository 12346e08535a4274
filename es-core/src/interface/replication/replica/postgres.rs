//! A replica's tables in a PostgreSQL database, in the database's configured
//! schema: states as `jsonb`, dates as `timestamptz`, each batch one
//! transaction on a pooled connection.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use postgres::Row;

use super::ReplicaError;
use super::store::{EntityRow, HistoryRow, RecordRow, Store, Writer};
use crate::error::Result;
use crate::persistence::{PostgresDatabase, pg_error};

/// A `timestamptz` column as RFC 3339 text in UTC, whatever the session's
/// time zone and date style.
fn date_text(column: &str) -> String {
    format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
}

#[derive(Debug)]
pub(super) struct PostgresStore {
    db: Arc<PostgresDatabase>,
    schema: String,
    lock_versions: String,
    upsert_many: String,
    insert_history_many: String,
    select_entity: String,
    select_live: String,
    select_history: String,
}

impl PostgresStore {
    pub(super) fn new(db: Arc<PostgresDatabase>) -> Result<Self> {
        // The schema passed the database's check of names, so quoting is all it needs.
        let schema = format!("\"{}\"", db.schema());
        let entities = format!("{schema}.replica_entities");
        let history = format!("{schema}.replica_history");
        let ddl = format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; \
             CREATE TABLE IF NOT EXISTS {entities} (
                type text NOT NULL,
                uid text NOT NULL,
                version bigint NOT NULL,
                deleted boolean NOT NULL,
                state jsonb NOT NULL,
                history_id bigint NOT NULL,
                history_date timestamptz NOT NULL,
                PRIMARY KEY (type, uid)
            )"
        );
        db.with_client("creating the replica_entities table", |client| {
            client.batch_execute(&ddl)
        })?;
        let columns = format!(
            "uid, version, deleted, state::text, history_id, {}",
            date_text("history_date")
        );
        Ok(PostgresStore {
            // A row is replaced only by a newer version: a duplicate, or an
            // older change delivered late, changes nothing. A batch in three
            // statements rather than two per record: the
            // stored versions of its entities, locked in one order so that
            // two batches wait for each other instead of deadlocking; then
            // each entity's newest row; then the history of what was
            // written.
            lock_versions: format!(
                "SELECT type, uid, version FROM {entities} \
                 WHERE (type, uid) IN (SELECT * FROM unnest($1::text[], $2::text[])) \
                 ORDER BY type, uid FOR UPDATE"
            ),
            upsert_many: format!(
                "INSERT INTO {entities} AS e \
                 (type, uid, version, deleted, state, history_id, history_date) \
                 SELECT t, u, v, d, s::jsonb, h, hd::timestamptz \
                 FROM unnest($1::text[], $2::text[], $3::int8[], $4::bool[], $5::text[], \
                 $6::int8[], $7::text[]) AS x(t, u, v, d, s, h, hd) \
                 ON CONFLICT (type, uid) DO UPDATE SET version = EXCLUDED.version, \
                 deleted = EXCLUDED.deleted, state = EXCLUDED.state, \
                 history_id = EXCLUDED.history_id, history_date = EXCLUDED.history_date \
                 WHERE e.version < EXCLUDED.version \
                 RETURNING type, uid"
            ),
            insert_history_many: format!(
                "INSERT INTO {history} \
                 (type, uid, version, history_id, history_date, history_type, \
                 history_change_reason, history_user_id, fields) \
                 SELECT t, u, v, h, hd::timestamptz, ht, r, w, f::jsonb \
                 FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::text[], \
                 $6::text[], $7::text[], $8::text[], $9::text[]) \
                 AS x(t, u, v, h, hd, ht, r, w, f)"
            ),
            select_entity: format!("SELECT {columns} FROM {entities} WHERE type = $1 AND uid = $2"),
            select_live: format!(
                "SELECT {columns} FROM {entities} WHERE type = $1 AND NOT deleted \
                 ORDER BY uid COLLATE \"C\""
            ),
            select_history: format!(
                "SELECT version, history_id, {}, history_type, history_change_reason, \
                 history_user_id, fields::text FROM {history} \
                 WHERE type = $1 AND uid = $2 ORDER BY seq",
                date_text("history_date")
            ),
            schema,
            db,
        })
    }
}

fn entity_row(row: &Row) -> std::result::Result<EntityRow, postgres::Error> {
    Ok(EntityRow {
        uid: row.try_get(0)?,
        version: row.try_get(1)?,
        deleted: row.try_get(2)?,
        state: row.try_get(3)?,
        history_id: row.try_get(4)?,
        history_date: row.try_get(5)?,
    })
}

impl Store for PostgresStore {
    fn create_history_table(&self) -> Result<()> {
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {schema}.replica_history (
                seq bigserial PRIMARY KEY,
                type text NOT NULL,
                uid text NOT NULL,
                version bigint NOT NULL,
                history_id bigint NOT NULL,
                history_date timestamptz NOT NULL,
                history_type text NOT NULL,
                history_change_reason text,
                history_user_id text,
                fields jsonb NOT NULL
            );
            CREATE INDEX IF NOT EXISTS replica_history_entity
                ON {schema}.replica_history (type, uid, seq)",
            schema = self.schema
        );
        self.db
            .with_client("creating the replica_history table", |client| {
                client.batch_execute(&ddl)
            })
    }

    fn write(
        &self,
        work: &mut dyn FnMut(&mut dyn Writer) -> Result<(), ReplicaError>,
    ) -> Result<(), ReplicaError> {
        self.db.in_transaction(|transaction| {
            work(&mut PostgresWriter {
                transaction,
                store: self,
            })
        })
    }

    fn entity(&self, kind: &str, uid: &str) -> Result<Option<EntityRow>> {
        self.db.with_client("reading a replica's copy", |client| {
            client
                .query_opt(&self.select_entity, &[&kind, &uid])?
                .map(|row| entity_row(&row))
                .transpose()
        })
    }

    fn live_entities(&self, kind: &str) -> Result<Vec<EntityRow>> {
        self.db.with_client("reading a replica's copies", |client| {
            client
                .query(&self.select_live, &[&kind])?
                .iter()
                .map(entity_row)
                .collect()
        })
    }

    fn history(&self, kind: &str, uid: &str) -> Result<Vec<HistoryRow>> {
        self.db
            .with_client("reading a replica's history", |client| {
                client
                    .query(&self.select_history, &[&kind, &uid])?
                    .iter()
                    .map(|row| {
                        Ok(HistoryRow {
                            version: row.try_get(0)?,
                            history_id: row.try_get(1)?,
                            history_date: row.try_get(2)?,
                            history_type: row.try_get(3)?,
                            change_reason: row.try_get(4)?,
                            user_id: row.try_get(5)?,
                            fields: row.try_get(6)?,
                        })
                    })
                    .collect()
            })
    }
}

struct PostgresWriter<'c, 't, 's> {
    transaction: &'c mut postgres::Transaction<'t>,
    store: &'s PostgresStore,
}

impl PostgresWriter<'_, '_, '_> {
    /// The stored versions of the entities of `rows`, locked until the
    /// transaction ends.
    fn lock_versions(&mut self, rows: &[&RecordRow<'_>]) -> Result<HashMap<(String, String), i64>> {
        let kinds: Vec<&str> = rows.iter().map(|row| row.kind).collect();
        let uids: Vec<&str> = rows.iter().map(|row| row.uid).collect();
        self.transaction
            .query(&self.store.lock_versions, &[&kinds, &uids])
            .and_then(|found| {
                found
                    .iter()
                    .map(|row| Ok(((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?)))
                    .collect()
            })
            .map_err(|e| pg_error("reading a replica's versions", e))
    }

    /// Writes `rows`, at most one per entity; the entities written.
    fn upsert_many(&mut self, rows: &[&RecordRow<'_>]) -> Result<HashSet<(String, String)>> {
        let kinds: Vec<&str> = rows.iter().map(|row| row.kind).collect();
        let uids: Vec<&str> = rows.iter().map(|row| row.uid).collect();
        let versions: Vec<i64> = rows.iter().map(|row| row.version).collect();
        let deleted: Vec<bool> = rows.iter().map(|row| row.deleted).collect();
        let states: Vec<&str> = rows.iter().map(|row| row.state.as_str()).collect();
        let history_ids: Vec<i64> = rows.iter().map(|row| row.history_id).collect();
        let dates: Vec<&str> = rows.iter().map(|row| row.history_date.as_str()).collect();
        self.transaction
            .query(
                &self.store.upsert_many,
                &[
                    &kinds,
                    &uids,
                    &versions,
                    &deleted,
                    &states,
                    &history_ids,
                    &dates,
                ],
            )
            .and_then(|changed| {
                changed
                    .iter()
                    .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                    .collect()
            })
            .map_err(|e| pg_error("writing a replica's copies", e))
    }

    fn insert_history_many(&mut self, rows: &[&RecordRow<'_>]) -> Result<()> {
        let kinds: Vec<&str> = rows.iter().map(|row| row.kind).collect();
        let uids: Vec<&str> = rows.iter().map(|row| row.uid).collect();
        let versions: Vec<i64> = rows.iter().map(|row| row.version).collect();
        let history_ids: Vec<i64> = rows.iter().map(|row| row.history_id).collect();
        let dates: Vec<&str> = rows.iter().map(|row| row.history_date.as_str()).collect();
        let types: Vec<&str> = rows.iter().map(|row| row.history_type).collect();
        let reasons: Vec<Option<&str>> = rows.iter().map(|row| row.change_reason).collect();
        let users: Vec<Option<&str>> = rows.iter().map(|row| row.user_id).collect();
        let states: Vec<&str> = rows.iter().map(|row| row.state.as_str()).collect();
        self.transaction
            .execute(
                &self.store.insert_history_many,
                &[
                    &kinds,
                    &uids,
                    &versions,
                    &history_ids,
                    &dates,
                    &types,
                    &reasons,
                    &users,
                    &states,
                ],
            )
            .map_err(|e| pg_error("writing a replica's history", e))?;
        Ok(())
    }
}

impl Writer for PostgresWriter<'_, '_, '_> {
    /// Three statements for the whole batch: which rows are newer is
    /// decided here, on the versions read under lock, and each entity's
    /// newest row is written with the same guard as a single upsert, so an
    /// entity created by another delivery meanwhile is not overwritten with
    /// an older state.
    fn write_rows(&mut self, rows: &[&RecordRow<'_>], history: bool) -> Result<Vec<bool>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let mut newest = self.lock_versions(rows)?;
        let mut written = vec![false; rows.len()];
        let mut last: HashMap<(&str, &str), usize> = HashMap::new();
        for (index, row) in rows.iter().enumerate() {
            let stored = newest.get(&(row.kind.to_owned(), row.uid.to_owned()));
            if stored.is_none_or(|&stored| row.version > stored) {
                newest.insert((row.kind.to_owned(), row.uid.to_owned()), row.version);
                written[index] = true;
                last.insert((row.kind, row.uid), index);
            }
        }
        let mut finals: Vec<usize> = last.into_values().collect();
        finals.sort_unstable_by_key(|&index| (rows[index].kind, rows[index].uid));
        let finals: Vec<&RecordRow<'_>> = finals.into_iter().map(|index| rows[index]).collect();
        let changed = self.upsert_many(&finals)?;
        for (index, row) in rows.iter().enumerate() {
            if written[index] && !changed.contains(&(row.kind.to_owned(), row.uid.to_owned())) {
                written[index] = false;
            }
        }
        if history {
            let applied: Vec<&RecordRow<'_>> = rows
                .iter()
                .zip(&written)
                .filter(|(_, written)| **written)
                .map(|(row, _)| *row)
                .collect();
            if !applied.is_empty() {
                self.insert_history_many(&applied)?;
            }
        }
        Ok(written)
    }
}
