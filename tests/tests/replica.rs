//! The receiving side of replication on each backend: the apply rules of
//! `Replica`, and its webhook over real HTTP refusing what it must, with
//! nothing applied. One test per case per backend; a PostgreSQL test is
//! skipped when no server is reachable (a failure under `CI=true`).

mod http_support;
mod pg_support;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use es_core::interface::replication::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};
use es_core::interface::replication::{
    Applied, Batch, CALLBACK_PATH, CallbackConfig, Reference, Replica, ReplicaError, Replicated,
    callback_router,
};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Deserialize)]
struct LeaseCopy {
    number: String,
    #[serde(default)]
    tenant: Option<Reference>,
}

impl Replicated for LeaseCopy {
    const TYPE: &'static str = "it_replica_lease";
}

/// A replica's database, and what must outlive the test's use of it.
struct Backend {
    replica: Replica,
    keep: Option<DropSchema>,
}

fn sqlite() -> Option<Backend> {
    let db = es_core::persistence::SqliteDatabase::open_in_memory().expect("a database");
    Some(Backend {
        replica: Replica::sqlite(db).expect("a replica"),
        keep: None,
    })
}

fn postgres(test: &str) -> Option<Backend> {
    let mut config = pg_support::server(test)?;
    config.schema = pg_support::unique_prefix();
    let keep = DropSchema(config.schema.clone());
    let db = es_core::persistence::PostgresDatabase::open(&config).expect("a pool");
    Some(Backend {
        replica: Replica::postgres(db).expect("a replica"),
        keep: Some(keep),
    })
}

/// Drops the test's schema, with the replica's tables, when dropped.
struct DropSchema(String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        // A name made by `unique_prefix`, so safe to write into the statement.
        let sql = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0);
        let dropped = ::postgres::Client::connect(&pg_support::url(), ::postgres::NoTls)
            .and_then(|mut client| client.batch_execute(&sql));
        if let Err(error) = dropped {
            eprintln!("could not drop the test schema {}: {error}", self.0);
        }
    }
}

fn registered(replica: Replica) -> Replica {
    replica
        .with_history()
        .expect("the history table")
        .replicate::<LeaseCopy>()
}

fn record(uid: &str, version: u64, history_type: &str, fields: Value) -> Value {
    let mut record = json!({
        "history_id": version.saturating_mul(10), "history_date": "2024-05-01T10:00:00Z",
        "history_change_reason": null, "history_user_id": null,
        "history_type": history_type, "_uid": uid, "_type": LeaseCopy::TYPE, "_version": version,
    });
    if let (Some(record), Value::Object(fields)) = (record.as_object_mut(), fields) {
        record.extend(fields);
    }
    record
}

fn lease(uid: &str, version: u64, history_type: &str, number: &str) -> Value {
    record(uid, version, history_type, json!({ "number": number }))
}

fn deleted(uid: &str, version: u64) -> Value {
    record(uid, version, "-", json!({}))
}

fn batch_json(records: Vec<Value>) -> Value {
    json!({ "count": records.len(), "results": records })
}

fn batch(records: Vec<Value>) -> Batch {
    serde_json::from_value(batch_json(records)).expect("a batch")
}

fn number(replica: &Replica, uid: &str) -> Option<String> {
    replica
        .get::<LeaseCopy>(uid)
        .expect("readable")
        .map(|copy| copy.value.number)
}

fn version(replica: &Replica, uid: &str) -> Option<(u64, bool)> {
    replica
        .version::<LeaseCopy>(uid)
        .expect("readable")
        .map(|held| (held.version, held.deleted))
}

fn applied(applied: usize, skipped: usize) -> Applied {
    Applied { applied, skipped }
}

// The apply rules.

fn creates_updates_and_deletes_are_applied(replica: Replica) {
    let replica = registered(replica);
    let done = replica
        .apply(&batch(vec![
            lease("a", 1, "+", "N1"),
            lease("b", 1, "+", "M1"),
            lease("a", 2, "~", "N2"),
        ]))
        .expect("applied");
    assert_eq!(done, applied(3, 0));
    let copy = replica
        .get::<LeaseCopy>("a")
        .expect("readable")
        .expect("live");
    assert_eq!((copy.version, copy.history_id), (2, 20));
    assert_eq!(copy.value.number, "N2");
    assert_eq!(copy.history_date.to_rfc3339(), "2024-05-01T10:00:00+00:00");
    replica
        .apply(&batch(vec![deleted("a", 3)]))
        .expect("applied");
    assert_eq!(number(&replica, "a"), None);
    assert_eq!(version(&replica, "a"), Some((3, true)));
    let live: Vec<String> = replica
        .all::<LeaseCopy>()
        .expect("readable")
        .into_iter()
        .map(|copy| copy.uid)
        .collect();
    assert_eq!(live, ["b"]);
    let versions: Vec<u64> = replica
        .history::<LeaseCopy>("a")
        .expect("kept")
        .iter()
        .map(|record| record.version)
        .collect();
    assert_eq!(versions, [1, 2, 3]);
}

fn a_batch_of_several_versions_out_of_order_applies_each_newer_one_in_turn(replica: Replica) {
    let replica = registered(replica);
    replica
        .apply(&batch(vec![lease("a", 2, "~", "N2")]))
        .expect("applied");
    let done = replica
        .apply(&batch(vec![
            lease("a", 1, "+", "N1"),
            lease("b", 3, "~", "M3"),
            lease("a", 4, "~", "N4"),
            lease("b", 1, "+", "M1"),
            lease("a", 3, "~", "N3"),
            lease("a", 4, "~", "N4"),
            deleted("b", 5),
            lease("a", 5, "~", "N5"),
        ]))
        .expect("applied");
    // a: 1 is older than the stored 2, 3 comes after 4; b: 1 after 3.
    assert_eq!(done, applied(4, 4));
    assert_eq!(version(&replica, "a"), Some((5, false)));
    assert_eq!(number(&replica, "a").as_deref(), Some("N5"));
    assert_eq!(version(&replica, "b"), Some((5, true)));
    let versions = |uid: &str| -> Vec<u64> {
        replica
            .history::<LeaseCopy>(uid)
            .expect("kept")
            .iter()
            .map(|record| record.version)
            .collect()
    };
    assert_eq!(versions("a"), [2, 4, 5]);
    assert_eq!(versions("b"), [3, 5]);
}

fn duplicates_are_skipped(replica: Replica) {
    let replica = registered(replica);
    let first = batch(vec![lease("a", 1, "+", "N1"), lease("a", 2, "~", "N2")]);
    replica.apply(&first).expect("applied");
    assert_eq!(replica.apply(&first).expect("skipped"), applied(0, 2));
    assert_eq!(
        replica
            .apply(&batch(vec![lease("a", 2, "~", "changed")]))
            .expect("skipped"),
        applied(0, 1)
    );
    assert_eq!(number(&replica, "a").as_deref(), Some("N2"));
    assert_eq!(replica.history::<LeaseCopy>("a").expect("kept").len(), 2);
}

fn an_update_before_its_create_is_applied(replica: Replica) {
    let replica = registered(replica);
    assert_eq!(
        replica
            .apply(&batch(vec![lease("a", 2, "~", "N2")]))
            .expect("applied"),
        applied(1, 0)
    );
    assert_eq!(number(&replica, "a").as_deref(), Some("N2"));
    assert_eq!(
        replica
            .apply(&batch(vec![lease("a", 1, "+", "N1")]))
            .expect("skipped"),
        applied(0, 1)
    );
    assert_eq!(number(&replica, "a").as_deref(), Some("N2"));
}

fn a_late_update_after_a_delete_does_not_resurrect(replica: Replica) {
    let replica = registered(replica);
    replica
        .apply(&batch(vec![lease("a", 1, "+", "N1"), deleted("a", 3)]))
        .expect("applied");
    assert_eq!(
        replica
            .apply(&batch(vec![lease("a", 2, "~", "N2")]))
            .expect("skipped"),
        applied(0, 1)
    );
    assert_eq!(number(&replica, "a"), None);
    assert_eq!(version(&replica, "a"), Some((3, true)));
}

fn an_unknown_type_fails_the_whole_batch(replica: Replica) {
    let replica = registered(replica);
    let mut unknown = lease("x", 1, "+", "X");
    unknown["_type"] = json!("it_replica_unknown");
    let error = replica
        .apply(&batch(vec![lease("a", 1, "+", "N1"), unknown]))
        .expect_err("refused");
    assert!(
        matches!(&error, ReplicaError::UnknownType { kind } if kind == "it_replica_unknown"),
        "{error}"
    );
    assert_eq!(version(&replica, "a"), None);
}

fn a_callback_error_rolls_the_batch_back(replica: Replica) {
    let replica = registered(replica).on_change::<LeaseCopy>(|_, lease| match lease {
        Some(lease) if lease.number == "refused" => Err("the callback refused".into()),
        _ => Ok(()),
    });
    let error = replica
        .apply(&batch(vec![
            lease("a", 1, "+", "N1"),
            lease("b", 1, "+", "refused"),
        ]))
        .expect_err("rolled back");
    assert!(matches!(error, ReplicaError::Callback(_)), "{error}");
    assert_eq!(version(&replica, "a"), None);
    assert!(replica.history::<LeaseCopy>("a").expect("kept").is_empty());
    // The master sends it again without the refused record: all of it applies.
    replica
        .apply(&batch(vec![lease("a", 1, "+", "N1")]))
        .expect("applied");
    assert_eq!(number(&replica, "a").as_deref(), Some("N1"));
}

fn a_batch_is_applied_whole_or_not_at_all(replica: Replica) {
    let replica = registered(replica);
    replica
        .apply(&batch(vec![lease("a", 1, "+", "N1")]))
        .expect("applied");
    // A record that does not fit its type, last in the batch: nothing before it stays.
    let error = replica
        .apply(&batch(vec![
            lease("a", 2, "~", "N2"),
            lease("b", 1, "+", "M1"),
            record("c", 1, "+", json!({ "number": 14 })),
        ]))
        .expect_err("refused");
    let ReplicaError::InvalidRecord { kind, uid, reason } = &error else {
        panic!("{error}")
    };
    assert_eq!((kind.as_str(), uid.as_str()), (LeaseCopy::TYPE, "c"));
    assert!(reason.contains("invalid type"), "{reason}");
    assert_eq!(version(&replica, "a"), Some((1, false)));
    assert_eq!(version(&replica, "b"), None);
    // A reference to an entity not replicated yet is only data.
    let referring = record(
        "d",
        1,
        "+",
        json!({ "number": "D1", "tenant": { "_uid": "t-unseen", "_type": "it_replica_tenant" } }),
    );
    replica.apply(&batch(vec![referring])).expect("applied");
    let tenant = replica
        .get::<LeaseCopy>("d")
        .expect("readable")
        .and_then(|copy| copy.value.tenant);
    assert_eq!(tenant.map(|tenant| tenant.uid).as_deref(), Some("t-unseen"));
}

fn concurrent_deliveries_keep_the_newest_version(replica: Replica) {
    let replica = Arc::new(registered(replica));
    let threads: Vec<_> = [3, 8, 1, 6, 2, 7, 5, 4]
        .into_iter()
        .map(|version| {
            let replica = replica.clone();
            std::thread::spawn(move || {
                let number = format!("N{version}");
                replica.apply(&batch(vec![lease("a", version, "~", &number)]))
            })
        })
        .collect();
    for thread in threads {
        thread
            .join()
            .expect("no panic")
            .expect("applied or skipped");
    }
    assert_eq!(version(&replica, "a"), Some((8, false)));
    assert_eq!(number(&replica, "a").as_deref(), Some("N8"));
}

// The webhook over HTTP.

const SECRET: &[u8] = b"it-replica-secret";
const LIMIT: usize = 1024;

fn serve(replica: Replica) -> (Arc<Replica>, String) {
    let replica = Arc::new(registered(replica));
    let config = CallbackConfig::new(SECRET).max_body_bytes(LIMIT);
    let base = http_support::serve(callback_router(replica.clone(), config));
    (replica, format!("{base}{CALLBACK_PATH}"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// POSTs `body` with `headers`: the status and the JSON answer.
fn post(url: &str, body: &[u8], headers: &[(&str, String)]) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut request = agent.post(url).header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let mut response = request
        .send(body)
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().expect("a body");
    let answer = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{status} {text:?} is not JSON: {e}"));
    (status, answer)
}

fn signed(secret: &[u8], timestamp: u64, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        (TIMESTAMP_HEADER, timestamp.to_string()),
        (SIGNATURE_HEADER, sign(secret, timestamp, body)),
    ]
}

/// POSTs `body` signed now with the right secret.
fn deliver(url: &str, body: &[u8]) -> (u16, Value) {
    post(url, body, &signed(SECRET, now(), body))
}

fn assert_refused(answer: (u16, Value), status: u16, replica: &Replica) {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(!error.is_empty(), "no error message in {body}");
    assert_eq!(version(replica, "a"), None, "something was applied");
}

fn good_body() -> Vec<u8> {
    batch_json(vec![lease("a", 1, "+", "N1")])
        .to_string()
        .into_bytes()
}

fn http_a_good_signed_batch_is_applied(replica: Replica) {
    let (replica, url) = serve(replica);
    let body = good_body();
    let (status, answer) = deliver(&url, &body);
    assert_eq!((status, answer), (200, json!({"applied": 1, "skipped": 0})));
    assert_eq!(number(&replica, "a").as_deref(), Some("N1"));
    let (status, answer) = deliver(&url, &body);
    assert_eq!((status, answer), (200, json!({"applied": 0, "skipped": 1})));
}

fn http_not_json_is_refused(replica: Replica) {
    let (replica, url) = serve(replica);
    assert_refused(deliver(&url, b"this is not json"), 400, &replica);
}

fn http_a_record_without_uid_is_refused(replica: Replica) {
    let (replica, url) = serve(replica);
    let mut missing = lease("b", 1, "+", "M1");
    missing.as_object_mut().map(|record| record.remove("_uid"));
    let body = batch_json(vec![lease("a", 1, "+", "N1"), missing]).to_string();
    let answer = deliver(&url, body.as_bytes());
    assert!(
        answer.1["error"].to_string().contains("_uid"),
        "{}",
        answer.1
    );
    assert_refused(answer, 400, &replica);
}

fn http_a_record_without_version_is_refused(replica: Replica) {
    let (replica, url) = serve(replica);
    let mut missing = lease("b", 1, "+", "M1");
    missing
        .as_object_mut()
        .map(|record| record.remove("_version"));
    let body = batch_json(vec![lease("a", 1, "+", "N1"), missing]).to_string();
    let answer = deliver(&url, body.as_bytes());
    assert!(
        answer.1["error"].to_string().contains("_version"),
        "{}",
        answer.1
    );
    assert_refused(answer, 400, &replica);
}

fn http_missing_signature_headers_are_refused(replica: Replica) {
    let (replica, url) = serve(replica);
    assert_refused(post(&url, &good_body(), &[]), 401, &replica);
    let only_timestamp = [(TIMESTAMP_HEADER, now().to_string())];
    assert_refused(post(&url, &good_body(), &only_timestamp), 401, &replica);
    let malformed = [
        (TIMESTAMP_HEADER, now().to_string()),
        (SIGNATURE_HEADER, "sha256=nothex".to_owned()),
    ];
    assert_refused(post(&url, &good_body(), &malformed), 401, &replica);
}

fn http_a_wrong_signature_is_refused(replica: Replica) {
    let (replica, url) = serve(replica);
    let body = good_body();
    let forged = signed(b"another secret", now(), &body);
    assert_refused(post(&url, &body, &forged), 401, &replica);
    // Signed right, then changed on the way.
    let headers = signed(SECRET, now(), &body);
    let changed = batch_json(vec![lease("a", 1, "+", "N9")]).to_string();
    assert_refused(post(&url, changed.as_bytes(), &headers), 401, &replica);
}

fn http_a_replayed_old_timestamp_is_refused(replica: Replica) {
    let (replica, url) = serve(replica);
    let body = good_body();
    let old = now() - 3_600;
    let answer = post(&url, &body, &signed(SECRET, old, &body));
    assert!(
        answer.1["error"].to_string().contains("replayed"),
        "{}",
        answer.1
    );
    assert_refused(answer, 401, &replica);
}

fn http_an_oversized_body_is_refused(replica: Replica) {
    let (replica, url) = serve(replica);
    let padding = "x".repeat(LIMIT * 3);
    let body = batch_json(vec![lease("a", 1, "+", &padding)]).to_string();
    assert_refused(deliver(&url, body.as_bytes()), 413, &replica);
}

fn http_an_unknown_type_is_refused(replica: Replica) {
    let (replica, url) = serve(replica);
    let mut unknown = lease("x", 1, "+", "X");
    unknown["_type"] = json!("it_replica_unknown");
    let body = batch_json(vec![lease("a", 1, "+", "N1"), unknown]).to_string();
    let answer = deliver(&url, body.as_bytes());
    assert!(
        answer.1["error"].to_string().contains("it_replica_unknown"),
        "{}",
        answer.1
    );
    assert_refused(answer, 422, &replica);
}

fn http_a_count_mismatch_is_refused(replica: Replica) {
    let (replica, url) = serve(replica);
    let body = json!({ "count": 2, "results": [lease("a", 1, "+", "N1")] }).to_string();
    assert_refused(deliver(&url, body.as_bytes()), 400, &replica);
}

fn http_a_callback_error_is_a_server_error(replica: Replica) {
    let replica = Arc::new(
        registered(replica).on_any_change(|_| Err("the replica's own work failed".into())),
    );
    let base = http_support::serve(callback_router(
        replica.clone(),
        CallbackConfig::new(SECRET),
    ));
    let answer = deliver(&format!("{base}{CALLBACK_PATH}"), &good_body());
    assert_refused(answer, 500, &replica);
}

/// One test per case per backend, so a failure names its backend.
macro_rules! cases {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $case() {
                    if let Some(super::Backend { replica, keep }) = super::sqlite() {
                        super::$case(replica);
                        drop(keep);
                    }
                }
            )*
        }

        mod postgres {
            $(
                #[test]
                fn $case() {
                    if let Some(super::Backend { replica, keep }) = super::postgres(stringify!($case)) {
                        super::$case(replica);
                        // The schema goes once the case is done with it.
                        drop(keep);
                    }
                }
            )*
        }
    };
}

cases!(
    creates_updates_and_deletes_are_applied,
    duplicates_are_skipped,
    a_batch_of_several_versions_out_of_order_applies_each_newer_one_in_turn,
    an_update_before_its_create_is_applied,
    a_late_update_after_a_delete_does_not_resurrect,
    an_unknown_type_fails_the_whole_batch,
    a_callback_error_rolls_the_batch_back,
    a_batch_is_applied_whole_or_not_at_all,
    concurrent_deliveries_keep_the_newest_version,
    http_a_good_signed_batch_is_applied,
    http_not_json_is_refused,
    http_a_record_without_uid_is_refused,
    http_a_record_without_version_is_refused,
    http_missing_signature_headers_are_refused,
    http_a_wrong_signature_is_refused,
    http_a_replayed_old_timestamp_is_refused,
    http_an_oversized_body_is_refused,
    http_an_unknown_type_is_refused,
    http_a_count_mismatch_is_refused,
    http_a_callback_error_is_a_server_error,
);
