//! Building an application: settings in code, then the environment, then defaults.

use std::collections::HashMap;
#[cfg(feature = "sqlite")]
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::environment::Environment;
use super::mapper_config::MapperSettings;
use super::notification_log::DEFAULT_SECTION_SIZE;
use super::{Application, Subscriber};
use crate::domain::aggregate::Aggregate;
use crate::error::{BoxError, Result};
use crate::persistence::{
    AggregateRecorder, ApplicationRecorder, Cipher, Compressor, MemoryRecorder, Transcoder,
};

/// Where an application keeps its events.
// Made once per application: boxing the PostgreSQL settings would save
// nothing worth the clumsier matching.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Persistence {
    /// In memory, gone with the process (`PERSISTENCE_MODULE=memory`, or `popo`).
    Memory,
    /// A SQLite database file, or `":memory:"` (`PERSISTENCE_MODULE=sqlite`).
    #[cfg(feature = "sqlite")]
    Sqlite {
        /// The database file (`SQLITE_DBNAME`).
        path: PathBuf,
    },
    /// A PostgreSQL database (`PERSISTENCE_MODULE=postgres`, with the
    /// `postgres` feature); `Display` and `Debug` never show the password.
    ///
    /// ```
    /// use es_core::{Persistence, persistence::PostgresConfig};
    /// let config = PostgresConfig::new("127.0.0.1", "test", "postgres").with_password("pw");
    /// let persistence = Persistence::Postgres(config);
    /// assert_eq!(persistence.to_string(), "postgres://postgres@127.0.0.1:5432/test");
    /// assert!(!format!("{persistence:?}").contains("pw\""));
    /// ```
    #[cfg(feature = "postgres")]
    Postgres(crate::persistence::PostgresConfig),
}

impl std::fmt::Display for Persistence {
    /// As an operator would configure it: `memory`, or `sqlite:<path>`.
    ///
    /// ```
    /// assert_eq!(es_core::Persistence::Memory.to_string(), "memory");
    /// ```
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Persistence::Memory => f.write_str("memory"),
            #[cfg(feature = "sqlite")]
            Persistence::Sqlite { path } => write!(f, "sqlite:{}", path.display()),
            #[cfg(feature = "postgres")]
            Persistence::Postgres(config) => config.fmt(f),
        }
    }
}

/// The SQLite file used when neither code nor `SQLITE_DBNAME` names one.
pub const DEFAULT_SQLITE_DBNAME: &str = "events.sqlite3";

/// The lock timeout used when neither code nor `SQLITE_LOCK_TIMEOUT` sets one.
pub const DEFAULT_SQLITE_LOCK_TIMEOUT: Duration = Duration::from_secs(5);

/// Configures an [`Application`]. What is set here wins over the environment,
/// which wins over the defaults.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::{Environment, Persistence};
/// # #[aggregate] pub struct Bin { items: u32 }
/// # #[aggregate] impl Bin { #[event("Placed")] pub fn place() -> Self { Bin { items: 0 } } }
///
/// let env = Environment::from_vars([("PERSISTENCE_MODULE", "sqlite"), ("SQLITE_DBNAME", ":memory:")]);
/// let app = Application::builder()
///     .name("recycling")
///     .environment(env)
///     .snapshotting_interval::<Bin>(100)
///     .build()?;
/// assert_eq!(app.persistence(), &Persistence::Sqlite { path: ":memory:".into() });
/// assert!(app.is_snapshotting_enabled());
/// # Ok::<(), es_core::Error>(())
/// ```
#[must_use]
pub struct ApplicationBuilder {
    name: Option<String>,
    environment: Option<Environment>,
    persistence: Option<Persistence>,
    sqlite_lock_timeout: Option<Duration>,
    #[cfg(feature = "sqlite")]
    sqlite_synchronous: Option<crate::persistence::Synchronous>,
    snapshotting: Option<bool>,
    create_table: Option<bool>,
    mapper: MapperSettings,
    intervals: HashMap<&'static str, u64>,
    section_size: usize,
    subscribers: Vec<Subscriber>,
}

impl Default for ApplicationBuilder {
    fn default() -> Self {
        ApplicationBuilder {
            name: None,
            environment: None,
            persistence: None,
            sqlite_lock_timeout: None,
            #[cfg(feature = "sqlite")]
            sqlite_synchronous: None,
            snapshotting: None,
            create_table: None,
            mapper: MapperSettings::default(),
            intervals: HashMap::new(),
            section_size: DEFAULT_SECTION_SIZE,
            subscribers: Vec::new(),
        }
    }
}

impl ApplicationBuilder {
    /// Names the application. Its environment variables are then looked up as
    /// `<NAME>_<KEY>` before `<KEY>`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Reads configuration from `environment` instead of the process's.
    pub fn environment(mut self, environment: Environment) -> Self {
        self.environment = Some(environment);
        self
    }

    /// Chooses where events are kept.
    pub fn persistence(mut self, persistence: Persistence) -> Self {
        self.persistence = Some(persistence);
        self
    }

    /// Keeps events in memory.
    pub fn in_memory(self) -> Self {
        self.persistence(Persistence::Memory)
    }

    /// Keeps events in the SQLite database file at `path` (or `":memory:"`).
    #[cfg(feature = "sqlite")]
    pub fn sqlite(self, path: impl Into<PathBuf>) -> Self {
        self.persistence(Persistence::Sqlite { path: path.into() })
    }

    /// Keeps events in the PostgreSQL database `config` names. Unless
    /// `config.table_prefix` is set, the tables are named after the
    /// application (`<name>_events`), or `stored_events` without a name.
    ///
    /// ```
    /// use es_core::{Application, persistence::PostgresConfig};
    /// let mut config = PostgresConfig::from_url("postgres://postgres@127.0.0.1:5432/test")?;
    /// config.table_prefix = Some("9lives".into()); // not a plain name
    /// let error = Application::builder().postgres(config).build().unwrap_err();
    /// assert!(error.to_string().contains("table prefix"));
    /// # Ok::<(), es_core::Error>(())
    /// ```
    #[cfg(feature = "postgres")]
    pub fn postgres(self, config: crate::persistence::PostgresConfig) -> Self {
        self.persistence(Persistence::Postgres(config))
    }

    /// How long a SQLite write waits for another process's lock.
    pub fn sqlite_lock_timeout(mut self, timeout: Duration) -> Self {
        self.sqlite_lock_timeout = Some(timeout);
        self
    }

    /// How SQLite commits reach the disk; `FULL` (every acknowledged save survives
    /// a power loss) unless this or `SQLITE_SYNCHRONOUS` says `NORMAL`.
    ///
    /// ```
    /// use es_core::{Application, persistence::Synchronous};
    /// let dir = tempfile::tempdir().unwrap();
    /// let app = Application::builder()
    ///     .sqlite(dir.path().join("events.sqlite3"))
    ///     .sqlite_synchronous(Synchronous::Normal)
    ///     .build()?;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    #[cfg(feature = "sqlite")]
    pub fn sqlite_synchronous(mut self, synchronous: crate::persistence::Synchronous) -> Self {
        self.sqlite_synchronous = Some(synchronous);
        self
    }

    /// Keeps a snapshot store: snapshots can be taken, and `get` starts from them.
    pub fn snapshotting(mut self, enabled: bool) -> Self {
        self.snapshotting = Some(enabled);
        self
    }

    /// Takes a snapshot of each `A` whenever a save brings it to a multiple of
    /// `every` events. Turns snapshotting on.
    pub fn snapshotting_interval<A: Aggregate>(mut self, every: u64) -> Self {
        self.intervals.insert(A::NAME, every.max(1));
        self
    }

    /// Whether tables are created on first use (default yes).
    pub fn create_table(mut self, create: bool) -> Self {
        self.create_table = Some(create);
        self
    }

    /// Encodes events and snapshots with `transcoder` (`TRANSCODER`, default JSON).
    ///
    /// ```
    /// use es_core::{Application, persistence::Transcoder};
    /// let app = Application::builder().in_memory().transcoder(Transcoder::MessagePack).build()?;
    /// assert_eq!(app.mapper().transcoder(), Transcoder::MessagePack);
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn transcoder(mut self, transcoder: Transcoder) -> Self {
        self.mapper.transcoder = Some(transcoder);
        self
    }

    /// Compresses encoded state with `compressor`, or not at all with `None`,
    /// whatever `COMPRESSOR_TOPIC` says (default: not at all).
    ///
    /// ```
    /// use es_core::{Application, Environment, persistence::Compressor};
    /// let app = Application::builder().in_memory().compressor(Compressor::Zstd).build()?;
    /// assert_eq!(app.mapper().compressor(), Some(Compressor::Zstd));
    /// let env = Environment::from_vars([("COMPRESSOR_TOPIC", "zlib")]);
    /// let app = Application::builder().in_memory().environment(env).compressor(None).build()?;
    /// assert_eq!(app.mapper().compressor(), None);
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn compressor(mut self, compressor: impl Into<Option<Compressor>>) -> Self {
        self.mapper.compressor = Some(compressor.into());
        self
    }

    /// Encrypts stored state with `cipher`, or not at all with `None`,
    /// whatever `CIPHER_KEY` says (default: not at all).
    ///
    /// ```
    /// use es_core::{Application, persistence::Cipher};
    /// let key = Cipher::create_key()?; // from a secret store, in practice
    /// let app = Application::builder().in_memory().cipher(Cipher::from_base64(&key)?).build()?;
    /// assert_eq!(app.mapper().cipher().map(Cipher::algorithm), Some("AES-256-GCM"));
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn cipher(mut self, cipher: impl Into<Option<Cipher>>) -> Self {
        self.mapper.cipher = Some(cipher.into());
        self
    }

    /// Refuses to save an event or snapshot whose encoding is longer than
    /// `bytes` (`MAX_EVENT_SIZE`, default 16 MiB): the save fails with
    /// [`Error::Encode`](crate::Error::Encode) naming the event, before anything
    /// is written. Reading refuses state that decompresses to more.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// # #[aggregate] pub struct Note { text: String }
    /// # #[aggregate] impl Note { #[event("Written")] pub fn write(text: String) -> Self { Note { text } } }
    /// let app = Application::builder().in_memory().max_event_size(1024).build()?;
    /// let error = app.save(&mut Note::write("x".repeat(2000))).unwrap_err();
    /// assert!(error.to_string().contains("more than the limit of 1024"), "{error}");
    /// assert_eq!(app.notification_log().max_id()?, None);
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn max_event_size(mut self, bytes: usize) -> Self {
        self.mapper.max_event_size = Some(bytes);
        self
    }

    /// How many notifications a section of the notification log holds (default 10).
    pub fn section_size(mut self, size: usize) -> Self {
        self.section_size = size.max(1);
        self
    }

    /// Calls `subscriber` after each successful save; see [`Application::subscribe`].
    pub fn subscribe<F>(mut self, subscriber: F) -> Self
    where
        F: Fn(&[super::Recording]) -> Result<(), BoxError> + Send + Sync + 'static,
    {
        self.subscribers.push(Box::new(subscriber));
        self
    }

    /// Builds the application, opening (and if need be creating) its store.
    pub fn build(self) -> Result<Application> {
        let process;
        let base = match &self.environment {
            Some(environment) => environment,
            None => {
                process = Environment::from_process();
                &process
            }
        };
        let env = match &self.name {
            Some(name) => base.with_name(name),
            None => base.clone(),
        };
        let persistence = match self.persistence {
            Some(persistence) => persistence,
            None => persistence_from(&env)?,
        };
        #[cfg(feature = "postgres")]
        let persistence = match persistence {
            Persistence::Postgres(config) => Persistence::Postgres(
                super::postgres::with_table_prefix(config, self.name.as_deref()),
            ),
            other => other,
        };
        let snapshotting = match self.snapshotting {
            Some(enabled) => enabled,
            None => env.get_bool("IS_SNAPSHOTTING_ENABLED")?.unwrap_or(false),
        } || !self.intervals.is_empty();
        let create_table = match self.create_table {
            Some(create) => create,
            None => env.get_bool("CREATE_TABLE")?.unwrap_or(true),
        };
        let sqlite = SqliteOptions {
            lock_timeout: match self.sqlite_lock_timeout {
                Some(timeout) => timeout,
                None => env
                    .get_seconds("SQLITE_LOCK_TIMEOUT")?
                    .unwrap_or(DEFAULT_SQLITE_LOCK_TIMEOUT),
            },
            #[cfg(feature = "sqlite")]
            synchronous: match self.sqlite_synchronous {
                Some(synchronous) => synchronous,
                None => sqlite_synchronous_from(&env)?,
            },
        };
        let mapper = self.mapper.build(&env)?;
        let (events, snapshots) =
            open_recorders(&persistence, snapshotting, create_table, &sqlite)?;
        Ok(Application {
            name: self.name,
            persistence,
            mapper,
            events,
            snapshots,
            intervals: self.intervals,
            section_size: self.section_size,
            subscribers: self.subscribers,
        })
    }
}

fn persistence_from(env: &Environment) -> Result<Persistence> {
    let module = env.get_choice(
        "PERSISTENCE_MODULE",
        &[
            "sqlite",
            "memory",
            "popo",
            "eventsourcing.sqlite",
            "eventsourcing.popo",
            "postgres",
            "eventsourcing.postgres",
        ],
    )?;
    match module {
        Some("memory" | "popo" | "eventsourcing.popo") => Ok(Persistence::Memory),
        #[cfg(feature = "postgres")]
        Some("postgres" | "eventsourcing.postgres") => Ok(Persistence::Postgres(
            super::postgres::config_from_env(env)?,
        )),
        #[cfg(not(feature = "postgres"))]
        Some(module @ ("postgres" | "eventsourcing.postgres")) => Err(crate::Error::Config {
            variable: env
                .get("PERSISTENCE_MODULE")
                .map_or_else(|| "PERSISTENCE_MODULE".to_owned(), |(variable, _)| variable),
            value: module.into(),
            expected: "sqlite or memory (this build of es-core has no `postgres` feature)".into(),
        }),
        #[cfg(feature = "sqlite")]
        _ => Ok(Persistence::Sqlite {
            path: env.get("SQLITE_DBNAME").map_or_else(
                || PathBuf::from(DEFAULT_SQLITE_DBNAME),
                |(_, path)| PathBuf::from(path),
            ),
        }),
        #[cfg(not(feature = "sqlite"))]
        _ => Err(crate::Error::Config {
            variable: "PERSISTENCE_MODULE".into(),
            value: module.unwrap_or("").into(),
            expected: "memory (this build of es-core has no `sqlite` feature)".into(),
        }),
    }
}

type Recorders = (
    Arc<dyn ApplicationRecorder>,
    Option<Arc<dyn AggregateRecorder>>,
);

/// How the SQLite store is opened, when it is the one configured.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
struct SqliteOptions {
    lock_timeout: Duration,
    #[cfg(feature = "sqlite")]
    synchronous: crate::persistence::Synchronous,
}

#[cfg(feature = "sqlite")]
fn sqlite_synchronous_from(env: &Environment) -> Result<crate::persistence::Synchronous> {
    use crate::persistence::Synchronous;
    let Some((variable, value)) = env.get("SQLITE_SYNCHRONOUS") else {
        return Ok(Synchronous::Full);
    };
    Synchronous::parse(value).ok_or_else(|| crate::Error::Config {
        variable,
        value: value.to_owned(),
        expected: "FULL or NORMAL".into(),
    })
}

#[cfg_attr(not(feature = "sqlite"), allow(unused_variables))]
fn open_recorders(
    persistence: &Persistence,
    snapshotting: bool,
    create_table: bool,
    sqlite: &SqliteOptions,
) -> Result<Recorders> {
    match persistence {
        Persistence::Memory => Ok((
            Arc::new(MemoryRecorder::new()),
            snapshotting.then(|| Arc::new(MemoryRecorder::new()) as Arc<dyn AggregateRecorder>),
        )),
        #[cfg(feature = "sqlite")]
        Persistence::Sqlite { path } => {
            use crate::persistence::{SqliteDatabase, SqliteRecorder};
            let db = SqliteDatabase::open_with(path, sqlite.lock_timeout, sqlite.synchronous)?;
            let snapshots = if snapshotting {
                Some(
                    Arc::new(SqliteRecorder::snapshots(db.clone(), create_table)?)
                        as Arc<dyn AggregateRecorder>,
                )
            } else {
                None
            };
            Ok((
                Arc::new(SqliteRecorder::events(db, create_table)?),
                snapshots,
            ))
        }
        #[cfg(feature = "postgres")]
        Persistence::Postgres(config) => {
            super::postgres::open_recorders(config, snapshotting, create_table)
        }
    }
}
