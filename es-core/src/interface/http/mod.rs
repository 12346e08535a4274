//! An application's notification log over HTTP, as JSON in the Python
//! library's format ([`format`](mod@format)): served by [`log_router`] (feature
//! `http-server`, axum) and read by [`RemoteLog`] (feature `http-client`,
//! ureq), which [`RemoteLeader`] makes a [`Leader`](crate::system::Leader),
//! so that a follower in another process or on another machine tracks its
//! position in the log exactly as it would in a local one. [`LogServer`]
//! serves it to readers with tokens, at a bounded rate; `serve_tls`
//! (feature `http-tls`) serves it over TLS.
//!
//! ```
//! # #[cfg(all(feature = "http-server", feature = "http-client"))] {
//! use std::sync::Arc;
//! use es_core::interface::http::{RemoteLeader, RemoteLog, log_router};
//! use es_core::persistence::Mapper;
//! use es_core::prelude::*;
//! use es_core::system::{Policies, ProcessApplication};
//! # #[aggregate] pub struct Parcel { lines: u32 }
//! # #[aggregate] impl Parcel { #[event("Sent")] pub fn send(lines: u32) -> Self { Parcel { lines } } }
//! # #[aggregate] pub struct Label { lines: u32 }
//! # #[aggregate] impl Label { #[event("Stuck")] pub fn stick(lines: u32) -> Self { Label { lines } } }
//!
//! // The leader's process serves its log (here on a thread, on a free port).
//! let orders = Arc::new(Application::builder().name("orders").in_memory().build()?);
//! orders.save(&mut Parcel::send(3))?;
//! let router = log_router([Arc::clone(&orders)])?;
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
//! let base = format!("http://{}", listener.local_addr()?);
//! std::thread::spawn(move || runtime.block_on(async { axum::serve(listener, router).await }));
//!
//! // The follower's process reads it, and follows it as a local leader.
//! let log = RemoteLog::new(&base, "orders");
//! assert_eq!(log.select(1, 10)?[0].event.topic, "Parcel.Sent");
//! let printing = Policies::new().on(|event: DomainEvent<ParcelEvent>, context| {
//!     let ParcelEvent::Sent { lines } = event.payload;
//!     context.collect(Label::stick(lines));
//!     Ok(())
//! });
//! let app = Application::builder().name("printing").in_memory().build()?;
//! let printer = ProcessApplication::new(app, printing)?;
//! let orders = RemoteLeader::new(log, Mapper::default());
//! assert_eq!(printer.pull_and_process(&orders, None)?, 1);
//! assert_eq!(printer.position("orders")?, Some(1));
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(all(feature = "http-client", feature = "async"))]
mod async_client;
#[cfg(feature = "http-client")]
mod client;
pub mod format;
#[cfg(feature = "http-server")]
mod guard;
#[cfg(feature = "http-client")]
mod remote_listener;
#[cfg(feature = "http-server")]
mod server;
#[cfg(feature = "http-tls")]
mod tls;

#[cfg(all(feature = "http-client", feature = "async"))]
pub use async_client::AsyncRemoteLog;
#[cfg(feature = "http-client")]
pub use client::{RemoteLeader, RemoteLog};
pub use format::{NotificationJson, SectionJson};
#[cfg(feature = "http-server")]
pub use server::{LogServer, MAX_LIMIT, log_router, log_router_for_readers};
#[cfg(feature = "http-tls")]
pub use tls::{TlsConfig, serve_tls};

/// The longest a request for new notifications waits for the log to grow:
/// the server's bound on `wait_ms`, and what the reader allows for beyond
/// its own timeout.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
