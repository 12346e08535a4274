//! The repository: aggregates rebuilt from their stored events.

use super::Application;
use super::cache::AggregateCache;
use crate::domain::aggregate::{Aggregate, replay};
use crate::domain::event::DomainEvent;
use crate::domain::id::OriginatorId;
use crate::error::{Error, Result};
use crate::persistence::{EventQuery, SnapshotOrEvent, StoredEvent};

/// Gets aggregates back from an application's store.
///
/// ```
/// use es_core::prelude::*;
/// # #[aggregate] pub struct Plant { height: u32 }
/// # #[aggregate] impl Plant {
/// #     #[event("Planted")] pub fn plant() -> Self { Plant { height: 0 } }
/// #     #[event("Grew")] pub fn grow(&mut self, by: u32) { self.height += by; }
/// # }
/// let app = Application::builder().in_memory().build()?;
/// let mut plant = Plant::plant();
/// plant.grow(3);
/// plant.grow(4);
/// app.save(&mut plant)?;
///
/// let repository = app.repository();
/// assert_eq!(repository.get::<Plant>(plant.id())?.height, 7);
/// assert_eq!(repository.get_at::<Plant>(plant.id(), 2)?.height, 3);
/// assert!(repository.contains(plant.id())?);
/// let missing = repository.get::<Plant>(Uuid::new_v4());
/// assert!(matches!(missing, Err(Error::AggregateNotFound { .. })));
/// # Ok::<(), es_core::Error>(())
/// ```
pub struct Repository<'a> {
    app: &'a Application,
}

impl<'a> Repository<'a> {
    pub(crate) fn new(app: &'a Application) -> Self {
        Repository { app }
    }

    /// The aggregate at its latest version. With the aggregate cache on (see
    /// [`ApplicationBuilder::aggregate_cache`](super::ApplicationBuilder::aggregate_cache)),
    /// a cached copy is brought up to date with only the events recorded since.
    pub fn get<A: Aggregate>(&self, id: impl Into<OriginatorId>) -> Result<A> {
        let id = id.into();
        match &self.app.cache {
            Some(cache) => self.get_through(cache, id),
            None => self.load(id, None),
        }
    }

    fn get_through<A: Aggregate>(&self, cache: &AggregateCache, id: OriginatorId) -> Result<A> {
        // Noted before the store is read: see the cache's protocol.
        let epoch = cache.epoch();
        let aggregate = match cache.get::<A>(&id) {
            Some(copy) if !cache.fastforward() => return Ok(copy),
            Some(copy) => {
                let cached_version = copy.version();
                let aggregate = self.fast_forward(copy).inspect_err(|_| cache.evict(&id))?;
                if aggregate.version() == cached_version {
                    return Ok(aggregate);
                }
                aggregate
            }
            None => self.load(id, None)?,
        };
        cache.put(&aggregate, epoch);
        Ok(aggregate)
    }

    /// `aggregate` with the events recorded after its version applied.
    fn fast_forward<A: Aggregate>(&self, aggregate: A) -> Result<A> {
        let id = aggregate.id();
        let query = EventQuery::new().gt(aggregate.version());
        let stored = self.app.events.select_events(&id, query)?;
        let events = stored
            .iter()
            .map(|event| self.app.mapper.to_domain_event(event));
        replay(Some(aggregate), events)?.ok_or(Error::AggregateNotFound { id, version: None })
    }

    /// The aggregate as it was at `version`. A version it never reached is
    /// [`Error::AggregateNotFound`].
    pub fn get_at<A: Aggregate>(&self, id: impl Into<OriginatorId>, version: u64) -> Result<A> {
        self.load(id.into(), Some(version))
    }

    /// Whether any event is stored for `id`.
    pub fn contains(&self, id: impl Into<OriginatorId>) -> Result<bool> {
        Ok(!self
            .app
            .events
            .select_events(&id.into(), EventQuery::new().limit(1))?
            .is_empty())
    }

    /// Every event of the aggregate `id`, decoded into `A`'s event enum, oldest
    /// first, each with the version it gave the aggregate and when it happened:
    /// its history, to show or to audit. Snapshots are not used: the events are
    /// the record. An id with no events is [`Error::AggregateNotFound`]; an
    /// event that is not one of `A`'s is an error naming its id and version.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// # #[aggregate] pub struct Lamp { on: bool }
    /// # #[aggregate] impl Lamp {
    /// #     #[event("Installed")] pub fn install() -> Self { Lamp { on: false } }
    /// #     #[event("Switched")] pub fn switch(&mut self, on: bool) { self.on = on; }
    /// # }
    /// let app = Application::builder().in_memory().build()?;
    /// let mut lamp = Lamp::install();
    /// lamp.switch(true);
    /// app.save(&mut lamp)?;
    ///
    /// let history = app.repository().history::<Lamp>(lamp.id())?;
    /// assert_eq!(history.iter().map(|e| e.originator_version).collect::<Vec<_>>(), [1, 2]);
    /// assert!(matches!(history[1].payload, LampEvent::Switched { on: true }));
    /// assert!(history[0].timestamp <= history[1].timestamp);
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn history<A: Aggregate>(
        &self,
        id: impl Into<OriginatorId>,
    ) -> Result<Vec<DomainEvent<A::Event>>> {
        let id = id.into();
        let stored = self.app.events.select_events(&id, EventQuery::new())?;
        if stored.is_empty() {
            return Err(Error::AggregateNotFound { id, version: None });
        }
        stored
            .iter()
            .map(|event| self.app.mapper.to_domain_event::<A::Event>(event))
            .collect()
    }

    fn load<A: Aggregate>(&self, id: OriginatorId, version: Option<u64>) -> Result<A> {
        let _span = tracing::debug_span!(
            "es.replay",
            aggregate = A::NAME,
            id = %id,
            version,
        )
        .entered();
        let not_found = || Error::AggregateNotFound {
            id: id.clone(),
            version,
        };
        // Each event is decoded and applied as it is read, then let go: a
        // long history never sits in memory whole, stored or decoded.
        let mut state = None;
        let apply = |state: &mut Option<A>, stored: &StoredEvent| {
            let event = self.app.mapper.to_domain_event(stored);
            *state = replay::<A>(state.take(), std::iter::once(event))?;
            Ok(())
        };
        match &self.app.snapshots {
            Some(snapshots) => {
                self.app
                    .events
                    .visit_from_snapshot(&**snapshots, &id, version, &mut |item| match item {
                        SnapshotOrEvent::Snapshot(stored) => {
                            let snapshot = self.app.mapper.stored_to_snapshot::<A>(&stored)?;
                            state = Some(snapshot.into_aggregate());
                            Ok(())
                        }
                        SnapshotOrEvent::Event(stored) => apply(&mut state, &stored),
                    })?
            }
            None => {
                let query = EventQuery {
                    lte: version,
                    ..EventQuery::new()
                };
                self.app
                    .events
                    .visit_events(&id, query, &mut |stored| apply(&mut state, &stored))?
            }
        }
        let aggregate = state.ok_or_else(not_found)?;
        match version {
            Some(version) if aggregate.version() != version => Err(not_found()),
            _ => Ok(aggregate),
        }
    }
}
