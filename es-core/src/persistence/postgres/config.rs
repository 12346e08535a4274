//! How to reach a PostgreSQL server, and which tables an application's names give.

use std::path::PathBuf;
use std::time::Duration;

use super::connection_string;
use crate::error::{Error, Result};

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
    /// The type of the tables' `originator_id` column (`ORIGINATOR_ID_TYPE`):
    /// `Text` to store text ids as well as UUIDs. `None`, the default, takes
    /// the type of a table already there and makes new tables `uuid`; a
    /// setting that differs from an existing table's is an [`Error::Config`].
    pub originator_id_type: Option<OriginatorIdType>,
    /// Whether and how the connection is encrypted (`POSTGRES_SSLMODE`, or
    /// `sslmode` in the URL; default [`SslMode::Prefer`]).
    pub ssl_mode: SslMode,
    /// The certificate authorities a server's certificate is checked against
    /// with `verify-ca` and `verify-full` (`POSTGRES_SSLROOTCERT`, or
    /// `sslrootcert` in the URL): a PEM file. `None` uses the web's roots
    /// (Mozilla's list, built in).
    pub ssl_root_cert: Option<PathBuf>,
    /// The longest a statement may run on the server before the server
    /// cancels it (`POSTGRES_STATEMENT_TIMEOUT`); zero, the default, sets no limit.
    pub statement_timeout: Duration,
    /// The longest a session may sit idle inside a transaction before the
    /// server ends it, releasing its locks
    /// (`POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT`, default 5 s; zero for none).
    pub idle_in_transaction_session_timeout: Duration,
    /// How long the network may stay silent before a connection is given up
    /// (`POSTGRES_NETWORK_TIMEOUT`, default 60 s; zero leaves it to the
    /// operating system). It bounds unacknowledged data (`TCP_USER_TIMEOUT`)
    /// and paces TCP keepalives, so a server or link that vanished without a
    /// word is noticed. On an encrypted connection with a statement timeout,
    /// a reply that has not begun within the statement timeout plus this
    /// also fails the call, whatever stalled between the two ends.
    pub network_timeout: Duration,
    /// Whether a pooled connection is checked with a round trip before each
    /// use (`POSTGRES_PRE_PING`, default off): a connection the server closed
    /// is then replaced before the work rather than after a failed attempt.
    pub pre_ping: bool,
    /// How long a pooled connection is kept before it is closed and replaced
    /// (`POSTGRES_CONN_MAX_AGE`, default one hour); `None` keeps connections
    /// for as long as they work.
    pub conn_max_age: Option<Duration>,
}

/// How the connection to the server is encrypted, as libpq's `sslmode`.
///
/// `Prefer` and `Require` encrypt without checking who answers (as libpq
/// does); `VerifyCa` also checks the server's certificate against the
/// certificate authorities; `VerifyFull` also checks that it names the host.
///
/// ```
/// use es_core::persistence::SslMode;
/// assert_eq!(SslMode::default(), SslMode::Prefer);
/// assert_eq!(SslMode::parse("Verify-Full"), Some(SslMode::VerifyFull));
/// assert_eq!(SslMode::VerifyCa.as_str(), "verify-ca");
/// assert_eq!(SslMode::parse("allow"), None);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SslMode {
    /// Never encrypt.
    Disable,
    /// Encrypt if the server can, without checking its certificate.
    #[default]
    Prefer,
    /// Always encrypt, without checking the server's certificate.
    Require,
    /// Always encrypt, and check the certificate against the authorities.
    VerifyCa,
    /// As `VerifyCa`, and check that the certificate names the host.
    VerifyFull,
}

impl SslMode {
    /// The accepted spellings, in the order of increasing protection.
    pub const ACCEPTED: &'static [&'static str] =
        &["disable", "prefer", "require", "verify-ca", "verify-full"];

    /// The mode a setting names (any case, trimmed), if it names one.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "disable" => Some(SslMode::Disable),
            "prefer" => Some(SslMode::Prefer),
            "require" => Some(SslMode::Require),
            "verify-ca" => Some(SslMode::VerifyCa),
            "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }

    /// The mode as libpq spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// The type of the `originator_id` column of PostgreSQL tables, as the Python
/// library's `ORIGINATOR_ID_TYPE`: `uuid` (the default, 16 bytes an id) keeps
/// only UUID ids; `text` keeps any [`OriginatorId`](crate::OriginatorId), a UUID as its canonical text.
///
/// It chooses the column type of tables it creates; tables already there keep
/// theirs. Left unset, an existing table's type is used; set, a setting that
/// differs from an existing table's is an [`Error::Config`] when the tables
/// are checked at startup.
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

impl std::fmt::Display for OriginatorIdType {
    /// As in SQL: `uuid` or `text`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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
    /// The idle-in-transaction timeout used when none is given, the Python library's.
    pub const DEFAULT_IDLE_IN_TRANSACTION_SESSION_TIMEOUT: Duration = Duration::from_secs(5);
    /// The network timeout used when none is given.
    pub const DEFAULT_NETWORK_TIMEOUT: Duration = Duration::from_secs(60);
    /// The longest a pooled connection is kept when nothing else is given, the Python library's.
    pub const DEFAULT_CONN_MAX_AGE: Duration = Duration::from_secs(3600);

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
            originator_id_type: None,
            ssl_mode: SslMode::default(),
            ssl_root_cert: None,
            statement_timeout: Duration::ZERO,
            idle_in_transaction_session_timeout: Self::DEFAULT_IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
            network_timeout: Self::DEFAULT_NETWORK_TIMEOUT,
            pre_ping: false,
            conn_max_age: Some(Self::DEFAULT_CONN_MAX_AGE),
        }
    }

    /// A configuration from a connection string, as `POSTGRES_URL`: a URL such
    /// as `postgres://user:password@host:5432/dbname?sslmode=require`, or
    /// libpq's `key=value` pairs (`host=db user=app dbname=events`). It gives
    /// the host, port, database, user, password, connect timeout, `sslmode` and
    /// `sslrootcert`; the rest keeps its defaults. A string that cannot be read
    /// is an [`Error::Config`] that shows neither the password nor anything
    /// that could be one.
    ///
    /// ```
    /// use es_core::persistence::{PostgresConfig, SslMode};
    /// let config = PostgresConfig::from_url("postgresql://root@localhost/test?sslmode=verify-full")?;
    /// assert_eq!((config.user.as_str(), config.port, config.ssl_mode), ("root", 5432, SslMode::VerifyFull));
    /// let config = PostgresConfig::from_url("host=db user=app dbname=events password='s3 cret'")?;
    /// assert!(config.has_password());
    /// let error = PostgresConfig::from_url("postgres://me:hunter2@/nodb").unwrap_err();
    /// assert!(error.to_string().contains("POSTGRES_URL") && !error.to_string().contains("hunter2"));
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        Self::parse_url(url).map_err(|why| Error::Config {
            variable: "POSTGRES_URL".into(),
            value: connection_string::redact(url),
            expected: format!(
                "a URL such as postgres://user@127.0.0.1:5432/dbname, or key=value pairs such \
                 as 'host=127.0.0.1 user=app dbname=events' ({why})"
            ),
        })
    }

    fn parse_url(url: &str) -> std::result::Result<Self, String> {
        let parsed = connection_string::parse(url)?;
        let driver = &parsed.driver;
        let host = match driver.get_hosts() {
            [postgres::config::Host::Tcp(host)] => host.clone(),
            #[cfg(unix)]
            [postgres::config::Host::Unix(path)] => path.to_string_lossy().into_owned(),
            [] => return Err("it names no host".into()),
            _ => return Err("it must name exactly one host".into()),
        };
        let port = match driver.get_ports() {
            [] => Self::DEFAULT_PORT,
            [0] => return Err("its port is 0: give one from 1 to 65535".into()),
            [port] => *port,
            _ => return Err("it must name at most one port".into()),
        };
        let dbname = driver
            .get_dbname()
            .ok_or("it names no database")?
            .to_owned();
        let user = driver.get_user().ok_or("it names no user")?.to_owned();
        if user.is_empty() {
            return Err("its user is empty".into());
        }
        let password = match driver.get_password() {
            Some(bytes) => {
                Some(String::from_utf8(bytes.to_vec()).map_err(|_| "its password is not UTF-8")?)
            }
            None => None,
        };
        let mut config = Self::new(host, dbname, user);
        config.port = port;
        config.password = password.filter(|password| !password.is_empty());
        if let Some(timeout) = driver.get_connect_timeout() {
            if timeout.is_zero() {
                return Err("its connect_timeout is 0: give a positive number of seconds".into());
            }
            config.connect_timeout = *timeout;
        }
        if let Some(ssl_mode) = parsed.ssl_mode {
            config.ssl_mode = ssl_mode;
        }
        config.ssl_root_cert = parsed.ssl_root_cert;
        Ok(config)
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

    pub(super) fn client_config(&self) -> postgres::Config {
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
        // The driver knows whether to try TLS; which certificates pass is
        // the connector's business (see `tls`).
        config.ssl_mode(match self.ssl_mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                postgres::config::SslMode::Require
            }
        });
        // The session's timeouts, as startup options rather than SQL. Only
        // writers and DDL ever wait for a lock on these tables (plain reads are
        // not blocked by the writers' EXCLUSIVE lock), so the lock timeout
        // bounds exactly the waits the Python library bounds with `SET LOCAL
        // lock_timeout`, without a statement per save. The values are numbers
        // we format.
        //
        // Every statement of a recorder is prepared once per connection and
        // looks rows up by key, so one generic plan serves every call. Left to
        // itself the server plans each of the first five calls anew, and for
        // the snapshot-and-events statement that planning takes longer than
        // running it.
        config.options(&format!(
            "-c lock_timeout={} -c statement_timeout={} -c idle_in_transaction_session_timeout={} \
             -c plan_cache_mode=force_generic_plan",
            timeout_millis(self.lock_timeout),
            timeout_millis(self.statement_timeout),
            timeout_millis(self.idle_in_transaction_session_timeout),
        ));
        if !self.network_timeout.is_zero() {
            // A peer gone without a word is noticed by the kernel: data left
            // unacknowledged for the whole timeout, or an idle connection whose
            // keepalive probes go unanswered for about as long.
            // The kernel counts keepalive times in whole seconds, from 1.
            let second = Duration::from_secs(1);
            config
                .tcp_user_timeout(self.network_timeout)
                .keepalives(true)
                .keepalives_idle((self.network_timeout / 2).max(second))
                .keepalives_interval((self.network_timeout / 6).max(second))
                .keepalives_retries(3);
        }
        config
    }
}

/// A PostgreSQL timeout setting in milliseconds: 0 is "no limit"; a non-zero
/// timeout below a millisecond stays non-zero; the server's maximum is
/// `i32::MAX` milliseconds.
fn timeout_millis(timeout: Duration) -> u128 {
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
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("statement_timeout", &self.statement_timeout)
            .field(
                "idle_in_transaction_session_timeout",
                &self.idle_in_transaction_session_timeout,
            )
            .field("network_timeout", &self.network_timeout)
            .field("pre_ping", &self.pre_ping)
            .field("conn_max_age", &self.conn_max_age)
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

/// The longest name PostgreSQL keeps whole; longer ones it silently truncates.
pub(super) const MAX_IDENTIFIER_BYTES: usize = 63;

/// `value`, folded to lower case as PostgreSQL folds unquoted names, if it is a
/// plain identifier of at most `max_bytes`; else an [`Error::Config`] naming
/// `variable`. Only names that pass this are ever written into SQL, and then
/// always quoted.
pub(crate) fn checked_identifier(variable: &str, value: &str, max_bytes: usize) -> Result<String> {
    if is_plain_identifier(value) && value.len() <= max_bytes {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(not_plain(variable, value, max_bytes))
    }
}

fn not_plain(variable: &str, value: &str, max_bytes: usize) -> Error {
    Error::Config {
        variable: variable.to_owned(),
        value: value.to_owned(),
        expected: format!(
            "a plain name: ASCII letters, digits and underscores, not starting with a digit, \
             at most {max_bytes} bytes"
        ),
    }
}

fn is_plain_identifier(value: &str) -> bool {
    is_identifier(value, '_')
}

/// Whether `value` is an ASCII letter or `_` followed by letters, digits,
/// `_` and `also`.
fn is_identifier(value: &str, also: char) -> bool {
    let mut chars = value.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == also)
}

/// `value` as the schema of the tables: a plain name that is not one of
/// PostgreSQL's own schemas, where tables of ours would mix with the catalog.
pub(crate) fn checked_schema(variable: &str, value: &str) -> Result<String> {
    let schema = checked_identifier(variable, value, MAX_IDENTIFIER_BYTES)?;
    if schema == "information_schema" || schema.starts_with("pg_") {
        return Err(Error::Config {
            variable: variable.to_owned(),
            value: value.to_owned(),
            expected: "a schema of the application's own: information_schema and the names \
                       starting with pg_ belong to PostgreSQL"
                .into(),
        });
    }
    Ok(schema)
}

/// The namespace of the name-based UUIDs whose first digits tell apart
/// application names that read alike. Any fixed value would do; changing it
/// would rename tables.
const TABLE_NAME_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6573_2d63_6f72_652d_7461_626c_6573_0001);

/// Hex digits of the name's hash in a table prefix: 32 bits, so that two
/// names clash only among tens of thousands of odd names in one database.
const NAME_HASH_DIGITS: usize = 8;

/// The table prefix an application's name gives, never the same for two
/// names that differ other than in case. A plain name (ASCII letters, digits,
/// `_`) is itself in lower case (`Bank` gives `bank`). Any other name, or a
/// longer one than table names allow, gives its readable part (lower case,
/// other characters as `_`), a `$` and a hash of the exact name
/// (`dog-school` gives `dog_school$` and eight hex digits): no plain name
/// contains `$`, so the two kinds never meet.
pub(crate) fn table_prefix_from_name(name: &str) -> String {
    if is_plain_identifier(name) && name.len() <= MAX_PREFIX_BYTES {
        return name.to_ascii_lowercase();
    }
    let mut readable: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if !readable.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        readable.insert(0, '_');
    }
    readable.truncate(MAX_PREFIX_BYTES - 1 - NAME_HASH_DIGITS);
    let hash = uuid::Uuid::new_v5(&TABLE_NAME_NAMESPACE, name.as_bytes()).simple();
    format!("{readable}${}", &hash.to_string()[..NAME_HASH_DIGITS])
}

/// The longest table suffix, `_snapshots`: a prefix may take the rest of 63 bytes.
const MAX_PREFIX_BYTES: usize = MAX_IDENTIFIER_BYTES - "_snapshots".len();

/// `prefix` if it can start table names: a plain name, or one that an
/// application's name gave (with a `$` after its first character), short
/// enough for the longest suffix.
pub(super) fn checked_prefix(prefix: &str) -> Result<String> {
    if is_identifier(prefix, '$') && prefix.len() <= MAX_PREFIX_BYTES {
        Ok(prefix.to_ascii_lowercase())
    } else {
        Err(not_plain("table prefix", prefix, MAX_PREFIX_BYTES))
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
        assert_eq!(table_prefix_from_name("Bank"), "bank");
        assert_eq!(table_prefix_from_name("dog_school"), "dog_school");
        let hashed = table_prefix_from_name("dog-school");
        assert!(
            hashed.starts_with("dog_school$") && hashed.len() == 19,
            "{hashed}"
        );
        assert_eq!(hashed, table_prefix_from_name("dog-school"), "stable");
        assert!(checked_prefix(&hashed).is_ok());
        for name in [
            "",
            "2nd",
            "é",
            "dog school",
            &"x".repeat(54),
            &"é".repeat(100),
        ] {
            let prefix = table_prefix_from_name(name);
            assert!(
                prefix.contains('$') && prefix.len() <= 53,
                "{name}: {prefix}"
            );
            assert!(checked_prefix(&prefix).is_ok(), "{name}: {prefix}");
        }
        assert_ne!(
            table_prefix_from_name(&"x".repeat(54)),
            table_prefix_from_name(&"x".repeat(55))
        );
        assert!(checked_prefix("$x").is_err());
        assert!(checked_prefix("a b$1").is_err());
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
    fn timeouts_are_whole_milliseconds_with_zero_for_none() {
        assert_eq!(timeout_millis(Duration::ZERO), 0);
        assert_eq!(timeout_millis(Duration::from_micros(10)), 1);
        assert_eq!(timeout_millis(Duration::from_millis(1500)), 1500);
        assert_eq!(timeout_millis(Duration::MAX), i32::MAX as u128);
    }
}
