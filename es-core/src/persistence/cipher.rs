//! Application-level encryption: the mapper's optional last stage.

use std::fmt;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInOut, Generate, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use zeroize::Zeroizing;

use crate::error::{BoxError, Error, Result};

type Aes192Gcm = AesGcm<aes_gcm::aes::Aes192, U12>;
type Nonce = aes_gcm::Nonce<U12>;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// AES-GCM encryption of stored state, as the Python library's `AESCipher`:
/// a 16, 24 or 32-byte key (AES-128, -192 or -256) given as base64 in
/// `CIPHER_KEY`, a fresh random 12-byte nonce for every encryption, and the
/// layout `nonce (12) ‖ tag (16) ‖ ciphertext` that the Python library writes.
///
/// The tag authenticates the whole state: a wrong key, a changed byte or a
/// truncated row is an error when decrypting, never garbage. The ids, version
/// and topic stay in clear in their own columns, so that the store can
/// index and order them. The key never appears in `Debug` output or errors.
///
/// ```
/// use es_core::persistence::Cipher;
///
/// let key = Cipher::create_key()?; // keep it safe: without it the data is lost
/// let cipher = Cipher::from_base64(&key)?;
/// let stored = cipher.encrypt(b"Fido learned to roll over")?;
/// assert_eq!(stored.len(), 12 + 16 + 25);
/// assert_ne!(cipher.encrypt(b"Fido learned to roll over")?, stored); // a new nonce each time
/// assert_eq!(cipher.decrypt(&stored)?, b"Fido learned to roll over");
///
/// let other = Cipher::from_base64(&Cipher::create_key()?)?;
/// assert!(other.decrypt(&stored).is_err());
/// assert!(!format!("{cipher:?}").contains(&key));
/// # Ok::<(), es_core::BoxError>(())
/// ```
#[derive(Clone)]
pub struct Cipher {
    key: Key,
}

/// The initialised cipher; its key schedule is wiped on drop (aes-gcm's `zeroize`).
#[derive(Clone)]
enum Key {
    Aes128(Aes128Gcm),
    Aes192(Aes192Gcm),
    Aes256(Aes256Gcm),
}

impl Cipher {
    /// The accepted values of `CIPHER_TOPIC`, all meaning AES-GCM.
    pub const TOPICS: &'static [&'static str] = &[
        "aes-gcm",
        "eventsourcing.cipher:AESCipher",
        "eventsourcing.cryptography:AESCipher",
    ];

    /// A cipher with the key `key`, base64 (standard alphabet, padded) of 16,
    /// 24 or 32 bytes. Anything else is an [`Error::Config`] about
    /// `CIPHER_KEY` that gives the value's length, never the value.
    ///
    /// ```
    /// use es_core::persistence::Cipher;
    /// let cipher = Cipher::from_base64("AAECAwQFBgcICQoLDA0ODw==")?; // 16 bytes
    /// assert_eq!(cipher.algorithm(), "AES-128-GCM");
    /// let error = Cipher::from_base64("c2VjcmV0").unwrap_err().to_string();
    /// assert!(error.contains("CIPHER_KEY") && error.contains("6 bytes") && !error.contains("c2VjcmV0"));
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn from_base64(key: &str) -> Result<Cipher> {
        Self::from_variable("CIPHER_KEY".to_owned(), key)
    }

    /// As [`from_base64`](Self::from_base64), for the key read from `variable`.
    pub(crate) fn from_variable(variable: String, key: &str) -> Result<Cipher> {
        let invalid = |problem: String| Error::Config {
            variable: variable.clone(),
            value: format!("<{} characters, not shown>", key.chars().count()),
            expected: format!(
                "the base64 of a 16, 24 or 32-byte key, such as \
                 es_core::persistence::Cipher::create_key() makes ({problem})"
            ),
        };
        // The decoder's own error would quote the offending character of the key.
        let bytes = Zeroizing::new(
            BASE64
                .decode(key.trim())
                .map_err(|_| invalid("the value is not standard padded base64".to_owned()))?,
        );
        Self::new(&bytes).map_err(|_| invalid(format!("it decodes to {} bytes", bytes.len())))
    }

    /// A cipher with the raw key `key` of 16, 24 or 32 bytes.
    ///
    /// ```
    /// use es_core::persistence::Cipher;
    /// assert_eq!(Cipher::new(&[7; 32])?.algorithm(), "AES-256-GCM");
    /// assert!(Cipher::new(&[7; 20]).is_err());
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn new(key: &[u8]) -> Result<Cipher> {
        let key = match key.len() {
            16 => Aes128Gcm::new_from_slice(key).map(Key::Aes128),
            24 => Aes192Gcm::new_from_slice(key).map(Key::Aes192),
            32 => Aes256Gcm::new_from_slice(key).map(Key::Aes256),
            _ => {
                return Err(Error::Config {
                    variable: "CIPHER_KEY".to_owned(),
                    value: format!("<a key of {} bytes, not shown>", key.len()),
                    expected: "a key of 16, 24 or 32 bytes".to_owned(),
                });
            }
        };
        key.map(|key| Cipher { key }).map_err(|_| Error::Config {
            variable: "CIPHER_KEY".to_owned(),
            value: "<not shown>".to_owned(),
            expected: "a key of 16, 24 or 32 bytes".to_owned(),
        })
    }

    /// A new random 32-byte (AES-256) key from the operating system's secure
    /// generator, as the base64 that `CIPHER_KEY` takes.
    ///
    /// ```
    /// let key = es_core::persistence::Cipher::create_key()?;
    /// assert_eq!(key.len(), 44);
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn create_key() -> Result<String> {
        let key = Zeroizing::new(<[u8; 32]>::try_generate().map_err(|error| Error::Random {
            source: error.into(),
        })?);
        Ok(BASE64.encode(key.as_slice()))
    }

    /// `"AES-128-GCM"`, `"AES-192-GCM"` or `"AES-256-GCM"`, by the key's length.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            Key::Aes128(_) => "AES-128-GCM",
            Key::Aes192(_) => "AES-192-GCM",
            Key::Aes256(_) => "AES-256-GCM",
        }
    }

    /// Encrypts `plaintext` under a fresh random nonce, as `nonce ‖ tag ‖ ciphertext`.
    ///
    /// ```
    /// # let cipher = es_core::persistence::Cipher::new(&[1; 24])?;
    /// let stored = cipher.encrypt(b"")?;
    /// assert_eq!(stored.len(), 28);
    /// # Ok::<(), es_core::BoxError>(())
    /// ```
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>, CipherError> {
        let nonce = Nonce::try_generate().map_err(|error| CipherError::Random {
            source: error.into(),
        })?;
        let mut stored = Vec::with_capacity(NONCE_LEN + TAG_LEN + plaintext.len());
        stored.extend_from_slice(&nonce);
        stored.extend_from_slice(&[0; TAG_LEN]);
        stored.extend_from_slice(plaintext);
        let (head, text) = stored.split_at_mut(NONCE_LEN + TAG_LEN);
        let tag = match &self.key {
            Key::Aes128(aes) => aes.encrypt_inout_detached(&nonce, b"", text.into()),
            Key::Aes192(aes) => aes.encrypt_inout_detached(&nonce, b"", text.into()),
            Key::Aes256(aes) => aes.encrypt_inout_detached(&nonce, b"", text.into()),
        }
        .map_err(|_| CipherError::TooLong {
            len: plaintext.len(),
        })?;
        head[NONCE_LEN..].copy_from_slice(&tag);
        Ok(stored)
    }

    /// Decrypts what [`encrypt`](Self::encrypt) wrote, checking its tag first.
    ///
    /// ```
    /// use es_core::persistence::{Cipher, CipherError};
    /// # let cipher = Cipher::new(&[1; 16])?;
    /// let mut stored = cipher.encrypt(b"secret")?;
    /// stored[30] ^= 1;
    /// let altered = cipher.decrypt(&stored).unwrap_err();
    /// assert!(matches!(altered, CipherError::WrongKeyOrAltered { .. }));
    /// assert!(altered.to_string().contains("altered"));
    /// let truncated = cipher.decrypt(&stored[..27]).unwrap_err();
    /// assert!(matches!(truncated, CipherError::Truncated { len: 27, .. }));
    /// assert!(truncated.to_string().contains("truncated"));
    /// # Ok::<(), es_core::BoxError>(())
    /// ```
    pub fn decrypt(&self, stored: &[u8]) -> Result<Vec<u8>, CipherError> {
        let parts = stored
            .split_at_checked(NONCE_LEN)
            .and_then(|(nonce, rest)| Some((nonce, rest.split_at_checked(TAG_LEN)?)));
        let truncated = || CipherError::Truncated {
            len: stored.len(),
            needed: NONCE_LEN + TAG_LEN,
        };
        let Some((nonce, (tag, ciphertext))) = parts else {
            return Err(truncated());
        };
        // Both conversions are from slices of the exact length split off above.
        let nonce = Nonce::try_from(nonce).map_err(|_| truncated())?;
        let tag = aes_gcm::Tag::try_from(tag).map_err(|_| truncated())?;
        let mut plaintext = ciphertext.to_vec();
        match &self.key {
            Key::Aes128(aes) => {
                aes.decrypt_inout_detached(&nonce, b"", plaintext.as_mut_slice().into(), &tag)
            }
            Key::Aes192(aes) => {
                aes.decrypt_inout_detached(&nonce, b"", plaintext.as_mut_slice().into(), &tag)
            }
            Key::Aes256(aes) => {
                aes.decrypt_inout_detached(&nonce, b"", plaintext.as_mut_slice().into(), &tag)
            }
        }
        .map_err(|_| CipherError::WrongKeyOrAltered {
            algorithm: self.algorithm(),
        })?;
        Ok(plaintext)
    }
}

/// Why a [`Cipher`] could not encrypt or decrypt a state. The mapper keeps it
/// as the [`source`](std::error::Error::source) of the [`Error::Encode`] or
/// [`Error::Decode`] that names the event, so a caller can tell a wrong key
/// from a truncated row:
///
/// ```
/// use es_core::prelude::*;
/// use es_core::persistence::{Cipher, CipherError, Mapper, Transcoder};
/// # #[aggregate] pub struct Safe { open: bool }
/// # #[aggregate] impl Safe { #[event("Fitted")] pub fn fit() -> Self { Safe { open: false } } }
/// let mapper = Mapper::new(Transcoder::Json).with_cipher(Cipher::new(&[1; 32])?);
/// let stored = mapper.to_stored_event(&Safe::fit().pending_events()[0])?;
///
/// let other_key = Mapper::new(Transcoder::Json).with_cipher(Cipher::new(&[2; 32])?);
/// let error = other_key.to_domain_event::<SafeEvent>(&stored).unwrap_err();
/// let cause = std::error::Error::source(&error).and_then(|s| s.downcast_ref::<CipherError>());
/// assert!(matches!(cause, Some(CipherError::WrongKeyOrAltered { algorithm: "AES-256-GCM" })));
/// # Ok::<(), es_core::Error>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CipherError {
    /// The tag does not match: the key is not the one the state was encrypted
    /// with, or the stored bytes were altered or cut short after the tag.
    /// AES-GCM cannot tell these apart, and says nothing else about the data.
    #[error(
        "cannot decrypt the state with the configured {algorithm} key: the key is not the \
         one it was encrypted with (check CIPHER_KEY), or the stored bytes were altered"
    )]
    WrongKeyOrAltered {
        /// The configured key's algorithm, such as `"AES-256-GCM"`.
        algorithm: &'static str,
    },
    /// The stored state is too short to hold even a nonce and a tag: the row
    /// was cut short, or was never encrypted.
    #[error(
        "the encrypted state is truncated: {len} bytes, fewer than the {needed} of its nonce \
         and tag (was it stored without encryption?)"
    )]
    Truncated {
        /// The stored state's length.
        len: usize,
        /// The least an encrypted state takes.
        needed: usize,
    },
    /// The state is longer than AES-GCM can encrypt under one nonce (64 GiB).
    #[error("the state is too long for AES-GCM: {len} bytes")]
    TooLong {
        /// The state's length.
        len: usize,
    },
    /// The operating system's random number generator gave no nonce.
    #[error("the operating system's random number generator gave no nonce: {source}")]
    Random {
        /// What the generator said.
        #[source]
        source: BoxError,
    },
}

impl fmt::Debug for Cipher {
    /// Names the algorithm only: the key stays out of logs.
    ///
    /// ```
    /// let cipher = es_core::persistence::Cipher::new(&[0x41; 32])?;
    /// assert_eq!(format!("{cipher:?}"), r#"Cipher { algorithm: "AES-256-GCM", .. }"#);
    /// # Ok::<(), es_core::Error>(())
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ciphers() -> [Cipher; 3] {
        [16, 24, 32].map(|len| Cipher::new(&vec![0x5a; len]).expect("valid length"))
    }

    #[test]
    fn every_key_length_round_trips_with_a_fresh_nonce_each_time() {
        for cipher in ciphers() {
            let first = cipher.encrypt(b"state").expect("encrypt");
            let second = cipher.encrypt(b"state").expect("encrypt");
            assert_ne!(first[..NONCE_LEN], second[..NONCE_LEN]);
            assert_eq!(first.len(), NONCE_LEN + TAG_LEN + 5);
            assert_eq!(cipher.decrypt(&first).expect("decrypt"), b"state");
        }
    }

    #[test]
    fn every_altered_byte_and_every_truncation_is_an_error() {
        let cipher = Cipher::new(&[9; 32]).expect("key");
        let stored = cipher.encrypt(b"a state of some length").expect("encrypt");
        for index in 0..stored.len() {
            let mut altered = stored.clone();
            altered[index] ^= 0x01;
            assert!(cipher.decrypt(&altered).is_err(), "byte {index}");
        }
        for len in 0..stored.len() {
            assert!(cipher.decrypt(&stored[..len]).is_err(), "length {len}");
        }
    }

    #[test]
    fn a_key_of_another_length_or_another_key_cannot_decrypt() {
        let [a128, a192, a256] = ciphers();
        let stored = a256.encrypt(b"x").expect("encrypt");
        for other in [a128, a192, Cipher::new(&[0x5b; 32]).expect("key")] {
            let error = other.decrypt(&stored).expect_err("wrong key").to_string();
            assert!(error.contains("not the one"), "{error}");
        }
    }

    #[test]
    fn the_key_never_shows_in_debug_output_or_errors() {
        let key = Cipher::create_key().expect("key");
        let cipher = Cipher::from_base64(&key).expect("valid");
        let debug = format!("{cipher:?}");
        assert_eq!(debug, r#"Cipher { algorithm: "AES-256-GCM", .. }"#);
        assert!(!debug.contains(&key));
        for bad in [
            key[..40].to_owned(),       // not padded base64
            format!("{}!", &key[..43]), // a stray character
            BASE64.encode([7u8; 20]),   // a key of the wrong length
            format!("{key}{key}"),      // two keys
        ] {
            let error = Cipher::from_base64(&bad).expect_err(&bad);
            let shown = format!("{error} {error:?}");
            assert!(
                !shown.contains(&bad) && !shown.contains(&key[..8]),
                "{shown}"
            );
            assert!(
                shown.contains("CIPHER_KEY") && shown.contains("characters"),
                "{shown}"
            );
        }
        let error = Cipher::from_base64(&BASE64.encode([7u8; 20])).expect_err("20 bytes");
        assert!(error.to_string().contains("decodes to 20 bytes"), "{error}");
    }

    #[test]
    fn created_keys_are_random_and_accepted() {
        let first = Cipher::create_key().expect("key");
        assert_ne!(first, Cipher::create_key().expect("key"));
        assert_eq!(BASE64.decode(&first).expect("base64").len(), 32);
    }
}
