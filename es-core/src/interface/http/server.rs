//! Serving applications' notification logs over HTTP (axum). The store's
//! calls block, so each request's reading runs on tokio's blocking pool,
//! never on the executor's threads.
//!
//! ```text
//! GET /{application}                              {"name": ..., "max_notification_id": n|null}
//! GET /{application}/notifications/{first},{last} a section (see `format`)
//! GET /{application}/notifications?start=&limit=&topics=a,b&wait_ms=
//!                                                 a list of notifications; with wait_ms, an
//!                                                 empty answer waits up to that long (at most
//!                                                 MAX_WAIT) for the log to grow
//! GET /{application}/aggregates/{id}?gt=&lte=&limit=&desc=true&text=true
//!                                                 one originator's stored events, oldest first
//!                                                 (newest with desc), versions above gt and up
//!                                                 to lte; the id is a UUID in any of its
//!                                                 spellings, else a text id (always one with
//!                                                 text=true)
//! ```
//!
//! Errors are JSON, `{"error": "..."}`: 400 for a bad section id, originator
//! id or query, 401 for a missing or wrong token, 404 for an unknown
//! application or route, 405 for a method other than GET or HEAD, 429 (with
//! `Retry-After`) past the request-rate limit, 500 for the store's failure.
//! Lists hold at most [`MAX_LIMIT`] items, whatever they ask for.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::MAX_WAIT;
use super::format::{EventRef, NotificationRef};
use super::guard::{Guard, RateLimit, guard};
use crate::application::Application;
use crate::domain::id::OriginatorId;
use crate::error::Error;
use crate::persistence::{EventQuery, select_notifications_waiting};

/// The most notifications or events one request returns, whatever it asks for.
pub const MAX_LIMIT: usize = 10_000;

/// The notification logs of some applications, served to whom and how
/// often it is told, made into an axum router by [`router`](Self::router).
/// Its `Debug` shows how many reader tokens it holds, never one of them.
///
/// ```
/// use std::sync::Arc;
/// use es_core::interface::http::LogServer;
/// use es_core::prelude::*;
/// let app = Arc::new(Application::builder().name("ledger").in_memory().build()?);
/// let server = LogServer::new([app])
///     .readers(["token-of-audit", "token-of-reports"])
///     .rate_limit(20, 50);
/// assert!(!format!("{server:?}").contains("token-of-audit"));
/// let router = server.router()?;
/// # let _ = router;
/// # Ok::<(), es_core::Error>(())
/// ```
pub struct LogServer {
    apps: Vec<Arc<Application>>,
    tokens: Option<Vec<String>>,
    rate: Option<(u32, u32)>,
    longest_wait: Duration,
}

impl std::fmt::Debug for LogServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .apps
            .iter()
            .map(|app| app.name().unwrap_or_default())
            .collect();
        f.debug_struct("LogServer")
            .field("apps", &names)
            .field("reader_tokens", &self.tokens.as_ref().map(Vec::len))
            .field("rate_limit", &self.rate)
            .field("longest_wait", &self.longest_wait)
            .finish()
    }
}

impl LogServer {
    /// The logs of `apps`, by their names, served to anyone, as often as
    /// asked. Applications without a name, or two of one name, are refused
    /// when the router is made.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use es_core::interface::http::LogServer;
    /// use es_core::prelude::*;
    /// let app = Arc::new(Application::builder().name("ledger").in_memory().build()?);
    /// let server = LogServer::new([app]);
    /// assert!(format!("{server:?}").contains("ledger"));
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn new(apps: impl IntoIterator<Item = Arc<Application>>) -> Self {
        LogServer {
            apps: apps.into_iter().collect(),
            tokens: None,
            rate: None,
            longest_wait: MAX_WAIT,
        }
    }

    /// Answers only requests that carry one of `tokens`
    /// (`Authorization: Bearer <token>`): one per reader, so that one can be
    /// withdrawn without the others. Any other request gets 401 with a JSON
    /// error. Tokens are compared in constant time and never written
    /// anywhere. No token, or an empty one, makes [`router`](Self::router)
    /// an [`Error::Config`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use es_core::interface::http::LogServer;
    /// use es_core::prelude::*;
    /// let app = Arc::new(Application::builder().name("ledger").in_memory().build()?);
    /// let server = LogServer::new([app]).readers(["token-of-audit"]);
    /// assert!(!format!("{server:?}").contains("token-of-audit"));
    /// let router = server.router()?;
    /// # let _ = router;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn readers(mut self, tokens: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.tokens = Some(tokens.into_iter().map(Into::into).collect());
        self
    }

    /// Lets each reader make `per_second` requests a second on average and
    /// `burst` at once; past that a request gets 429 with a JSON error and
    /// `Retry-After`. A reader is its token when there are
    /// [`readers`](Self::readers), else its IP address when the router is
    /// served with `into_make_service_with_connect_info::<SocketAddr>()` (or
    /// by `serve_tls`, feature `http-tls`), else every client is one reader.
    /// A zero makes [`router`](Self::router) an [`Error::Config`].
    ///
    /// ```
    /// use std::net::SocketAddr;
    /// use std::sync::Arc;
    /// use es_core::interface::http::LogServer;
    /// use es_core::prelude::*;
    /// let app = Arc::new(Application::builder().name("ledger").in_memory().build()?);
    /// let router = LogServer::new([app]).rate_limit(5, 10).router()?;
    /// // Each client address gets its own 5 a second:
    /// let service = router.into_make_service_with_connect_info::<SocketAddr>();
    /// # let _ = service;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn rate_limit(mut self, per_second: u32, burst: u32) -> Self {
        self.rate = Some((per_second, burst));
        self
    }

    /// Bounds the wait a request for new notifications may ask for
    /// (`wait_ms`) below [`MAX_WAIT`], which also bounds it.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// use es_core::interface::http::LogServer;
    /// use es_core::prelude::*;
    /// let app = Arc::new(Application::builder().name("ledger").in_memory().build()?);
    /// let router = LogServer::new([app]).longest_wait(Duration::from_secs(5)).router()?;
    /// # let _ = router;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn longest_wait(mut self, wait: Duration) -> Self {
        self.longest_wait = wait.min(MAX_WAIT);
        self
    }

    /// The router to serve (`axum::serve`) or nest in the program's own.
    /// Applications without a name, two of one name, no token or an empty
    /// one, or a zero rate are an [`Error::Config`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use es_core::interface::http::LogServer;
    /// use es_core::prelude::*;
    /// let unnamed = Arc::new(Application::builder().in_memory().build()?);
    /// assert!(matches!(LogServer::new([unnamed]).router(), Err(es_core::Error::Config { .. })));
    /// let ledger = Arc::new(Application::builder().name("ledger").in_memory().build()?);
    /// let router = LogServer::new([ledger]).router()?;
    /// let app = axum::Router::new().nest("/logs", router); // served under /logs/ledger/...
    /// # let _ = app;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn router(self) -> Result<axum::Router, Error> {
        let apps = by_name(self.apps)?;
        let tokens = self.tokens.map(checked_tokens).transpose()?;
        let rate = self.rate.map(checked_rate).transpose()?;
        let served = Arc::new(Served {
            apps,
            longest_wait: self.longest_wait,
        });
        let router = axum::Router::new()
            .route("/{application}", get(describe))
            .route("/{application}/notifications", get(select))
            .route("/{application}/notifications/{section_id}", get(section))
            .route("/{application}/aggregates/{originator_id}", get(aggregate))
            .fallback(no_route)
            .method_not_allowed_fallback(only_get)
            .with_state(served);
        if tokens.is_none() && rate.is_none() {
            return Ok(router);
        }
        let checks = Arc::new(Guard { tokens, rate });
        Ok(router.layer(axum::middleware::from_fn_with_state(checks, guard)))
    }
}

fn by_name(apps: Vec<Arc<Application>>) -> Result<HashMap<String, Arc<Application>>, Error> {
    let mut by_name = HashMap::new();
    for app in apps {
        let name = app.name().unwrap_or_default().to_owned();
        if name.is_empty() {
            return Err(Error::Config {
                variable: "application name".into(),
                value: String::new(),
                expected: "a name for each application whose log is served".into(),
            });
        }
        if by_name.insert(name.clone(), app).is_some() {
            return Err(Error::Config {
                variable: "application name".into(),
                value: name,
                expected: "one application of each name".into(),
            });
        }
    }
    Ok(by_name)
}

fn checked_tokens(tokens: Vec<String>) -> Result<Vec<Vec<u8>>, Error> {
    if tokens.is_empty() || tokens.iter().any(String::is_empty) {
        return Err(Error::Config {
            variable: "reader tokens".into(),
            value: String::new(),
            expected: "at least one token, none of them empty".into(),
        });
    }
    Ok(tokens.into_iter().map(String::into_bytes).collect())
}

fn checked_rate((per_second, burst): (u32, u32)) -> Result<RateLimit, Error> {
    match (NonZeroU32::new(per_second), NonZeroU32::new(burst)) {
        (Some(per_second), Some(burst)) => Ok(RateLimit::new(per_second, burst)),
        _ => Err(Error::Config {
            variable: "rate limit".into(),
            value: format!("{per_second} a second, bursts of {burst}"),
            expected: "at least 1 request a second and bursts of at least 1".into(),
        }),
    }
}

/// The notification logs of `apps`, by their names, as an axum router to
/// serve (`axum::serve`) or nest in the program's own: [`LogServer::new`]
/// with nothing more. Applications without a name, or two of one name, are
/// refused.
///
/// ```
/// use std::sync::Arc;
/// use es_core::prelude::*;
/// let app = Arc::new(Application::builder().name("orders").in_memory().build()?);
/// let router = es_core::interface::http::log_router([app])?;
/// # let _ = router;
/// # Ok::<(), es_core::Error>(())
/// ```
pub fn log_router(apps: impl IntoIterator<Item = Arc<Application>>) -> Result<axum::Router, Error> {
    LogServer::new(apps).router()
}

/// As [`log_router`], answering only requests that carry one of `tokens`:
/// [`LogServer::readers`], which says more.
///
/// ```
/// use std::sync::Arc;
/// use es_core::prelude::*;
/// let app = Arc::new(Application::builder().name("orders").in_memory().build()?);
/// let router = es_core::interface::http::log_router_for_readers(
///     [app],
///     ["token-of-billing", "token-of-shipping"],
/// )?;
/// # let _ = router;
/// # Ok::<(), es_core::Error>(())
/// ```
pub fn log_router_for_readers(
    apps: impl IntoIterator<Item = Arc<Application>>,
    tokens: impl IntoIterator<Item = impl Into<String>>,
) -> Result<axum::Router, Error> {
    LogServer::new(apps).readers(tokens).router()
}

/// What the routes share: the applications by name, and the longest wait.
struct Served {
    apps: HashMap<String, Arc<Application>>,
    longest_wait: Duration,
}

type Apps = Arc<Served>;

/// A request's failure, answered as JSON with its status.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let status = match error {
            Error::InvalidSectionId { .. } | Error::InvalidId { .. } => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure(status, error.to_string())
    }
}

impl From<PathRejection> for Failure {
    fn from(rejection: PathRejection) -> Self {
        Failure(StatusCode::BAD_REQUEST, rejection.body_text())
    }
}

impl From<QueryRejection> for Failure {
    fn from(rejection: QueryRejection) -> Self {
        Failure(StatusCode::BAD_REQUEST, rejection.body_text())
    }
}

async fn no_route() -> Failure {
    Failure(
        StatusCode::NOT_FOUND,
        "no such route: the log is served at /{application}, \
         /{application}/notifications[/{first},{last}] and /{application}/aggregates/{id}"
            .into(),
    )
}

async fn only_get() -> Response {
    let mut response = Failure(
        StatusCode::METHOD_NOT_ALLOWED,
        "the log is read-only: only GET (and HEAD) is served".into(),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

fn find(apps: &Apps, name: &str) -> Result<Arc<Application>, Failure> {
    apps.apps.get(name).cloned().ok_or_else(|| {
        let mut known: Vec<&String> = apps.apps.keys().collect();
        known.sort();
        Failure(
            StatusCode::NOT_FOUND,
            format!("no application {name:?} is served here; these are: {known:?}"),
        )
    })
}

/// Runs the store's blocking `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| {
            Failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the reader: {e}"),
            )
        })?
        .map_err(Failure::from)
}

async fn describe(
    State(apps): State<Apps>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Response, Failure> {
    let Path(name) = name?;
    let app = find(&apps, &name)?;
    let max = blocking(move || app.notification_log().max_id()).await?;
    Ok(Json(serde_json::json!({ "name": name, "max_notification_id": max })).into_response())
}

async fn section(
    State(apps): State<Apps>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response, Failure> {
    let Path((name, section_id)) = path?;
    let app = find(&apps, &name)?;
    let section = blocking(move || app.notification_log().section(&section_id)).await?;
    // A section with a next one can no longer change: ids are committed in
    // order, so nothing new can appear within it.
    let immutable = section.next_id.is_some();
    let etag = section
        .id
        .as_deref()
        .and_then(|id| HeaderValue::from_str(&format!("\"{id}\"")).ok());
    if let (true, Some(etag)) = (immutable, &etag)
        && headers.get(header::IF_NONE_MATCH) == Some(etag)
    {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    }
    let body = SectionOut {
        id: section.id.as_deref(),
        next_id: section.next_id.as_deref(),
        items: section.items.iter().map(NotificationRef).collect(),
    };
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    match (immutable, etag) {
        (true, Some(etag)) => {
            headers.insert(header::ETAG, etag);
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
        }
        _ => {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        }
    }
    Ok(response)
}

/// A section as [`SectionJson`](super::SectionJson), written from the
/// stored events without copying them.
#[derive(serde::Serialize)]
struct SectionOut<'a> {
    id: Option<&'a str>,
    next_id: Option<&'a str>,
    items: Vec<NotificationRef<'a>>,
}

#[derive(Debug, Deserialize)]
struct SelectQuery {
    start: Option<u64>,
    limit: Option<usize>,
    /// Comma-separated.
    topics: Option<String>,
    wait_ms: Option<u64>,
}

async fn select(
    State(apps): State<Apps>,
    name: Result<Path<String>, PathRejection>,
    query: Result<Query<SelectQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let Path(name) = name?;
    let Query(query) = query?;
    let app = find(&apps, &name)?;
    let start = query.start.unwrap_or(1).max(1);
    let limit = query.limit.unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT);
    let topics: Vec<String> = query
        .topics
        .iter()
        .flat_map(|topics| topics.split(','))
        .filter(|topic| !topic.is_empty())
        .map(str::to_owned)
        .collect();
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0)).min(apps.longest_wait);
    let notifications = blocking(move || {
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        select_notifications_waiting(app.recorder(), start, limit, &topics, wait)
    })
    .await?;
    let body: Vec<NotificationRef<'_>> = notifications.iter().map(NotificationRef).collect();
    Ok(Json(body).into_response())
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    gt: Option<u64>,
    lte: Option<u64>,
    limit: Option<usize>,
    desc: Option<bool>,
    /// The id is text even if it spells a UUID (as `originator_id_is_text`).
    text: Option<bool>,
}

async fn aggregate(
    State(apps): State<Apps>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let Path((name, id)) = path?;
    let app = find(&apps, &name)?;
    let Query(query) = query?;
    let originator_id = originator_id(&id, query.text.unwrap_or(false))?;
    let limit = query.limit.unwrap_or(MAX_LIMIT).min(MAX_LIMIT);
    if limit == 0 {
        return Ok(Json(Vec::<()>::new()).into_response());
    }
    let mut selection = EventQuery::new().limit(limit);
    selection.gt = query.gt;
    selection.lte = query.lte;
    selection.desc = query.desc.unwrap_or(false);
    let events = blocking(move || app.recorder().select_events(&originator_id, selection)).await?;
    let body: Vec<EventRef<'_>> = events.iter().map(EventRef).collect();
    Ok(Json(body).into_response())
}

/// The id `id` spells, read as the notifications' `originator_id` is: a
/// UUID (in any spelling) unless `text` says otherwise, else a text id.
/// A recorder that keeps UUIDs only refuses a text id itself, as a 400 too.
fn originator_id(id: &str, text: bool) -> Result<OriginatorId, Failure> {
    match uuid::Uuid::try_parse(id) {
        Ok(uuid) if !text => Ok(uuid.into()),
        _ => OriginatorId::text(id).map_err(Failure::from),
    }
}
