//! The repository: aggregates rebuilt from their stored events.

use super::Application;
use crate::domain::aggregate::{Aggregate, replay};
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

    /// The aggregate at its latest version.
    pub fn get<A: Aggregate>(&self, id: impl Into<OriginatorId>) -> Result<A> {
        self.load(id.into(), None)
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

    fn load<A: Aggregate>(&self, id: OriginatorId, version: Option<u64>) -> Result<A> {
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
