//! A view in a PostgreSQL database: the user's tables and
//! `projection_tracking`, in the database's schema.

use std::sync::Arc;

use super::PostgresDatabase;
use super::pool::pg_error;
use crate::error::{BoxError, Result};
use crate::persistence::recorder::Tracking;
use crate::persistence::sql::notification_id_from_sql;
use crate::persistence::view::{View, ViewError, already_recorded, ids_to_sql};

/// A projection's view in a PostgreSQL database: the user's own tables, and
/// `projection_tracking` in the configured schema. Each write is one
/// transaction on a pooled connection.
///
/// ```
/// use es_core::persistence::*;
/// # let url = std::env::var("ES_TEST_POSTGRES_URL")
/// #     .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
/// let db = PostgresDatabase::open(&PostgresConfig::from_url(&url)?)?;
/// let view = match PostgresView::new(db) {
///     Ok(view) => view,
/// #   Err(es_core::Error::Database { .. }) if std::env::var("CI").as_deref() != Ok("true") => return Ok(()),
///     Err(error) => return Err(error.into()),
/// };
/// let id = std::process::id() as u64 * 1000 + 1;
/// view.write("doc_counts", &Tracking::new("orders", id), &mut |transaction| {
///     transaction.batch_execute("SELECT 1")?;
///     Ok(())
/// })?;
/// assert_eq!(view.position("doc_counts", "orders")?, Some(id));
/// view.reset("doc_counts", None, &mut |_| Ok(()))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct PostgresView {
    db: Arc<PostgresDatabase>,
    table: String,
}

impl PostgresView {
    /// A view in `db`; creates the positions table if it is not there.
    pub fn new(db: Arc<PostgresDatabase>) -> Result<Self> {
        // The schema passed `checked_identifier`, so quoting is all it needs.
        let table = format!("\"{}\".projection_tracking", db.schema);
        let ddl = format!(
            "CREATE SCHEMA IF NOT EXISTS \"{}\"; \
             CREATE TABLE IF NOT EXISTS {table} (
                projection text NOT NULL,
                application_name text NOT NULL,
                notification_id bigint NOT NULL,
                PRIMARY KEY (projection, application_name)
            )",
            db.schema
        );
        db.connection()?
            .client
            .batch_execute(&ddl)
            .map_err(|e| pg_error("creating the projection_tracking table", e))?;
        Ok(PostgresView { db, table })
    }

    /// The configured schema, where `projection_tracking` is. A session's
    /// unqualified names resolve through its search path (usually `public`),
    /// not this schema: name the view's own tables with it, as
    /// `"schema".table`, to keep them beside their positions.
    pub fn schema(&self) -> &str {
        &self.db.schema
    }

    /// The database, to read the view with.
    pub fn database(&self) -> &Arc<PostgresDatabase> {
        &self.db
    }

    /// Runs `sql` (statements separated by `;`) outside any projection's
    /// transaction: to create the view's tables.
    pub fn batch_execute(&self, sql: &str) -> Result<()> {
        self.read(|client| client.batch_execute(sql))
    }

    /// Reads with a pooled connection's client; again on another
    /// connection if the first was found closed (a server restarted since),
    /// so `read` may be called more than once.
    pub fn read<T>(
        &self,
        mut read: impl FnMut(&mut postgres::Client) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        self.db
            .read("reading a view", |connection| read(&mut connection.client))
    }

    /// Runs `work` in a transaction on a pooled connection, then commits
    /// it, or rolls it back if `work` fails or `keep` is false.
    fn transact(
        &self,
        keep: bool,
        work: &mut dyn FnMut(&mut postgres::Transaction<'_>) -> Result<(), ViewError>,
    ) -> Result<(), ViewError> {
        let mut connection = self.db.connection()?;
        let mut transaction = connection
            .client
            .transaction()
            .map_err(|e| pg_error("beginning a view's transaction", e))?;
        // Dropping the transaction on an error rolls it back.
        work(&mut transaction)?;
        // A lost reply to a commit leaves the outcome to the position, which
        // the next catch-up reads: the view and its position committed
        // together or not at all.
        if keep {
            transaction.commit()
        } else {
            transaction.rollback()
        }
        .map_err(|e| ViewError::Store(pg_error("ending a view's transaction", e)))
    }
}

impl View for PostgresView {
    type Transaction<'t> = postgres::Transaction<'t>;

    fn position(&self, projection: &str, leader: &str) -> Result<Option<u64>> {
        let sql = format!(
            "SELECT notification_id FROM {} WHERE projection = $1 AND application_name = $2",
            self.table
        );
        let row = self.read(|client| client.query_opt(&sql, &[&projection, &leader]))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: i64 = row
            .try_get(0)
            .map_err(|e| pg_error("reading a projection's position", e))?;
        notification_id_from_sql(id).map(Some)
    }

    fn write(
        &self,
        projection: &str,
        tracking: &Tracking,
        work: &mut dyn FnMut(&mut Self::Transaction<'_>) -> Result<(), BoxError>,
    ) -> Result<(), ViewError> {
        let (id, lowest) = ids_to_sql(tracking)?;
        let upsert = format!(
            "INSERT INTO {table} AS t (projection, application_name, notification_id) \
             VALUES ($1, $2, $3) \
             ON CONFLICT (projection, application_name) DO UPDATE \
             SET notification_id = EXCLUDED.notification_id \
             WHERE t.notification_id < $4",
            table = self.table
        );
        // Takes the position's row, inserting it at 0 if there is none, and
        // holds it until the commit: a second writer of the same projection
        // waits here (even for a row the first has only just inserted), then
        // reads what the first committed.
        let lock = format!(
            "INSERT INTO {table} AS t (projection, application_name, notification_id) \
             VALUES ($1, $2, 0) \
             ON CONFLICT (projection, application_name) DO UPDATE \
             SET notification_id = t.notification_id \
             RETURNING notification_id",
            table = self.table
        );
        self.transact(true, &mut |transaction| {
            // Looked at first: events already in the view must not reach the
            // user's code, whose own constraints would fail on them before
            // the position could say they are done.
            let recorded: i64 = transaction
                .query_one(&lock, &[&projection, &tracking.application_name])
                .and_then(|row| row.try_get(0))
                .map_err(|e| pg_error("reading a projection's position", e))?;
            if recorded >= lowest {
                return Err(already_recorded(tracking));
            }
            work(transaction).map_err(ViewError::Work)?;
            let changed = transaction
                .execute(
                    &upsert,
                    &[&projection, &tracking.application_name, &id, &lowest],
                )
                .map_err(|e| pg_error("recording a projection's position", e))?;
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
        let delete = format!(
            "DELETE FROM {} WHERE projection = $1 \
             AND ($2::text IS NULL OR application_name = $2)",
            self.table
        );
        self.transact(true, &mut |transaction| {
            work(transaction).map_err(ViewError::Work)?;
            transaction
                .execute(&delete, &[&projection, &leader])
                .map_err(|e| pg_error("forgetting a projection's positions", e))?;
            Ok(())
        })
    }
}
