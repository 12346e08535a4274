//! Example applications: run them with `cargo run -p examples --example <name>`.
