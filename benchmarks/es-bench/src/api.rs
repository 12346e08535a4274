//! A1, the bank's JSON API (examples/bank_api.rs) on an `AsyncApplication`:
//! deposits to accounts picked at random, sent over HTTP by 1, 16 and 200
//! clients at once, beside the same command (load, deposit, save) run by as
//! many threads straight on the synchronous application. A0: the cost of
//! one hop to tokio's blocking pool and back, the price of never blocking
//! the executor (see es-core's `AsyncApplication`).

// The example is a program: its router is reached by compiling its file here.
#[allow(dead_code)]
#[path = "../../../examples/bank_api.rs"]
mod bank_api;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use es_core::prelude::*;
use es_core::{AsyncApplication, Uuid};
use rand::Rng as _;

use crate::measure::{Record, rate};
use crate::ours::{Backend, named_app};
use crate::sizes::Sizes;

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// Accounts the deposits are spread over: enough that two of 200 clients
/// seldom pick the same one.
const ACCOUNTS: usize = 1_000;

/// Measurements made so far, for the order of the next.
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// Clients (or threads) at once.
pub const CLIENTS: [usize; 3] = [1, 16, 200];

/// A1 over HTTP and on the synchronous application, and A0, on `backend`.
pub fn run(backend: &Backend, sizes: &Sizes) -> Result<Vec<Record>> {
    let (name, durability) = (backend.name(), backend.durability());
    let mut records = Vec::new();
    for _ in 0..sizes.runs {
        let dir = tempfile::tempdir()?;
        if let Backend::Postgres(url) = backend {
            crate::raw::reset_schema(url, "es_bench_api")?;
        }
        let app = Arc::new(named_app(backend, dir.path(), "bank")?);
        let ids = open_accounts(&app)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let base = serve(&runtime, Arc::clone(&app))?;
        for clients in CLIENTS {
            eprintln!("  api on {name}: {clients} clients");
            let workload = format!("A1-{clients}");
            // Which goes first alternates, so that what changes over a run
            // (the WAL's growth and checkpoints, the disk's cache) falls on
            // both sides of the ratio rather than always on the second.
            let http_first = RUNS.fetch_add(1, Ordering::Relaxed).is_multiple_of(2);
            let mut http = Record::new("es-rs", name, &workload, "requests/s", durability);
            http.note = Some(format!(
                "deposits over HTTP (bank_api, AsyncApplication), {clients} clients at once"
            ));
            let mut direct = Record::new("es-rs sync", name, &workload, "requests/s", durability);
            direct.note = Some(format!(
                "the same deposits on the synchronous Application, {clients} threads, no HTTP"
            ));
            let order = if http_first {
                [true, false]
            } else {
                [false, true]
            };
            for over_http_side in order {
                let (record, (elapsed, latencies)) = if over_http_side {
                    (
                        &mut http,
                        over_http(&base, &ids, clients, sizes.api_requests)?,
                    )
                } else {
                    (
                        &mut direct,
                        on_threads(&app, &ids, clients, sizes.api_requests)?,
                    )
                };
                record.runs.push(rate(latencies.len(), elapsed));
                record.latencies(latencies);
            }
            records.push(http);
            records.push(direct);
        }
        let mut hop = Record::new("es-rs", name, "A0", "hops/s", "n/a");
        hop.note =
            Some("AsyncApplication::call with no work: to the blocking pool and back".into());
        hop.runs
            .push(runtime.block_on(hops(&app, sizes.api_requests * 10))?);
        records.push(hop);
    }
    Ok(merge(records))
}

/// Runs of one system and workload made one record.
fn merge(records: Vec<Record>) -> Vec<Record> {
    let mut merged: Vec<Record> = Vec::new();
    for record in records {
        match merged
            .iter_mut()
            .find(|r| (&r.system, &r.workload) == (&record.system, &record.workload))
        {
            Some(same) => same.merge(record),
            None => merged.push(record),
        }
    }
    merged
}

fn open_accounts(app: &Application) -> Result<Vec<Uuid>> {
    let mut ids = Vec::with_capacity(ACCOUNTS);
    for chunk in 0..ACCOUNTS / 100 {
        let mut accounts: Vec<bank_api::account::Account> = (0..100)
            .map(|i| bank_api::account::Account::open(format!("owner {chunk}-{i}"), 1_000))
            .collect();
        app.save(&mut accounts)?;
        ids.extend(accounts.iter().filter_map(|a| a.id().as_uuid()));
    }
    Ok(ids)
}

/// The bank's API on a free port of loopback, on `runtime`.
fn serve(runtime: &tokio::runtime::Runtime, app: Arc<Application>) -> Result<String> {
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = bank_api::router(AsyncApplication::from(app));
    runtime.spawn(async move { axum::serve(listener, router).await });
    Ok(base)
}

/// `total` deposits shared by `clients` threads, each with its own
/// connection: the time for all, and each request's.
fn over_http(
    base: &str,
    ids: &[Uuid],
    clients: usize,
    total: usize,
) -> Result<(Duration, Vec<Duration>)> {
    at_once(
        clients,
        total,
        |_| {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .build()
                .into();
            move |id: Uuid| -> Result<()> {
                let response = agent
                    .post(&format!("{base}/accounts/{id}/deposits"))
                    .header("content-type", "application/json")
                    .send(r#"{"amount": 1}"#)?;
                match response.status().as_u16() {
                    200 => Ok(()),
                    status => Err(format!("a deposit answered {status}").into()),
                }
            }
        },
        ids,
    )
}

/// The same deposits run by `clients` threads on the application itself,
/// again on a conflict (two threads that picked one account).
fn on_threads(
    app: &Application,
    ids: &[Uuid],
    clients: usize,
    total: usize,
) -> Result<(Duration, Vec<Duration>)> {
    at_once(
        clients,
        total,
        |_| {
            move |id: Uuid| -> Result<()> {
                loop {
                    let mut account: bank_api::account::Account = app.repository().get(id)?;
                    account.deposit(1).map_err(|e| e.to_string())?;
                    match app.save(&mut account) {
                        Err(error) if error.is_conflict() => continue,
                        done => return done.map(drop).map_err(Into::into),
                    }
                }
            }
        },
        ids,
    )
}

/// Runs `total` requests made by `request` (one per thread, from `make`)
/// on `clients` threads started together, on accounts picked at random,
/// after one untimed request each.
fn at_once<M, R>(
    clients: usize,
    total: usize,
    make: M,
    ids: &[Uuid],
) -> Result<(Duration, Vec<Duration>)>
where
    M: Fn(usize) -> R + Sync,
    R: FnMut(Uuid) -> Result<()>,
{
    let start = Barrier::new(clients + 1);
    let per_client = total / clients;
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..clients)
            .map(|client| {
                let (start, make) = (&start, &make);
                scope.spawn(move || -> Result<Vec<Duration>> {
                    let mut request = make(client);
                    let mut rng = rand::rng();
                    let mut latencies = Vec::with_capacity(per_client);
                    // Untimed, so that connecting (200 clients at once
                    // overflow the listen queue, and a dropped SYN is sent
                    // again a second later) is not counted as a request.
                    let warm_up = request(ids[rng.random_range(0..ids.len())]);
                    start.wait();
                    warm_up?;
                    for _ in 0..per_client {
                        let id = ids[rng.random_range(0..ids.len())];
                        let began = Instant::now();
                        request(id)?;
                        latencies.push(began.elapsed());
                    }
                    Ok(latencies)
                })
            })
            .collect();
        start.wait();
        let began = Instant::now();
        let mut latencies = Vec::with_capacity(total);
        for thread in threads {
            latencies.extend(thread.join().map_err(|_| "a client panicked")??);
        }
        Ok((began.elapsed(), latencies))
    })
}

/// Hops per second: `count` calls that do nothing, one after another.
async fn hops(app: &Arc<Application>, count: usize) -> Result<f64> {
    let app = AsyncApplication::from(Arc::clone(app));
    let began = Instant::now();
    for _ in 0..count {
        app.call(|_| Ok::<_, es_core::Error>(())).await?;
    }
    Ok(rate(count, began.elapsed()))
}
