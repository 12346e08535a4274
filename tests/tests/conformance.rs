//! Every recorder backend against the one conformance suite.

mod memory {
    use es_core::persistence::MemoryRecorder;
    use es_core::persistence::conformance::Fixture;

    es_core::recorder_conformance_tests!(|| Fixture::new(MemoryRecorder::new()));
}

mod sqlite_in_memory {
    use es_core::persistence::conformance::Fixture;
    use es_core::persistence::{SqliteDatabase, SqliteRecorder};

    es_core::recorder_conformance_tests!(|| {
        let db = SqliteDatabase::open_in_memory().expect("open");
        Fixture::new(SqliteRecorder::events(db, true).expect("recorder"))
    });
}

mod sqlite_file {
    use std::time::Duration;

    use es_core::persistence::conformance::Fixture;
    use es_core::persistence::{SqliteDatabase, SqliteRecorder};

    es_core::recorder_conformance_tests!(|| {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = SqliteDatabase::open(dir.path().join("events.sqlite3"), Duration::from_secs(5))
            .expect("open");
        Fixture::new(SqliteRecorder::events(db, true).expect("recorder")).keeping(dir)
    });
}
