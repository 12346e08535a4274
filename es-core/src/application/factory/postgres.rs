//! The PostgreSQL store's factory: a thin wrapper over `application/postgres.rs`,
//! which reads the `POSTGRES_*` variables and opens the recorders.

use super::{FactorySettings, OpenedPersistence, Persistence, PersistenceFactory};
use crate::application::postgres::{config_from_env, open_recorders, with_table_prefix};
use crate::error::Result;
use crate::persistence::PostgresConfig;

/// Opens a PostgreSQL database: the configuration given in code, or the
/// `POSTGRES_*` variables'.
#[derive(Debug, Clone, Default)]
pub(crate) struct PostgresFactory {
    config: Option<PostgresConfig>,
}

impl PostgresFactory {
    /// The database `config` names, whatever the environment says.
    pub(crate) fn with(config: PostgresConfig) -> Self {
        PostgresFactory {
            config: Some(config),
        }
    }
}

impl PersistenceFactory for PostgresFactory {
    fn open(&self, settings: &FactorySettings<'_>) -> Result<OpenedPersistence> {
        let config = match &self.config {
            Some(config) => config.clone(),
            None => config_from_env(settings.environment)?,
        };
        let config = with_table_prefix(config, settings.application_name);
        let (events, snapshots) =
            open_recorders(&config, settings.snapshotting, settings.create_table)?;
        Ok(OpenedPersistence {
            persistence: Persistence::Postgres(config),
            events,
            snapshots,
        })
    }
}

crate::persistence_module!(["postgres", "eventsourcing.postgres"], || Box::new(
    PostgresFactory::default()
));
