//! Where a NATS store is and how it is laid out: the servers, the stream,
//! how many copies the cluster keeps.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};

/// The settings of a NATS JetStream store (`PERSISTENCE_MODULE=nats`).
///
/// One application keeps its events in one stream (named after it unless
/// `NATS_STREAM` says otherwise), one subject per aggregate, and its
/// snapshots in a second stream beside it.
///
/// ```
/// use es_core::persistence::NatsConfig;
/// let config = NatsConfig::new("nats://a:4222,nats://b:4222,nats://c:4222", "ORDERS")?.replicas(3);
/// assert_eq!(config.stream(), "ORDERS");
/// assert_eq!(config.to_string(), "nats://a:4222,nats://b:4222,nats://c:4222/ORDERS");
/// assert!(NatsConfig::new("nats://a:4222", "has.dots").is_err());
/// # Ok::<(), es_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatsConfig {
    /// The servers, comma-separated (`NATS_URL`); credentials in a URL
    /// (`nats://user:password@host`) are used and never shown.
    pub servers: String,
    stream: String,
    /// How many servers keep each stream (`NATS_REPLICAS`): 1, or 3 (or 5)
    /// on a cluster, so that losing a server loses nothing.
    pub num_replicas: usize,
    /// How long one request to the servers may take before it is tried again
    /// (`NATS_TIMEOUT`); a save is given four times this in all, which must
    /// outlast the election of a new stream leader (a few seconds).
    pub request_timeout: Duration,
}

impl NatsConfig {
    /// The URL used when `NATS_URL` is not set.
    pub const DEFAULT_URL: &'static str = "nats://127.0.0.1:4222";
    /// The request timeout used when `NATS_TIMEOUT` is not set.
    pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
    /// The longest stream name: with its snapshots stream's suffix, it stays
    /// within what every file system takes as a directory name.
    pub const MAX_STREAM_LEN: usize = 200;

    /// A store on `servers` in stream `stream`, kept by one server. The
    /// stream's name is letters, digits, `-` and `_` (it is also a part of
    /// the stream's subjects); anything else is an [`Error::Config`].
    pub fn new(servers: impl Into<String>, stream: impl Into<String>) -> Result<Self> {
        let stream = stream.into();
        check_stream_name("NATS_STREAM", &stream)?;
        Ok(NatsConfig {
            servers: servers.into(),
            stream,
            num_replicas: 1,
            request_timeout: Self::DEFAULT_REQUEST_TIMEOUT,
        })
    }

    /// Kept by `replicas` servers of the cluster.
    pub fn replicas(mut self, replicas: usize) -> Self {
        self.num_replicas = replicas;
        self
    }

    /// Each request given `timeout`.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The events stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The servers as a list, without the credentials: what logs and
    /// errors show.
    pub(crate) fn servers_shown(&self) -> String {
        self.servers
            .split(',')
            .map(|server| without_credentials(server.trim()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Display for NatsConfig {
    /// The servers without credentials, then the stream: `nats://host:4222/STREAM`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.servers_shown(), self.stream)
    }
}

impl fmt::Debug for NatsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConfig")
            .field("servers", &self.servers_shown())
            .field("stream", &self.stream)
            .field("num_replicas", &self.num_replicas)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// `nats://host:4222` of `nats://user:password@host:4222`.
fn without_credentials(server: &str) -> String {
    let (scheme, rest) = server.split_once("://").unwrap_or(("", server));
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    if scheme.is_empty() {
        host.to_owned()
    } else {
        format!("{scheme}://{host}")
    }
}

/// A stream name the server takes and a subject token can carry.
pub(crate) fn check_stream_name(variable: &str, stream: &str) -> Result<()> {
    let valid = !stream.is_empty()
        && stream.len() <= NatsConfig::MAX_STREAM_LEN
        && stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(Error::Config {
            variable: variable.to_owned(),
            value: stream.to_owned(),
            expected: format!(
                "a stream name of 1 to {} letters, digits, '-' or '_'",
                NatsConfig::MAX_STREAM_LEN
            ),
        })
    }
}

/// The stream named after an application: `OrderService` -> `OrderService`,
/// `order.service v2` -> `order_service_v2`; `events` without a name.
pub(crate) fn stream_for_application(name: Option<&str>) -> String {
    let Some(name) = name.filter(|name| !name.trim().is_empty()) else {
        return "events".to_owned();
    };
    let mut stream: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    stream.truncate(NatsConfig::MAX_STREAM_LEN);
    stream
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_never_shown() {
        let config = NatsConfig::new("nats://ada:s3cret@h1:4222, tls://h2", "S").expect("config");
        assert_eq!(config.to_string(), "nats://h1:4222,tls://h2/S");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn streams_are_named_after_applications() {
        assert_eq!(stream_for_application(Some("Orders")), "Orders");
        assert_eq!(
            stream_for_application(Some("order.service v2")),
            "order_service_v2"
        );
        assert_eq!(stream_for_application(None), "events");
        assert_eq!(stream_for_application(Some("  ")), "events");
        let long = stream_for_application(Some(&"x".repeat(500)));
        assert!(check_stream_name("NATS_STREAM", &long).is_ok());
    }

    #[test]
    fn bad_stream_names_are_refused_with_the_rule() {
        for bad in ["", "a.b", "a b", "a*", "a>", "ü"] {
            let error = NatsConfig::new("nats://h", bad).expect_err(bad);
            assert!(error.to_string().contains("letters, digits"), "{error}");
        }
    }
}
