//! What every PostgreSQL test shares: where the server is, whether it is
//! there, and tables that are dropped when the test is done.
//!
//! The server is `ES_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`). If it cannot be reached, a test
//! fails under `CI=true`, and otherwise says plainly that it was skipped.

#![allow(dead_code)] // Each test target uses its own part of this module.

use std::io::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use es_core::Uuid;
use es_core::persistence::PostgresConfig;

/// The server the tests use when `ES_TEST_POSTGRES_URL` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The test server's URL.
pub fn url() -> String {
    std::env::var("ES_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// The test server's configuration, or `None` (after saying so) if it cannot
/// be reached and this is not CI. Under `CI=true` an unreachable server fails
/// the test.
pub fn server(test: &str) -> Option<PostgresConfig> {
    static REACHABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let url = url();
    let reachable = REACHABLE.get_or_init(|| {
        let mut config: postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
        config.connect_timeout(Duration::from_secs(5));
        let mut client =
            config
                .connect(postgres::NoTls)
                .map_err(|e| match std::error::Error::source(&e) {
                    Some(cause) => format!("{e}: {cause}"),
                    None => e.to_string(),
                })?;
        client.simple_query("SELECT 1").map_err(|e| e.to_string())?;
        Ok(())
    });
    match reachable {
        Ok(()) => {
            Some(PostgresConfig::from_url(&url).expect("ES_TEST_POSTGRES_URL is a valid URL"))
        }
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL at {url} is not reachable and CI=true: {why}")
        }
        Err(why) => {
            // Straight to stderr: the test harness swallows `eprintln!` of a
            // passing test, and a skip must not look like a pass.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: PostgreSQL at {url} is not reachable ({why}); \
                 start it or set ES_TEST_POSTGRES_URL (CI=true makes this a failure)"
            );
            None
        }
    }
}

/// A table prefix no other test uses.
pub fn unique_prefix() -> String {
    format!("es_test_{}", Uuid::new_v4().simple())
}

/// Drops the tables of `prefix` (in `schema`) when dropped.
pub struct DropTables {
    pub schema: String,
    pub prefix: String,
}

impl DropTables {
    pub fn new(prefix: &str) -> Self {
        DropTables {
            schema: "public".into(),
            prefix: prefix.into(),
        }
    }
}

impl Drop for DropTables {
    fn drop(&mut self) {
        // Names made by `unique_prefix`, so safe to write into the statement.
        let sql = format!(
            "DROP TABLE IF EXISTS \"{schema}\".\"{prefix}_events\", \"{schema}\".\"{prefix}_snapshots\", \"{schema}\".\"{prefix}_tracking\"",
            schema = self.schema,
            prefix = self.prefix
        );
        match postgres::Client::connect(&url(), postgres::NoTls) {
            Ok(mut client) => {
                if let Err(error) = client.batch_execute(&sql) {
                    eprintln!("could not drop the test tables of {}: {error}", self.prefix);
                }
            }
            Err(error) => eprintln!("could not drop the test tables of {}: {error}", self.prefix),
        }
    }
}

/// Drops, when dropped, every table of `schema` whose name starts with
/// `start`: for tables whose exact names the test does not choose.
pub struct DropTablesStartingWith {
    pub schema: String,
    pub start: String,
}

impl Drop for DropTablesStartingWith {
    fn drop(&mut self) {
        let result = postgres::Client::connect(&url(), postgres::NoTls).and_then(|mut client| {
            let names: Vec<String> = client
                .query(
                    "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND starts_with(tablename, $2)",
                    &[&self.schema, &self.start],
                )?
                .iter()
                .map(|row| row.get(0))
                .collect();
            for name in names {
                // Names read from the catalog, quoted with their quotes doubled.
                client.batch_execute(&format!(
                    "DROP TABLE IF EXISTS \"{}\".\"{}\"",
                    self.schema.replace('"', "\"\""),
                    name.replace('"', "\"\"")
                ))?;
            }
            Ok(())
        });
        if let Err(error) = result {
            eprintln!(
                "could not drop the test tables starting with {}: {error}",
                self.start
            );
        }
    }
}

/// A TCP proxy on loopback to the test server that can be told to stop
/// passing bytes on, in both directions, without closing anything (a peer gone
/// silent, as a dead link or a stuck middlebox looks to the client), or to go
/// away and come back on the same port (a server restarting). Its threads end
/// when it is dropped.
pub struct StallingProxy {
    pub port: u16,
    upstream: String,
    forwarding: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Accept loops and pumps run while this is the number they started with.
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl StallingProxy {
    /// A proxy to `upstream` (`host:port`), forwarding until told otherwise.
    pub fn start(upstream: String) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let proxy = StallingProxy {
            port: listener.local_addr()?.port(),
            upstream,
            forwarding: Default::default(),
            generation: Default::default(),
        };
        proxy.forward(true);
        proxy.serve(listener)?;
        Ok(proxy)
    }

    /// Stops (`false`) or resumes (`true`) passing bytes on; what arrives
    /// while stopped is dropped.
    pub fn forward(&self, on: bool) {
        self.forwarding
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Closes every connection and the port: connecting is refused until [`up`](Self::up).
    pub fn down(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        // The accept loop looks every 10 ms.
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Listens on the same port again.
    pub fn up(&self) -> std::io::Result<()> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", self.port))?;
        self.serve(listener)
    }

    fn serve(&self, listener: std::net::TcpListener) -> std::io::Result<()> {
        listener.set_nonblocking(true)?;
        let (upstream, forwarding, generation) = (
            self.upstream.clone(),
            self.forwarding.clone(),
            self.generation.clone(),
        );
        let current = generation.load(std::sync::atomic::Ordering::SeqCst);
        std::thread::spawn(move || {
            accept_loop(listener, &upstream, &forwarding, &generation, current)
        });
        Ok(())
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

type Shared<T> = std::sync::Arc<T>;

fn accept_loop(
    listener: std::net::TcpListener,
    upstream: &str,
    forwarding: &Shared<std::sync::atomic::AtomicBool>,
    generation: &Shared<std::sync::atomic::AtomicU64>,
    current: u64,
) {
    use std::sync::atomic::Ordering;
    while generation.load(Ordering::SeqCst) == current {
        match listener.accept() {
            Ok((client, _)) => {
                let Ok(server) = std::net::TcpStream::connect(upstream) else {
                    continue;
                };
                for (from, to) in [
                    (client.try_clone(), server.try_clone()),
                    (server.try_clone(), client.try_clone()),
                ] {
                    let (Ok(from), Ok(to)) = (from, to) else {
                        continue;
                    };
                    let (forwarding, generation) = (forwarding.clone(), generation.clone());
                    std::thread::spawn(move || pump(from, to, &forwarding, &generation, current));
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Copies `from` to `to` while forwarding, drops what comes while not, and
/// ends at end of stream, on an error, or when its generation is over.
fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    forwarding: &std::sync::atomic::AtomicBool,
    generation: &std::sync::atomic::AtomicU64,
    current: u64,
) {
    use std::io::Read as _;
    use std::sync::atomic::Ordering;
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buffer = [0u8; 16 * 1024];
    while generation.load(Ordering::SeqCst) == current {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) if forwarding.load(Ordering::SeqCst) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}
