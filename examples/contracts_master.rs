//! The master of the replication example: a contracts service whose
//! `Contract` aggregate is replicated to other services. It serves its own
//! API (`/contracts`) and the subscriptions API (`/api/v1/subscriptions`),
//! and delivers each subscription's changes from its log.
//!
//! ```text
//! SQLITE_DBNAME=contracts.sqlite3 cargo run -p examples --example contracts_master
//! # http://127.0.0.1:8080 (CONTRACTS_ADDR); subscriptions need REPLICATION_TOKEN (dev-token)
//!
//! curl -s -XPOST localhost:8080/contracts -H 'content-type: application/json' \
//!      -H 'x-user-id: clerk-7' -H 'x-change-reason: signed at the branch' \
//!      -d '{"number": "N14/10-11", "customer": "8a1f4c7e-2d2b-4a55-9d39-6b7cf0d1b0e4", "amount": 120000}'
//! # {"id":"6f1c...","version":1}
//! curl -s -XPATCH localhost:8080/contracts/6f1c... -H 'content-type: application/json' -d '{"amount": 125000}'
//! curl -s -XDELETE localhost:8080/contracts/6f1c...
//! ```
//!
//! The store is the one the environment names (`PERSISTENCE_MODULE`,
//! `SQLITE_DBNAME`, `POSTGRES_*`). Delivery is tuned by
//! `REPLICATION_BATCH_SIZE`, `REPLICATION_LINGER_MS`,
//! `REPLICATION_TIMEOUT_MS`, `REPLICATION_MAX_FAILURES` and
//! `REPLICATION_MAX_BACKOFF_MS`.

#[path = "contracts/mod.rs"]
pub mod contracts;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use contracts::Contract;
use es_core::interface::replication::{DeliveryConfig, Reference, Replicator};
use es_core::prelude::*;
use es_core::{Metadata, Uuid};
use serde::Deserialize;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address: SocketAddr = std::env::var("CONTRACTS_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8080".into())
        .parse()?;
    let app = Arc::new(Application::builder().name("contracts").build()?);
    let token = std::env::var("REPLICATION_TOKEN").unwrap_or_else(|_| "dev-token".into());
    let replicator = Replicator::builder(Arc::clone(&app))
        .replicate::<Contract>()
        .token(token, ["contract"])
        .delivery(delivery_config()?)
        .start()?;
    let router = replicator.router().merge(router(Arc::clone(&app)));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(address).await?;
        println!(
            "The contracts service is at http://{}",
            listener.local_addr()?
        );
        axum::serve(listener, router).await
    })?;
    Ok(())
}

/// Delivery as the environment tunes it.
fn delivery_config() -> Result<DeliveryConfig, Box<dyn std::error::Error>> {
    let number = |name: &str| -> Result<Option<u64>, Box<dyn std::error::Error>> {
        match std::env::var(name) {
            Ok(value) => Ok(Some(
                value.parse().map_err(|e| format!("{name}={value}: {e}"))?,
            )),
            Err(_) => Ok(None),
        }
    };
    let mut config = DeliveryConfig::default();
    if let Some(size) = number("REPLICATION_BATCH_SIZE")? {
        config = config.batch_size(usize::try_from(size)?);
    }
    if let Some(ms) = number("REPLICATION_LINGER_MS")? {
        config = config.linger(Duration::from_millis(ms));
    }
    if let Some(ms) = number("REPLICATION_TIMEOUT_MS")? {
        config = config.timeout(Duration::from_millis(ms));
    }
    if let Some(failures) = number("REPLICATION_MAX_FAILURES")? {
        config = config.max_failures(u32::try_from(failures)?);
    }
    if let Some(ms) = number("REPLICATION_MAX_BACKOFF_MS")? {
        config = config.backoff(
            Duration::from_millis(ms.min(100)),
            Duration::from_millis(ms),
        );
    }
    Ok(config)
}

/// The contracts API over `app`.
pub fn router(app: Arc<Application>) -> Router {
    Router::new()
        .route("/contracts", post(sign))
        .route("/contracts/{id}", get(show).patch(amend).delete(terminate))
        .with_state(app)
}

#[derive(Debug, Deserialize)]
struct Signing {
    number: String,
    customer: Uuid,
    amount: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Amendment {
    number: Option<String>,
    amount: Option<u64>,
    internal_notes: Option<String>,
}

/// Who and why, from the request's `x-user-id` and `x-change-reason`.
fn metadata(headers: &HeaderMap) -> Metadata {
    let mut metadata = Metadata::new();
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    if let Some(user) = header("x-user-id") {
        metadata = metadata.user_id(user);
    }
    if let Some(reason) = header("x-change-reason") {
        metadata = metadata.change_reason(reason);
    }
    metadata
}

fn failure(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, axum::Json(json!({ "error": message.to_string() }))).into_response()
}

fn store_failure(error: es_core::Error) -> Response {
    match error {
        es_core::Error::AggregateNotFound { .. } => failure(StatusCode::NOT_FOUND, error),
        es_core::Error::Conflict { .. } => failure(StatusCode::CONFLICT, error),
        _ => failure(StatusCode::SERVICE_UNAVAILABLE, error),
    }
}

/// Runs `work` on the blocking pool, where the store's calls belong.
async fn blocking(
    work: impl FnOnce() -> Result<serde_json::Value, Response> + Send + 'static,
) -> Response {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(body)) => axum::Json(body).into_response(),
        Ok(Err(response)) => response,
        Err(e) => failure(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn sign(
    State(app): State<Arc<Application>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let signing: Signing = match serde_json::from_slice(&body) {
        Ok(signing) => signing,
        Err(e) => return failure(StatusCode::BAD_REQUEST, e),
    };
    let metadata = metadata(&headers);
    let response = blocking(move || {
        let customer = Reference::new("customer", signing.customer);
        let mut contract = Contract::sign(signing.number, customer, signing.amount);
        app.save_with_metadata(&mut contract, &metadata)
            .map_err(store_failure)?;
        Ok(json!({ "id": contract.id().to_string(), "version": contract.version() }))
    })
    .await;
    if response.status() == StatusCode::OK {
        return (StatusCode::CREATED, response).into_response();
    }
    response
}

async fn show(State(app): State<Arc<Application>>, Path(id): Path<Uuid>) -> Response {
    blocking(move || {
        let contract: Contract = app.repository().get(id).map_err(store_failure)?;
        Ok(json!({
            "id": id.to_string(),
            "version": contract.version(),
            "number": contract.number,
            "customer": contract.customer,
            "amount": contract.amount,
            "terminated": contract.terminated,
        }))
    })
    .await
}

async fn amend(
    State(app): State<Arc<Application>>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let amendment: Amendment = match serde_json::from_slice(&body) {
        Ok(amendment) => amendment,
        Err(e) => return failure(StatusCode::BAD_REQUEST, e),
    };
    let metadata = metadata(&headers);
    blocking(move || {
        let mut contract: Contract = app.repository().get(id).map_err(store_failure)?;
        if contract.terminated {
            return Err(failure(StatusCode::CONFLICT, "the contract is terminated"));
        }
        if let Some(number) = amendment.number {
            contract.renumber(number);
        }
        if let Some(amount) = amendment.amount {
            contract.amend(amount);
        }
        if let Some(notes) = amendment.internal_notes {
            contract.note(notes);
        }
        app.save_with_metadata(&mut contract, &metadata)
            .map_err(store_failure)?;
        Ok(json!({ "id": id.to_string(), "version": contract.version() }))
    })
    .await
}

async fn terminate(
    State(app): State<Arc<Application>>,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
) -> Response {
    let metadata = metadata(&headers);
    blocking(move || {
        let mut contract: Contract = app.repository().get(id).map_err(store_failure)?;
        if contract.terminated {
            return Err(failure(StatusCode::CONFLICT, "the contract is terminated"));
        }
        contract.terminate();
        app.save_with_metadata(&mut contract, &metadata)
            .map_err(store_failure)?;
        Ok(json!({ "id": id.to_string(), "version": contract.version() }))
    })
    .await
}
