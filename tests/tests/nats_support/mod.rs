//! NATS JetStream servers that a test starts for itself: one standalone node,
//! or a cluster on loopback, each node in a temporary directory of its own
//! that goes away with it.
//!
//! The binary is `ES_NATS_SERVER`, or else the one `.ci/install-nats-server`
//! puts in `target/nats-server/`. The machine's own nats-server will not do:
//! atomic batch publish needs 2.12 or later. Without a binary a test fails
//! under `CI=true`, and otherwise says plainly that it was skipped.

#![allow(dead_code)] // Each test target uses its own part of this module.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a standalone node may take to serve JetStream.
pub const SINGLE_READY: Duration = Duration::from_secs(20);
/// How long a cluster may take to elect its JetStream meta leader.
pub const CLUSTER_READY: Duration = Duration::from_secs(30);
/// Starts tried when a port picked as free was taken before the server bound it.
const ATTEMPTS: usize = 3;
const POLL: Duration = Duration::from_millis(50);

/// The nats-server binary, or `None` (after saying so) if there is none and
/// this is not CI. Under `CI=true` a missing binary fails the test.
pub fn server_binary(what: &str) -> Option<PathBuf> {
    let (binary, source) = match std::env::var_os("ES_NATS_SERVER") {
        Some(path) => (PathBuf::from(path), "ES_NATS_SERVER"),
        None => (
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("the tests crate is inside the workspace")
                .join("target/nats-server/nats-server"),
            "the default place",
        ),
    };
    if binary.is_file() {
        return Some(binary);
    }
    let why = format!(
        "no nats-server at {} ({source}); run .ci/install-nats-server or set ES_NATS_SERVER",
        binary.display()
    );
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}, and CI=true");
    }
    // Straight to stderr: the test harness swallows `eprintln!` of a passing
    // test, and a skip must not look like a pass.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {what}: {why} (CI=true makes this a failure)"
    );
    None
}

/// One standalone node with JetStream, ready, or `None` if there is no
/// binary (see [`server_binary`]).
pub fn single(what: &str) -> Option<NatsNode> {
    let binary = server_binary(what)?;
    for attempt in 1..=ATTEMPTS {
        let ports = free_ports(2);
        let mut node = NatsNode::launch(&binary, "n1", ports[0], ports[1], None);
        match node.ready_by(Instant::now() + SINGLE_READY) {
            Ok(()) => return Some(node),
            Err(NotReady::PortTaken) if attempt < ATTEMPTS => continue,
            Err(why) => panic!("nats-server did not start: {why}\n{}", node.log()),
        }
    }
    unreachable!("the last attempt returns or panics")
}

/// A JetStream cluster on loopback, every node routing to every other.
pub struct NatsCluster {
    pub nodes: Vec<NatsNode>,
}

impl NatsCluster {
    /// `size` nodes, `n1` to `nN`, returned once every node is healthy and
    /// knows the meta leader; `None` if there is no binary.
    pub fn start(what: &str, size: usize) -> Option<NatsCluster> {
        assert!(size > 0, "a cluster needs a node");
        let binary = server_binary(what)?;
        for attempt in 1..=ATTEMPTS {
            let ports = free_ports(3 * size);
            let (clients, rest) = ports.split_at(size);
            let (monitors, routes) = rest.split_at(size);
            let mut cluster = NatsCluster {
                nodes: (0..size)
                    .map(|i| {
                        NatsNode::launch(
                            &binary,
                            &format!("n{}", i + 1),
                            clients[i],
                            monitors[i],
                            Some((routes[i], routes.to_vec())),
                        )
                    })
                    .collect(),
            };
            match cluster.ready_by(Instant::now() + CLUSTER_READY) {
                Ok(()) => return Some(cluster),
                Err((_, NotReady::PortTaken)) if attempt < ATTEMPTS => continue,
                Err((i, why)) => panic!(
                    "nats-server cluster did not start: node n{} {why}\n{}",
                    i + 1,
                    cluster.logs()
                ),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// Every node's client URL, comma-separated, as NATS clients take a
    /// server list.
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(NatsNode::url).collect();
        urls.join(",")
    }

    /// Kills node `i` at once (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again and waits until it is healthy and knows the
    /// meta leader, which needs a quorum of the nodes up.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
    }

    /// Waits until every node is healthy and knows the meta leader; panics
    /// with every node's log if that takes longer than `timeout`.
    pub fn wait_ready(&mut self, timeout: Duration) {
        if let Err((i, why)) = self.ready_by(Instant::now() + timeout) {
            panic!("node n{} is not ready: {why}\n{}", i + 1, self.logs());
        }
    }

    /// Every node's log, each under its name.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| format!("==== log of {} ====\n{}", node.name, node.log()))
            .collect()
    }

    /// Looks at every node on each round, so that a node that could not bind
    /// its ports is seen at once, not after another node's wait.
    fn ready_by(&mut self, deadline: Instant) -> Result<(), (usize, NotReady)> {
        let mut ready = vec![false; self.nodes.len()];
        loop {
            let mut last = None;
            for (i, node) in self.nodes.iter_mut().enumerate() {
                if ready[i] {
                    continue;
                }
                match node.check() {
                    Ok(()) => ready[i] = true,
                    Err(NotReady::Not(why)) => last = Some((i, why)),
                    Err(fatal) => return Err((i, fatal)),
                }
            }
            let Some((i, why)) = last else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err((i, NotReady::TimedOut(why)));
            }
            thread::sleep(POLL);
        }
    }
}

/// One nats-server process with JetStream on loopback. Its configuration,
/// store and log are in a temporary directory that lives as long as the
/// node, so a restart finds the same store. Dropping it kills the process.
pub struct NatsNode {
    binary: PathBuf,
    pub name: String,
    /// The client port.
    pub port: u16,
    /// The HTTP monitoring port.
    pub monitor_port: u16,
    /// The route port, for a node of a cluster.
    pub cluster_port: Option<u16>,
    dir: TempDir,
    child: Option<Child>,
}

impl NatsNode {
    /// Writes the configuration and starts the process; does not wait.
    fn launch(
        binary: &Path,
        name: &str,
        port: u16,
        monitor_port: u16,
        cluster: Option<(u16, Vec<u16>)>,
    ) -> NatsNode {
        let dir = tempfile::Builder::new()
            .prefix("es-nats-")
            .tempdir()
            .expect("a temporary directory for nats-server");
        let store = dir.path().join("store");
        let mut config = format!(
            "server_name: {name}\n\
             listen: 127.0.0.1:{port}\n\
             http: 127.0.0.1:{monitor_port}\n\
             # Large events must fit in one message, and large saves in one batch.\n\
             max_payload: 8MB\n\
             jetstream {{\n  store_dir: {store:?}\n  max_file_store: 1GB\n  max_memory_store: 256MB\n  \
             limits {{ batch {{ max_msgs: 10000 }} }}\n}}\n"
        );
        let cluster_port = cluster.map(|(route_port, routes)| {
            let routes: Vec<String> = routes
                .iter()
                .map(|p| format!("nats-route://127.0.0.1:{p}"))
                .collect();
            config += &format!(
                "cluster {{\n  name: es-test\n  listen: 127.0.0.1:{route_port}\n  routes: [{}]\n}}\n",
                routes.join(", ")
            );
            route_port
        });
        fs::write(dir.path().join("nats.conf"), config).expect("write the nats-server config");
        let mut node = NatsNode {
            binary: binary.to_owned(),
            name: name.to_owned(),
            port,
            monitor_port,
            cluster_port,
            dir,
            child: None,
        };
        node.relaunch();
        node
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The monitoring endpoint's base URL, `http://127.0.0.1:PORT`.
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// The store directory (JetStream keeps its files under it).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats-server.log")
    }

    /// What the server has written so far, over all its starts.
    pub fn log(&self) -> String {
        match fs::read(self.log_path()) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(error) => format!("(no log: {error})"),
        }
    }

    /// Whether the process is still there.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the process at once (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again (killing it first if it runs) on the same
    /// ports, configuration and store, and waits until it is ready.
    pub fn restart(&mut self) {
        let deadline = Instant::now() + self.ready_timeout();
        loop {
            self.relaunch();
            match self.ready_by(deadline) {
                Ok(()) => return,
                // Another test's probe for a free port may hold one of ours
                // for a moment; a server that took it would not let go.
                Err(NotReady::PortTaken) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(200))
                }
                Err(why) => panic!(
                    "nats-server {} did not start again: {why}\n{}",
                    self.name,
                    self.log()
                ),
            }
        }
    }

    /// As [`restart`](Self::restart) without the wait: for a node of a
    /// cluster whose readiness needs other nodes that are still down.
    pub fn relaunch(&mut self) {
        self.kill();
        let path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("open the nats-server log");
        if path.metadata().is_ok_and(|m| m.len() > 0) {
            let _ = writeln!(log, "==== started again ====");
        }
        let stderr: File = log.try_clone().expect("the nats-server log, twice");
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(self.dir.path().join("nats.conf"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|error| panic!("start {}: {error}", self.binary.display()));
        self.child = Some(child);
    }

    /// Waits until the node serves JetStream (for a node of a cluster: is
    /// healthy and knows the meta leader); panics with the log if that takes
    /// longer than `timeout`, or if the process ends.
    pub fn wait_ready(&mut self, timeout: Duration) {
        if let Err(why) = self.ready_by(Instant::now() + timeout) {
            panic!(
                "nats-server {} is not ready: {why}\n{}",
                self.name,
                self.log()
            );
        }
    }

    fn ready_timeout(&self) -> Duration {
        match self.cluster_port {
            Some(_) => CLUSTER_READY,
            None => SINGLE_READY,
        }
    }

    fn ready_by(&mut self, deadline: Instant) -> Result<(), NotReady> {
        loop {
            match self.check() {
                Err(NotReady::Not(why)) if Instant::now() >= deadline => {
                    return Err(NotReady::TimedOut(why));
                }
                Err(NotReady::Not(_)) => thread::sleep(POLL),
                done => return done,
            }
        }
    }

    /// One look: ready, not yet (and why), or never (the process ended).
    fn check(&mut self) -> Result<(), NotReady> {
        let Some(child) = self.child.as_mut() else {
            return Err(NotReady::Exited(None));
        };
        if let Ok(Some(status)) = child.try_wait() {
            // The log holds this start's lines last.
            let log = self.log();
            let this_start = log.rsplit("==== started again ====").next().unwrap_or("");
            return Err(if this_start.contains("address already in use") {
                NotReady::PortTaken
            } else {
                NotReady::Exited(Some(status))
            });
        }
        // Standalone, healthz would wait for nothing more; in a cluster it can
        // answer 200 before the meta leader is known, so /jsz is asked too.
        let clustered = self.cluster_port.is_some();
        let health = if clustered {
            "/healthz"
        } else {
            "/healthz?js-enabled-only=true"
        };
        let (status, body) =
            get(&format!("{}{health}", self.monitor_url())).map_err(NotReady::Not)?;
        if status != 200 {
            return Err(NotReady::Not(format!("healthz answered {status}: {body}")));
        }
        if clustered {
            let (status, body) =
                get(&format!("{}/jsz", self.monitor_url())).map_err(NotReady::Not)?;
            if status != 200 || meta_leader(&body).is_none() {
                return Err(NotReady::Not(format!(
                    "no meta leader yet (jsz answered {status})"
                )));
            }
        }
        Ok(())
    }
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        self.kill();
    }
}

enum NotReady {
    /// Not yet; why, as last seen.
    Not(String),
    TimedOut(String),
    /// A port it was given was taken by the time it bound it.
    PortTaken,
    Exited(Option<ExitStatus>),
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReady::Not(why) => write!(f, "not ready: {why}"),
            NotReady::TimedOut(why) => write!(f, "timed out: {why}"),
            NotReady::PortTaken => write!(f, "found a port of its taken by another socket"),
            NotReady::Exited(Some(status)) => write!(f, "exited: {status}"),
            NotReady::Exited(None) => write!(f, "is not running"),
        }
    }
}

/// `n` distinct ports free on loopback a moment ago, below the kernel's
/// ephemeral range where it can: a port picked there and freed by a killed
/// node is soon handed to some other socket of a busy machine (a client's
/// outgoing connection, another test's `bind(":0")`), so that the node could
/// not come back on it. Another test of this module may still pick the same
/// port before the server binds it: starts retry then.
fn free_ports(n: usize) -> Vec<u16> {
    let (low, high) = (20_000u32, ephemeral_start().clamp(20_000, 65_536));
    let mut listeners: Vec<TcpListener> = Vec::new();
    // Held until all are picked, so that the ports differ.
    for _ in 0..100 * n {
        if listeners.len() == n || high - low < 1_000 {
            break;
        }
        let port = (low + (random() % u64::from(high - low)) as u32) as u16;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            listeners.push(listener);
        }
    }
    while listeners.len() < n {
        listeners.push(TcpListener::bind("127.0.0.1:0").expect("a free port on loopback"));
    }
    listeners
        .iter()
        .map(|l| l.local_addr().expect("a bound address").port())
        .collect()
}

/// The first port the kernel hands out for `bind(":0")` and outgoing
/// connections.
fn ephemeral_start() -> u32 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A number no other call, here or in another test process, is likely to get.
fn random() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    // Each RandomState has keys of its own, seeded from the OS once a process.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u64(CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish()
}

/// The status and body of a GET, or why there was none.
fn get(url: &str) -> Result<(u16, String), String> {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    let agent = AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into()
    });
    let mut response = agent
        .get(url)
        .call()
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("GET {url}: {e}"))?;
    Ok((status, body))
}

/// The `meta_cluster.leader` of a `/jsz` answer, if there is one yet.
/// Read by hand: the module needs no JSON parser for one field.
fn meta_leader(jsz: &str) -> Option<&str> {
    let rest = &jsz[jsz.find("\"meta_cluster\"")?..];
    let rest = &rest[rest.find('{')?..];
    // The object ends where its braces balance (no name or id holds a brace).
    let mut depth = 0usize;
    let end = rest.char_indices().find_map(|(i, c)| {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            _ => {}
        }
        (depth == 0).then_some(i)
    })?;
    let object = &rest[..end];
    // Only the object itself has a `leader`; its replicas do not.
    let value = &object[object.find("\"leader\"")? + "\"leader\"".len()..];
    let value = value.trim_start().strip_prefix(':')?.trim_start();
    let value = value.strip_prefix('"')?;
    let leader = &value[..value.find('"')?];
    (!leader.is_empty()).then_some(leader)
}
