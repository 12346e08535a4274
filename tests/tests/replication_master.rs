//! The master's side of replication: history records made from the log,
//! delivered signed and in order, from a durable position; retries, parking
//! and resuming; the subscriptions API and the requests it refuses.

mod http_support;
#[path = "pg_support/mod.rs"]
mod pg_support;
mod replication_support;

use std::sync::Arc;
use std::time::Duration;

use es_core::Metadata;
use es_core::interface::replication::{
    DeliveryConfig, Filter, HistoryType, Replicating, Replicator, Start, Status,
    SubscriptionRequest,
};
use es_core::prelude::*;
use replication_support::{Inbox, receiver};

#[aggregate]
pub struct Tenancy {
    number: String,
    rent: u32,
    notes: String,
}

#[aggregate]
impl Tenancy {
    #[event("Granted")]
    pub fn grant(number: String, rent: u32) -> Self {
        Tenancy {
            number,
            rent,
            notes: String::new(),
        }
    }

    #[event("RentSet")]
    pub fn set_rent(&mut self, rent: u32) {
        self.rent = rent;
    }

    #[event("Noted")]
    pub fn note(&mut self, notes: String) {
        self.notes = notes;
    }

    #[event("Surrendered")]
    pub fn surrender(&mut self) {}
}

impl Replicating for Tenancy {
    const CONTRACT: &'static str = "tenancy";
    const EXCLUDED: &'static [&'static str] = &["notes"];
    fn deletes(event: &TenancyEvent) -> bool {
        matches!(event, TenancyEvent::Surrendered { .. })
    }
}

const WAIT: Duration = Duration::from_secs(20);

fn quick() -> DeliveryConfig {
    DeliveryConfig::default()
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .timeout(Duration::from_secs(2))
        .max_failures(3)
}

fn sqlite_app(dir: &tempfile::TempDir) -> Arc<Application> {
    Arc::new(
        Application::builder()
            .name("lettings")
            .sqlite(dir.path().join("lettings.sqlite3"))
            .build()
            .expect("app"),
    )
}

fn memory_app() -> Arc<Application> {
    Arc::new(
        Application::builder()
            .name("lettings")
            .in_memory()
            .build()
            .expect("app"),
    )
}

fn filter(text: &str) -> Filter {
    text.parse().expect("a filter")
}

/// Subscribes `request` and tells the receiver its secret.
fn subscribe(replicator: &Replicator, inbox: &Inbox, request: SubscriptionRequest) {
    let subscription = replicator.subscribe(request).expect("subscribe");
    inbox.set_secret(&subscription.secret);
}

fn replicator(app: &Arc<Application>) -> Replicator {
    Replicator::builder(Arc::clone(app))
        .replicate::<Tenancy>()
        .token("letting-agent", ["tenancy"])
        .delivery(quick())
        .start()
        .expect("replicator")
}

/// Creates, changes (twice, once with metadata), notes and deletes a
/// tenancy; checks what the receiver got.
fn delivers_every_change_in_order(app: Arc<Application>) {
    let (inbox, url) = receiver();
    let replicator = replicator(&app);
    subscribe(
        &replicator,
        &inbox,
        SubscriptionRequest::new("agency", &url, [filter("tenancy")]).starting(Start::Beginning),
    );

    let mut tenancy = Tenancy::grant("T-1".into(), 900);
    app.save(&mut tenancy).expect("save");
    tenancy.set_rent(950);
    tenancy.note("dog allowed".into());
    app.save_with_metadata(
        &mut tenancy,
        &Metadata::new()
            .user_id("u-7")
            .change_reason("yearly review"),
    )
    .expect("save");
    tenancy.surrender();
    let saved = app.save(&mut tenancy).expect("save");
    replicator
        .wait("agency", saved[0].notification_id, WAIT)
        .expect("delivered");

    let records: Vec<_> = inbox.records();
    let versions: Vec<u64> = records.iter().map(|r| r.version).collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    let kinds: Vec<HistoryType> = records.iter().map(|r| r.history_type).collect();
    use HistoryType::*;
    assert_eq!(kinds, [Created, Changed, Changed, Deleted]);
    let ids: Vec<u64> = records.iter().map(|r| r.history_id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for record in &records {
        assert_eq!(record.kind, "tenancy");
        assert_eq!(record.uid, tenancy.id().to_string());
        assert!(!record.fields.contains_key("notes"), "excluded: {record:?}");
    }
    assert_eq!(records[0].fields["rent"], 900);
    assert_eq!(records[1].fields["rent"], 950);
    assert_eq!(records[1].history_user_id.as_deref(), Some("u-7"));
    assert_eq!(
        records[2].history_change_reason.as_deref(),
        Some("yearly review")
    );
    assert_eq!(records[0].history_user_id, None);
    assert_eq!(inbox.forged(), 0);

    let status = replicator.status("agency").expect("status").expect("there");
    assert_eq!((status.position, status.lag_events), (4, 0));
    assert_eq!(status.delivered, 4);
}

#[test]
fn delivers_every_change_in_order_from_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    delivers_every_change_in_order(sqlite_app(&dir));
}

#[test]
fn delivers_every_change_in_order_from_memory() {
    delivers_every_change_in_order(memory_app());
}

#[test]
fn delivers_every_change_in_order_from_postgres() {
    let Some(config) = pg_support::server("delivers_every_change_in_order_from_postgres") else {
        return;
    };
    let prefix = pg_support::unique_prefix();
    let _tables = pg_support::DropTables::new(&prefix);
    delivers_every_change_in_order(Arc::new(
        Application::builder()
            .name(&prefix)
            .postgres(config)
            .build()
            .expect("app"),
    ));
}

#[test]
fn a_restarted_master_resumes_after_its_last_acknowledged_batch() {
    let dir = tempfile::tempdir().expect("dir");
    let (inbox, url) = receiver();
    let app = sqlite_app(&dir);
    let first = replicator(&app);
    subscribe(
        &first,
        &inbox,
        SubscriptionRequest::new("agency", &url, [filter("tenancy")]),
    );
    let saved = app
        .save(&mut Tenancy::grant("T-1".into(), 1))
        .expect("save");
    first
        .wait("agency", saved[0].notification_id, WAIT)
        .expect("delivered");
    first.stop();
    drop(app);

    // Saved while no replicator runs: delivered by the next one.
    let app = sqlite_app(&dir);
    let saved = app
        .save(&mut Tenancy::grant("T-2".into(), 2))
        .expect("save");
    let second = replicator(&app);
    assert_eq!(second.subscriptions().expect("list").len(), 1);
    second
        .wait("agency", saved[0].notification_id, WAIT)
        .expect("delivered");
    let numbers: Vec<String> = inbox
        .records()
        .into_iter()
        .map(|r| r.fields["number"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(numbers, ["T-1", "T-2"]);
}

#[test]
fn only_what_the_filters_pass_is_delivered_and_from_now_skips_history() {
    let app = memory_app();
    let mut old = Tenancy::grant("old".into(), 1);
    app.save(&mut old).expect("save");
    let (inbox, url) = receiver();
    let replicator = replicator(&app);
    subscribe(
        &replicator,
        &inbox,
        SubscriptionRequest::new("changes-only", &url, [filter("tenancy.~")]),
    );
    let mut new = Tenancy::grant("new".into(), 1);
    new.set_rent(2);
    old.set_rent(3);
    app.save(&mut new).expect("save");
    let saved = app.save(&mut old).expect("save");
    replicator
        .wait("changes-only", saved[0].notification_id, WAIT)
        .expect("delivered");
    let records: Vec<_> = inbox.records();
    let got: Vec<(String, u64)> = records
        .iter()
        .map(|r| {
            (
                r.fields["number"].as_str().unwrap_or_default().to_owned(),
                r.version,
            )
        })
        .collect();
    // The old tenancy's creation came before the subscription; creations
    // are filtered out; its change, loaded from the store, is delivered.
    assert_eq!(got, [("new".to_owned(), 2), ("old".to_owned(), 2)]);
    assert!(
        records
            .iter()
            .all(|r| r.history_type == HistoryType::Changed)
    );
}

#[test]
fn failures_are_retried_then_park_the_subscription_until_resumed() {
    let app = memory_app();
    let (inbox, url) = receiver();
    let replicator = replicator(&app);
    subscribe(
        &replicator,
        &inbox,
        SubscriptionRequest::new("agency", &url, [filter("tenancy")]),
    );
    inbox.answer(503);
    let saved = app
        .save(&mut Tenancy::grant("T-1".into(), 1))
        .expect("save");
    let parked = replicator.wait("agency", saved[0].notification_id, WAIT);
    assert!(parked.is_err());
    let status = replicator.status("agency").expect("status").expect("there");
    assert_eq!(status.status, Status::Parked);
    assert_eq!(status.position, 0);
    assert_eq!(status.failed, 3, "max_failures tries");
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("503"),
        "{status:?}"
    );

    inbox.answer(0);
    replicator.resume("agency").expect("resume");
    replicator
        .wait("agency", saved[0].notification_id, WAIT)
        .expect("delivered after resuming");
    assert_eq!(inbox.batches().len(), 1);
}

#[test]
fn a_refusal_that_retrying_cannot_mend_parks_at_once() {
    let app = memory_app();
    let (inbox, url) = receiver();
    let replicator = replicator(&app);
    replicator
        .subscribe(
            SubscriptionRequest::new("agency", &url, [filter("tenancy")])
                .with_secret("not-the-receivers-secret"),
        )
        .expect("subscribe");
    inbox.set_secret("the-receivers-own-secret");
    let saved = app
        .save(&mut Tenancy::grant("T-1".into(), 1))
        .expect("save");
    assert!(
        replicator
            .wait("agency", saved[0].notification_id, WAIT)
            .is_err()
    );
    let status = replicator.status("agency").expect("status").expect("there");
    assert_eq!((status.status, status.failed), (Status::Parked, 1));
    assert_eq!(inbox.forged(), 1);
}

#[test]
fn a_slow_receiver_is_a_timeout_and_is_tried_again() {
    let app = memory_app();
    let (inbox, url) = receiver();
    let replicator = Replicator::builder(Arc::clone(&app))
        .replicate::<Tenancy>()
        .delivery(
            quick()
                .timeout(Duration::from_millis(200))
                .max_failures(100),
        )
        .start()
        .expect("replicator");
    subscribe(
        &replicator,
        &inbox,
        SubscriptionRequest::new("agency", &url, [filter("tenancy")]),
    );
    inbox.delay(Duration::from_millis(600));
    let saved = app
        .save(&mut Tenancy::grant("T-1".into(), 1))
        .expect("save");
    std::thread::sleep(Duration::from_millis(900));
    inbox.delay(Duration::ZERO);
    replicator
        .wait("agency", saved[0].notification_id, WAIT)
        .expect("delivered once the receiver is quick again");
    let status = replicator.status("agency").expect("status").expect("there");
    assert!(status.failed >= 1, "{status:?}");
    // A timed-out POST may still have been received: the receiver skips
    // such copies by version.
    assert!(!inbox.batches().is_empty());
}

/// A request to the API: status and JSON body.
fn call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let request = request
        .header("content-type", "application/json")
        .body(body.unwrap_or_default().to_owned())
        .expect("request");
    let mut response = agent.run(request).expect("answer");
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or_default())
}

#[test]
fn the_subscriptions_api_refuses_bad_requests_and_stores_nothing_for_them() {
    let app = memory_app();
    let replicator = Replicator::builder(Arc::clone(&app))
        .replicate::<Tenancy>()
        .token("letting-agent", ["tenancy"])
        .token("flat-agent", ["flat"])
        .start()
        .expect("replicator");
    let base = http_support::serve(replicator.router());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{base}/api/v1/subscriptions");
    let good =
        r#"{"name": "agency", "callback_url": "http://127.0.0.1:9/cb", "filters": ["tenancy"]}"#;
    let refused = [
        (None, good.to_owned(), 401),
        (Some("wrong-token"), good.to_owned(), 401),
        (Some("flat-agent"), good.to_owned(), 403),
        (Some("letting-agent"), "not json".to_owned(), 400),
        (
            Some("letting-agent"),
            r#"{"name": "agency"}"#.to_owned(),
            400,
        ),
        (
            Some("letting-agent"),
            good.replace(r#""tenancy""#, r#""castle""#),
            400,
        ),
        (
            Some("letting-agent"),
            good.replace("http://127.0.0.1:9/cb", "ftp://host/cb"),
            400,
        ),
        (
            Some("letting-agent"),
            good.replace("http://127.0.0.1:9/cb", "http:///cb"),
            400,
        ),
        (
            Some("letting-agent"),
            good.replace("agency", "two words"),
            400,
        ),
        (
            Some("letting-agent"),
            good.replace(r#""tenancy""#, r#""tenancy.?""#),
            400,
        ),
        (
            Some("letting-agent"),
            good.replace("}", r#", "extra": 1}"#),
            400,
        ),
        (
            Some("letting-agent"),
            format!("{{\"name\": \"{}\"}}", "x".repeat(70_000)),
            413,
        ),
    ];
    for (token, body, expected) in refused {
        let (status, answer) = call(&agent, "POST", &url, token, Some(&body));
        assert_eq!(status, expected, "{token:?} {body:.80}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{answer}"
        );
    }
    assert!(replicator.subscriptions().expect("list").is_empty());

    let (status, created) = call(&agent, "POST", &url, Some("letting-agent"), Some(good));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["secret"].as_str().map(str::len), Some(64));
    let (status, again) = call(&agent, "POST", &url, Some("letting-agent"), Some(good));
    assert_eq!(status, 409, "{again}");

    let (status, list) = call(&agent, "GET", &url, Some("letting-agent"), None);
    assert_eq!((status, list["count"].as_u64()), (200, Some(1)));
    assert!(list["results"][0].get("secret").is_none(), "{list}");
    let (status, _) = call(&agent, "GET", &url, None, None);
    assert_eq!(status, 401);
    let (status, one) = call(
        &agent,
        "GET",
        &format!("{url}/agency"),
        Some("letting-agent"),
        None,
    );
    assert_eq!((status, one["filters"][0].as_str()), (200, Some("tenancy")));
    let (status, state) = call(
        &agent,
        "GET",
        &format!("{url}/agency/status"),
        Some("letting-agent"),
        None,
    );
    assert_eq!(
        (status, state["status"].as_str()),
        (200, Some("active")),
        "{state}"
    );
    let (status, _) = call(
        &agent,
        "DELETE",
        &format!("{url}/agency"),
        Some("flat-agent"),
        None,
    );
    assert_eq!(status, 403, "a token for other types may not delete it");
    let (status, _) = call(
        &agent,
        "DELETE",
        &format!("{url}/agency"),
        Some("letting-agent"),
        None,
    );
    assert_eq!(status, 204);
    let (status, gone) = call(
        &agent,
        "GET",
        &format!("{url}/agency"),
        Some("letting-agent"),
        None,
    );
    assert_eq!(status, 404, "{gone}");
    assert!(replicator.subscriptions().expect("list").is_empty());
}
