//! The benchmark of es-core beside its raw baselines, and the report over every
//! part of the benchmark. See `benchmarks/README.md`.
//!
//! ```text
//! es-bench measure [--quick] [--parts memory,...,followers] [--postgres-url URL]   # JSON lines on stdout
//! es-bench report [--quick] FILE...                 # tables; unless --quick, results and BENCHMARKS.md
//! ```

mod api;
mod followers;
mod http;
mod measure;
mod model;
mod nats;
mod ours;
mod probe;
mod raw;
mod replication;
mod report;
mod sizes;

use es_core::persistence::Synchronous;

use measure::Record;
use ours::Backend;
use sizes::Sizes;

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|arg| arg == "--quick");
    let sizes = if quick { Sizes::QUICK } else { Sizes::FULL };
    let postgres_url = option(&args, "--postgres-url")
        .or_else(|| std::env::var("ES_BENCH_POSTGRES_URL").ok())
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".into());
    match args.first().map(String::as_str) {
        Some("measure") => {
            let parts = option(&args, "--parts").unwrap_or_else(|| PARTS.join(","));
            let parts: Vec<&str> = parts.split(',').collect();
            if let Some(unknown) = parts.iter().find(|part| !PARTS.contains(part)) {
                return Err(format!("unknown part {unknown:?}: expected some of {PARTS:?}").into());
            }
            measure(&sizes, &postgres_url, &parts)
        }
        Some("report") => {
            let files: Vec<&String> = args[1..].iter().filter(|arg| !arg.starts_with("--")).collect();
            report::run(&files, quick)
        }
        Some("serve-log") => http::serve(args.get(1).ok_or("serve-log FILE")?),
        Some("probe-log") => probe::read_log(&args[1], args[2].parse()?),
        Some("probe-replay") => probe::replay(&args[1], &args[2]),
        _ => Err("usage: es-bench measure [--quick] [--postgres-url URL] | es-bench report [--quick] FILE...".into()),
    }
}

fn option(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|arg| arg == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// What `measure` can run, all by default; `--parts` picks some (to profile one).
const PARTS: [&str; 10] = [
    "memory",
    "sqlite",
    "sqlite-normal",
    "postgres",
    "nats",
    "followers",
    "replication",
    "http",
    "api",
    "probes",
];

/// The measurements of this crate and the raw baselines: one backend after the
/// other, and for each, a run of ours then a run of the raw baseline, in turn,
/// so that a slow minute of the machine falls on both sides of a ratio.
fn measure(sizes: &Sizes, postgres_url: &str, parts: &[&str]) -> Result<()> {
    let once = Sizes { runs: 1, ..*sizes };
    let mut records: Vec<Record> = Vec::new();
    for part in parts {
        if *part == "http" {
            // The log is filled once; the runs are interleaved inside.
            for record in http::run(sizes)? {
                record.print();
            }
            continue;
        }
        if *part == "nats" {
            // The servers are started once per deployment; the runs are
            // interleaved inside.
            for record in nats::run(sizes)? {
                record.print();
            }
            continue;
        }
        if *part == "probes" {
            // The stores are filled once; each run is a fresh child process.
            for record in probe::run(sizes)? {
                record.print();
            }
            continue;
        }
        for run in 0..sizes.runs {
            eprintln!("{part}: run {} of {}", run + 1, sizes.runs);
            let measured = match *part {
                "memory" => [ours::run(&Backend::Memory, &once)?, raw::run_memory(&once)?].concat(),
                "sqlite" => [
                    ours::run(&Backend::Sqlite(Synchronous::Full), &once)?,
                    raw::run_sqlite(&once, "FULL")?,
                ]
                .concat(),
                "sqlite-normal" => [
                    ours::run(&Backend::Sqlite(Synchronous::Normal), &once)?,
                    raw::run_sqlite(&once, "NORMAL")?,
                ]
                .concat(),
                "postgres" => [
                    ours::run(&Backend::Postgres(postgres_url.to_owned()), &once)?,
                    raw::run_postgres(&once, postgres_url)?,
                ]
                .concat(),
                "api" => [
                    api::run(&Backend::Sqlite(Synchronous::Full), &once)?,
                    api::run(&Backend::Postgres(postgres_url.to_owned()), &once)?,
                ]
                .concat(),
                "followers" => [
                    followers::run(&Backend::Sqlite(Synchronous::Full), &once)?,
                    followers::run(&Backend::Postgres(postgres_url.to_owned()), &once)?,
                ]
                .concat(),
                "replication" => [
                    replication::run(&Backend::Sqlite(Synchronous::Full), &once)?,
                    replication::run(&Backend::Postgres(postgres_url.to_owned()), &once)?,
                ]
                .concat(),
                _ => unreachable!("parts are checked against PARTS"),
            };
            Record::merge_all(&mut records, measured);
        }
        // Printed as each part ends, so a failure later keeps what was measured.
        for record in records.drain(..) {
            record.print();
        }
    }
    Ok(())
}
