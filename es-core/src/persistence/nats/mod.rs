//! The NATS JetStream store (the `nats` feature): an application's events
//! on a stream that a cluster of servers replicates, for applications that
//! must survive the loss of a server.
//!
//! A stream per application, a subject per aggregate. The server itself
//! refuses a save whose aggregate moved since it was read (the expected
//! last subject sequence), keeps a save of several messages all or nothing
//! (atomic batch publish, server 2.12 or later), and numbers the events in
//! commit order (the stream's sequence, which is the notification id).
//! Snapshots are kept in a second stream; a follower's tracking records in
//! its own stream, in the same batch as the events it derived.

mod config;
mod connection;
mod listen;
mod recorder;
mod requests;
mod subject;

pub use config::NatsConfig;
pub(crate) use config::{check_stream_name, stream_for_application};
pub use connection::NatsConnection;
pub use recorder::NatsRecorder;
