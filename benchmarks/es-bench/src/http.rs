//! H1, the log over HTTP: a reader in this process reads a 100,000-event log
//! served by another process of this same program (`es-bench serve-log`),
//! in pages of 1,000, beside the same read from the local store.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use es_core::interface::http::RemoteLog;
use es_core::persistence::Synchronous;
use es_core::prelude::*;

use crate::measure::{Record, rate};
use crate::model::fill_log;
use crate::sizes::Sizes;

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// The application whose log is served.
const NAME: &str = "log";

fn app(path: &Path) -> Result<Application> {
    // Filling is not measured: commit at checkpoints only, to fill faster.
    Ok(Application::builder()
        .name(NAME)
        .sqlite(path)
        .sqlite_synchronous(Synchronous::Normal)
        .build()?)
}

/// The log server, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// H1-local and H1 on SQLite, `sizes.runs` times, interleaved.
pub fn run(sizes: &Sizes) -> Result<Vec<Record>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("log.sqlite3");
    let durability = "fsync on (WAL, synchronous=FULL)";
    eprintln!("http: filling a log of {} events", sizes.http_log_events);
    let local = app(&path)?;
    fill_log(&local, sizes.http_log_events)?;
    let mut child = Command::new(std::env::current_exe()?)
        .arg("serve-log")
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("the server's stdout")?;
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let port = line
        .trim()
        .strip_prefix("listening ")
        .ok_or_else(|| format!("the log server said {line:?}"))?;
    let remote = RemoteLog::new(&format!("http://127.0.0.1:{port}"), NAME);

    let note = |how: &str| {
        Some(format!(
            "{} events read in pages of {} {how}, notifications not decoded",
            sizes.http_log_events, sizes.page
        ))
    };
    let mut over_http = Record::new("es-rs", "sqlite", "H1", "events/s", durability);
    over_http.note = note("over HTTP from another process (loopback, JSON, base64 states)");
    let mut from_store = Record::new("es-rs", "sqlite", "H1-local", "events/s", durability);
    from_store.note = note("from the local store");
    for _ in 0..sizes.runs {
        let started = Instant::now();
        let read = read_all(|start| Ok(local.notification_log().select(start, sizes.page)?))?;
        from_store.runs.push(rate(read, started.elapsed()));
        let started = Instant::now();
        let read = read_all(|start| Ok(remote.select(start, sizes.page)?))?;
        over_http.runs.push(rate(read, started.elapsed()));
        assert_eq!(read, sizes.http_log_events);
    }
    drop(server);
    Ok(vec![from_store, over_http])
}

/// Reads pages from id 1 until one comes back empty; how many notifications.
fn read_all(
    page: impl Fn(u64) -> Result<Vec<es_core::persistence::Notification>>,
) -> Result<usize> {
    let (mut start, mut read) = (1, 0);
    loop {
        let notifications = page(start)?;
        let Some(last) = notifications.last() else {
            return Ok(read);
        };
        read += notifications.len();
        start = last.id + 1;
    }
}

/// `es-bench serve-log FILE`: serves the log of FILE on a free port of
/// loopback, says `listening PORT`, and serves until killed.
pub fn serve(path: &str) -> Result<()> {
    let app = Arc::new(app(Path::new(path))?);
    let router = es_core::interface::http::log_router([app])?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("listening {}", listener.local_addr()?.port());
        axum::serve(listener, router).await?;
        Ok(())
    })
}
