//! What can go wrong when a replica applies a batch or reads its copies.

use crate::error::{BoxError, Error};

/// Why a batch was not applied, or a copy could not be read.
///
/// A batch that fails is applied not at all: its one transaction is rolled
/// back, so the master may send it again as it was.
///
/// ```
/// use es_core::interface::replication::ReplicaError;
/// let error = ReplicaError::UnknownType { kind: "lease".into() };
/// assert!(error.to_string().contains("\"lease\""));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicaError {
    /// A record's `_type` names no type registered with
    /// [`Replica::replicate`](super::Replica::replicate).
    #[error(
        "unknown type {kind:?}: no replicated type of this replica is registered under it \
         (register it with Replica::replicate); nothing of the batch was applied"
    )]
    UnknownType {
        /// The record's `_type`.
        kind: String,
    },

    /// A record, or a stored copy, does not fit its registered type.
    #[error("record {uid:?} of type {kind:?} does not fit the replicated type: {reason}")]
    InvalidRecord {
        /// The record's `_type`.
        kind: String,
        /// The record's `_uid`.
        uid: String,
        /// What serde (or the version's range) said.
        reason: String,
    },

    /// A batch's `count` is not the number of records it holds.
    #[error("the batch says it holds {count} records but holds {held}; nothing of it was applied")]
    CountMismatch {
        /// The batch's `count`.
        count: usize,
        /// How many records `results` holds.
        held: usize,
    },

    /// A callback given to [`Replica::on_change`](super::Replica::on_change) or
    /// [`Replica::on_any_change`](super::Replica::on_any_change) failed; the
    /// batch was rolled back.
    #[error("a replica's callback failed, so nothing of the batch was applied: {0}")]
    Callback(#[source] BoxError),

    /// [`Replica::history`](super::Replica::history) was asked of a replica
    /// that keeps none.
    #[error(
        "this replica keeps no history: build it with Replica::with_history to keep one row per applied record"
    )]
    HistoryNotKept,

    /// The replica's database failed.
    #[error(transparent)]
    Store(#[from] Error),
}
