//! The persistence layer: stored events, the mapper, and the recorders that keep
//! stored events in a backend. Nothing here knows about applications.

mod cipher;
mod compressor;
#[cfg(feature = "conformance")]
pub mod conformance;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod group_commit;
mod listen;
mod mapper;
mod memory;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "postgres")]
mod postgres;
mod recorder;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod stored_event;
mod transcoder;
mod view;

#[cfg(all(feature = "postgres", feature = "replication"))]
pub(crate) use self::postgres::pg_error;
#[cfg(feature = "postgres")]
pub use self::postgres::{
    OriginatorIdType, PostgresConfig, PostgresDatabase, PostgresRecorder, PostgresView, SslMode,
};
#[cfg(feature = "postgres")]
pub(crate) use self::postgres::{checked_schema, table_prefix_from_name};
pub use cipher::{Cipher, CipherError};
pub use compressor::{Compressor, CompressorError};
pub(crate) use listen::Signal;
#[cfg(feature = "http-client")]
pub(crate) use listen::SignalListener;
#[cfg(any(feature = "async", feature = "http-server"))]
pub(crate) use listen::select_notifications_waiting;
pub use listen::{DEFAULT_LISTEN_POLL_INTERVAL, Listener, PollingListener, Subscription};
pub use mapper::{DEFAULT_MAX_EVENT_SIZE, Mapper, TooLarge};
pub use memory::MemoryRecorder;
#[cfg(feature = "nats")]
pub use nats::{NatsConfig, NatsConnection, NatsRecorder};
#[cfg(feature = "nats")]
pub(crate) use nats::{check_stream_name as check_nats_stream_name, stream_for_application};
pub use recorder::{
    AggregateRecorder, ApplicationRecorder, EventQuery, ProcessRecorder, SnapshotOrEvent, Tracking,
    TrackingRecorder,
};
#[cfg(feature = "sqlite")]
pub(crate) use sqlite::empty_path as empty_sqlite_path;
#[cfg(feature = "sqlite")]
pub use sqlite::{
    SQLITE_LISTEN_POLL_INTERVAL, SqliteDatabase, SqliteOpenError, SqliteRecorder, SqliteView,
    Synchronous,
};
pub use stored_event::{Notification, StoredEvent};
pub use transcoder::{Transcoder, TranscoderError};
pub use view::{View, ViewError};
