//! What the fault tests tried, for RELIABILITY.md: when `ES_RELIABILITY_LOG`
//! names a file, each fault test appends one JSON line to it saying what it did
//! and what it found. `bash tests/reliability` runs them and writes the file.

#![allow(dead_code)] // Each test target uses its own part of this module.

use std::io::Write as _;

/// How much bigger than the CI size to run: `ES_FAULT_SCALE`, default 1.
pub fn scale() -> usize {
    std::env::var("ES_FAULT_SCALE")
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|&scale| scale >= 1)
        .unwrap_or(1)
}

/// One fault or bad input tried: where, how many times, what was checked, and
/// the outcome (the test fails before recording if the outcome was bad, so a
/// recorded line always says "passed").
pub struct Trial<'a> {
    /// What was done to the store, e.g. "SIGKILL of a writing process".
    pub fault: &'a str,
    /// `memory`, `sqlite`, `postgres`, or `any` for checks below the stores.
    pub backend: &'a str,
    /// How many times it was done.
    pub trials: usize,
    /// What was checked each time, and totals, e.g. "12,400 acknowledged events present".
    pub checked: String,
}

pub fn record(trial: Trial<'_>) {
    let Ok(path) = std::env::var("ES_RELIABILITY_LOG") else {
        return;
    };
    let line = serde_json::json!({
        "fault": trial.fault,
        "backend": trial.backend,
        "trials": trial.trials,
        "checked": trial.checked,
        "result": "passed",
    });
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("the reliability log can be opened");
    writeln!(file, "{line}").expect("the reliability log can be written");
}
