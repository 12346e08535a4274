//! What `Application::save` accepts: one aggregate, or several saved atomically.

use crate::domain::aggregate::{Aggregate, INITIAL_VERSION};
use crate::domain::event::{AggregateEvent, AnyEvent, DomainEvent};
use crate::domain::id::OriginatorId;
use crate::domain::metadata::Metadata;
use crate::error::{Error, Result};
use crate::persistence::{Mapper, StoredEvent};

/// One or more aggregates whose pending events are saved together, all or nothing.
///
/// Implemented for every aggregate (by `#[aggregate]`), for arrays, slices and vectors of things that
/// implement it, for mutable references, and for tuples of up to four (to save
/// aggregates of different types in one transaction).
///
/// ```
/// use es_core::prelude::*;
/// # #[aggregate] pub struct Ball { kicks: u32 }
/// # #[aggregate] impl Ball {
/// #     #[event("Made")] pub fn make() -> Self { Ball { kicks: 0 } }
/// #     #[event("Kicked")] pub fn kick(&mut self) { self.kicks += 1; }
/// # }
/// # #[aggregate] pub struct Goal { scored: u32 }
/// # #[aggregate] impl Goal { #[event("Built")] pub fn build() -> Self { Goal { scored: 0 } } }
/// let app = Application::builder().in_memory().build()?;
/// let (mut a, mut b) = (Ball::make(), Ball::make());
/// app.save(&mut [&mut a, &mut b])?;           // two of one type
/// let mut goal = Goal::build();
/// a.kick();
/// app.save(&mut (&mut a, &mut goal))?;        // different types, one transaction
/// assert_eq!(app.notification_log().max_id()?, Some(4));
/// # Ok::<(), es_core::Error>(())
/// ```
pub trait Save {
    /// Calls `visit` with each aggregate, in order.
    #[doc(hidden)]
    fn for_each_aggregate(&mut self, visit: &mut dyn FnMut(&mut dyn Unsaved));
}

/// An aggregate seen without its type, as `save` handles it.
#[doc(hidden)]
pub trait Unsaved {
    /// The aggregate's name, to find its snapshotting interval.
    fn aggregate_name(&self) -> &'static str;
    /// The aggregate's id.
    fn aggregate_id(&self) -> OriginatorId;
    /// The aggregate's current version.
    fn current_version(&self) -> u64;
    /// How many events are pending.
    fn pending_count(&self) -> usize;
    /// Encodes the pending events, oldest first, each with the save's metadata.
    fn encode_pending(
        &self,
        mapper: &Mapper,
        metadata: Option<&Metadata>,
        out: &mut Vec<StoredEvent>,
    ) -> Result<()>;
    /// Hands the pending events over, oldest first, leaving none pending.
    fn drain_pending(&mut self, out: &mut Vec<DomainEvent<Box<dyn AnyEvent>>>);
    /// Encodes a snapshot of the aggregate as it is now.
    fn encode_snapshot(&self, mapper: &Mapper) -> Result<StoredEvent>;
    /// The aggregate as [`Any`](std::any::Any), to take it back as its type.
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any>;
}

impl<A: Aggregate> Unsaved for A {
    fn aggregate_name(&self) -> &'static str {
        A::NAME
    }
    fn aggregate_id(&self) -> OriginatorId {
        self.id()
    }
    fn current_version(&self) -> u64 {
        self.version()
    }
    fn pending_count(&self) -> usize {
        self.pending_events().len()
    }
    fn encode_pending(
        &self,
        mapper: &Mapper,
        metadata: Option<&Metadata>,
        out: &mut Vec<StoredEvent>,
    ) -> Result<()> {
        for event in self.pending_events() {
            check_created::<A>(event)?;
            out.push(mapper.to_stored_event_with_metadata(event, metadata)?);
        }
        Ok(())
    }
    fn drain_pending(&mut self, out: &mut Vec<DomainEvent<Box<dyn AnyEvent>>>) {
        out.extend(
            self.meta_mut()
                .pending_mut()
                .drain(..)
                .map(|event| DomainEvent {
                    originator_id: event.originator_id,
                    originator_version: event.originator_version,
                    timestamp: event.timestamp,
                    payload: Box::new(event.payload) as Box<dyn AnyEvent>,
                }),
        );
    }
    fn encode_snapshot(&self, mapper: &Mapper) -> Result<StoredEvent> {
        mapper.snapshot_to_stored(self)
    }
    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any> {
        self
    }
}

/// Refuses a history that does not start with a creation event: replay could
/// never rebuild it, so every later `get` of the aggregate would fail.
fn check_created<A: Aggregate>(event: &DomainEvent<A::Event>) -> Result<()> {
    if event.originator_version == INITIAL_VERSION && !event.payload.is_creation() {
        return Err(Error::NotCreated {
            aggregate: A::NAME,
            originator_id: event.originator_id.clone(),
            topic: event.topic().to_owned(),
        });
    }
    Ok(())
}

/// What a follower's policy collects while it processes an event: aggregates
/// of any types, saved together with the follower's position.
impl Save for Box<dyn Unsaved> {
    fn for_each_aggregate(&mut self, visit: &mut dyn FnMut(&mut dyn Unsaved)) {
        visit(&mut **self);
    }
}

impl<T: Save + ?Sized> Save for &mut T {
    fn for_each_aggregate(&mut self, visit: &mut dyn FnMut(&mut dyn Unsaved)) {
        (**self).for_each_aggregate(visit);
    }
}

impl<T: Save> Save for [T] {
    fn for_each_aggregate(&mut self, visit: &mut dyn FnMut(&mut dyn Unsaved)) {
        for item in self {
            item.for_each_aggregate(visit);
        }
    }
}

impl<T: Save, const N: usize> Save for [T; N] {
    fn for_each_aggregate(&mut self, visit: &mut dyn FnMut(&mut dyn Unsaved)) {
        self.as_mut_slice().for_each_aggregate(visit);
    }
}

impl<T: Save> Save for Vec<T> {
    fn for_each_aggregate(&mut self, visit: &mut dyn FnMut(&mut dyn Unsaved)) {
        self.as_mut_slice().for_each_aggregate(visit);
    }
}

macro_rules! save_tuple {
    ($($name:ident . $index:tt),+) => {
        impl<$($name: Save),+> Save for ($($name,)+) {
            fn for_each_aggregate(&mut self, visit: &mut dyn FnMut(&mut dyn Unsaved)) {
                $(self.$index.for_each_aggregate(visit);)+
            }
        }
    };
}
save_tuple!(A.0, B.1);
save_tuple!(A.0, B.1, C.2);
save_tuple!(A.0, B.1, C.2, D.3);
