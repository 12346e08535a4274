//! The application layer: binds a domain model to a store through the mapper.
//! Saves aggregates, gets them back, takes snapshots, and exposes the
//! notification log to readers downstream.

#[cfg(feature = "async")]
mod asynchronous;
mod builder;
mod cache;
mod environment;
mod factory;
mod mapper_config;
mod notification_log;
#[cfg(feature = "postgres")]
mod postgres;
mod repository;
mod save;

use std::collections::HashMap;
use std::sync::Arc;

pub(crate) use crate::persistence::Signal;
#[cfg(feature = "async")]
pub use asynchronous::AsyncApplication;
#[cfg(feature = "async")]
pub(crate) use asynchronous::on_blocking_pool;
pub use builder::ApplicationBuilder;
pub use environment::Environment;
pub use factory::{
    DEFAULT_SQLITE_DBNAME, DEFAULT_SQLITE_LOCK_TIMEOUT, FactorySettings, OpenedPersistence,
    Persistence, PersistenceFactory, PersistenceModule,
};
pub use notification_log::{DEFAULT_SECTION_SIZE, NotificationIter, NotificationLog, Section};
pub use repository::Repository;
pub use save::{Save, Unsaved};

use crate::domain::aggregate::Aggregate;
use crate::domain::event::{AnyEvent, DomainEvent};
use crate::domain::id::OriginatorId;
use crate::domain::metadata::Metadata;
use crate::error::{BoxError, Error, Result};
use crate::persistence::{
    AggregateRecorder, ApplicationRecorder, Mapper, ProcessRecorder, StoredEvent, Tracking,
};

/// A function told about each successful save.
type Subscriber = Box<dyn Fn(&[Recording]) -> Result<(), BoxError> + Send + Sync>;

/// One event as recorded by a save: the domain event and its notification id.
#[derive(Debug)]
pub struct Recording {
    /// The event's position in the notification log.
    pub notification_id: u64,
    /// The event, with its payload as `dyn AnyEvent` (downcast to the event enum).
    pub event: DomainEvent<Box<dyn AnyEvent>>,
}

/// An event-sourced application: saves aggregates as events and gets them back.
///
/// ```
/// use es_core::prelude::*;
///
/// #[aggregate]
/// pub struct Dog { name: String, tricks: Vec<String> }
///
/// #[aggregate]
/// impl Dog {
///     #[event("Registered")]
///     pub fn register(name: String) -> Self { Dog { name, tricks: Vec::new() } }
///     #[event("TrickAdded")]
///     pub fn add_trick(&mut self, trick: String) { self.tricks.push(trick); }
/// }
///
/// let app = Application::builder().in_memory().build()?;
/// let mut dog = Dog::register("Fido".into());
/// dog.add_trick("roll over".into());
/// let recordings = app.save(&mut dog)?;
/// assert_eq!(recordings.len(), 2);
/// assert!(dog.pending_events().is_empty());
///
/// let dog: Dog = app.repository().get(dog.id())?;
/// assert_eq!(dog.tricks, ["roll over"]);
/// assert_eq!(dog.version(), 2);
/// # Ok::<(), es_core::Error>(())
/// ```
pub struct Application {
    name: Option<String>,
    persistence: Persistence,
    mapper: Mapper,
    events: Arc<dyn ProcessRecorder>,
    snapshots: Option<Arc<dyn AggregateRecorder>>,
    intervals: HashMap<String, u64>,
    section_size: usize,
    subscribers: Vec<Subscriber>,
    cache: Option<cache::AggregateCache>,
    saves: Signal,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("name", &self.name)
            .field("persistence", &self.persistence)
            .field("snapshotting", &self.snapshots.is_some())
            .field("intervals", &self.intervals)
            .field("subscribers", &self.subscribers.len())
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// An application configured from the process's environment alone; see the
    /// README's configuration table. With nothing set, events go to the SQLite
    /// file `events.sqlite3` in the working directory.
    ///
    /// ```no_run
    /// let app = es_core::Application::from_env()?;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn from_env() -> Result<Self> {
        Self::builder().build()
    }

    /// Starts configuring an application in code.
    pub fn builder() -> ApplicationBuilder {
        ApplicationBuilder::default()
    }

    /// The application's name, if it was given one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Where the application keeps its events.
    pub fn persistence(&self) -> &Persistence {
        &self.persistence
    }

    /// The mapper, to decode notifications read from the log.
    ///
    /// ```
    /// # use es_core::prelude::*;
    /// # #[aggregate] pub struct Cat { lives: u8 }
    /// # #[aggregate] impl Cat { #[event("Born")] pub fn born() -> Self { Cat { lives: 9 } } }
    /// let app = Application::builder().in_memory().build()?;
    /// app.save(&mut Cat::born())?;
    /// let notification = app.notification_log().select(1, 1)?.remove(0);
    /// let event = app.mapper().to_any_event(&notification.event)?;
    /// assert_eq!(event.topic(), "Cat.Born");
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn mapper(&self) -> &Mapper {
        &self.mapper
    }

    /// The recorder of events and the notification log.
    pub fn recorder(&self) -> &dyn ApplicationRecorder {
        &*self.events
    }

    /// The same recorder, as the tracking recorder of the applications this
    /// one follows: where a follower's position in each leader's log is kept.
    pub fn process_recorder(&self) -> &dyn ProcessRecorder {
        &*self.events
    }

    /// The recorder of snapshots, if the application keeps them.
    pub fn snapshot_recorder(&self) -> Option<&dyn AggregateRecorder> {
        self.snapshots.as_deref()
    }

    /// Whether the application keeps snapshots.
    pub fn is_snapshotting_enabled(&self) -> bool {
        self.snapshots.is_some()
    }

    /// Gets aggregates back.
    pub fn repository(&self) -> Repository<'_> {
        Repository::new(self)
    }

    /// How many saves this application has made since it was built (in this
    /// process): with [`wait_for_save`](Self::wait_for_save), a reader in the
    /// same process sleeps until there is something new instead of polling.
    ///
    /// ```
    /// use std::time::Duration;
    /// # use es_core::prelude::*;
    /// # #[aggregate] pub struct Kite { up: bool }
    /// # #[aggregate] impl Kite { #[event("Flown")] pub fn fly() -> Self { Kite { up: true } } }
    /// let app = std::sync::Arc::new(Application::builder().in_memory().build()?);
    /// let seen = app.saves();
    /// let writer = { let app = app.clone(); std::thread::spawn(move || app.save(&mut Kite::fly())) };
    /// assert!(app.wait_for_save(seen, Duration::from_secs(5)) > seen);
    /// writer.join().unwrap()?;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn saves(&self) -> u64 {
        self.saves.count()
    }

    /// Waits until this application has made a save after the `seen`-th (see
    /// [`saves`](Self::saves)), or `timeout` passes; returns the count then.
    /// Saves by other processes are not counted: poll the log for those.
    pub fn wait_for_save(&self, seen: u64, timeout: std::time::Duration) -> u64 {
        self.saves.wait_past(seen, timeout)
    }

    /// Every notification of the log after `after` (from the start if
    /// `None`), each once and in order, as they are recorded by this
    /// process or another: see [`Subscription`](crate::persistence::Subscription).
    ///
    /// ```
    /// use std::time::Duration;
    /// # use es_core::prelude::*;
    /// # #[aggregate] pub struct Kite { up: bool }
    /// # #[aggregate] impl Kite { #[event("Flown")] pub fn fly() -> Self { Kite { up: true } } }
    /// let app = Application::builder().in_memory().build()?;
    /// app.save(&mut Kite::fly())?;
    /// let mut subscription = app.log_subscription(None)?;
    /// let first = subscription.next_within(Duration::from_secs(1))?.expect("the first");
    /// assert_eq!((first.id, first.event.topic.as_str()), (1, "Kite.Flown"));
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn log_subscription(&self, after: Option<u64>) -> Result<crate::persistence::Subscription> {
        let recorder: Arc<dyn ApplicationRecorder> = self.events.clone();
        crate::persistence::Subscription::new(recorder, after)
    }

    /// The application's notification log.
    pub fn notification_log(&self) -> NotificationLog<'_> {
        NotificationLog::new(&*self.events, self.section_size)
    }

    /// Calls `subscriber` after each successful save with the events just
    /// recorded, synchronously, after the subscribers registered before it.
    /// A subscriber's error is returned by `save` as [`Error::Subscriber`]; the
    /// save itself stands, and the later subscribers are still called.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use es_core::prelude::*;
    /// # #[aggregate] pub struct Bell { rings: u32 }
    /// # #[aggregate] impl Bell { #[event("Hung")] pub fn hang() -> Self { Bell { rings: 0 } } }
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let mut app = Application::builder().in_memory().build()?;
    /// let sink = seen.clone();
    /// app.subscribe(move |recordings| {
    ///     sink.lock().unwrap().extend(recordings.iter().map(|r| r.event.topic()));
    ///     Ok(())
    /// });
    /// app.save(&mut Bell::hang())?;
    /// assert_eq!(*seen.lock().unwrap(), ["Bell.Hung"]);
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn subscribe<F>(&mut self, subscriber: F)
    where
        F: Fn(&[Recording]) -> Result<(), BoxError> + Send + Sync + 'static,
    {
        self.subscribers.push(Box::new(subscriber));
    }

    /// Saves the pending events of one aggregate, or of several at once (see
    /// [`Save`]): all of them are recorded in one transaction, or none is.
    ///
    /// On success the aggregates have no pending events left, snapshots that
    /// fell due are taken, and subscribers are told. If another writer got to a
    /// version first, the result is [`Error::Conflict`], nothing is written, and
    /// the aggregates keep their pending events.
    pub fn save<S: Save + ?Sized>(&self, aggregates: &mut S) -> Result<Vec<Recording>> {
        self.save_tracked(aggregates, None, None)
    }

    /// Saves as [`save`](Self::save) does, with `metadata` (who made the
    /// change, why, other headers) stored with each of the save's events and
    /// read back from the log with [`Mapper::metadata`].
    ///
    /// ```
    /// use es_core::prelude::*;
    /// use es_core::Metadata;
    /// # #[aggregate] pub struct Visa { granted: bool }
    /// # #[aggregate] impl Visa { #[event("Issued")] pub fn issue() -> Self { Visa { granted: true } } }
    /// let app = Application::builder().in_memory().build()?;
    /// let metadata = Metadata::new().user_id("officer-12").header("request-id", "r-881");
    /// app.save_with_metadata(&mut Visa::issue(), &metadata)?;
    /// let stored = app.notification_log().select(1, 1)?.remove(0).event;
    /// assert_eq!(app.mapper().metadata(&stored)?.headers["request-id"], "r-881");
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn save_with_metadata<S: Save + ?Sized>(
        &self,
        aggregates: &mut S,
        metadata: &Metadata,
    ) -> Result<Vec<Recording>> {
        self.save_tracked(aggregates, None, Some(metadata))
    }

    /// Saves as [`save`](Self::save) does, and records in the same
    /// transaction that this application has processed `tracking`'s
    /// notification of an application it follows (even with no pending
    /// events, for a notification that called for nothing). Recording a
    /// notification at or below the position already recorded for that
    /// application is an [`Error::TrackingConflict`] and writes nothing: a
    /// notification is processed once, whatever crashes or retries happen.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// use es_core::persistence::{Tracking, TrackingRecorder};
    /// # #[aggregate] pub struct Receipt { total: u32 }
    /// # #[aggregate] impl Receipt { #[event("Issued")] pub fn issue(total: u32) -> Self { Receipt { total } } }
    /// let follower = Application::builder().name("receipts").in_memory().build()?;
    /// follower.save_with_tracking(&mut Receipt::issue(5), &Tracking::new("orders", 1))?;
    /// assert_eq!(follower.process_recorder().max_tracking_id("orders")?, Some(1));
    /// let again = follower.save_with_tracking(&mut Receipt::issue(5), &Tracking::new("orders", 1));
    /// assert!(matches!(again, Err(Error::TrackingConflict { .. })));
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn save_with_tracking<S: Save + ?Sized>(
        &self,
        aggregates: &mut S,
        tracking: &Tracking,
    ) -> Result<Vec<Recording>> {
        self.save_tracked(aggregates, Some(tracking), None)
    }

    fn save_tracked<S: Save + ?Sized>(
        &self,
        aggregates: &mut S,
        tracking: Option<&Tracking>,
        metadata: Option<&Metadata>,
    ) -> Result<Vec<Recording>> {
        let span = tracing::debug_span!(
            "es.save",
            application = self.name.as_deref().unwrap_or_default(),
            events = tracing::field::Empty,
            first_id = tracing::field::Empty,
            last_id = tracing::field::Empty,
            leader = tracking.map(|t| t.application_name.as_str()),
            leader_id = tracking.map(|t| t.notification_id),
        );
        let _entered = span.enter();
        let saved = self.save_within_span(aggregates, tracking, metadata, &span);
        if let Err(error) = &saved {
            tracing::debug!(%error, "save failed");
        }
        saved
    }

    fn save_within_span<S: Save + ?Sized>(
        &self,
        aggregates: &mut S,
        tracking: Option<&Tracking>,
        metadata: Option<&Metadata>,
        span: &tracing::Span,
    ) -> Result<Vec<Recording>> {
        let mut stored = Vec::new();
        let mut failure = None;
        aggregates.for_each_aggregate(&mut |aggregate| {
            if failure.is_none()
                && let Err(error) = aggregate.encode_pending(&self.mapper, metadata, &mut stored)
            {
                failure = Some(error);
            }
        });
        if let Some(error) = failure {
            return Err(error);
        }
        if stored.is_empty() {
            return match tracking {
                Some(tracking) => self.events.insert_tracking(tracking).map(|()| Vec::new()),
                None => Ok(Vec::new()),
            };
        }
        let epoch = self.cache.as_ref().map(cache::AggregateCache::epoch);
        let inserted = match tracking {
            Some(tracking) => self.events.insert_events_with_tracking(&stored, tracking),
            None => self.events.insert_events(&stored),
        };
        let notification_ids = match inserted {
            Ok(ids) => {
                self.saves.bump();
                span.record("events", ids.len());
                span.record("first_id", ids.first());
                span.record("last_id", ids.last());
                ids
            }
            Err(error) => {
                // Whoever conflicted holds an older copy than the store: so may the cache.
                self.evict_cached(&stored);
                return Err(error);
            }
        };

        let mut events = Vec::with_capacity(stored.len());
        let mut due_snapshots = Vec::new();
        aggregates.for_each_aggregate(&mut |aggregate| {
            if let Some(&every) = self.intervals.get(aggregate.aggregate_name()) {
                let version = aggregate.current_version();
                let before = version - aggregate.pending_count() as u64;
                if version / every > before / every {
                    due_snapshots.push(aggregate.encode_snapshot(&self.mapper));
                }
            }
            if let (Some(cache), Some(epoch)) = (&self.cache, epoch) {
                match aggregate.encode_snapshot(cache.encoder()) {
                    Ok(copy) => cache.put_encoded(aggregate.aggregate_name(), copy, epoch),
                    Err(_) => cache.evict(&aggregate.aggregate_id()),
                }
            }
            aggregate.drain_pending(&mut events);
        });
        let recordings: Vec<Recording> = notification_ids
            .iter()
            .zip(events)
            .map(|(&notification_id, event)| Recording {
                notification_id,
                event,
            })
            .collect();

        for snapshot in due_snapshots {
            if let Err(source) = snapshot.and_then(|snapshot| self.record_snapshot(&snapshot)) {
                return Err(Error::SnapshotAfterSave {
                    notification_ids,
                    source: Box::new(source),
                });
            }
        }
        self.notify(&recordings, &notification_ids)?;
        Ok(recordings)
    }

    /// Takes a snapshot of the aggregate `id` at its latest version, so that
    /// later `get`s replay only the events after it. Taking the same snapshot
    /// twice is harmless.
    ///
    /// ```
    /// use es_core::prelude::*;
    /// # #[aggregate] pub struct Tank { litres: u32 }
    /// # #[aggregate] impl Tank {
    /// #     #[event("Installed")] pub fn install() -> Self { Tank { litres: 0 } }
    /// #     #[event("Filled")] pub fn fill(&mut self, litres: u32) { self.litres += litres; }
    /// # }
    /// let app = Application::builder().in_memory().snapshotting(true).build()?;
    /// let mut tank = Tank::install();
    /// tank.fill(10);
    /// app.save(&mut tank)?;
    /// app.take_snapshot::<Tank>(tank.id())?;
    /// tank.fill(5);
    /// app.save(&mut tank)?;
    /// assert_eq!(app.repository().get::<Tank>(tank.id())?.litres, 15);
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn take_snapshot<A: Aggregate>(&self, id: impl Into<OriginatorId>) -> Result<()> {
        if self.snapshots.is_none() {
            return Err(Error::SnapshottingDisabled);
        }
        let aggregate: A = self.repository().get(id)?;
        self.record_snapshot(&self.mapper.snapshot_to_stored(&aggregate)?)
    }

    /// Takes a snapshot of the aggregate `id` as it was at `version`, as the
    /// Python library's `take_snapshot(id, version=)`: for instance to snapshot
    /// a version known to be settled, or to fill in snapshots of an aggregate
    /// saved before snapshotting was turned on. A version the aggregate never
    /// reached is [`Error::AggregateNotFound`].
    ///
    /// ```
    /// use es_core::prelude::*;
    /// # #[aggregate] pub struct Kettle { boils: u32 }
    /// # #[aggregate] impl Kettle {
    /// #     #[event("Bought")] pub fn buy() -> Self { Kettle { boils: 0 } }
    /// #     #[event("Boiled")] pub fn boil(&mut self) { self.boils += 1; }
    /// # }
    /// let app = Application::builder().in_memory().snapshotting(true).build()?;
    /// let mut kettle = Kettle::buy();
    /// kettle.boil();
    /// kettle.boil();
    /// app.save(&mut kettle)?;
    /// app.take_snapshot_at::<Kettle>(kettle.id(), 2)?;
    /// let snapshots = app.snapshot_recorder().expect("snapshotting is on");
    /// let taken = snapshots.select_events(&kettle.id(), Default::default())?;
    /// assert_eq!(taken.iter().map(|s| s.originator_version).collect::<Vec<_>>(), [2]);
    /// assert!(app.take_snapshot_at::<Kettle>(kettle.id(), 9).is_err());
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn take_snapshot_at<A: Aggregate>(
        &self,
        id: impl Into<OriginatorId>,
        version: u64,
    ) -> Result<()> {
        if self.snapshots.is_none() {
            return Err(Error::SnapshottingDisabled);
        }
        let aggregate: A = self.repository().get_at(id, version)?;
        self.record_snapshot(&self.mapper.snapshot_to_stored(&aggregate)?)
    }

    fn record_snapshot(&self, snapshot: &StoredEvent) -> Result<()> {
        let Some(snapshots) = &self.snapshots else {
            return Err(Error::SnapshottingDisabled);
        };
        match snapshots.insert_events(std::slice::from_ref(snapshot)) {
            // The same version of an aggregate always has the same state.
            Ok(_) | Err(Error::Conflict { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }

    fn evict_cached(&self, stored: &[StoredEvent]) {
        if let Some(cache) = &self.cache {
            for event in stored {
                cache.evict(&event.originator_id);
            }
        }
    }

    fn notify(&self, recordings: &[Recording], notification_ids: &[u64]) -> Result<()> {
        let mut first_failure = None;
        for (index, subscriber) in self.subscribers.iter().enumerate() {
            if let Err(source) = subscriber(recordings) {
                first_failure.get_or_insert(Error::Subscriber {
                    index,
                    notification_ids: notification_ids.to_vec(),
                    source,
                });
            }
        }
        first_failure.map_or(Ok(()), Err)
    }
}
