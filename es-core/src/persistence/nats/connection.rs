//! The bridge between the recorder traits, which block, and async-nats,
//! which is async: a small runtime of the connection's own, on which every
//! request runs while the calling thread waits for its answer. The caller
//! may be any thread, a tokio worker included (the request never runs on
//! it, so no runtime is entered twice).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{HeaderMap, Message, ServerAddr};
use serde::Deserialize;

use super::config::NatsConfig;
use super::subject::Layout;
use crate::error::{Error, Result};

/// The oldest server with atomic batch publish, which every save of more
/// than one message needs.
const MIN_SERVER: (u64, u64) = (2, 12);

/// A connection to a NATS cluster (or one server), shared by an
/// application's events and snapshots recorders.
///
/// ```no_run
/// use es_core::persistence::{NatsConfig, NatsConnection, NatsRecorder};
/// let config = NatsConfig::new("nats://127.0.0.1:4222", "orders")?;
/// let connection = NatsConnection::connect(&config)?;
/// let events = NatsRecorder::events(&connection, true)?;
/// # Ok::<(), es_core::Error>(())
/// ```
#[derive(Clone)]
pub struct NatsConnection {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for NatsConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConnection")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    runtime: Option<tokio::runtime::Runtime>,
    pub(crate) client: async_nats::Client,
    pub(crate) jetstream: jetstream::Context,
    pub(crate) config: NatsConfig,
    /// The largest message the server takes, as it said when connected.
    pub(crate) max_payload: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks stop, which tokio
        // forbids on a runtime's own threads: the last recorder may well be
        // dropped on one.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl NatsConnection {
    /// Connects to `config.servers`, and checks that the server is one
    /// that can keep a save atomic (2.12 or later).
    pub fn connect(config: &NatsConfig) -> Result<Self> {
        let servers = config
            .servers
            .split(',')
            .map(str::trim)
            .filter(|server| !server.is_empty())
            .map(|server| {
                server.parse::<ServerAddr>().map_err(|error| Error::Config {
                    variable: "NATS_URL".into(),
                    value: config.servers_shown(),
                    expected: format!("comma-separated NATS server URLs ({error})"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if servers.is_empty() {
            return Err(Error::Config {
                variable: "NATS_URL".into(),
                value: String::new(),
                expected: "comma-separated NATS server URLs, such as nats://127.0.0.1:4222".into(),
            });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("es-nats")
            .enable_all()
            .build()
            .map_err(|error| Error::database("starting the NATS client's runtime", error))?;
        let options = async_nats::ConnectOptions::new()
            .name("es-core")
            .connection_timeout(config.request_timeout)
            .request_timeout(Some(config.request_timeout));
        let client = run_on(&runtime, async move {
            options
                .connect(servers)
                .await
                .map_err(|error| Error::database("connecting to NATS", error))
        })?;
        let info = client.server_info();
        let (version, max_payload) = (info.version, info.max_payload);
        if !at_least(&version, MIN_SERVER) {
            return Err(Error::Config {
                variable: "NATS_URL".into(),
                value: config.servers_shown(),
                expected: format!(
                    "a NATS server {}.{} or later, which publishes a batch atomically; this \
                     one is {version}",
                    MIN_SERVER.0, MIN_SERVER.1
                ),
            });
        }
        // The context spawns a task: it is made on the runtime.
        let for_context = client.clone();
        let mut jetstream = run_on(&runtime, async move { Ok(jetstream::new(for_context)) })?;
        jetstream.set_timeout(config.request_timeout);
        Ok(NatsConnection {
            inner: Arc::new(Inner {
                runtime: Some(runtime),
                client,
                jetstream,
                config: config.clone(),
                max_payload,
            }),
        })
    }

    /// The largest message the servers take.
    pub(crate) fn max_payload(&self) -> usize {
        self.inner.max_payload
    }

    /// The settings it was made with.
    pub fn config(&self) -> &NatsConfig {
        &self.inner.config
    }

    /// Runs `future` on the connection's runtime, waiting for its outcome.
    pub(crate) fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        match &self.inner.runtime {
            Some(runtime) => run_on(runtime, future),
            None => Err(Error::ShuttingDown),
        }
    }

    /// Runs `future` on the connection's runtime for as long as it lives.
    pub(crate) fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        if let Some(runtime) = &self.inner.runtime {
            runtime.spawn(future);
        }
    }

    /// The stream `layout` keeps its records in, made first if `create`.
    pub(crate) fn stream(&self, name: String, layout: &Layout, create: bool) -> Result<()> {
        let jetstream = self.inner.jetstream.clone();
        let config = stream::Config {
            name: name.clone(),
            subjects: layout.stream_subjects(),
            num_replicas: self.inner.config.num_replicas,
            storage: stream::StorageType::File,
            // Every save of several messages is one atomic batch.
            allow_atomic_publish: true,
            // Reads of an aggregate or of the log go to any replica's copy.
            allow_direct: true,
            // An event is never taken back.
            deny_delete: true,
            deny_purge: true,
            // The hint listeners wait on: an event is republished once stored.
            republish: layout.is_events().then(|| stream::Republish {
                source: layout.all_aggregates(),
                destination: layout.committed(),
                headers_only: true,
            }),
            duplicate_window: DUPLICATE_WINDOW,
            ..Default::default()
        };
        let wanted = config.clone();
        let info = self.run(async move {
            let result = if create {
                jetstream
                    .get_or_create_stream(config)
                    .await
                    .map_err(|error| Error::database("creating the NATS stream", error))
            } else {
                jetstream
                    .get_stream(&config.name)
                    .await
                    .map_err(|error| Error::database("opening the NATS stream", error))
            };
            let mut stream = result?;
            stream
                .info()
                .await
                .map(|info| info.config.clone())
                .map_err(|error| Error::database("reading the NATS stream's settings", error))
        })?;
        if !info.allow_atomic_publish || !info.allow_direct {
            return Err(Error::Config {
                variable: "NATS_STREAM".into(),
                value: name,
                expected: "a stream with atomic publish and direct gets allowed (an existing \
                           stream of another program has the name: choose another)"
                    .into(),
            });
        }
        let mut subjects = info.subjects.clone();
        subjects.sort();
        let mut expected = wanted.subjects;
        expected.sort();
        if subjects != expected {
            return Err(Error::Config {
                variable: "NATS_STREAM".into(),
                value: name,
                expected: format!(
                    "a stream of the subjects {expected:?}; it has {subjects:?} (an existing \
                     stream of another program has the name: choose another)"
                ),
            });
        }
        Ok(())
    }
}

/// How long the server remembers a message id: a retry within it is
/// answered as a duplicate, whatever else changed.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Runs `future` on `runtime` and waits for it from this thread, whatever
/// thread it is. A thread outside any runtime drives the future itself
/// (many threads saving at once then share the work, not two workers'
/// time); a thread of a runtime, which must not block inside it, hands it
/// to the connection's workers and waits for the outcome.
fn run_on<T: Send + 'static>(
    runtime: &tokio::runtime::Runtime,
    future: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    if tokio::runtime::Handle::try_current().is_err() {
        return runtime.block_on(future);
    }
    let (done, outcome) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        // The receiver is gone only if the caller's thread died: no one to tell.
        let _ = done.send(future.await);
    });
    outcome.recv().map_err(|_| Error::ShuttingDown)?
}

/// Whether a server version such as `2.15.1` or `2.12.0-RC.1` is at least `min`.
fn at_least(version: &str, min: (u64, u64)) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(|c: char| !c.is_ascii_digit())
        .map(|part| part.parse::<u64>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= min
}

/// What the server answered to a publish.
#[derive(Debug)]
pub(crate) enum Published {
    /// Stored: the sequence of its last message (of the earlier try, for
    /// a single message the server had already: a retry whose answer was lost).
    Stored { last_sequence: u64 },
    /// A subject's last message is no longer the one the save read: another
    /// writer got there first, or this save did on an earlier try.
    WrongLastSequence,
    /// Refused because messages of the save have ids the server saw
    /// already: an earlier try of this save was stored (its answer lost),
    /// or is being stored still.
    SeenBefore,
    /// Refused for another reason: the server's code and words.
    Refused { code: u64, description: String },
}

/// A publish's answer as JetStream sends it.
#[derive(Debug, Deserialize)]
struct PubAckReply {
    #[serde(default)]
    seq: Option<u64>,
    #[serde(default)]
    error: Option<ApiError>,
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    err_code: u64,
    #[serde(default)]
    description: String,
}

/// JetStream's codes for a failed expected-last-subject-sequence check
/// (alone, and in a batch).
const WRONG_LAST_SEQUENCE: [u64; 2] = [10071, 10164];
/// JetStream's codes for a batch with message ids already stored, or
/// being stored.
const SEEN_BEFORE: [u64; 2] = [10201, 10158];

impl Published {
    pub(crate) fn from_reply(reply: &Message) -> Result<Self> {
        if let Some(status) = reply.status {
            return Err(Error::database(
                "publishing to NATS",
                format!(
                    "the server answered {}{}",
                    status.as_u16(),
                    reply
                        .description
                        .as_deref()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default()
                ),
            ));
        }
        let ack: PubAckReply = serde_json::from_slice(&reply.payload)
            .map_err(|error| Error::database("reading NATS's answer to a publish", error))?;
        match (ack.error, ack.seq) {
            (Some(error), _) if WRONG_LAST_SEQUENCE.contains(&error.err_code) => {
                Ok(Published::WrongLastSequence)
            }
            (Some(error), _) if SEEN_BEFORE.contains(&error.err_code) => Ok(Published::SeenBefore),
            (Some(error), _) => Ok(Published::Refused {
                code: error.err_code,
                description: error.description,
            }),
            (None, Some(last_sequence)) => Ok(Published::Stored { last_sequence }),
            (None, None) => Err(Error::database(
                "reading NATS's answer to a publish",
                "it names no sequence",
            )),
        }
    }
}

/// One message of a save, ready to publish.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) subject: String,
    pub(crate) headers: HeaderMap,
    pub(crate) payload: bytes::Bytes,
}

impl Outgoing {
    /// Its size as the server counts it against `max_payload`, with room
    /// for the batch headers added when it is sent.
    pub(crate) fn size(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, values)| {
                values
                    .iter()
                    .map(|value| AsRef::<str>::as_ref(name).len() + value.as_str().len() + 4)
                    .sum::<usize>()
            })
            .sum();
        self.payload.len() + headers + 128
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_versions_are_compared_by_major_and_minor() {
        assert!(at_least("2.12.0", MIN_SERVER));
        assert!(at_least("2.15.1", MIN_SERVER));
        assert!(at_least("v3.0.0-beta", MIN_SERVER));
        assert!(at_least("2.12.0-RC.2", MIN_SERVER));
        assert!(!at_least("2.9.25", MIN_SERVER));
        assert!(!at_least("2.11.9", MIN_SERVER));
        assert!(!at_least("garbage", MIN_SERVER));
    }
}
