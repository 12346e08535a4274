//! Who made a change and why: metadata a save gives to each of its events.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Who made a change, why, and any other headers (a correlation id, a request
/// id): given to a save with
/// [`Application::save_with_metadata`](crate::Application::save_with_metadata),
/// stored with each of the save's events (encoded, compressed and encrypted
/// with them, so it travels wherever the events go, the log over HTTP
/// included), and read back with [`Mapper::metadata`](crate::persistence::Mapper::metadata).
///
/// Events saved without it have none: empty metadata costs nothing in storage.
///
/// ```
/// use es_core::Metadata;
/// let metadata = Metadata::new()
///     .user_id("ada")
///     .change_reason("signed at the counter")
///     .header("correlation-id", "7f3c");
/// assert_eq!(metadata.user_id.as_deref(), Some("ada"));
/// assert_eq!(metadata.headers["correlation-id"], "7f3c");
/// assert!(!metadata.is_empty());
/// assert!(Metadata::new().is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Who made the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_reason: Option<String>,
    /// Anything else, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl Metadata {
    /// No user, no reason, no headers.
    pub fn new() -> Self {
        Metadata::default()
    }

    /// The same metadata, naming who made the change.
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// The same metadata, saying why.
    pub fn change_reason(mut self, reason: impl Into<String>) -> Self {
        self.change_reason = Some(reason.into());
        self
    }

    /// The same metadata with the header `name` set to `value`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }

    /// Whether there is nothing in it.
    pub fn is_empty(&self) -> bool {
        self.user_id.is_none() && self.change_reason.is_none() && self.headers.is_empty()
    }
}
