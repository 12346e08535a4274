//! How to reach a PostgreSQL server, and which tables an application's names give.

use std::time::Duration;

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
pub(super) const MAX_IDENTIFIER_BYTES: usize = 63;

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

/// `prefix` if it can start table names: a plain name short enough for the
/// longest suffix.
pub(super) fn checked_prefix(prefix: &str) -> Result<String> {
    checked_identifier("table prefix", prefix, MAX_PREFIX_BYTES)
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
}
