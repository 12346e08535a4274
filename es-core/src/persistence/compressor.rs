//! Compressors: the mapper's optional second stage, between the codec and the cipher.

use std::io::{self, Read, Write};

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
///     assert_eq!(compressor.decompress(&packed, text.len())?, text.as_bytes());
/// }
/// assert!(Compressor::Zlib.decompress(b"not zlib", 1024).is_err());
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
    pub fn compress(&self, bytes: &[u8]) -> Result<Vec<u8>, CompressorError> {
        self.compress_stream(bytes)
            .map_err(|source| CompressorError::Compress {
                compressor: *self,
                source,
            })
    }

    fn compress_stream(&self, bytes: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Compressor::Zlib => {
                let mut encoder = flate2::write::ZlibEncoder::new(
                    Vec::with_capacity(bytes.len() / 2 + 16),
                    flate2::Compression::default(),
                );
                encoder.write_all(bytes)?;
                encoder.finish()
            }
            Compressor::Zstd => {
                let mut compressor = zstd::bulk::Compressor::new(zstd::DEFAULT_COMPRESSION_LEVEL)?;
                // Four bytes a row buy a clear error for a damaged row that no cipher checks.
                compressor.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
                compressor.compress(bytes)
            }
        }
    }

    /// Decompresses what [`compress`](Self::compress) wrote. Bytes that are
    /// not a whole compressed stream, or that go on after it, are an error; so
    /// is expanding to more than `limit` bytes, so that a small damaged or
    /// hostile row cannot make a reader allocate without bound.
    ///
    /// ```
    /// use es_core::persistence::{Compressor, CompressorError};
    /// let mut packed = Compressor::Zstd.compress(b"hello")?;
    /// assert_eq!(Compressor::Zstd.decompress(&packed, 5)?, b"hello");
    /// packed.truncate(packed.len() - 1);
    /// let error = Compressor::Zstd.decompress(&packed, 5).unwrap_err();
    /// assert!(matches!(error, CompressorError::Truncated { .. }));
    ///
    /// let packed = Compressor::Zlib.compress(&[0; 1000])?;
    /// assert_eq!(Compressor::Zlib.decompress(&packed, 1000)?.len(), 1000);
    /// let error = Compressor::Zlib.decompress(&packed, 999).unwrap_err();
    /// assert!(matches!(error, CompressorError::TooLarge { limit: 999 }));
    /// assert!(error.to_string().contains("more than 999 bytes"));
    ///
    /// let error = Compressor::Zlib.decompress(br#"{"plain":"json"}"#, 1000).unwrap_err();
    /// assert!(matches!(error, CompressorError::NotCompressed { compressor: Compressor::Zlib }));
    /// # Ok::<(), es_core::BoxError>(())
    /// ```
    pub fn decompress(&self, bytes: &[u8], limit: usize) -> Result<Vec<u8>, CompressorError> {
        let compressor = *self;
        if bytes.len() < self.header_len() {
            return Err(CompressorError::Truncated { compressor });
        }
        if !self.has_header(bytes) {
            return Err(CompressorError::NotCompressed { compressor });
        }
        // One byte past the limit tells "too big" from "exactly the limit".
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(limit));
        let rest = self
            .decompress_stream(bytes, cap, &mut out)
            .map_err(|source| match source.kind() {
                io::ErrorKind::UnexpectedEof => CompressorError::Truncated { compressor },
                _ => CompressorError::Damaged { compressor, source },
            })?;
        if out.len() > limit {
            return Err(CompressorError::TooLarge { limit });
        }
        // Both formats stop at the end of their stream and would ignore the rest.
        if !rest.is_empty() {
            return Err(CompressorError::TrailingBytes {
                compressor,
                count: rest.len(),
            });
        }
        Ok(out)
    }

    /// Reads one stream from `bytes` into `out`, up to `cap` bytes; returns
    /// what follows the stream.
    fn decompress_stream<'a>(
        &self,
        bytes: &'a [u8],
        cap: u64,
        out: &mut Vec<u8>,
    ) -> io::Result<&'a [u8]> {
        match self {
            Compressor::Zlib => {
                let mut decoder = flate2::bufread::ZlibDecoder::new(bytes);
                (&mut decoder).take(cap).read_to_end(out)?;
                Ok(decoder.into_inner())
            }
            Compressor::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(bytes)?.single_frame();
                (&mut decoder).take(cap).read_to_end(out)?;
                Ok(decoder.finish())
            }
        }
    }

    /// The length of the header every stream of this format starts with.
    fn header_len(&self) -> usize {
        match self {
            Compressor::Zlib => 2,
            Compressor::Zstd => ZSTD_MAGIC.len(),
        }
    }

    /// Whether `bytes` start as a stream of this format does, so that a state
    /// stored uncompressed or by the other compressor is told apart from a
    /// damaged one.
    fn has_header(&self, bytes: &[u8]) -> bool {
        match (self, bytes) {
            // RFC 1950: deflate (method 8), and a header that is a multiple of 31.
            (Compressor::Zlib, [cmf, flg, ..]) => {
                cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
            }
            (Compressor::Zstd, _) => bytes.starts_with(&ZSTD_MAGIC),
            _ => false,
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

/// The magic number that opens every Zstandard frame (RFC 8878), little-endian.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Why a [`Compressor`] could not compress or decompress a state. The mapper
/// keeps it as the [`source`](std::error::Error::source) of the
/// [`Error::Encode`](crate::Error::Encode) or [`Error::Decode`](crate::Error::Decode)
/// that names the event.
///
/// ```
/// use es_core::persistence::{Compressor, CompressorError};
/// let packed = Compressor::Zstd.compress(b"roll over")?;
/// let error = Compressor::Zlib.decompress(&packed, 1024).unwrap_err();
/// assert!(matches!(error, CompressorError::NotCompressed { compressor: Compressor::Zlib }));
/// assert!(error.to_string().contains("COMPRESSOR_TOPIC"));
/// # Ok::<(), es_core::BoxError>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompressorError {
    /// The compressor itself failed (it does not for data in memory, short
    /// of running out of it).
    #[error("cannot compress the state with {}: {source}", compressor.name())]
    Compress {
        /// The compressor configured.
        compressor: Compressor,
        /// What the compression library said.
        #[source]
        source: io::Error,
    },
    /// The state does not start as a stream of the configured format does:
    /// it was stored uncompressed, or by another compressor.
    #[error(
        "the state is not {} data: it was stored uncompressed or by another compressor; \
         set COMPRESSOR_TOPIC to the compressor that wrote it",
        compressor.name()
    )]
    NotCompressed {
        /// The compressor configured.
        compressor: Compressor,
    },
    /// The stream ends before its end marker: the row was cut short.
    #[error("the {} stream is truncated: it ends before its end marker", compressor.name())]
    Truncated {
        /// The compressor configured.
        compressor: Compressor,
    },
    /// The stream is not valid, or its checksum does not match: the stored
    /// bytes were altered.
    #[error("the {} stream is damaged: {source}", compressor.name())]
    Damaged {
        /// The compressor configured.
        compressor: Compressor,
        /// What the decompressor said.
        #[source]
        source: io::Error,
    },
    /// The stream expands to more than the mapper's limit (`MAX_EVENT_SIZE`);
    /// decompression stopped there.
    #[error("the state decompresses to more than {limit} bytes (MAX_EVENT_SIZE)")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// Bytes follow the end of the stream: the row was altered or extended.
    #[error("{count} trailing bytes after the {} stream", compressor.name())]
    TrailingBytes {
        /// The compressor configured.
        compressor: Compressor,
        /// How many bytes follow the stream.
        count: usize,
    },
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
                assert_eq!(
                    compressor
                        .decompress(&packed, usize::MAX)
                        .expect("decompress"),
                    input
                );
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
            let decompress = |bad: &[u8]| compressor.decompress(bad, usize::MAX).expect_err("bad");
            assert!(
                matches!(decompress(&truncated), CompressorError::Truncated { .. }),
                "{compressor:?}"
            );
            assert!(
                matches!(
                    decompress(&extended),
                    CompressorError::TrailingBytes { count: 3, .. }
                ),
                "{compressor:?}"
            );
            assert!(
                matches!(decompress(&altered), CompressorError::Damaged { .. }),
                "{compressor:?}"
            );
            for len in 0..packed.len() {
                assert!(
                    matches!(
                        decompress(&packed[..len]),
                        CompressorError::Truncated { .. }
                    ),
                    "{compressor:?} {len}"
                );
            }
        }
    }

    #[test]
    fn a_state_stored_uncompressed_or_by_the_other_compressor_says_so() {
        let json = br#"{"timestamp":"2026-01-01T00:00:00Z","data":{}}"#;
        let msgpack = [0x82, 0xa9, b't', b'i', b'm', b'e'];
        for compressor in BOTH {
            let other = BOTH.into_iter().find(|c| *c != compressor).expect("two");
            let by_other = other.compress(json).expect("compress");
            for stored in [&json[..], &msgpack, &by_other] {
                let error = compressor.decompress(stored, 1024).expect_err("not ours");
                assert!(
                    matches!(error, CompressorError::NotCompressed { compressor: c } if c == compressor),
                    "{compressor:?}: {error}"
                );
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
            Compressor::Zlib.decompress(&python, 5).expect("decompress"),
            b"hello"
        );
    }

    #[test]
    fn a_small_input_that_expands_past_the_limit_is_refused_without_expanding_it_all() {
        let bomb = vec![0u8; 64 << 20];
        for compressor in BOTH {
            let packed = compressor.compress(&bomb).expect("compress");
            assert!(packed.len() < 1 << 20, "{compressor:?}: {}", packed.len());
            let error = compressor
                .decompress(&packed, 1 << 20)
                .expect_err("past the limit");
            assert!(
                error.to_string().contains("more than 1048576 bytes"),
                "{error}"
            );
            assert_eq!(
                compressor
                    .decompress(&packed, 64 << 20)
                    .expect("at the limit")
                    .len(),
                64 << 20
            );
        }
    }
}
