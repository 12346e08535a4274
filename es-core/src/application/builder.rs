//! Building an application: settings in code, then the environment, then defaults.

use std::collections::HashMap;
#[cfg(feature = "sqlite")]
use std::path::PathBuf;
use std::time::Duration;

use super::cache::{AggregateCache, CacheSettings};
use super::environment::Environment;
use super::factory::{FactorySettings, Persistence, PersistenceFactory, factory_from_env};
use super::mapper_config::MapperSettings;
use super::notification_log::DEFAULT_SECTION_SIZE;
use super::{Application, Subscriber};
use crate::domain::aggregate::Aggregate;
use crate::error::{BoxError, Result};
use crate::persistence::{Cipher, Compressor, Transcoder};

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
    factory: Option<Result<Box<dyn PersistenceFactory>>>,
    /// Settings made in code that a factory reads as variables.
    overrides: Vec<(&'static str, String)>,
    snapshotting: Option<bool>,
    create_table: Option<bool>,
    mapper: MapperSettings,
    intervals: HashMap<String, u64>,
    section_size: usize,
    subscribers: Vec<Subscriber>,
    cache_maxsize: Option<Option<usize>>,
    cache_fastforward: Option<bool>,
}

impl Default for ApplicationBuilder {
    fn default() -> Self {
        ApplicationBuilder {
            name: None,
            environment: None,
            factory: None,
            overrides: Vec::new(),
            snapshotting: None,
            create_table: None,
            mapper: MapperSettings::default(),
            intervals: HashMap::new(),
            section_size: DEFAULT_SECTION_SIZE,
            subscribers: Vec::new(),
            cache_maxsize: None,
            cache_fastforward: None,
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

    /// Chooses where events are kept, whatever `PERSISTENCE_MODULE` says.
    pub fn persistence(mut self, persistence: Persistence) -> Self {
        self.factory = Some(persistence.into_factory());
        self
    }

    /// Keeps events where `factory` says, whatever `PERSISTENCE_MODULE` says:
    /// for a backend es-core does not know; see [`PersistenceFactory`].
    pub fn persistence_factory(mut self, factory: impl PersistenceFactory + 'static) -> Self {
        self.factory = Some(Ok(Box::new(factory)));
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
        let seconds = timeout.as_secs_f64().to_string();
        self.overrides.push(("SQLITE_LOCK_TIMEOUT", seconds));
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
        let name = super::factory::synchronous_name(synchronous);
        self.overrides.push(("SQLITE_SYNCHRONOUS", name.to_owned()));
        self
    }

    /// Keeps a snapshot store: snapshots can be taken, and `get` starts from them.
    pub fn snapshotting(mut self, enabled: bool) -> Self {
        self.snapshotting = Some(enabled);
        self
    }

    /// Takes a snapshot of each `A` whenever a save takes it past a multiple
    /// of `every` events (a save of several events that passes 100 takes one
    /// snapshot, at the version it ends on). Turns snapshotting on. Wins over
    /// what `SNAPSHOTTING_INTERVALS` says for `A`.
    pub fn snapshotting_interval<A: Aggregate>(mut self, every: u64) -> Self {
        self.intervals.insert(A::NAME.to_owned(), every.max(1));
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

    /// Keeps the latest copy of up to `maxsize` recently used aggregates
    /// (`Some(0)`: every aggregate used), so that `get` reads only the events
    /// recorded since, or nothing at all without fast-forward; `None` keeps
    /// none, whatever `AGGREGATE_CACHE_MAXSIZE` says. Off unless this or
    /// `AGGREGATE_CACHE_MAXSIZE` turns it on, as in the Python library.
    ///
    /// A save puts what it saved in the cache; a save that fails (a conflict,
    /// say) removes the aggregates it held, so the next `get` reads the store.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// # #[aggregate] pub struct Till { cash: u64 }
    /// # #[aggregate] impl Till {
    /// #     #[event("Opened")] pub fn open() -> Self { Till { cash: 0 } }
    /// #     #[event("Rang")] pub fn ring(&mut self, amount: u64) { self.cash += amount; }
    /// # }
    /// let app = Application::builder().in_memory().aggregate_cache(1000).build()?;
    /// let mut till = Till::open();
    /// app.save(&mut till)?;
    /// for _ in 0..3 {
    ///     let mut till: Till = app.repository().get(till.id())?; // from the cache
    ///     till.ring(5);
    ///     app.save(&mut till)?;
    /// }
    /// assert_eq!(app.repository().get::<Till>(till.id())?.cash, 15);
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn aggregate_cache(mut self, maxsize: impl Into<Option<usize>>) -> Self {
        self.cache_maxsize = Some(maxsize.into());
        self
    }

    /// Whether a cached aggregate is brought up to date with the events
    /// recorded since it was cached (`AGGREGATE_CACHE_FASTFORWARD`, default
    /// yes). Turn it off only when this application is the one writer of its
    /// aggregates: `get` then reads nothing from the store for a cached
    /// aggregate, and a copy made stale by another writer is only noticed
    /// when saving it conflicts (which removes it from the cache).
    pub fn aggregate_cache_fastforward(mut self, fastforward: bool) -> Self {
        self.cache_fastforward = Some(fastforward);
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
        let mut env = match &self.name {
            Some(name) => base.with_name(name),
            None => base.clone(),
        };
        for (key, value) in self.overrides {
            env.set_override(key, value);
        }
        let factory = match self.factory {
            Some(factory) => factory?,
            None => factory_from_env(&env)?,
        };
        let mut intervals = snapshotting_intervals_from(&env)?;
        intervals.extend(self.intervals);
        let snapshotting = match self.snapshotting {
            Some(enabled) => enabled,
            None => env.get_bool("IS_SNAPSHOTTING_ENABLED")?.unwrap_or(false),
        } || !intervals.is_empty();
        let create_table = match self.create_table {
            Some(create) => create,
            None => env.get_bool("CREATE_TABLE")?.unwrap_or(true),
        };
        let mapper = self.mapper.build(&env)?;
        let cache = cache_settings(self.cache_maxsize, self.cache_fastforward, &env)?
            .map(|settings| AggregateCache::new(settings, mapper.transcoder()));
        let opened = factory.open(&FactorySettings {
            environment: &env,
            application_name: self.name.as_deref(),
            snapshotting,
            create_table,
        })?;
        Ok(Application {
            name: self.name,
            persistence: opened.persistence,
            mapper,
            events: opened.events,
            snapshots: opened.snapshots,
            intervals,
            section_size: self.section_size,
            subscribers: self.subscribers,
            cache,
            saves: Default::default(),
        })
    }
}

/// The cache, if code or `AGGREGATE_CACHE_MAXSIZE` asks for one: as in the
/// Python library, unset or empty is no cache, and a size of 0 or less keeps
/// every aggregate.
fn cache_settings(
    maxsize: Option<Option<usize>>,
    fastforward: Option<bool>,
    env: &Environment,
) -> Result<Option<CacheSettings>> {
    let maxsize = match maxsize {
        Some(maxsize) => maxsize,
        None => match env.get("AGGREGATE_CACHE_MAXSIZE") {
            Some((_, value)) if value.trim().is_empty() => None,
            Some((variable, value)) => {
                let size = value
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| crate::Error::Config {
                        variable,
                        value: value.to_owned(),
                        expected: "a whole number: how many aggregates to keep, or 0 for no limit"
                            .into(),
                    })?;
                Some(usize::try_from(size).unwrap_or(0))
            }
            None => None,
        },
    };
    let Some(maxsize) = maxsize else {
        return Ok(None);
    };
    let fastforward = match fastforward {
        Some(fastforward) => fastforward,
        None => env.get_bool("AGGREGATE_CACHE_FASTFORWARD")?.unwrap_or(true),
    };
    Ok(Some(CacheSettings {
        maxsize,
        fastforward,
    }))
}

/// `SNAPSHOTTING_INTERVALS`: `Name:N` pairs separated by commas, such as
/// `Dog:100,Cat:50`, each name that of an aggregate this program defines (as in
/// its topics, `Dog` of `Dog.Registered`).
fn snapshotting_intervals_from(env: &Environment) -> Result<HashMap<String, u64>> {
    let Some((variable, value)) = env.get("SNAPSHOTTING_INTERVALS") else {
        return Ok(HashMap::new());
    };
    let known = aggregate_names();
    let invalid = |expected: String| crate::Error::Config {
        variable: variable.clone(),
        value: value.to_owned(),
        expected,
    };
    let mut intervals = HashMap::new();
    for pair in value
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
    {
        let parsed = pair.split_once(':').and_then(|(name, every)| {
            let every = every.trim().parse::<u64>().ok().filter(|&n| n >= 1)?;
            Some((name.trim(), every))
        });
        let Some((name, every)) = parsed.filter(|(name, _)| !name.is_empty()) else {
            return Err(invalid(format!(
                "aggregate names with a number of events of at least 1, such as Dog:100,Cat:50 \
                 (`{pair}` is not one)"
            )));
        };
        if !known.contains(&name) {
            return Err(invalid(format!(
                "names of aggregates this program defines ({}); `{name}` is not one",
                known.join(", ")
            )));
        }
        intervals.insert(name.to_owned(), every);
    }
    Ok(intervals)
}

/// The names of every aggregate linked into this program, sorted.
fn aggregate_names() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = inventory::iter::<crate::domain::topic::RegisteredTopic>
        .into_iter()
        .map(|topic| topic.aggregate())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}
