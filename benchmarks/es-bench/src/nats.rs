//! The NATS JetStream store beside the raw async-nats client, on one server
//! and on a three-node cluster started here (nats-server 2.15 from
//! `.ci/install-nats-server`, or `ES_NATS_SERVER`), all on this machine.
//!
//! The raw baseline publishes the same bytes with the same checks: the
//! same subjects and headers, the expected last subject sequence from the
//! sequence its last publish got, a batch for several rows, and batched
//! direct gets to read.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use futures_util::StreamExt;
use uuid::Uuid;

use crate::measure::Record;
use crate::ours::{self, Backend};
use crate::raw::{RawStore, run_store};
use crate::sizes::Sizes;

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// What a NATS store's save is once acknowledged, with the servers' defaults.
pub const DURABILITY_SINGLE: &str =
    "one server; written to the OS, fsync every 2 min (sync_interval default)";
pub const DURABILITY_CLUSTER: &str =
    "three servers (R3), acknowledged once a majority has it; fsync every 2 min (default)";

/// How many times the other backends' W5 saves NATS's W5 shares: their
/// 4,000 take under a second on NATS with 16 writers, too short a time to
/// measure steadily.
const W5_SCALE: usize = 10;

/// Every workload on one server, then on a cluster of three: ours and the
/// raw client, `sizes.runs` times, each going first in turn (the servers'
/// stores grow through a part, and neither side should always meet them
/// emptier).
pub fn run(sizes: &Sizes) -> Result<Vec<Record>> {
    let once = Sizes {
        runs: 1,
        concurrent_saves: sizes.concurrent_saves * W5_SCALE,
        ..*sizes
    };
    let mut records: Vec<Record> = Vec::new();
    for (name, size, replicas, durability) in [
        ("nats", 1, 1, DURABILITY_SINGLE),
        ("nats-r3", 3, 3, DURABILITY_CLUSTER),
    ] {
        let servers = Servers::start(size)?;
        let backend = Backend::Nats {
            urls: servers.urls(),
            replicas,
        };
        let ours = || ours::run(&backend, &once);
        let raw = || {
            run_store(
                name,
                durability,
                &once,
                &|| RawNats::create(&servers.urls(), replicas),
                true,
            )
        };
        for run in 0..sizes.runs {
            eprintln!("  {name}: run {} of {}", run + 1, sizes.runs);
            let measured = if run % 2 == 0 {
                [ours()?, raw()?]
            } else {
                let raw = raw()?;
                [raw, ours()?]
            };
            Record::merge_all(&mut records, measured.concat());
        }
    }
    Ok(records)
}

/// nats-server processes on loopback, each with a store in a temporary
/// directory, killed when dropped.
struct Servers {
    children: Vec<Child>,
    ports: Vec<u16>,
    _dir: tempfile::TempDir,
}

impl Drop for Servers {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn server_binary() -> Result<PathBuf> {
    let binary = std::env::var_os("ES_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/nats-server/nats-server")
        });
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!(
            "no nats-server at {} (run .ci/install-nats-server or set ES_NATS_SERVER)",
            binary.display()
        )
        .into())
    }
}

impl Servers {
    fn start(size: usize) -> Result<Self> {
        let binary = server_binary()?;
        let dir = tempfile::tempdir()?;
        let ports: Vec<u16> = (0..size).map(|_| free_port()).collect::<Result<_>>()?;
        let routes: Vec<u16> = (0..size).map(|_| free_port()).collect::<Result<_>>()?;
        let mut children = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let store = dir.path().join(format!("n{i}"));
            let mut config = format!(
                "server_name: n{i}\nlisten: 127.0.0.1:{port}\njetstream {{ store_dir: {store:?} }}\n"
            );
            if size > 1 {
                let all: Vec<String> = routes
                    .iter()
                    .map(|p| format!("nats-route://127.0.0.1:{p}"))
                    .collect();
                config += &format!(
                    "cluster {{ name: bench, listen: 127.0.0.1:{}, routes: [{}] }}\n",
                    routes[i],
                    all.join(", ")
                );
            }
            let path = dir.path().join(format!("n{i}.conf"));
            std::fs::write(&path, config)?;
            children.push(
                Command::new(&binary)
                    .arg("-c")
                    .arg(&path)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            );
        }
        let servers = Servers {
            children,
            ports,
            _dir: dir,
        };
        servers.wait_for_jetstream(size)?;
        Ok(servers)
    }

    fn urls(&self) -> String {
        self.ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Until a stream of `replicas` copies can be made: a cluster must have
    /// elected its meta leader first.
    fn wait_for_jetstream(&self, replicas: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let probe = RawNats::create(&self.urls(), replicas);
            match probe {
                Ok(probe) => return probe.delete(),
                Err(error) if Instant::now() > deadline => {
                    return Err(format!("the NATS servers did not start: {error}").into());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

/// The raw client: a stream of its own, a subject per account.
struct RawNats {
    runtime: tokio::runtime::Runtime,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    stream: String,
    /// The sequence each account's last publish got.
    last: Mutex<HashMap<Uuid, u64>>,
}

impl RawNats {
    fn create(urls: &str, replicas: usize) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let stream = format!("raw_{}", Uuid::new_v4().simple());
        let servers = urls
            .split(',')
            .map(str::parse::<async_nats::ServerAddr>)
            .collect::<Result<Vec<_>, _>>()?;
        let (client, jetstream) = runtime.block_on(async {
            let client = async_nats::connect(servers).await?;
            let jetstream = jetstream::new(client.clone());
            jetstream
                .create_stream(stream::Config {
                    name: stream.clone(),
                    subjects: vec![format!("{stream}.e.>")],
                    num_replicas: replicas,
                    allow_atomic_publish: true,
                    allow_direct: true,
                    ..Default::default()
                })
                .await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((client, jetstream))
        })?;
        Ok(RawNats {
            runtime,
            client,
            jetstream,
            stream,
            last: Mutex::new(HashMap::new()),
        })
    }

    fn delete(self) -> Result<()> {
        let (jetstream, stream) = (self.jetstream.clone(), self.stream.clone());
        self.runtime
            .block_on(async move { jetstream.delete_stream(&stream).await })?;
        Ok(())
    }

    /// Messages of `subject` from `from` on, at most `limit` (batched direct
    /// gets); with whether more follow.
    async fn get(
        &self,
        subject: &str,
        from: u64,
        limit: usize,
    ) -> Result<(Vec<async_nats::Message>, bool)> {
        let inbox = self.client.new_inbox();
        let mut replies = self.client.subscribe(inbox.clone()).await?;
        let request = serde_json::json!({ "seq": from, "batch": limit, "next_by_subj": subject });
        self.client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{}", self.stream),
                inbox,
                request.to_string().into(),
            )
            .await?;
        let mut messages = Vec::new();
        while let Some(reply) = replies.next().await {
            match reply.status.map(|status| status.as_u16()) {
                None => messages.push(reply),
                Some(204) => {
                    let pending = reply
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Nats-Num-Pending"))
                        .and_then(|p| p.as_str().parse::<u64>().ok())
                        .unwrap_or(0);
                    return Ok((messages, pending > 0));
                }
                Some(404) => return Ok((messages, false)),
                Some(status) => return Err(format!("direct get: status {status}").into()),
            }
        }
        Err("the direct get's replies ended early".into())
    }
}

fn sequence_of(message: &async_nats::Message) -> Result<u64> {
    Ok(message
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Sequence"))
        .ok_or("no Nats-Sequence")?
        .as_str()
        .parse()?)
}

impl RawStore for RawNats {
    fn insert(&self, id: Uuid, first_version: u64, rows: &[(&str, Vec<u8>)]) -> Result<()> {
        let subject = format!("{}.e.{id}", self.stream);
        let expected = if first_version == 1 {
            0
        } else {
            *self
                .last
                .lock()
                .map_err(|_| "poisoned")?
                .get(&id)
                .ok_or("an unknown account")?
        };
        let save = Uuid::new_v4().simple().to_string();
        let count = rows.len();
        let ack = self.runtime.block_on(async {
            let mut reply = None;
            for (index, (topic, state)) in rows.iter().enumerate() {
                let mut headers = HeaderMap::new();
                headers.insert("Es-Topic", *topic);
                headers.insert("Es-Version", (first_version + index as u64).to_string());
                headers.insert("Nats-Msg-Id", format!("{save}-{index}"));
                if index == 0 {
                    headers.insert("Nats-Expected-Last-Subject-Sequence", expected.to_string());
                }
                if count > 1 {
                    headers.insert("Nats-Batch-Id", save.as_str());
                    headers.insert("Nats-Batch-Sequence", (index + 1).to_string());
                }
                let payload = state.clone().into();
                if index + 1 < count {
                    self.client
                        .publish_with_headers(subject.clone(), headers, payload)
                        .await?;
                } else {
                    if count > 1 {
                        headers.insert("Nats-Batch-Commit", "1");
                    }
                    reply = Some(
                        self.client
                            .request_with_headers(subject.clone(), headers, payload)
                            .await?,
                    );
                }
            }
            reply.ok_or_else(|| -> Box<dyn std::error::Error + Send + Sync> {
                "nothing to publish".into()
            })
        })?;
        let ack: serde_json::Value = serde_json::from_slice(&ack.payload)?;
        let sequence = ack["seq"]
            .as_u64()
            .ok_or_else(|| format!("the save was refused: {ack}"))?;
        self.last
            .lock()
            .map_err(|_| "poisoned")?
            .insert(id, sequence);
        Ok(())
    }

    fn select(&self, id: Uuid) -> Result<Vec<(String, Vec<u8>)>> {
        let subject = format!("{}.e.{id}", self.stream);
        self.runtime.block_on(async {
            let (mut rows, mut from) = (Vec::new(), 1);
            loop {
                let (page, more) = self.get(&subject, from, 256).await?;
                for message in page {
                    from = sequence_of(&message)? + 1;
                    let topic = message
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Es-Topic"))
                        .ok_or("no topic")?
                        .to_string();
                    rows.push((topic, message.payload.to_vec()));
                }
                if !more {
                    return Ok(rows);
                }
            }
        })
    }

    fn page(&self, start: i64, limit: usize) -> Result<(usize, i64)> {
        let subject = format!("{}.e.>", self.stream);
        self.runtime.block_on(async {
            let (page, _) = self.get(&subject, start.max(1) as u64, limit).await?;
            let mut last = 0;
            for message in &page {
                last = sequence_of(message)?;
                let _: (&[u8], Option<&async_nats::HeaderValue>) = (
                    &message.payload,
                    message.headers.as_ref().and_then(|h| h.get("Es-Topic")),
                );
            }
            Ok((page.len(), last as i64))
        })
    }
}
