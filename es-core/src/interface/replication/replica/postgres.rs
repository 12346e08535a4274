//! A replica's tables in a PostgreSQL database, in the database's configured
//! schema: states as `jsonb`, dates as `timestamptz`, each batch one
//! transaction on a pooled connection.

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
    upsert: String,
    insert_history: String,
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
            // The row is replaced only by a newer version: a duplicate, or an
            // older change delivered late, changes nothing and counts no row.
            // The conflict takes the row's lock, so two deliveries of one
            // entity at once are applied one after the other.
            upsert: format!(
                "INSERT INTO {entities} AS e \
                 (type, uid, version, deleted, state, history_id, history_date) \
                 VALUES ($1, $2, $3, $4, ($5::text)::jsonb, $6, ($7::text)::timestamptz) \
                 ON CONFLICT (type, uid) DO UPDATE SET version = EXCLUDED.version, \
                 deleted = EXCLUDED.deleted, state = EXCLUDED.state, \
                 history_id = EXCLUDED.history_id, history_date = EXCLUDED.history_date \
                 WHERE e.version < EXCLUDED.version"
            ),
            insert_history: format!(
                "INSERT INTO {history} \
                 (type, uid, version, history_id, history_date, history_type, \
                 history_change_reason, history_user_id, fields) \
                 VALUES ($1, $2, $3, $4, ($5::text)::timestamptz, $6, $7, $8, ($9::text)::jsonb)"
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

impl Writer for PostgresWriter<'_, '_, '_> {
    fn upsert(&mut self, row: &RecordRow<'_>) -> Result<bool> {
        let changed = self
            .transaction
            .execute(
                &self.store.upsert,
                &[
                    &row.kind,
                    &row.uid,
                    &row.version,
                    &row.deleted,
                    &row.state,
                    &row.history_id,
                    &row.history_date,
                ],
            )
            .map_err(|e| pg_error("writing a replica's copy", e))?;
        Ok(changed > 0)
    }

    fn insert_history(&mut self, row: &RecordRow<'_>) -> Result<()> {
        self.transaction
            .execute(
                &self.store.insert_history,
                &[
                    &row.kind,
                    &row.uid,
                    &row.version,
                    &row.history_id,
                    &row.history_date,
                    &row.history_type,
                    &row.change_reason,
                    &row.user_id,
                    &row.state,
                ],
            )
            .map_err(|e| pg_error("writing a replica's history", e))?;
        Ok(())
    }
}
