//! The connection pool: connections with their prepared statements, and work
//! run again on another connection when the server closed the first.

use std::collections::HashMap;
use std::sync::Arc;

use postgres::{Client, NoTls, Statement};
use r2d2::{ManageConnection, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;

use super::config::{MAX_IDENTIFIER_BYTES, OriginatorIdType, PostgresConfig, checked_identifier};
use crate::error::{BoxError, Error, Result};

/// A pooled connection with the statements prepared on it, so that each SQL
/// text is parsed and planned once per connection rather than once per call.
pub(super) struct CachingConnection {
    pub(super) client: Client,
    statements: HashMap<String, Statement>,
}

impl CachingConnection {
    pub(super) fn prepare(&mut self, sql: &str) -> std::result::Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// A transaction begun by a statement of ours, so that what must follow BEGIN
/// can share its round trip; rolled back unless committed.
pub(super) struct Transaction<'a> {
    pub(super) client: &'a mut postgres::Client,
    open: bool,
}

impl<'a> Transaction<'a> {
    pub(super) fn begin(
        client: &'a mut postgres::Client,
        begin_sql: &str,
    ) -> std::result::Result<Self, postgres::Error> {
        let transaction = Transaction { client, open: true };
        transaction.client.batch_execute(begin_sql)?;
        Ok(transaction)
    }

    pub(super) fn commit(mut self) -> std::result::Result<(), postgres::Error> {
        self.open = false;
        self.client.batch_execute("COMMIT")
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open {
            // A connection too broken to roll back is dropped by the pool,
            // which ends the transaction on the server.
            let _ = self.client.batch_execute("ROLLBACK");
        }
    }
}

/// r2d2_postgres's manager, giving connections with a statement cache.
#[derive(Debug)]
pub(super) struct Manager(PostgresConnectionManager<NoTls>);

/// A connection error whose message includes its cause: r2d2 keeps only the
/// message of the last failed attempt, and the driver's own message alone says
/// no more than "error connecting to server".
#[derive(Debug)]
pub(super) struct ConnectError(postgres::Error);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = std::error::Error::source(&self.0);
        while let Some(error) = cause {
            write!(f, ": {error}")?;
            cause = error.source();
        }
        Ok(())
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl ManageConnection for Manager {
    type Connection = CachingConnection;
    type Error = ConnectError;

    fn connect(&self) -> std::result::Result<CachingConnection, ConnectError> {
        Ok(CachingConnection {
            client: self.0.connect().map_err(ConnectError)?,
            statements: HashMap::new(),
        })
    }

    fn is_valid(
        &self,
        connection: &mut CachingConnection,
    ) -> std::result::Result<(), ConnectError> {
        self.0
            .is_valid(&mut connection.client)
            .map_err(ConnectError)
    }

    fn has_broken(&self, connection: &mut CachingConnection) -> bool {
        self.0.has_broken(&mut connection.client)
    }
}

/// One PostgreSQL database, shared by the recorders of an application: a pool
/// of connections and the schema of their tables.
///
/// Opening connects to nothing yet: connections are made when first needed
/// (creating the tables, or the first read or write), each within the
/// configured connect timeout.
///
/// ```
/// use es_core::persistence::{PostgresConfig, PostgresDatabase};
/// let db = PostgresDatabase::open(&PostgresConfig::new("127.0.0.1", "test", "postgres"))?;
/// assert_eq!(db.schema(), "public");
/// # Ok::<(), es_core::Error>(())
/// ```
pub struct PostgresDatabase {
    pool: r2d2::Pool<Manager>,
    pub(super) schema: String,
    pub(super) id_type: OriginatorIdType,
}

impl std::fmt::Debug for PostgresDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDatabase")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool.max_size())
            .finish_non_exhaustive()
    }
}

impl PostgresDatabase {
    /// A pool of connections to the database `config` names. A pool size of 0,
    /// a zero connect timeout or a schema that is not a plain name is an
    /// [`Error::Config`].
    pub fn open(config: &PostgresConfig) -> Result<Arc<Self>> {
        let schema = checked_identifier("POSTGRES_SCHEMA", &config.schema, MAX_IDENTIFIER_BYTES)?;
        if config.pool_size == 0 {
            return Err(Error::Config {
                variable: "POSTGRES_POOL_SIZE".into(),
                value: "0".into(),
                expected: "a whole number from 1".into(),
            });
        }
        if config.connect_timeout.is_zero() {
            return Err(Error::Config {
                variable: "POSTGRES_CONNECT_TIMEOUT".into(),
                value: "0".into(),
                expected: "a positive number of seconds".into(),
            });
        }
        let manager = Manager(PostgresConnectionManager::new(
            config.client_config(),
            NoTls,
        ));
        // No connection is opened up front (min_idle 0), and none is pinged on
        // checkout (as the Python library's POSTGRES_PRE_PING defaults to off):
        // a connection found broken is dropped when it is given back.
        let pool = r2d2::Pool::builder()
            .max_size(config.pool_size)
            .min_idle(Some(0))
            .test_on_check_out(false)
            .connection_timeout(config.connect_timeout)
            .build(manager)
            .map_err(|e| Error::database("opening the PostgreSQL connection pool", e))?;
        Ok(Arc::new(PostgresDatabase {
            pool,
            schema,
            id_type: config.originator_id_type,
        }))
    }

    /// The schema the tables are in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The type of the tables' `originator_id` column.
    pub fn originator_id_type(&self) -> OriginatorIdType {
        self.id_type
    }

    pub(super) fn connection(&self) -> Result<PooledConnection<Manager>> {
        self.pool
            .get()
            .map_err(|e| Error::database("getting a PostgreSQL connection", e))
    }

    /// Runs `work` on a pooled connection, again on another one if the first
    /// was found closed and `retry` says the failed attempt changed nothing.
    ///
    /// Connections are not pinged when taken from the pool, so one the server
    /// has closed since (a restart, a terminated session) is found only by
    /// using it, and fails at once. The pool drops it when it comes back, and
    /// the work goes on, up to once per connection the pool can hold, before
    /// the error is returned. The outer `Result` is the pool's own failure.
    pub(super) fn run<T, E>(
        &self,
        mut work: impl FnMut(&mut CachingConnection) -> std::result::Result<T, E>,
        retry: impl Fn(&E) -> bool,
    ) -> Result<std::result::Result<T, E>> {
        let mut attempts = self.pool.max_size();
        loop {
            let mut connection = self.connection()?;
            let result = work(&mut connection);
            match result {
                Err(error) if attempts > 0 && connection.client.is_closed() && retry(&error) => {
                    attempts -= 1;
                }
                result => return Ok(result),
            }
        }
    }

    /// [`run`](Self::run) for work that only reads: any attempt may be retried.
    pub(super) fn read<T>(
        &self,
        operation: &'static str,
        work: impl FnMut(&mut CachingConnection) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        self.run(work, |_| true)?
            .map_err(|error| pg_error(operation, error))
    }
}

/// A driver error as the source of [`Error::Database`]: the server's own error
/// (`postgres::error::DbError`, with its SQLSTATE and message) when the server
/// reported one, else the `postgres::Error`.
pub(super) fn pg_error(operation: &'static str, error: postgres::Error) -> Error {
    let source: BoxError = if error.as_db_error().is_some() {
        match error.into_source() {
            Some(db_error) => db_error,
            None => "the server reported an error without details".into(),
        }
    } else {
        Box::new(error)
    };
    Error::Database { operation, source }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn bad_pool_settings_are_configuration_errors_not_panics() {
        let mut config = PostgresConfig::new("h", "d", "u");
        config.pool_size = 0;
        assert!(matches!(
            PostgresDatabase::open(&config),
            Err(Error::Config { .. })
        ));
        config.pool_size = 1;
        config.connect_timeout = Duration::ZERO;
        assert!(matches!(
            PostgresDatabase::open(&config),
            Err(Error::Config { .. })
        ));
        config.connect_timeout = Duration::from_secs(1);
        config.schema = "x; drop table y".into();
        assert!(matches!(
            PostgresDatabase::open(&config),
            Err(Error::Config { .. })
        ));
    }
}
