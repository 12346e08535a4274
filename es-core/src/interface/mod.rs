//! Interfaces to the outside: the operator commands (feature `commands`).
//! Each interface is behind a cargo feature, so that a program that needs
//! none of them compiles none of their dependencies.

#[cfg(feature = "commands")]
pub mod commands;
