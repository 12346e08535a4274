//! Interfaces to the outside: the operator commands (feature `commands`),
//! the notification log over HTTP (features `http-server`, `http-client`),
//! the web console (feature `console`), replication between services
//! (feature `replication`).
//! Each interface is behind a cargo feature, so that a program that needs
//! none of them compiles none of their dependencies.

#[cfg(feature = "commands")]
pub mod commands;

#[cfg(feature = "console")]
pub mod console;

#[cfg(any(feature = "http-server", feature = "http-client"))]
pub mod http;

#[cfg(feature = "replication")]
pub mod replication;
