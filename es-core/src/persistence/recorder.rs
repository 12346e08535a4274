//! Recorder traits: what every storage backend offers, whatever it is.

use std::any::Any;

use crate::domain::id::OriginatorId;

use super::listen::{DEFAULT_LISTEN_POLL_INTERVAL, Listener, PollingListener};
use super::stored_event::{Notification, StoredEvent};
use crate::error::Result;

/// Which of one aggregate's events to select, as in the Python library's
/// `select_events(originator_id, gt=, lte=, desc=, limit=)`.
///
/// ```
/// use es_core::persistence::EventQuery;
/// let query = EventQuery::new().gt(2).lte(10).desc().limit(3);
/// assert_eq!(query.limit, Some(3));
/// assert!(query.desc);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Only versions greater than this.
    pub gt: Option<u64>,
    /// Only versions less than or equal to this.
    pub lte: Option<u64>,
    /// Newest first (the limit then keeps the newest).
    pub desc: bool,
    /// At most this many events.
    pub limit: Option<usize>,
}

impl EventQuery {
    /// All events, oldest first.
    pub fn new() -> Self {
        Self::default()
    }
    /// Only versions greater than `version`.
    pub fn gt(mut self, version: u64) -> Self {
        self.gt = Some(version);
        self
    }
    /// Only versions up to and including `version`.
    pub fn lte(mut self, version: u64) -> Self {
        self.lte = Some(version);
        self
    }
    /// Newest first.
    pub fn desc(mut self) -> Self {
        self.desc = true;
        self
    }
    /// At most `limit` events.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }
}

/// Stores the events of aggregates, one originator at a time.
///
/// Implementations must make [`insert_events`](Self::insert_events) atomic: all the
/// events of a call are recorded, or none is. A version already recorded for an
/// originator is a [`Conflict`](crate::Error::Conflict).
///
/// ```
/// use es_core::persistence::{AggregateRecorder, EventQuery, MemoryRecorder, StoredEvent};
/// let recorder = MemoryRecorder::new();
/// let id = es_core::OriginatorId::text("order-1")?; // or a Uuid: `uuid::Uuid::new_v4().into()`
/// let event = |v| StoredEvent { originator_id: id.clone(), originator_version: v, topic: "T".into(), state: vec![] };
/// recorder.insert_events(&[event(1), event(2)])?;
/// assert!(recorder.insert_events(&[event(3), event(2)]).unwrap_err().is_conflict());
/// assert_eq!(recorder.select_events(&id, EventQuery::new())?.len(), 2);
/// # Ok::<(), es_core::Error>(())
/// ```
pub trait AggregateRecorder: Send + Sync + Any {
    /// Records `events` atomically, returning their notification ids in order when
    /// the recorder keeps a notification log (empty otherwise).
    fn insert_events(&self, events: &[StoredEvent]) -> Result<Vec<u64>>;

    /// One originator's events, by version, filtered by `query`.
    fn select_events(
        &self,
        originator_id: &OriginatorId,
        query: EventQuery,
    ) -> Result<Vec<StoredEvent>>;

    /// Calls `visit` with each of the events [`select_events`](Self::select_events)
    /// would give, in the same order, as they are read; stops at the first
    /// error `visit` returns, and returns it. A replay can so decode and apply
    /// each event and let it go, instead of holding the whole history at once.
    ///
    /// The default selects them all first; the SQL stores override it to read
    /// row by row.
    ///
    /// ```
    /// use es_core::persistence::{AggregateRecorder, EventQuery, MemoryRecorder, StoredEvent};
    /// let recorder = MemoryRecorder::new();
    /// let id = es_core::OriginatorId::text("counter")?;
    /// let event = |v| StoredEvent { originator_id: id.clone(), originator_version: v, topic: "T".into(), state: vec![v as u8] };
    /// recorder.insert_events(&[event(1), event(2), event(3)])?;
    /// let mut sum = 0;
    /// recorder.visit_events(&id, EventQuery::new().gt(1), &mut |event| {
    ///     sum += event.state[0];
    ///     Ok(())
    /// })?;
    /// assert_eq!(sum, 5);
    /// # Ok::<(), es_core::Error>(())
    /// ```
    fn visit_events(
        &self,
        originator_id: &OriginatorId,
        query: EventQuery,
        visit: &mut dyn FnMut(StoredEvent) -> Result<()>,
    ) -> Result<()> {
        for event in self.select_events(originator_id, query)? {
            visit(event)?;
        }
        Ok(())
    }

    /// Visits what an aggregate is rebuilt from: the latest snapshot of
    /// `originator_id` at or below `lte` in `snapshots` (if there is one),
    /// then this recorder's events of it after that snapshot, up to `lte`, in
    /// version order. Stops at the first error `visit` returns, and returns it.
    ///
    /// The design: which snapshot an aggregate starts from decides which of
    /// its events to read, so done as two reads this costs two round trips to
    /// a database server, one after the other. A recorder that can read both
    /// tables in one statement overrides this method; the default makes the
    /// two reads ([`select_events`](Self::select_events) on `snapshots`, then
    /// [`visit_events`](Self::visit_events)), so that every backend, and any
    /// pairing of backends, offers it. The PostgreSQL recorder reads both in
    /// one statement when `snapshots` is a PostgreSQL recorder on the same
    /// database (it recognizes it through [`Any`]), and makes the two reads
    /// otherwise. The answer is the same either way.
    ///
    /// ```
    /// use es_core::persistence::{AggregateRecorder, MemoryRecorder, SnapshotOrEvent, StoredEvent};
    /// let (events, snapshots) = (MemoryRecorder::new(), MemoryRecorder::new());
    /// let id = es_core::OriginatorId::text("counter")?;
    /// let stored = |v| StoredEvent { originator_id: id.clone(), originator_version: v, topic: "T".into(), state: vec![] };
    /// events.insert_events(&[stored(1), stored(2), stored(3)])?;
    /// snapshots.insert_events(&[stored(2)])?;
    /// let mut visited = Vec::new();
    /// events.visit_from_snapshot(&snapshots, &id, None, &mut |item| {
    ///     visited.push(match item {
    ///         SnapshotOrEvent::Snapshot(s) => format!("snapshot {}", s.originator_version),
    ///         SnapshotOrEvent::Event(e) => format!("event {}", e.originator_version),
    ///     });
    ///     Ok(())
    /// })?;
    /// assert_eq!(visited, ["snapshot 2", "event 3"]);
    /// # Ok::<(), es_core::Error>(())
    /// ```
    fn visit_from_snapshot(
        &self,
        snapshots: &dyn AggregateRecorder,
        originator_id: &OriginatorId,
        lte: Option<u64>,
        visit: &mut dyn FnMut(SnapshotOrEvent) -> Result<()>,
    ) -> Result<()> {
        visit_from_snapshot_in_two_reads(self, snapshots, originator_id, lte, visit)
    }
}

/// What [`AggregateRecorder::visit_from_snapshot`] visits: first the
/// snapshot an aggregate starts from, if there is one, then its events after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotOrEvent {
    /// The latest snapshot at or below the wanted version.
    Snapshot(StoredEvent),
    /// An event after the snapshot (or any event, without one).
    Event(StoredEvent),
}

/// [`AggregateRecorder::visit_from_snapshot`] as two reads: the snapshot,
/// then the events after it. The default, and what an override falls back on.
pub(crate) fn visit_from_snapshot_in_two_reads<R: AggregateRecorder + ?Sized>(
    events: &R,
    snapshots: &dyn AggregateRecorder,
    originator_id: &OriginatorId,
    lte: Option<u64>,
    visit: &mut dyn FnMut(SnapshotOrEvent) -> Result<()>,
) -> Result<()> {
    let latest = EventQuery {
        lte,
        ..EventQuery::new().desc().limit(1)
    };
    let snapshot = snapshots.select_events(originator_id, latest)?.pop();
    let query = EventQuery {
        gt: snapshot.as_ref().map(|s| s.originator_version),
        lte,
        ..EventQuery::new()
    };
    if let Some(snapshot) = snapshot {
        visit(SnapshotOrEvent::Snapshot(snapshot))?;
    }
    events.visit_events(originator_id, query, &mut |event| {
        visit(SnapshotOrEvent::Event(event))
    })
}

/// An aggregate recorder that also keeps the application-wide notification log:
/// every recorded event gets a notification id, strictly increasing in commit
/// order, so a reader that has seen id `n` never later finds a new event below `n`.
///
/// ```
/// use es_core::persistence::{AggregateRecorder, ApplicationRecorder, MemoryRecorder, StoredEvent};
/// let recorder = MemoryRecorder::new();
/// assert_eq!(recorder.max_notification_id()?, None);
/// let event = |topic: &str| StoredEvent {
///     originator_id: uuid::Uuid::new_v4().into(), originator_version: 1, topic: topic.into(), state: vec![],
/// };
/// recorder.insert_events(&[event("A"), event("B"), event("A")])?;
/// let only_a = recorder.select_notifications(1, 10, None, &["A"])?;
/// assert_eq!(only_a.iter().map(|n| n.id).collect::<Vec<_>>(), [1, 3]);
/// assert_eq!(recorder.max_notification_id()?, Some(3));
/// # Ok::<(), es_core::Error>(())
/// ```
pub trait ApplicationRecorder: AggregateRecorder {
    /// Up to `limit` notifications with ids from `start` (inclusive) up to `stop`
    /// (inclusive, if given), in id order; only those whose topic is in `topics`
    /// unless `topics` is empty.
    fn select_notifications(
        &self,
        start: u64,
        limit: usize,
        stop: Option<u64>,
        topics: &[&str],
    ) -> Result<Vec<Notification>>;

    /// The highest notification id recorded, or `None` for an empty log.
    fn max_notification_id(&self) -> Result<Option<u64>>;

    /// A [`Listener`] that says when the log may have grown, made before the
    /// reader's next read. Every store of this crate wakes it at once for
    /// saves of this process; PostgreSQL (`LISTEN`) and SQLite (a change
    /// count checked every few milliseconds) for other processes' too. The
    /// default polls every [`DEFAULT_LISTEN_POLL_INTERVAL`].
    fn listen(&self) -> Result<Box<dyn Listener>> {
        Ok(Box::new(PollingListener::every(
            DEFAULT_LISTEN_POLL_INTERVAL,
        )))
    }
}

/// How far a follower has processed an upstream application's notification
/// log: every notification of `application_name` up to `notification_id`.
///
/// A follower records one with the events it derived from that notification
/// ([`ProcessRecorder::insert_events_with_tracking`]), so that after a crash
/// it resumes after the last notification whose outcome was committed, and
/// a notification processed twice can never be recorded twice.
///
/// ```
/// use es_core::persistence::Tracking;
/// let tracking = Tracking::new("orders", 42);
/// assert_eq!((tracking.application_name.as_str(), tracking.notification_id), ("orders", 42));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tracking {
    /// The upstream application whose log the notification is in.
    pub application_name: String,
    /// The notification's id in that log: the position recorded.
    pub notification_id: u64,
    /// The first notification this processing covered: a batch's first, or
    /// `notification_id` itself. The record is refused if a position at or
    /// above it is recorded, since then part of the batch was processed
    /// already (by a process that ran it beside this one, or one whose
    /// commit landed after it was killed).
    pub first_notification_id: u64,
}

impl Tracking {
    /// Notification `notification_id` of `application_name`'s log, processed
    /// alone.
    pub fn new(application_name: impl Into<String>, notification_id: u64) -> Self {
        Self::batch(application_name, notification_id, notification_id)
    }

    /// Notifications `first` to `last` of `application_name`'s log,
    /// processed together: refused if any of them has been recorded.
    ///
    /// ```
    /// use es_core::persistence::{MemoryRecorder, Tracking, TrackingRecorder};
    /// let recorder = MemoryRecorder::new();
    /// recorder.insert_tracking(&Tracking::new("orders", 5))?;
    /// // 3 to 9 overlaps 5, recorded: nothing is written.
    /// assert!(recorder.insert_tracking(&Tracking::batch("orders", 3, 9)).is_err());
    /// recorder.insert_tracking(&Tracking::batch("orders", 6, 9))?;
    /// assert_eq!(recorder.max_tracking_id("orders")?, Some(9));
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn batch(application_name: impl Into<String>, first: u64, last: u64) -> Self {
        Tracking {
            application_name: application_name.into(),
            notification_id: last,
            first_notification_id: first,
        }
    }

    /// The lowest id the record covers: a recorded position at or above it
    /// is a conflict. Never above `notification_id`, so positions only rise.
    pub(crate) fn lowest(&self) -> u64 {
        self.first_notification_id.min(self.notification_id)
    }
}

/// Records each follower's position in the logs of the applications it follows.
///
/// Positions only rise: recording a notification id at or below the one
/// already recorded for the same application (or a batch whose first id is)
/// is an [`Error::TrackingConflict`](crate::Error::TrackingConflict) and
/// writes nothing. Ids may skip (a follower that filters by topic, or processes a
/// batch, records only the last id it reached). As in the Python library,
/// only the highest id of each application is kept.
///
/// ```
/// use es_core::persistence::{MemoryRecorder, Tracking, TrackingRecorder};
/// let recorder = MemoryRecorder::new();
/// assert_eq!(recorder.max_tracking_id("orders")?, None);
/// recorder.insert_tracking(&Tracking::new("orders", 3))?;
/// recorder.insert_tracking(&Tracking::new("orders", 7))?;
/// assert_eq!(recorder.max_tracking_id("orders")?, Some(7));
/// assert!(recorder.has_tracking_id("orders", 5)?);
/// assert!(!recorder.has_tracking_id("orders", 8)?);
/// let again = recorder.insert_tracking(&Tracking::new("orders", 7)).unwrap_err();
/// assert!(matches!(again, es_core::Error::TrackingConflict { notification_id: 7, .. }));
/// # Ok::<(), es_core::Error>(())
/// ```
pub trait TrackingRecorder: Send + Sync + Any {
    /// Records that `tracking`'s notification has been processed, with no
    /// new events (a notification the follower's policy ignored).
    fn insert_tracking(&self, tracking: &Tracking) -> Result<()>;

    /// The highest notification id recorded for `application_name`, or
    /// `None` if none is.
    fn max_tracking_id(&self, application_name: &str) -> Result<Option<u64>>;

    /// Whether notification `notification_id` of `application_name` has been
    /// processed: whether the highest id recorded for it is at least that.
    fn has_tracking_id(&self, application_name: &str, notification_id: u64) -> Result<bool> {
        Ok(self
            .max_tracking_id(application_name)?
            .is_some_and(|max| max >= notification_id))
    }
}

/// An application recorder that is also a tracking recorder: what a follower
/// (a process application) stores in. Its new events and the tracking record
/// of the notification they came from are written in one transaction, so
/// processing is exactly once across crashes: either both are recorded, or
/// neither is and the notification is processed again.
///
/// ```
/// use es_core::persistence::{ApplicationRecorder, MemoryRecorder, ProcessRecorder, StoredEvent, Tracking, TrackingRecorder};
/// let recorder = MemoryRecorder::new();
/// let event = StoredEvent {
///     originator_id: uuid::Uuid::new_v4().into(), originator_version: 1, topic: "Reserved".into(), state: vec![],
/// };
/// recorder.insert_events_with_tracking(&[event.clone()], &Tracking::new("orders", 1))?;
/// // The same notification again: refused, and its events are not written twice.
/// assert!(recorder.insert_events_with_tracking(&[], &Tracking::new("orders", 1)).is_err());
/// assert_eq!(recorder.max_notification_id()?, Some(1));
/// # Ok::<(), es_core::Error>(())
/// ```
pub trait ProcessRecorder: ApplicationRecorder + TrackingRecorder {
    /// Records `events` and `tracking` atomically, returning the events'
    /// notification ids. A taken version is an
    /// [`Error::Conflict`](crate::Error::Conflict), a tracking id at or below
    /// the recorded one an
    /// [`Error::TrackingConflict`](crate::Error::TrackingConflict); either
    /// way nothing is written. With no events, records the tracking alone.
    fn insert_events_with_tracking(
        &self,
        events: &[StoredEvent],
        tracking: &Tracking,
    ) -> Result<Vec<u64>>;
}

/// Every event a visit visits, in order: `select_events` for a recorder whose
/// `visit_events` streams rows, so that the two can never disagree.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn collect_visited(
    visit_all: impl FnOnce(&mut dyn FnMut(StoredEvent) -> Result<()>) -> Result<()>,
) -> Result<Vec<StoredEvent>> {
    let mut events = Vec::new();
    visit_all(&mut |event| {
        events.push(event);
        Ok(())
    })?;
    Ok(events)
}
