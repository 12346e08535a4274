//! The NATS JetStream store's factory: `PERSISTENCE_MODULE=nats`, with
//! `NATS_URL`, `NATS_STREAM`, `NATS_REPLICAS` and `NATS_TIMEOUT`.

use std::sync::Arc;

use super::{FactorySettings, OpenedPersistence, Persistence, PersistenceFactory};
use crate::error::{Error, Result};
use crate::persistence::{
    AggregateRecorder, NatsConfig, NatsConnection, NatsRecorder, check_nats_stream_name,
    stream_for_application,
};

/// The most copies a stream may ask for: NATS's own limit.
const MAX_REPLICAS: u32 = 5;

/// Opens an application's streams on the servers `NATS_URL` lists.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NatsFactory;

impl PersistenceFactory for NatsFactory {
    fn open(&self, settings: &FactorySettings<'_>) -> Result<OpenedPersistence> {
        let env = settings.environment;
        let servers = match env.get("NATS_URL") {
            Some((variable, url)) if url.trim().is_empty() => {
                return Err(Error::Config {
                    variable,
                    value: url.to_owned(),
                    expected: "comma-separated NATS server URLs, such as nats://127.0.0.1:4222"
                        .into(),
                });
            }
            Some((_, url)) => url.trim().to_owned(),
            None => NatsConfig::DEFAULT_URL.to_owned(),
        };
        let stream = match env.get("NATS_STREAM") {
            Some((variable, stream)) => {
                let stream = stream.trim();
                check_nats_stream_name(&variable, stream)?;
                stream.to_owned()
            }
            None => stream_for_application(settings.application_name),
        };
        let mut config = NatsConfig::new(servers, stream)?;
        if let Some(replicas) = env.get_u32("NATS_REPLICAS", 1..=MAX_REPLICAS)? {
            config.num_replicas = replicas as usize;
        }
        if let Some(timeout) = env.get_positive_seconds("NATS_TIMEOUT")? {
            config.request_timeout = timeout;
        }
        let connection = NatsConnection::connect(&config)?;
        let events = NatsRecorder::events(&connection, settings.create_table)?;
        let snapshots = if settings.snapshotting {
            let snapshots = NatsRecorder::snapshots(&connection, settings.create_table)?;
            Some(Arc::new(snapshots) as Arc<dyn AggregateRecorder>)
        } else {
            None
        };
        Ok(OpenedPersistence {
            persistence: Persistence::Other {
                module: "nats".into(),
                location: config.to_string(),
            },
            events: Arc::new(events),
            snapshots,
        })
    }
}

crate::persistence_module!(["nats"], || Box::new(NatsFactory));

#[cfg(test)]
mod tests {
    use super::*;
    use crate::application::environment::Environment;

    fn open(vars: &[(&str, &str)]) -> Error {
        let environment = Environment::from_vars(vars.iter().copied()).with_name("Orders");
        let settings = FactorySettings {
            environment: &environment,
            application_name: Some("Orders"),
            snapshotting: false,
            create_table: true,
        };
        NatsFactory.open(&settings).expect_err("a bad setting")
    }

    #[test]
    fn bad_settings_are_refused_naming_their_variable() {
        for (vars, variable) in [
            (&[("NATS_URL", " ")][..], "NATS_URL"),
            (&[("NATS_STREAM", "a.b")][..], "NATS_STREAM"),
            (&[("ORDERS_NATS_STREAM", "a b")][..], "ORDERS_NATS_STREAM"),
            (&[("NATS_REPLICAS", "7")][..], "NATS_REPLICAS"),
            (&[("NATS_TIMEOUT", "0")][..], "NATS_TIMEOUT"),
            (&[("ORDERS_NATS_TIMEOUT", "0")][..], "ORDERS_NATS_TIMEOUT"),
            (&[("NATS_URL", "not a url at all ::")][..], "NATS_URL"),
        ] {
            match open(vars) {
                Error::Config {
                    variable: named, ..
                } => assert_eq!(named, variable, "{vars:?}"),
                other => panic!("{vars:?}: {other}"),
            }
        }
    }
}
