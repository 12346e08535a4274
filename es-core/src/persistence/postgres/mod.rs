//! The PostgreSQL store: the sync `postgres` client, over an r2d2 pool.
//!
//! Tables are per application (`<prefix>_events`, `<prefix>_snapshots`) in a
//! configurable schema, as in the Python library's PostgreSQL module. Laid out
//! by concern: `config` (what to connect to and how names become tables),
//! `connection_string` (reading a URL without ever repeating a secret),
//! `pool` (connections, statement caching, retries on lost sessions), `schema`
//! (creating and checking tables) and `recorder` (the recorder traits).

mod config;
mod connection_string;
mod pool;
mod recorder;
mod schema;

pub use config::{OriginatorIdType, PostgresConfig, SslMode};
pub(crate) use config::{checked_schema, table_prefix_from_name};
pub use pool::PostgresDatabase;
pub use recorder::PostgresRecorder;
