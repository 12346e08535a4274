//! The apply rules, on SQLite in memory (the integration tests run them on
//! both backends and over HTTP).

use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;
use crate::persistence::SqliteDatabase;

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct Lease {
    number: String,
    #[serde(default)]
    tenant: Option<super::super::Reference>,
}

impl Replicated for Lease {
    const TYPE: &'static str = "unit_lease";
}

#[derive(Debug, Deserialize)]
struct Room {
    #[allow(dead_code)]
    size: u32,
}

impl Replicated for Room {
    const TYPE: &'static str = "unit_room";
}

fn record(kind: &str, uid: &str, version: u64, history_type: &str, fields: Value) -> Value {
    let mut record = json!({
        "history_id": version.saturating_mul(10), "history_date": "2024-05-01T10:00:00.123456Z",
        "history_change_reason": "why", "history_user_id": "who",
        "history_type": history_type, "_uid": uid, "_type": kind, "_version": version,
    });
    if let (Some(record), Value::Object(fields)) = (record.as_object_mut(), fields) {
        record.extend(fields);
    }
    record
}

fn lease(uid: &str, version: u64, history_type: &str, number: &str) -> Value {
    record(
        "unit_lease",
        uid,
        version,
        history_type,
        json!({ "number": number }),
    )
}

fn batch(records: Vec<Value>) -> Batch {
    serde_json::from_value(json!({ "count": records.len(), "results": records })).expect("a batch")
}

fn replica() -> Replica {
    Replica::sqlite(SqliteDatabase::open_in_memory().expect("a database"))
        .expect("a replica")
        .with_history()
        .expect("the history table")
        .replicate::<Lease>()
        .replicate::<Room>()
}

fn number(replica: &Replica, uid: &str) -> Option<String> {
    replica
        .get::<Lease>(uid)
        .expect("readable")
        .map(|copy| copy.value.number)
}

fn version(replica: &Replica, uid: &str) -> Option<(u64, bool)> {
    replica
        .version::<Lease>(uid)
        .expect("readable")
        .map(|v| (v.version, v.deleted))
}

#[test]
fn creates_updates_and_deletes_are_applied_in_order() {
    let replica = replica();
    let applied = replica
        .apply(&batch(vec![
            lease("a", 1, "+", "N1"),
            lease("a", 2, "~", "N2"),
        ]))
        .expect("applied");
    assert_eq!(
        applied,
        Applied {
            applied: 2,
            skipped: 0
        }
    );
    let copy = replica.get::<Lease>("a").expect("read").expect("live");
    assert_eq!((copy.version, copy.history_id), (2, 20));
    assert_eq!(copy.value.number, "N2");
    assert_eq!(
        copy.history_date.to_rfc3339(),
        "2024-05-01T10:00:00.123456+00:00"
    );

    replica
        .apply(&batch(vec![record("unit_lease", "a", 3, "-", json!({}))]))
        .expect("applied");
    assert_eq!(number(&replica, "a"), None);
    assert_eq!(version(&replica, "a"), Some((3, true)));
    assert!(replica.all::<Lease>().expect("read").is_empty());
    let history = replica.history::<Lease>("a").expect("kept");
    let kept: Vec<(u64, HistoryType)> = history
        .iter()
        .map(|r| (r.version, r.history_type))
        .collect();
    assert_eq!(
        kept,
        [
            (1, HistoryType::Created),
            (2, HistoryType::Changed),
            (3, HistoryType::Deleted)
        ]
    );
    assert_eq!(history[0].history_change_reason.as_deref(), Some("why"));
    assert_eq!(history[0].history_user_id.as_deref(), Some("who"));
    assert_eq!(history[1].fields["number"], "N2");
}

#[test]
fn duplicates_and_older_versions_are_skipped() {
    let replica = replica();
    let first = batch(vec![lease("a", 1, "+", "N1"), lease("a", 2, "~", "N2")]);
    replica.apply(&first).expect("applied");
    let again = replica.apply(&first).expect("skipped");
    assert_eq!(
        again,
        Applied {
            applied: 0,
            skipped: 2
        }
    );
    // The same version with other fields is a duplicate too: the first wins.
    replica
        .apply(&batch(vec![lease("a", 2, "~", "other")]))
        .expect("skipped");
    assert_eq!(number(&replica, "a").as_deref(), Some("N2"));
    assert_eq!(replica.history::<Lease>("a").expect("kept").len(), 2);
}

#[test]
fn an_update_before_its_create_is_applied_and_the_create_then_skipped() {
    let replica = replica();
    replica
        .apply(&batch(vec![lease("a", 2, "~", "N2")]))
        .expect("applied");
    assert_eq!(number(&replica, "a").as_deref(), Some("N2"));
    let late = replica
        .apply(&batch(vec![lease("a", 1, "+", "N1")]))
        .expect("skipped");
    assert_eq!(late.skipped, 1);
    assert_eq!(number(&replica, "a").as_deref(), Some("N2"));
}

#[test]
fn a_late_update_after_a_delete_does_not_bring_it_back() {
    let replica = replica();
    replica
        .apply(&batch(vec![
            lease("a", 1, "+", "N1"),
            record("unit_lease", "a", 3, "-", json!({})),
        ]))
        .expect("applied");
    let late = replica
        .apply(&batch(vec![lease("a", 2, "~", "N2")]))
        .expect("skipped");
    assert_eq!(late.skipped, 1);
    assert_eq!(number(&replica, "a"), None);
    assert_eq!(version(&replica, "a"), Some((3, true)));
    // A delete never seen created leaves a tombstone all the same.
    replica
        .apply(&batch(vec![record("unit_lease", "b", 4, "-", json!({}))]))
        .expect("applied");
    replica
        .apply(&batch(vec![lease("b", 1, "+", "N1")]))
        .expect("skipped");
    assert_eq!(version(&replica, "b"), Some((4, true)));
}

#[test]
fn an_unknown_type_fails_the_whole_batch() {
    let replica = replica();
    let error = replica
        .apply(&batch(vec![
            lease("a", 1, "+", "N1"),
            record("unit_unknown", "x", 1, "+", json!({})),
        ]))
        .expect_err("refused");
    assert!(
        matches!(&error, ReplicaError::UnknownType { kind } if kind == "unit_unknown"),
        "{error}"
    );
    assert_eq!(version(&replica, "a"), None);
}

#[test]
fn a_record_that_does_not_fit_its_type_fails_the_batch_with_type_uid_and_reason() {
    let replica = replica();
    let error = replica
        .apply(&batch(vec![
            lease("a", 1, "+", "N1"),
            record("unit_room", "r", 1, "+", json!({ "size": "big" })),
        ]))
        .expect_err("refused");
    let ReplicaError::InvalidRecord { kind, uid, reason } = &error else {
        panic!("{error}")
    };
    assert_eq!((kind.as_str(), uid.as_str()), ("unit_room", "r"));
    assert!(reason.contains("invalid type"), "{reason}");
    assert_eq!(version(&replica, "a"), None);
}

#[test]
fn a_reference_to_an_entity_not_yet_replicated_is_only_data() {
    let replica = replica();
    let with_tenant = record(
        "unit_lease",
        "a",
        1,
        "+",
        json!({ "number": "N1", "tenant": { "_uid": "t-unseen", "_type": "unit_tenant" } }),
    );
    replica.apply(&batch(vec![with_tenant])).expect("applied");
    let copy = replica.get::<Lease>("a").expect("read").expect("live");
    assert_eq!(
        copy.value.tenant.map(|tenant| tenant.uid).as_deref(),
        Some("t-unseen")
    );
}

#[test]
fn a_failing_callback_rolls_the_batch_back_and_skipped_records_call_nothing() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let replica = replica().on_change::<Lease>(move |record, lease| {
        seen.lock()
            .map_err(|_| "poisoned")?
            .push((record.version, lease.map(|lease| lease.number.clone())));
        if lease.is_some_and(|lease| lease.number == "fail") {
            return Err("the callback refused".into());
        }
        Ok(())
    });
    let error = replica
        .apply(&batch(vec![
            lease("a", 1, "+", "N1"),
            lease("b", 1, "+", "fail"),
        ]))
        .expect_err("rolled back");
    assert!(matches!(error, ReplicaError::Callback(_)), "{error}");
    assert_eq!(version(&replica, "a"), None);
    assert!(replica.history::<Lease>("a").expect("kept").is_empty());

    calls.lock().expect("calls").clear();
    replica
        .apply(&batch(vec![
            lease("a", 1, "+", "N1"),
            record("unit_lease", "a", 2, "-", json!({})),
        ]))
        .expect("applied");
    replica
        .apply(&batch(vec![lease("a", 1, "+", "N1")]))
        .expect("skipped");
    assert_eq!(
        *calls.lock().expect("calls"),
        [(1, Some("N1".to_owned())), (2, None)]
    );
}

#[test]
fn the_callback_for_all_types_runs_after_the_typed_ones() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let (typed, all) = (order.clone(), order.clone());
    let replica = replica()
        .on_any_change(move |record| {
            all.lock()
                .map_err(|_| "poisoned")?
                .push(format!("all {}", record.kind));
            Ok(())
        })
        .on_change::<Lease>(move |_, _| {
            typed.lock().map_err(|_| "poisoned")?.push("lease".into());
            Ok(())
        });
    replica
        .apply(&batch(vec![
            lease("a", 1, "+", "N1"),
            record("unit_room", "r", 1, "+", json!({ "size": 3 })),
        ]))
        .expect("applied");
    assert_eq!(
        *order.lock().expect("order"),
        ["lease", "all unit_lease", "all unit_room"]
    );
}

#[test]
fn a_wrong_count_or_a_version_beyond_sql_integers_is_refused() {
    let replica = replica();
    let mut wrong = batch(vec![lease("a", 1, "+", "N1")]);
    wrong.count = 2;
    assert!(matches!(
        replica.apply(&wrong),
        Err(ReplicaError::CountMismatch { count: 2, held: 1 })
    ));
    let huge = batch(vec![lease("a", u64::MAX, "+", "N1")]);
    assert!(matches!(
        replica.apply(&huge),
        Err(ReplicaError::InvalidRecord { .. })
    ));
    assert_eq!(version(&replica, "a"), None);
}

#[test]
fn queries_of_unregistered_types_and_history_not_kept_are_errors() {
    let plain =
        Replica::sqlite(SqliteDatabase::open_in_memory().expect("a database")).expect("a replica");
    assert!(matches!(
        plain.get::<Lease>("a"),
        Err(ReplicaError::UnknownType { .. })
    ));
    let plain = plain.replicate::<Lease>();
    assert!(matches!(
        plain.history::<Lease>("a"),
        Err(ReplicaError::HistoryNotKept)
    ));
}

#[test]
fn all_lists_live_copies_in_uid_order() {
    let replica = replica();
    replica
        .apply(&batch(vec![
            lease("c", 1, "+", "N3"),
            lease("a", 1, "+", "N1"),
            lease("b", 1, "+", "N2"),
            record("unit_lease", "b", 2, "-", json!({})),
        ]))
        .expect("applied");
    let uids: Vec<String> = replica
        .all::<Lease>()
        .expect("read")
        .into_iter()
        .map(|copy| copy.uid)
        .collect();
    assert_eq!(uids, ["a", "c"]);
}

#[test]
#[should_panic(expected = "registered twice")]
fn two_rust_types_under_one_name_are_refused() {
    #[derive(Deserialize)]
    struct Other {}
    impl Replicated for Other {
        const TYPE: &'static str = "unit_lease";
    }
    let _ = replica().replicate::<Other>();
}

#[test]
fn a_file_database_reads_with_its_readers_what_the_writer_committed() {
    let dir = tempfile::tempdir().expect("a directory");
    let db = SqliteDatabase::open(
        dir.path().join("replica.sqlite3"),
        std::time::Duration::from_secs(5),
    )
    .expect("a database");
    let replica = Replica::sqlite(db.clone())
        .expect("a replica")
        .replicate::<Lease>();
    replica
        .apply(&batch(vec![lease("a", 1, "+", "N1")]))
        .expect("applied");
    assert_eq!(number(&replica, "a").as_deref(), Some("N1"));
    // Another replica of the same file sees the same copies.
    let again = Replica::sqlite(db).expect("a replica").replicate::<Lease>();
    assert_eq!(number(&again, "a").as_deref(), Some("N1"));
}
