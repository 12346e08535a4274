//! What can go wrong in a system of applications, said with who and where.

use crate::error::{BoxError, Error};

/// Why a follower stopped, or why a system could not be built.
///
/// A processing failure names the follower, the leader, the notification id
/// and the topic, so that an operator can find the event; nothing of that
/// notification was recorded, and the follower resumes at it when run again.
///
/// ```
/// use es_core::system::{System, SystemError};
/// let error = System::builder().pipe(["orders", "payments"]).build().unwrap_err();
/// assert!(matches!(error, SystemError::Invalid(_)));
/// assert!(error.to_string().contains("\"orders\", which is not an application"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SystemError {
    /// The follower's policy returned an error for this event.
    #[error(
        "{follower}: the policy failed on notification {notification_id} of {leader} \
         (topic {topic:?}): {source}; nothing of it was recorded"
    )]
    Policy {
        /// The follower whose policy failed.
        follower: String,
        /// The leader whose event it was.
        leader: String,
        /// The event's notification id in the leader's log.
        notification_id: u64,
        /// The event's topic.
        topic: String,
        /// What the policy returned.
        #[source]
        source: BoxError,
    },

    /// A leader's event could not be read: its topic is unknown to this
    /// program, or its state does not decode.
    #[error(
        "{follower}: cannot read notification {notification_id} of {leader} \
         (topic {topic:?}): {source}"
    )]
    Decode {
        /// The follower that read it.
        follower: String,
        /// The leader whose event it is.
        leader: String,
        /// The event's notification id in the leader's log.
        notification_id: u64,
        /// The event's topic.
        topic: String,
        /// What decoding said.
        #[source]
        source: Box<Error>,
    },

    /// The store failed while a follower read its leader's log or recorded
    /// what it derived (a conflict included).
    #[error("{follower}, following {leader}: {source}")]
    Store {
        /// The follower.
        follower: String,
        /// The leader it was following.
        leader: String,
        /// The store's error.
        #[source]
        source: Box<Error>,
    },

    /// The system's declaration is not valid: an unknown or repeated name,
    /// a follower that is not a process application, an unnamed application.
    #[error("invalid system: {0}")]
    Invalid(String),

    /// A runner was used in a way it does not allow (started twice, asked
    /// for an application it does not run, a wait that timed out).
    #[error("{0}")]
    Runner(String),
}
