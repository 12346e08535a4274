//! The connection pool: connections with their prepared statements, and work
//! run again on another connection when the server closed the first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::{Client, Statement};
use r2d2::{ManageConnection, PooledConnection};

use super::config::{OriginatorIdType, PostgresConfig, checked_schema};
use super::tls::Connector;
use crate::error::{BoxError, Error, Result};

/// A session of the sync client that may be dropped on any thread.
///
/// The client ends its session on drop by blocking on a runtime of its own,
/// which tokio refuses on a thread that drives an async runtime's tasks, and
/// on a thread already unwinding that refusal aborts the process: an
/// application dropped by an async server's task (at shutdown, say) would
/// bring the whole program down. Dropped where a runtime is running, the
/// session is handed to a thread of its own to end.
pub(super) struct Session(Option<Client>);

impl Session {
    pub(super) fn new(client: Client) -> Self {
        Session(Some(client))
    }
}

impl std::ops::Deref for Session {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0
            .as_ref()
            .expect("a session holds its client until it is dropped")
    }
}

impl std::ops::DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Client {
        self.0
            .as_mut()
            .expect("a session holds its client until it is dropped")
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(client) = self.0.take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            end_elsewhere(client);
        }
    }
}

/// Ends `client`'s session on the one thread kept for that, started the
/// first time it is needed.
fn end_elsewhere(client: Client) {
    static CLOSER: std::sync::OnceLock<Option<std::sync::mpsc::Sender<Client>>> =
        std::sync::OnceLock::new();
    let closer = CLOSER.get_or_init(|| {
        let (sender, receiver) = std::sync::mpsc::channel::<Client>();
        std::thread::Builder::new()
            .name("es-core-postgres-close".into())
            .spawn(move || receiver.into_iter().for_each(drop))
            .ok()
            .map(|_| sender)
    });
    match closer {
        Some(sender) => {
            if let Err(unsent) = sender.send(client) {
                // The closing thread is gone: the socket is let go without
                // a goodbye, which the server notices as a closed connection.
                std::mem::forget(unsent.0);
            }
        }
        None => std::mem::forget(client),
    }
}

/// A pooled connection with the statements prepared on it, so that each SQL
/// text is parsed and planned once per connection rather than once per call.
pub(super) struct CachingConnection {
    pub(super) client: Session,
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

    pub(super) fn commit(self) -> std::result::Result<(), postgres::Error> {
        self.commit_with("COMMIT")
    }

    /// Commits with `sql`, which ends with `COMMIT`: statements that belong
    /// at the end of the transaction share the commit's round trip.
    pub(super) fn commit_with(mut self, sql: &str) -> std::result::Result<(), postgres::Error> {
        self.open = false;
        self.client.batch_execute(sql)
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

/// Opens connections for r2d2, each with a statement cache.
#[derive(Debug, Clone)]
pub(super) struct Manager {
    config: postgres::Config,
    tls: Connector,
    /// How long opening a connection may take, from the first packet to the
    /// session being ready.
    connect_timeout: Duration,
    /// The server, as errors name it: `postgres://user@host:port/dbname`.
    server: String,
}

/// A connection error whose message names the server and includes its cause:
/// r2d2 keeps only the message of the last failed attempt, and the driver's
/// own message alone says no more than "error connecting to server".
#[derive(Debug)]
pub(super) struct ConnectError {
    server: String,
    error: BoxError,
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut message = format!("cannot connect to {}: {}", self.server, self.error);
        let mut cause = self.error.source();
        while let Some(error) = cause {
            message.push_str(&format!(": {error}"));
            cause = error.source();
        }
        if message.contains("certificate") {
            message.push_str(
                " (the server's certificate was refused: give its authority with \
                 POSTGRES_SSLROOTCERT, or choose another POSTGRES_SSLMODE)",
            );
        }
        f.write_str(&message)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.error)
    }
}

impl Manager {
    fn failed(&self, error: impl Into<BoxError>) -> ConnectError {
        ConnectError {
            server: self.server.clone(),
            error: error.into(),
        }
    }
}

impl ManageConnection for Manager {
    type Connection = CachingConnection;
    type Error = ConnectError;

    /// Connects on a thread of its own, waited for at most the connect
    /// timeout. The driver bounds only the TCP connect by it: a server (or
    /// anything between) that accepts and then says nothing would hold the
    /// pool's slot for good. Such a thread is left to end with its socket,
    /// which the network timeout bounds where the peer is really gone.
    fn connect(&self) -> std::result::Result<CachingConnection, ConnectError> {
        let (config, tls) = (self.config.clone(), self.tls.clone());
        let (sender, receiver) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("es-core-postgres-connect".into())
            .spawn(move || {
                let _ = sender.send(config.connect(tls));
            })
            .map_err(|e| self.failed(e))?;
        match receiver.recv_timeout(self.connect_timeout) {
            Ok(Ok(client)) => Ok(CachingConnection {
                client: Session::new(client),
                statements: HashMap::new(),
            }),
            Ok(Err(error)) => Err(self.failed(error)),
            Err(_) => Err(self.failed(format!(
                "the session was not ready within the connect timeout ({:?}): the server \
                 accepted the connection but did not answer",
                self.connect_timeout
            ))),
        }
    }

    fn is_valid(
        &self,
        connection: &mut CachingConnection,
    ) -> std::result::Result<(), ConnectError> {
        connection
            .client
            .simple_query("")
            .map(|_| ())
            .map_err(|e| self.failed(e))
    }

    fn has_broken(&self, connection: &mut CachingConnection) -> bool {
        connection.client.is_closed()
    }
}

/// The last failed attempt to open a connection, when it failed. The pool
/// retries in the background until its timeout; a caller waiting for a
/// connection looks here to fail at once instead, with the reason.
#[derive(Debug, Default)]
struct ConnectFailures(Mutex<Option<(Instant, String)>>);

impl ConnectFailures {
    fn record(&self, error: &ConnectError) {
        if let Ok(mut last) = self.0.lock() {
            *last = Some((Instant::now(), error.to_string()));
        }
    }

    /// The reason of an attempt that failed at or after `since`.
    fn since(&self, since: Instant) -> Option<String> {
        let last = self.0.lock().ok()?;
        last.as_ref()
            .filter(|(at, _)| *at >= since)
            .map(|(_, why)| why.clone())
    }
}

/// Hands r2d2's connection errors to a [`ConnectFailures`] (instead of r2d2's
/// default, a log line).
#[derive(Debug)]
struct RecordFailures(Arc<ConnectFailures>);

impl r2d2::HandleError<ConnectError> for RecordFailures {
    fn handle_error(&self, error: ConnectError) {
        self.0.record(&error);
    }
}

/// How often a caller waiting for a connection looks for a failed attempt.
const FAILURE_POLL: Duration = Duration::from_millis(20);

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
    /// The pool's manager, for connections kept outside it (a listener's).
    manager: Manager,
    failures: Arc<ConnectFailures>,
    pub(super) schema: String,
    /// The type set in the configuration; `None` takes each table's own.
    pub(super) configured_id_type: Option<OriginatorIdType>,
}

impl std::fmt::Debug for PostgresDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresDatabase")
            .field("schema", &self.schema)
            .field("pool_size", &self.pool.max_size())
            .field("pre_ping", &self.pool.test_on_check_out())
            .field("conn_max_age", &self.pool.max_lifetime())
            .finish_non_exhaustive()
    }
}

impl PostgresDatabase {
    /// A pool of connections to the database `config` names. A pool size of 0,
    /// a zero connect timeout or connection age, or a schema that is not a
    /// plain name of the application's own is an [`Error::Config`].
    pub fn open(config: &PostgresConfig) -> Result<Arc<Self>> {
        let schema = checked_schema("POSTGRES_SCHEMA", &config.schema)?;
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
        if config.conn_max_age.is_some_and(|age| age.is_zero()) {
            return Err(Error::Config {
                variable: "POSTGRES_CONN_MAX_AGE".into(),
                value: "0".into(),
                expected: "a positive number of seconds (or no limit)".into(),
            });
        }
        let manager = Manager {
            config: config.client_config(),
            tls: Connector::new(config)?,
            connect_timeout: config.connect_timeout,
            server: config.to_string(),
        };
        let failures = Arc::new(ConnectFailures::default());
        // No connection is opened up front (min_idle 0). Without pre-ping (as
        // the Python library's POSTGRES_PRE_PING defaults to off) a connection
        // found broken is dropped when it is given back, and the work retried.
        let pool = r2d2::Pool::builder()
            .max_size(config.pool_size)
            .min_idle(Some(0))
            .test_on_check_out(config.pre_ping)
            .max_lifetime(config.conn_max_age)
            .connection_timeout(config.connect_timeout)
            .error_handler(Box::new(RecordFailures(failures.clone())))
            .build_unchecked(manager.clone());
        Ok(Arc::new(PostgresDatabase {
            pool,
            manager,
            failures,
            schema,
            configured_id_type: config.originator_id_type,
        }))
    }

    /// The schema the tables are in.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The type of the tables' `originator_id` column, if the configuration
    /// sets one; `None` takes each table's own (`uuid` for a new table).
    pub fn originator_id_type(&self) -> Option<OriginatorIdType> {
        self.configured_id_type
    }

    /// The `originator_id` type for `table`: the configured one, else the
    /// type of the table already there, else `uuid`.
    pub(super) fn originator_id_type_of(&self, table: &str) -> Result<OriginatorIdType> {
        if let Some(configured) = self.configured_id_type {
            return Ok(configured);
        }
        let found = self.read("checking the PostgreSQL tables", |connection| {
            connection
                .client
                .query_opt(
                    "SELECT data_type FROM information_schema.columns \
                     WHERE table_schema = $1 AND table_name = $2 AND column_name = 'originator_id'",
                    &[&self.schema, &table],
                )?
                .map(|row| row.try_get::<_, String>(0))
                .transpose()
        })?;
        Ok(found
            .as_deref()
            .and_then(OriginatorIdType::parse)
            .unwrap_or_default())
    }

    /// A pooled connection. Waiting for one ends early, with the reason, as
    /// soon as an attempt to open one fails: a server that refuses, or a
    /// password it rejects, is an error at once rather than after the
    /// connect timeout.
    pub(super) fn connection(&self) -> Result<PooledConnection<Manager>> {
        let started = Instant::now();
        let timeout = self.pool.connection_timeout();
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            match self.pool.get_timeout(left.min(FAILURE_POLL)) {
                Ok(connection) => return Ok(connection),
                Err(error) => {
                    if let Some(why) = self.failures.since(started) {
                        return Err(Error::database("opening a PostgreSQL connection", why));
                    }
                    if started.elapsed() >= timeout {
                        // An attempt that failed as the wait ran out is the better reason.
                        let why = self.failures.since(started);
                        return Err(match why {
                            Some(why) => Error::database("opening a PostgreSQL connection", why),
                            None => Error::database("getting a PostgreSQL connection", error),
                        });
                    }
                }
            }
        }
    }

    /// A connection of its own, outside the pool, with the pool's settings:
    /// for a session that must stay open (a listener's `LISTEN`).
    pub(super) fn dedicated_client(&self) -> Result<Session> {
        self.manager
            .connect()
            .map(|connection| connection.client)
            .map_err(|error| Error::database("opening a PostgreSQL connection", error))
    }

    /// Runs `work` on a pooled connection, again on another one if the first
    /// was found closed and `retry` says the failed attempt changed nothing.
    ///
    /// Unless pre-ping is on, connections are not checked when taken from the
    /// pool, so one the server has closed since (a restart, a terminated session) is found only by
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

    /// Runs `work` in a transaction on a pooled connection and commits it,
    /// or rolls it back if `work` fails: for the crate's other layers (a
    /// replica's copies), whose errors `E` wrap the store's. A commit whose
    /// reply was lost is an error, so `work` must be safe to do again.
    #[cfg(feature = "replication")]
    pub(crate) fn in_transaction<E: From<Error>>(
        &self,
        work: impl FnOnce(&mut postgres::Transaction<'_>) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut connection = self.connection()?;
        let mut transaction = connection
            .client
            .transaction()
            .map_err(|e| pg_error("beginning a transaction", e))?;
        // Dropping the transaction on an error rolls it back.
        work(&mut transaction)?;
        transaction
            .commit()
            .map_err(|e| pg_error("committing a transaction", e))?;
        Ok(())
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

    /// Runs `work` with a pooled connection's client, again on another
    /// connection if the first was found closed: for tables other layers
    /// keep beside the store's (replication's subscriptions and copies).
    /// Work that writes must be safe to run twice.
    #[cfg(feature = "replication")]
    pub(crate) fn with_client<T>(
        &self,
        operation: &'static str,
        mut work: impl FnMut(&mut postgres::Client) -> std::result::Result<T, postgres::Error>,
    ) -> Result<T> {
        self.read(operation, |connection| work(&mut connection.client))
    }
}

/// A driver error as the source of [`Error::Database`]: the server's own error
/// (`postgres::error::DbError`, with its SQLSTATE and message) when the server
/// reported one, else the `postgres::Error`.
pub(crate) fn pg_error(operation: &'static str, error: postgres::Error) -> Error {
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

    use super::super::test_server;
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
        config.conn_max_age = Some(Duration::ZERO);
        assert!(matches!(
            PostgresDatabase::open(&config),
            Err(Error::Config { variable, .. }) if variable == "POSTGRES_CONN_MAX_AGE"
        ));
        config.conn_max_age = None;
        config.schema = "x; drop table y".into();
        assert!(matches!(
            PostgresDatabase::open(&config),
            Err(Error::Config { .. })
        ));
    }

    #[test]
    fn pre_ping_and_connection_age_reach_the_pool() {
        let mut config = PostgresConfig::new("h", "d", "u");
        let db = PostgresDatabase::open(&config).expect("pool");
        assert!(!db.pool.test_on_check_out(), "off by default");
        assert_eq!(db.pool.max_lifetime(), Some(Duration::from_secs(3600)));
        config.pre_ping = true;
        config.conn_max_age = None;
        let db = PostgresDatabase::open(&config).expect("pool");
        assert!(db.pool.test_on_check_out());
        assert_eq!(db.pool.max_lifetime(), None);
        let shown = format!("{db:?}");
        assert!(shown.contains("pre_ping: true"), "{shown}");
    }

    pub(in super::super) fn show(db: &PostgresDatabase, setting: &str) -> String {
        let mut connection = db.connection().expect("connection");
        let rows = connection
            .client
            .simple_query(&format!("SHOW {setting}"))
            .expect("show");
        rows.iter()
            .find_map(|message| match message {
                postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .expect("a value")
    }

    #[test]
    fn the_session_timeouts_reach_the_server() {
        let Some(mut config) = test_server() else {
            return;
        };
        let db = PostgresDatabase::open(&config).expect("pool");
        assert_eq!(show(&db, "statement_timeout"), "0");
        assert_eq!(show(&db, "idle_in_transaction_session_timeout"), "5s");
        assert_eq!(show(&db, "plan_cache_mode"), "force_generic_plan");
        config.statement_timeout = Duration::from_millis(1500);
        config.idle_in_transaction_session_timeout = Duration::ZERO;
        config.lock_timeout = Duration::from_secs(2);
        let db = PostgresDatabase::open(&config).expect("pool");
        assert_eq!(show(&db, "statement_timeout"), "1500ms");
        assert_eq!(show(&db, "idle_in_transaction_session_timeout"), "0");
        assert_eq!(show(&db, "lock_timeout"), "2s");
    }

    #[test]
    fn a_statement_past_its_timeout_is_cancelled_by_the_server() {
        let Some(mut config) = test_server() else {
            return;
        };
        config.statement_timeout = Duration::from_millis(200);
        let db = PostgresDatabase::open(&config).expect("pool");
        let started = std::time::Instant::now();
        let error = db
            .read("sleeping", |connection| {
                connection.client.batch_execute("SELECT pg_sleep(5)")
            })
            .expect_err("cancelled");
        assert!(started.elapsed() < Duration::from_secs(3), "{error}");
        assert!(error.to_string().contains("statement timeout"), "{error}");
    }

    #[test]
    fn pre_ping_replaces_a_connection_the_server_closed_before_the_work_sees_it() {
        let Some(mut config) = test_server() else {
            return;
        };
        config.pool_size = 1;
        let pid_of = |db: &PostgresDatabase| -> i32 {
            let mut connection = db.connection().expect("connection");
            let row = connection
                .client
                .query_one("SELECT pg_backend_pid()", &[])
                .expect("pid");
            row.get(0)
        };
        let killer = PostgresDatabase::open(&config).expect("pool");
        let terminate = |pid: i32| {
            let mut connection = killer.connection().expect("connection");
            connection
                .client
                .execute("SELECT pg_terminate_backend($1)", &[&pid])
                .expect("terminate");
        };
        for pre_ping in [false, true] {
            config.pre_ping = pre_ping;
            let db = PostgresDatabase::open(&config).expect("pool");
            terminate(pid_of(&db));
            std::thread::sleep(Duration::from_millis(100));
            let mut connection = db.connection().expect("connection");
            let first_use = connection.client.simple_query("SELECT 1");
            assert_eq!(first_use.is_ok(), pre_ping, "pre_ping {pre_ping}");
        }
    }

    #[test]
    fn the_network_timeout_paces_keepalives_and_bounds_unacknowledged_data() {
        let mut config = PostgresConfig::new("h", "d", "u");
        config.network_timeout = Duration::from_secs(12);
        let client = config.client_config();
        assert_eq!(
            client.get_tcp_user_timeout(),
            Some(&Duration::from_secs(12))
        );
        assert!(client.get_keepalives());
        assert_eq!(client.get_keepalives_idle(), Duration::from_secs(6));
        assert_eq!(
            client.get_keepalives_interval(),
            Some(Duration::from_secs(2))
        );
        assert_eq!(client.get_keepalives_retries(), Some(3));
        config.network_timeout = Duration::ZERO;
        assert_eq!(config.client_config().get_tcp_user_timeout(), None);
    }
}
