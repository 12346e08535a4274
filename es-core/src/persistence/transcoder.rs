//! Transcoders: from serde's data model to bytes and back.

use serde::Serialize;
use serde::de::DeserializeSeed;

use crate::error::BoxError;

/// How events and snapshots are turned into bytes.
///
/// A closed set, chosen by configuration (`TRANSCODER=json` or `msgpack`), so
/// that encoding and decoding are monomorphic calls with no dynamic dispatch on
/// the hot path.
///
/// ```
/// use es_core::persistence::Transcoder;
/// let bytes = Transcoder::Json.encode(&vec![1, 2, 3]).unwrap();
/// assert_eq!(bytes, b"[1,2,3]");
/// ```
///
/// The binary codec, MessagePack, keeps the field names, so any serde type
/// round-trips, untagged enums and `serde_json::Value` fields included:
///
/// ```
/// use es_core::persistence::Transcoder;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, PartialEq, Debug)]
/// struct Price { amount: u64, currency: String, note: serde_json::Value }
///
/// let price = Price { amount: 1250, currency: "EUR".into(), note: serde_json::json!({"vat": true}) };
/// let bytes = Transcoder::MessagePack.encode(&price)?;
/// assert!(bytes.len() < Transcoder::Json.encode(&price)?.len());
/// let read: Price = Transcoder::MessagePack.decode_seed(std::marker::PhantomData, &bytes)?;
/// assert_eq!(read, price);
/// # Ok::<(), es_core::BoxError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transcoder {
    /// JSON through `serde_json`: readable in the database, the default.
    #[default]
    Json,
    /// MessagePack through `rmp-serde` (`TRANSCODER=msgpack`): smaller and
    /// faster than JSON, and as self-describing.
    ///
    /// MessagePack rather than CBOR because `rmp-serde` reads straight from a
    /// byte slice and lets us choose two things that keep its data model the
    /// same as JSON's: structs as maps with their field names (so added,
    /// reordered or skipped fields, `flatten` and upcasting work as with JSON),
    /// and the human-readable forms of types that have two (a `Uuid` as its
    /// string, not 16 raw bytes), so that upcast steps, which see stored fields
    /// as a `serde_json::Value`, and untagged enums, which buffer their input,
    /// meet the same values whichever codec wrote them.
    MessagePack,
}

impl Transcoder {
    /// Encodes any serde value.
    ///
    /// ```
    /// use es_core::persistence::Transcoder;
    /// assert_eq!(Transcoder::MessagePack.encode(&(1u8, "a"))?, [0x92, 0x01, 0xa1, b'a']);
    /// # Ok::<(), es_core::BoxError>(())
    /// ```
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, BoxError> {
        match self {
            Transcoder::Json => Ok(serde_json::to_vec(value)?),
            Transcoder::MessagePack => {
                let mut bytes = Vec::with_capacity(128);
                value.serialize(&mut msgpack_serializer(&mut bytes))?;
                Ok(bytes)
            }
        }
    }

    /// Decodes with a seed that carries what the bytes alone do not say (the topic).
    /// Trailing bytes are an error: a row is one value, not a prefix of one.
    ///
    /// ```
    /// use es_core::persistence::Transcoder;
    /// use std::marker::PhantomData;
    /// let read: Vec<u8> = Transcoder::Json.decode_seed(PhantomData, b"[1,2]")?;
    /// assert_eq!(read, [1, 2]);
    /// assert!(Transcoder::Json.decode_seed::<_, Vec<u8>>(PhantomData, b"[1,2] 3").is_err());
    /// # Ok::<(), es_core::BoxError>(())
    /// ```
    pub fn decode_seed<T, V>(&self, seed: T, bytes: &[u8]) -> Result<V, BoxError>
    where
        T: for<'de> DeserializeSeed<'de, Value = V>,
    {
        match self {
            Transcoder::Json => {
                let mut deserializer = serde_json::Deserializer::from_slice(bytes);
                let value = seed.deserialize(&mut deserializer)?;
                deserializer.end()?;
                Ok(value)
            }
            Transcoder::MessagePack => {
                let mut deserializer = msgpack_deserializer(bytes)?;
                let value = seed.deserialize(&mut deserializer)?;
                msgpack_end(deserializer)?;
                Ok(value)
            }
        }
    }

    /// Decodes through a type-erased deserializer, for values whose type is
    /// chosen at run time from the topic registry.
    pub(crate) fn decode_erased<R>(
        &self,
        bytes: &[u8],
        decode: impl FnOnce(&mut dyn erased_serde::Deserializer<'_>) -> Result<R, erased_serde::Error>,
    ) -> Result<R, BoxError> {
        match self {
            Transcoder::Json => {
                let mut deserializer = serde_json::Deserializer::from_slice(bytes);
                let value = decode(&mut <dyn erased_serde::Deserializer>::erase(
                    &mut deserializer,
                ))?;
                deserializer.end()?;
                Ok(value)
            }
            Transcoder::MessagePack => {
                let mut deserializer = msgpack_deserializer(bytes)?;
                let value = decode(&mut <dyn erased_serde::Deserializer>::erase(
                    &mut deserializer,
                ))?;
                msgpack_end(deserializer)?;
                Ok(value)
            }
        }
    }
}

/// The MessagePack writer: structs as maps, human-readable forms (see [`Transcoder::MessagePack`]).
fn msgpack_serializer(
    bytes: &mut Vec<u8>,
) -> rmp_serde::Serializer<
    &mut Vec<u8>,
    rmp_serde::config::HumanReadableConfig<
        rmp_serde::config::StructMapConfig<rmp_serde::config::DefaultConfig>,
    >,
> {
    rmp_serde::Serializer::new(bytes)
        .with_struct_map()
        .with_human_readable()
}

type MsgpackDeserializer<'a> = rmp_serde::Deserializer<
    rmp_serde::decode::ReadReader<&'a [u8]>,
    rmp_serde::config::HumanReadableConfig<rmp_serde::config::DefaultConfig>,
>;

/// The MessagePack reader. It reads from a plain slice rather than rmp-serde's
/// borrowing reader because only the plain reader gives back what is left, to
/// reject trailing bytes; stored values are owned, so nothing is lost.
fn msgpack_deserializer(bytes: &[u8]) -> Result<MsgpackDeserializer<'_>, BoxError> {
    check_msgpack_depth(bytes)?;
    Ok(rmp_serde::Deserializer::new(bytes).with_human_readable())
}

/// The deepest nesting of arrays and maps read, as serde_json's own limit:
/// decoding recurses once per level, and rmp-serde's limit (1024, not settable
/// on the reader used here) lets a small hostile row overflow a thread's stack.
const MAX_MSGPACK_DEPTH: usize = 128;

/// Walks the first MessagePack value's markers, without decoding anything, and
/// refuses one nested deeper than [`MAX_MSGPACK_DEPTH`]. Anything malformed is
/// left for the decoder to report.
fn check_msgpack_depth(bytes: &[u8]) -> Result<(), BoxError> {
    // Items still to read in each open array or map.
    let mut open: Vec<u64> = Vec::new();
    let mut at = 0usize;
    let length = |at: usize, width: usize| -> Option<u64> {
        let field = bytes.get(at..at.checked_add(width)?)?;
        Some(field.iter().fold(0u64, |n, &b| (n << 8) | u64::from(b)))
    };
    // The bytes after a marker whose `width`-byte length field says how many
    // follow it (and `extra` more); past the end if the field is cut short.
    let sized = |at: usize, width: usize, extra: u64| -> u64 {
        length(at, width).map_or(u64::MAX, |n| {
            n.saturating_add(width as u64).saturating_add(extra)
        })
    };
    loop {
        let Some(&marker) = bytes.get(at) else {
            return Ok(());
        };
        at += 1;
        // (bytes to skip, items inside) for this marker.
        let (skip, items): (u64, u64) = match marker {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => (0, 0),
            0x80..=0x8f => (0, 2 * u64::from(marker & 0x0f)),
            0x90..=0x9f => (0, u64::from(marker & 0x0f)),
            0xa0..=0xbf => (u64::from(marker & 0x1f), 0),
            0xc4 | 0xd9 => (sized(at, 1, 0), 0),
            0xc5 | 0xda => (sized(at, 2, 0), 0),
            0xc6 | 0xdb => (sized(at, 4, 0), 0),
            // An extension's type byte follows its length.
            0xc7 => (sized(at, 1, 1), 0),
            0xc8 => (sized(at, 2, 1), 0),
            0xc9 => (sized(at, 4, 1), 0),
            0xca => (4, 0),
            0xcb => (8, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 => (4, 0),
            0xcf | 0xd3 => (8, 0),
            0xd4 => (2, 0),
            0xd5 => (3, 0),
            0xd6 => (5, 0),
            0xd7 => (9, 0),
            0xd8 => (17, 0),
            0xdc => (2, length(at, 2).unwrap_or(0)),
            0xdd => (4, length(at, 4).unwrap_or(0)),
            0xde => (2, 2 * length(at, 2).unwrap_or(0)),
            0xdf => (4, 2 * length(at, 4).unwrap_or(0)),
            // 0xc1 is never used: the decoder says so.
            0xc1 => return Ok(()),
        };
        at = match usize::try_from(skip)
            .ok()
            .and_then(|skip| at.checked_add(skip))
        {
            Some(next) if next <= bytes.len() => next,
            _ => return Ok(()),
        };
        if items > 0 {
            open.push(items);
            if open.len() > MAX_MSGPACK_DEPTH {
                return Err(format!(
                    "MessagePack nested more than {MAX_MSGPACK_DEPTH} levels deep"
                )
                .into());
            }
            continue;
        }
        // A whole item was read: it may complete its container, and so on up.
        loop {
            match open.last_mut() {
                None => return Ok(()),
                Some(left) => {
                    *left -= 1;
                    if *left > 0 {
                        break;
                    }
                    open.pop();
                }
            }
        }
    }
}

fn msgpack_end(deserializer: MsgpackDeserializer<'_>) -> Result<(), BoxError> {
    let rest = deserializer.into_inner();
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!("{} trailing bytes after the MessagePack value", rest.len()).into())
    }
}

#[cfg(test)]
mod tests {
    use std::marker::PhantomData;

    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(untagged)]
    enum Loose {
        Number(u64),
        Named { id: uuid::Uuid },
    }

    fn round_trip<T>(transcoder: Transcoder, value: &T) -> T
    where
        T: Serialize + serde::de::DeserializeOwned,
    {
        let bytes = transcoder.encode(value).expect("encode");
        transcoder.decode_seed(PhantomData, &bytes).expect("decode")
    }

    #[test]
    fn msgpack_keeps_field_names_and_readable_forms() {
        let id = uuid::Uuid::from_u128(7);
        let bytes = Transcoder::MessagePack
            .encode(&Loose::Named { id })
            .expect("encode");
        // A map of one named field whose value is the UUID's 36-character string.
        assert_eq!(bytes[0], 0x81);
        assert!(bytes.windows(2).any(|w| w == b"id"));
        assert!(bytes.windows(36).any(|w| w == id.to_string().as_bytes()));
    }

    #[test]
    fn untagged_enums_and_json_values_round_trip_through_both_codecs() {
        for transcoder in [Transcoder::Json, Transcoder::MessagePack] {
            for value in [
                Loose::Number(3),
                Loose::Named {
                    id: uuid::Uuid::from_u128(u128::MAX),
                },
            ] {
                let bytes = transcoder.encode(&value).expect("encode");
                let read: Loose = transcoder.decode_seed(PhantomData, &bytes).expect("decode");
                assert_eq!(read, value);
            }
            let json = serde_json::json!({"a": [1, -2, 2.5, null, true, "x", {"b": {}}]});
            assert_eq!(round_trip(transcoder, &json), json);
            assert_eq!(round_trip(transcoder, &i128::MIN), i128::MIN);
            assert_eq!(round_trip(transcoder, &u128::MAX), u128::MAX);
        }
    }

    #[test]
    fn trailing_bytes_and_garbage_are_errors_not_panics() {
        let mut bytes = Transcoder::MessagePack.encode(&[1u8, 2]).expect("encode");
        bytes.push(0);
        let read: Result<Vec<u8>, _> = Transcoder::MessagePack.decode_seed(PhantomData, &bytes);
        assert!(
            read.expect_err("trailing")
                .to_string()
                .contains("1 trailing")
        );
        for garbage in [
            &[][..],
            &[0xc1],
            &[0x92, 0x01],
            &[0xdd, 0xff, 0xff, 0xff, 0xff],
        ] {
            let read: Result<Vec<u8>, _> =
                Transcoder::MessagePack.decode_seed(PhantomData, garbage);
            assert!(read.is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn erased_decoding_reads_msgpack_and_rejects_trailing_bytes() {
        let bytes = Transcoder::MessagePack
            .encode(&(5u32, "five"))
            .expect("encode");
        let read = Transcoder::MessagePack
            .decode_erased(&bytes, |deserializer| {
                erased_serde::deserialize::<(u32, String)>(deserializer)
            })
            .expect("decode");
        assert_eq!(read, (5, "five".to_owned()));
        let mut longer = bytes.clone();
        longer.push(0xc0);
        assert!(
            Transcoder::MessagePack
                .decode_erased(&longer, |deserializer| {
                    erased_serde::deserialize::<(u32, String)>(deserializer)
                })
                .is_err()
        );
    }

    #[test]
    fn nesting_past_the_limit_is_an_error_not_a_stack_overflow() {
        use serde_json::Value;
        let nested = |depth: usize, open: u8| {
            let mut bytes = vec![open; depth];
            bytes.push(0x01);
            bytes
        };
        // On a thread with the default stack size of spawned threads.
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                for open in [0x91u8, 0x81] {
                    // A map of one entry needs a key before its value: wrap in keys.
                    let bytes = if open == 0x81 {
                        let mut bytes = Vec::new();
                        for _ in 0..100_000 {
                            bytes.extend([0x81, 0x01]);
                        }
                        bytes.push(0x01);
                        bytes
                    } else {
                        nested(100_000, open)
                    };
                    let error = Transcoder::MessagePack
                        .decode_seed(std::marker::PhantomData::<Value>, &bytes)
                        .expect_err("too deep");
                    assert!(error.to_string().contains("128 levels"), "{error}");
                }
                let shallow = nested(100, 0x91);
                assert!(
                    Transcoder::MessagePack
                        .decode_seed(std::marker::PhantomData::<Value>, &shallow)
                        .is_ok()
                );
            })
            .expect("thread")
            .join()
            .expect("no overflow");
    }
}
