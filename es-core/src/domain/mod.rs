//! The domain layer: aggregates, domain events, snapshots and the topic registry.
//! Nothing here knows how or where events are stored.

pub(crate) mod aggregate;
pub(crate) mod event;
pub(crate) mod id;
pub(crate) mod metadata;
pub(crate) mod snapshot;
pub(crate) mod topic;
