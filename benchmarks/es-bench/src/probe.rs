//! Peak memory: a store is filled by this process, then read by a child process
//! of this same program, which reports its own peak resident set. The child
//! holds nothing but what reading needs, so its peak is the reader's cost.

use std::path::Path;
use std::process::Command;

use es_core::persistence::Synchronous;
use es_core::prelude::*;

use crate::measure::Record;
use crate::model::{BankAccount, command, fill_log, owner};
use crate::sizes::Sizes;

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

fn app(path: &Path) -> Result<Application> {
    // Filling is not measured: commit at checkpoints only, to fill faster.
    Ok(Application::builder()
        .sqlite(path)
        .sqlite_synchronous(Synchronous::Normal)
        .build()?)
}

/// Measures both probes on SQLite.
pub fn run(sizes: &Sizes) -> Result<Vec<Record>> {
    let dir = tempfile::tempdir()?;
    let durability = "fsync on (WAL, synchronous=FULL)";
    let mut log = Record::new("es-rs", "sqlite", "memory-log", "MiB", durability);
    let mut replay = Record::new("es-rs", "sqlite", "memory-replay", "MiB", durability);
    log.note = Some(format!(
        "peak resident set of a process reading a {}-event log in pages of {}",
        sizes.log_events, sizes.page
    ));
    replay.note = Some(format!(
        "peak resident set of a process replaying a {}-event account",
        sizes.memory_replay_events
    ));

    let log_path = dir.path().join("log.sqlite3");
    eprintln!("memory probe: filling a log of {} events", sizes.log_events);
    {
        fill_log(&app(&log_path)?, sizes.log_events)?;
    }
    let replay_path = dir.path().join("replay.sqlite3");
    eprintln!(
        "memory probe: filling an account of {} events",
        sizes.memory_replay_events
    );
    let id = {
        let app = app(&replay_path)?;
        let mut account = BankAccount::open(owner(0), 100);
        for k in 1..sizes.memory_replay_events {
            let (amount, note) = command(k);
            account.deposit(amount, note);
            if k % 1000 == 0 {
                app.save(&mut account)?;
            }
        }
        app.save(&mut account)?;
        account.id()
    };
    for _ in 0..sizes.runs {
        log.runs.push(child(&[
            "probe-log",
            &log_path.to_string_lossy(),
            &sizes.page.to_string(),
        ])?);
        replay.runs.push(child(&[
            "probe-replay",
            &replay_path.to_string_lossy(),
            &id.to_string(),
        ])?);
    }
    Ok(vec![log, replay])
}

/// Runs this program with `args` and reads the MiB it prints.
fn child(args: &[&str]) -> Result<f64> {
    let output = Command::new(std::env::current_exe()?).args(args).output()?;
    if !output.status.success() {
        return Err(format!(
            "memory probe {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}

/// In the child: reads the whole log, then prints the peak resident MiB.
pub fn read_log(path: &str, page: usize) -> Result<()> {
    let app = Application::builder().sqlite(path).build()?;
    let log = app.notification_log();
    let (mut start, mut read) = (1, 0);
    loop {
        let notifications = log.select(start, page)?;
        let Some(last) = notifications.last() else {
            break;
        };
        read += notifications.len();
        start = last.id + 1;
    }
    eprintln!("read {read} notifications");
    println!("{}", peak_resident_mib()?);
    Ok(())
}

/// In the child: replays one account, then prints the peak resident MiB.
pub fn replay(path: &str, id: &str) -> Result<()> {
    let app = Application::builder().sqlite(path).build()?;
    let account: BankAccount = app.repository().get(OriginatorId::text(id)?)?;
    eprintln!(
        "replayed {} events, balance {}",
        account.version(),
        account.balance
    );
    println!("{}", peak_resident_mib()?);
    Ok(())
}

/// The kernel's record of this process's peak resident set (`VmHWM`).
fn peak_resident_mib() -> Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or("no VmHWM in /proc/self/status")?;
    Ok(kib / 1024.0)
}
