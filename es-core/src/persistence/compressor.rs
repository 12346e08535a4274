//! Compressors: the mapper's optional second stage, between the codec and the cipher.

use std::io::{Read, Write};

use crate::error::BoxError;

/// How encoded events and snapshots are compressed before they are (perhaps)
/// encrypted and stored: `COMPRESSOR_TOPIC=zlib` or `zstd`.
///
/// Compression pays for events with long or repetitive fields; a short event
/// can come out longer than it went in.
///
/// ```
/// use es_core::persistence::Compressor;
///
/// let text = "roll over, play dead, roll over, play dead, roll over".repeat(20);
/// for compressor in [Compressor::Zlib, Compressor::Zstd] {
///     let packed = compressor.compress(text.as_bytes())?;
///     assert!(packed.len() < text.len() / 4);
///     assert_eq!(compressor.decompress(&packed)?, text.as_bytes());
/// }
/// assert!(Compressor::Zlib.decompress(b"not zlib").is_err());
/// # Ok::<(), es_core::BoxError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compressor {
    /// zlib (RFC 1950) through `flate2`, at the default level 6: what the Python
    /// library's `ZlibCompressor` writes and reads.
    Zlib,
    /// Zstandard through `zstd`, at its default level 3, with a checksum of
    /// the content: faster than zlib for the same or a better ratio.
    Zstd,
}

impl Compressor {
    /// Compresses `bytes`.
    ///
    /// ```
    /// use es_core::persistence::Compressor;
    /// let packed = Compressor::Zlib.compress(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")?;
    /// assert_eq!(packed[0], 0x78); // the zlib header
    /// # Ok::<(), es_core::BoxError>(())
    /// ```
    pub fn compress(&self, bytes: &[u8]) -> Result<Vec<u8>, BoxError> {
        match self {
            Compressor::Zlib => {
                let mut encoder = flate2::write::ZlibEncoder::new(
                    Vec::with_capacity(bytes.len() / 2 + 16),
                    flate2::Compression::default(),
                );
                encoder.write_all(bytes)?;
                Ok(encoder.finish()?)
            }
            Compressor::Zstd => {
                let mut compressor = zstd::bulk::Compressor::new(zstd::DEFAULT_COMPRESSION_LEVEL)?;
                // Four bytes a row buy a clear error for a damaged row that no cipher checks.
                compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
                Ok(compressor.compress(bytes)?)
            }
        }
    }

    /// Decompresses what [`compress`](Self::compress) wrote. Bytes that are
    /// not a whole compressed stream, or that go on after it, are an error.
    ///
    /// ```
    /// use es_core::persistence::Compressor;
    /// let mut packed = Compressor::Zstd.compress(b"hello")?;
    /// assert_eq!(Compressor::Zstd.decompress(&packed)?, b"hello");
    /// packed.truncate(packed.len() - 1);
    /// assert!(Compressor::Zstd.decompress(&packed).is_err());
    /// # Ok::<(), es_core::BoxError>(())
    /// ```
    pub fn decompress(&self, bytes: &[u8]) -> Result<Vec<u8>, BoxError> {
        match self {
            Compressor::Zlib => {
                let mut decoder = flate2::bufread::ZlibDecoder::new(bytes);
                let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
                decoder.read_to_end(&mut out)?;
                // zlib stops at the end of its stream and would ignore the rest.
                let rest = decoder.into_inner();
                if !rest.is_empty() {
                    return Err(
                        format!("{} trailing bytes after the zlib stream", rest.len()).into(),
                    );
                }
                Ok(out)
            }
            Compressor::Zstd => Ok(zstd::stream::decode_all(bytes)?),
        }
    }

    /// The name `COMPRESSOR_TOPIC` takes for this compressor.
    ///
    /// ```
    /// assert_eq!(es_core::persistence::Compressor::Zstd.name(), "zstd");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Compressor::Zlib => "zlib",
            Compressor::Zstd => "zstd",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [Compressor; 2] = [Compressor::Zlib, Compressor::Zstd];

    #[test]
    fn empty_and_incompressible_input_round_trip() {
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for compressor in BOTH {
            for input in [&[][..], &noise] {
                let packed = compressor.compress(input).expect("compress");
                assert_eq!(compressor.decompress(&packed).expect("decompress"), input);
            }
        }
    }

    #[test]
    fn truncated_altered_or_extended_input_is_an_error() {
        let input = b"the quick brown fox jumps over the lazy dog".repeat(10);
        for compressor in BOTH {
            let packed = compressor.compress(&input).expect("compress");
            let mut truncated = packed.clone();
            truncated.truncate(packed.len() / 2);
            let mut extended = packed.clone();
            extended.extend_from_slice(b"xyz");
            let mut altered = packed.clone();
            let last = altered.len() - 1;
            altered[last] ^= 0xff; // the checksum at the end of either format
            for bad in [truncated, extended, altered] {
                assert!(compressor.decompress(&bad).is_err(), "{compressor:?}");
            }
        }
    }

    #[test]
    fn zlib_reads_what_pythons_zlib_compress_writes() {
        // zlib.compress(b"hello") in Python.
        let python = [
            0x78, 0x9c, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x06, 0x2c, 0x02, 0x15,
        ];
        assert_eq!(
            Compressor::Zlib.decompress(&python).expect("decompress"),
            b"hello"
        );
    }
}
