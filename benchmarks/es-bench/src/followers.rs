//! The followers' workloads (F1, F2 of benchmarks/README.md): a follower
//! catching up with a long leader log, and the latency from a leader's save
//! to the follower's derived event under a steady load.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use es_core::prelude::*;
use es_core::system::{MultiThreadedRunner, Policies, ProcessApplication, System};

use crate::measure::{Record, rate};
use crate::model::{BankAccount, BankAccountEvent, owner};
use crate::ours::{Backend, FOLLOWERS_SCHEMA, Result, SYSTEM, named_app};
use crate::sizes::Sizes;

/// What the follower derives: one event per leader event, naming it.
#[aggregate]
pub struct Mirror {
    source: u64,
}

#[aggregate]
impl Mirror {
    #[event("Copied")]
    pub fn copy(source: u64) -> Self {
        Mirror { source }
    }
}

/// A mirror of each account opened.
fn mirrors() -> Policies {
    Policies::new().on(|_: DomainEvent<BankAccountEvent>, context| {
        let source = context.notification_id();
        context.collect(Mirror::copy(source));
        Ok(())
    })
}

/// Events the follower reads from its leader at a time, and records per transaction.
const PAGE: usize = 1_000;
const BATCH: usize = 100;
/// Accounts opened per leader save while the log is built.
const OPENED_PER_SAVE: usize = 100;

/// F1 and F2 on `backend`, `sizes.runs` times.
pub fn run(backend: &Backend, sizes: &Sizes) -> Result<Vec<Record>> {
    let (name, durability) = (backend.name(), backend.durability());
    let mut leader_rate = Record::new(SYSTEM, name, "F1-leader", "events/s", durability);
    leader_rate.note = Some(format!(
        "the leader writing the F1 log, {OPENED_PER_SAVE} accounts opened per save"
    ));
    let mut catch_up = Record::new(SYSTEM, name, "F1", "events/s", durability);
    catch_up.note = Some(format!(
        "ProcessApplication, pages of {PAGE}, batches of {BATCH} events per transaction"
    ));
    let mut one_by_one = Record::new(SYSTEM, name, "F1-single", "events/s", durability);
    one_by_one.note = Some(
        "F1 with batches of 1: one transaction per event, as the Python library's follower".into(),
    );
    let mut latency = Record::new(SYSTEM, name, "F2", "ms", durability);
    latency.note = Some(format!(
        "p99 of leader save to derived event committed, MultiThreadedRunner, {} saves/s",
        sizes.latency_saves_per_second
    ));
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for _ in 0..sizes.runs {
        eprintln!("  es-rs followers on {name}");
        let dir = tempfile::tempdir()?;
        if let Backend::Postgres(url) = backend {
            crate::raw::reset_schema(url, FOLLOWERS_SCHEMA)?;
        }
        let leader = named_app(backend, dir.path(), "leader")?;
        let started = Instant::now();
        build_log(&leader, sizes.follower_log_events)?;
        leader_rate
            .runs
            .push(rate(sizes.follower_log_events, started.elapsed()));
        let follower =
            ProcessApplication::new(named_app(backend, dir.path(), "follower")?, mirrors())?
                .with_page_size(PAGE)
                .with_batch_size(BATCH);
        let started = Instant::now();
        let processed = follower.pull_and_process(&leader, None)?;
        catch_up.runs.push(rate(processed, started.elapsed()));
        assert_eq!(processed, sizes.follower_log_events);
        drop(follower);

        let follower =
            ProcessApplication::new(named_app(backend, dir.path(), "single")?, mirrors())?
                .with_page_size(PAGE);
        let started = Instant::now();
        let processed = follower.pull_and_process(&leader, None)?;
        one_by_one.runs.push(rate(processed, started.elapsed()));
        drop((leader, follower));

        let latencies = live_latencies(backend, dir.path(), sizes)?;
        let (median, tail) = (percentile(&latencies, 0.50), percentile(&latencies, 0.99));
        latency.runs.push(tail * 1e3);
        p50.push(median * 1e6);
        p99.push(tail * 1e6);
    }
    latency.p50_us = p50;
    latency.p99_us = p99;
    Ok(vec![leader_rate, catch_up, one_by_one, latency])
}

/// `events` accounts opened, `OPENED_PER_SAVE` to a save.
fn build_log(leader: &Application, events: usize) -> Result<()> {
    let mut opened = 0;
    while opened < events {
        let count = OPENED_PER_SAVE.min(events - opened);
        let mut accounts: Vec<BankAccount> = (opened..opened + count)
            .map(|i| BankAccount::open(owner(i), 100))
            .collect();
        leader.save(&mut accounts)?;
        opened += count;
    }
    Ok(())
}

/// The seconds from the start of each leader save to the commit of the
/// follower's event derived from it, with the leader saving at a steady rate.
fn live_latencies(backend: &Backend, dir: &std::path::Path, sizes: &Sizes) -> Result<Vec<f64>> {
    let derived: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
    let mut follower_app = named_app(backend, dir, "live_follower")?;
    {
        let derived = Arc::clone(&derived);
        follower_app.subscribe(move |recordings| {
            let now = Instant::now();
            let mut derived = derived.lock().map_err(|_| "poisoned")?;
            for recording in recordings {
                if let Some(MirrorEvent::Copied { source }) =
                    recording.event.downcast_ref::<MirrorEvent>()
                {
                    derived.push((*source, now));
                }
            }
            Ok(())
        });
    }
    let system = System::builder()
        .application(named_app(backend, dir, "live_leader")?)
        .process(ProcessApplication::new(follower_app, mirrors())?)
        .pipe(["live_leader", "live_follower"])
        .build()?;
    let runner = MultiThreadedRunner::start(system)?;
    let leader = runner.application("live_leader")?;
    let interval = Duration::from_secs_f64(1.0 / sizes.latency_saves_per_second as f64);
    let mut saved = Vec::with_capacity(sizes.latency_saves);
    let start = Instant::now();
    for i in 0..sizes.latency_saves {
        let due = start + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let began = Instant::now();
        let recordings = leader.save(&mut BankAccount::open(owner(i), 100))?;
        saved.push((recordings[0].notification_id, began));
    }
    let last = saved.last().map_or(0, |(id, _)| *id);
    runner.wait(
        "live_follower",
        "live_leader",
        last,
        Duration::from_secs(60),
    )?;
    runner.stop()?;
    let derived = derived.lock().map_err(|_| "poisoned")?;
    let committed: std::collections::HashMap<u64, Instant> = derived.iter().copied().collect();
    saved
        .iter()
        .map(|(id, began)| {
            committed
                .get(id)
                .map(|at| at.duration_since(*began).as_secs_f64())
                .ok_or_else(|| format!("no derived event for notification {id}").into())
        })
        .collect()
}

/// Nearest-rank percentile.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or(0.0)
}
