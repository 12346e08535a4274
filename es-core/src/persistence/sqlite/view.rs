//! A view in a SQLite database: the user's tables and `projection_tracking`.

use std::sync::Arc;

use rusqlite::{OptionalExtension as _, TransactionBehavior};

use super::SqliteDatabase;
use crate::error::{BoxError, Error, Result};
use crate::persistence::recorder::Tracking;
use crate::persistence::sql::notification_id_from_sql;
use crate::persistence::view::{View, ViewError, already_recorded, ids_to_sql};

const DDL: &str = "CREATE TABLE IF NOT EXISTS projection_tracking (
    projection TEXT NOT NULL,
    application_name TEXT NOT NULL,
    notification_id INTEGER NOT NULL,
    PRIMARY KEY (projection, application_name)
) WITHOUT ROWID;";

const UPSERT: &str = "INSERT INTO projection_tracking (projection, application_name, notification_id) \
     VALUES (?1, ?2, ?3) \
     ON CONFLICT (projection, application_name) DO UPDATE SET notification_id = excluded.notification_id \
     WHERE projection_tracking.notification_id < ?4";

const SELECT_POSITION: &str = "SELECT notification_id FROM projection_tracking \
     WHERE projection = ?1 AND application_name = ?2";

/// A projection's view in a SQLite database, which may be the one of an
/// application's events or a file of its own. Writes go through the
/// database's one writer connection, so they queue with the application's
/// saves rather than fail on SQLite's lock.
///
/// ```
/// use es_core::persistence::{SqliteDatabase, SqliteView, Tracking, View};
/// let view = SqliteView::new(SqliteDatabase::open_in_memory()?)?;
/// view.write("counts", &Tracking::new("orders", 1), &mut |transaction| {
///     transaction.execute_batch("CREATE TABLE IF NOT EXISTS counts (n INTEGER)")?;
///     Ok(())
/// })?;
/// assert_eq!(view.position("counts", "orders")?, Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SqliteView {
    db: Arc<SqliteDatabase>,
}

impl SqliteView {
    /// A view in `db`; creates the positions table if it is not there.
    pub fn new(db: Arc<SqliteDatabase>) -> Result<Self> {
        db.writer()
            .execute_batch(DDL)
            .map_err(|e| Error::database("creating the projection_tracking table", e))?;
        Ok(SqliteView { db })
    }

    /// The database, to read the view with.
    pub fn database(&self) -> &Arc<SqliteDatabase> {
        &self.db
    }

    /// Runs `sql` (statements separated by `;`) with the writer connection,
    /// outside any projection's transaction: to create the view's tables.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        self.db
            .writer()
            .execute_batch(sql)
            .map_err(|e| Error::database("running a view's statements", e))
    }

    /// Reads with a connection of the database.
    pub fn read<T>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.db.read(read)
    }

    /// Runs `work` in a transaction of the writer connection, then commits
    /// it, or rolls it back if `work` fails or `keep` is false.
    fn transact(
        &self,
        keep: bool,
        work: &mut dyn FnMut(&mut rusqlite::Transaction<'_>) -> Result<(), ViewError>,
    ) -> Result<(), ViewError> {
        let mut connection = self.db.writer();
        let mut transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| Error::database("beginning a view's transaction", e))?;
        // Dropping the transaction on an error rolls it back.
        work(&mut transaction)?;
        if keep {
            transaction.commit()
        } else {
            transaction.rollback()
        }
        .map_err(|e| ViewError::Store(Error::database("ending a view's transaction", e)))
    }
}

impl View for SqliteView {
    type Transaction<'t> = rusqlite::Transaction<'t>;

    fn position(&self, projection: &str, leader: &str) -> Result<Option<u64>> {
        let id: Option<i64> = self.db.read(|connection| {
            connection
                .prepare_cached(SELECT_POSITION)?
                .query_row([projection, leader], |row| row.get(0))
                .optional()
        })?;
        id.map(notification_id_from_sql).transpose()
    }

    fn write(
        &self,
        projection: &str,
        tracking: &Tracking,
        work: &mut dyn FnMut(&mut Self::Transaction<'_>) -> Result<(), BoxError>,
    ) -> Result<(), ViewError> {
        let (id, lowest) = ids_to_sql(tracking)?;
        self.transact(true, &mut |transaction| {
            // Looked at first, under the write lock the transaction holds:
            // events already in the view must not reach the user's code,
            // whose own constraints would fail on them before the position
            // could say they are done.
            let recorded: Option<i64> = transaction
                .prepare_cached(SELECT_POSITION)
                .and_then(|mut select| {
                    select
                        .query_row([projection, &tracking.application_name], |row| row.get(0))
                        .optional()
                })
                .map_err(|e| Error::database("reading a projection's position", e))?;
            if recorded.is_some_and(|recorded| recorded >= lowest) {
                return Err(already_recorded(tracking));
            }
            work(transaction).map_err(ViewError::Work)?;
            let changed = transaction
                .prepare_cached(UPSERT)
                .and_then(|mut upsert| {
                    upsert.execute(rusqlite::params![
                        projection,
                        tracking.application_name,
                        id,
                        lowest
                    ])
                })
                .map_err(|e| Error::database("recording a projection's position", e))?;
            if changed == 0 {
                return Err(already_recorded(tracking));
            }
            Ok(())
        })
    }

    fn rehearse(
        &self,
        work: &mut dyn FnMut(&mut Self::Transaction<'_>) -> Result<(), BoxError>,
    ) -> Result<(), ViewError> {
        self.transact(false, &mut |transaction| {
            work(transaction).map_err(ViewError::Work)
        })
    }

    fn reset(
        &self,
        projection: &str,
        leader: Option<&str>,
        work: &mut dyn FnMut(&mut Self::Transaction<'_>) -> Result<(), BoxError>,
    ) -> Result<(), ViewError> {
        self.transact(true, &mut |transaction| {
            work(transaction).map_err(ViewError::Work)?;
            transaction
                .execute(
                    "DELETE FROM projection_tracking WHERE projection = ?1 \
                     AND (?2 IS NULL OR application_name = ?2)",
                    rusqlite::params![projection, leader],
                )
                .map_err(|e| Error::database("forgetting a projection's positions", e))?;
            Ok(())
        })
    }
}
