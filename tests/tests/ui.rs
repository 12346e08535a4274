//! The compiler errors users see when they misuse `#[aggregate]`, `#[event]`,
//! `#[replicating]` and `#[replicated]`: one `tests/ui/<mistake>.rs` per
//! mistake, its expected output beside it in `<mistake>.stderr`, and
//! `tests/ui/pass_*.rs` that must compile and run.
//!
//! Regenerate with `TRYBUILD=overwrite cargo test -p tests --test ui`, then read
//! every changed `.stderr`: each should show one clear error on the user's own code.

use std::path::PathBuf;

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    // Listed by hand rather than by glob so that a new case is picked up by its
    // name alone, without a `_fail` suffix on every mistake.
    for case in cases() {
        let is_pass = case
            .file_name()
            .and_then(|name| name.to_str())
            .is_some_and(|name| name.starts_with("pass_"));
        if is_pass {
            t.pass(case);
        } else {
            t.compile_fail(case);
        }
    }
}

/// Every `.rs` under `tests/ui`, sorted so the report reads in a stable order.
fn cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir("tests/ui")
        .expect("tests/ui is read from the `tests` package directory")
        .map(|entry| entry.expect("tests/ui entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    cases.sort();
    cases
}
