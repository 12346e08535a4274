//! The replication example as the README runs it: the contracts master and
//! its replica, two processes with their own SQLite databases, talking over
//! real HTTP. The replica subscribes itself at start; a contract signed,
//! amended and terminated at the master is followed by its copy.

mod http_support;
mod replication_support;

use std::time::{Duration, Instant};

use replication_support::{Service, free_port};
use serde_json::{Value, json};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// The status and JSON body of a request.
fn call(method: &str, url: &str, headers: &[(&str, &str)], body: Option<Value>) -> (u16, Value) {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .header("content-type", "application/json")
        .body(body.map(|body| body.to_string()).unwrap_or_default())
        .expect("request");
    let mut response = agent().run(request).expect("an answer");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Waits until `check` holds of the replica's answer for `url`.
fn until(url: &str, what: &str, check: impl Fn(u16, &Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = call("GET", url, &[], None);
        if check(status, &body) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the replica says {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_contract_signed_amended_and_terminated_at_the_master_is_followed_by_the_replica() {
    let dir = tempfile::tempdir().expect("dir");
    let (master_port, replica_port) = (free_port(), free_port());
    let master_url = format!("http://127.0.0.1:{master_port}");
    let replica_url = format!("http://127.0.0.1:{replica_port}");
    let mut master = Service::new(
        env!("CARGO_BIN_EXE_contracts-master"),
        master_port,
        &[
            ("PERSISTENCE_MODULE", "sqlite".into()),
            (
                "SQLITE_DBNAME",
                dir.path().join("contracts.sqlite3").display().to_string(),
            ),
            ("CONTRACTS_ADDR", format!("127.0.0.1:{master_port}")),
        ],
    );
    let mut replica = Service::new(
        env!("CARGO_BIN_EXE_contracts-replica"),
        replica_port,
        &[
            ("REPLICA_ADDR", format!("127.0.0.1:{replica_port}")),
            (
                "REPLICA_DBNAME",
                dir.path().join("replica.sqlite3").display().to_string(),
            ),
            ("MASTER_URL", master_url.clone()),
        ],
    );
    // As in two terminals, in either order: the replica waits for the master.
    replica.start();
    master.start();

    let customer = "8a1f4c7e-2d2b-4a55-9d39-6b7cf0d1b0e4";
    let (status, signed) = call(
        "POST",
        &format!("{master_url}/contracts"),
        &[
            ("x-user-id", "clerk-7"),
            ("x-change-reason", "signed at the branch"),
        ],
        Some(json!({"number": "N14/10-11", "customer": customer, "amount": 120000})),
    );
    assert_eq!(status, 201, "{signed}");
    let id = signed["id"].as_str().expect("an id").to_owned();
    let copy_url = format!("{replica_url}/contracts/{id}");
    let copy = until(&copy_url, "the signed contract", |status, _| status == 200);
    assert_eq!(copy["version"], 1);
    assert_eq!(copy["contract"]["number"], "N14/10-11");
    assert_eq!(
        copy["contract"]["customer"],
        json!({"_uid": customer, "_type": "customer"}),
        "a reference to an entity the replica does not have is kept as is"
    );

    let (status, amended) = call(
        "PATCH",
        &format!("{master_url}/contracts/{id}"),
        &[],
        Some(json!({"amount": 125000, "internal_notes": "stays at the master"})),
    );
    assert_eq!(status, 200, "{amended}");
    let copy = until(&copy_url, "the amendment", |_, body| body["version"] == 3);
    assert_eq!(copy["contract"]["amount"], 125000);
    assert!(copy["contract"].get("internal_notes").is_none());

    // Restarted, the replica keeps its copies and its subscription.
    replica.kill();
    replica.start();
    let (status, all) = call("GET", &format!("{replica_url}/contracts"), &[], None);
    assert_eq!((status, all["count"].as_u64()), (200, Some(1)), "{all}");

    let (status, _) = call("DELETE", &format!("{master_url}/contracts/{id}"), &[], None);
    assert_eq!(status, 200);
    until(&copy_url, "the termination", |status, _| status == 404);

    let (status, subscription) = call(
        "GET",
        &format!("{master_url}/api/v1/subscriptions/replica/status"),
        &[("Authorization", "Bearer dev-token")],
        None,
    );
    assert_eq!(status, 200, "{subscription}");
    assert_eq!(subscription["status"], "active");
    assert_eq!(subscription["lag_events"], 0, "{subscription}");
}
