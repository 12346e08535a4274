//! The workloads of benchmarks/README.md, as a cqrs-es user would write them: commands go
//! through `CqrsFramework::execute`, which loads the aggregate itself (replaying its
//! events, or from a snapshot), handles the command and commits the events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use cqrs_es::{AggregateContext, AggregateError, CqrsFramework, EventStore};

use crate::account::{self, AccountEvent, BankAccount};
use crate::zipf::{SplitMix64, Zipf};

pub type Framework<ES> = CqrsFramework<BankAccount, ES>;

/// The sizes of every workload; `full()` is the README's, `quick()` a smoke run.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    pub accounts: usize,
    pub w1_commands: usize,
    pub w2_commands: usize,
    pub w3_events: usize,
    pub w3_batch: usize,
    pub w3_loads: usize,
    pub snapshot_every: usize,
    pub w5_saves: usize,
    pub zipf_accounts: usize,
    pub zipf_threads: usize,
    pub zipf_commands: usize,
}

impl Sizes {
    pub fn full() -> Self {
        Self {
            accounts: 2_000,
            w1_commands: 9,
            w2_commands: 5,
            w3_events: 10_000,
            w3_batch: 100,
            w3_loads: 5,
            snapshot_every: 100,
            w5_saves: 4_000,
            zipf_accounts: 100,
            zipf_threads: 16,
            zipf_commands: 250,
        }
    }

    pub fn quick() -> Self {
        Self {
            accounts: 100,
            w3_events: 1_000,
            w5_saves: 400,
            zipf_commands: 25,
            ..Self::full()
        }
    }
}

pub fn account_id(i: usize) -> String {
    format!("account-{i}")
}

/// W1: each account opened, then `w1_commands` deposits, one `execute` (one commit of
/// one event) each. Returns events/s.
pub async fn w1<ES: EventStore<BankAccount>>(cqrs: &Framework<ES>, sizes: &Sizes) -> Result<f64> {
    let start = Instant::now();
    for i in 0..sizes.accounts {
        let id = account_id(i);
        cqrs.execute(&id, account::open(i)).await?;
        for k in 0..sizes.w1_commands {
            cqrs.execute(&id, account::deposit(k)).await?;
        }
    }
    let elapsed = start.elapsed();
    Ok((sizes.accounts * (1 + sizes.w1_commands)) as f64 / elapsed.as_secs_f64())
}

/// W2: on W1's store, `w2_commands` more `execute`s per account, in account order; each
/// loads (replays) the account, handles the deposit and commits. Returns commands/s.
pub async fn w2<ES: EventStore<BankAccount>>(cqrs: &Framework<ES>, sizes: &Sizes) -> Result<f64> {
    let start = Instant::now();
    for i in 0..sizes.accounts {
        let id = account_id(i);
        for j in 0..sizes.w2_commands {
            cqrs.execute(&id, account::deposit(sizes.w1_commands + j))
                .await?;
        }
    }
    let elapsed = start.elapsed();
    Ok((sizes.accounts * sizes.w2_commands) as f64 / elapsed.as_secs_f64())
}

/// Checks after W1+W2 that every account holds what it should (untimed).
pub async fn check_w1_w2<ES: EventStore<BankAccount>>(store: &ES, sizes: &Sizes) -> Result<()> {
    let commands = sizes.w1_commands + sizes.w2_commands;
    for i in 0..sizes.accounts {
        let mut context = store.load_aggregate(&account_id(i)).await?;
        let balance = context.aggregate().balance;
        ensure!(
            balance == account::expected_balance(commands),
            "account {i}: balance {balance}, expected {}",
            account::expected_balance(commands)
        );
    }
    Ok(())
}

/// Fills one account with `w3_events` events (opened, then deposits) committed straight
/// through `EventStore::commit` in batches of `w3_batch`, as the README's W3 asks. Each
/// batch's context comes from `load_aggregate`, the only way the trait hands one out.
pub async fn fill_w3<ES: EventStore<BankAccount>>(
    store: &ES,
    id: &str,
    sizes: &Sizes,
) -> Result<()> {
    let mut written = 0;
    while written < sizes.w3_events {
        let context = store.load_aggregate(id).await?;
        let end = (written + sizes.w3_batch).min(sizes.w3_events);
        let events: Vec<AccountEvent> = (written..end)
            .map(|n| match n {
                0 => AccountEvent::Opened {
                    owner: "owner-w3".to_string(),
                    balance: account::OPENING_BALANCE,
                },
                n => account::deposited(n - 1),
            })
            .collect();
        store.commit(events, context, HashMap::new()).await?;
        written = end;
    }
    Ok(())
}

/// W3 (and W3-snapshots, given a snapshot store): the median time of `w3_loads` calls of
/// `EventStore::load_aggregate` on the filled account.
pub async fn w3<ES: EventStore<BankAccount>>(store: &ES, sizes: &Sizes) -> Result<Duration> {
    let id = "account-w3";
    fill_w3(store, id, sizes).await?;
    let expected = account::expected_balance(sizes.w3_events - 1);
    let mut times = Vec::with_capacity(sizes.w3_loads);
    for _ in 0..sizes.w3_loads {
        let start = Instant::now();
        let mut context = store.load_aggregate(id).await?;
        times.push(start.elapsed());
        let balance = context.aggregate().balance;
        ensure!(
            balance == expected,
            "W3: loaded balance {balance}, expected {expected}"
        );
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// Throughput and per-call latency of a concurrent workload.
pub struct Concurrent {
    pub per_second: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub conflicts: u64,
}

/// W5-N: `writers` tokio tasks on the multi-threaded runtime share `w5_saves` saves evenly;
/// each works on accounts of its own in W1's pattern (open, then up to `w1_commands`
/// deposits, one `execute` each). Latency is that of each `execute`.
pub async fn w5<ES>(cqrs: Arc<Framework<ES>>, writers: usize, sizes: &Sizes) -> Result<Concurrent>
where
    ES: EventStore<BankAccount, AC: Send> + 'static,
{
    let per_writer = sizes.w5_saves / writers;
    let pattern = 1 + sizes.w1_commands;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(writers);
    for t in 0..writers {
        let cqrs = Arc::clone(&cqrs);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_writer);
            for n in 0..per_writer {
                let (a, k) = (n / pattern, n % pattern);
                let id = format!("w5-{t}-{a}");
                let command = match k {
                    0 => account::open(a),
                    k => account::deposit(k - 1),
                };
                let began = Instant::now();
                cqrs.execute(&id, command).await?;
                latencies.push(began.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(sizes.w5_saves);
    for task in tasks {
        latencies.extend(task.await.context("a W5 writer panicked")??);
    }
    let elapsed = start.elapsed();
    let (p50_us, p99_us) = percentiles(&mut latencies);
    Ok(Concurrent {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_us,
        p99_us,
        conflicts: 0,
    })
}

/// The most times a W5-zipf command is retried before the run is called broken.
const MAX_ATTEMPTS: usize = 10_000;

pub fn zipf_id(rank: usize) -> String {
    format!("zipf-{rank}")
}

/// W5-zipf: `zipf_accounts` accounts opened (untimed), then `zipf_threads` tasks each run
/// `zipf_commands` deposits on Zipf-chosen accounts (s = 1, seeded per task). A command is
/// one `execute` (load, handle, commit); on `AggregateError::AggregateConflict` the task
/// executes it again, which reloads the account. Latency is the whole command, retries in.
pub async fn w5_zipf<ES>(cqrs: Arc<Framework<ES>>, sizes: &Sizes) -> Result<Concurrent>
where
    ES: EventStore<BankAccount, AC: Send> + 'static,
{
    for rank in 0..sizes.zipf_accounts {
        cqrs.execute(&zipf_id(rank), account::open(rank)).await?;
    }
    let zipf = Arc::new(Zipf::new(sizes.zipf_accounts, 1.0));
    let commands = sizes.zipf_commands;
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(sizes.zipf_threads);
    for t in 0..sizes.zipf_threads {
        let cqrs = Arc::clone(&cqrs);
        let zipf = Arc::clone(&zipf);
        tasks.push(tokio::spawn(async move {
            let mut rng = SplitMix64::new(0x5EED_0000 + t as u64);
            let mut latencies = Vec::with_capacity(commands);
            let mut conflicts = 0u64;
            for k in 0..commands {
                let id = zipf_id(zipf.sample(&mut rng));
                let began = Instant::now();
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    match cqrs.execute(&id, account::deposit(k)).await {
                        Ok(()) => break,
                        Err(AggregateError::AggregateConflict) if attempts < MAX_ATTEMPTS => {
                            conflicts += 1;
                        }
                        Err(e) => bail!("W5-zipf task {t}, {id}, after {attempts} attempts: {e}"),
                    }
                }
                latencies.push(began.elapsed());
            }
            anyhow::Ok((latencies, conflicts))
        }));
    }
    let mut latencies = Vec::with_capacity(sizes.zipf_threads * commands);
    let mut conflicts = 0;
    for task in tasks {
        let (task_latencies, task_conflicts) = task.await.context("a W5-zipf task panicked")??;
        latencies.extend(task_latencies);
        conflicts += task_conflicts;
    }
    let elapsed = start.elapsed();
    let (p50_us, p99_us) = percentiles(&mut latencies);
    Ok(Concurrent {
        per_second: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_us,
        p99_us,
        conflicts,
    })
}

/// How many events the W5-zipf accounts hold after the run (untimed), to see whether any
/// commit was lost.
pub async fn count_zipf_events<ES: EventStore<BankAccount>>(
    store: &ES,
    sizes: &Sizes,
) -> Result<usize> {
    let mut total = 0;
    for rank in 0..sizes.zipf_accounts {
        total += store.load_events(&zipf_id(rank)).await?.len();
    }
    Ok(total)
}

/// The p50 and p99 (nearest rank) in microseconds.
fn percentiles(latencies: &mut [Duration]) -> (f64, f64) {
    latencies.sort();
    let at = |p: f64| {
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1].as_secs_f64() * 1e6
    };
    (at(0.50), at(0.99))
}
