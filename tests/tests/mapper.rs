//! The full mapper pipeline (transcode, compress, encrypt) through an
//! application: every serde shape round-trips through every combination of
//! codec, compressor and cipher, and damaged or foreign data is an error that
//! names the event, never a panic.

mod reliability_log;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use es_core::persistence::{
    Cipher, CipherError, Compressor, CompressorError, Mapper, StoredEvent, Transcoder,
    TranscoderError,
};
use es_core::prelude::*;
use es_core::serde_json::{Value, json};
use es_core::{Environment, Error};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unit;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meters(f64);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point(i32, i32, i32);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Shape {
    Empty,
    Circle(f64),
    Segment(Point, Point),
    Box {
        width: u32,
        height: u32,
        label: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Internally {
    Cash { amount: Decimal },
    Card { id: Uuid, expires: NaiveDate },
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", content = "c")]
pub enum Adjacently {
    Plain,
    Number(i64),
    Pair(String, bool),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Untagged {
    Id(Uuid),
    Count(u64),
    Words(Vec<String>),
    Named { name: String, at: DateTime<Utc> },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extra {
    pub colour: String,
    pub weight: u16,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nested {
    pub depth: u8,
    pub inner: Option<Box<Nested>>,
}

/// One value of every built-in kind serde's data model has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Everything {
    pub i8: i8,
    pub i16: i16,
    pub i32: i32,
    pub i64: i64,
    pub i128: i128,
    pub isize: isize,
    pub u8: u8,
    pub u16: u16,
    pub u32: u32,
    pub u64: u64,
    pub u128: u128,
    pub usize: usize,
    pub f32: f32,
    pub f64: f64,
    pub bool: bool,
    pub char: char,
    pub string: String,
    pub empty: String,
    pub some: Option<i32>,
    pub none: Option<String>,
    pub vec: Vec<Option<i32>>,
    pub array: [u16; 3],
    pub tuple: (u8, String, bool),
    pub unit: (),
    pub hash_map: HashMap<String, i64>,
    pub btree_map: BTreeMap<u32, String>,
    pub set: BTreeSet<char>,
    pub nested: Nested,
    pub shapes: Vec<Shape>,
    pub internally: Vec<Internally>,
    pub adjacently: Vec<Adjacently>,
    pub untagged: Vec<Untagged>,
    pub unit_struct: Unit,
    pub newtype: Meters,
    pub tuple_struct: Point,
    pub when: DateTime<Utc>,
    pub local: DateTime<FixedOffset>,
    pub date: NaiveDate,
    pub duration: Duration,
    pub id: Uuid,
    pub bytes: Vec<u8>,
    pub byte_buf: serde_bytes::ByteBuf,
    pub json: Value,
    pub price: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<u8>,
    #[serde(flatten)]
    pub extra: Extra,
}

fn everything() -> Everything {
    Everything {
        i8: i8::MIN,
        i16: i16::MIN,
        i32: i32::MIN,
        i64: i64::MIN,
        i128: i128::MIN,
        isize: isize::MAX,
        u8: u8::MAX,
        u16: u16::MAX,
        u32: u32::MAX,
        u64: u64::MAX,
        u128: u128::MAX,
        usize: usize::MAX,
        f32: -1.5e-7,
        f64: std::f64::consts::PI * 1e300,
        bool: true,
        char: '🦀',
        string: "quote \" backslash \\ newline \n tab \t nul \0 é 中文".into(),
        empty: String::new(),
        some: Some(-7),
        none: None,
        vec: vec![Some(1), None, Some(-1)],
        array: [0, 1, u16::MAX],
        tuple: (9, "nine".into(), false),
        unit: (),
        hash_map: HashMap::from([("a".into(), 1), ("b".into(), -2)]),
        btree_map: BTreeMap::from([(1, "one".into()), (u32::MAX, "max".into())]),
        set: BTreeSet::from(['x', 'y']),
        nested: Nested {
            depth: 0,
            inner: Some(Box::new(Nested {
                depth: 1,
                inner: None,
            })),
        },
        shapes: vec![
            Shape::Empty,
            Shape::Circle(0.5),
            Shape::Segment(Point(1, 2, 3), Point(-1, -2, -3)),
            Shape::Box {
                width: 3,
                height: 4,
                label: None,
            },
        ],
        internally: vec![
            Internally::Cash {
                amount: Decimal::from_str("-0.01").expect("decimal"),
            },
            Internally::Card {
                id: Uuid::from_u128(42),
                expires: NaiveDate::from_ymd_opt(2031, 12, 31).expect("date"),
            },
            Internally::Nothing,
        ],
        adjacently: vec![
            Adjacently::Plain,
            Adjacently::Number(-3),
            Adjacently::Pair("p".into(), true),
        ],
        untagged: vec![
            Untagged::Id(Uuid::from_u128(u128::MAX)),
            Untagged::Count(12),
            Untagged::Words(vec!["a".into(), "b".into()]),
            Untagged::Named {
                name: "n".into(),
                at: DateTime::from_timestamp(1_700_000_000, 5).expect("time"),
            },
        ],
        unit_struct: Unit,
        newtype: Meters(8848.86),
        tuple_struct: Point(i32::MAX, 0, i32::MIN),
        when: DateTime::from_timestamp(1_767_225_599, 999_999_999).expect("time"),
        local: DateTime::parse_from_rfc3339("2026-03-29T02:30:00.123+05:45").expect("time"),
        date: NaiveDate::from_ymd_opt(2024, 2, 29).expect("leap day"),
        duration: Duration::new(90_061, 7),
        id: Uuid::new_v4(),
        bytes: vec![0, 1, 254, 255],
        byte_buf: serde_bytes::ByteBuf::from(vec![0xde, 0xad, 0xbe, 0xef]),
        json: json!({
            "null": null, "t": true, "n": -12, "big": u64::MAX, "f": 0.25,
            "s": "x", "a": [1, "two", [3.5], {}], "o": {"deep": {"deeper": []}}
        }),
        price: Decimal::from_str("12345678901234567890.12").expect("decimal"),
        skipped: None,
        extra: Extra {
            colour: "teal".into(),
            weight: 500,
        },
    }
}

#[aggregate]
#[derive(Debug, Clone, PartialEq)]
pub struct Vault {
    contents: Vec<Everything>,
    balance: Decimal,
    last_audit: Option<DateTime<Utc>>,
    token: Untagged,
}

#[aggregate]
impl Vault {
    #[event("Opened")]
    pub fn open(first: Everything) -> Self {
        Vault {
            contents: vec![first],
            balance: Decimal::ZERO,
            last_audit: None,
            token: Untagged::Count(0),
        }
    }

    #[event("Deposited")]
    pub fn deposit(&mut self, amount: Decimal, at: DateTime<Utc>, memo: Value, token: Untagged) {
        self.balance += amount;
        self.last_audit = Some(at);
        if let Some(last) = self.contents.last_mut() {
            last.json = memo;
        }
        self.token = token;
    }

    #[event("Stored")]
    pub fn store(&mut self, item: Everything) {
        self.contents.push(item);
    }
}

const KEY_128: &str = "AAECAwQFBgcICQoLDA0ODw==";
const KEY_192: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYX";
const KEY_256: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// Every transcoder × compressor × cipher.
fn pipelines() -> Vec<(Transcoder, Option<Compressor>, Option<&'static str>)> {
    let mut all = Vec::new();
    for transcoder in [Transcoder::Json, Transcoder::MessagePack] {
        for compressor in [None, Some(Compressor::Zlib), Some(Compressor::Zstd)] {
            for key in [None, Some(KEY_128), Some(KEY_192), Some(KEY_256)] {
                all.push((transcoder, compressor, key));
            }
        }
    }
    all
}

fn cipher(key: &str) -> Cipher {
    Cipher::from_base64(key).expect("a valid key")
}

fn application(
    transcoder: Transcoder,
    compressor: Option<Compressor>,
    key: Option<&str>,
) -> Application {
    Application::builder()
        .in_memory()
        .snapshotting(true)
        .transcoder(transcoder)
        .compressor(compressor)
        .cipher(key.map(cipher))
        .build()
        .expect("application")
}

fn filled_vault() -> Vault {
    let mut vault = Vault::open(everything());
    vault.deposit(
        Decimal::from_str("1999.99").expect("decimal"),
        DateTime::from_timestamp(2_000_000_000, 123_456_789).expect("time"),
        json!({"memo": ["rent", 3, 2.5, null]}),
        Untagged::Named {
            name: "teller".into(),
            at: DateTime::UNIX_EPOCH,
        },
    );
    let mut second = everything();
    second.skipped = Some(3);
    second.some = None;
    second.untagged.reverse();
    vault.store(second);
    vault
}

#[test]
fn every_type_round_trips_through_every_pipeline() {
    for (transcoder, compressor, key) in pipelines() {
        let case = format!("{transcoder:?} {compressor:?} {key:?}");
        let app = application(transcoder, compressor, key);
        let mut vault = filled_vault();
        let expected = vault.clone();
        app.save(&mut vault).expect(&case);

        let replayed = app.repository().get::<Vault>(vault.id()).expect(&case);
        assert_eq!(replayed, expected, "{case}");
        assert_eq!(replayed.contents[1].skipped, Some(3), "{case}");

        app.take_snapshot::<Vault>(vault.id()).expect(&case);
        let from_snapshot = app.repository().get::<Vault>(vault.id()).expect(&case);
        assert_eq!(from_snapshot, expected, "{case}");

        // A reader that decodes by topic alone, through the erased path.
        let notifications = app.notification_log().select(1, 10).expect(&case);
        assert_eq!(notifications.len(), 3, "{case}");
        for (notification, original) in notifications.iter().zip(expected.pending_events()) {
            let any = app.mapper().to_any_event(&notification.event).expect(&case);
            assert_eq!(any.topic(), original.topic(), "{case}");
            assert_eq!(any.timestamp, original.timestamp, "{case}");
            let payload = any.downcast_ref::<VaultEvent>().expect(&case);
            assert!(same_event(payload, &original.payload), "{case}");
        }
    }
}

/// Event enums have no `PartialEq`: compare their fields.
fn same_event(a: &VaultEvent, b: &VaultEvent) -> bool {
    match (a, b) {
        (VaultEvent::Opened { first: a }, VaultEvent::Opened { first: b }) => a == b,
        (VaultEvent::Stored { item: a }, VaultEvent::Stored { item: b }) => a == b,
        (
            VaultEvent::Deposited {
                amount,
                at,
                memo,
                token,
            },
            VaultEvent::Deposited {
                amount: amount_b,
                at: at_b,
                memo: memo_b,
                token: token_b,
            },
        ) => amount == amount_b && at == at_b && memo == memo_b && token == token_b,
        _ => false,
    }
}

#[test]
fn what_is_stored_is_compressed_then_encrypted() {
    let event = &filled_vault().pending_events()[2].clone();
    let plain = Mapper::new(Transcoder::MessagePack)
        .to_stored_event(event)
        .expect("encode");
    let compressed = Mapper::new(Transcoder::MessagePack)
        .with_compressor(Compressor::Zstd)
        .to_stored_event(event)
        .expect("encode");
    assert_eq!(
        Compressor::Zstd
            .decompress(&compressed.state, usize::MAX)
            .expect("zstd"),
        plain.state
    );
    let sealed = Mapper::new(Transcoder::MessagePack)
        .with_compressor(Compressor::Zstd)
        .with_cipher(cipher(KEY_256))
        .to_stored_event(event)
        .expect("encode");
    let opened = cipher(KEY_256).decrypt(&sealed.state).expect("decrypt");
    assert_eq!(
        Compressor::Zstd
            .decompress(&opened, usize::MAX)
            .expect("zstd"),
        plain.state
    );
    assert!(!contains(&sealed.state, b"teal"));
    assert!(contains(&plain.state, b"teal"));

    let json = Mapper::new(Transcoder::Json)
        .to_stored_event(event)
        .expect("encode");
    assert!(plain.state.len() < json.state.len());
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn assert_names_the_event(error: &Error, stored: &StoredEvent) {
    match error {
        Error::Decode {
            originator_id,
            originator_version,
            topic,
            ..
        } => {
            assert_eq!(*originator_id, stored.originator_id);
            assert_eq!(*originator_version, stored.originator_version);
            assert_eq!(topic, &stored.topic);
        }
        other => panic!("expected Error::Decode, got {other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains(&stored.originator_id.to_string())
            && message.contains(&format!("version {}", stored.originator_version)),
        "{message}"
    );
}

#[test]
fn a_wrong_key_or_a_missing_one_is_an_error_naming_the_event() {
    let dir = tempfile::tempdir().expect("directory");
    let path = dir.path().join("vault.sqlite3");
    let writer = Application::builder()
        .sqlite(&path)
        .cipher(cipher(KEY_256))
        .build()
        .expect("writer");
    let mut vault = filled_vault();
    writer.save(&mut vault).expect("save");
    let stored = &writer.notification_log().select(1, 1).expect("log")[0].event;

    for (name, reader) in [
        ("another key", Some(cipher(KEY_128))),
        (
            "another key of the same length",
            Some(Cipher::from_base64(&Cipher::create_key().expect("key")).expect("key")),
        ),
        ("no key", None),
    ] {
        let app = Application::builder()
            .sqlite(&path)
            .cipher(reader)
            .build()
            .expect(name);
        let error = app.repository().get::<Vault>(vault.id()).expect_err(name);
        assert_names_the_event(&error, stored);
        let error = app.mapper().to_any_event(stored).expect_err(name);
        assert_names_the_event(&error, stored);
    }
    reliability_log::record(reliability_log::Trial {
        fault: "events read with a wrong cipher key, another key of the same length, or none",
        backend: "sqlite",
        trials: 3,
        checked: "each a decode error naming the event; no plaintext returned".into(),
    });
}

/// Every pipeline that can tell: a cipher's tag or a compressor's checksum.
fn checked_mappers() -> Vec<Mapper> {
    let mut mappers = Vec::new();
    for transcoder in [Transcoder::Json, Transcoder::MessagePack] {
        for compressor in [Compressor::Zlib, Compressor::Zstd] {
            mappers.push(Mapper::new(transcoder).with_compressor(compressor));
            mappers.push(
                Mapper::new(transcoder)
                    .with_compressor(compressor)
                    .with_cipher(cipher(KEY_192)),
            );
        }
        mappers.push(Mapper::new(transcoder).with_cipher(cipher(KEY_128)));
    }
    mappers
}

#[test]
fn a_tampered_byte_is_an_error_naming_the_event() {
    let vault = filled_vault();
    for mapper in checked_mappers() {
        for event in vault.pending_events() {
            let stored = mapper.to_stored_event(event).expect("encode");
            for index in [0, stored.state.len() / 2, stored.state.len() - 1] {
                let mut tampered = stored.clone();
                tampered.state[index] ^= 0x20;
                let error = mapper
                    .to_domain_event::<VaultEvent>(&tampered)
                    .expect_err(&format!("{mapper:?} byte {index}"));
                assert_names_the_event(&error, &tampered);
            }
        }
    }
    // With a cipher, every byte counts, ciphertext, nonce and tag alike.
    let mapper = Mapper::new(Transcoder::MessagePack).with_cipher(cipher(KEY_256));
    let stored = mapper
        .to_stored_event(&vault.pending_events()[1])
        .expect("encode");
    for index in 0..stored.state.len() {
        let mut tampered = stored.clone();
        tampered.state[index] ^= 0x01;
        let error = mapper
            .to_any_event(&tampered)
            .expect_err(&format!("byte {index}"));
        assert_names_the_event(&error, &tampered);
    }
    reliability_log::record(reliability_log::Trial {
        fault: "one byte of a stored event altered (every byte of an encrypted one)",
        backend: "any",
        trials: checked_mappers().len() * vault.pending_events().len() * 3 + stored.state.len(),
        checked: "each a decode error naming the event: AES-GCM's tag or the compressor's \
                  checksum caught every change"
            .into(),
    });
}

#[test]
fn a_truncated_row_is_an_error_naming_the_event() {
    let vault = filled_vault();
    for mapper in checked_mappers().into_iter().chain([
        Mapper::new(Transcoder::Json),
        Mapper::new(Transcoder::MessagePack),
    ]) {
        let stored = mapper
            .to_stored_event(&vault.pending_events()[0])
            .expect("encode");
        for len in [0, 1, 12, 28, stored.state.len() / 2, stored.state.len() - 1] {
            let mut truncated = stored.clone();
            truncated.state.truncate(len);
            let error = mapper
                .to_domain_event::<VaultEvent>(&truncated)
                .expect_err(&format!("{mapper:?} length {len}"));
            assert_names_the_event(&error, &truncated);
        }
    }
}

/// The stage's own error behind an [`Error::Decode`], if it is a `T`.
fn cause<T: std::error::Error + 'static>(error: &Error) -> Option<&T> {
    assert!(matches!(error, Error::Decode { .. }), "{error:?}");
    std::error::Error::source(error).and_then(|source| source.downcast_ref::<T>())
}

fn decode(mapper: &Mapper, stored: &StoredEvent) -> Error {
    mapper
        .to_domain_event::<VaultEvent>(stored)
        .expect_err("undecodable")
}

fn cut(stored: &StoredEvent, len: usize) -> StoredEvent {
    let mut cut = stored.clone();
    cut.state.truncate(len);
    cut
}

fn altered(stored: &StoredEvent, index: usize) -> StoredEvent {
    let mut altered = stored.clone();
    altered.state[index] ^= 0x20;
    altered
}

#[test]
fn a_wrong_key_a_truncated_row_and_an_altered_row_are_told_apart_by_type() {
    let vault = filled_vault();
    let event = &vault.pending_events()[2];
    let sealed = |key| {
        Mapper::new(Transcoder::MessagePack)
            .with_compressor(Compressor::Zstd)
            .with_cipher(cipher(key))
    };
    let stored = sealed(KEY_256).to_stored_event(event).expect("encode");

    let wrong_key = decode(&sealed(KEY_128), &stored);
    assert!(
        matches!(
            cause(&wrong_key),
            Some(CipherError::WrongKeyOrAltered {
                algorithm: "AES-128-GCM"
            })
        ),
        "{wrong_key}"
    );
    assert!(wrong_key.to_string().contains("CIPHER_KEY"), "{wrong_key}");
    let truncated = decode(&sealed(KEY_256), &cut(&stored, 20));
    assert!(
        matches!(
            cause(&truncated),
            Some(CipherError::Truncated {
                len: 20,
                needed: 28
            })
        ),
        "{truncated}"
    );
    // AES-GCM cannot tell a wrong key from changed bytes: both fail the tag.
    let tampered = decode(&sealed(KEY_256), &altered(&stored, 40));
    assert!(
        matches!(
            cause(&tampered),
            Some(CipherError::WrongKeyOrAltered { .. })
        ),
        "{tampered}"
    );

    // Without a cipher, the compressor's framing and checksum tell.
    let packed = Mapper::new(Transcoder::MessagePack).with_compressor(Compressor::Zstd);
    let stored = packed.to_stored_event(event).expect("encode");
    let truncated = decode(&packed, &cut(&stored, stored.state.len() - 1));
    assert!(
        matches!(cause(&truncated), Some(CompressorError::Truncated { .. })),
        "{truncated}"
    );
    let tampered = decode(&packed, &altered(&stored, stored.state.len() / 2));
    assert!(
        matches!(cause(&tampered), Some(CompressorError::Damaged { .. })),
        "{tampered}"
    );
    let strict = packed.clone().with_max_event_size(100);
    let too_large = decode(&strict, &stored);
    assert!(
        matches!(
            cause(&too_large),
            Some(CompressorError::TooLarge { limit: 100 })
        ),
        "{too_large}"
    );

    // Without either, the codec tells a row cut short from bytes that are not its own.
    let plain = Mapper::new(Transcoder::MessagePack);
    let stored = plain.to_stored_event(event).expect("encode");
    let truncated = decode(&plain, &cut(&stored, stored.state.len() / 2));
    assert!(
        matches!(cause(&truncated), Some(TranscoderError::Truncated { .. })),
        "{truncated}"
    );
    let mut extended = stored.clone();
    extended.state.push(0xc0);
    let extended = decode(&plain, &extended);
    assert!(
        matches!(
            cause(&extended),
            Some(TranscoderError::TrailingBytes { count: 1, .. })
        ),
        "{extended}"
    );
}

#[test]
fn a_pipeline_configured_unlike_the_writer_says_which_stage_disagrees() {
    let vault = filled_vault();
    let event = &vault.pending_events()[0];
    let plain = Mapper::new(Transcoder::Json);
    let packed = Mapper::new(Transcoder::Json).with_compressor(Compressor::Zlib);
    let sealed = Mapper::new(Transcoder::Json).with_cipher(cipher(KEY_256));

    let uncompressed = plain.to_stored_event(event).expect("encode");
    let error = decode(&packed, &uncompressed);
    assert!(
        matches!(
            cause(&error),
            Some(CompressorError::NotCompressed {
                compressor: Compressor::Zlib
            })
        ),
        "{error}"
    );
    assert!(error.to_string().contains("COMPRESSOR_TOPIC"), "{error}");

    let by_zstd = Mapper::new(Transcoder::Json)
        .with_compressor(Compressor::Zstd)
        .to_stored_event(event)
        .expect("encode");
    let error = decode(&packed, &by_zstd);
    assert!(
        matches!(cause(&error), Some(CompressorError::NotCompressed { .. })),
        "{error}"
    );

    // Encrypted, read with no key: random bytes to the codec.
    let encrypted = sealed.to_stored_event(event).expect("encode");
    let error = decode(&plain, &encrypted);
    assert!(
        matches!(cause(&error), Some(TranscoderError::Malformed { .. })),
        "{error}"
    );
    assert!(error.to_string().contains("CIPHER_KEY"), "{error}");

    // Written as MessagePack, read as JSON.
    let msgpack = Mapper::new(Transcoder::MessagePack)
        .to_stored_event(event)
        .expect("encode");
    let error = decode(&plain, &msgpack);
    assert!(
        matches!(cause(&error), Some(TranscoderError::Malformed { .. })),
        "{error}"
    );
}

#[test]
fn a_damaged_snapshot_is_an_error_naming_it() {
    let vault = filled_vault();
    let mapper = Mapper::new(Transcoder::MessagePack)
        .with_compressor(Compressor::Zlib)
        .with_cipher(cipher(KEY_256));
    let stored = mapper.snapshot_to_stored(&vault).expect("encode");
    let snapshot = mapper.stored_to_snapshot::<Vault>(&stored).expect("decode");
    assert_eq!(snapshot.into_aggregate().contents, vault.contents);
    let mut tampered = stored.clone();
    tampered.state[20] ^= 0x80;
    let error = mapper
        .stored_to_snapshot::<Vault>(&tampered)
        .expect_err("tampered");
    assert_names_the_event(&error, &tampered);
    let error = Mapper::new(Transcoder::MessagePack)
        .with_compressor(Compressor::Zlib)
        .with_cipher(cipher(KEY_128))
        .stored_to_snapshot::<Vault>(&stored)
        .expect_err("wrong key");
    assert_names_the_event(&error, &stored);
}

#[test]
fn the_environment_configures_the_pipeline_under_the_application_prefix() {
    let key = Cipher::create_key().expect("key");
    let env = Environment::from_vars([
        ("VAULT_TRANSCODER", "msgpack"),
        ("VAULT_COMPRESSOR_TOPIC", "zstd"),
        ("VAULT_CIPHER_KEY", key.as_str()),
        ("CIPHER_KEY", "ignored: the prefixed one comes first"),
        ("PERSISTENCE_MODULE", "memory"),
    ]);
    let app = Application::builder()
        .name("vault")
        .environment(env)
        .build()
        .expect("application");
    assert_eq!(app.mapper().transcoder(), Transcoder::MessagePack);
    assert_eq!(app.mapper().compressor(), Some(Compressor::Zstd));
    assert_eq!(
        app.mapper().cipher().map(Cipher::algorithm),
        Some("AES-256-GCM")
    );
    let mut vault = filled_vault();
    let expected = vault.clone();
    app.save(&mut vault).expect("save");
    assert_eq!(
        app.repository().get::<Vault>(vault.id()).expect("get"),
        expected
    );
    assert!(!format!("{:?}", app.mapper()).contains(&key));
}

#[test]
fn a_bad_key_in_the_environment_is_a_config_error_that_hides_it() {
    let secret = "bm90IGEgdmFsaWQga2V5IGF0IGFsbA=="; // 22 bytes
    let env = Environment::from_vars([("CIPHER_KEY", secret), ("PERSISTENCE_MODULE", "memory")]);
    let error = Application::builder()
        .environment(env)
        .build()
        .expect_err("a 22-byte key is refused");
    let shown = format!("{error} {error:?}");
    assert!(matches!(error, Error::Config { .. }), "{shown}");
    assert!(
        shown.contains("CIPHER_KEY") && shown.contains("22 bytes"),
        "{shown}"
    );
    assert!(
        !shown.contains(secret) && !shown.contains("bm90IGEgdmFsaWQ"),
        "{shown}"
    );
}

pub mod versioned {
    use es_core::prelude::*;
    use es_core::serde_json::{Value, json};

    #[aggregate]
    #[derive(Debug, Clone)]
    pub struct Badge {
        pub holder: Uuid,
        pub level: u8,
    }

    #[aggregate]
    impl Badge {
        #[event("Issued", version = 2, upcast = [issued_v1_to_v2])]
        pub fn issue(holder: Uuid, level: u8) -> Self {
            Badge { holder, level }
        }
    }

    fn issued_v1_to_v2(fields: &mut Value) {
        fields["level"] = json!(1);
    }
}

/// Upcast steps see stored fields as JSON values whichever codec wrote them:
/// MessagePack keeps field names and writes a `Uuid` as its string.
#[test]
fn events_stored_at_an_older_schema_upcast_through_the_binary_codec() {
    use versioned::{Badge, BadgeEvent};
    let holder = Uuid::new_v4();
    let id = Uuid::new_v4();
    let v1 = json!({"timestamp": "2020-01-01T00:00:00Z", "data": {"holder": holder}});
    for mapper in [
        Mapper::new(Transcoder::MessagePack),
        Mapper::new(Transcoder::MessagePack)
            .with_compressor(Compressor::Zlib)
            .with_cipher(cipher(KEY_128)),
    ] {
        let mut state = Transcoder::MessagePack.encode(&v1).expect("encode");
        if let Some(compressor) = mapper.compressor() {
            state = compressor.compress(&state).expect("compress");
        }
        if let Some(cipher) = mapper.cipher() {
            state = cipher.encrypt(&state).expect("encrypt");
        }
        let stored = StoredEvent {
            originator_id: id.into(),
            originator_version: 1,
            topic: "Badge.Issued".into(),
            state,
        };
        let event = mapper
            .to_domain_event::<BadgeEvent>(&stored)
            .expect("upcast");
        assert!(matches!(
            event.payload,
            BadgeEvent::Issued { holder: h, level: 1 } if h == holder
        ));

        // And the current version round-trips, version field and all.
        let badge = Badge::issue(holder, 4);
        let stored = mapper
            .to_stored_event(&badge.pending_events()[0])
            .expect("encode");
        let event = mapper
            .to_domain_event::<BadgeEvent>(&stored)
            .expect("decode");
        assert!(matches!(event.payload, BadgeEvent::Issued { level: 4, .. }));
    }
}

#[aggregate]
pub struct Parcel {
    label: String,
}

#[aggregate]
impl Parcel {
    #[event("Packed")]
    pub fn pack(label: String) -> Self {
        Parcel { label }
    }
}

#[test]
fn an_event_longer_than_the_limit_fails_its_save_before_anything_is_written() {
    for compressor in [None, Some(Compressor::Zlib)] {
        let app = Application::builder()
            .in_memory()
            .compressor(compressor)
            .max_event_size(4096)
            .build()
            .expect("app");
        let mut small = Parcel::pack("small".into());
        // Compressible or not, the limit is on the encoding, so that whatever is
        // written can be read back under the same limit.
        let mut large = Parcel::pack("x".repeat(5000));
        let error = app
            .save(&mut [&mut small, &mut large])
            .expect_err("too large");
        let message = error.to_string();
        assert!(matches!(error, Error::Encode { .. }), "{message}");
        assert!(
            message.contains(&large.id().to_string()) && message.contains("limit of 4096"),
            "{message}"
        );
        let too_large = std::error::Error::source(&error)
            .and_then(|source| source.downcast_ref::<es_core::persistence::TooLarge>())
            .expect("the source says by how much");
        assert!(too_large.size > 5000 && too_large.limit == 4096);
        assert_eq!(
            app.notification_log().max_id().expect("log"),
            None,
            "{compressor:?}"
        );
        assert_eq!(
            small.pending_events().len(),
            1,
            "nothing was taken from either"
        );
    }
    reliability_log::record(reliability_log::Trial {
        fault: "an event over MAX_EVENT_SIZE in a save of two aggregates, with and without compression",
        backend: "memory",
        trials: 2,
        checked: "Error::Encode naming the event and the limit; nothing written".into(),
    });
}

#[test]
fn state_that_decompresses_past_the_limit_is_a_decode_error_not_an_allocation() {
    let writer = Application::builder()
        .in_memory()
        .compressor(Compressor::Zstd)
        .build()
        .expect("app");
    let mut parcel = Parcel::pack("y".repeat(100_000));
    writer
        .save(&mut parcel)
        .expect("saved under the default limit");
    let stored = writer
        .recorder()
        .select_notifications(1, 1, None, &[])
        .expect("log")
        .remove(0)
        .event;
    let strict = Mapper::new(Transcoder::Json)
        .with_compressor(Compressor::Zstd)
        .with_max_event_size(10_000);
    let error = strict
        .to_any_event(&stored)
        .expect_err("decompresses past the limit");
    assert!(
        error.to_string().contains("more than 10000 bytes"),
        "{error}"
    );
    reliability_log::record(reliability_log::Trial {
        fault: "stored state that decompresses past MAX_EVENT_SIZE",
        backend: "any",
        trials: 1,
        checked: "a decode error; decompression stopped at the limit".into(),
    });
}
