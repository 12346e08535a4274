//! Aggregate ids: [`OriginatorId`] (a UUID or a text id) and [`create_id`].

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::{Error, Result};

/// The namespace of ids made by [`create_id`]; fixed forever, since changing it
/// would change every id ever derived from a name.
const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a4e_5b7d_4e0a_9c3b_8d2f_1e6a_7b90);

/// A deterministic id derived from a name (UUID version 5), so that an aggregate
/// can be found again from a natural key such as a user name or a page slug.
/// Use it in a creation event with `#[event("Name", id = create_id(..))]`.
///
/// ```
/// use es_core::create_id;
/// assert_eq!(create_id("fido"), create_id("fido"));
/// assert_ne!(create_id("fido"), create_id("rex"));
/// assert_eq!(create_id("fido").get_version_num(), 5);
/// ```
pub fn create_id(name: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// The id of an aggregate (its events' "originator"): a UUID, as by default, or
/// a text id such as `"user-ada"` or an id from another system.
///
/// Cheap to clone: a UUID is copied, a text id shares its string.
///
/// One id has one form. Text that is a UUID in its canonical form (hyphenated,
/// lower case, as [`Display`](fmt::Display) writes UUIDs) *is* that UUID: it
/// is kept as the UUID, so `"67e55044-10b1-426f-9247-bb680e5fe0c8"` and the UUID
/// it spells are one id, equal, with one hash, stored alike everywhere. Any
/// other text (upper-case UUIDs included) is a text id, stored and compared as
/// written. So `id.to_string().parse()` gives `id` back, for every id.
///
/// A text id must be non-empty, contain no NUL character (PostgreSQL text
/// cannot hold one) and be at most [`MAX_TEXT_LEN`](Self::MAX_TEXT_LEN) bytes
/// of UTF-8; anything else is an [`Error::InvalidId`].
///
/// ```
/// use es_core::{OriginatorId, Uuid};
///
/// let user = OriginatorId::text("user-ada")?;
/// assert_eq!(user.as_str(), Some("user-ada"));
/// assert_eq!(user.as_uuid(), None);
/// assert_eq!(user.to_string(), "user-ada");
///
/// let uuid = Uuid::new_v4();
/// let id = OriginatorId::from(uuid);
/// assert_eq!(id.as_uuid(), Some(uuid));
/// assert_eq!(id, uuid);
/// // The canonical text of a UUID is the UUID.
/// assert_eq!(OriginatorId::text(uuid.to_string())?, id);
/// assert_eq!(id.to_string().parse::<OriginatorId>()?, id);
///
/// assert!(OriginatorId::text("").is_err());
/// assert!(OriginatorId::text("nul\0inside").is_err());
/// assert!(OriginatorId::text("x".repeat(256)).is_err());
/// # Ok::<(), es_core::Error>(())
/// ```
///
/// Ids are ordered (UUIDs first, then text ids by their bytes) so that they
/// can key ordered maps; the order means nothing more.
///
/// There is no `From<&str>` or `From<String>`: a string may be an invalid id,
/// and an infallible conversion would have to panic or store it anyway. Build
/// a text id with [`OriginatorId::text`] (or `str::parse`, or `TryFrom`) and
/// handle the error where the string comes in; from then on the id is known to
/// be valid, and every API that takes `impl Into<OriginatorId>` takes it, as
/// it takes a [`Uuid`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OriginatorId(Repr);

/// The two forms, normalised at construction (see [`OriginatorId`]), so that
/// derived equality, hashing and order are those of the canonical form.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Repr {
    Uuid(Uuid),
    Text(Arc<str>),
}

impl OriginatorId {
    /// The longest text id, in bytes: long enough for any natural key, short
    /// enough for an index on every backend.
    pub const MAX_TEXT_LEN: usize = 255;

    /// A text id, or the UUID it spells if it is a UUID's canonical text; an
    /// [`Error::InvalidId`] if it is empty, contains NUL or is longer than
    /// [`MAX_TEXT_LEN`](Self::MAX_TEXT_LEN) bytes.
    ///
    /// ```
    /// use es_core::{Error, OriginatorId};
    /// let id = OriginatorId::text(format!("user-{}", "ada"))?;
    /// assert_eq!(id, "user-ada");
    /// let error = OriginatorId::text("").unwrap_err();
    /// assert!(matches!(error, Error::InvalidId { .. }), "{error}");
    /// # Ok::<(), Error>(())
    /// ```
    pub fn text(id: impl AsRef<str>) -> Result<Self> {
        let text = id.as_ref();
        if let Some(reason) = invalid_text(text) {
            return Err(Error::InvalidId {
                id: shorten(text),
                reason: reason.to_owned(),
            });
        }
        Ok(match canonical_uuid(text) {
            Some(uuid) => OriginatorId(Repr::Uuid(uuid)),
            None => OriginatorId(Repr::Text(Arc::from(text))),
        })
    }

    /// The UUID, if this id is one.
    pub fn as_uuid(&self) -> Option<Uuid> {
        match &self.0 {
            Repr::Uuid(uuid) => Some(*uuid),
            Repr::Text(_) => None,
        }
    }

    /// The text, if this id is a text id (not a UUID).
    pub fn as_str(&self) -> Option<&str> {
        match &self.0 {
            Repr::Uuid(_) => None,
            Repr::Text(text) => Some(text),
        }
    }

    /// Whether this id is a UUID.
    pub fn is_uuid(&self) -> bool {
        matches!(self.0, Repr::Uuid(_))
    }

    /// Calls `with` with the id's canonical text, without allocating for a
    /// text id, and on the stack for a UUID: what stores bind as a parameter.
    pub(crate) fn with_str<T>(&self, with: impl FnOnce(&str) -> T) -> T {
        match &self.0 {
            Repr::Uuid(uuid) => with(uuid.hyphenated().encode_lower(&mut Uuid::encode_buffer())),
            Repr::Text(text) => with(text),
        }
    }
}

// The message below spells the limit out.
const _: () = assert!(OriginatorId::MAX_TEXT_LEN == 255);

/// Why `text` cannot be a text id, if it cannot.
fn invalid_text(text: &str) -> Option<&'static str> {
    if text.is_empty() {
        Some("an id must not be empty")
    } else if text.contains('\0') {
        Some("an id must not contain the NUL character")
    } else if text.len() > OriginatorId::MAX_TEXT_LEN {
        Some("an id must be at most 255 bytes long")
    } else {
        None
    }
}

/// The UUID `text` spells in the canonical form (36 characters, hyphenated,
/// lower case), if it does. Other spellings `Uuid::parse_str` accepts (upper
/// case, braces, no hyphens) stay text, so that an id reads back as written.
fn canonical_uuid(text: &str) -> Option<Uuid> {
    if text.len() != 36 {
        return None;
    }
    let uuid = Uuid::try_parse(text).ok()?;
    (uuid.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == text).then_some(uuid)
}

/// An invalid id for an error message: whole if short, else its first 64
/// characters, so that a huge input does not make a huge message.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

impl From<Uuid> for OriginatorId {
    fn from(uuid: Uuid) -> Self {
        OriginatorId(Repr::Uuid(uuid))
    }
}

impl From<&OriginatorId> for OriginatorId {
    fn from(id: &OriginatorId) -> Self {
        id.clone()
    }
}

impl From<&Uuid> for OriginatorId {
    fn from(uuid: &Uuid) -> Self {
        OriginatorId(Repr::Uuid(*uuid))
    }
}

impl TryFrom<&str> for OriginatorId {
    type Error = Error;
    fn try_from(text: &str) -> Result<Self> {
        OriginatorId::text(text)
    }
}

impl TryFrom<String> for OriginatorId {
    type Error = Error;
    fn try_from(text: String) -> Result<Self> {
        OriginatorId::text(text)
    }
}

impl FromStr for OriginatorId {
    type Err = Error;
    fn from_str(text: &str) -> Result<Self> {
        OriginatorId::text(text)
    }
}

impl fmt::Display for OriginatorId {
    /// A UUID hyphenated in lower case; a text id as it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Uuid(uuid) => fmt::Display::fmt(&uuid.hyphenated(), f),
            Repr::Text(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for OriginatorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Uuid(uuid) => write!(f, "OriginatorId({uuid})"),
            Repr::Text(text) => write!(f, "OriginatorId({text:?})"),
        }
    }
}

impl PartialEq<Uuid> for OriginatorId {
    fn eq(&self, other: &Uuid) -> bool {
        self.as_uuid() == Some(*other)
    }
}

impl PartialEq<OriginatorId> for Uuid {
    fn eq(&self, other: &OriginatorId) -> bool {
        other == self
    }
}

/// Compares with the id's canonical text: a UUID id equals its lower-case
/// hyphenated text.
impl PartialEq<str> for OriginatorId {
    fn eq(&self, other: &str) -> bool {
        self.with_str(|text| text == other)
    }
}

impl PartialEq<&str> for OriginatorId {
    fn eq(&self, other: &&str) -> bool {
        self == *other
    }
}

/// In human-readable formats (JSON) an id is its canonical text. In binary
/// formats (MessagePack) a UUID id is written exactly as a [`Uuid`] is (16
/// bytes) and a text id as a string. So an event field can change from `Uuid`
/// to `OriginatorId` and still read what was stored before, in every format.
impl Serialize for OriginatorId {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match &self.0 {
            Repr::Uuid(uuid) if !serializer.is_human_readable() => uuid.serialize(serializer),
            _ => self.with_str(|text| serializer.serialize_str(text)),
        }
    }
}

/// Reads what [`Serialize`] writes (text with the checks of
/// [`OriginatorId::text`], or a UUID's 16 bytes).
impl<'de> Deserialize<'de> for OriginatorId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct IdVisitor;
        impl<'de> serde::de::Visitor<'de> for IdVisitor {
            type Value = OriginatorId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an originator id: a UUID, or a text id")
            }
            fn visit_str<E: serde::de::Error>(
                self,
                text: &str,
            ) -> std::result::Result<Self::Value, E> {
                OriginatorId::text(text).map_err(E::custom)
            }
            fn visit_bytes<E: serde::de::Error>(
                self,
                bytes: &[u8],
            ) -> std::result::Result<Self::Value, E> {
                Uuid::from_slice(bytes)
                    .map(OriginatorId::from)
                    .map_err(|_| E::invalid_length(bytes.len(), &"16 bytes of a UUID"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                // How some binary formats hand over a UUID's bytes.
                Uuid::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(OriginatorId::from)
            }
        }
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(IdVisitor)
        } else {
            // Text or bytes: the format says which was stored.
            deserializer.deserialize_any(IdVisitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_uuid_text_is_the_uuid_and_other_spellings_are_text() {
        let uuid = Uuid::new_v4();
        let lower = uuid.hyphenated().to_string();
        assert_eq!(
            OriginatorId::text(lower.as_str()).expect("valid"),
            OriginatorId::from(uuid)
        );
        let upper = lower.to_uppercase();
        let id = OriginatorId::text(upper.as_str()).expect("valid");
        assert_eq!(id.as_str(), Some(upper.as_str()));
        assert_ne!(id, OriginatorId::from(uuid));
        for text in [
            upper.as_str(),
            "user-ada",
            "ü",
            "{x}",
            &uuid.simple().to_string(),
        ] {
            let id = OriginatorId::text(text).expect("valid");
            assert_eq!(id.to_string().parse::<OriginatorId>().expect("valid"), id);
            assert_eq!(id.to_string(), text);
        }
    }

    #[test]
    fn invalid_text_ids_are_errors_naming_them() {
        assert!(OriginatorId::text("x".repeat(255)).is_ok());
        for bad in [
            String::new(),
            "a\0b".into(),
            "é".repeat(128),
            "y".repeat(10_000),
        ] {
            let error = OriginatorId::text(bad.as_str()).expect_err("invalid");
            let message = error.to_string();
            assert!(matches!(error, Error::InvalidId { .. }), "{message}");
            assert!(message.len() < 300, "{message}");
        }
        let message = OriginatorId::text("a\0b").expect_err("NUL").to_string();
        assert!(
            message.contains("NUL") && message.contains("a\\0b"),
            "{message}"
        );
    }

    #[test]
    fn serde_writes_and_checks_the_canonical_text() {
        let uuid = Uuid::new_v4();
        let json = serde_json::to_string(&OriginatorId::from(uuid)).expect("serialize");
        assert_eq!(json, serde_json::to_string(&uuid).expect("serialize"));
        let back: OriginatorId = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, uuid);
        let text: OriginatorId = serde_json::from_str("\"user-ada\"").expect("deserialize");
        assert_eq!(text, "user-ada");
        assert!(serde_json::from_str::<OriginatorId>("\"\"").is_err());
    }

    #[test]
    fn messagepack_writes_uuid_ids_as_uuids_are_written() {
        let uuid = Uuid::new_v4();
        let id = OriginatorId::from(uuid);
        let as_uuid = rmp_serde::to_vec(&uuid).expect("serialize");
        assert_eq!(rmp_serde::to_vec(&id).expect("serialize"), as_uuid);
        assert_eq!(
            rmp_serde::from_slice::<OriginatorId>(&as_uuid).expect("deserialize"),
            id
        );
        let named = rmp_serde::to_vec_named(&[uuid]).expect("serialize");
        assert_eq!(
            rmp_serde::from_slice::<Vec<OriginatorId>>(&named).expect("deserialize"),
            [id]
        );
        let text = OriginatorId::text("user-ada").expect("valid");
        let bytes = rmp_serde::to_vec(&text).expect("serialize");
        assert_eq!(
            rmp_serde::from_slice::<OriginatorId>(&bytes).expect("deserialize"),
            text
        );
        let empty = rmp_serde::to_vec("").expect("serialize");
        assert!(rmp_serde::from_slice::<OriginatorId>(&empty).is_err());
    }
}
