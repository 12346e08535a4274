//! Where a master keeps its subscriptions: in the database of its own
//! events (a table `replication_subscriptions` beside them), so that they
//! outlive the process; in memory for an application kept in memory.
//!
//! A subscription is one row of its application and name, its incarnation
//! id and its JSON. Its position is not here: it is a tracking record in the
//! application's tracking table, written after each delivery.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use uuid::Uuid;

use super::subscription::{Status, Subscription, SubscriptionError};
use crate::application::Application;
use crate::error::{Error, Result};

/// The subscriptions of one application, kept where its events are.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::interface::replication::SubscriptionStore;
/// let app = Application::builder().name("leases").sqlite(":memory:").build()?;
/// let store = SubscriptionStore::of(&app)?;
/// assert!(store.all()?.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SubscriptionStore {
    application: String,
    rows: Arc<dyn Rows>,
}

impl std::fmt::Debug for SubscriptionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriptionStore")
            .field("application", &self.application)
            .finish_non_exhaustive()
    }
}

impl SubscriptionStore {
    /// The store of `app`'s subscriptions, in the database of its events:
    /// SQLite, PostgreSQL (in its schema), or memory. Another backend is an
    /// [`Error::Config`]: keep subscriptions with
    /// [`in_memory`](Self::in_memory) there, knowing they are lost on exit.
    pub fn of(app: &Application) -> Result<Self> {
        let application = app.name().unwrap_or_default().to_owned();
        let recorder: &dyn std::any::Any = app.recorder();
        #[cfg(feature = "sqlite")]
        if let Some(recorder) = recorder.downcast_ref::<crate::persistence::SqliteRecorder>() {
            let rows = sqlite::SqliteRows::new(Arc::clone(recorder.database()))?;
            return Ok(SubscriptionStore {
                application,
                rows: Arc::new(rows),
            });
        }
        #[cfg(feature = "postgres")]
        if let Some(recorder) = recorder.downcast_ref::<crate::persistence::PostgresRecorder>() {
            let rows = postgres::PostgresRows::new(Arc::clone(recorder.database()))?;
            return Ok(SubscriptionStore {
                application,
                rows: Arc::new(rows),
            });
        }
        if recorder.is::<crate::persistence::MemoryRecorder>() {
            return Ok(Self::in_memory(application));
        }
        Err(Error::Config {
            variable: "PERSISTENCE_MODULE".into(),
            value: app.persistence().to_string(),
            expected: "sqlite, postgres or memory, where replication keeps its subscriptions \
                       (or SubscriptionStore::in_memory, lost on exit)"
                .into(),
        })
    }

    /// A store in memory, for `application`: gone with the process.
    pub fn in_memory(application: impl Into<String>) -> Self {
        SubscriptionStore {
            application: application.into(),
            rows: Arc::new(MemoryRows::default()),
        }
    }

    /// Stores `subscription`; [`SubscriptionError::Exists`] if its name is taken.
    pub fn insert(&self, subscription: &Subscription) -> Result<(), SubscriptionError> {
        let body = serde_json::to_string(subscription)
            .map_err(|e| Error::Corrupt(format!("a subscription does not encode: {e}")))?;
        let inserted = self.rows.insert(
            &self.application,
            &subscription.name,
            &subscription.id.to_string(),
            &body,
        )?;
        if inserted {
            Ok(())
        } else {
            Err(SubscriptionError::Exists(subscription.name.clone()))
        }
    }

    /// Every subscription, by name.
    pub fn all(&self) -> Result<Vec<Subscription>> {
        self.rows
            .all(&self.application)?
            .iter()
            .map(|body| decode(body))
            .collect()
    }

    /// The subscription `name`, if there is one.
    pub fn get(&self, name: &str) -> Result<Option<Subscription>> {
        self.rows
            .get(&self.application, name)?
            .map(|body| decode(&body))
            .transpose()
    }

    /// Deletes the subscription `name`; whether there was one.
    pub fn delete(&self, name: &str) -> Result<bool> {
        self.rows.delete(&self.application, name)
    }

    /// Sets the status of the subscription `name` of incarnation `id` (not
    /// one created since under its name); whether it was there.
    pub fn set_status(
        &self,
        name: &str,
        id: Uuid,
        status: Status,
        last_error: Option<String>,
    ) -> Result<bool> {
        let Some(mut subscription) = self.get(name)? else {
            return Ok(false);
        };
        if subscription.id != id {
            return Ok(false);
        }
        subscription.status = status;
        subscription.last_error = last_error;
        let body = serde_json::to_string(&subscription)
            .map_err(|e| Error::Corrupt(format!("a subscription does not encode: {e}")))?;
        self.rows
            .update(&self.application, name, &id.to_string(), &body)
    }
}

fn decode(body: &str) -> Result<Subscription> {
    serde_json::from_str(body)
        .map_err(|e| Error::Corrupt(format!("a stored subscription does not decode: {e}")))
}

/// The rows of `replication_subscriptions`, on one backend.
trait Rows: Send + Sync {
    /// Inserts a row; false if `(application, name)` is taken.
    fn insert(&self, application: &str, name: &str, id: &str, body: &str) -> Result<bool>;
    fn all(&self, application: &str) -> Result<Vec<String>>;
    fn get(&self, application: &str, name: &str) -> Result<Option<String>>;
    fn delete(&self, application: &str, name: &str) -> Result<bool>;
    /// Replaces the row's body if its incarnation is `id`.
    fn update(&self, application: &str, name: &str, id: &str, body: &str) -> Result<bool>;
}

#[derive(Default)]
struct MemoryRows(Mutex<BTreeMap<(String, String), (String, String)>>);

impl MemoryRows {
    fn rows(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), (String, String)>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Rows for MemoryRows {
    fn insert(&self, application: &str, name: &str, id: &str, body: &str) -> Result<bool> {
        let mut rows = self.rows();
        let key = (application.to_owned(), name.to_owned());
        if rows.contains_key(&key) {
            return Ok(false);
        }
        rows.insert(key, (id.to_owned(), body.to_owned()));
        Ok(true)
    }

    fn all(&self, application: &str) -> Result<Vec<String>> {
        Ok(self
            .rows()
            .iter()
            .filter(|((app, _), _)| app == application)
            .map(|(_, (_, body))| body.clone())
            .collect())
    }

    fn get(&self, application: &str, name: &str) -> Result<Option<String>> {
        Ok(self
            .rows()
            .get(&(application.to_owned(), name.to_owned()))
            .map(|(_, body)| body.clone()))
    }

    fn delete(&self, application: &str, name: &str) -> Result<bool> {
        Ok(self
            .rows()
            .remove(&(application.to_owned(), name.to_owned()))
            .is_some())
    }

    fn update(&self, application: &str, name: &str, id: &str, body: &str) -> Result<bool> {
        let mut rows = self.rows();
        match rows.get_mut(&(application.to_owned(), name.to_owned())) {
            Some((row_id, row_body)) if row_id == id => {
                *row_body = body.to_owned();
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite {
    use std::sync::Arc;

    use rusqlite::OptionalExtension as _;

    use super::Rows;
    use crate::error::{Error, Result};
    use crate::persistence::SqliteDatabase;

    const DDL: &str = "CREATE TABLE IF NOT EXISTS replication_subscriptions (
        application_name TEXT NOT NULL,
        name TEXT NOT NULL,
        id TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (application_name, name)
    ) WITHOUT ROWID;";

    pub(super) struct SqliteRows(Arc<SqliteDatabase>);

    impl SqliteRows {
        pub(super) fn new(db: Arc<SqliteDatabase>) -> Result<Self> {
            db.writer()
                .execute_batch(DDL)
                .map_err(|e| Error::database("creating the replication_subscriptions table", e))?;
            Ok(SqliteRows(db))
        }

        fn write(&self, sql: &str, params: &[&dyn rusqlite::ToSql]) -> Result<usize> {
            self.0
                .writer()
                .prepare_cached(sql)
                .and_then(|mut statement| statement.execute(params))
                .map_err(|e| Error::database("writing a subscription", e))
        }
    }

    impl Rows for SqliteRows {
        fn insert(&self, application: &str, name: &str, id: &str, body: &str) -> Result<bool> {
            let changed = self.write(
                "INSERT INTO replication_subscriptions (application_name, name, id, body) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                &[&application, &name, &id, &body],
            )?;
            Ok(changed == 1)
        }

        fn all(&self, application: &str) -> Result<Vec<String>> {
            self.0.read(|connection| {
                connection
                    .prepare_cached(
                        "SELECT body FROM replication_subscriptions \
                         WHERE application_name = ?1 ORDER BY name",
                    )?
                    .query_map([application], |row| row.get(0))?
                    .collect()
            })
        }

        fn get(&self, application: &str, name: &str) -> Result<Option<String>> {
            self.0.read(|connection| {
                connection
                    .prepare_cached(
                        "SELECT body FROM replication_subscriptions \
                         WHERE application_name = ?1 AND name = ?2",
                    )?
                    .query_row([application, name], |row| row.get(0))
                    .optional()
            })
        }

        fn delete(&self, application: &str, name: &str) -> Result<bool> {
            let changed = self.write(
                "DELETE FROM replication_subscriptions WHERE application_name = ?1 AND name = ?2",
                &[&application, &name],
            )?;
            Ok(changed == 1)
        }

        fn update(&self, application: &str, name: &str, id: &str, body: &str) -> Result<bool> {
            let changed = self.write(
                "UPDATE replication_subscriptions SET body = ?4 \
                 WHERE application_name = ?1 AND name = ?2 AND id = ?3",
                &[&application, &name, &id, &body],
            )?;
            Ok(changed == 1)
        }
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::sync::Arc;

    use super::Rows;
    use crate::error::Result;
    use crate::persistence::PostgresDatabase;

    pub(super) struct PostgresRows {
        db: Arc<PostgresDatabase>,
        table: String,
    }

    impl PostgresRows {
        pub(super) fn new(db: Arc<PostgresDatabase>) -> Result<Self> {
            // The schema passed the configuration's identifier check, so
            // quoting is all it needs.
            let table = format!("\"{}\".replication_subscriptions", db.schema());
            let ddl = format!(
                "CREATE SCHEMA IF NOT EXISTS \"{}\"; \
                 CREATE TABLE IF NOT EXISTS {table} (
                    application_name text NOT NULL,
                    name text NOT NULL,
                    id text NOT NULL,
                    body text NOT NULL,
                    PRIMARY KEY (application_name, name)
                 )",
                db.schema()
            );
            db.with_client("creating the replication_subscriptions table", |client| {
                client.batch_execute(&ddl)
            })?;
            Ok(PostgresRows { db, table })
        }
    }

    impl Rows for PostgresRows {
        fn insert(&self, application: &str, name: &str, id: &str, body: &str) -> Result<bool> {
            let sql = format!(
                "INSERT INTO {} (application_name, name, id, body) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT DO NOTHING",
                self.table
            );
            // Run again after a lost reply, the insert finds its own row:
            // told apart from another's by the incarnation id.
            let changed = self.db.with_client("storing a subscription", |client| {
                client.execute(&sql, &[&application, &name, &id, &body])
            })?;
            if changed == 1 {
                return Ok(true);
            }
            let sql = format!(
                "SELECT id FROM {} WHERE application_name = $1 AND name = $2",
                self.table
            );
            let row = self.db.with_client("reading a subscription", |client| {
                client.query_opt(&sql, &[&application, &name])
            })?;
            Ok(row.is_some_and(|row| row.try_get::<_, String>(0).is_ok_and(|found| found == id)))
        }

        fn all(&self, application: &str) -> Result<Vec<String>> {
            let sql = format!(
                "SELECT body FROM {} WHERE application_name = $1 ORDER BY name",
                self.table
            );
            self.db.with_client("reading the subscriptions", |client| {
                client
                    .query(&sql, &[&application])?
                    .iter()
                    .map(|row| row.try_get(0))
                    .collect()
            })
        }

        fn get(&self, application: &str, name: &str) -> Result<Option<String>> {
            let sql = format!(
                "SELECT body FROM {} WHERE application_name = $1 AND name = $2",
                self.table
            );
            self.db.with_client("reading a subscription", |client| {
                client
                    .query_opt(&sql, &[&application, &name])?
                    .map(|row| row.try_get(0))
                    .transpose()
            })
        }

        fn delete(&self, application: &str, name: &str) -> Result<bool> {
            let sql = format!(
                "DELETE FROM {} WHERE application_name = $1 AND name = $2",
                self.table
            );
            let changed = self.db.with_client("deleting a subscription", |client| {
                client.execute(&sql, &[&application, &name])
            })?;
            Ok(changed == 1)
        }

        fn update(&self, application: &str, name: &str, id: &str, body: &str) -> Result<bool> {
            let sql = format!(
                "UPDATE {} SET body = $4 WHERE application_name = $1 AND name = $2 AND id = $3",
                self.table
            );
            let changed = self.db.with_client("updating a subscription", |client| {
                client.execute(&sql, &[&application, &name, &id, &body])
            })?;
            Ok(changed == 1)
        }
    }
}
