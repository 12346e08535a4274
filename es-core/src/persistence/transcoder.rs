//! Transcoders: from serde's data model to bytes and back.

use serde::Serialize;
use serde::de::{DeserializeSeed, IgnoredAny};

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
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, TranscoderError> {
        let encode_error = |source: BoxError| TranscoderError::Encode {
            transcoder: *self,
            source,
        };
        match self {
            Transcoder::Json => {
                serde_json::to_vec(value).map_err(|error| encode_error(error.into()))
            }
            Transcoder::MessagePack => {
                let mut bytes = Vec::with_capacity(128);
                value
                    .serialize(&mut msgpack_serializer(&mut bytes))
                    .map_err(|error| encode_error(error.into()))?;
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
    pub fn decode_seed<T, V>(&self, seed: T, bytes: &[u8]) -> Result<V, TranscoderError>
    where
        T: for<'de> DeserializeSeed<'de, Value = V>,
    {
        match self {
            Transcoder::Json => {
                let mut deserializer = serde_json::Deserializer::from_slice(bytes);
                let value = seed
                    .deserialize(&mut deserializer)
                    .map_err(|error| self.decode_error(bytes, error.into()))?;
                deserializer.end().map_err(|_| json_trailing(bytes))?;
                Ok(value)
            }
            Transcoder::MessagePack => {
                let mut deserializer = msgpack_deserializer(bytes)?;
                let value = seed
                    .deserialize(&mut deserializer)
                    .map_err(|error| self.decode_error(bytes, error.into()))?;
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
    ) -> Result<R, TranscoderError> {
        match self {
            Transcoder::Json => {
                let mut deserializer = serde_json::Deserializer::from_slice(bytes);
                let value = decode(&mut <dyn erased_serde::Deserializer>::erase(
                    &mut deserializer,
                ))
                .map_err(|error| self.decode_error(bytes, error.into()))?;
                deserializer.end().map_err(|_| json_trailing(bytes))?;
                Ok(value)
            }
            Transcoder::MessagePack => {
                let mut deserializer = msgpack_deserializer(bytes)?;
                let value = decode(&mut <dyn erased_serde::Deserializer>::erase(
                    &mut deserializer,
                ))
                .map_err(|error| self.decode_error(bytes, error.into()))?;
                msgpack_end(deserializer)?;
                Ok(value)
            }
        }
    }

    /// Names why decoding `bytes` failed with `source`. Typed decoding loses
    /// the codec's own kind of error on some paths (through erased or
    /// buffering deserializers), so the bytes are read once more as a value of
    /// any type: cut short, not this codec at all, or a value of another shape.
    fn decode_error(&self, bytes: &[u8], source: BoxError) -> TranscoderError {
        let transcoder = *self;
        match self.syntax(bytes) {
            Syntax::Whole => TranscoderError::Mismatch { transcoder, source },
            Syntax::CutShort => TranscoderError::Truncated { transcoder, source },
            Syntax::Invalid => TranscoderError::Malformed { transcoder, source },
        }
    }

    /// Whether `bytes` hold one whole value of this codec, whatever its type.
    fn syntax(&self, bytes: &[u8]) -> Syntax {
        match self {
            Transcoder::Json => {
                // Into a `Value` rather than `IgnoredAny`: skipping a number
                // cut short after its point is a syntax error, not an end of input.
                match serde_json::from_slice::<serde_json::Value>(bytes).map_err(|e| e.classify()) {
                    Ok(_) => Syntax::Whole,
                    Err(serde_json::error::Category::Eof) => Syntax::CutShort,
                    Err(_) => Syntax::Invalid,
                }
            }
            Transcoder::MessagePack => {
                use rmp_serde::decode::Error as Rmp;
                let mut deserializer = rmp_serde::Deserializer::new(bytes);
                match serde::Deserialize::deserialize(&mut deserializer).map(|_: IgnoredAny| ()) {
                    Ok(()) => Syntax::Whole,
                    Err(Rmp::InvalidMarkerRead(e) | Rmp::InvalidDataRead(e))
                        if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                    {
                        Syntax::CutShort
                    }
                    Err(_) => Syntax::Invalid,
                }
            }
        }
    }

    /// How errors name the codec.
    fn label(&self) -> &'static str {
        match self {
            Transcoder::Json => "JSON",
            Transcoder::MessagePack => "MessagePack",
        }
    }
}

/// What a second reading of undecodable bytes found.
enum Syntax {
    Whole,
    CutShort,
    Invalid,
}

/// Why a [`Transcoder`] could not encode a value or decode stored bytes. The
/// mapper keeps it as the [`source`](std::error::Error::source) of the
/// [`Error::Encode`](crate::Error::Encode) or [`Error::Decode`](crate::Error::Decode)
/// that names the event.
///
/// ```
/// use es_core::persistence::{Transcoder, TranscoderError};
/// use std::marker::PhantomData;
/// let decode = |bytes: &[u8]| Transcoder::Json.decode_seed(PhantomData::<Vec<u8>>, bytes).unwrap_err();
/// assert!(matches!(decode(b"[1,2"), TranscoderError::Truncated { .. }));
/// assert!(matches!(decode(b"[1,}"), TranscoderError::Malformed { .. }));
/// assert!(matches!(decode(br#"{"a":1}"#), TranscoderError::Mismatch { .. }));
/// assert!(matches!(decode(b"[1] [2]"), TranscoderError::TrailingBytes { count: 3, .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TranscoderError {
    /// The value cannot be written in this codec, such as a map whose keys
    /// are not strings in JSON.
    #[error("cannot encode as {}: {source}", transcoder.label())]
    Encode {
        /// The configured transcoder.
        transcoder: Transcoder,
        /// What the codec said.
        #[source]
        source: BoxError,
    },
    /// The bytes end in the middle of a value: the row was cut short.
    #[error("the {} value is truncated: {source}", transcoder.label())]
    Truncated {
        /// The configured transcoder.
        transcoder: Transcoder,
        /// What the codec said.
        #[source]
        source: BoxError,
    },
    /// The bytes are not this codec's encoding at all: altered, or written
    /// by another codec, compressor or cipher than the ones configured.
    #[error(
        "the state is not valid {}: {source} (was it written with another TRANSCODER, \
         COMPRESSOR_TOPIC or CIPHER_KEY?)",
        transcoder.label()
    )]
    Malformed {
        /// The configured transcoder.
        transcoder: Transcoder,
        /// What the codec said.
        #[source]
        source: BoxError,
    },
    /// The bytes are a whole value, but not of the shape the type expects:
    /// a field missing or of another type (an upcast step may be missing).
    #[error("{source}")]
    Mismatch {
        /// The configured transcoder.
        transcoder: Transcoder,
        /// What the type's deserializer said.
        #[source]
        source: BoxError,
    },
    /// Bytes follow the value: a row is one value, not a prefix of one.
    #[error("{count} trailing bytes after the {} value", transcoder.label())]
    TrailingBytes {
        /// The configured transcoder.
        transcoder: Transcoder,
        /// How many bytes follow the value.
        count: usize,
    },
    /// MessagePack nested deeper than decoding may recurse.
    #[error("MessagePack nested more than {limit} levels deep")]
    TooDeep {
        /// The deepest nesting read.
        limit: usize,
    },
}

/// The JSON after a decoded value is not whitespace: count it from the end of
/// the value, which a second reading finds.
fn json_trailing(bytes: &[u8]) -> TranscoderError {
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<IgnoredAny>();
    let _ = values.next();
    let end = values.byte_offset();
    let rest = bytes.get(end..).unwrap_or_default();
    let count = rest.len() - rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
    TranscoderError::TrailingBytes {
        transcoder: Transcoder::Json,
        count,
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
fn msgpack_deserializer(bytes: &[u8]) -> Result<MsgpackDeserializer<'_>, TranscoderError> {
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
fn check_msgpack_depth(bytes: &[u8]) -> Result<(), TranscoderError> {
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
                return Err(TranscoderError::TooDeep {
                    limit: MAX_MSGPACK_DEPTH,
                });
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

fn msgpack_end(deserializer: MsgpackDeserializer<'_>) -> Result<(), TranscoderError> {
    let rest = deserializer.into_inner();
    if rest.is_empty() {
        Ok(())
    } else {
        Err(TranscoderError::TrailingBytes {
            transcoder: Transcoder::MessagePack,
            count: rest.len(),
        })
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
        let error = read.expect_err("trailing");
        assert!(
            matches!(error, TranscoderError::TrailingBytes { count: 1, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("1 trailing"));
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
    fn cut_short_malformed_and_mismatched_bytes_are_told_apart_on_both_paths() {
        for transcoder in [Transcoder::Json, Transcoder::MessagePack] {
            let bytes = transcoder
                .encode(&(7u32, "seven", [1.5f64; 4]))
                .expect("encode");
            let typed = |bytes: &[u8]| {
                transcoder
                    .decode_seed(PhantomData::<(u32, String, Vec<f64>)>, bytes)
                    .expect_err("bad")
            };
            let erased = |bytes: &[u8]| {
                transcoder
                    .decode_erased(bytes, |deserializer| {
                        erased_serde::deserialize::<(u32, String, Vec<f64>)>(deserializer)
                    })
                    .expect_err("bad")
            };
            let mismatched = transcoder.encode(&("seven", 7u32)).expect("encode");
            let malformed: &[u8] = match transcoder {
                Transcoder::Json => b"[7,\"seven\",[1.5,}",
                _ => &[0x93, 0x07, 0xc1],
            };
            for decode in [&typed as &dyn Fn(&[u8]) -> TranscoderError, &erased] {
                for len in 0..bytes.len() {
                    let error = decode(&bytes[..len]);
                    assert!(
                        matches!(error, TranscoderError::Truncated { .. }),
                        "{transcoder:?} {len}: {error:?}"
                    );
                }
                let error = decode(malformed);
                assert!(
                    matches!(error, TranscoderError::Malformed { .. }),
                    "{transcoder:?}: {error:?}"
                );
                let error = decode(&mismatched);
                assert!(
                    matches!(error, TranscoderError::Mismatch { .. }),
                    "{transcoder:?}: {error:?}"
                );
            }
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
