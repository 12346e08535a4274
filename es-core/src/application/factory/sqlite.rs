//! The SQLite store's factory: `PERSISTENCE_MODULE=sqlite`, with
//! `SQLITE_DBNAME`, `SQLITE_LOCK_TIMEOUT` and `SQLITE_SYNCHRONOUS`.

use std::path::PathBuf;
use std::sync::Arc;

use super::{
    DEFAULT_SQLITE_DBNAME, DEFAULT_SQLITE_LOCK_TIMEOUT, FactorySettings, OpenedPersistence,
    Persistence, PersistenceFactory,
};
use crate::application::environment::Environment;
use crate::error::{Error, Result};
use crate::persistence::{
    AggregateRecorder, SqliteDatabase, SqliteRecorder, Synchronous, empty_sqlite_path,
};

/// Opens a SQLite database: the file given in code, or `SQLITE_DBNAME`.
#[derive(Debug, Clone, Default)]
pub(crate) struct SqliteFactory {
    path: Option<PathBuf>,
}

impl SqliteFactory {
    /// The database at `path`, whatever `SQLITE_DBNAME` says.
    pub(crate) fn at(path: PathBuf) -> Self {
        SqliteFactory { path: Some(path) }
    }
}

impl PersistenceFactory for SqliteFactory {
    fn open(&self, settings: &FactorySettings<'_>) -> Result<OpenedPersistence> {
        let env = settings.environment;
        let path = match &self.path {
            Some(path) => path.clone(),
            None => match env.get("SQLITE_DBNAME") {
                // Refused here rather than by the store, so the error names the
                // variable as the user set it (with the application's prefix).
                Some((variable, path)) if path.trim().is_empty() => {
                    return Err(empty_sqlite_path(variable, path.to_owned()));
                }
                Some((_, path)) => path.into(),
                None => PathBuf::from(DEFAULT_SQLITE_DBNAME),
            },
        };
        let lock_timeout = env
            .get_seconds("SQLITE_LOCK_TIMEOUT")?
            .unwrap_or(DEFAULT_SQLITE_LOCK_TIMEOUT);
        let synchronous = synchronous_from(env)?;
        let db = SqliteDatabase::open_with(&path, lock_timeout, synchronous)?;
        let snapshots = if settings.snapshotting {
            Some(Arc::new(SqliteRecorder::snapshots(
                db.clone(),
                settings.create_table,
            )?) as Arc<dyn AggregateRecorder>)
        } else {
            None
        };
        Ok(OpenedPersistence {
            persistence: Persistence::Sqlite { path },
            events: Arc::new(SqliteRecorder::events(db, settings.create_table)?),
            snapshots,
        })
    }
}

crate::persistence_module!(["sqlite", "eventsourcing.sqlite"], || Box::new(
    SqliteFactory::default()
));

fn synchronous_from(env: &Environment) -> Result<Synchronous> {
    let Some((variable, value)) = env.get("SQLITE_SYNCHRONOUS") else {
        return Ok(Synchronous::Full);
    };
    Synchronous::parse(value).ok_or_else(|| Error::Config {
        variable,
        value: value.to_owned(),
        expected: "FULL or NORMAL".into(),
    })
}

/// How `SQLITE_SYNCHRONOUS` spells `synchronous`, for a setting made in code.
pub(crate) fn synchronous_name(synchronous: Synchronous) -> &'static str {
    match synchronous {
        Synchronous::Normal => "NORMAL",
        _ => "FULL",
    }
}
