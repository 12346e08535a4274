//! The PostgreSQL store: the sync `postgres` client, over a pool of its own.
//!
//! Tables are per application (`<prefix>_events`, `<prefix>_snapshots`,
//! `<prefix>_tracking`) in a
//! configurable schema, as in the Python library's PostgreSQL module. Laid out
//! by concern: `config` (what to connect to and how names become tables),
//! `connection_string` (reading a URL without ever repeating a secret),
//! `pool` (connections, statement caching, retries on lost sessions), `schema`
//! (creating and checking tables), `tls` (encryption, and the bound on a
//! reply's wait), `recorder` (the recorder traits), `tracking` (a
//! follower's positions, written with its events) and `listen` (`LISTEN`
//! for the `NOTIFY` each commit of events sends).

mod config;
mod connection_string;
mod listen;
mod pool;
mod recorder;
mod schema;
mod tls;
mod tracking;
mod view;

pub use config::{OriginatorIdType, PostgresConfig, SslMode};
pub(crate) use config::{checked_schema, table_prefix_from_name};
pub use pool::PostgresDatabase;
#[cfg(feature = "replication")]
pub(crate) use pool::pg_error;
pub use recorder::PostgresRecorder;
pub use view::PostgresView;

/// The test server's configuration, or `None` if it cannot be reached and
/// this is not CI (where that fails the test).
#[cfg(test)]
fn test_server() -> Option<PostgresConfig> {
    let url = std::env::var("ES_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut config = PostgresConfig::from_url(&url).expect("ES_TEST_POSTGRES_URL");
    config.connect_timeout = std::time::Duration::from_secs(5);
    let probe = PostgresDatabase::open(&config).expect("pool");
    match probe.connection() {
        Ok(_) => Some(config),
        Err(error) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL at {url} is not reachable and CI=true: {error}")
        }
        Err(error) => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: PostgreSQL at {url} is not reachable ({error})"
            );
            None
        }
    }
}
