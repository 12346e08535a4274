//! The notification log as JSON, as the Python library's
//! `NotificationLogJSONService` writes it, so that a reader of either can
//! read the other:
//!
//! ```text
//! section:      {"id": "1,10", "next_id": "11,20", "items": [notification, ...]}
//! notification: {"id": 1, "originator_id": "<uuid as 32 hex digits, or the text id>",
//!                "originator_version": 1, "topic": "Dog.Registered",
//!                "state": "<the stored bytes, base64>"}
//! event:        {"originator_id": ..., "originator_version": 1, "topic": ..., "state": ...}
//! ```
//!
//! An event (an item of `GET /{application}/aggregates/{id}`, one
//! originator's stored events, for tools) is a notification without its `id`.
//!
//! A text originator id that is 32 hexadecimal digits would read as a UUID;
//! such an item also carries `"originator_id_is_text": true`, which the
//! Python library's client ignores and this crate's client honours.

#[cfg(feature = "http-client")]
use std::borrow::Cow;

use base64::Engine as _;
#[cfg(feature = "http-server")]
use base64::display::Base64Display;
use base64::engine::general_purpose::STANDARD;
#[cfg(feature = "http-server")]
use serde::ser::SerializeStruct as _;
use serde::{Deserialize, Serialize};

use crate::domain::id::OriginatorId;
use crate::error::{Error, Result};
use crate::persistence::{Notification, StoredEvent};

/// One notification as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationJson {
    /// The notification id.
    pub id: u64,
    /// A UUID as 32 hexadecimal digits, or a text id as it is.
    pub originator_id: String,
    /// The event's version.
    pub originator_version: u64,
    /// The event's topic.
    pub topic: String,
    /// The stored bytes, base64 (standard alphabet, padded).
    pub state: String,
    /// Set on a text id that would otherwise read as a UUID.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub originator_id_is_text: bool,
}

/// A section of the log as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionJson {
    /// `"first,last"` of the items, or `null` for none.
    pub id: Option<String>,
    /// The next section's id if there are later notifications.
    pub next_id: Option<String>,
    /// The notifications.
    pub items: Vec<NotificationJson>,
}

/// A notification written as [`NotificationJson`] straight from the stored
/// event, without copying its fields (the server's path).
#[cfg(feature = "http-server")]
pub(crate) struct NotificationRef<'a>(pub(crate) &'a Notification);

#[cfg(feature = "http-server")]
impl Serialize for NotificationRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_event(serializer, Some(self.0.id), &self.0.event)
    }
}

/// A stored event written as an item of the aggregates route: a
/// notification's fields without its id.
#[cfg(feature = "http-server")]
pub(crate) struct EventRef<'a>(pub(crate) &'a StoredEvent);

#[cfg(feature = "http-server")]
impl Serialize for EventRef<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_event(serializer, None, self.0)
    }
}

/// `event` as a JSON object, led by the notification id `id` if it has one.
#[cfg(feature = "http-server")]
fn serialize_event<S: serde::Serializer>(
    serializer: S,
    id: Option<u64>,
    event: &StoredEvent,
) -> Result<S::Ok, S::Error> {
    let ambiguous_text = event
        .originator_id
        .as_str()
        .filter(|text| uuid::Uuid::try_parse(text).is_ok());
    let fields = 4 + usize::from(id.is_some()) + usize::from(ambiguous_text.is_some());
    let mut item = serializer.serialize_struct("NotificationJson", fields)?;
    if let Some(id) = id {
        item.serialize_field("id", &id)?;
    }
    match (event.originator_id.as_uuid(), event.originator_id.as_str()) {
        (Some(uuid), _) => item.serialize_field("originator_id", &Simple(uuid))?,
        (None, Some(text)) => item.serialize_field("originator_id", text)?,
        (None, None) => item.serialize_field("originator_id", &event.originator_id.to_string())?,
    }
    item.serialize_field("originator_version", &event.originator_version)?;
    item.serialize_field("topic", &event.topic)?;
    item.serialize_field("state", &Base64(&event.state))?;
    if ambiguous_text.is_some() {
        item.serialize_field("originator_id_is_text", &true)?;
    }
    item.end()
}

/// A UUID as 32 hex digits, written without an allocation.
#[cfg(feature = "http-server")]
struct Simple(uuid::Uuid);

#[cfg(feature = "http-server")]
impl Serialize for Simple {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0.simple())
    }
}

/// Bytes as base64, written without an intermediate string.
#[cfg(feature = "http-server")]
struct Base64<'a>(&'a [u8]);

#[cfg(feature = "http-server")]
impl Serialize for Base64<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&Base64Display::new(self.0, &STANDARD))
    }
}

/// A notification read from JSON with its strings borrowed from the body
/// where they can be (the client's path).
#[cfg(feature = "http-client")]
#[derive(Deserialize)]
pub(crate) struct NotificationDe<'a> {
    id: u64,
    #[serde(borrow)]
    originator_id: Cow<'a, str>,
    originator_version: u64,
    #[serde(borrow)]
    topic: Cow<'a, str>,
    #[serde(borrow)]
    state: Cow<'a, str>,
    #[serde(default)]
    originator_id_is_text: bool,
}

#[cfg(feature = "http-client")]
impl NotificationDe<'_> {
    pub(crate) fn to_notification(&self) -> Result<Notification> {
        decode(
            self.id,
            &self.originator_id,
            self.originator_id_is_text,
            self.originator_version,
            &self.topic,
            &self.state,
        )
    }
}

/// An item of the aggregates route, read as [`NotificationDe`] is.
#[cfg(feature = "http-client")]
#[derive(Deserialize)]
pub(crate) struct EventDe<'a> {
    #[serde(borrow)]
    originator_id: Cow<'a, str>,
    originator_version: u64,
    #[serde(borrow)]
    topic: Cow<'a, str>,
    #[serde(borrow)]
    state: Cow<'a, str>,
    #[serde(default)]
    originator_id_is_text: bool,
}

#[cfg(feature = "http-client")]
impl EventDe<'_> {
    pub(crate) fn to_stored_event(&self) -> Result<StoredEvent> {
        decode_event(
            || format!("version {} of an aggregate", self.originator_version),
            &self.originator_id,
            self.originator_id_is_text,
            self.originator_version,
            &self.topic,
            &self.state,
        )
    }
}

/// The notification an item of the JSON stands for, or [`Error::Corrupt`].
fn decode(
    id: u64,
    originator_id: &str,
    originator_id_is_text: bool,
    originator_version: u64,
    topic: &str,
    state: &str,
) -> Result<Notification> {
    let event = decode_event(
        || format!("notification {id}"),
        originator_id,
        originator_id_is_text,
        originator_version,
        topic,
        state,
    )?;
    Ok(Notification { id, event })
}

/// The stored event an item of the JSON stands for, or [`Error::Corrupt`]
/// naming it by `what`.
fn decode_event(
    what: impl Fn() -> String,
    originator_id: &str,
    originator_id_is_text: bool,
    originator_version: u64,
    topic: &str,
    state: &str,
) -> Result<StoredEvent> {
    let corrupt = |why: String| Error::Corrupt(format!("{} over HTTP: {why}", what()));
    let originator_id = match uuid::Uuid::try_parse(originator_id) {
        Ok(uuid) if !originator_id_is_text => OriginatorId::from(uuid),
        _ => {
            OriginatorId::text(originator_id).map_err(|e| corrupt(format!("originator id: {e}")))?
        }
    };
    let state = STANDARD
        .decode(state)
        .map_err(|e| corrupt(format!("state is not base64: {e}")))?;
    Ok(StoredEvent {
        originator_id,
        originator_version,
        topic: topic.to_owned(),
        state,
    })
}

impl From<&Notification> for NotificationJson {
    fn from(notification: &Notification) -> Self {
        let event = &notification.event;
        let (originator_id, originator_id_is_text) = match event.originator_id.as_uuid() {
            Some(uuid) => (uuid.simple().to_string(), false),
            None => {
                let text = event.originator_id.to_string();
                let ambiguous = uuid::Uuid::try_parse(&text).is_ok();
                (text, ambiguous)
            }
        };
        NotificationJson {
            id: notification.id,
            originator_id,
            originator_version: event.originator_version,
            topic: event.topic.clone(),
            state: STANDARD.encode(&event.state),
            originator_id_is_text,
        }
    }
}

impl NotificationJson {
    /// The notification it stands for; an item that does not decode (bad
    /// base64, an id that is neither a UUID nor a valid text id) is
    /// [`Error::Corrupt`] naming it.
    ///
    /// ```
    /// use es_core::interface::http::NotificationJson;
    /// let json = r#"{"id": 7, "originator_id": "0e1a8a4d7c6b4a5e9f3b2c1d0e9f8a7b",
    ///   "originator_version": 1, "topic": "Dog.Registered", "state": "e30="}"#;
    /// let item: NotificationJson = serde_json::from_str(json)?;
    /// let notification = item.to_notification()?;
    /// assert_eq!((notification.id, notification.event.state.as_slice()), (7, &b"{}"[..]));
    /// assert!(notification.event.originator_id.is_uuid());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_notification(&self) -> Result<Notification> {
        decode(
            self.id,
            &self.originator_id,
            self.originator_id_is_text,
            self.originator_version,
            &self.topic,
            &self.state,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification(originator_id: OriginatorId) -> Notification {
        Notification {
            id: 3,
            event: StoredEvent {
                originator_id,
                originator_version: 2,
                topic: "T".into(),
                state: vec![0, 255, 7],
            },
        }
    }

    #[test]
    fn uuids_and_text_ids_round_trip_even_text_that_looks_like_a_uuid() {
        let looks_like_a_uuid = uuid::Uuid::new_v4().simple().to_string();
        for id in [
            OriginatorId::from(uuid::Uuid::new_v4()),
            OriginatorId::text("order-1").expect("text"),
            OriginatorId::text(&looks_like_a_uuid).expect("text"),
        ] {
            let json = serde_json::to_string(&NotificationJson::from(&notification(id.clone())))
                .expect("json");
            let back: NotificationJson = serde_json::from_str(&json).expect("parse");
            assert_eq!(back.to_notification().expect("decode"), notification(id));
        }
    }

    #[test]
    fn a_uuid_is_written_as_the_python_library_writes_it() {
        let uuid = uuid::Uuid::new_v4();
        let json = NotificationJson::from(&notification(uuid.into()));
        assert_eq!(json.originator_id, uuid.simple().to_string());
        assert_eq!(json.state, "AP8H");
        let text = serde_json::to_string(&json).expect("json");
        assert!(!text.contains("originator_id_is_text"), "{text}");
    }

    #[cfg(all(feature = "http-server", feature = "http-client"))]
    #[test]
    fn the_servers_borrowed_writing_is_the_owned_one() {
        let looks_like_a_uuid = uuid::Uuid::new_v4().simple().to_string();
        for id in [
            OriginatorId::from(uuid::Uuid::new_v4()),
            OriginatorId::text("order-\"1\"").expect("text"),
            OriginatorId::text(&looks_like_a_uuid).expect("text"),
        ] {
            let notification = notification(id);
            let borrowed = serde_json::to_string(&NotificationRef(&notification)).expect("json");
            let owned =
                serde_json::to_string(&NotificationJson::from(&notification)).expect("json");
            assert_eq!(borrowed, owned);
            let read: NotificationDe<'_> = serde_json::from_str(&borrowed).expect("parse");
            assert_eq!(read.to_notification().expect("decode"), notification);
        }
    }

    #[cfg(all(feature = "http-server", feature = "http-client"))]
    #[test]
    fn an_event_is_written_as_its_notification_without_the_id_and_read_back() {
        let looks_like_a_uuid = uuid::Uuid::new_v4().simple().to_string();
        for id in [
            OriginatorId::from(uuid::Uuid::new_v4()),
            OriginatorId::text(&looks_like_a_uuid).expect("text"),
        ] {
            let notification = notification(id);
            let event: serde_json::Value =
                serde_json::to_value(EventRef(&notification.event)).expect("json");
            let mut expected =
                serde_json::to_value(NotificationJson::from(&notification)).expect("json");
            expected.as_object_mut().expect("an object").remove("id");
            assert_eq!(event, expected);
            let text = event.to_string();
            let read: EventDe<'_> = serde_json::from_str(&text).expect("parse");
            assert_eq!(read.to_stored_event().expect("decode"), notification.event);
        }
    }

    #[test]
    fn bad_items_are_corrupt_naming_the_notification() {
        let mut json = NotificationJson::from(&notification(uuid::Uuid::new_v4().into()));
        json.state = "not base64!".into();
        let error = json.to_notification().expect_err("bad base64");
        assert!(
            matches!(&error, Error::Corrupt(m) if m.contains("notification 3")),
            "{error}"
        );
    }
}
