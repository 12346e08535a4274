//! The report over every part's records: a table per workload with medians,
//! spreads and ratios, the targets of the benchmark issue checked, and, for a
//! full run, `benchmarks/results/latest.{json,svg}` and `BENCHMARKS.md`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use serde::Serialize;

use crate::measure::{Record, median};
use crate::ours::SYSTEM as OURS;
use crate::sizes::Sizes;

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// The workloads in the order they are reported.
const WORKLOADS: [&str; 25] = [
    "W1",
    "W2",
    "W2-cache",
    "W3",
    "W3-snapshots",
    "W4",
    "W5-1",
    "W5-4",
    "W5-16",
    "W5-zipf",
    "memory-log",
    "memory-replay",
    "F1-leader",
    "F1",
    "F1-single",
    "F2",
    "R1",
    "R1-raw",
    "R2",
    "H1-local",
    "H1",
    "A0",
    "A1-1",
    "A1-16",
    "A1-200",
];

/// One line under a workload's table saying what it measures, where the
/// heading alone does not (benchmarks/README.md has the whole of each).
fn description(workload: &str) -> Option<&'static str> {
    match workload {
        "R1" => Some(
            "Replication: a master's changes delivered to a replica over HTTP on loopback, \
             from subscribing until the last is acknowledged.",
        ),
        "R1-raw" => Some(
            "R1's records POSTed and upserted with plain SQL, no signatures, no log reading: \
             the transport-and-database ceiling (ahead by: R1 against it).",
        ),
        "R2" => Some(
            "Replication lag: p99 from a master's save returning to the replica's commit \
             of it, at a steady 100 changes/s.",
        ),
        _ => None,
    }
}

/// The workload of ours a row of `workload` is compared with: itself, but
/// for an anchor measured under a name of its own.
fn compared_with(workload: &str) -> &str {
    match workload {
        "R1-raw" => "R1",
        other => other,
    }
}

/// The workloads drawn on the chart (throughputs, so one scale reads them all).
const CHARTED: [&str; 6] = ["W1", "W2", "W3", "W4", "W5-16", "W5-zipf"];

pub fn run(files: &[&String], quick: bool) -> Result<()> {
    let mut records = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)?;
        for line in text
            .lines()
            .filter(|line| line.trim_start().starts_with('{'))
        {
            records.push(
                serde_json::from_str::<Record>(line).map_err(|e| format!("{file}: {e}: {line}"))?,
            );
        }
    }
    let sizes = if quick { Sizes::QUICK } else { Sizes::FULL };
    let targets = targets(&records, &sizes);
    let tables = tables(&records);
    println!("{tables}");
    println!("{}", targets_table(&targets));
    if quick {
        println!("(--quick: a smoke run; nothing written)");
        return Ok(());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let results = root.join("benchmarks/results");
    std::fs::create_dir_all(&results)?;
    let machine = Machine::read(files);
    let json = serde_json::json!({ "machine": machine, "targets": targets, "records": records });
    std::fs::write(
        results.join("latest.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    chart(&records, &results.join("latest.svg"))?;
    let notes = std::fs::read_to_string(root.join("benchmarks/NOTES.md")).unwrap_or_default();
    std::fs::write(
        root.join("BENCHMARKS.md"),
        markdown(&machine, &tables, &targets, &records, &notes),
    )?;
    eprintln!(
        "wrote benchmarks/results/latest.json, benchmarks/results/latest.svg and BENCHMARKS.md"
    );
    Ok(())
}

/// Whether more of `unit` is better.
fn higher_is_better(unit: &str) -> bool {
    !matches!(unit, "ms" | "MiB")
}

/// How many times better ours is than `other` (above 1: ours is ahead).
fn advantage(ours: f64, other: f64, unit: &str) -> f64 {
    if higher_is_better(unit) {
        ours / other
    } else {
        other / ours
    }
}

fn find<'a>(
    records: &'a [Record],
    system: &str,
    backend: &str,
    workload: &str,
) -> Option<&'a Record> {
    records.iter().find(|r| {
        r.system == system && r.backend == backend && r.workload == workload && !r.runs.is_empty()
    })
}

fn value(records: &[Record], system: &str, backend: &str, workload: &str) -> Option<f64> {
    find(records, system, backend, workload).map(|r| median(&r.runs))
}

/// Three significant figures, with a thousands separator for large values.
fn figure(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".into();
    }
    if value >= 1000.0 {
        let rounded = format!("{:.0}", value);
        let digits = rounded.len();
        let keep = 3.min(digits);
        let significant: String = rounded
            .chars()
            .take(keep)
            .chain(std::iter::repeat_n('0', digits - keep))
            .collect();
        let mut grouped = String::new();
        for (i, c) in significant.chars().enumerate() {
            if i > 0 && (digits - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        grouped
    } else if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn ratio(value: f64) -> String {
    if value >= 10.0 {
        format!("{value:.0}×")
    } else {
        format!("{value:.2}×")
    }
}

/// A markdown table per workload.
fn tables(records: &[Record]) -> String {
    let mut out = String::new();
    for workload in WORKLOADS {
        let rows: Vec<&Record> = records.iter().filter(|r| r.workload == workload).collect();
        let Some(first) = rows.first() else { continue };
        let unit = &first.unit;
        let _ = writeln!(
            out,
            "### {workload} ({unit}{})\n",
            if higher_is_better(unit) {
                ""
            } else {
                ", lower is better"
            }
        );
        if let Some(description) = description(workload) {
            let _ = writeln!(out, "{description}\n");
        }
        let _ = writeln!(
            out,
            "| system | backend | durability | median | spread (min–max, runs) | p50 / p99 µs | es-rs ahead by |"
        );
        let _ = writeln!(out, "|---|---|---|---:|---|---|---:|");
        for record in rows {
            let ours = value(records, OURS, &record.backend, compared_with(workload));
            let (middle, spread) = if record.runs.is_empty() {
                ("n/a".to_string(), record.note.clone().unwrap_or_default())
            } else {
                let min = record.runs.iter().copied().fold(f64::INFINITY, f64::min);
                let max = record
                    .runs
                    .iter()
                    .copied()
                    .fold(f64::NEG_INFINITY, f64::max);
                (
                    figure(median(&record.runs)),
                    format!("{}–{} ({})", figure(min), figure(max), record.runs.len()),
                )
            };
            let latency = if record.p50_us.is_empty() {
                String::new()
            } else {
                let conflicts = if record.conflicts.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", {} conflicts",
                        record.conflicts.iter().sum::<u64>() / record.conflicts.len().max(1) as u64
                    )
                };
                format!(
                    "{} / {}{conflicts}",
                    figure(median(&record.p50_us)),
                    figure(median(&record.p99_us))
                )
            };
            let ahead = match ours {
                Some(ours) if record.system != OURS && !record.runs.is_empty() => {
                    ratio(advantage(ours, median(&record.runs), unit))
                }
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {middle} | {spread} | {latency} | {ahead} |",
                record.system, record.backend, record.durability
            );
        }
        out.push('\n');
    }
    out
}

/// One target of the benchmark issue, as measured.
#[derive(Debug, Serialize)]
struct Target {
    what: String,
    needed: String,
    measured: String,
    met: Option<bool>,
}

fn targets(records: &[Record], sizes: &Sizes) -> Vec<Target> {
    let mut targets = Vec::new();
    let mut at_least = |what: &str, ours: (&str, &str), other: (&str, &str, &str), times: f64| {
        let (workload, backend) = ours;
        let (system, other_backend, other_workload) = other;
        let mine = value(records, OURS, backend, workload);
        let theirs = value(records, system, other_backend, other_workload);
        let measured = match (mine, theirs) {
            (Some(mine), Some(theirs)) => Some(mine / theirs),
            _ => None,
        };
        targets.push(Target {
            what: what.into(),
            needed: format!("≥ {}", ratio(times)),
            measured: measured.map_or("not measured".into(), ratio),
            met: measured.map(|m| m >= times),
        });
    };
    for workload in ["W1", "W2"] {
        at_least(
            &format!("SQLite {workload} vs raw rusqlite, synchronous=FULL"),
            (workload, "sqlite"),
            ("raw", "sqlite", workload),
            0.8,
        );
        at_least(
            &format!("SQLite {workload} vs raw rusqlite, synchronous=NORMAL"),
            (workload, "sqlite-normal"),
            ("raw", "sqlite-normal", workload),
            0.8,
        );
        at_least(
            &format!("SQLite {workload} vs Python eventsourcing on SQLite"),
            (workload, "sqlite"),
            ("python-eventsourcing", "sqlite", workload),
            5.0,
        );
    }
    at_least(
        "PostgreSQL W1 vs raw postgres",
        ("W1", "postgres"),
        ("raw", "postgres", "W1"),
        0.8,
    );
    at_least(
        "PostgreSQL W1 vs Python eventsourcing on PostgreSQL",
        ("W1", "postgres"),
        ("python-eventsourcing", "postgres", "W1"),
        3.0,
    );
    for workload in ["W1", "W2"] {
        at_least(
            &format!("in memory {workload} vs cqrs-es MemStore"),
            (workload, "memory"),
            ("cqrs-es", "memory", workload),
            1.0,
        );
        at_least(
            &format!("in memory {workload} vs Python eventsourcing in memory"),
            (workload, "memory"),
            ("python-eventsourcing", "memory", workload),
            100.0,
        );
    }
    for backend in ["memory", "sqlite", "postgres"] {
        at_least(
            &format!("{backend} W3 replay vs raw read and decode"),
            ("W3", backend),
            ("raw", backend, "W3"),
            0.7,
        );
    }
    at_least(
        "SQLite W5: 16 writers vs 1 writer (group commit)",
        ("W5-16", "sqlite"),
        (OURS, "sqlite", "W5-1"),
        4.0,
    );
    at_least(
        "PostgreSQL W5: 16 writers vs 1 writer (shared commits)",
        ("W5-16", "postgres"),
        (OURS, "postgres", "W5-1"),
        4.0,
    );
    at_least(
        "PostgreSQL W5: 16 writers vs raw postgres with 16 connections",
        ("W5-16", "postgres"),
        ("raw", "postgres", "W5-16"),
        1.5,
    );
    for (backend, label) in [
        ("nats", "NATS on one server"),
        ("nats-r3", "NATS on a three-node cluster"),
    ] {
        for workload in ["W1", "W2", "W4", "W5-16"] {
            at_least(
                &format!("{label}, {workload} vs the raw async-nats client"),
                (workload, backend),
                ("raw", backend, workload),
                0.8,
            );
        }
        at_least(
            &format!("{label}, W5: 16 writers vs 1 writer"),
            ("W5-16", backend),
            (OURS, backend, "W5-1"),
            4.0,
        );
    }
    at_least(
        "SQLite W2 with the repository cache vs without",
        ("W2-cache", "sqlite"),
        (OURS, "sqlite", "W2"),
        3.0,
    );
    for (backend, label) in [("sqlite", "SQLite"), ("postgres", "PostgreSQL")] {
        at_least(
            &format!("{label} F1 follower catch-up vs Python eventsourcing's follower"),
            ("F1", backend),
            ("python-eventsourcing", backend, "F1"),
            20.0,
        );
        at_least(
            &format!("{label} F1 follower catch-up vs the rate the leader wrote the log"),
            ("F1", backend),
            (OURS, backend, "F1-leader"),
            0.5,
        );
    }
    at_least(
        "SQLite H1 log read over HTTP by another process vs the local read, pages of 1,000",
        ("H1", "sqlite"),
        (OURS, "sqlite", "H1-local"),
        0.3,
    );
    for backend in ["memory", "sqlite", "postgres"] {
        // The full replay's time for the account, from its rate.
        let full_ms =
            value(records, OURS, backend, "W3").map(|rate| sizes.replay_events as f64 / rate * 1e3);
        let snapshot_ms = value(records, OURS, backend, "W3-snapshots");
        let fraction = full_ms.zip(snapshot_ms).map(|(full, snap)| snap / full);
        targets.push(Target {
            what: format!("{backend} W3 load from a snapshot, share of the full replay's time"),
            needed: "< 2%".into(),
            measured: fraction.map_or("not measured".into(), |f| format!("{:.2}%", f * 100.0)),
            met: fraction.map(|f| f < 0.02),
        });
    }
    for (backend, label) in [("sqlite", "SQLite"), ("postgres", "PostgreSQL")] {
        let p99 = value(records, OURS, backend, "F2");
        targets.push(Target {
            what: format!("{label} F2 leader save to derived event, p99 at 100 saves/s"),
            needed: "< 20 ms".into(),
            measured: p99.map_or("not measured".into(), |ms| format!("{ms:.1} ms")),
            met: p99.map(|ms| ms < 20.0),
        });
    }
    for (backend, label) in [("sqlite", "SQLite"), ("postgres", "PostgreSQL")] {
        let p99 = value(records, OURS, backend, "R2");
        targets.push(Target {
            what: format!(
                "{label} R2 replication lag, master save to replica commit, p99 at 100 changes/s"
            ),
            needed: "< 250 ms".into(),
            measured: p99.map_or("not measured".into(), |ms| format!("{ms:.1} ms")),
            met: p99.map(|ms| ms < 250.0),
        });
    }
    let log = value(records, OURS, "sqlite", "memory-log");
    targets.push(Target {
        what: format!("peak memory reading a {}-event log", sizes.log_events),
        needed: "< 64 MiB".into(),
        measured: log.map_or("not measured".into(), |mib| format!("{mib:.1} MiB")),
        met: log.map(|mib| mib < 64.0),
    });
    let replay = value(records, OURS, "sqlite", "memory-replay");
    targets.push(Target {
        what: format!(
            "peak memory replaying a {}-event aggregate",
            sizes.memory_replay_events
        ),
        needed: "< 12 MiB".into(),
        measured: replay.map_or("not measured".into(), |mib| format!("{mib:.1} MiB")),
        met: replay.map(|mib| mib < 12.0),
    });
    let durable =
        find(records, OURS, "sqlite", "W1").map(|r| r.durability.contains("synchronous=FULL"));
    targets.push(Target {
        what: "the SQLite default survives power loss (synchronous=FULL)".into(),
        needed: "yes".into(),
        measured: durable.map_or("not measured".into(), |d| {
            if d { "yes".into() } else { "no".into() }
        }),
        met: durable,
    });
    targets
}

fn targets_table(targets: &[Target]) -> String {
    let mut out = String::from("| target | needed | measured | met |\n|---|---|---|---|\n");
    for target in targets {
        let met = match target.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {met} |",
            target.what, target.needed, target.measured
        );
    }
    out
}

/// What the report says of the machine that produced it.
#[derive(Debug, Serialize)]
struct Machine {
    date: String,
    cpu: String,
    cores: usize,
    memory: String,
    kernel: String,
    rustc: String,
    /// Each part's records file, and when that part finished.
    parts: Vec<(String, String)>,
}

impl Machine {
    fn read(files: &[&String]) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
            .unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory = meminfo
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or("unknown".into(), |kb| {
                format!("{:.0} GiB", kb / 1024.0 / 1024.0)
            });
        let command = |program: &str, args: &[&str]| {
            std::process::Command::new(program)
                .args(args)
                .output()
                .ok()
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
                .unwrap_or_default()
        };
        Machine {
            date: chrono::Utc::now().format("%Y-%m-%d").to_string(),
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory,
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .unwrap_or_default()
                .trim()
                .to_owned(),
            rustc: command("rustc", &["--version"]),
            parts: files
                .iter()
                .map(|file| {
                    let path = Path::new(file.as_str());
                    let name = path.file_stem().map_or_else(
                        || file.to_string(),
                        |stem| stem.to_string_lossy().into_owned(),
                    );
                    // `benchmarks/run` writes the time a part finished beside it.
                    let when = std::fs::read_to_string(path.with_extension("when"))
                        .map(|when| when.trim().to_owned())
                        .unwrap_or_else(|_| "unknown".into());
                    (name, when)
                })
                .collect(),
        }
    }
}

fn markdown(
    machine: &Machine,
    tables: &str,
    targets: &[Target],
    records: &[Record],
    notes: &str,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Benchmarks\n");
    let _ = writeln!(
        out,
        "<!-- Written by `bash benchmarks/run`; do not edit by hand. The prose under \"Notes\" comes from benchmarks/NOTES.md. -->\n"
    );
    let _ = writeln!(
        out,
        "This crate (`es-rs`) beside the libraries a user would pick instead and beside raw baselines \
         that mark this machine's limit, on the same workloads, run by one command. The workloads, the peers \
         and the output are described in [benchmarks/README.md](benchmarks/README.md); rerun with \
         `bash benchmarks/run`. Absolute figures on a shared machine are noisy; the ratios, measured \
         back to back, are what to read.\n"
    );
    let _ = writeln!(
        out,
        "Produced on {}: {} ({} cores), {} memory, Linux {}, {}.\n",
        machine.date, machine.cpu, machine.cores, machine.memory, machine.kernel, machine.rustc
    );
    // Each peer's W1 note starts with what was measured, version included.
    let peers: BTreeSet<String> = records
        .iter()
        .filter(|r| r.system != OURS && r.system != "raw" && r.workload == "W1")
        .filter_map(|r| {
            r.note
                .as_ref()
                .map(|note| format!("{} / {}: {note}", r.system, r.backend))
        })
        .collect();
    if !peers.is_empty() {
        let _ = writeln!(out, "The peers, as measured (each part's own notes):\n");
        for peer in peers {
            let _ = writeln!(out, "- {peer}");
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "When each part was last run (`bash benchmarks/run --parts ...` reruns some):\n"
    );
    for (part, when) in &machine.parts {
        let _ = writeln!(out, "- {part}: {when}");
    }
    let _ = writeln!(
        out,
        "\n![Throughput by workload, log scale](benchmarks/results/latest.svg)\n"
    );
    let _ = writeln!(out, "## Targets\n\n{}", targets_table(targets));
    let _ = writeln!(
        out,
        "## Results\n\nIn each table, \"es-rs ahead by\" is how many times better this crate did than that row on the same backend (below 1×: behind).\n\n{tables}"
    );
    if !notes.trim().is_empty() {
        let _ = writeln!(out, "## Notes\n\n{}", notes.trim());
    }
    out
}

/// Horizontal bars, one panel per charted workload, on log scales.
fn chart(records: &[Record], path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (1200, 1500)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(40);
    title.titled(
        "es-rs and its peers: medians, log scale (longer is faster)",
        ("sans-serif", 22),
    )?;
    let panels = body.split_evenly((3, 2));
    for (panel, workload) in panels.iter().zip(CHARTED) {
        let mut rows: Vec<(String, f64, &str)> = records
            .iter()
            .filter(|r| r.workload == workload && !r.runs.is_empty())
            .map(|r| {
                (
                    format!("{} / {}", r.system, r.backend),
                    median(&r.runs),
                    r.system.as_str(),
                )
            })
            .collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1));
        let Some(unit) = records
            .iter()
            .find(|r| r.workload == workload)
            .map(|r| r.unit.clone())
        else {
            continue;
        };
        let max = rows.iter().map(|r| r.1).fold(1.0, f64::max);
        let min = rows.iter().map(|r| r.1).fold(max, f64::min);
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{workload} ({unit})"), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(230)
            .build_cartesian_2d(
                (min / 3.0..max * 3.0).log_scale(),
                (0..rows.len()).into_segmented(),
            )?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(rows.len())
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => rows.get(*i).map(|r| r.0.clone()).unwrap_or_default(),
                _ => String::new(),
            })
            .x_label_formatter(&|v| figure(*v))
            .draw()?;
        chart.draw_series(rows.iter().enumerate().map(|(i, (_, v, system))| {
            Rectangle::new(
                [
                    (min / 3.0, SegmentValue::Exact(i)),
                    (*v, SegmentValue::Exact(i + 1)),
                ],
                colour(system).filled(),
            )
        }))?;
    }
    root.present()?;
    Ok(())
}

fn colour(system: &str) -> RGBColor {
    match system {
        OURS => RGBColor(0xd9, 0x5f, 0x02),
        "raw" => RGBColor(0x99, 0x99, 0x99),
        "cqrs-es" | "postgres-es" => RGBColor(0x1b, 0x9e, 0x77),
        _ => RGBColor(0x75, 0x70, 0xb3),
    }
}
