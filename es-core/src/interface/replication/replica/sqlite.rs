//! A replica's tables in a SQLite database, written with the database's one
//! writer connection, so a batch queues with the application's saves.

use std::sync::Arc;

use rusqlite::{OptionalExtension as _, Row};

use super::ReplicaError;
use super::store::{EntityRow, HistoryRow, RecordRow, Store, Writer};
use crate::error::{Error, Result};
use crate::persistence::SqliteDatabase;

const ENTITIES_DDL: &str = "CREATE TABLE IF NOT EXISTS replica_entities (
    type TEXT NOT NULL,
    uid TEXT NOT NULL,
    version INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    state TEXT NOT NULL,
    history_id INTEGER NOT NULL,
    history_date TEXT NOT NULL,
    PRIMARY KEY (type, uid)
) WITHOUT ROWID;";

const HISTORY_DDL: &str = "CREATE TABLE IF NOT EXISTS replica_history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    uid TEXT NOT NULL,
    version INTEGER NOT NULL,
    history_id INTEGER NOT NULL,
    history_date TEXT NOT NULL,
    history_type TEXT NOT NULL,
    history_change_reason TEXT,
    history_user_id TEXT,
    fields TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS replica_history_entity ON replica_history (type, uid, seq);";

// The row is replaced only by a newer version: a duplicate, or an older
// change delivered late, changes nothing and counts no row.
const UPSERT: &str = "INSERT INTO replica_entities \
     (type, uid, version, deleted, state, history_id, history_date) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
     ON CONFLICT (type, uid) DO UPDATE SET version = excluded.version, \
     deleted = excluded.deleted, state = excluded.state, \
     history_id = excluded.history_id, history_date = excluded.history_date \
     WHERE replica_entities.version < excluded.version";

const INSERT_HISTORY: &str = "INSERT INTO replica_history \
     (type, uid, version, history_id, history_date, history_type, \
     history_change_reason, history_user_id, fields) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

const ENTITY_COLUMNS: &str = "uid, version, deleted, state, history_id, history_date";

#[derive(Debug)]
pub(super) struct SqliteStore {
    db: Arc<SqliteDatabase>,
}

impl SqliteStore {
    pub(super) fn new(db: Arc<SqliteDatabase>) -> Result<Self> {
        db.execute_batch("creating the replica_entities table", ENTITIES_DDL)?;
        Ok(SqliteStore { db })
    }
}

fn entity_row(row: &Row<'_>) -> rusqlite::Result<EntityRow> {
    Ok(EntityRow {
        uid: row.get(0)?,
        version: row.get(1)?,
        deleted: row.get(2)?,
        state: row.get(3)?,
        history_id: row.get(4)?,
        history_date: row.get(5)?,
    })
}

impl Store for SqliteStore {
    fn create_history_table(&self) -> Result<()> {
        self.db
            .execute_batch("creating the replica_history table", HISTORY_DDL)
    }

    fn write(
        &self,
        work: &mut dyn FnMut(&mut dyn Writer) -> Result<(), ReplicaError>,
    ) -> Result<(), ReplicaError> {
        self.db
            .in_transaction(|transaction| work(&mut SqliteWriter { transaction }))
    }

    fn entity(&self, kind: &str, uid: &str) -> Result<Option<EntityRow>> {
        self.db.read(|connection| {
            connection
                .prepare_cached(&format!(
                    "SELECT {ENTITY_COLUMNS} FROM replica_entities WHERE type = ?1 AND uid = ?2"
                ))?
                .query_row([kind, uid], entity_row)
                .optional()
        })
    }

    fn live_entities(&self, kind: &str) -> Result<Vec<EntityRow>> {
        self.db.read(|connection| {
            connection
                .prepare_cached(&format!(
                    "SELECT {ENTITY_COLUMNS} FROM replica_entities \
                     WHERE type = ?1 AND deleted = 0 ORDER BY uid"
                ))?
                .query_map([kind], entity_row)?
                .collect()
        })
    }

    fn history(&self, kind: &str, uid: &str) -> Result<Vec<HistoryRow>> {
        self.db.read(|connection| {
            connection
                .prepare_cached(
                    "SELECT version, history_id, history_date, history_type, \
                     history_change_reason, history_user_id, fields FROM replica_history \
                     WHERE type = ?1 AND uid = ?2 ORDER BY seq",
                )?
                .query_map([kind, uid], |row| {
                    Ok(HistoryRow {
                        version: row.get(0)?,
                        history_id: row.get(1)?,
                        history_date: row.get(2)?,
                        history_type: row.get(3)?,
                        change_reason: row.get(4)?,
                        user_id: row.get(5)?,
                        fields: row.get(6)?,
                    })
                })?
                .collect()
        })
    }
}

struct SqliteWriter<'c, 't> {
    transaction: &'c rusqlite::Transaction<'t>,
}

impl Writer for SqliteWriter<'_, '_> {
    /// One record at a time: each statement is a call into SQLite in this
    /// process, with no round trip to save.
    fn write_rows(&mut self, rows: &[&RecordRow<'_>], history: bool) -> Result<Vec<bool>> {
        let mut written = Vec::with_capacity(rows.len());
        for row in rows {
            let applied = self.upsert(row)?;
            if applied && history {
                self.insert_history(row)?;
            }
            written.push(applied);
        }
        Ok(written)
    }
}

impl SqliteWriter<'_, '_> {
    fn upsert(&mut self, row: &RecordRow<'_>) -> Result<bool> {
        let changed = self
            .transaction
            .prepare_cached(UPSERT)
            .and_then(|mut upsert| {
                upsert.execute(rusqlite::params![
                    row.kind,
                    row.uid,
                    row.version,
                    row.deleted,
                    row.state,
                    row.history_id,
                    row.history_date,
                ])
            })
            .map_err(|e| Error::database("writing a replica's copy", e))?;
        Ok(changed > 0)
    }

    fn insert_history(&mut self, row: &RecordRow<'_>) -> Result<()> {
        self.transaction
            .prepare_cached(INSERT_HISTORY)
            .and_then(|mut insert| {
                insert.execute(rusqlite::params![
                    row.kind,
                    row.uid,
                    row.version,
                    row.history_id,
                    row.history_date,
                    row.history_type,
                    row.change_reason,
                    row.user_id,
                    row.state,
                ])
            })
            .map_err(|e| Error::database("writing a replica's history", e))?;
        Ok(())
    }
}
