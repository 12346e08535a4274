//! Replication under faults: the example's master and replica as two
//! processes with two SQLite databases, 10,000 changes (creations, changes,
//! deletions) of 500 contracts saved into the master's database while
//!
//! - the master's delivery is killed with SIGKILL at random moments and
//!   started again,
//! - the replica (the receiver) is killed and stays down for a while,
//! - a proxy between them answers 500 at random (before or after passing
//!   the batch on), answers slower than the master waits, passes batches on
//!   twice, and holds batches back to pass them on after later ones.
//!
//! At the end the replica's copy of each contract equals the master's
//! (version, fields, deleted or not), and its history shows every entity's
//! changes applied in increasing versions: none applied twice or out of
//! order.
//!
//! `REPLICATION_FAULT_CHANGES` and `REPLICATION_FAULT_ENTITIES` size the run
//! (10,000 and 500); `REPLICATION_FAULT_SEED` repeats one.

mod http_support;
mod replication_support;

#[path = "../../examples/contracts/mod.rs"]
mod contracts;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use contracts::{Contract, ContractCopy};
use es_core::Uuid;
use es_core::interface::replication::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use es_core::interface::replication::{Reference, Replica};
use es_core::persistence::SqliteDatabase;
use es_core::prelude::*;
use replication_support::{Service, free_port};

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A small generator of the run's choices, repeatable from its seed.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// A delivery the proxy received, to pass on.
#[derive(Clone)]
struct Delivery {
    headers: Vec<(String, String)>,
    body: Bytes,
}

/// What the proxy did, and whether it still misbehaves.
struct Proxy {
    upstream: String,
    agent: ureq::Agent,
    faulty: AtomicBool,
    dice: Mutex<Dice>,
    held: Mutex<VecDeque<Delivery>>,
    failed_before: AtomicU64,
    failed_after: AtomicU64,
    slow: AtomicU64,
    doubled: AtomicU64,
    reordered: AtomicU64,
}

impl Proxy {
    /// Passes `delivery` on; the replica's status, or 502 if it is down.
    fn pass_on(&self, delivery: &Delivery) -> u16 {
        let mut request = self.agent.post(&self.upstream);
        for (name, value) in &delivery.headers {
            request = request.header(name, value);
        }
        match request.send(&delivery.body[..]) {
            Ok(response) => response.status().as_u16(),
            Err(_) => 502,
        }
    }

    /// Passes on what was held back, in a thread, trying until the replica
    /// takes it (the proxy answered 200 for it: it must not be lost).
    fn release_held(self: &Arc<Self>) {
        let held: Vec<Delivery> = self.held.lock().expect("held").drain(..).collect();
        for delivery in held {
            let proxy = Arc::clone(self);
            std::thread::spawn(move || {
                while !(200..300).contains(&proxy.pass_on(&delivery)) {
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
    }
}

async fn proxy(State(proxy): State<Arc<Proxy>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let delivery = Delivery {
        headers: [TIMESTAMP_HEADER, SIGNATURE_HEADER, "content-type"]
            .iter()
            .filter_map(|name| {
                let value = headers.get(*name)?.to_str().ok()?;
                Some(((*name).to_owned(), value.to_owned()))
            })
            .collect(),
        body,
    };
    let status = tokio::task::spawn_blocking(move || {
        let fault = if proxy.faulty.load(Ordering::SeqCst) {
            proxy.dice.lock().expect("dice").below(100)
        } else {
            100
        };
        let status = match fault {
            // Refused before the replica sees it.
            0..=7 => {
                proxy.failed_before.fetch_add(1, Ordering::SeqCst);
                500
            }
            // Applied, but the master hears a failure and sends it again.
            8..=12 => {
                proxy.pass_on(&delivery);
                proxy.failed_after.fetch_add(1, Ordering::SeqCst);
                500
            }
            // Slower than the master waits; passed on late all the same.
            13..=17 => {
                proxy.slow.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(900));
                proxy.pass_on(&delivery)
            }
            // Passed on twice.
            18..=22 => {
                proxy.doubled.fetch_add(1, Ordering::SeqCst);
                proxy.pass_on(&delivery);
                proxy.pass_on(&delivery)
            }
            // Held back, acknowledged, and passed on after the next one.
            23..=29 => {
                proxy.reordered.fetch_add(1, Ordering::SeqCst);
                proxy.held.lock().expect("held").push_back(delivery);
                return 200;
            }
            _ => proxy.pass_on(&delivery),
        };
        proxy.release_held();
        status
    })
    .await
    .unwrap_or(500);
    StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY)
}

/// Saves `changes` changes of `entities` contracts into the master's
/// database, a few at a time, as another process of the master would.
/// The ids of the contracts made.
fn write_changes(app: &Application, dice: &mut Dice, entities: usize, changes: u64) -> Vec<Uuid> {
    let mut contracts: Vec<Option<Contract>> = (0..entities).map(|_| None).collect();
    let mut made = 0;
    while made < changes {
        let mut touched = Vec::new();
        for _ in 0..dice.below(20) + 1 {
            if made == changes {
                break;
            }
            let slot = usize::try_from(dice.below(entities as u64)).expect("index");
            if touched.contains(&slot) {
                continue;
            }
            let contract = &mut contracts[slot];
            match contract {
                None => {
                    let customer = Reference::new("customer", Uuid::new_v4());
                    *contract = Some(Contract::sign(
                        format!("N{slot}"),
                        customer,
                        dice.below(1000),
                    ));
                }
                Some(contract) if contract.terminated => continue,
                Some(contract) => match dice.below(100) {
                    0..=1 => contract.terminate(),
                    2..=40 => contract.amend(dice.below(100_000)),
                    41..=70 => contract.renumber(format!("N{slot}/{}", dice.below(1000))),
                    _ => contract.note(format!("note {}", dice.below(1000))),
                },
            }
            touched.push(slot);
            made += 1;
        }
        let mut batch: Vec<&mut Contract> = contracts
            .iter_mut()
            .enumerate()
            .filter(|(slot, _)| touched.contains(slot))
            .filter_map(|(_, contract)| contract.as_mut())
            .collect();
        app.save(&mut batch[..])
            .expect("a save into the master's database");
        std::thread::sleep(Duration::from_millis(dice.below(12)));
    }
    contracts
        .iter()
        .flatten()
        .map(|contract| contract.id().to_string().parse().expect("a uuid"))
        .collect()
}

/// Whether the replica's copy of each of the master's contracts equals it;
/// the first difference otherwise.
fn compare(master: &Application, replica: &Replica, ids: &[Uuid]) -> Result<(), String> {
    for id in ids {
        let contract: Contract = master.repository().get(*id).map_err(|e| e.to_string())?;
        let uid = id.to_string();
        let held = replica
            .version::<ContractCopy>(&uid)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{uid}: not at the replica"))?;
        if held.version != contract.version() || held.deleted != contract.terminated {
            return Err(format!(
                "{uid}: the master has version {} (terminated: {}), the replica {held:?}",
                contract.version(),
                contract.terminated
            ));
        }
        if !held.deleted {
            let copy = replica
                .get::<ContractCopy>(&uid)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("{uid}: live but not readable"))?;
            let expected = ContractCopy {
                number: contract.number.clone(),
                customer: contract.customer.clone(),
                amount: contract.amount,
            };
            if copy.value != expected {
                return Err(format!(
                    "{uid}: {:?} at the replica, {expected:?} at the master",
                    copy.value
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn the_replica_ends_equal_to_the_master_through_kills_failures_duplicates_and_reordering() {
    let changes = setting("REPLICATION_FAULT_CHANGES", 10_000);
    let entities = usize::try_from(setting("REPLICATION_FAULT_ENTITIES", 500)).expect("entities");
    let seed = setting(
        "REPLICATION_FAULT_SEED",
        u64::from(std::process::id()) * 0x9e37_79b9 + 1,
    );
    eprintln!("REPLICATION_FAULT_SEED={seed}");
    let mut dice = Dice(seed.max(1));

    let dir = tempfile::tempdir().expect("dir");
    let master_db = dir.path().join("contracts.sqlite3");
    let replica_db = dir.path().join("replica.sqlite3");
    let (master_port, replica_port) = (free_port(), free_port());

    let proxy = Arc::new(Proxy {
        upstream: format!("http://127.0.0.1:{replica_port}/api/v1/callback"),
        agent: ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into(),
        faulty: AtomicBool::new(true),
        dice: Mutex::new(Dice(seed.rotate_left(17) | 1)),
        held: Mutex::new(VecDeque::new()),
        failed_before: AtomicU64::new(0),
        failed_after: AtomicU64::new(0),
        slow: AtomicU64::new(0),
        doubled: AtomicU64::new(0),
        reordered: AtomicU64::new(0),
    });
    let proxy_url = http_support::serve(
        axum::Router::new()
            .route("/cb", axum::routing::post(self::proxy))
            .with_state(Arc::clone(&proxy)),
    );

    let mut master = Service::new(
        env!("CARGO_BIN_EXE_contracts-master"),
        master_port,
        &[
            ("PERSISTENCE_MODULE", "sqlite".into()),
            ("SQLITE_DBNAME", master_db.display().to_string()),
            ("CONTRACTS_ADDR", format!("127.0.0.1:{master_port}")),
            ("REPLICATION_BATCH_SIZE", "50".into()),
            ("REPLICATION_TIMEOUT_MS", "400".into()),
            ("REPLICATION_MAX_FAILURES", "1000000".into()),
            ("REPLICATION_MAX_BACKOFF_MS", "200".into()),
        ],
    );
    let mut replica = Service::new(
        env!("CARGO_BIN_EXE_contracts-replica"),
        replica_port,
        &[
            ("REPLICA_ADDR", format!("127.0.0.1:{replica_port}")),
            ("REPLICA_DBNAME", replica_db.display().to_string()),
            ("MASTER_URL", format!("http://127.0.0.1:{master_port}")),
            ("REPLICA_CALLBACK_URL", format!("{proxy_url}/cb")),
            ("SUBSCRIPTION_NAME", "faults".into()),
        ],
    );
    master.start();
    replica.start();
    // The replica subscribes itself as it starts; the subscription exists
    // before the first change.
    let status_url = format!("http://127.0.0.1:{master_port}/api/v1/subscriptions/faults/status");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent
        .get(&status_url)
        .header("Authorization", "Bearer dev-token")
        .call()
        .map_or(true, |response| response.status() != 200)
    {
        assert!(Instant::now() < deadline, "the replica did not subscribe");
        std::thread::sleep(Duration::from_millis(20));
    }

    let app = Application::builder()
        .name("contracts")
        .sqlite(&master_db)
        .build()
        .expect("the master's database, from the writer's process");
    let writing = AtomicBool::new(true);
    let (mut master_kills, mut replica_stops) = (0, 0);
    let ids = std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let mut dice = Dice(seed.rotate_left(31) | 1);
            let ids = write_changes(&app, &mut dice, entities, changes);
            writing.store(false, Ordering::SeqCst);
            ids
        });
        while writing.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200 + dice.below(800)));
            if dice.chance(70) {
                master.kill();
                master_kills += 1;
                std::thread::sleep(Duration::from_millis(dice.below(300)));
                master.start();
            } else {
                replica.kill();
                replica_stops += 1;
                std::thread::sleep(Duration::from_millis(300 + dice.below(1200)));
                replica.start();
            }
        }
        writer.join().expect("the writer")
    });
    // One more kill after the last change, then the faults stop.
    master.kill();
    master.start();
    proxy.faulty.store(false, Ordering::SeqCst);
    proxy.release_held();

    let replica_store = Replica::sqlite(
        SqliteDatabase::open(&replica_db, Duration::from_secs(5)).expect("the replica's database"),
    )
    .expect("the replica's tables")
    .with_history()
    .expect("its history")
    .replicate::<ContractCopy>();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = compare(&app, &replica_store, &ids);
    while last.is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        last = compare(&app, &replica_store, &ids);
    }
    let counts = format!(
        "{} changes of {} contracts; master killed {master_kills} times, replica stopped \
         {replica_stops} times; proxy: {} refused, {} failed after applying, {} slow, {} doubled, \
         {} reordered",
        changes,
        ids.len(),
        proxy.failed_before.load(Ordering::SeqCst),
        proxy.failed_after.load(Ordering::SeqCst),
        proxy.slow.load(Ordering::SeqCst),
        proxy.doubled.load(Ordering::SeqCst),
        proxy.reordered.load(Ordering::SeqCst),
    );
    eprintln!("{counts}");
    if let Err(difference) = last {
        panic!("the replica differs from the master after 180 s: {difference} ({counts})");
    }

    for id in &ids {
        let history = replica_store
            .history::<ContractCopy>(&id.to_string())
            .expect("history");
        let versions: Vec<u64> = history.iter().map(|record| record.version).collect();
        assert!(
            versions.windows(2).all(|pair| pair[0] < pair[1]),
            "{id}: applied in the order {versions:?}"
        );
    }
    assert!(master_kills >= 2 && replica_stops >= 1, "{counts}");
    for (fault, count) in [
        ("refused", &proxy.failed_before),
        ("failed after", &proxy.failed_after),
        ("slow", &proxy.slow),
        ("doubled", &proxy.doubled),
        ("reordered", &proxy.reordered),
    ] {
        assert!(
            count.load(Ordering::SeqCst) > 0,
            "no {fault} delivery: {counts}"
        );
    }
}
