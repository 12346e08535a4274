//! Backends as an open set, as the Python library's `InfrastructureFactory`:
//! a [`PersistenceFactory`] opens one backend's recorders from the
//! environment, and `PERSISTENCE_MODULE` names the factory to use.
//!
//! Where this sits: the persistence layer knows nothing of applications or
//! of environment variables (a recorder is opened with typed settings, such as
//! a path or a `PostgresConfig`), so the factories, which turn the
//! application's [`Environment`] into those settings, belong to the
//! application layer, beside the environment reader. A backend keeps its
//! recorders under `persistence/` (or in a crate of its own) and adds a
//! factory here, in its own file, or in its own crate: implement the trait and
//! register it with [`persistence_module!`](crate::persistence_module). Nothing
//! else, the builder included, has to change.

#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::sync::Arc;

#[cfg(feature = "sqlite")]
use std::path::PathBuf;

use super::environment::Environment;
use crate::error::{Error, Result};
use crate::persistence::{AggregateRecorder, MemoryRecorder, ProcessRecorder};

#[cfg(feature = "sqlite")]
pub(crate) use sqlite::synchronous_name;

/// The SQLite file used when neither code nor `SQLITE_DBNAME` names one.
pub const DEFAULT_SQLITE_DBNAME: &str = "events.sqlite3";

/// The lock timeout used when neither code nor `SQLITE_LOCK_TIMEOUT` sets one.
pub const DEFAULT_SQLITE_LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens one backend's recorders for an application.
///
/// Implement it for a new backend, and register it under the names
/// `PERSISTENCE_MODULE` should accept with
/// [`persistence_module!`](crate::persistence_module), or pass it in code with
/// [`ApplicationBuilder::persistence_factory`](crate::ApplicationBuilder::persistence_factory).
///
/// ```
/// use std::sync::Arc;
/// use es_core::prelude::*;
/// use es_core::{Environment, FactorySettings, OpenedPersistence, Persistence, PersistenceFactory};
/// use es_core::persistence::MemoryRecorder;
///
/// /// A backend of our own: in memory, but say, behind a cluster's client.
/// #[derive(Debug)]
/// struct Cluster;
///
/// impl PersistenceFactory for Cluster {
///     fn open(&self, settings: &FactorySettings<'_>) -> Result<OpenedPersistence, Error> {
///         let nodes = settings.environment.get("CLUSTER_NODES").map_or("localhost".into(), |(_, v)| v.to_owned());
///         Ok(OpenedPersistence {
///             persistence: Persistence::Other { module: "cluster".into(), location: nodes },
///             events: Arc::new(MemoryRecorder::new()),
///             snapshots: settings.snapshotting.then(|| Arc::new(MemoryRecorder::new()) as _),
///         })
///     }
/// }
/// es_core::persistence_module!(["cluster", "example.cluster"], || Box::new(Cluster));
///
/// let env = Environment::from_vars([("PERSISTENCE_MODULE", "cluster"), ("CLUSTER_NODES", "a,b,c")]);
/// let app = Application::builder().environment(env).build()?;
/// assert_eq!(app.persistence().to_string(), "cluster:a,b,c");
/// let app = Application::builder().persistence_factory(Cluster).build()?; // or in code
/// # Ok::<(), es_core::Error>(())
/// ```
pub trait PersistenceFactory: Send + Sync + std::fmt::Debug {
    /// Opens the recorders the application needs: the events recorder, and
    /// a snapshots recorder if `settings.snapshotting`. A setting that is not
    /// valid is an [`Error::Config`] naming its variable.
    fn open(&self, settings: &FactorySettings<'_>) -> Result<OpenedPersistence>;
}

/// What a factory is given to open an application's store.
#[derive(Debug)]
#[non_exhaustive]
pub struct FactorySettings<'a> {
    /// The application's configuration: looked up as `<NAME>_<KEY>` first,
    /// with the settings made in code in front of both.
    pub environment: &'a Environment,
    /// The application's name, if it has one (PostgreSQL names its tables after it).
    pub application_name: Option<&'a str>,
    /// Whether to open a snapshots recorder too.
    pub snapshotting: bool,
    /// Whether to create tables on first use (`CREATE_TABLE`).
    pub create_table: bool,
}

/// What a factory opened.
pub struct OpenedPersistence {
    /// Where the events are kept, as [`Application::persistence`](crate::Application::persistence) shows it.
    pub persistence: Persistence,
    /// The events recorder, with the notification log and the tracking of
    /// the applications it follows.
    pub events: Arc<dyn ProcessRecorder>,
    /// The snapshots recorder, if snapshotting was asked for.
    pub snapshots: Option<Arc<dyn AggregateRecorder>>,
}

impl std::fmt::Debug for OpenedPersistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedPersistence")
            .field("persistence", &self.persistence)
            .field("snapshots", &self.snapshots.is_some())
            .finish_non_exhaustive()
    }
}

/// A factory registered under the names `PERSISTENCE_MODULE` accepts for it;
/// made by [`persistence_module!`](crate::persistence_module).
#[doc(hidden)]
pub struct PersistenceModule {
    names: &'static [&'static str],
    make: fn() -> Box<dyn PersistenceFactory>,
}

impl PersistenceModule {
    /// A module: `names` (the first is the one error messages use) and its factory.
    pub const fn new(
        names: &'static [&'static str],
        make: fn() -> Box<dyn PersistenceFactory>,
    ) -> Self {
        PersistenceModule { names, make }
    }
}

inventory::collect!(PersistenceModule);

/// Registers a [`PersistenceFactory`] under the names `PERSISTENCE_MODULE`
/// accepts for it (matched without regard to case; a legacy topic such as
/// `my.module:Factory` is matched by its module), from any crate linked into
/// the program: `persistence_module!(["name", "other.name"], || Box::new(MyFactory))`.
/// See [`PersistenceFactory`] for an example.
#[macro_export]
macro_rules! persistence_module {
    ([$($name:literal),+ $(,)?], $make:expr) => {
        $crate::__private::inventory::submit! {
            $crate::PersistenceModule::new(&[$($name),+], $make)
        }
    };
}

/// The module used when the environment names none.
const DEFAULT_MODULE: &str = "sqlite";

/// The variables that name the module, in the order the Python library reads
/// them: `PERSISTENCE_MODULE`, then its legacy names.
const MODULE_VARIABLES: [&str; 3] = [
    "PERSISTENCE_MODULE",
    "INFRASTRUCTURE_FACTORY",
    "FACTORY_TOPIC",
];

/// The factory the environment names, or the default one.
pub(super) fn factory_from_env(env: &Environment) -> Result<Box<dyn PersistenceFactory>> {
    // An empty value counts as unset, as Python's `or` treats it.
    let (variable, value) = MODULE_VARIABLES
        .iter()
        .filter_map(|key| env.get(key))
        .find(|(_, value)| !value.trim().is_empty())
        .unwrap_or_else(|| (MODULE_VARIABLES[0].to_owned(), DEFAULT_MODULE));
    // A legacy topic `module:Class` names the factory class of the module.
    let module = value
        .split_once(':')
        .map_or(value, |(module, _)| module)
        .trim();
    inventory::iter::<PersistenceModule>
        .into_iter()
        .find(|registered| {
            registered
                .names
                .iter()
                .any(|name| name.eq_ignore_ascii_case(module))
        })
        .map(|registered| (registered.make)())
        .ok_or_else(|| Error::Config {
            variable,
            value: value.to_owned(),
            expected: format!(
                "a persistence module this program links: {}",
                registered_modules()
            ),
        })
}

/// `memory (also popo, eventsourcing.popo), sqlite (also ..)`, sorted.
fn registered_modules() -> String {
    let mut modules: Vec<String> = inventory::iter::<PersistenceModule>
        .into_iter()
        .map(|registered| match registered.names {
            [name] => (*name).to_owned(),
            [name, others @ ..] => format!("{name} (also {})", others.join(", ")),
            [] => String::new(),
        })
        .filter(|module| !module.is_empty())
        .collect();
    modules.sort();
    let mut listed = modules.join(", ");
    if !modules.iter().any(|module| module.starts_with("postgres")) {
        listed.push_str(" (`postgres` needs es-core's `postgres` feature)");
    }
    listed
}

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
    /// A backend of another [`PersistenceFactory`]: its module's name and
    /// where it keeps the events, as the factory describes it (no secrets).
    Other {
        /// The module's name, such as `cluster`.
        module: String,
        /// Where the events are kept, such as a list of nodes.
        location: String,
    },
}

impl std::fmt::Display for Persistence {
    /// As an operator would configure it: `memory`, `sqlite:<path>`, a
    /// PostgreSQL URL without its password, or `<module>:<location>`.
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
            Persistence::Other { module, location } => write!(f, "{module}:{location}"),
        }
    }
}

impl Persistence {
    /// The factory that opens this store. `Other` names a store only another
    /// factory can open: pass that factory instead.
    pub(super) fn into_factory(self) -> Result<Box<dyn PersistenceFactory>> {
        match self {
            Persistence::Memory => Ok(Box::new(MemoryFactory)),
            #[cfg(feature = "sqlite")]
            Persistence::Sqlite { path } => Ok(Box::new(sqlite::SqliteFactory::at(path))),
            #[cfg(feature = "postgres")]
            Persistence::Postgres(config) => Ok(Box::new(postgres::PostgresFactory::with(config))),
            Persistence::Other { module, location } => Err(Error::Config {
                variable: "persistence".into(),
                value: format!("{module}:{location}"),
                expected: "a store es-core opens itself (memory, sqlite, postgres); for another \
                           backend, pass its factory with ApplicationBuilder::persistence_factory \
                           or name it in PERSISTENCE_MODULE"
                    .into(),
            }),
        }
    }
}

/// The in-memory store (`PERSISTENCE_MODULE=memory`, or the Python library's `popo`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MemoryFactory;

impl PersistenceFactory for MemoryFactory {
    fn open(&self, settings: &FactorySettings<'_>) -> Result<OpenedPersistence> {
        Ok(OpenedPersistence {
            persistence: Persistence::Memory,
            events: Arc::new(MemoryRecorder::new()),
            snapshots: settings
                .snapshotting
                .then(|| Arc::new(MemoryRecorder::new()) as Arc<dyn AggregateRecorder>),
        })
    }
}

crate::persistence_module!(["memory", "popo", "eventsourcing.popo"], || Box::new(
    MemoryFactory
));
