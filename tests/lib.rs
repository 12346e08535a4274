//! Workspace integration tests: see the files under `tests/tests/`.
