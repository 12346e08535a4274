//! The bank example's JSON API driven over real HTTP: 200 requests at a time
//! against ten accounts (so that many of them change one account at once),
//! then every balance checked against what the answers said was done; and
//! each kind of refusal answered with its status and a JSON error.

// The example is a program: its router is reached by compiling its file here.
#[allow(dead_code)]
#[path = "../../examples/bank_api.rs"]
mod bank_api;
mod http_support;
mod pg_support;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use es_core::AsyncApplication;
use es_core::prelude::*;
use serde_json::{Value, json};

use pg_support::{DropTables, server, unique_prefix};

/// Requests in flight at once.
const CLIENTS: usize = 200;
/// Requests each client sends, one after another.
const REQUESTS_PER_CLIENT: usize = 5;
const ACCOUNTS: usize = 10;
const OPENING_BALANCE: u64 = 1_000;

/// The bank's API over `app`, served on a free port of loopback; the base URL.
fn serve(app: Application) -> String {
    http_support::serve(bank_api::router(AsyncApplication::new(app)))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into()
}

/// Sends `body` (or nothing) and answers the status and the parsed body.
fn call(agent: &ureq::Agent, method: &str, url: &str, body: Option<&str>) -> (u16, Value) {
    let mut response = match (method, body) {
        ("GET", _) => agent.get(url).call(),
        (_, Some(body)) => agent
            .post(url)
            .header("content-type", "application/json")
            .send(body),
        (_, None) => agent.post(url).send_empty(),
    }
    .unwrap_or_else(|error| panic!("{method} {url}: {error}"));
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .read_to_string()
        .expect("a readable body");
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{method} {url} answered {status} {text:?}: {error}"));
    (status, value)
}

fn open_account(agent: &ureq::Agent, base: &str, owner: &str) -> String {
    let body = json!({ "owner": owner, "opening_balance": OPENING_BALANCE }).to_string();
    let (status, account) = call(agent, "POST", &format!("{base}/accounts"), Some(&body));
    assert_eq!(status, 201, "{account}");
    account["id"].as_str().expect("an id").to_owned()
}

/// What one client asked for, and whether it was done.
enum Done {
    Deposit(usize, u64),
    Withdrawal(usize, u64),
    Transfer(usize, usize, u64),
    Refused,
}

/// Client `client`'s `n`th request: a deposit, a withdrawal (large enough
/// to be refused now and then) or a transfer, on accounts picked by a
/// simple generator so that a run can be repeated.
fn request(agent: &ureq::Agent, base: &str, ids: &[String], client: usize, n: usize) -> Done {
    let seed = (client * 7919 + n * 104_729) as u64;
    let account = (seed % ACCOUNTS as u64) as usize;
    let amount = 1 + seed % 400;
    let (kind, url, body) = match seed % 3 {
        0 => (
            0,
            format!("{base}/accounts/{}/deposits", ids[account]),
            json!({ "amount": amount }),
        ),
        1 => (
            1,
            format!("{base}/accounts/{}/withdrawals", ids[account]),
            json!({ "amount": amount }),
        ),
        _ => {
            let other = (account + 1 + (seed / 3) as usize % (ACCOUNTS - 1)) % ACCOUNTS;
            let body = json!({ "from": ids[account], "to": ids[other], "amount": amount });
            (2, format!("{base}/transfers"), body)
        }
    };
    let (status, answer) = call(agent, "POST", &url, Some(&body.to_string()));
    match status {
        200 => match kind {
            0 => Done::Deposit(account, amount),
            1 => Done::Withdrawal(account, amount),
            _ => {
                let to = ids
                    .iter()
                    .position(|id| answer["to"]["id"] == id.as_str())
                    .expect("the transfer's target");
                Done::Transfer(account, to, amount)
            }
        },
        409 => {
            assert!(
                answer["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("insufficient funds")),
                "{answer}"
            );
            Done::Refused
        }
        _ => panic!("{url} answered {status}: {answer}"),
    }
}

fn every_balance_holds_under_200_concurrent_requests(app: Application) {
    let base = serve(app);
    let agent = agent();
    let ids: Arc<Vec<String>> = Arc::new(
        (0..ACCOUNTS)
            .map(|i| open_account(&agent, &base, &format!("owner {i}")))
            .collect(),
    );
    let start = Arc::new(Barrier::new(CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (base, ids, start) = (base.clone(), Arc::clone(&ids), Arc::clone(&start));
            std::thread::spawn(move || {
                let agent = self::agent();
                start.wait();
                (0..REQUESTS_PER_CLIENT)
                    .map(|n| request(&agent, &base, &ids, client, n))
                    .collect::<Vec<Done>>()
            })
        })
        .collect();
    let mut expected = [OPENING_BALANCE as i64; ACCOUNTS];
    // Events each account gains beside its opening: one per change done.
    let mut changes = [0usize; ACCOUNTS];
    let mut refused = 0;
    for client in clients {
        for done in client.join().expect("a client") {
            match done {
                Done::Deposit(a, amount) => {
                    expected[a] += amount as i64;
                    changes[a] += 1;
                }
                Done::Withdrawal(a, amount) => {
                    expected[a] -= amount as i64;
                    changes[a] += 1;
                }
                Done::Transfer(from, to, amount) => {
                    expected[from] -= amount as i64;
                    expected[to] += amount as i64;
                    changes[from] += 1;
                    changes[to] += 1;
                }
                Done::Refused => refused += 1,
            }
        }
    }
    assert!(
        refused > 0,
        "no request was refused: the run tests no overdraft"
    );
    for (i, id) in ids.iter().enumerate() {
        let (status, account) = call(&agent, "GET", &format!("{base}/accounts/{id}"), None);
        assert_eq!(status, 200, "{account}");
        assert_eq!(account["balance"], expected[i], "account {i}: {account}");
        let (status, history) = call(
            &agent,
            "GET",
            &format!("{base}/accounts/{id}/history"),
            None,
        );
        assert_eq!(status, 200);
        let versions: Vec<u64> = history
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(|item| item["version"].as_u64())
            .collect();
        assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
        assert_eq!(account["version"], versions.len() as u64);
        assert_eq!(
            versions.len() - 1,
            changes[i],
            "account {i}: an event for each change the answers said was done, no more"
        );
    }
}

#[test]
fn every_balance_holds_under_200_concurrent_requests_on_sqlite() {
    let dir = tempfile::tempdir().expect("a directory");
    let app = Application::builder()
        .name("bank")
        .sqlite(dir.path().join("bank.sqlite3"))
        .build()
        .expect("the store opens");
    every_balance_holds_under_200_concurrent_requests(app);
}

#[test]
fn every_balance_holds_under_200_concurrent_requests_on_postgres() {
    let Some(mut config) = server("the bank API on PostgreSQL") else {
        return;
    };
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    config.table_prefix = Some(prefix.clone());
    let app = Application::builder()
        .name("bank")
        .postgres(config)
        .build()
        .expect("the store opens");
    every_balance_holds_under_200_concurrent_requests(app);
}

#[test]
fn each_refusal_is_answered_with_its_status_and_a_json_error() {
    let app = Application::builder().in_memory().build().expect("an app");
    let base = &serve(app);
    let agent = agent();
    let alice = open_account(&agent, base, "Alice");
    let bob = open_account(&agent, base, "Bob");
    let post = |path: &str, body: &str| call(&agent, "POST", &format!("{base}{path}"), Some(body));
    let transfer = |from: &str, to: &str, amount: u64| {
        json!({ "from": from, "to": to, "amount": amount }).to_string()
    };
    let cases: [(&str, String, u16, String); 8] = [
        (
            "an overdraft",
            format!("/accounts/{alice}/withdrawals"),
            409,
            r#"{"amount": 5000}"#.into(),
        ),
        (
            "a transfer that would overdraw",
            "/transfers".into(),
            409,
            transfer(&alice, &bob, 5000),
        ),
        (
            "a zero amount",
            format!("/accounts/{alice}/deposits"),
            422,
            r#"{"amount": 0}"#.into(),
        ),
        (
            "a transfer to the same account",
            "/transfers".into(),
            422,
            transfer(&alice, &alice, 5),
        ),
        (
            "an unknown account",
            format!("/accounts/{}/deposits", Uuid::new_v4()),
            404,
            r#"{"amount": 5}"#.into(),
        ),
        (
            "an id that is not a UUID",
            "/accounts/alice/deposits".into(),
            400,
            r#"{"amount": 5}"#.into(),
        ),
        (
            "a body that is not JSON",
            format!("/accounts/{alice}/deposits"),
            400,
            "{".into(),
        ),
        (
            "a negative amount",
            format!("/accounts/{alice}/deposits"),
            400,
            r#"{"amount": -5}"#.into(),
        ),
    ];
    for (what, path, expected, body) in cases {
        let (status, answer) = post(&path, &body);
        assert_eq!(status, expected, "{what}: {answer}");
        assert!(answer["error"].is_string(), "{what}: {answer}");
    }
    let balances: HashMap<&str, Value> = [("alice", &alice), ("bob", &bob)]
        .into_iter()
        .map(|(name, id)| {
            (
                name,
                call(&agent, "GET", &format!("{base}/accounts/{id}"), None).1["balance"].clone(),
            )
        })
        .collect();
    assert_eq!(balances["alice"], OPENING_BALANCE);
    assert_eq!(balances["bob"], OPENING_BALANCE);
}
