//! Snapshots: an aggregate's whole state at one version, so that replay can
//! start there instead of at the first event.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::aggregate::{Aggregate, AggregateMeta};
use super::id::OriginatorId;

/// An aggregate's state at one version.
///
/// ```
/// use es_core::prelude::*;
///
/// #[aggregate]
/// #[derive(Clone)]
/// pub struct Note { text: String }
///
/// #[aggregate]
/// impl Note {
///     #[event("Written")]
///     pub fn write(text: String) -> Self { Note { text } }
/// }
///
/// let note = Note::write("hello".into());
/// let snapshot = Snapshot::take(&note);
/// assert_eq!(snapshot.originator_version, 1);
/// let copy: Note = snapshot.into_aggregate();
/// assert_eq!(copy.id(), note.id());
/// assert_eq!(copy.text, "hello");
/// assert!(copy.pending_events().is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct Snapshot<A> {
    /// The aggregate's id.
    pub originator_id: OriginatorId,
    /// The version the state is at.
    pub originator_version: u64,
    /// When the aggregate was created.
    pub created_on: DateTime<Utc>,
    /// When the last event before the snapshot was triggered.
    pub modified_on: DateTime<Utc>,
    /// The aggregate's fields (its metadata is kept in the fields above).
    pub state: A,
}

impl<A: Aggregate + Clone> Snapshot<A> {
    /// Takes a snapshot of `aggregate` as it is now: its state includes the
    /// effect of events still pending, which the snapshot itself does not keep.
    pub fn take(aggregate: &A) -> Self {
        let mut state = aggregate.clone();
        state.meta_mut().pending_mut().clear();
        Snapshot {
            originator_id: aggregate.id(),
            originator_version: aggregate.version(),
            created_on: aggregate.created_on(),
            modified_on: aggregate.modified_on(),
            state,
        }
    }
}

impl<A: Aggregate> Snapshot<A> {
    /// The aggregate at the snapshot's version, with no pending events.
    pub fn into_aggregate(self) -> A {
        let mut aggregate = self.state;
        *aggregate.meta_mut() = AggregateMeta::new(
            self.originator_id,
            self.originator_version,
            self.created_on,
            self.modified_on,
        );
        aggregate
    }
}

/// How a snapshot is laid out in serde's data model: `{created_on, modified_on,
/// state}`, and `version` when the aggregate's snapshot schema is above 1. The
/// id, version and topic are stored in columns of their own.
#[derive(Serialize)]
pub(crate) struct SnapshotBody<'a, A> {
    pub(crate) created_on: DateTime<Utc>,
    pub(crate) modified_on: DateTime<Utc>,
    pub(crate) state: &'a A,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) version: Option<u32>,
}

impl<'a, A: Aggregate> SnapshotBody<'a, A> {
    pub(crate) fn new(aggregate: &'a A) -> Self {
        SnapshotBody {
            created_on: aggregate.created_on(),
            modified_on: aggregate.modified_on(),
            state: aggregate,
            version: (A::SNAPSHOT_VERSION > 1).then_some(A::SNAPSHOT_VERSION),
        }
    }
}

/// A snapshot body as read back, its state brought up to the current schema.
pub(crate) struct OwnedSnapshotBody<A> {
    pub(crate) created_on: DateTime<Utc>,
    pub(crate) modified_on: DateTime<Utc>,
    pub(crate) state: A,
}

#[derive(Deserialize)]
struct StoredSnapshotBody<S> {
    created_on: DateTime<Utc>,
    modified_on: DateTime<Utc>,
    state: S,
    #[serde(default)]
    version: Option<u32>,
}

impl<'de, A: Aggregate> Deserialize<'de> for OwnedSnapshotBody<A> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let current = A::SNAPSHOT_VERSION;
        let check = |stored: Option<u32>| {
            let stored = stored.unwrap_or(1);
            if stored == 0 || stored > current {
                return Err(D::Error::custom(format_args!(
                    "the snapshot was stored at schema version {stored}, but this program knows versions 1 to {current}"
                )));
            }
            Ok(stored)
        };
        if current > 1 {
            let body = StoredSnapshotBody::<serde_json::Value>::deserialize(deserializer)?;
            let stored = check(body.version)?;
            let mut state = body.state;
            A::upcast_snapshot(stored, &mut state);
            Ok(OwnedSnapshotBody {
                created_on: body.created_on,
                modified_on: body.modified_on,
                state: serde_json::from_value(state).map_err(D::Error::custom)?,
            })
        } else {
            let body = StoredSnapshotBody::<A>::deserialize(deserializer)?;
            check(body.version)?;
            Ok(OwnedSnapshotBody {
                created_on: body.created_on,
                modified_on: body.modified_on,
                state: body.state,
            })
        }
    }
}
