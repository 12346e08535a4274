//! Transcoders: from serde's data model to bytes and back.

use serde::Serialize;
use serde::de::DeserializeSeed;

use crate::error::BoxError;

/// How events and snapshots are turned into bytes.
///
/// A closed set, chosen by configuration, so that encoding and decoding are
/// monomorphic calls with no dynamic dispatch on the hot path.
///
/// ```
/// use es_core::persistence::Transcoder;
/// let bytes = Transcoder::Json.encode(&vec![1, 2, 3]).unwrap();
/// assert_eq!(bytes, b"[1,2,3]");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Transcoder {
    /// JSON through `serde_json`: readable in the database, the default.
    #[default]
    Json,
}

impl Transcoder {
    /// Encodes any serde value.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, BoxError> {
        match self {
            Transcoder::Json => Ok(serde_json::to_vec(value)?),
        }
    }

    /// Decodes with a seed that carries what the bytes alone do not say (the topic).
    /// Trailing bytes are an error: a row is one value, not a prefix of one.
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
        }
    }
}
