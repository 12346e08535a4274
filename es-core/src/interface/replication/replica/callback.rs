//! The webhook a master delivers batches to: `POST /api/v1/callback`.
//!
//! Its checks are documented on [`callback_router`].

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use super::{Applied, Replica, ReplicaError};
use crate::interface::replication::Batch;
use crate::interface::replication::signature::{
    DEFAULT_TOLERANCE_SECONDS, SIGNATURE_HEADER, SignatureError, TIMESTAMP_HEADER, check_freshness,
    unix_now, verify,
};

/// Where [`callback_router`] serves the webhook. To serve it elsewhere,
/// nest the router (`Router::new().nest("/replica", router)` serves
/// `/replica/api/v1/callback`).
pub const CALLBACK_PATH: &str = "/api/v1/callback";

/// The largest body the webhook reads unless told otherwise: 8 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// How the webhook checks deliveries: the subscription's secret, how far a
/// delivery's timestamp may be from the clock, and the largest body.
///
/// ```
/// use std::time::Duration;
/// use es_core::interface::replication::CallbackConfig;
/// let config = CallbackConfig::new("a long random secret")
///     .tolerance(Duration::from_secs(60))
///     .max_body_bytes(1 << 20);
/// assert!(!format!("{config:?}").contains("random")); // the secret is not printed
/// ```
#[derive(Clone)]
pub struct CallbackConfig {
    secret: Vec<u8>,
    tolerance: Duration,
    max_body_bytes: usize,
}

impl std::fmt::Debug for CallbackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackConfig")
            .field("secret", &"<redacted>")
            .field("tolerance", &self.tolerance)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

impl CallbackConfig {
    /// Deliveries signed with `secret` (the subscription's), within
    /// [`DEFAULT_TOLERANCE_SECONDS`] of the clock, bodies up to
    /// [`DEFAULT_MAX_BODY_BYTES`].
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        CallbackConfig {
            secret: secret.into(),
            tolerance: Duration::from_secs(DEFAULT_TOLERANCE_SECONDS),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// How far (whole seconds) a delivery's timestamp may be from the
    /// receiver's clock, either way.
    pub fn tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// The largest body read; a larger one is answered 413.
    pub fn max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }
}

/// The webhook that applies the batches a master delivers to `replica`, at
/// [`CALLBACK_PATH`], as an axum router to serve or nest in the program's
/// own. Other paths answer 404 and other methods 405, as JSON.
///
/// Each request is checked in this order, and the first check that fails
/// answers `{"error": "<why>"}` with its status, having applied nothing:
///
/// 1. the headers `x-replication-timestamp` (Unix seconds) and
///    `x-replication-signature` (`sha256=` and 64 hex digits) are there and
///    well formed, else 401;
/// 2. the timestamp is within the tolerance of the receiver's clock (an old
///    delivery replayed is refused), else 401;
/// 3. the body is within the size limit, else 413 (the body must be read
///    before its signature can be checked, so the limit comes first);
/// 4. the signature matches the raw body, checked before anything parses
///    it, else 401;
/// 5. the body is a batch (JSON, every record with its `_uid`, `_type`,
///    `_version` and history fields), and its `count` is its number of
///    records, else 400;
/// 6. every record's `_type` is registered and its fields fit the type, else
///    422;
/// 7. the batch is applied in one transaction; a callback's or the
///    database's failure is 500, so the master sends the batch again.
///
/// Success is 200 with `{"applied": n, "skipped": m}`.
///
/// ```
/// use std::sync::Arc;
/// use es_core::interface::replication::{CallbackConfig, Replica, callback_router};
/// let replica = Arc::new(Replica::sqlite(es_core::persistence::SqliteDatabase::open_in_memory()?)?);
/// let router = callback_router(replica, CallbackConfig::new("a long random secret"));
/// let app = axum::Router::new().merge(router); // or axum::serve(listener, router)
/// # let _ = app;
/// # Ok::<(), es_core::Error>(())
/// ```
pub fn callback_router(replica: Arc<Replica>, config: CallbackConfig) -> axum::Router {
    let limit = config.max_body_bytes;
    axum::Router::new()
        .route(CALLBACK_PATH, post(receive).fallback(only_post))
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(Arc::new(Served { replica, config }))
}

struct Served {
    replica: Arc<Replica>,
    config: CallbackConfig,
}

/// A refused delivery, answered as JSON with its status.
#[derive(Debug)]
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<ReplicaError> for Failure {
    fn from(error: ReplicaError) -> Self {
        let status = match error {
            ReplicaError::UnknownType { .. } | ReplicaError::InvalidRecord { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ReplicaError::CountMismatch { .. } => StatusCode::BAD_REQUEST,
            _ => {
                tracing::warn!(error = %error, "a replication batch was not applied");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        Failure(status, error.to_string())
    }
}

fn unauthorized(error: SignatureError) -> Failure {
    Failure(StatusCode::UNAUTHORIZED, error.to_string())
}

async fn receive(
    State(served): State<Arc<Served>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Applied>, Failure> {
    let (timestamp, signature) = signature_headers(&headers)?;
    let tolerance = served.config.tolerance.as_secs();
    check_freshness(timestamp, unix_now(), tolerance).map_err(unauthorized)?;
    let body = body.map_err(|rejection| refused_body(&rejection, served.config.max_body_bytes))?;
    verify(&served.config.secret, timestamp, &body, signature).map_err(unauthorized)?;
    let batch: Batch = serde_json::from_slice(&body).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("the body is not a batch of history records: {e}"),
        )
    })?;
    if batch.count != batch.results.len() {
        return Err(ReplicaError::CountMismatch {
            count: batch.count,
            held: batch.results.len(),
        }
        .into());
    }
    let replica = served.replica.clone();
    let applied = tokio::task::spawn_blocking(move || replica.apply(&batch))
        .await
        .map_err(|e| {
            Failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("applying the batch stopped: {e}"),
            )
        })??;
    Ok(Json(applied))
}

/// The timestamp and signature headers, both there and well formed.
fn signature_headers(headers: &HeaderMap) -> Result<(u64, &str), Failure> {
    let header = |name: &str| {
        headers
            .get(name)
            .ok_or_else(|| {
                Failure(
                    StatusCode::UNAUTHORIZED,
                    format!("the header {name} is missing: deliveries must be signed"),
                )
            })?
            .to_str()
            .map_err(|_| {
                Failure(
                    StatusCode::UNAUTHORIZED,
                    format!("the header {name} is not visible ASCII"),
                )
            })
    };
    let timestamp = header(TIMESTAMP_HEADER)?;
    let timestamp = timestamp.parse::<u64>().map_err(|_| {
        Failure(
            StatusCode::UNAUTHORIZED,
            format!("the header {TIMESTAMP_HEADER} is {timestamp:?}, not Unix seconds"),
        )
    })?;
    let signature = header(SIGNATURE_HEADER)?;
    let well_formed = signature
        .strip_prefix("sha256=")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if !well_formed {
        return Err(unauthorized(SignatureError::Malformed));
    }
    Ok((timestamp, signature))
}

fn refused_body(rejection: &BytesRejection, limit: usize) -> Failure {
    let status = rejection.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return Failure(
            status,
            format!("the body is over the limit of {limit} bytes: send smaller batches"),
        );
    }
    Failure(status, rejection.body_text())
}

async fn no_route() -> Failure {
    Failure(
        StatusCode::NOT_FOUND,
        format!("no such route: deliveries are POSTed to {CALLBACK_PATH}"),
    )
}

async fn only_post() -> Response {
    let mut response = Failure(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("deliveries are POSTed to {CALLBACK_PATH}"),
    )
    .into_response();
    response.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("POST"),
    );
    response
}
