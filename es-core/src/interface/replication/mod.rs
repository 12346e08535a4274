//! Replication between services: Martin Fowler's "event-carried state
//! transfer", as the pik replication module does it, with delivery that loses
//! nothing.
//!
//! - The master: an aggregate marked `#[replicating("contract")]` becomes, after
//!   each of its events, a [`HistoryRecord`] of its whole state; subscribers
//!   register a webhook through the subscriptions API; each subscription is a
//!   follower of the application's log, delivering signed [`Batch`]es in log
//!   order and resuming after a crash from its recorded position.
//! - The replica: a struct marked `#[replicated("contract")]` is kept, one row
//!   per entity with its version, by a callback endpoint that applies each
//!   batch in one transaction and skips what it already has.

mod api;
mod delivery;
mod history;
mod record;
pub mod replica;
mod replicator;
pub mod signature;
mod store;
mod subscription;

pub use delivery::DeliveryConfig;
pub use record::{Batch, HistoryRecord, HistoryType, Reference, Replicating};
pub use replica::{
    Applied, CALLBACK_PATH, CallbackConfig, DEFAULT_MAX_BODY_BYTES, Replica, ReplicaCopy,
    ReplicaError, ReplicaVersion, callback_router,
};
pub use replicated::Replicated;
pub use replicator::{Replicator, ReplicatorBuilder, SubscriptionStatus};
pub use store::SubscriptionStore;
pub use subscription::{
    Filter, Start, Status, Subscription, SubscriptionError, SubscriptionRequest,
};

mod replicated {
    /// A struct a replica keeps copies of: written by `#[replicated("contract")]`.
    ///
    /// Its fields are read from the records' fields (with serde: a field the
    /// master sends and the struct lacks is ignored); the record's `_uid`,
    /// `_version` and history fields are kept beside it by the replica.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// use es_core::interface::replication::Replicated;
    /// #[replicated("lease")]
    /// #[derive(serde::Deserialize)]
    /// pub struct LeaseCopy { number: String }
    /// assert_eq!(LeaseCopy::TYPE, "lease");
    /// ```
    pub trait Replicated: serde::de::DeserializeOwned + Send + 'static {
        /// The type name the master and its replicas agree on (`_type`).
        const TYPE: &'static str;
    }
}
