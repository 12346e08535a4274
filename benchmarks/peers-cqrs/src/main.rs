//! peers-cqrs: the Rust peer libraries `cqrs-es` (its in-memory `MemStore`) and
//! `postgres-es`, on the workloads of benchmarks/README.md.
//!
//! ```text
//! peers-cqrs [--quick] [--runs N] [--backends memory,postgres]
//! ```
//!
//! One JSON object per line on stdout (the README's schema), progress on stderr.
//! PostgreSQL is found at `ES_BENCH_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`); its tables live in the schema `cqrs_bench`.

mod account;
mod backend;
mod workloads;
mod zipf;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use cqrs_es::CqrsFramework;
use serde::Serialize;

use crate::backend::{Backend, MemBackend, PgBackend};
use crate::workloads::{Concurrent, Sizes};

const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
const W5_WRITERS: [usize; 3] = [1, 4, 16];

struct Args {
    quick: bool,
    runs: usize,
    memory: bool,
    postgres: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        quick: false,
        runs: 3,
        memory: true,
        postgres: true,
    };
    let mut runs_given = false;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--runs" => {
                let n = it.next().context("--runs needs a number")?;
                args.runs = n.parse().with_context(|| format!("--runs {n}"))?;
                if args.runs == 0 {
                    bail!("--runs must be at least 1");
                }
                runs_given = true;
            }
            "--backends" => {
                let list = it
                    .next()
                    .context("--backends needs a list, e.g. memory,postgres")?;
                args.memory = false;
                args.postgres = false;
                for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    match name {
                        "memory" => args.memory = true,
                        "postgres" => args.postgres = true,
                        other => bail!("unknown backend {other:?} (memory, postgres)"),
                    }
                }
            }
            "-h" | "--help" => {
                eprintln!("usage: peers-cqrs [--quick] [--runs N] [--backends memory,postgres]");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    if args.quick && !runs_given {
        args.runs = 1;
    }
    Ok(args)
}

/// cqrs-es's MemStore `println!`s on every load and commit, which would mix its lines
/// into our JSON. So: keep a duplicate of the real stdout for the JSON, and point fd 1
/// (where `println!` writes) at /dev/null. Done first, before anything is printed.
fn take_stdout() -> Result<File> {
    let json_out = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let devnull = OpenOptions::new().write(true).open("/dev/null")?;
    rustix::stdio::dup2_stdout(&devnull).context("redirecting fd 1 to /dev/null")?;
    Ok(json_out)
}

/// One line of output, as benchmarks/README.md defines it.
#[derive(Serialize)]
struct Record<'a> {
    system: &'a str,
    backend: &'a str,
    workload: &'a str,
    unit: &'a str,
    runs: Vec<f64>,
    durability: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    p50_us: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_us: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conflicts: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

struct Output {
    out: File,
}

impl Output {
    fn emit(&mut self, record: &Record<'_>) -> Result<()> {
        let line = serde_json::to_string(record)?;
        writeln!(self.out, "{line}")?;
        self.out.flush()?;
        Ok(())
    }
}

/// Rounds for readability; the noise is far above a thousandth.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What happened to W4 on one backend.
enum LogRead {
    Unsupported,
    Read(Vec<f64>),
    Failed(String),
}

/// Results of all runs of one backend, one Vec entry per run.
#[derive(Default)]
struct Collected {
    w1: Vec<f64>,
    w2: Vec<f64>,
    w3_ms: Vec<f64>,
    w3_snapshot_ms: Vec<f64>,
    w4: Vec<f64>,
    w4_failure: Option<String>,
    w5: Vec<Vec<Concurrent>>,
    zipf: Vec<Concurrent>,
    /// (events found, events expected) in the W5-zipf accounts after each run.
    zipf_events: Vec<(usize, usize)>,
}

async fn run_backend<B: Backend>(
    b: &B,
    sizes: &Sizes,
    runs: usize,
    out: &mut Output,
) -> Result<()> {
    let label = format!("[{} {}]", b.system(), b.backend());
    let mut c = Collected {
        w5: W5_WRITERS.iter().map(|_| Vec::new()).collect(),
        ..Default::default()
    };
    let mut w4_supported = true;
    let mut snapshots_supported = true;

    for run in 1..=runs {
        eprintln!("{label} run {run}/{runs}");

        // W1, W2 and W4 share one store, as the README chains them.
        let store = b.fresh_store().await?;
        let check_store = b.another_handle(&store);
        let cqrs = CqrsFramework::new(store, vec![], ());
        let w1 = workloads::w1(&cqrs, sizes).await.context("W1")?;
        eprintln!("{label}   W1 {w1:.0} events/s");
        let w2 = workloads::w2(&cqrs, sizes).await.context("W2")?;
        eprintln!("{label}   W2 {w2:.0} commands/s");
        workloads::check_w1_w2(&check_store, sizes)
            .await
            .context("checking W1+W2")?;
        c.w1.push(w1);
        c.w2.push(w2);

        let expected = sizes.accounts * (1 + sizes.w1_commands + sizes.w2_commands);
        let start = std::time::Instant::now();
        match b.read_all().await {
            Ok(None) => w4_supported = false,
            Ok(Some(n)) if n == expected => {
                let rate = n as f64 / start.elapsed().as_secs_f64();
                eprintln!("{label}   W4 {rate:.0} events/s");
                c.w4.push(rate);
            }
            Ok(Some(n)) => c.w4_failure = Some(format!("read {n} events, expected {expected}")),
            Err(e) => c.w4_failure = Some(format!("{e:#}")),
        }
        drop(cqrs);

        let store = b.fresh_store().await?;
        let full = workloads::w3(&store, sizes).await.context("W3")?;
        let full_ms = full.as_secs_f64() * 1e3;
        eprintln!("{label}   W3 {full_ms:.2} ms");
        c.w3_ms.push(full_ms);

        match b.fresh_snapshot_store(sizes.snapshot_every).await? {
            None => snapshots_supported = false,
            Some(store) => {
                let snap = workloads::w3(&store, sizes).await.context("W3-snapshots")?;
                let snap_ms = snap.as_secs_f64() * 1e3;
                eprintln!("{label}   W3-snapshots {snap_ms:.3} ms");
                c.w3_snapshot_ms.push(snap_ms);
            }
        }

        for (slot, &writers) in W5_WRITERS.iter().enumerate() {
            let cqrs = Arc::new(CqrsFramework::new(b.fresh_store().await?, vec![], ()));
            let result = workloads::w5(cqrs, writers, sizes)
                .await
                .with_context(|| format!("W5-{writers}"))?;
            eprintln!(
                "{label}   W5-{writers} {:.0} events/s, p50 {:.0} us, p99 {:.0} us",
                result.per_second, result.p50_us, result.p99_us
            );
            c.w5[slot].push(result);
        }

        let store = b.fresh_store().await?;
        let check_store = b.another_handle(&store);
        let cqrs = Arc::new(CqrsFramework::new(store, vec![], ()));
        let zipf = workloads::w5_zipf(cqrs, sizes).await.context("W5-zipf")?;
        let found = workloads::count_zipf_events(&check_store, sizes).await?;
        let expected = sizes.zipf_accounts + sizes.zipf_threads * sizes.zipf_commands;
        eprintln!(
            "{label}   W5-zipf {:.0} commands/s, p50 {:.0} us, p99 {:.0} us, {} conflicts, {found}/{expected} events stored",
            zipf.per_second, zipf.p50_us, zipf.p99_us, zipf.conflicts
        );
        c.zipf.push(zipf);
        c.zipf_events.push((found, expected));
    }

    let w4 = if !w4_supported {
        LogRead::Unsupported
    } else if let Some(failure) = c.w4_failure.take() {
        LogRead::Failed(failure)
    } else {
        LogRead::Read(c.w4.clone())
    };
    emit_all(b, sizes, &c, w4, snapshots_supported, out)
}

fn emit_all<B: Backend>(
    b: &B,
    sizes: &Sizes,
    c: &Collected,
    w4: LogRead,
    snapshots_supported: bool,
    out: &mut Output,
) -> Result<()> {
    let base = b.setup_note();
    let record = |workload: &'static str, unit: &'static str, runs: &[f64], note: String| Record {
        system: b.system(),
        backend: b.backend(),
        workload,
        unit,
        runs: runs.iter().copied().map(round).collect(),
        durability: b.durability(),
        p50_us: None,
        p99_us: None,
        conflicts: None,
        note: Some(note),
    };

    out.emit(&record(
        "W1",
        "events/s",
        &c.w1,
        format!(
            "{base} W1: per account, CqrsFramework::execute(Open) then {} execute(Deposit); each \
             execute loads the account (replaying its events so far), handles the command and \
             commits its one event. {} accounts.",
            sizes.w1_commands, sizes.accounts
        ),
    ))?;
    out.emit(&record(
        "W2",
        "commands/s",
        &c.w2,
        format!(
            "{base} W2: {} CqrsFramework::execute(Deposit) per account on W1's store, in account \
             order; each is the library's whole command cycle: load (full replay, no snapshots), \
             handle, commit. Balances checked afterwards (untimed).",
            sizes.w2_commands
        ),
    ))?;

    let w3_rates: Vec<f64> = c
        .w3_ms
        .iter()
        .map(|ms| sizes.w3_events as f64 / (ms / 1e3))
        .collect();
    out.emit(&record(
        "W3",
        "events/s",
        &w3_rates,
        format!(
            "{base} W3: one account of {} events written through EventStore::commit in batches \
             of {} (events built directly, each batch's context from load_aggregate); timed: \
             EventStore::load_aggregate (fetch, deserialize, apply every event), median of {} \
             loads. Median load times (ms): {:?}.",
            sizes.w3_events,
            sizes.w3_batch,
            sizes.w3_loads,
            c.w3_ms.iter().copied().map(round).collect::<Vec<_>>()
        ),
    ))?;

    if snapshots_supported {
        let fractions: Vec<f64> = c
            .w3_snapshot_ms
            .iter()
            .zip(&c.w3_ms)
            .map(|(s, f)| round(s / f))
            .collect();
        out.emit(&record(
            "W3-snapshots",
            "ms",
            &c.w3_snapshot_ms,
            format!(
                "{base} W3-snapshots: PersistedEventStore::new_snapshot_store(repo, {every}); a \
                 commit that reaches a multiple of {every} events also writes the aggregate \
                 (serde_json) to the snapshots table, so the last batch leaves a snapshot at \
                 version {}. load_aggregate reads the snapshot, then the events after it (none). \
                 Median of {} loads. Fraction of the full replay (W3 of the same run): {fractions:?}.",
                sizes.w3_events,
                sizes.w3_loads,
                every = sizes.snapshot_every,
            ),
        ))?;
    } else {
        out.emit(&record(
            "W3-snapshots",
            "ms",
            &[],
            "MemStore has no snapshots: in cqrs-es they exist only in \
             cqrs_es::persist::PersistedEventStore, which needs a database repository."
                .to_string(),
        ))?;
    }

    match w4 {
        LogRead::Unsupported => out.emit(&record(
            "W4",
            "events/s",
            &[],
            "cqrs-es has no notification log, and MemStore no way to read all events: it keeps a \
             HashMap of per-aggregate Vecs, with no order across aggregates."
                .to_string(),
        ))?,
        LogRead::Read(rates) => out.emit(&record(
            "W4",
            "events/s",
            &rates,
            format!(
                "{base} W4: there is no notification log; the nearest is \
                 PersistedEventRepository::stream_all_events (what QueryReplay::replay_all uses): \
                 one query for all events of the aggregate type, ORDER BY the per-aggregate \
                 sequence (so not in commit order), streamed through a 200-event channel and \
                 deserialized into EventEnvelopes; no pages and no position to resume from. \
                 Read all {} events of W1+W2.",
                sizes.accounts * (1 + sizes.w1_commands + sizes.w2_commands)
            ),
        ))?,
        LogRead::Failed(why) => out.emit(&record(
            "W4",
            "events/s",
            &[],
            format!(
                "cqrs-es has no notification log; the nearest, \
                 PersistedEventRepository::stream_all_events, failed: {why}"
            ),
        ))?,
    }

    for (slot, &writers) in W5_WRITERS.iter().enumerate() {
        let results = &c.w5[slot];
        let workload = match writers {
            1 => "W5-1",
            4 => "W5-4",
            _ => "W5-16",
        };
        let mut r = record(
            workload,
            "events/s",
            &results.iter().map(|r| r.per_second).collect::<Vec<_>>(),
            format!(
                "{base} W5: {writers} tokio task(s) spawned on one multi-threaded runtime \
                 ({} worker threads), {} saves in all; each task executes W1's pattern on \
                 accounts of its own; latency is that of each CqrsFramework::execute (load, \
                 handle, commit of one event).",
                worker_threads(),
                sizes.w5_saves
            ),
        );
        r.p50_us = Some(results.iter().map(|r| round(r.p50_us)).collect());
        r.p99_us = Some(results.iter().map(|r| round(r.p99_us)).collect());
        out.emit(&r)?;
    }

    let lost: Vec<String> = c
        .zipf_events
        .iter()
        .filter(|(found, expected)| found != expected)
        .map(|(found, expected)| format!("{found} of {expected}"))
        .collect();
    let integrity = if lost.is_empty() {
        "Every committed event was found afterwards.".to_string()
    } else {
        format!(
            "Events found in the accounts afterwards, in the runs where some were missing: {}.",
            lost.join(", ")
        )
    };
    let concurrency = if b.backend() == "memory" {
        " MemStore has no optimistic concurrency check, so it never reports a conflict: a commit \
         clones the account's Vec under a read lock, appends, and writes it back under a write \
         lock, so two concurrent commits to one account can overwrite each other."
    } else {
        ""
    };
    let mut r = record(
        "W5-zipf",
        "commands/s",
        &c.zipf.iter().map(|r| r.per_second).collect::<Vec<_>>(),
        format!(
            "{base} W5-zipf: {} accounts opened first (untimed); {} tokio tasks on a \
             multi-threaded runtime ({} worker threads), {} commands each on a Zipf(s=1) account; \
             a command is one CqrsFramework::execute (it loads the account itself), executed again \
             on AggregateError::AggregateConflict; latency covers the retries.{concurrency} {integrity}",
            sizes.zipf_accounts,
            sizes.zipf_threads,
            worker_threads(),
            sizes.zipf_commands
        ),
    );
    r.p50_us = Some(c.zipf.iter().map(|r| round(r.p50_us)).collect());
    r.p99_us = Some(c.zipf.iter().map(|r| round(r.p99_us)).collect());
    r.conflicts = Some(c.zipf.iter().map(|r| r.conflicts).collect());
    out.emit(&r)
}

/// Tokio's default worker count: one per core.
fn worker_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn main() -> Result<()> {
    let mut out = Output {
        out: take_stdout()?,
    };
    let args = parse_args()?;
    let sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };

    // A multi-threaded runtime, as a service built on cqrs-es would have; W5's writers
    // are tasks spawned on it.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .enable_all()
        .build()
        .context("building the tokio runtime")?;

    runtime.block_on(async {
        if args.memory {
            run_backend(&MemBackend, &sizes, args.runs, &mut out).await?;
        }
        if args.postgres {
            let url = std::env::var("ES_BENCH_POSTGRES_URL")
                .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_string());
            let pg = PgBackend::connect(&url).await?;
            run_backend(&pg, &sizes, args.runs, &mut out).await?;
            pg.drop_tables().await?;
        }
        anyhow::Ok(())
    })
}
