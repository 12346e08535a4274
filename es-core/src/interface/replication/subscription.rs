//! A subscription: who receives which changes, where, and how far delivery
//! has gone. What the subscriptions API accepts, and the checks a request
//! passes before anything is stored.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::record::HistoryType;

/// Which records a subscription receives: every change of a type
/// (`"contract"`), or one kind of change of it (`"contract.+"`,
/// `"contract.~"`, `"contract.-"`), as the seed's filters are written.
///
/// ```
/// use es_core::interface::replication::{Filter, HistoryType};
/// let filter: Filter = "contract.~".parse()?;
/// assert_eq!((filter.contract.as_str(), filter.history_type), ("contract", Some(HistoryType::Changed)));
/// assert!(filter.accepts("contract", HistoryType::Changed));
/// assert!(!filter.accepts("contract", HistoryType::Created));
/// assert!("contract.?".parse::<Filter>().is_err());
/// # Ok::<(), es_core::interface::replication::SubscriptionError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Filter {
    /// The type's contract name.
    pub contract: String,
    /// Only this kind of change, or every kind.
    pub history_type: Option<HistoryType>,
}

impl Filter {
    /// Whether a record of `contract` with `history_type` passes.
    pub fn accepts(&self, contract: &str, history_type: HistoryType) -> bool {
        self.contract == contract && self.history_type.is_none_or(|only| only == history_type)
    }
}

impl FromStr for Filter {
    type Err = SubscriptionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            SubscriptionError::Invalid(format!(
                "filter {text:?} is not a type's contract name, optionally followed by `.+`, \
                 `.~` or `.-`"
            ))
        };
        let (contract, history_type) = match text.rsplit_once('.') {
            Some((contract, "+")) => (contract, Some(HistoryType::Created)),
            Some((contract, "~")) => (contract, Some(HistoryType::Changed)),
            Some((contract, "-")) => (contract, Some(HistoryType::Deleted)),
            Some(_) => return Err(invalid()),
            None => (text, None),
        };
        if contract.is_empty() || contract.chars().any(char::is_whitespace) {
            return Err(invalid());
        }
        Ok(Filter {
            contract: contract.to_owned(),
            history_type,
        })
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.history_type {
            Some(kind) => write!(f, "{}.{}", self.contract, kind.code()),
            None => f.write_str(&self.contract),
        }
    }
}

impl Serialize for Filter {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Filter {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a new subscription starts: after the last change saved when it is
/// created, or at the beginning of history, so that a new replica receives
/// every entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// Only changes saved after the subscription was created.
    #[default]
    Now,
    /// Every change in the log.
    Beginning,
}

/// Whether a subscription is being delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Delivered as changes are saved.
    Active,
    /// Stopped after failures, at its position, until resumed.
    Parked,
}

/// A request to create a subscription, as the API takes it.
///
/// ```
/// use es_core::interface::replication::SubscriptionRequest;
/// let request: SubscriptionRequest = serde_json::from_str(r#"{
///     "name": "billing", "callback_url": "https://billing.example/api/v1/callback",
///     "filters": ["contract", "person.~"], "start": "beginning",
///     "callback_headers": {"Authorization": "Token 9944b091"}
/// }"#)?;
/// assert_eq!(request.filters.len(), 2);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionRequest {
    /// Its name, unique at the master: letters, digits, `-`, `_` and `.`.
    pub name: String,
    /// Where batches are POSTed (`http` or `https`).
    pub callback_url: String,
    /// Headers sent with each delivery, such as the receiver's own
    /// `Authorization`.
    #[serde(default)]
    pub callback_headers: BTreeMap<String, String>,
    /// Which records it receives; at least one.
    pub filters: Vec<Filter>,
    /// Where it starts.
    #[serde(default)]
    pub start: Start,
    /// The secret deliveries are signed with; the master makes one if none
    /// is given.
    #[serde(default)]
    pub secret: Option<String>,
}

impl SubscriptionRequest {
    /// A request for changes of `filters` to be POSTed to `callback_url`.
    ///
    /// ```
    /// use es_core::interface::replication::{Start, SubscriptionRequest};
    /// let request = SubscriptionRequest::new("billing", "http://127.0.0.1:8081/api/v1/callback", ["contract".parse()?])
    ///     .starting(Start::Beginning)
    ///     .with_secret("s3cr3t-of-at-least-16");
    /// assert!(request.check().is_ok());
    /// # Ok::<(), es_core::interface::replication::SubscriptionError>(())
    /// ```
    pub fn new(
        name: impl Into<String>,
        callback_url: impl Into<String>,
        filters: impl IntoIterator<Item = Filter>,
    ) -> Self {
        SubscriptionRequest {
            name: name.into(),
            callback_url: callback_url.into(),
            callback_headers: BTreeMap::new(),
            filters: filters.into_iter().collect(),
            start: Start::Now,
            secret: None,
        }
    }

    /// Starts at `start`.
    pub fn starting(mut self, start: Start) -> Self {
        self.start = start;
        self
    }

    /// Signs with `secret` rather than one the master makes.
    pub fn with_secret(mut self, secret: impl Into<String>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Sends `name: value` with each delivery.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.callback_headers.insert(name.into(), value.into());
        self
    }

    /// Checks what can be checked without knowing the master's types: the
    /// name, the URL, the headers, the secret, that there is a filter.
    pub fn check(&self) -> Result<(), SubscriptionError> {
        let invalid = |message: String| Err(SubscriptionError::Invalid(message));
        let name_ok = !self.name.is_empty()
            && self.name.len() <= MAX_NAME
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !name_ok {
            return invalid(format!(
                "name {:?} must be 1 to {MAX_NAME} letters, digits, `-`, `_` or `.`",
                self.name
            ));
        }
        check_url(&self.callback_url)?;
        if self.filters.is_empty() {
            return invalid(
                "filters is empty: name at least one type, such as \"contract\"".into(),
            );
        }
        for (name, value) in &self.callback_headers {
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token || value.bytes().any(|b| b.is_ascii_control()) {
                return invalid(format!(
                    "callback header {name:?} is not a valid HTTP header name and value"
                ));
            }
            if name.to_ascii_lowercase().starts_with("x-replication-") {
                return invalid(format!(
                    "callback header {name:?}: the x-replication- headers are the master's own"
                ));
            }
        }
        if let Some(secret) = &self.secret
            && secret.len() < MIN_SECRET
        {
            return invalid(format!(
                "the secret must be at least {MIN_SECRET} characters long"
            ));
        }
        Ok(())
    }
}

/// The callback headers' names, their values hidden.
struct HiddenValues<'a>(&'a BTreeMap<String, String>);

impl fmt::Debug for HiddenValues<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|name| (name, "<hidden>")))
            .finish()
    }
}

impl fmt::Debug for SubscriptionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionRequest")
            .field("name", &self.name)
            .field("callback_url", &self.callback_url)
            .field("callback_headers", &HiddenValues(&self.callback_headers))
            .field("filters", &self.filters)
            .field("start", &self.start)
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .field("id", &self.id)
            .field("callback_url", &self.callback_url)
            .field("callback_headers", &HiddenValues(&self.callback_headers))
            .field("filters", &self.filters)
            .field("secret", &"<hidden>")
            .field("start_after", &self.start_after)
            .field("status", &self.status)
            .field("last_error", &self.last_error)
            .field("created_at", &self.created_at)
            .finish()
    }
}

const MAX_NAME: usize = 100;
const MIN_SECRET: usize = 16;

/// Checks that `url` is an absolute `http` or `https` URL with a host.
fn check_url(url: &str) -> Result<(), SubscriptionError> {
    let bad = |why: &str| {
        Err(SubscriptionError::Invalid(format!(
            "callback_url {url:?} {why}"
        )))
    };
    let rest = if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else {
        return bad("must start with http:// or https://");
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() || host.starts_with(':') {
        return bad("has no host");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains spaces or control characters");
    }
    if let Some((_, port)) = host.rsplit_once(':')
        && !host.ends_with(']')
        && port.parse::<u16>().map_or(true, |port| port == 0)
    {
        return bad("has an invalid port");
    }
    Ok(())
}

/// A subscription as the master keeps it. `Debug` shows neither the secret
/// nor the callback headers' values.
///
/// ```
/// use es_core::interface::replication::SubscriptionRequest;
/// let request = SubscriptionRequest::new("b", "http://h/cb", ["lease".parse()?])
///     .with_secret("a-secret-of-16-characters")
///     .with_header("Authorization", "Token 9944b091");
/// let shown = format!("{request:?}");
/// assert!(!shown.contains("a-secret") && !shown.contains("9944b091"));
/// # Ok::<(), es_core::interface::replication::SubscriptionError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Its name.
    pub name: String,
    /// This incarnation of the name: a subscription deleted and created
    /// again under the same name starts afresh.
    pub id: Uuid,
    /// Where batches are POSTed.
    pub callback_url: String,
    /// Headers sent with each delivery.
    pub callback_headers: BTreeMap<String, String>,
    /// Which records it receives.
    pub filters: Vec<Filter>,
    /// The secret deliveries are signed with.
    pub secret: String,
    /// Delivery starts after this notification id (0: the beginning).
    pub start_after: u64,
    /// Delivered, or parked.
    pub status: Status,
    /// Why it was parked.
    pub last_error: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

impl Subscription {
    /// Whether a record of `contract` with `history_type` goes to it.
    pub fn accepts(&self, contract: &str, history_type: HistoryType) -> bool {
        self.filters
            .iter()
            .any(|filter| filter.accepts(contract, history_type))
    }

    /// Whether any of its filters names `contract`.
    pub fn wants_contract(&self, contract: &str) -> bool {
        self.filters
            .iter()
            .any(|filter| filter.contract == contract)
    }

    /// The name its position is tracked under in the master's tracking
    /// table: its name and incarnation, so that a subscription created again
    /// under a deleted one's name does not inherit its position.
    pub(crate) fn tracking_name(&self) -> String {
        format!("replication/{}/{}", self.name, self.id.simple())
    }

    /// A new subscription of `request` starting after `start_after`.
    pub(crate) fn create(request: SubscriptionRequest, start_after: u64) -> Self {
        let secret = request
            .secret
            .unwrap_or_else(|| format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple()));
        Subscription {
            name: request.name,
            id: Uuid::new_v4(),
            callback_url: request.callback_url,
            callback_headers: request.callback_headers,
            filters: request.filters,
            secret,
            start_after,
            status: Status::Active,
            last_error: None,
            created_at: Utc::now(),
        }
    }
}

/// What can go wrong with a subscription request or its store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionError {
    /// The request is malformed: a bad name, URL, filter or header.
    #[error("invalid subscription: {0}")]
    Invalid(String),
    /// A filter names a type the master does not replicate.
    #[error(
        "unknown type {0:?}: the master replicates {1:?}; register it with Replicator::replicate"
    )]
    UnknownType(String, Vec<&'static str>),
    /// No token, or one the master does not know.
    #[error(
        "a token is required: send `Authorization: Bearer <token>` with a token the master knows"
    )]
    Unauthenticated,
    /// The token may not subscribe to this type.
    #[error("the token may not subscribe to {0:?}")]
    Forbidden(String),
    /// The name is taken.
    #[error("a subscription named {0:?} exists; delete it first or pick another name")]
    Exists(String),
    /// No subscription has the name.
    #[error("no subscription is named {0:?}")]
    NotFound(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_read_and_print_as_the_seed_writes_them() {
        for text in [
            "contract",
            "contract.+",
            "contract.~",
            "contract.-",
            "a.b.~",
        ] {
            let filter: Filter = text.parse().expect(text);
            assert_eq!(filter.to_string(), text);
        }
        for bad in [
            "",
            ".~",
            "contract.x",
            "two words",
            "contract.",
            "contract.~~",
        ] {
            assert!(bad.parse::<Filter>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn callback_urls_must_be_absolute_http_with_a_host() {
        for good in [
            "http://127.0.0.1:8081/api/v1/callback",
            "https://replica.example/cb?x=1",
            "http://[::1]:80/",
            "http://user:pw@host/",
        ] {
            assert!(check_url(good).is_ok(), "{good} was refused");
        }
        for bad in [
            "",
            "ftp://host/",
            "http://",
            "http:///path",
            "http://host:0/",
            "http://host:99999/",
            "http://host:x/",
            "http://ho st/",
            "/relative",
        ] {
            assert!(check_url(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_request_is_checked_before_anything_is_stored() {
        let filters = || vec![Filter::from_str("contract").expect("filter")];
        let good = SubscriptionRequest::new("billing", "http://h/cb", filters());
        assert!(good.check().is_ok());
        assert!(
            SubscriptionRequest::new("bad name", "http://h/cb", filters())
                .check()
                .is_err()
        );
        assert!(
            SubscriptionRequest::new("billing", "http://h/cb", [])
                .check()
                .is_err()
        );
        assert!(good.clone().with_secret("short").check().is_err());
        assert!(
            good.clone()
                .with_header("x-replication-signature", "forged")
                .check()
                .is_err()
        );
        assert!(good.with_header("bad header", "v").check().is_err());
    }
}
