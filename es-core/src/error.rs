//! The one error type of the crate.

use crate::domain::id::OriginatorId;

/// A boxed error from a lower layer (a database driver, a codec, a subscriber).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in this crate.
///
/// Every variant means the same on every backend: a [`Error::Conflict`] from SQLite
/// and one from the in-memory store are the same condition, and callers can match
/// on it to retry. The driver's own error, where there is one, is kept as the
/// [`source`](std::error::Error::source).
///
/// ```
/// use es_core::Error;
/// let error = Error::Conflict { originator_id: uuid::Uuid::nil().into(), originator_version: 3 };
/// assert!(error.is_conflict());
/// assert!(error.to_string().contains("version 3"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another writer already recorded this version of this aggregate. Nothing of the
    /// save that hit it was written; reload the aggregate and retry the command.
    #[error(
        "conflict: version {originator_version} of aggregate {originator_id} was already \
         recorded by another writer; nothing of this save was written (reload and retry)"
    )]
    Conflict {
        /// The aggregate whose version was taken.
        originator_id: OriginatorId,
        /// The version that was taken.
        originator_version: u64,
    },

    /// A follower recorded a notification it had already recorded, or one
    /// below it: the notification was processed before (by this follower
    /// before a restart, or by another process running it). Nothing of this
    /// processing was written; resume after the recorded position
    /// ([`max_tracking_id`](crate::persistence::TrackingRecorder::max_tracking_id)).
    #[error(
        "notification {notification_id} of {application_name:?} was already processed: \
         a tracking record at or above it is recorded; nothing of this processing was written"
    )]
    TrackingConflict {
        /// The upstream application.
        application_name: String,
        /// The notification id that was recorded again.
        notification_id: u64,
    },

    /// No events are stored for this aggregate (or none at or below the wanted version).
    #[error("aggregate {id} not found{}", version.map(|v| format!(" at version {v}")).unwrap_or_default())]
    AggregateNotFound {
        /// The id that was asked for.
        id: OriginatorId,
        /// The version that was asked for, if one was.
        version: Option<u64>,
    },

    /// A stored event's topic names no event type known to this program.
    #[error(
        "unknown topic {topic:?} in event {originator_id} version {originator_version}: \
         no event type of this program is registered under it"
    )]
    UnknownTopic {
        /// The topic as stored.
        topic: String,
        /// The aggregate the event belongs to.
        originator_id: OriginatorId,
        /// The event's version.
        originator_version: u64,
    },

    /// A stored event's state could not be decoded into its event type.
    #[error(
        "cannot decode event {originator_id} version {originator_version} (topic {topic:?}): {source}"
    )]
    Decode {
        /// The topic as stored.
        topic: String,
        /// The aggregate the event belongs to.
        originator_id: OriginatorId,
        /// The event's version.
        originator_version: u64,
        /// What the codec said.
        #[source]
        source: BoxError,
    },

    /// A domain event could not be encoded for storage.
    #[error(
        "cannot encode event {originator_id} version {originator_version} (topic {topic:?}): {source}"
    )]
    Encode {
        /// The event's topic.
        topic: String,
        /// The aggregate the event belongs to.
        originator_id: OriginatorId,
        /// The event's version.
        originator_version: u64,
        /// What the codec said.
        #[source]
        source: BoxError,
    },

    /// Stored events of one aggregate do not follow each other version by version.
    #[error(
        "event {originator_id} version {found} is out of sequence: expected version {expected}"
    )]
    OutOfSequence {
        /// The aggregate being replayed.
        originator_id: OriginatorId,
        /// The version that should have come next.
        expected: u64,
        /// The version that came.
        found: u64,
    },

    /// A stored event cannot be applied where it stands, such as a creation event
    /// in the middle of a history, or an event of another aggregate.
    #[error(
        "event {originator_id} version {originator_version} (topic {topic:?}) cannot be replayed: {reason}"
    )]
    UnexpectedEvent {
        /// The topic as stored.
        topic: String,
        /// The aggregate the event belongs to.
        originator_id: OriginatorId,
        /// The event's version.
        originator_version: u64,
        /// Why it cannot be applied.
        reason: String,
    },

    /// An aggregate id is not valid: a text id that is empty, contains NUL or is
    /// too long, or a text id given to a store that keeps only UUIDs.
    #[error("invalid originator id {id:?}: {reason}")]
    InvalidId {
        /// The id as given (its first 64 characters, if it is longer).
        id: String,
        /// Why it is not valid, and what to do.
        reason: String,
    },

    /// A configuration value is not one of the accepted ones.
    #[error("invalid configuration: {variable}={value:?}; expected {expected}")]
    Config {
        /// The variable as it was looked up (with its application prefix, if it had one).
        variable: String,
        /// The value found.
        value: String,
        /// What would have been accepted.
        expected: String,
    },

    /// A notification log section id is not of the form `"start,stop"`.
    #[error(
        "invalid notification log section id {section_id:?}: expected \"start,stop\" \
         with 1 <= start <= stop, such as \"1,10\""
    )]
    InvalidSectionId {
        /// The id as given.
        section_id: String,
    },

    /// Two event types of this program are registered under the same topic, so
    /// stored events of that topic could not be decoded unambiguously.
    #[error(
        "the topic {topic:?} is registered by more than one event type; give one of them \
         another name or an explicit `topic = \"...\"`"
    )]
    DuplicateTopic {
        /// The topic registered twice.
        topic: &'static str,
    },

    /// The save succeeded, but a subscriber failed while being told about it.
    /// The events are stored and stay stored.
    #[error("events {notification_ids:?} were saved, but subscriber #{index} failed: {source}")]
    Subscriber {
        /// The subscriber's position in registration order, from 0.
        index: usize,
        /// The notification ids of the events that were saved.
        notification_ids: Vec<u64>,
        /// What the subscriber returned.
        #[source]
        source: BoxError,
    },

    /// The save succeeded, but a snapshot that fell due could not be recorded.
    /// The events are stored; only the snapshot is missing.
    #[error(
        "events {notification_ids:?} were saved, but the snapshot that fell due failed: {source}"
    )]
    SnapshotAfterSave {
        /// The notification ids of the events that were saved.
        notification_ids: Vec<u64>,
        /// Why the snapshot failed.
        #[source]
        source: Box<Error>,
    },

    /// Snapshots were asked for, but the application keeps none; enable them with
    /// `IS_SNAPSHOTTING_ENABLED=yes` or the builder.
    #[error("snapshotting is not enabled for this application (set IS_SNAPSHOTTING_ENABLED=yes)")]
    SnapshottingDisabled,

    /// Work for the store was handed to the async runtime's blocking pool
    /// while the runtime was shutting down, and never ran: nothing was
    /// read or written.
    #[error(
        "the async runtime is shutting down, so the store's work was not started (nothing \
         was written); run it again on a runtime that is running"
    )]
    ShuttingDown,

    /// The database failed; the driver's error is the source.
    #[error("database error while {operation}: {source}")]
    Database {
        /// What the store was doing.
        operation: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },

    /// A stored value is out of the range this crate accepts, such as a negative version.
    #[error("corrupt stored data: {0}")]
    Corrupt(String),

    /// The operating system's secure random number generator failed, so no
    /// cipher key could be made.
    #[error("the operating system's random number generator failed: {source}")]
    Random {
        /// What the generator said.
        #[source]
        source: BoxError,
    },

    /// A save's COMMIT was sent but its reply was lost (the connection or the
    /// server went away), and the store could not be reached again to find out
    /// whether it happened: the save may or may not be recorded. Its events are
    /// all recorded or none is, so reading back the one named here settles it.
    #[error(
        "the outcome of a save is unknown: its commit was sent but the reply was lost, and \
         checking whether it was recorded failed ({source}); the save may be recorded: read \
         aggregate {originator_id} (is version {originator_version} there?) before retrying it"
    )]
    OutcomeUnknown {
        /// The aggregate of the save's first event.
        originator_id: OriginatorId,
        /// The version of the save's first event.
        originator_version: u64,
        /// Why checking failed.
        #[source]
        source: BoxError,
    },

    /// A save was refused, before anything was written, because the aggregate
    /// was never created: its first event is not a creation event. Such an
    /// aggregate was made by `Default` or a plain constructor rather than by a
    /// method marked `#[event]` that returns `Self`, and no `get` could ever
    /// rebuild it.
    #[error(
        "aggregate {originator_id} of type {aggregate} was never created: its first event \
         {topic:?} is not a creation event, so nothing was saved; create it with its \
         creation event, the `#[event]` method that returns `Self` (not `Default` or a \
         plain constructor)"
    )]
    NotCreated {
        /// The aggregate's type, by its name in topics.
        aggregate: &'static str,
        /// The aggregate's id.
        originator_id: OriginatorId,
        /// The topic of the event that would have been its first.
        topic: String,
    },
}

impl Error {
    /// Whether this is a [`Error::Conflict`], the error worth a reload and a retry.
    ///
    /// ```
    /// # use es_core::Error;
    /// assert!(!Error::InvalidSectionId { section_id: "x".into() }.is_conflict());
    /// ```
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }

    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn database(operation: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Database {
            operation,
            source: source.into(),
        }
    }
}
