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
    /// not a whole compressed stream, or that go on after it, are an error; so
    /// is expanding to more than `limit` bytes, so that a small damaged or
    /// hostile row cannot make a reader allocate without bound.
    ///
    /// ```
    /// use es_core::persistence::Compressor;
    /// let mut packed = Compressor::Zstd.compress(b"hello")?;
    /// assert_eq!(Compressor::Zstd.decompress(&packed, 5)?, b"hello");
    /// packed.truncate(packed.len() - 1);
    /// assert!(Compressor::Zstd.decompress(&packed, 5).is_err());
    ///
    /// let packed = Compressor::Zlib.compress(&[0; 1000])?;
    /// assert_eq!(Compressor::Zlib.decompress(&packed, 1000)?.len(), 1000);
    /// let error = Compressor::Zlib.decompress(&packed, 999).unwrap_err();
    /// assert!(error.to_string().contains("more than 999 bytes"));
    /// # Ok::<(), es_core::BoxError>(())
    /// ```
    pub fn decompress(&self, bytes: &[u8], limit: usize) -> Result<Vec<u8>, BoxError> {
        // One byte past the limit tells "too big" from "exactly the limit".
        let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(limit));
        let rest = match self {
            Compressor::Zlib => {
                let mut decoder = flate2::bufread::ZlibDecoder::new(bytes);
                (&mut decoder).take(cap).read_to_end(&mut out)?;
                decoder.into_inner()
            }
            Compressor::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(bytes)?.single_frame();
                (&mut decoder).take(cap).read_to_end(&mut out)?;
                decoder.finish()
            }
        };
        if out.len() > limit {
            return Err(format!("the state decompresses to more than {limit} bytes").into());
        }
        // Both formats stop at the end of their stream and would ignore the rest.
        if !rest.is_empty() {
            return Err(format!(
                "{} trailing bytes after the {} stream",
                rest.len(),
                self.name()
            )
            .into());
        }
        Ok(out)
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
            for bad in [truncated, extended, altered] {
                assert!(
                    compressor.decompress(&bad, usize::MAX).is_err(),
                    "{compressor:?}"
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
