//! An application's notification log over HTTP, as JSON in the Python
//! library's format ([`format`](mod@format)): served by [`log_router`] (feature
//! `http-server`, axum) and read by [`RemoteLog`] (feature `http-client`,
//! ureq), which [`RemoteLeader`] makes a [`Leader`](crate::system::Leader),
//! so that a follower in another process or on another machine tracks its
//! position in the log exactly as it would in a local one.

#[cfg(feature = "http-client")]
mod client;
pub mod format;
#[cfg(feature = "http-server")]
mod server;

#[cfg(feature = "http-client")]
pub use client::{RemoteLeader, RemoteLog};
pub use format::{NotificationJson, SectionJson};
#[cfg(feature = "http-server")]
pub use server::{MAX_LIMIT, log_router, log_router_for_readers};

/// The longest a request for new notifications waits for the log to grow:
/// the server's bound on `wait_ms`, and what the reader allows for beyond
/// its own timeout.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
