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
//! application or route, 500 for the store's failure. Lists hold at most
//! [`MAX_LIMIT`] items, whatever they ask for.

use std::collections::HashMap;
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
use crate::application::Application;
use crate::domain::id::OriginatorId;
use crate::error::Error;
use crate::persistence::EventQuery;

/// The most notifications or events one request returns, whatever it asks for.
pub const MAX_LIMIT: usize = 10_000;

/// The notification logs of `apps`, by their names, as an axum router to
/// serve (`axum::serve`) or nest in the program's own. Applications without
/// a name, or two of one name, are refused.
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
    Ok(axum::Router::new()
        .route("/{application}", get(describe))
        .route("/{application}/notifications", get(select))
        .route("/{application}/notifications/{section_id}", get(section))
        .route("/{application}/aggregates/{originator_id}", get(aggregate))
        .fallback(no_route)
        .with_state(Arc::new(by_name)))
}

/// As [`log_router`], answering only requests that carry one of `tokens`
/// (`Authorization: Bearer <token>`): one per reader, so that one can be
/// withdrawn without the others. Any other request gets 401 with a JSON
/// error. Tokens are compared in constant time and never written anywhere.
/// No token, or an empty one, is an [`Error::Config`].
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
    let tokens: Vec<Vec<u8>> = tokens
        .into_iter()
        .map(|token| token.into().into_bytes())
        .collect();
    if tokens.is_empty() || tokens.iter().any(Vec::is_empty) {
        return Err(Error::Config {
            variable: "reader tokens".into(),
            value: String::new(),
            expected: "at least one token, none of them empty".into(),
        });
    }
    Ok(
        log_router(apps)?.layer(axum::middleware::from_fn_with_state(
            Arc::new(tokens),
            require_token,
        )),
    )
}

/// Lets a request through if it carries one of the tokens.
async fn require_token(
    State(tokens): State<Arc<Vec<Vec<u8>>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
    // Every token is compared, whatever matched, so that the time taken
    // says nothing about which one came close.
    let accepted = given.is_some_and(|given| {
        tokens
            .iter()
            .fold(false, |found, token| found | same_bytes(token, given))
    });
    if accepted {
        return next.run(request).await;
    }
    let mut response = Failure(
        StatusCode::UNAUTHORIZED,
        "this log is served to readers with a token: send it as `Authorization: Bearer <token>`"
            .into(),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths
/// only.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |differ, (x, y)| differ | (x ^ y)) == 0
}

type Apps = Arc<HashMap<String, Arc<Application>>>;

/// A request's failure, answered as JSON with its status.
#[derive(Debug)]
struct Failure(StatusCode, String);

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

fn find(apps: &Apps, name: &str) -> Result<Arc<Application>, Failure> {
    apps.get(name).cloned().ok_or_else(|| {
        let mut known: Vec<&String> = apps.keys().collect();
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
    let wait = Duration::from_millis(query.wait_ms.unwrap_or(0)).min(MAX_WAIT);
    let notifications = blocking(move || {
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        let read = || {
            app.recorder()
                .select_notifications(start, limit, None, &topics)
        };
        if wait.is_zero() {
            return read();
        }
        // Made before the read, so that a save committed while it runs is heard.
        let mut listener = app.recorder().listen()?;
        let deadline = std::time::Instant::now() + wait;
        loop {
            let found = read()?;
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if !found.is_empty() || left.is_zero() {
                return Ok(found);
            }
            listener.wait(left)?;
        }
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
