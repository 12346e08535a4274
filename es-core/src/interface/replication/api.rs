//! The subscriptions API, `/api/v1/subscriptions`, as the seed serves it:
//! create, list, get and delete subscriptions, see a delivery's status and
//! resume a parked one. Every call needs a token the replicator knows
//! (`Authorization: Bearer <token>`, or `Token <token>` as Django REST
//! framework writes it); creating, deleting and resuming need one allowed
//! for every type the subscription names. Errors are JSON,
//! `{"error": "..."}`, and a refused request stores nothing.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::json;

use super::replicator::{Inner, Replicator};
use super::subscription::{Filter, Status, Subscription, SubscriptionError, SubscriptionRequest};

/// The largest subscription request read.
const MAX_REQUEST: usize = 64 * 1024;

impl Replicator {
    /// The subscriptions API of this replicator, to serve with axum.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use es_core::prelude::*;
    /// use es_core::interface::replication::Replicator;
    /// # #[replicating("barge")] #[aggregate] pub struct Barge { tons: u32 }
    /// # #[aggregate] impl Barge { #[event("Moored")] pub fn moor(tons: u32) -> Self { Barge { tons } } }
    /// let app = Arc::new(Application::builder().name("harbour").in_memory().build()?);
    /// let replicator = Replicator::builder(app).replicate::<Barge>().token("t0ken", ["barge"]).start()?;
    /// let router: axum::Router = replicator.router();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/subscriptions", post(create).get(list))
            .route("/api/v1/subscriptions/{name}", get(show).delete(remove))
            .route("/api/v1/subscriptions/{name}/status", get(status))
            .route("/api/v1/subscriptions/{name}/resume", post(resume))
            .with_state(Arc::clone(self.inner()))
    }
}

/// A subscription as the API shows it: the secret only when it is created,
/// the callback headers' names but not their values.
#[derive(Serialize)]
struct View<'a> {
    name: &'a str,
    callback_url: &'a str,
    callback_headers: Vec<&'a str>,
    filters: &'a [Filter],
    start_after: u64,
    status: Status,
    last_error: Option<&'a str>,
    created_at: chrono::DateTime<chrono::Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
}

impl<'a> View<'a> {
    fn of(subscription: &'a Subscription, with_secret: bool) -> Self {
        View {
            name: &subscription.name,
            callback_url: &subscription.callback_url,
            callback_headers: subscription
                .callback_headers
                .keys()
                .map(String::as_str)
                .collect(),
            filters: &subscription.filters,
            start_after: subscription.start_after,
            status: subscription.status,
            last_error: subscription.last_error.as_deref(),
            created_at: subscription.created_at,
            secret: with_secret.then_some(subscription.secret.as_str()),
        }
    }
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": message.to_string() }))).into_response()
}

impl IntoResponse for SubscriptionError {
    fn into_response(self) -> Response {
        let status = match &self {
            SubscriptionError::Invalid(_) | SubscriptionError::UnknownType(..) => {
                StatusCode::BAD_REQUEST
            }
            SubscriptionError::Unauthenticated => StatusCode::UNAUTHORIZED,
            SubscriptionError::Forbidden(_) => StatusCode::FORBIDDEN,
            SubscriptionError::Exists(_) => StatusCode::CONFLICT,
            SubscriptionError::NotFound(_) => StatusCode::NOT_FOUND,
            SubscriptionError::Store(store) => {
                tracing::error!(error = %store, "the subscriptions API's store failed");
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the master's store failed; try again",
                );
            }
        };
        error(status, self)
    }
}

/// The token of `headers`, if they carry one.
fn token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then(|| token.trim())
}

/// Runs the blocking `work` (the store's calls) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SubscriptionError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(failure)) => Err(failure.into_response()),
        Err(join) => Err(error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request's work failed: {join}"),
        )),
    }
}

async fn create(State(inner): State<Arc<Inner>>, headers: HeaderMap, body: Body) -> Response {
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REQUEST).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a subscription request is at most {MAX_REQUEST} bytes"),
        );
    };
    let token = token(&headers).map(str::to_owned);
    if let Err(refused) = inner.authorize(token.as_deref(), []) {
        return refused.into_response();
    }
    let request: SubscriptionRequest = match serde_json::from_slice(&bytes) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body is not a subscription request: {e}"),
            );
        }
    };
    let created = blocking(move || {
        request.check()?;
        inner.check_types(&request)?;
        inner.authorize(
            token.as_deref(),
            request
                .filters
                .iter()
                .map(|filter| filter.contract.as_str()),
        )?;
        inner.subscribe(request)
    })
    .await;
    match created {
        Ok(subscription) => (
            StatusCode::CREATED,
            axum::Json(View::of(&subscription, true)),
        )
            .into_response(),
        Err(response) => response,
    }
}

async fn list(State(inner): State<Arc<Inner>>, headers: HeaderMap) -> Response {
    if let Err(refused) = inner.authorize(token(&headers), []) {
        return refused.into_response();
    }
    match blocking(move || Ok(inner.store().all()?)).await {
        Ok(all) => {
            let results: Vec<View<'_>> = all.iter().map(|s| View::of(s, false)).collect();
            axum::Json(json!({ "count": results.len(), "results": results })).into_response()
        }
        Err(response) => response,
    }
}

/// The subscription `name`, once the token may see it (any known token)
/// or manage it (one allowed for its types).
async fn found(
    inner: &Arc<Inner>,
    headers: &HeaderMap,
    name: String,
    manage: bool,
) -> Result<Subscription, Response> {
    inner
        .authorize(token(headers), [])
        .map_err(IntoResponse::into_response)?;
    let store_inner = Arc::clone(inner);
    let lookup = name.clone();
    let subscription = blocking(move || Ok(store_inner.store().get(&lookup)?))
        .await?
        .ok_or_else(|| SubscriptionError::NotFound(name).into_response())?;
    if manage {
        inner
            .authorize(
                token(headers),
                subscription
                    .filters
                    .iter()
                    .map(|filter| filter.contract.as_str()),
            )
            .map_err(IntoResponse::into_response)?;
    }
    Ok(subscription)
}

async fn show(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    match found(&inner, &headers, name, false).await {
        Ok(subscription) => axum::Json(View::of(&subscription, false)).into_response(),
        Err(response) => response,
    }
}

async fn remove(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = found(&inner, &headers, name.clone(), true).await {
        return response;
    }
    let deleted = blocking(move || {
        let deleted = inner.store().delete(&name)?;
        inner.sync()?;
        Ok(deleted)
    })
    .await;
    match deleted {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(response) => response,
    }
}

async fn status(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = found(&inner, &headers, name.clone(), false).await {
        return response;
    }
    let missing = name.clone();
    match blocking(move || inner.status(&name)).await {
        Ok(Some(status)) => axum::Json(status).into_response(),
        Ok(None) => SubscriptionError::NotFound(missing).into_response(),
        Err(response) => response,
    }
}

async fn resume(
    State(inner): State<Arc<Inner>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let subscription = match found(&inner, &headers, name, true).await {
        Ok(subscription) => subscription,
        Err(response) => return response,
    };
    let resumed = blocking(move || inner.resume(&subscription.name)).await;
    match resumed {
        Ok(Some(status)) => axum::Json(status).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "the subscription was deleted meanwhile",
        ),
        Err(response) => response,
    }
}
