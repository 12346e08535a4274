//! Events as a store keeps them: ids, version, topic and encoded state.

use crate::domain::id::OriginatorId;

/// A domain event as stored: the mapper's output, a recorder's input.
///
/// ```
/// use es_core::persistence::StoredEvent;
/// let event = StoredEvent {
///     originator_id: uuid::Uuid::new_v4().into(),
///     originator_version: 1,
///     topic: "Dog.Registered".into(),
///     state: br#"{"timestamp":"2026-01-01T00:00:00Z","data":{"name":"Fido"}}"#.to_vec(),
/// };
/// assert_eq!(event.originator_version, 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// The aggregate the event belongs to.
    pub originator_id: OriginatorId,
    /// The aggregate's version once the event is applied.
    pub originator_version: u64,
    /// The stable name of the event's type.
    pub topic: String,
    /// The event's fields and timestamp, as the mapper encoded them.
    pub state: Vec<u8>,
}

/// A stored event with its position in the application-wide notification log.
///
/// ```
/// use es_core::prelude::*;
/// let app = Application::builder().in_memory().build()?;
/// # #[aggregate] pub struct Cup { full: bool }
/// # #[aggregate] impl Cup { #[event("Made")] pub fn make() -> Self { Cup { full: false } } }
/// app.save(&mut Cup::make())?;
/// let notification: Notification = app.notification_log().select(1, 10)?.remove(0);
/// assert_eq!(notification.id, 1);
/// assert_eq!(notification.event.topic, "Cup.Made");
/// # Ok::<(), es_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The position in the log: strictly increasing in commit order, starting at 1.
    pub id: u64,
    /// The stored event.
    pub event: StoredEvent,
}
