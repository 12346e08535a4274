//! The mapper's configuration: the builder's settings, then `TRANSCODER`,
//! `COMPRESSOR_TOPIC`, `CIPHER_TOPIC`, `CIPHER_KEY` and `MAX_EVENT_SIZE`, then
//! the defaults (JSON, no compression, no encryption, 16 MiB).

use super::environment::Environment;
use crate::error::{Error, Result};
use crate::persistence::{Cipher, Compressor, DEFAULT_MAX_EVENT_SIZE, Mapper, Transcoder};

/// What the builder was told about the mapper; `None` leaves it to the environment.
#[derive(Default)]
pub(super) struct MapperSettings {
    pub(super) transcoder: Option<Transcoder>,
    pub(super) compressor: Option<Option<Compressor>>,
    pub(super) cipher: Option<Option<Cipher>>,
    pub(super) max_event_size: Option<usize>,
}

/// The largest `MAX_EVENT_SIZE` accepted: 1 GiB, far past any sane event.
const MAX_EVENT_SIZE_CEILING: u32 = 1 << 30;

const TRANSCODERS: &[&str] = &["json", "msgpack", "messagepack"];
const COMPRESSORS: &[&str] = &["zlib", "zstd", "eventsourcing.compressor:ZlibCompressor"];

impl MapperSettings {
    pub(super) fn build(self, env: &Environment) -> Result<Mapper> {
        let transcoder = match self.transcoder {
            Some(transcoder) => transcoder,
            None => match env.get_choice("TRANSCODER", TRANSCODERS)? {
                Some("msgpack" | "messagepack") => Transcoder::MessagePack,
                _ => Transcoder::Json,
            },
        };
        let compressor = match self.compressor {
            Some(compressor) => compressor,
            None => match env.get_choice("COMPRESSOR_TOPIC", COMPRESSORS)? {
                Some("zstd") => Some(Compressor::Zstd),
                Some(_) => Some(Compressor::Zlib),
                None => None,
            },
        };
        let cipher = match self.cipher {
            Some(cipher) => cipher,
            None => cipher_from(env)?,
        };
        let max_event_size = match self.max_event_size {
            Some(bytes) => bytes,
            None => env
                .get_u32("MAX_EVENT_SIZE", 1..=MAX_EVENT_SIZE_CEILING)?
                .map_or(DEFAULT_MAX_EVENT_SIZE, |bytes| bytes as usize),
        };
        let mapper = Mapper::new(transcoder).with_max_event_size(max_event_size);
        let mapper = match compressor {
            Some(compressor) => mapper.with_compressor(compressor),
            None => mapper,
        };
        Ok(match cipher {
            Some(cipher) => mapper.with_cipher(cipher),
            None => mapper,
        })
    }
}

/// As the Python library: a key alone implies AES-GCM, and AES-GCM is the only
/// cipher, so `CIPHER_TOPIC` only confirms it, and asks for a key.
fn cipher_from(env: &Environment) -> Result<Option<Cipher>> {
    let topic = env.get_choice("CIPHER_TOPIC", Cipher::TOPICS)?;
    match (env.get("CIPHER_KEY"), topic) {
        (Some((variable, key)), _) => Cipher::from_variable(variable, key).map(Some),
        (None, Some(topic)) => Err(Error::Config {
            variable: env
                .get("CIPHER_TOPIC")
                .map_or_else(|| "CIPHER_TOPIC".to_owned(), |(variable, _)| variable),
            value: topic.to_owned(),
            expected: "CIPHER_KEY to be set too, to the base64 of a 16, 24 or 32-byte key \
                       (es_core::persistence::Cipher::create_key() makes one)"
                .to_owned(),
        }),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapper(vars: &[(&str, &str)]) -> Result<Mapper> {
        MapperSettings::default().build(&Environment::from_vars(vars.iter().copied()))
    }

    #[test]
    fn the_defaults_are_json_uncompressed_in_clear() {
        let mapper = mapper(&[]).expect("valid");
        assert_eq!(mapper.transcoder(), Transcoder::Json);
        assert_eq!(mapper.compressor(), None);
        assert!(mapper.cipher().is_none());
    }

    #[test]
    fn each_variable_chooses_its_stage() {
        let key = Cipher::create_key().expect("key");
        let mapper = mapper(&[
            ("TRANSCODER", "MsgPack"),
            (
                "COMPRESSOR_TOPIC",
                "eventsourcing.compressor:ZlibCompressor",
            ),
            ("CIPHER_KEY", &key),
        ])
        .expect("valid");
        assert_eq!(mapper.transcoder(), Transcoder::MessagePack);
        assert_eq!(mapper.compressor(), Some(Compressor::Zlib));
        assert_eq!(mapper.cipher().map(Cipher::algorithm), Some("AES-256-GCM"));
        let with_topic = self::mapper(&[
            ("COMPRESSOR_TOPIC", "zstd"),
            ("CIPHER_TOPIC", "eventsourcing.cipher:AESCipher"),
            ("CIPHER_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX"),
        ])
        .expect("valid");
        assert_eq!(with_topic.compressor(), Some(Compressor::Zstd));
        assert_eq!(
            with_topic.cipher().map(Cipher::algorithm),
            Some("AES-192-GCM")
        );
    }

    #[test]
    fn the_application_prefix_comes_first() {
        let env = Environment::from_vars([("TRANSCODER", "json"), ("DOGS_TRANSCODER", "msgpack")]);
        let mapper = MapperSettings::default()
            .build(&env.with_name("dogs"))
            .expect("valid");
        assert_eq!(mapper.transcoder(), Transcoder::MessagePack);
    }

    #[test]
    fn the_builder_wins_over_the_environment() {
        let settings = MapperSettings {
            transcoder: Some(Transcoder::Json),
            compressor: Some(None),
            cipher: Some(None),
            max_event_size: Some(64),
        };
        let env = Environment::from_vars([
            ("TRANSCODER", "msgpack"),
            ("COMPRESSOR_TOPIC", "zlib"),
            ("CIPHER_KEY", "not even base64"),
            ("MAX_EVENT_SIZE", "-1"),
        ]);
        let mapper = settings.build(&env).expect("the environment is not read");
        assert_eq!(mapper.transcoder(), Transcoder::Json);
        assert_eq!(mapper.compressor(), None);
        assert!(mapper.cipher().is_none());
        assert_eq!(mapper.max_event_size(), 64);
    }

    #[test]
    fn bad_values_name_the_variable_and_what_is_accepted() {
        for (vars, variable, accepted) in [
            (&[("TRANSCODER", "yaml")][..], "TRANSCODER", "json, msgpack"),
            (
                &[("MAX_EVENT_SIZE", "-1")],
                "MAX_EVENT_SIZE",
                "1 to 1073741824",
            ),
            (
                &[("MAX_EVENT_SIZE", "0")],
                "MAX_EVENT_SIZE",
                "1 to 1073741824",
            ),
            (
                &[("MAX_EVENT_SIZE", "16MB")],
                "MAX_EVENT_SIZE",
                "1 to 1073741824",
            ),
            (
                &[("COMPRESSOR_TOPIC", "lz4")],
                "COMPRESSOR_TOPIC",
                "zlib, zstd",
            ),
            (
                &[("CIPHER_TOPIC", "rot13"), ("CIPHER_KEY", "")],
                "CIPHER_TOPIC",
                "aes-gcm",
            ),
            (
                &[("CIPHER_TOPIC", "aes-gcm")],
                "CIPHER_TOPIC",
                "CIPHER_KEY to be set",
            ),
            (&[("CIPHER_KEY", "")], "CIPHER_KEY", "16, 24 or 32-byte"),
        ] {
            let error = mapper(vars).expect_err(variable).to_string();
            assert!(
                error.contains(variable) && error.contains(accepted),
                "{error}"
            );
        }
    }

    #[test]
    fn a_bad_key_is_reported_by_its_length_never_its_value() {
        let env = Environment::from_vars([("SHOP_CIPHER_KEY", "c2hvcnQga2V5IGhlcmU=")]);
        let error = MapperSettings::default()
            .build(&env.with_name("shop"))
            .expect_err("a 14-byte key")
            .to_string();
        assert!(error.contains("SHOP_CIPHER_KEY"), "{error}");
        assert!(
            error.contains("20 characters") && error.contains("14 bytes"),
            "{error}"
        );
        assert!(!error.contains("c2hvcnQga2V5IGhlcmU"), "{error}");
    }
}
