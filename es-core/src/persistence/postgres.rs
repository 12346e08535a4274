//! The PostgreSQL recorder: the sync `postgres` client, over an r2d2 pool.
//!
//! Tables are per application (`<prefix>_events`, `<prefix>_snapshots`) in a
//! configurable schema, as in the Python library's PostgreSQL module.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};
use r2d2::{ManageConnection, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;
use uuid::Uuid;

use crate::domain::id::OriginatorId;

use super::recorder::{AggregateRecorder, ApplicationRecorder, EventQuery};
use super::sql::{
    clamp, notification_from_sql, notification_id_from_sql, version_from_sql, version_to_sql,
};
use super::stored_event::{Notification, StoredEvent};
use crate::error::{BoxError, Error, Result};

/// How to reach a PostgreSQL server, and where in it the tables go.
///
/// Build one in code with [`new`](Self::new) or [`from_url`](Self::from_url),
/// or let the application read it from the `POSTGRES_*` variables (see the
/// README). The password is never shown: not by `Debug`, not by `Display`, not
/// in errors.
///
/// ```
/// use es_core::persistence::PostgresConfig;
/// let mut config = PostgresConfig::from_url("postgres://app:s3cret@db.internal:6543/events")?;
/// assert_eq!((config.host.as_str(), config.port, config.dbname.as_str()), ("db.internal", 6543, "events"));
/// assert!(config.has_password());
/// config.schema = "accounting".into();
/// config.table_prefix = Some("bank".into());
/// assert_eq!(config.to_string(), "postgres://app@db.internal:6543/events");
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), es_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// The server's host name or IP address, or a Unix socket directory (`POSTGRES_HOST`).
    pub host: String,
    /// The server's port (`POSTGRES_PORT`, default 5432).
    pub port: u16,
    /// The database (`POSTGRES_DBNAME`).
    pub dbname: String,
    /// The user to log in as (`POSTGRES_USER`).
    pub user: String,
    password: Option<String>,
    /// The most connections the pool opens (`POSTGRES_POOL_SIZE`, default 5).
    pub pool_size: u32,
    /// How long opening a connection, or waiting for a free one, may take
    /// before the operation fails (`POSTGRES_CONNECT_TIMEOUT`, default 30 s).
    pub connect_timeout: Duration,
    /// How long a write waits for the table lock held by other writers
    /// (`POSTGRES_LOCK_TIMEOUT`); zero, the default, waits for as long as it takes.
    pub lock_timeout: Duration,
    /// The schema of the tables (`POSTGRES_SCHEMA`, default `public`).
    pub schema: String,
    /// The tables' name prefix: `<prefix>_events` and `<prefix>_snapshots`.
    /// `None` names them after the application, or `stored_events` and
    /// `snapshots` when the application has no name.
    pub table_prefix: Option<String>,
    /// The type of the tables' `originator_id` column (`ORIGINATOR_ID_TYPE`,
    /// default `uuid`): `Text` to store text ids as well as UUIDs.
    pub originator_id_type: OriginatorIdType,
}

/// The type of the `originator_id` column of PostgreSQL tables, as the Python
/// library's `ORIGINATOR_ID_TYPE`: `uuid` (the default, 16 bytes an id) keeps
/// only UUID ids; `text` keeps any [`OriginatorId`], a UUID as its canonical text.
///
/// It chooses the column type of tables it creates; tables already there keep
/// theirs, and a setting that differs from an existing table's is an
/// [`Error::Config`] when the tables are checked at startup.
///
/// ```
/// use es_core::persistence::OriginatorIdType;
/// assert_eq!(OriginatorIdType::default(), OriginatorIdType::Uuid);
/// assert_eq!(OriginatorIdType::parse(" TEXT "), Some(OriginatorIdType::Text));
/// assert_eq!(OriginatorIdType::Text.as_str(), "text");
/// assert_eq!(OriginatorIdType::parse("varchar"), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OriginatorIdType {
    /// A `uuid` column: only UUID ids.
    #[default]
    Uuid,
    /// A `text` column: UUID and text ids.
    Text,
}

impl OriginatorIdType {
    /// The setting's value, `uuid` or `text` (any case, trimmed), if it is one.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "uuid" => Some(OriginatorIdType::Uuid),
            "text" => Some(OriginatorIdType::Text),
            _ => None,
        }
    }

    /// The column type's name in SQL.
    pub fn as_str(self) -> &'static str {
        match self {
            OriginatorIdType::Uuid => "uuid",
            OriginatorIdType::Text => "text",
        }
    }
}

impl PostgresConfig {
    /// The port used when none is given.
    pub const DEFAULT_PORT: u16 = 5432;
    /// The pool size used when none is given.
    pub const DEFAULT_POOL_SIZE: u32 = 5;
    /// The connect timeout used when none is given.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
    /// The schema used when none is given.
    pub const DEFAULT_SCHEMA: &'static str = "public";

    /// A configuration for `user` on database `dbname` at `host`, with the
    /// defaults for everything else and no password.
    ///
    /// ```
    /// let config = es_core::persistence::PostgresConfig::new("127.0.0.1", "test", "postgres");
    /// assert_eq!(config.to_string(), "postgres://postgres@127.0.0.1:5432/test");
    /// ```
    pub fn new(
        host: impl Into<String>,
        dbname: impl Into<String>,
        user: impl Into<String>,
    ) -> Self {
        PostgresConfig {
            host: host.into(),
            port: Self::DEFAULT_PORT,
            dbname: dbname.into(),
            user: user.into(),
            password: None,
            pool_size: Self::DEFAULT_POOL_SIZE,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            lock_timeout: Duration::ZERO,
            schema: Self::DEFAULT_SCHEMA.to_owned(),
            table_prefix: None,
            originator_id_type: OriginatorIdType::Uuid,
        }
    }

    /// A configuration from a URL such as `postgres://user:password@host:5432/dbname`
    /// (as `POSTGRES_URL`). It gives the host, port, database, user and password;
    /// the rest keeps its defaults. A bad URL is an [`Error::Config`] that does
    /// not repeat the password.
    ///
    /// ```
    /// use es_core::persistence::PostgresConfig;
    /// let config = PostgresConfig::from_url("postgresql://root@localhost/test")?;
    /// assert_eq!((config.user.as_str(), config.port), ("root", 5432));
    /// let error = PostgresConfig::from_url("postgres://me:hunter2@/nodb").unwrap_err();
    /// assert!(error.to_string().contains("POSTGRES_URL") && !error.to_string().contains("hunter2"));
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        Self::parse_url(url).map_err(|why| Error::Config {
            variable: "POSTGRES_URL".into(),
            value: redact_url(url),
            expected: format!("a URL such as postgres://user@127.0.0.1:5432/dbname ({why})"),
        })
    }

    fn parse_url(url: &str) -> std::result::Result<Self, String> {
        let trimmed = url.trim();
        if !(trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://")) {
            return Err("it must start with postgres:// or postgresql://".into());
        }
        let parsed: postgres::Config = trimmed
            .parse()
            .map_err(|e: postgres::Error| e.to_string())?;
        let host = match parsed.get_hosts() {
            [postgres::config::Host::Tcp(host)] => host.clone(),
            #[cfg(unix)]
            [postgres::config::Host::Unix(path)] => path.to_string_lossy().into_owned(),
            [] => return Err("it names no host".into()),
            _ => return Err("it must name exactly one host".into()),
        };
        let port = match parsed.get_ports() {
            [] => Self::DEFAULT_PORT,
            [port] => *port,
            _ => return Err("it must name at most one port".into()),
        };
        let dbname = parsed
            .get_dbname()
            .ok_or("it names no database")?
            .to_owned();
        let user = parsed.get_user().ok_or("it names no user")?.to_owned();
        let password = match parsed.get_password() {
            Some(bytes) => {
                Some(String::from_utf8(bytes.to_vec()).map_err(|_| "its password is not UTF-8")?)
            }
            None => None,
        };
        Ok(PostgresConfig {
            password,
            port,
            ..Self::new(host, dbname, user)
        })
    }

    /// The same configuration, logging in with `password`.
    ///
    /// ```
    /// let config = es_core::persistence::PostgresConfig::new("db", "shop", "app").with_password("pw");
    /// assert!(config.has_password());
    /// ```
    pub fn with_password(mut self, password: impl Into<String>) -> Self {
        let password = password.into();
        self.password = (!password.is_empty()).then_some(password);
        self
    }

    /// Whether a password is set (the password itself cannot be read back).
    ///
    /// ```
    /// assert!(!es_core::persistence::PostgresConfig::new("db", "shop", "app").has_password());
    /// ```
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    fn client_config(&self) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .dbname(&self.dbname)
            .user(&self.user)
            .application_name("es-core")
            .connect_timeout(self.connect_timeout);
        if let Some(password) = &self.password {
            config.password(password);
        }
        // The session's lock timeout, as a startup option rather than SQL. Only
        // writers and DDL ever wait for a lock on these tables (plain reads are
        // not blocked by the writers' EXCLUSIVE lock), so this bounds exactly
        // the waits the Python library bounds with `SET LOCAL lock_timeout`,
        // without a statement per save. The value is a number we format.
        config.options(&format!(
            "-c lock_timeout={}",
            lock_timeout_millis(self.lock_timeout)
        ));
        config
    }
}

/// PostgreSQL's `lock_timeout` in milliseconds: 0 is "wait forever"; a
/// non-zero timeout below a millisecond stays non-zero; the server's maximum
/// is `i32::MAX` milliseconds.
fn lock_timeout_millis(timeout: Duration) -> u128 {
    if timeout.is_zero() {
        0
    } else {
        timeout.as_millis().clamp(1, i32::MAX as u128)
    }
}

impl std::fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("dbname", &self.dbname)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("lock_timeout", &self.lock_timeout)
            .field("schema", &self.schema)
            .field("table_prefix", &self.table_prefix)
            .field("originator_id_type", &self.originator_id_type)
            .finish()
    }
}

impl std::fmt::Display for PostgresConfig {
    /// The server as a URL without the password: `postgres://user@host:port/dbname`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, self.dbname
        )
    }
}

/// `url` with any password in it replaced by `***`, for error messages.
fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:***{}",
            &url[..scheme_end],
            &rest[..colon],
            &rest[at..]
        ),
        None => url.to_owned(),
    }
}

/// The longest name PostgreSQL keeps whole; longer ones it silently truncates.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// `value`, folded to lower case as PostgreSQL folds unquoted names, if it is a
/// plain identifier of at most `max_bytes`; else an [`Error::Config`] naming
/// `variable`. Only names that pass this are ever written into SQL, and then
/// always quoted.
pub(crate) fn checked_identifier(variable: &str, value: &str, max_bytes: usize) -> Result<String> {
    let mut chars = value.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && value.len() <= max_bytes;
    if plain {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(Error::Config {
            variable: variable.to_owned(),
            value: value.to_owned(),
            expected: format!(
                "a plain name: ASCII letters, digits and underscores, not starting with a digit, \
                 at most {max_bytes} bytes"
            ),
        })
    }
}

/// The table prefix an application's name gives: lower case, with every
/// character that is not a letter or digit as `_` (`"dog-school"` gives `dog_school`).
pub(crate) fn table_prefix_from_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// The longest table suffix, `_snapshots`: a prefix may take the rest of 63 bytes.
const MAX_PREFIX_BYTES: usize = MAX_IDENTIFIER_BYTES - "_snapshots".len();

/// A pooled connection with the statements prepared on it, so that each SQL
/// text is parsed and planned once per connection rather than once per call.
struct CachingConnection {
    client: Client,
    statements: HashMap<String, Statement>,
}

impl CachingConnection {
    fn prepare(&mut self, sql: &str) -> std::result::Result<Statement, postgres::Error> {
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
struct Transaction<'a> {
    client: &'a mut postgres::Client,
    open: bool,
}

impl<'a> Transaction<'a> {
    fn begin(
        client: &'a mut postgres::Client,
        begin_sql: &str,
    ) -> std::result::Result<Self, postgres::Error> {
        let transaction = Transaction { client, open: true };
        transaction.client.batch_execute(begin_sql)?;
        Ok(transaction)
    }

    fn commit(mut self) -> std::result::Result<(), postgres::Error> {
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
struct Manager(PostgresConnectionManager<NoTls>);

/// A connection error whose message includes its cause: r2d2 keeps only the
/// message of the last failed attempt, and the driver's own message alone says
/// no more than "error connecting to server".
#[derive(Debug)]
struct ConnectError(postgres::Error);

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
    schema: String,
    id_type: OriginatorIdType,
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

    fn connection(&self) -> Result<PooledConnection<Manager>> {
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
    fn run<T, E>(
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
    fn read<T>(
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
fn pg_error(operation: &'static str, error: postgres::Error) -> Error {
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
    db: Arc<PostgresDatabase>,
    /// `schema.table`, for messages.
    name: String,
    /// `"schema"."table"`, for SQL.
    quoted: String,
    with_log: bool,
    insert_sql: String,
    /// Starts a write: `BEGIN`, and for the events table its lock.
    begin_sql: String,
    id_type: OriginatorIdType,
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
        let id_type = db.id_type.as_str();
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
            id_type: db.id_type,
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

    fn create_table(&self) -> Result<()> {
        let quoted = &self.quoted;
        let id_type = self.id_type.as_str();
        let mut ddl = String::new();
        if self.db.schema != PostgresConfig::DEFAULT_SCHEMA {
            let _ = writeln!(ddl, "CREATE SCHEMA IF NOT EXISTS \"{}\";", self.db.schema);
        }
        // The unique constraint is the unique index on notification_id; letting
        // the server name it (and the sequence) keeps long prefixes within 63 bytes.
        let log_column = if self.with_log {
            "notification_id bigserial NOT NULL UNIQUE,"
        } else {
            ""
        };
        let _ = write!(
            ddl,
            "CREATE TABLE IF NOT EXISTS {quoted} (
                originator_id {id_type} NOT NULL,
                originator_version bigint NOT NULL,
                topic text NOT NULL,
                state bytea NOT NULL,
                {log_column}
                PRIMARY KEY (originator_id, originator_version)
            );"
        );
        let mut connection = self.db.connection()?;
        let mut transaction = connection
            .client
            .transaction()
            .map_err(|e| pg_error("creating the PostgreSQL tables", e))?;
        // Two processes creating the same table at once can both pass IF NOT
        // EXISTS and one then fails on the catalog's unique index: a lock of
        // our own serializes the creation instead.
        transaction
            .execute("SELECT pg_advisory_xact_lock($1)", &[&DDL_LOCK_KEY])
            .and_then(|_| transaction.batch_execute(&ddl))
            .map_err(|e| pg_error("creating the PostgreSQL tables", e))?;
        // A table made earlier keeps its column type whatever the setting says
        // now: catch a mismatch here, by name, rather than as a driver error
        // on the first write.
        let (schema, table) = self.name.split_once('.').unwrap_or(("", &self.name));
        let found: Option<String> = transaction
            .query_opt(
                "SELECT data_type FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 AND column_name = 'originator_id'",
                &[&schema, &table],
            )
            .and_then(|row| row.map(|row| row.try_get(0)).transpose())
            .map_err(|e| pg_error("checking the PostgreSQL tables", e))?;
        if let Some(found) = found
            && found != id_type
        {
            return Err(Error::Config {
                variable: "ORIGINATOR_ID_TYPE".into(),
                value: id_type.into(),
                expected: format!(
                    "{found}, the type of originator_id in the existing table {} \
                     (the setting chooses the type of new tables only)",
                    self.name
                ),
            });
        }
        transaction
            .commit()
            .map_err(|e| pg_error("creating the PostgreSQL tables", e))
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

/// An arbitrary constant: the advisory lock es-core holds while creating tables.
const DDL_LOCK_KEY: i64 = 0x0065_732d_636f_7265;

fn checked_prefix(prefix: &str) -> Result<String> {
    checked_identifier("table prefix", prefix, MAX_PREFIX_BYTES)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_plain_names_folded_to_lower_case() {
        assert_eq!(
            checked_identifier("X", "Dog_School2", 63).expect("plain"),
            "dog_school2"
        );
        assert_eq!(checked_identifier("X", "_x", 63).expect("plain"), "_x");
        for bad in [
            "",
            "2dogs",
            "x; drop table t",
            "a\"b",
            "dog-school",
            "é",
            "a b",
        ] {
            let error = checked_identifier("POSTGRES_SCHEMA", bad, 63).expect_err(bad);
            let message = error.to_string();
            assert!(
                message.contains("POSTGRES_SCHEMA") && message.contains("letters, digits"),
                "{message}"
            );
        }
        assert!(checked_identifier("X", &"a".repeat(63), 63).is_ok());
        assert!(checked_identifier("X", &"a".repeat(64), 63).is_err());
    }

    #[test]
    fn a_prefix_leaves_room_for_the_longest_suffix() {
        assert!(checked_prefix(&"p".repeat(53)).is_ok());
        let error = checked_prefix(&"p".repeat(54))
            .expect_err("too long")
            .to_string();
        assert!(
            error.contains("table prefix") && error.contains("53 bytes"),
            "{error}"
        );
    }

    #[test]
    fn application_names_become_prefixes() {
        assert_eq!(table_prefix_from_name("dog-school"), "dog_school");
        assert_eq!(table_prefix_from_name("Bank"), "bank");
        assert_eq!(table_prefix_from_name("my app.v2"), "my_app_v2");
    }

    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            redact_url("postgres://me:pw@host/db"),
            "postgres://me:***@host/db"
        );
        assert_eq!(
            redact_url("postgres://me:p@ss@host:1/db?x=y"),
            "postgres://me:***@host:1/db?x=y"
        );
        assert_eq!(redact_url("postgres://me@host/db"), "postgres://me@host/db");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn urls_give_host_port_database_user_and_password() {
        let config = PostgresConfig::from_url("postgres://u:p%40ss@h:1234/d").expect("valid");
        assert_eq!(
            (
                config.host.as_str(),
                config.port,
                config.dbname.as_str(),
                config.user.as_str()
            ),
            ("h", 1234, "d", "u")
        );
        assert_eq!(config.password.as_deref(), Some("p@ss"));
        for bad in [
            "mysql://u@h/d",
            "postgres://u@h",
            "postgres://h/d",
            "postgres://u@h1,h2/d",
            "postgres://u:secret@h:notaport/d",
        ] {
            let error = PostgresConfig::from_url(bad).expect_err(bad);
            let message = error.to_string();
            assert!(
                matches!(&error, Error::Config { variable, .. } if variable == "POSTGRES_URL"),
                "{message}"
            );
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn the_password_is_in_neither_debug_nor_display() {
        let config = PostgresConfig::new("h", "d", "u").with_password("hunter2");
        let shown = format!("{config} {config:?} {config:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(
            !PostgresConfig::new("h", "d", "u")
                .with_password("")
                .has_password()
        );
    }

    #[test]
    fn lock_timeouts_are_whole_milliseconds_with_zero_for_none() {
        assert_eq!(lock_timeout_millis(Duration::ZERO), 0);
        assert_eq!(lock_timeout_millis(Duration::from_micros(10)), 1);
        assert_eq!(lock_timeout_millis(Duration::from_millis(1500)), 1500);
        assert_eq!(lock_timeout_millis(Duration::MAX), i32::MAX as u128);
    }

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
