//! The history record: one change of a replicated entity, in the format of
//! the pik replication module, and the batch that carries records to a
//! subscriber.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::aggregate::Aggregate;
use crate::domain::id::OriginatorId;

/// What a change did to its entity: `+` created it, `~` changed it, `-`
/// deleted it (the seed's `history_type`).
///
/// ```
/// use es_core::interface::replication::HistoryType;
/// assert_eq!(serde_json::to_string(&HistoryType::Deleted)?, r#""-""#);
/// assert_eq!(serde_json::from_str::<HistoryType>(r#""+""#)?, HistoryType::Created);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HistoryType {
    /// The entity's first change (`+`).
    #[serde(rename = "+")]
    Created,
    /// A later change (`~`).
    #[serde(rename = "~")]
    Changed,
    /// A change that deletes the entity (`-`).
    #[serde(rename = "-")]
    Deleted,
}

impl HistoryType {
    /// The one-character code the format uses.
    ///
    /// ```
    /// # use es_core::interface::replication::HistoryType;
    /// assert_eq!(HistoryType::Changed.code(), "~");
    /// ```
    pub fn code(self) -> &'static str {
        match self {
            HistoryType::Created => "+",
            HistoryType::Changed => "~",
            HistoryType::Deleted => "-",
        }
    }
}

/// One change of one entity, with the entity's whole state after it.
///
/// Serialized flat, as the seed's records are: the five `history_*` fields,
/// `_uid`, `_type` and `_version`, then the entity's own fields.
///
/// ```
/// use es_core::interface::replication::{HistoryRecord, HistoryType};
/// let record: HistoryRecord = serde_json::from_str(r#"{
///     "history_id": 133, "history_date": "2018-04-30T12:04:33.690145",
///     "history_change_reason": null, "history_user_id": null, "history_type": "+",
///     "_uid": "123e4567-e89b-12d3-a456-426655440000", "_type": "contract", "_version": 1,
///     "number": "N14/10-11"
/// }"#)?;
/// assert_eq!((record.history_type, record.version), (HistoryType::Created, 1));
/// assert_eq!(record.history_date.to_rfc3339(), "2018-04-30T12:04:33.690145+00:00");
/// assert_eq!(record.fields["number"], "N14/10-11");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// The change's notification id in the master's log: increasing in commit order.
    pub history_id: u64,
    /// When the change happened (the event's timestamp). Read with or
    /// without an offset: a master that writes local ISO 8601 times without
    /// one, as the seed's Django master does, is taken to mean UTC.
    #[serde(deserialize_with = "utc_or_naive")]
    pub history_date: DateTime<Utc>,
    /// Why, as the save's metadata said.
    pub history_change_reason: Option<String>,
    /// Who, as the save's metadata said.
    pub history_user_id: Option<String>,
    /// Created, changed or deleted.
    pub history_type: HistoryType,
    /// The entity's id (the aggregate's id).
    #[serde(rename = "_uid")]
    pub uid: String,
    /// The entity's type: the contract name both sides agree on.
    #[serde(rename = "_type")]
    pub kind: String,
    /// The entity's version after the change (the aggregate's version).
    #[serde(rename = "_version")]
    pub version: u64,
    /// The entity's fields after the change.
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// An RFC 3339 time, or an ISO 8601 one without an offset, as UTC.
fn utc_or_naive<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    if let Ok(time) = DateTime::parse_from_rfc3339(&text) {
        return Ok(time.with_timezone(&Utc));
    }
    chrono::NaiveDateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|naive| naive.and_utc())
        .map_err(|e| {
            serde::de::Error::custom(format_args!(
                "history_date {text:?} is not an ISO 8601 time: {e}"
            ))
        })
}

/// What one delivery carries: `{"count": n, "results": [records]}`, records in
/// the master's log order.
///
/// ```
/// use es_core::interface::replication::Batch;
/// let batch = Batch::new(Vec::new());
/// assert_eq!(serde_json::to_string(&batch)?, r#"{"count":0,"results":[]}"#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// How many records `results` holds.
    pub count: usize,
    /// The records.
    pub results: Vec<HistoryRecord>,
}

impl Batch {
    /// A batch of `results`, counted.
    pub fn new(results: Vec<HistoryRecord>) -> Self {
        Batch {
            count: results.len(),
            results,
        }
    }
}

/// An aggregate whose changes are replicated to other services: written by
/// `#[replicating("contract")]` on the aggregate's struct.
///
/// Its serialized state (the one its snapshots use) is the record's fields,
/// less those named in `exclude(..)`; the events named in `deleted_by(..)`
/// make `-` records.
///
/// ```
/// use es_core::prelude::*;
/// use es_core::interface::replication::Replicating;
///
/// #[replicating("lease", exclude(notes), deleted_by("Ended"))]
/// #[aggregate]
/// pub struct Lease { number: String, notes: String }
///
/// #[aggregate]
/// impl Lease {
///     #[event("Signed")]
///     pub fn sign(number: String) -> Self { Lease { number, notes: String::new() } }
///     #[event("Ended")]
///     pub fn end(&mut self) {}
/// }
///
/// assert_eq!(Lease::CONTRACT, "lease");
/// assert_eq!(Lease::EXCLUDED, ["notes"]);
/// assert!(Lease::deletes(&LeaseEvent::Ended {}));
/// ```
pub trait Replicating: Aggregate {
    /// The type name the master and its replicas agree on (`_type`).
    const CONTRACT: &'static str;
    /// Fields of the state left out of records.
    const EXCLUDED: &'static [&'static str];
    /// Whether `event` deletes the entity (a `-` record).
    fn deletes(event: &Self::Event) -> bool;
}

/// A reference to another replicated entity, serialized as the seed's
/// foreign keys are: `{"_uid": .., "_type": ..}`.
///
/// ```
/// use es_core::interface::replication::Reference;
/// let owner = Reference::new("person", uuid::Uuid::nil());
/// assert_eq!(
///     serde_json::to_value(&owner)?,
///     serde_json::json!({"_uid": "00000000-0000-0000-0000-000000000000", "_type": "person"})
/// );
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    /// The referred entity's id.
    #[serde(rename = "_uid")]
    pub uid: String,
    /// The referred entity's type.
    #[serde(rename = "_type")]
    pub kind: String,
}

impl Reference {
    /// A reference to the entity `id` of type `kind`.
    pub fn new(kind: impl Into<String>, id: impl Into<OriginatorId>) -> Self {
        Reference {
            uid: id.into().to_string(),
            kind: kind.into(),
        }
    }

    /// A reference to the aggregate `id` of the replicating type `A`.
    ///
    /// ```
    /// # use es_core::prelude::*;
    /// use es_core::interface::replication::Reference;
    /// # #[replicating("tenant")] #[aggregate] pub struct Tenant { name: String }
    /// # #[aggregate] impl Tenant { #[event("Moved")] pub fn move_in(name: String) -> Self { Tenant { name } } }
    /// let tenant = Tenant::move_in("Ada".into());
    /// assert_eq!(Reference::to::<Tenant>(tenant.id()).kind, "tenant");
    /// ```
    pub fn to<A: Replicating>(id: impl Into<OriginatorId>) -> Self {
        Reference::new(A::CONTRACT, id)
    }
}
