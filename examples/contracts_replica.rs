//! The replica of the replication example: a service that keeps copies of
//! the master's contracts in its own database. At start it subscribes
//! itself to the master (from the beginning of history, so that it gets
//! every contract), then applies each batch the master delivers to its
//! webhook, `/api/v1/callback`.
//!
//! ```text
//! cargo run -p examples --example contracts_replica
//! # http://127.0.0.1:8081 (REPLICA_ADDR), copies in replica.sqlite3 (REPLICA_DBNAME),
//! # subscribed to http://127.0.0.1:8080 (MASTER_URL) with REPLICATION_TOKEN (dev-token)
//!
//! curl -s localhost:8081/contracts            # every live copy
//! curl -s localhost:8081/contracts/6f1c...    # one, with its version
//! ```
//!
//! The subscription's secret is made at the first start and kept beside
//! the database (`replica.sqlite3.secret`). `SUBSCRIPTION_NAME` (replica)
//! names the subscription; `REPLICA_CALLBACK_URL` is the webhook's address
//! as the master reaches it, when that is not the address served (behind
//! a proxy).

#[path = "contracts/mod.rs"]
pub mod contracts;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use contracts::ContractCopy;
use es_core::Uuid;
use es_core::interface::replication::{CallbackConfig, Replica, callback_router};
use es_core::persistence::SqliteDatabase;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let address: SocketAddr = env("REPLICA_ADDR", "127.0.0.1:8081").parse()?;
    let database = PathBuf::from(env("REPLICA_DBNAME", "replica.sqlite3"));
    let master = env("MASTER_URL", "http://127.0.0.1:8080");
    let token = env("REPLICATION_TOKEN", "dev-token");
    let name = env("SUBSCRIPTION_NAME", "replica");

    let secret = secret_beside(&database)?;
    let db = SqliteDatabase::open(&database, Duration::from_secs(5))?;
    let replica = Arc::new(
        Replica::sqlite(db)?
            .with_history()?
            .on_change::<ContractCopy>(|record, copy| {
                match copy {
                    Some(copy) => println!(
                        "contract {} at version {}: {} for {}",
                        record.uid, record.version, copy.number, copy.amount
                    ),
                    None => println!("contract {} deleted", record.uid),
                }
                Ok(())
            }),
    );
    let router = callback_router(Arc::clone(&replica), CallbackConfig::new(secret.clone()))
        .merge(router(Arc::clone(&replica)));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let served = listener.local_addr()?;
        println!("The replica is at http://{served}");
        let callback = std::env::var("REPLICA_CALLBACK_URL")
            .unwrap_or_else(|_| format!("http://{served}/api/v1/callback"));
        // The master may start after the replica: subscribing waits for it.
        tokio::task::spawn_blocking(move || subscribe(&master, &token, &name, &callback, &secret));
        axum::serve(listener, router).await
    })?;
    Ok(())
}

/// The secret kept beside `database`, made at the first start.
fn secret_beside(database: &Path) -> std::io::Result<String> {
    let mut path = database.as_os_str().to_owned();
    path.push(".secret");
    let path = PathBuf::from(path);
    match std::fs::read_to_string(&path) {
        Ok(secret) => Ok(secret.trim().to_owned()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            std::io::Write::write_all(&mut options.open(&path)?, secret.as_bytes())?;
            Ok(secret)
        }
        Err(error) => Err(error),
    }
}

/// Subscribes to the master's contracts from the beginning of history, as
/// `name`; a subscription of that name already there is this replica's from
/// an earlier start. Tries until the master answers.
fn subscribe(master: &str, token: &str, name: &str, callback: &str, secret: &str) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let request = json!({
        "name": name,
        "callback_url": callback,
        "filters": ["contract"],
        "start": "beginning",
        "secret": secret,
    });
    let url = format!("{master}/api/v1/subscriptions");
    let mut wait = Duration::from_millis(200);
    loop {
        let answer = agent
            .post(&url)
            .header("Authorization", &format!("Bearer {token}"))
            .header("content-type", "application/json")
            .send(request.to_string());
        match answer {
            Ok(response) if response.status() == 201 => {
                println!("Subscribed to {master} as {name:?}");
                return;
            }
            Ok(response) if response.status() == 409 => {
                println!("Subscribed to {master} as {name:?} since an earlier start");
                return;
            }
            Ok(mut response) => {
                let status = response.status();
                let body = response.body_mut().read_to_string().unwrap_or_default();
                eprintln!("The master refused the subscription: {status} {body}");
                return;
            }
            Err(error) => {
                eprintln!("The master is not reachable yet ({error}); trying again in {wait:?}");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The copies, to read.
fn router(replica: Arc<Replica>) -> Router {
    Router::new()
        .route("/contracts", get(list))
        .route("/contracts/{uid}", get(show))
        .with_state(replica)
}

async fn list(State(replica): State<Arc<Replica>>) -> Response {
    let copies = tokio::task::spawn_blocking(move || replica.all::<ContractCopy>()).await;
    match copies {
        Ok(Ok(copies)) => {
            let copies: Vec<_> = copies
                .into_iter()
                .map(|copy| json!({ "uid": copy.uid, "version": copy.version, "contract": copy.value }))
                .collect();
            axum::Json(json!({ "count": copies.len(), "results": copies })).into_response()
        }
        Ok(Err(error)) => failure(error),
        Err(error) => failure(error),
    }
}

async fn show(State(replica): State<Arc<Replica>>, UrlPath(uid): UrlPath<String>) -> Response {
    let copy = tokio::task::spawn_blocking(move || replica.get::<ContractCopy>(&uid)).await;
    match copy {
        Ok(Ok(Some(copy))) => axum::Json(json!({
            "uid": copy.uid,
            "version": copy.version,
            "contract": copy.value,
        }))
        .into_response(),
        Ok(Ok(None)) => (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "error": "no such contract here (or it was deleted)" })),
        )
            .into_response(),
        Ok(Err(error)) => failure(error),
        Err(error) => failure(error),
    }
}

fn failure(error: impl std::fmt::Display) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(json!({ "error": error.to_string() })),
    )
        .into_response()
}
