//! How an application's records are laid out on subjects, and read back.
//!
//! Events stream `S`: `es.S.e.<aggregate>` (one subject per aggregate, so
//! the server checks each aggregate's last sequence) and `es.S.t.<upstream>`
//! (a follower's position in each log it follows, written in the same
//! atomic batch as the events it derived). Its snapshots stream:
//! `es.S.s.<aggregate>`. Committed events are republished, headers only,
//! on `es.S.n.<aggregate>` for listeners.
//!
//! A subject token cannot hold `.`, `*`, `>` or white space: a UUID is
//! written as it is, a text id or an upstream name as unpadded URL-safe
//! base64 behind a `t_`, which no UUID starts with.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use crate::domain::id::OriginatorId;
use crate::error::{Error, Result};

/// The event's topic.
pub(crate) const TOPIC: &str = "Es-Topic";
/// The aggregate's version the event brings it to.
pub(crate) const VERSION: &str = "Es-Version";
/// A tracking record's last notification id.
pub(crate) const TRACKING: &str = "Es-Tracking";
/// The server's duplicate detection key, unique per message of a save.
pub(crate) const MSG_ID: &str = "Nats-Msg-Id";
/// The check that the subject's last message is still the one the save read.
pub(crate) const EXPECTED_LAST_SUBJECT_SEQUENCE: &str = "Nats-Expected-Last-Subject-Sequence";

/// The subjects of one application's streams.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// `es.S`.
    base: String,
    /// The kind of record this recorder keeps: `e` events, `s` snapshots.
    kind: char,
}

impl Layout {
    pub(crate) fn events(stream: &str) -> Self {
        Layout {
            base: format!("es.{stream}"),
            kind: 'e',
        }
    }

    pub(crate) fn snapshots(stream: &str) -> Self {
        Layout {
            base: format!("es.{stream}"),
            kind: 's',
        }
    }

    /// What every subject of this recorder's aggregates starts with: `es.S.e.`.
    pub(crate) fn aggregates_prefix(&self) -> String {
        format!("{}.{}.", self.base, self.kind)
    }

    /// Whether this is an events recorder's layout (not a snapshots one).
    pub(crate) fn is_events(&self) -> bool {
        self.kind == 'e'
    }

    /// Every subject of this recorder's aggregates.
    pub(crate) fn all_aggregates(&self) -> String {
        format!("{}.{}.>", self.base, self.kind)
    }

    /// The subjects of the stream: the aggregates', and the events stream's tracking.
    pub(crate) fn stream_subjects(&self) -> Vec<String> {
        let mut subjects = vec![self.all_aggregates()];
        if self.kind == 'e' {
            subjects.push(format!("{}.t.>", self.base));
        }
        subjects
    }

    /// Where committed events are republished (headers only), for listeners.
    pub(crate) fn committed(&self) -> String {
        format!("{}.n.>", self.base)
    }

    pub(crate) fn aggregate(&self, id: &OriginatorId) -> String {
        let mut subject = format!("{}.{}.", self.base, self.kind);
        match id.as_uuid() {
            Some(uuid) => subject.push_str(&uuid.hyphenated().to_string()),
            None => {
                subject.push_str("t_");
                id.with_str(|text| URL_SAFE_NO_PAD.encode_string(text, &mut subject));
            }
        }
        subject
    }

    pub(crate) fn tracking(&self, upstream: &str) -> String {
        let mut subject = format!("{}.t.t_", self.base);
        URL_SAFE_NO_PAD.encode_string(upstream, &mut subject);
        subject
    }

    /// The aggregate of a subject [`aggregate`](Self::aggregate) made.
    pub(crate) fn aggregate_of(&self, subject: &str) -> Result<OriginatorId> {
        let prefix_len = self.base.len() + 3;
        let token = subject
            .get(prefix_len..)
            .filter(|_| subject.starts_with(&self.base))
            .ok_or_else(|| Error::Corrupt(format!("a stored event on subject {subject:?}")))?;
        match token.strip_prefix("t_") {
            Some(encoded) => {
                let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|error| {
                    Error::Corrupt(format!("the id in subject {subject:?}: {error}"))
                })?;
                let text = String::from_utf8(bytes).map_err(|error| {
                    Error::Corrupt(format!("the id in subject {subject:?}: {error}"))
                })?;
                OriginatorId::text(text)
            }
            None => Uuid::parse_str(token)
                .map(OriginatorId::from)
                .map_err(|error| Error::Corrupt(format!("the id in subject {subject:?}: {error}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_subjects() {
        let layout = Layout::events("S");
        let uuid = Uuid::new_v4();
        let ids = [
            OriginatorId::from(uuid),
            OriginatorId::text("order 1.2 > *").expect("id"),
            OriginatorId::text("Ünïcode/ids\t").expect("id"),
        ];
        for id in ids {
            let subject = layout.aggregate(&id);
            assert!(
                !subject.contains(' ') && subject.matches('.').count() == 3,
                "{subject}"
            );
            assert_eq!(layout.aggregate_of(&subject).expect("id back"), id);
        }
        assert_eq!(layout.aggregate(&uuid.into()), format!("es.S.e.{uuid}"));
    }

    #[test]
    fn upstream_names_are_kept_apart_exactly() {
        let layout = Layout::events("S");
        assert_ne!(layout.tracking("a"), layout.tracking("A"));
        assert_ne!(layout.tracking(""), layout.tracking(" "));
        assert!(layout.tracking("a.b c").starts_with("es.S.t.t_"));
    }

    #[test]
    fn foreign_subjects_are_corrupt_not_a_panic() {
        let layout = Layout::events("S");
        for subject in ["", "es.S.e.", "es.S.e.t_!!", "es.S.e.not-a-uuid", "x"] {
            assert!(layout.aggregate_of(subject).is_err(), "{subject}");
        }
    }
}
