//! Every recorder backend against the one conformance suite.

mod memory {
    use es_core::persistence::MemoryRecorder;
    use es_core::persistence::conformance::Fixture;

    es_core::recorder_conformance_tests!(|| Fixture::process(MemoryRecorder::new()));
    es_core::process_recorder_conformance_tests!(|| Fixture::process(MemoryRecorder::new()));
}

mod sqlite_in_memory {
    use es_core::persistence::conformance::Fixture;
    use es_core::persistence::{SqliteDatabase, SqliteRecorder};

    fn fixture() -> Fixture {
        let db = SqliteDatabase::open_in_memory().expect("open");
        Fixture::process(SqliteRecorder::events(db, true).expect("recorder"))
    }

    es_core::recorder_conformance_tests!(fixture);
    es_core::process_recorder_conformance_tests!(fixture);
}

mod sqlite_file {
    use std::time::Duration;

    use es_core::persistence::conformance::Fixture;
    use es_core::persistence::{SqliteDatabase, SqliteRecorder};

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("temporary directory");
        let db = SqliteDatabase::open(dir.path().join("events.sqlite3"), Duration::from_secs(5))
            .expect("open");
        Fixture::process(SqliteRecorder::events(db, true).expect("recorder")).keeping(dir)
    }

    es_core::recorder_conformance_tests!(fixture);
    es_core::process_recorder_conformance_tests!(fixture);
}

#[path = "pg_support/mod.rs"]
mod pg_support;

/// The PostgreSQL store with its default `uuid` columns: every case, and the
/// text-id cases check that text ids are refused with a clear error.
mod postgres {
    use es_core::persistence::OriginatorIdType;
    use es_core::persistence::conformance::Fixture;

    fn fixture() -> Option<Fixture> {
        super::postgres_fixture(OriginatorIdType::Uuid).map(Fixture::uuid_ids_only)
    }

    es_core::recorder_conformance_tests!(fixture);
    es_core::process_recorder_conformance_tests!(fixture);
}

/// The PostgreSQL store with `ORIGINATOR_ID_TYPE=text`: every case, text ids included.
mod postgres_text_ids {
    use es_core::persistence::OriginatorIdType;

    es_core::recorder_conformance_tests!(|| super::postgres_fixture(OriginatorIdType::Text));
    es_core::process_recorder_conformance_tests!(|| super::postgres_fixture(
        OriginatorIdType::Text
    ));
}

/// A fresh recorder on its own tables, dropped with the fixture; `None` (the
/// case is skipped) when the server is not there outside CI.
fn postgres_fixture(
    id_type: es_core::persistence::OriginatorIdType,
) -> Option<es_core::persistence::conformance::Fixture> {
    use es_core::persistence::conformance::Fixture;
    use es_core::persistence::{PostgresDatabase, PostgresRecorder};
    use pg_support::{DropTables, server, unique_prefix};

    let mut config = server("a PostgreSQL conformance case")?;
    // Room for the concurrent cases' writers and follower at once.
    config.pool_size = 8;
    config.originator_id_type = Some(id_type);
    let prefix = unique_prefix();
    let guard = DropTables::new(&prefix);
    let db = PostgresDatabase::open(&config).expect("pool");
    let recorder = PostgresRecorder::events(db, Some(&prefix), true).expect("recorder");
    Some(Fixture::process(recorder).keeping(guard))
}

/// The cases that need gaps in the notification ids, on every backend that
/// can have them or be given them. The in-memory stores (the in-memory
/// recorder, SQLite's `:memory:`) never skip an id and cannot be reached from
/// outside to make one, so they declare no gaps and are left out.
mod gaps {
    mod sqlite_file {
        use std::time::Duration;

        use es_core::persistence::conformance::Fixture;
        use es_core::persistence::{SqliteDatabase, SqliteRecorder};

        // SQLite never reuses an id below its `AUTOINCREMENT` counter, and a
        // rolled-back insert does not move it: raising the counter from another
        // connection is how its ids come to skip.
        es_core::notification_gap_conformance_tests!(|| {
            let dir = tempfile::tempdir().expect("temporary directory");
            let path = dir.path().join("events.sqlite3");
            let db = SqliteDatabase::open(&path, Duration::from_secs(5)).expect("open");
            let recorder = SqliteRecorder::events(db, true).expect("recorder");
            Fixture::new(recorder)
                .with_gaps(move |_| {
                    let connection = rusqlite::Connection::open(&path).expect("second connection");
                    connection
                        .busy_timeout(Duration::from_secs(5))
                        .expect("busy timeout");
                    connection
                        .execute(
                            "UPDATE sqlite_sequence SET seq = seq + 3 WHERE name = 'stored_events'",
                            [],
                        )
                        .expect("raise the id counter");
                })
                .keeping(dir)
        });
    }

    mod postgres {
        use es_core::persistence::OriginatorIdType;
        use es_core::persistence::conformance::{self, Fixture};

        // A batch that conflicts has drawn ids from the sequence already.
        es_core::notification_gap_conformance_tests!(|| {
            super::super::postgres_fixture(OriginatorIdType::Uuid).map(|fixture| {
                Fixture::with_gaps(
                    fixture.uuid_ids_only(),
                    conformance::gap_by_conflicting_insert,
                )
            })
        });
    }
}

#[path = "nats_support/mod.rs"]
mod nats_support;

/// The NATS JetStream store, on a server each case starts for itself
/// (2.12 or later: the machine's own may be older).
mod nats {
    es_core::recorder_conformance_tests!(super::nats_fixture);
    es_core::process_recorder_conformance_tests!(super::nats_fixture);
}

/// A fresh recorder on a server of its own, stopped with the fixture;
/// `None` (the case is skipped) without a server binary outside CI.
fn nats_fixture() -> Option<es_core::persistence::conformance::Fixture> {
    use es_core::persistence::conformance::Fixture;
    use es_core::persistence::{NatsConfig, NatsConnection, NatsRecorder};

    let node = nats_support::single("a NATS conformance case")?;
    let config = NatsConfig::new(node.url(), "conformance").expect("config");
    let connection = NatsConnection::connect(&config).expect("connect");
    let recorder = NatsRecorder::events(&connection, true).expect("recorder");
    Some(Fixture::process(recorder).keeping(node))
}
