//! The bank as a JSON API: axum handlers on an [`AsyncApplication`], whose
//! store calls run on tokio's blocking pool so that no request waits behind
//! another's disk write.
//!
//! ```text
//! cargo run -p examples --example bank_api          # serves on 127.0.0.1:3000 (BANK_API_ADDR)
//!
//! curl -s -XPOST localhost:3000/accounts -H 'content-type: application/json' \
//!      -d '{"owner": "Alice", "opening_balance": 10000}'
//! # {"id":"6f1c...","owner":"Alice","balance":10000,"version":1}
//! curl -s -XPOST localhost:3000/accounts/6f1c.../deposits -H 'content-type: application/json' -d '{"amount": 2550}'
//! curl -s -XPOST localhost:3000/accounts/6f1c.../withdrawals -H 'content-type: application/json' -d '{"amount": 999999}'
//! # 409 {"error":"insufficient funds: taking $9999.99 would overdraw a balance of $125.50"}
//! curl -s -XPOST localhost:3000/transfers -H 'content-type: application/json' \
//!      -d '{"from": "6f1c...", "to": "...", "amount": 100}'
//! curl -s localhost:3000/accounts/6f1c...            # the balance
//! curl -s localhost:3000/accounts/6f1c.../history    # every event, oldest first
//! ```
//!
//! Each command loads the accounts it needs, checks the rule, and saves, in
//! one call on the blocking pool. Commands on one account take turns within
//! this process (a lock per account, by stripes): without them, many
//! requests on one account would load the same version, one save would
//! stand and the rest would conflict and start again, over and over. Against
//! another process serving the same store, the store's own check stands:
//! a save of a version someone saved meanwhile is a conflict that writes
//! nothing, and the command is run again on the fresh state (up to
//! [`ATTEMPTS`] times, then 503). The store is the one
//! the environment names, as for the `bank` example (SQLite
//! `events.sqlite3` by default; `PERSISTENCE_MODULE=postgres ...`).

#[path = "bank/account.rs"]
#[allow(dead_code)] // The bank example uses the whole domain; the API only part of it.
pub mod account;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use account::{Account, AccountError, AccountEvent, Cents};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use es_core::AsyncApplication;
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

/// How many times a command is run against a conflict before the request is
/// answered 503: with many requests on one account, each retry loses to a
/// newer save less and less often.
const ATTEMPTS: u32 = 50;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let address: SocketAddr = std::env::var("BANK_API_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let app = AsyncApplication::new(Application::builder().name("bank").build()?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(address).await?;
        println!("The bank's API is at http://{}", listener.local_addr()?);
        axum::serve(listener, router(app)).await
    })?;
    Ok(())
}

/// How many locks the accounts share: enough that two busy accounts seldom
/// wait for each other.
const STRIPES: usize = 256;

/// The application, and the locks that make commands on one account take
/// turns in this process.
#[derive(Clone)]
struct Bank {
    app: AsyncApplication,
    stripes: Arc<Vec<Mutex<()>>>,
}

impl Bank {
    /// Runs `command` on the blocking pool holding the locks of `accounts`,
    /// taken in one order so that two transfers cannot wait for each other.
    async fn run<T: Send + 'static>(
        &self,
        accounts: &[Uuid],
        command: impl FnMut(&Application) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let mut stripes: Vec<usize> = accounts
            .iter()
            .map(|id| (id.as_u128() % STRIPES as u128) as usize)
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let locks = Arc::clone(&self.stripes);
        let mut command = command;
        self.app
            .call(move |app| {
                let _turns: Vec<MutexGuard<'_, ()>> = stripes
                    .iter()
                    .map(|&i| locks[i].lock().unwrap_or_else(PoisonError::into_inner))
                    .collect();
                retrying(|| command(app))
            })
            .await
    }
}

/// The API's routes over `app`.
pub fn router(app: AsyncApplication) -> Router {
    let bank = Bank {
        app,
        stripes: Arc::new((0..STRIPES).map(|_| Mutex::new(())).collect()),
    };
    Router::new()
        .route("/accounts", post(open))
        .route("/accounts/{id}", get(balance))
        .route("/accounts/{id}/deposits", post(deposit))
        .route("/accounts/{id}/withdrawals", post(withdraw))
        .route("/accounts/{id}/history", get(history))
        .route("/transfers", post(transfer))
        .with_state(bank)
}

#[derive(Debug, Deserialize)]
struct Opening {
    owner: String,
    opening_balance: Cents,
}

#[derive(Debug, Deserialize)]
struct Amount {
    amount: Cents,
}

#[derive(Debug, Deserialize)]
struct Transfer {
    from: Uuid,
    to: Uuid,
    amount: Cents,
}

/// An account as the API shows it.
#[derive(Debug, Serialize)]
struct AccountView {
    id: Uuid,
    owner: String,
    balance: Cents,
    version: u64,
}

impl From<&Account> for AccountView {
    fn from(account: &Account) -> Self {
        AccountView {
            id: account.id().as_uuid().unwrap_or_default(),
            owner: account.owner().to_owned(),
            balance: account.balance(),
            version: account.version(),
        }
    }
}

#[derive(Debug, Serialize)]
struct TransferView {
    from: AccountView,
    to: AccountView,
}

/// One event of an account's history.
#[derive(Debug, Serialize)]
struct HistoryItem {
    version: u64,
    timestamp: String,
    event: AccountEvent,
}

/// Why a request was not done: each a status and a JSON `{"error"}` body.
#[derive(Debug)]
enum ApiError {
    /// The request itself is wrong (its JSON, an id): 400.
    BadRequest(String),
    /// No account has this id: 404.
    NotFound(Uuid),
    /// A rule refused the command: 409 for an overdraft, 422 otherwise.
    Refused(AccountError),
    /// Every attempt met a newer save of the same account: 503, try later.
    Busy,
    /// The store failed: 500.
    Store(Error),
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::AggregateNotFound { id, .. } => {
                ApiError::NotFound(id.as_uuid().unwrap_or_default())
            }
            error => ApiError::Store(error),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(refusal: AccountError) -> Self {
        ApiError::Refused(refusal)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            ApiError::BadRequest(why) => (StatusCode::BAD_REQUEST, why.clone()),
            ApiError::NotFound(id) => (StatusCode::NOT_FOUND, format!("no account {id}")),
            ApiError::Refused(refusal @ AccountError::InsufficientFunds { .. }) => {
                (StatusCode::CONFLICT, refusal.to_string())
            }
            ApiError::Refused(refusal) => (StatusCode::UNPROCESSABLE_ENTITY, refusal.to_string()),
            ApiError::Busy => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the account is changing too often to apply this now; try again".into(),
            ),
            ApiError::Store(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        };
        let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
        if matches!(self, ApiError::Busy) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// Runs `command` again while its save conflicts with a newer one, waiting a
/// little longer, at random, each time so that the rivals spread out.
fn retrying<T>(mut command: impl FnMut() -> Result<T, ApiError>) -> Result<T, ApiError> {
    for attempt in 1..=ATTEMPTS {
        match command() {
            Err(ApiError::Store(error)) if error.is_conflict() => {
                let ceiling = u64::from(attempt.min(10)) * 500;
                std::thread::sleep(Duration::from_micros(random_below(ceiling)));
            }
            done => return done,
        }
    }
    Err(ApiError::Busy)
}

/// A number in `0..ceiling`, from the standard library's per-process
/// random hash keys: enough to spread retries, with no other crate.
fn random_below(ceiling: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.finish() % ceiling.max(1)
}

async fn open(
    State(bank): State<Bank>,
    body: Result<Json<Opening>, JsonRejection>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    let Json(opening) = body?;
    let account = Account::open(opening.owner, opening.opening_balance);
    let (account, _) = bank.app.save(account).await?;
    Ok((StatusCode::CREATED, Json(AccountView::from(&account))))
}

async fn balance(
    State(bank): State<Bank>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<AccountView>, ApiError> {
    let Path(id) = id?;
    let account: Account = bank.app.get(id).await?;
    Ok(Json(AccountView::from(&account)))
}

async fn deposit(
    State(bank): State<Bank>,
    id: Result<Path<Uuid>, PathRejection>,
    body: Result<Json<Amount>, JsonRejection>,
) -> Result<Json<AccountView>, ApiError> {
    change(bank, id, body, Account::deposit).await
}

async fn withdraw(
    State(bank): State<Bank>,
    id: Result<Path<Uuid>, PathRejection>,
    body: Result<Json<Amount>, JsonRejection>,
) -> Result<Json<AccountView>, ApiError> {
    change(bank, id, body, Account::withdraw).await
}

/// Runs a command on one account: loaded, changed and saved in one call on
/// the blocking pool, again on a conflict.
async fn change(
    bank: Bank,
    id: Result<Path<Uuid>, PathRejection>,
    body: Result<Json<Amount>, JsonRejection>,
    command: fn(&mut Account, Cents) -> Result<(), AccountError>,
) -> Result<Json<AccountView>, ApiError> {
    let Path(id) = id?;
    let Json(Amount { amount }) = body?;
    let account = bank
        .run(&[id], move |app| {
            let mut account: Account = app.repository().get(id)?;
            command(&mut account, amount)?;
            app.save(&mut account)?;
            Ok(AccountView::from(&account))
        })
        .await?;
    Ok(Json(account))
}

async fn transfer(
    State(bank): State<Bank>,
    body: Result<Json<Transfer>, JsonRejection>,
) -> Result<Json<TransferView>, ApiError> {
    let Json(Transfer { from, to, amount }) = body?;
    let both = bank
        .run(&[from, to], move |app| {
            let mut source: Account = app.repository().get(from)?;
            let mut target: Account = app.repository().get(to)?;
            source.transfer_to(&mut target, amount)?;
            // Both accounts' events in one transaction: never half a transfer.
            app.save(&mut [&mut source, &mut target])?;
            Ok(TransferView {
                from: AccountView::from(&source),
                to: AccountView::from(&target),
            })
        })
        .await?;
    Ok(Json(both))
}

async fn history(
    State(bank): State<Bank>,
    id: Result<Path<Uuid>, PathRejection>,
) -> Result<Json<Vec<HistoryItem>>, ApiError> {
    let Path(id) = id?;
    let events = bank.app.history::<Account>(id).await?;
    let items = events
        .into_iter()
        .map(|event| HistoryItem {
            version: event.originator_version,
            timestamp: event.timestamp.to_rfc3339(),
            event: event.payload,
        })
        .collect();
    Ok(Json(items))
}
