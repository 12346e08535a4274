//! Reading a notification log served over HTTP (ureq, blocking), and
//! following it: [`RemoteLeader`] is a [`Leader`] like a local application,
//! so a process application or projection in another process tracks its
//! position in a remote log exactly as in a local one.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Deserialize;

use super::format::{EventDe, NotificationDe, NotificationJson, SectionJson};
use super::remote_listener::RemoteListener;
use crate::domain::event::{AnyEvent, DomainEvent};
use crate::domain::id::OriginatorId;
use crate::error::{BoxError, Error, Result};
use crate::persistence::{Listener, Mapper, Notification, StoredEvent};
use crate::system::Leader;

/// How long a request may take, beyond any wait it asks the server for.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest answer read: a page of large events can pass ureq's default
/// of 10 MB, and an answer past this is more than a reader should hold.
const MAX_BODY: u64 = 1 << 30;

/// One application's notification log at a server of
/// [`log_router`](super::log_router). The server's and the network's
/// failures are [`Error::Database`] (as a store's are), so that runners try
/// again; an answer that does not decode is [`Error::Corrupt`].
#[derive(Debug, Clone)]
pub struct RemoteLog {
    agent: ureq::Agent,
    /// `{base}/{application}`, no trailing slash.
    url: String,
    name: String,
    token: Option<BearerToken>,
}

/// A reader's token, never shown: its `Debug` says only that there is one.
#[derive(Clone)]
struct BearerToken(String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

#[derive(Debug, Deserialize)]
struct Description {
    max_notification_id: Option<u64>,
}

impl RemoteLog {
    /// The log of `application` at `base_url` (`http://host:port/prefix`).
    ///
    /// ```
    /// let log = es_core::interface::http::RemoteLog::new("http://127.0.0.1:1/", "orders");
    /// assert_eq!(log.name(), "orders");
    /// // Nothing listens there: the failure is the store's kind, retried by runners.
    /// assert!(matches!(log.max_id(), Err(es_core::Error::Database { .. })));
    /// ```
    pub fn new(base_url: &str, application: &str) -> Self {
        RemoteLog {
            agent: agent(ureq::tls::TlsConfig::default()),
            url: format!("{}/{application}", base_url.trim_end_matches('/')),
            name: application.to_owned(),
            token: None,
        }
    }

    /// Sends `token` with each request (`Authorization: Bearer`), for a
    /// server of [`log_router_for_readers`](super::log_router_for_readers).
    /// It appears in no error and no `Debug` output.
    ///
    /// ```
    /// use es_core::interface::http::RemoteLog;
    /// let log = RemoteLog::new("http://127.0.0.1:1", "orders").with_token("s3cret-of-billing");
    /// assert!(!format!("{log:?}").contains("s3cret"));
    /// ```
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(BearerToken(token.into()));
        self
    }

    /// Trusts the certificates of `pem` (the server's own, self-signed, or
    /// its private CA's) for an `https` URL, instead of the web's roots. PEM
    /// without a certificate, or one that does not parse, is an
    /// [`Error::Config`]. A server whose certificate none of them vouches
    /// for is then an [`Error::Database`], as any failure to connect.
    ///
    /// ```
    /// use es_core::interface::http::RemoteLog;
    /// let log = RemoteLog::new("https://127.0.0.1:1", "orders");
    /// let error = log.with_root_certificate(b"no certificate here").unwrap_err();
    /// assert!(matches!(error, es_core::Error::Config { .. }), "{error}");
    /// ```
    pub fn with_root_certificate(mut self, pem: &[u8]) -> Result<Self> {
        let bad = |why: String| Error::Config {
            variable: "root certificate".into(),
            value: why,
            expected: "PEM certificates (-----BEGIN CERTIFICATE-----)".into(),
        };
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(pem) {
            if let ureq::tls::PemItem::Certificate(cert) = item.map_err(|e| bad(e.to_string()))? {
                certs.push(cert);
            }
        }
        if certs.is_empty() {
            return Err(bad("no certificate".into()));
        }
        let tls = ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
            .build();
        self.agent = agent(tls);
        Ok(self)
    }

    /// The application's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The id of the log's last notification.
    pub fn max_id(&self) -> Result<Option<u64>> {
        let description: Description = self.get(&self.url)?;
        Ok(description.max_notification_id)
    }

    /// Up to `limit` notifications from `start` on.
    pub fn select(&self, start: u64, limit: usize) -> Result<Vec<Notification>> {
        self.select_waiting(start, limit, Duration::ZERO)
    }

    /// As [`select`](Self::select); if there are none yet, the server waits
    /// up to `wait` (at most its `MAX_WAIT`) for some before it answers.
    pub fn select_waiting(
        &self,
        start: u64,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<Notification>> {
        let url = format!(
            "{}/notifications?start={start}&limit={limit}&wait_ms={}",
            self.url,
            wait.as_millis()
        );
        let body = self.get_body(&url)?;
        let items: Vec<NotificationDe<'_>> = parse(&url, &body)?;
        items.iter().map(NotificationDe::to_notification).collect()
    }

    /// The section `section_id` (`"first,last"`), as the Python library's
    /// JSON client reads it.
    pub fn section(&self, section_id: &str) -> Result<(SectionJson, Vec<Notification>)> {
        let section: SectionJson = self.get(&format!("{}/notifications/{section_id}", self.url))?;
        let items = section
            .items
            .iter()
            .map(NotificationJson::to_notification)
            .collect::<Result<_>>()?;
        Ok((section, items))
    }

    /// The stored events of the originator `id`, oldest first: versions
    /// above `gt` and up to `lte` (each if given), at most `limit` (and at
    /// most the server's `MAX_LIMIT`). An id the server's store cannot keep
    /// (a text id where it keeps UUIDs only) is its 400, an
    /// [`Error::Database`] here.
    ///
    /// ```
    /// # #[cfg(feature = "http-server")] {
    /// use std::sync::Arc;
    /// use es_core::interface::http::{RemoteLog, log_router};
    /// use es_core::persistence::EventQuery;
    /// use es_core::prelude::*;
    /// # #[aggregate] pub struct Samovar { litres: u32 }
    /// # #[aggregate] impl Samovar {
    /// #     #[event("Filled")] pub fn fill(litres: u32) -> Self { Samovar { litres } }
    /// #     #[event("Topped")] pub fn top_up(&mut self, litres: u32) { self.litres += litres; }
    /// # }
    /// let kitchen = Arc::new(Application::builder().name("kitchen").in_memory().build()?);
    /// let mut samovar = Samovar::fill(1);
    /// samovar.top_up(1);
    /// samovar.top_up(1);
    /// kitchen.save(&mut samovar)?;
    /// let router = log_router([Arc::clone(&kitchen)])?;
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    /// let base = format!("http://{}", listener.local_addr()?);
    /// std::thread::spawn(move || runtime.block_on(async { axum::serve(listener, router).await }));
    ///
    /// let log = RemoteLog::new(&base, "kitchen");
    /// let events = log.aggregate_events(samovar.id(), Some(1), None, Some(10))?;
    /// assert_eq!(events.iter().map(|e| e.originator_version).collect::<Vec<_>>(), [2, 3]);
    /// assert_eq!(events, kitchen.recorder().select_events(&samovar.id(), EventQuery::new().gt(1))?);
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn aggregate_events(
        &self,
        id: impl Into<OriginatorId>,
        gt: Option<u64>,
        lte: Option<u64>,
        limit: Option<usize>,
    ) -> Result<Vec<StoredEvent>> {
        let id = id.into();
        // A text id is said to be one, so that text spelling a UUID stays text.
        let mut url = format!(
            "{}/aggregates/{}?text={}",
            self.url,
            PathSegment(&id.to_string()),
            !id.is_uuid()
        );
        for (name, value) in [("gt", gt), ("lte", lte)] {
            if let Some(value) = value {
                let _ = write!(url, "&{name}={value}");
            }
        }
        if let Some(limit) = limit {
            let _ = write!(url, "&limit={limit}");
        }
        let body = self.get_body(&url)?;
        let items: Vec<EventDe<'_>> = parse(&url, &body)?;
        items.iter().map(EventDe::to_stored_event).collect()
    }

    fn get<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T> {
        parse(url, &self.get_body(url)?)
    }

    /// The body of a successful answer to a GET of `url`.
    fn get_body(&self, url: &str) -> Result<String> {
        let failed = |source: BoxError| Error::Database {
            operation: "reading a notification log over HTTP",
            source,
        };
        let mut request = self.agent.get(url);
        if let Some(BearerToken(token)) = &self.token {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let mut response = request.call().map_err(|e| failed(e.into()))?;
        let status = response.status();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_string()
            .map_err(|e| failed(e.into()))?;
        if !status.is_success() {
            // The server's JSON error, or the start of whatever came back.
            let why = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|value| value.get("error")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| body.chars().take(200).collect());
            return Err(failed(format!("{url}: {status}: {why}").into()));
        }
        Ok(body)
    }
}

/// An agent that leaves statuses to the caller, with `tls`.
fn agent(tls: ureq::tls::TlsConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(REQUEST_TIMEOUT + super::MAX_WAIT))
        .http_status_as_error(false)
        .tls_config(tls)
        .build()
        .into()
}

/// Text as one segment of a URL's path: everything but the unreserved
/// characters percent-encoded, so that a `/`, `?` or `%` in a text id
/// stays inside the segment.
struct PathSegment<'a>(&'a str);

impl std::fmt::Display for PathSegment<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for byte in self.0.bytes() {
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                write!(f, "{}", char::from(byte))?;
            } else {
                write!(f, "%{byte:02X}")?;
            }
        }
        Ok(())
    }
}

fn parse<'a, T: serde::Deserialize<'a>>(url: &str, body: &'a str) -> Result<T> {
    serde_json::from_str(body)
        .map_err(|e| Error::Corrupt(format!("the answer of {url} does not decode: {e}")))
}

/// A remote log as a [`Leader`]: its events are decoded here, with `mapper`
/// set up as the leader's (transcoder, compressor, cipher), through this
/// program's topic registry.
///
/// ```
/// use es_core::interface::http::{RemoteLeader, RemoteLog};
/// use es_core::persistence::Mapper;
/// use es_core::system::Leader;
/// let leader = RemoteLeader::new(RemoteLog::new("http://127.0.0.1:1", "orders"), Mapper::default());
/// assert_eq!(leader.leader_name(), "orders");
/// ```
#[derive(Debug, Clone)]
pub struct RemoteLeader {
    log: RemoteLog,
    mapper: Mapper,
}

impl RemoteLeader {
    /// `log`, its events decoded with `mapper`.
    pub fn new(log: RemoteLog, mapper: Mapper) -> Self {
        RemoteLeader { log, mapper }
    }

    /// The remote log.
    pub fn log(&self) -> &RemoteLog {
        &self.log
    }
}

impl Leader for RemoteLeader {
    fn leader_name(&self) -> &str {
        self.log.name()
    }

    fn notifications(&self, start: u64, limit: usize) -> Result<Vec<Notification>> {
        self.log.select(start, limit)
    }

    fn decode(&self, stored: &StoredEvent) -> Result<DomainEvent<Box<dyn AnyEvent>>> {
        self.mapper.to_any_event(stored)
    }

    fn last_id(&self) -> Result<Option<u64>> {
        self.log.max_id()
    }

    /// A thread keeping a long poll open at the server: an idle follower
    /// costs one request every `MAX_WAIT`, and hears a save within a round
    /// trip.
    fn listen(&self) -> Result<Box<dyn Listener>> {
        Ok(Box::new(RemoteListener::start(self.log.clone())?))
    }
}
