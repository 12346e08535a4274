//! Aggregates: the consistency boundary whose state is the fold of its events.

use std::fmt;

use super::id::OriginatorId;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::event::{AggregateEvent, DomainEvent};
use crate::error::{Error, Result};

/// The version an aggregate has once its creation event is applied.
pub const INITIAL_VERSION: u64 = 1;

/// An event-sourced aggregate, implemented by `#[aggregate]` on a struct and its
/// `impl` block.
///
/// The methods here are what every aggregate has beside its own fields. The
/// trait is in the [prelude](crate::prelude).
///
/// ```
/// use es_core::prelude::*;
///
/// #[aggregate]
/// pub struct Counter { count: u32 }
///
/// #[aggregate]
/// impl Counter {
///     #[event("Started")]
///     pub fn start() -> Self { Counter { count: 0 } }
///     #[event("Incremented")]
///     pub fn increment(&mut self, by: u32) { self.count += by; }
/// }
///
/// let mut counter = Counter::start();
/// counter.increment(2);
/// assert_eq!(counter.count, 2);
/// assert_eq!(counter.version(), 2);
/// assert_eq!(counter.pending_events().len(), 2);
/// assert!(counter.modified_on() >= counter.created_on());
/// assert_eq!(Counter::NAME, "Counter");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an aggregate",
    label = "this type has no `#[aggregate] impl` block",
    note = "put `#[aggregate]` on both the struct declaration and its `impl` block with the `#[event]` methods"
)]
pub trait Aggregate: AggregateStruct + Send + Sync + 'static {
    /// The generated event enum, with a variant per `#[event]` method.
    type Event: AggregateEvent;

    /// The aggregate's name in topics (`"Dog"` in `"Dog.Registered"`). Defaults to the
    /// struct's name; `#[aggregate(name = "...")]` on the `impl` block keeps it stable
    /// across a rename of the type.
    const NAME: &'static str;

    /// The topic under which snapshots of this aggregate are stored.
    const SNAPSHOT_TOPIC: &'static str;

    /// The schema version of the aggregate's state in snapshots: 1 unless the
    /// `impl` block's `#[aggregate]` declares `version = N`.
    const SNAPSHOT_VERSION: u32 = 1;

    /// Whether `topic` names a snapshot of this aggregate: its snapshot topic, or
    /// one under an alias of its name.
    fn is_snapshot_topic(topic: &str) -> bool {
        topic == Self::SNAPSHOT_TOPIC
    }

    /// Brings a snapshot's state, stored at schema `version`, up to the current one.
    fn upcast_snapshot(version: u32, state: &mut serde_json::Value) {
        let _ = (version, state);
    }

    /// The aggregate's id (a cheap clone: see [`OriginatorId`]).
    fn id(&self) -> OriginatorId {
        self.meta().id.clone()
    }

    /// The aggregate's version: 1 after its creation event, plus one per later event.
    fn version(&self) -> u64 {
        self.meta().version
    }

    /// When the creation event was triggered (UTC).
    fn created_on(&self) -> DateTime<Utc> {
        self.meta().created_on
    }

    /// When the latest event was triggered (UTC).
    fn modified_on(&self) -> DateTime<Utc> {
        self.meta().modified_on
    }

    /// Events triggered since the aggregate was last saved or loaded, oldest first.
    fn pending_events(&self) -> &[DomainEvent<Self::Event>] {
        &self.meta().pending
    }

    /// Applies a stored creation event of the aggregate `id`, or gives the event
    /// back if it is not one (or if `id` does not fit its id parameter).
    #[doc(hidden)]
    fn replay_creation(id: &OriginatorId, payload: Self::Event) -> Result<Self, Self::Event>;

    /// Applies a stored later event, or gives the event back if it is a creation event.
    #[doc(hidden)]
    fn replay_event(&mut self, payload: Self::Event) -> Result<(), Self::Event>;
}

/// Access to the metadata field that `#[aggregate]` adds to a struct.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is missing `#[aggregate]` on its struct declaration",
    label = "add `#[aggregate]` above `struct {Self}`"
)]
// The serde bounds are here, not on `Aggregate`: `#[aggregate]` on the struct
// derives them, so a struct without it gets this trait's message alone.
pub trait AggregateStruct: Serialize + DeserializeOwned {
    fn meta(&self) -> &AggregateMeta<<Self as Aggregate>::Event>
    where
        Self: Aggregate;
    fn meta_mut(&mut self) -> &mut AggregateMeta<<Self as Aggregate>::Event>
    where
        Self: Aggregate;
}

/// What every aggregate carries beside its own fields: id, version, timestamps
/// and the events not yet saved. `#[aggregate]` adds it as a hidden field.
///
/// Two metadata values are equal when id and version are: that is what makes two
/// aggregate values the same state of the same aggregate.
pub struct AggregateMeta<E> {
    id: OriginatorId,
    version: u64,
    created_on: DateTime<Utc>,
    modified_on: DateTime<Utc>,
    pending: Vec<DomainEvent<E>>,
}

impl<E> AggregateMeta<E> {
    pub(crate) fn new(
        id: OriginatorId,
        version: u64,
        created_on: DateTime<Utc>,
        modified_on: DateTime<Utc>,
    ) -> Self {
        AggregateMeta {
            id,
            version,
            created_on,
            modified_on,
            pending: Vec::new(),
        }
    }

    pub(crate) fn pending_mut(&mut self) -> &mut Vec<DomainEvent<E>> {
        &mut self.pending
    }
}

impl<E> Default for AggregateMeta<E> {
    fn default() -> Self {
        AggregateMeta::new(
            uuid::Uuid::nil().into(),
            0,
            DateTime::UNIX_EPOCH,
            DateTime::UNIX_EPOCH,
        )
    }
}

impl<E: Clone> Clone for AggregateMeta<E> {
    fn clone(&self) -> Self {
        AggregateMeta {
            id: self.id.clone(),
            version: self.version,
            created_on: self.created_on,
            modified_on: self.modified_on,
            pending: self.pending.clone(),
        }
    }
}

impl<E> PartialEq for AggregateMeta<E> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.version == other.version
    }
}

impl<E> Eq for AggregateMeta<E> {}

impl<E> fmt::Debug for AggregateMeta<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateMeta")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("created_on", &self.created_on)
            .field("modified_on", &self.modified_on)
            .field("pending", &self.pending.len())
            .finish()
    }
}

/// A timestamp no earlier than `previous`, so that `modified_on` never goes back
/// when the wall clock does.
fn now_after(previous: DateTime<Utc>) -> DateTime<Utc> {
    Utc::now().max(previous)
}

/// What a creation event's `id = <expr>` may be: anything that converts into
/// an [`OriginatorId`] without failing. A string is not: it may be an invalid id.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an aggregate id",
    label = "an aggregate id is a `Uuid` or an `OriginatorId`",
    note = "for a text id, build it before the command with the fallible `OriginatorId::text(..)?` and pass the `OriginatorId` in"
)]
pub trait IntoOriginatorId {
    /// The id.
    fn into_originator_id(self) -> OriginatorId;
}

// One impl per type, not a blanket one over `Into<OriginatorId>`: with a
// blanket impl the compiler reports the missing `From` rather than the message above.
macro_rules! into_originator_id {
    ($($ty:ty),*) => {$(
        impl IntoOriginatorId for $ty {
            fn into_originator_id(self) -> OriginatorId {
                self.into()
            }
        }
    )*};
}
into_originator_id!(OriginatorId, &OriginatorId, uuid::Uuid, &uuid::Uuid);

/// The type of a creation event's id parameter (`#[event("Joined", id = &id)]
/// fn join(id: OriginatorId, ..)`): that parameter is not stored among the
/// event's fields, since it is the aggregate's id, and replay gives it back from
/// the stored event's id.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the parameter that gives the aggregate its id",
    label = "the id parameter of a creation event is an `OriginatorId` or a `Uuid`",
    note = "take the id as an `OriginatorId` (or a `Uuid`), or compute the id from other parameters"
)]
pub trait IdParam: Sized {
    /// The parameter's value for the aggregate `id`, if it has that form.
    fn from_originator_id(id: &OriginatorId) -> Option<Self>;
}

impl IdParam for OriginatorId {
    fn from_originator_id(id: &OriginatorId) -> Option<Self> {
        Some(id.clone())
    }
}

impl IdParam for uuid::Uuid {
    fn from_originator_id(id: &OriginatorId) -> Option<Self> {
        id.as_uuid()
    }
}

/// Finishes a generated creation command: the user's body has built the state
/// from the event's fields; this gives it its id and records the event.
#[doc(hidden)]
pub fn created<A: Aggregate>(mut aggregate: A, id: OriginatorId, payload: A::Event) -> A {
    let timestamp = Utc::now();
    let meta = aggregate.meta_mut();
    *meta = AggregateMeta::new(id.clone(), INITIAL_VERSION, timestamp, timestamp);
    meta.pending.push(DomainEvent {
        originator_id: id,
        originator_version: INITIAL_VERSION,
        timestamp,
        payload,
    });
    aggregate
}

/// Finishes a generated command on an existing aggregate: the user's body has
/// applied the event's fields; this moves the version on and records the event.
#[doc(hidden)]
pub fn triggered<A: Aggregate>(aggregate: &mut A, payload: A::Event) {
    let meta = aggregate.meta_mut();
    let timestamp = now_after(meta.modified_on);
    meta.version += 1;
    meta.modified_on = timestamp;
    let event = DomainEvent {
        originator_id: meta.id.clone(),
        originator_version: meta.version,
        timestamp,
        payload,
    };
    meta.pending.push(event);
}

/// Rebuilds an aggregate from `start` (a snapshot, or nothing) and the events
/// after it, checking that each event is the aggregate's and comes next.
pub(crate) fn replay<A: Aggregate>(
    mut state: Option<A>,
    events: impl IntoIterator<Item = Result<DomainEvent<A::Event>>>,
) -> Result<Option<A>> {
    for event in events {
        let event = event?;
        let unexpected = |reason: &str, payload: &A::Event| Error::UnexpectedEvent {
            topic: payload.topic().to_owned(),
            originator_id: event.originator_id.clone(),
            originator_version: event.originator_version,
            reason: reason.to_owned(),
        };
        match state.as_mut() {
            None => {
                if event.originator_version != INITIAL_VERSION {
                    return Err(Error::OutOfSequence {
                        originator_id: event.originator_id.clone(),
                        expected: INITIAL_VERSION,
                        found: event.originator_version,
                    });
                }
                let mut aggregate = A::replay_creation(&event.originator_id, event.payload)
                    .map_err(|payload| {
                        let reason = if payload.is_creation() {
                            "the aggregate's id does not fit the id parameter of its creation event"
                        } else {
                            "the first event of an aggregate must be a creation event"
                        };
                        unexpected(reason, &payload)
                    })?;
                *aggregate.meta_mut() = AggregateMeta::new(
                    event.originator_id.clone(),
                    INITIAL_VERSION,
                    event.timestamp,
                    event.timestamp,
                );
                state = Some(aggregate);
            }
            Some(aggregate) => {
                let meta = aggregate.meta();
                if event.originator_id != meta.id {
                    return Err(unexpected(
                        "it belongs to another aggregate",
                        &event.payload,
                    ));
                }
                if event.originator_version != meta.version + 1 {
                    return Err(Error::OutOfSequence {
                        originator_id: meta.id.clone(),
                        expected: meta.version + 1,
                        found: event.originator_version,
                    });
                }
                aggregate.replay_event(event.payload).map_err(|payload| {
                    unexpected("a creation event can only be the first event", &payload)
                })?;
                let meta = aggregate.meta_mut();
                meta.version = event.originator_version;
                meta.modified_on = event.timestamp;
            }
        }
    }
    Ok(state)
}
