//! What the fuzz targets check: one function per target, taking the fuzzer's
//! bytes, that panics only when es-core breaks one of the properties below.
//!
//! This file is also the module `es_fuzz` of the workspace test
//! `tests/tests/fuzz_corpus.rs`, which replays the committed corpora on the
//! stable toolchain; so it uses es-core's public API alone, no crate
//! attribute, and no dependency that the `tests` package lacks (axum, tokio
//! and tower, for the HTTP target).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use es_core::interface::http::LogServer;
use es_core::persistence::{
    ApplicationRecorder, Cipher, Compressor, Mapper, StoredEvent, TooLarge, Transcoder,
};
use es_core::prelude::*;
use es_core::serde_json::{Value, json};
use es_core::{DEFAULT_SECTION_SIZE, Section};

/// The aggregate whose stored events and snapshots are decoded: one field of
/// each common kind, an event with an older schema version, topic aliases,
/// and a snapshot schema with an upcast step.
#[aggregate]
#[derive(Clone, Debug)]
pub struct Parcel {
    label: String,
    items: Vec<u32>,
    grams: i64,
    note: Option<String>,
    tags: Vec<String>,
    seal: Option<(u8, Uuid)>,
}

#[aggregate(aliases = ["Crate"], version = 2, upcast = [parcel_v1_to_v2])]
impl Parcel {
    #[event("Packed")]
    pub fn pack(label: String, items: Vec<u32>) -> Self {
        Parcel {
            label,
            items,
            grams: 0,
            note: None,
            tags: Vec::new(),
            seal: None,
        }
    }

    #[event("Weighed", version = 2, upcast = [weighed_v1_to_v2])]
    pub fn weigh(&mut self, grams: i64) {
        self.grams = grams;
    }

    #[event("Noted", aliases = ["Parcel.Annotated"])]
    pub fn annotate(&mut self, note: Option<String>, tags: Vec<String>) {
        self.note = note;
        self.tags = tags;
    }

    #[event("Sealed")]
    pub fn seal(&mut self, code: u8, by: Uuid) {
        self.seal = Some((code, by));
    }

    #[event("Emptied")]
    pub fn empty(&mut self) {
        self.items.clear();
    }
}

/// Version 1 of `Weighed` stored whole kilograms. Written as user code must
/// be, for any stored value: it cannot fail.
fn weighed_v1_to_v2(fields: &mut Value) {
    let kilograms = fields.get("kg").and_then(Value::as_i64).unwrap_or(0);
    *fields = json!({ "grams": kilograms.saturating_mul(1000) });
}

/// Version 1 of the snapshot state had no tags.
fn parcel_v1_to_v2(state: &mut Value) {
    if let Some(fields) = state.as_object_mut() {
        fields.entry("tags").or_insert_with(|| json!([]));
    }
}

/// The topics a stored event of the decode target may carry, chosen by its
/// second byte: each event's, the aliases, both snapshot topics, and one that
/// nothing registers. Append only: the committed corpus indexes this list.
const TOPICS: &[&str] = &[
    "Parcel.Packed",
    "Parcel.Weighed",
    "Parcel.Noted",
    "Parcel.Sealed",
    "Parcel.Emptied",
    "Parcel.Annotated",
    "Crate.Packed",
    "Parcel.Snapshot",
    "Crate.Snapshot",
    "Parcel.Lost",
];

/// Fixed, so that the encrypted states in the committed corpus stay readable.
const KEY: [u8; 32] = [0x5a; 32];

/// One of the twelve mapper configurations, with a name for seed files.
struct Pipeline {
    name: String,
    mapper: Mapper,
    compressor: Option<Compressor>,
    cipher: Option<Cipher>,
}

impl Pipeline {
    /// Compresses and encrypts `encoded` as this pipeline's mapper would, for
    /// seeds the mapper cannot write itself (old schema versions).
    fn seal(&self, encoded: Vec<u8>) -> Vec<u8> {
        let compressed = match self.compressor {
            Some(compressor) => compressor.compress(&encoded).expect("compress"),
            None => encoded,
        };
        self.encrypt(compressed)
    }

    fn encrypt(&self, compressed: Vec<u8>) -> Vec<u8> {
        match &self.cipher {
            Some(cipher) => cipher.encrypt(&compressed).expect("encrypt"),
            None => compressed,
        }
    }
}

/// Every codec × {none, zlib, zstd} × {no cipher, AES-256-GCM}, chosen by the
/// decode target's first byte. Append only: the committed corpus indexes this list.
fn pipelines() -> &'static [Pipeline] {
    static PIPELINES: OnceLock<Vec<Pipeline>> = OnceLock::new();
    PIPELINES.get_or_init(|| {
        let cipher = Cipher::new(&KEY).expect("a 32-byte key");
        let mut pipelines = Vec::new();
        for (codec, transcoder) in [
            ("json", Transcoder::Json),
            ("msgpack", Transcoder::MessagePack),
        ] {
            for (packing, compressor) in [
                ("plain", None),
                ("zlib", Some(Compressor::Zlib)),
                ("zstd", Some(Compressor::Zstd)),
            ] {
                for (sealing, cipher) in [("clear", None), ("aes", Some(cipher.clone()))] {
                    let mut mapper = Mapper::new(transcoder);
                    if let Some(compressor) = compressor {
                        mapper = mapper.with_compressor(compressor);
                    }
                    if let Some(cipher) = cipher.clone() {
                        mapper = mapper.with_cipher(cipher);
                    }
                    pipelines.push(Pipeline {
                        name: format!("{codec}-{packing}-{sealing}"),
                        mapper,
                        compressor,
                        cipher,
                    });
                }
            }
        }
        pipelines
    })
}

fn stored(topic: &str, state: &[u8]) -> StoredEvent {
    StoredEvent {
        originator_id: OriginatorId::from(Uuid::from_u128(0x0f0f_1234)),
        originator_version: 3,
        topic: topic.to_owned(),
        state: state.to_vec(),
    }
}

fn debug(value: &impl std::fmt::Debug) -> String {
    format!("{value:?}")
}

/// Random bytes as the state of a stored event under one of twelve mappers
/// (first byte) and one of [`TOPICS`] (second byte). Decoding as `ParcelEvent`,
/// as whatever the topic registry says, and as a snapshot each return `Ok` or
/// `Err`; the typed and untyped decodings agree; and what decodes re-encodes
/// and decodes again to the same value.
pub fn decode_stored_event(data: &[u8]) {
    let [pipeline, topic, state @ ..] = data else {
        return;
    };
    let pipelines = pipelines();
    let mapper = &pipelines[usize::from(*pipeline) % pipelines.len()].mapper;
    let stored = stored(TOPICS[usize::from(*topic) % TOPICS.len()], state);

    let typed = mapper.to_domain_event::<ParcelEvent>(&stored);
    let any = mapper.to_any_event(&stored);
    match (&typed, &any) {
        (Ok(typed), Ok(any)) => {
            let payload = any
                .downcast_ref::<ParcelEvent>()
                .expect("an event of a Parcel topic decodes as a ParcelEvent");
            assert_eq!(debug(payload), debug(&typed.payload));
            assert_eq!(any.timestamp, typed.timestamp);
            assert_event_round_trips(mapper, typed);
        }
        (Err(typed), Err(any)) => {
            // Formatting an error walks its sources: it must not panic either.
            let _ = (typed.to_string(), any.to_string());
        }
        _ => panic!("typed and untyped decoding disagree: {typed:?} against {any:?}"),
    }

    match mapper.stored_to_snapshot::<Parcel>(&stored) {
        Ok(snapshot) => assert_snapshot_round_trips(mapper, snapshot),
        Err(error) => drop(error.to_string()),
    }
}

/// What was decoded encodes again, unless it is too large to: a state that
/// decompressed to nearly the limit may re-encode a little longer (a
/// timestamp's ".1" is written ".100").
fn reencoded(encoding: Result<StoredEvent, Error>) -> Option<StoredEvent> {
    match encoding {
        Ok(stored) => Some(stored),
        Err(Error::Encode { source, .. }) if source.is::<TooLarge>() => None,
        Err(error) => panic!("what was decoded does not encode again: {error}"),
    }
}

fn assert_event_round_trips(mapper: &Mapper, event: &DomainEvent<ParcelEvent>) {
    let Some(again) = reencoded(mapper.to_stored_event(event)) else {
        return;
    };
    assert_eq!(again.topic, event.topic());
    let back = mapper
        .to_domain_event::<ParcelEvent>(&again)
        .expect("a re-encoded event decodes");
    assert_eq!(back.timestamp, event.timestamp);
    assert_eq!(debug(&back.payload), debug(&event.payload));
}

fn assert_snapshot_round_trips(mapper: &Mapper, snapshot: Snapshot<Parcel>) {
    let parcel = snapshot.into_aggregate();
    let Some(again) = reencoded(mapper.snapshot_to_stored(&parcel)) else {
        return;
    };
    let back = mapper
        .stored_to_snapshot::<Parcel>(&again)
        .expect("a re-encoded snapshot decodes")
        .into_aggregate();
    assert_eq!(debug(&back), debug(&parcel));
    assert_eq!(
        (back.created_on(), back.modified_on()),
        (parcel.created_on(), parcel.modified_on())
    );
}

/// Random strings (lossy UTF-8, NUL included) as topics: looking one up in
/// the topic registry, through every decoding entry point, finds only what is
/// registered, and a topic used as a notification filter selects only events
/// of that topic, alike in memory and in SQLite.
pub fn topic(data: &[u8]) {
    let topic = String::from_utf8_lossy(data);
    let registered = es_core::topics::registered();
    let owner = registered
        .iter()
        .find(|(registered, _)| *registered == topic)
        .map(|(_, aggregate)| *aggregate);
    let mapper = &pipelines()[0].mapper;
    for state in valid_states() {
        let stored = stored(&topic, state);
        let typed = mapper.to_domain_event::<ParcelEvent>(&stored);
        let any = mapper.to_any_event(&stored);
        if typed.is_ok() || any.is_ok() {
            assert_eq!(owner, Some("Parcel"), "{topic:?} decoded");
        }
        if let (Ok(typed), Ok(any)) = (&typed, &any) {
            assert_eq!(typed.topic(), any.topic());
        }
        for error in [typed.err(), any.err()].into_iter().flatten() {
            let _ = error.to_string();
        }
        match mapper.stored_to_snapshot::<Parcel>(&stored) {
            Ok(_) => assert!(topic == "Parcel.Snapshot" || topic == "Crate.Snapshot"),
            Err(error) => drop(error.to_string()),
        }
    }

    let apps = apps();
    let expected: Vec<u64> = (1..)
        .zip(&apps.topics)
        .filter(|(_, logged)| **logged == topic)
        .map(|(id, _)| id)
        .collect();
    let memory = select_by_topic(apps.memory.recorder(), &topic);
    let sqlite = select_by_topic(apps.sqlite.recorder(), &topic);
    assert_eq!(memory, expected, "{topic:?} in memory");
    assert_eq!(sqlite, expected, "{topic:?} in SQLite");
}

fn select_by_topic(recorder: &dyn ApplicationRecorder, topic: &str) -> Vec<u64> {
    recorder
        .select_notifications(1, LOGGED, None, &[topic])
        .expect("selecting by any topic succeeds")
        .iter()
        .map(|notification| notification.id)
        .collect()
}

/// One plain JSON state for each kind of stored Parcel event and for its snapshot.
fn valid_states() -> &'static [Vec<u8>] {
    static STATES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    STATES.get_or_init(|| {
        let mapper = &pipelines()[0].mapper;
        let mut states: Vec<_> = sample_parcel()
            .pending_events()
            .iter()
            .map(|event| mapper.to_stored_event(event).expect("encode").state)
            .collect();
        states.push(
            mapper
                .snapshot_to_stored(&sample_parcel())
                .expect("encode")
                .state,
        );
        states
    })
}

/// A parcel that has had every event, each once.
fn sample_parcel() -> Parcel {
    let mut parcel = Parcel::pack("books, \"fragile\" ✓".into(), vec![7, 0, u32::MAX]);
    parcel.weigh(-1250);
    parcel.annotate(
        Some("leave at the door".into()),
        vec!["a".into(), String::new()],
    );
    parcel.seal(200, Uuid::from_u128(u128::MAX - 1));
    parcel.empty();
    parcel
}

/// How many notifications the section target's logs hold.
const LOGGED: usize = 25;

/// The same log of [`LOGGED`] events in memory and in SQLite, made once.
struct Apps {
    memory: Application,
    sqlite: Application,
    topics: Vec<String>,
}

impl Apps {
    fn topic_of(&self, id: u64) -> &str {
        usize::try_from(id)
            .ok()
            .and_then(|id| self.topics.get(id.checked_sub(1)?))
            .map_or("", String::as_str)
    }
}

fn apps() -> &'static Apps {
    static APPS: OnceLock<Apps> = OnceLock::new();
    APPS.get_or_init(|| {
        let mapper = &pipelines()[0].mapper;
        let mut events = Vec::new();
        while events.len() < LOGGED {
            let parcel = sample_parcel();
            for event in parcel.pending_events() {
                events.push(mapper.to_stored_event(event).expect("encode"));
            }
        }
        events.truncate(LOGGED);
        let memory = Application::builder()
            .in_memory()
            .build()
            .expect("an in-memory application");
        let sqlite = Application::builder()
            .sqlite(":memory:")
            .build()
            .expect("an in-memory SQLite application");
        for app in [&memory, &sqlite] {
            // One event per insert, so that both stores number them 1 to LOGGED.
            for event in &events {
                app.recorder()
                    .insert_events(std::slice::from_ref(event))
                    .expect("insert");
            }
            assert_eq!(
                app.notification_log().max_id().expect("max id"),
                Some(LOGGED as u64)
            );
        }
        let topics = events.into_iter().map(|event| event.topic).collect();
        Apps {
            memory,
            sqlite,
            topics,
        }
    })
}

/// Random strings as notification-log section ids (`"start,stop"`): every
/// answer is `Ok` or `Err`, alike in memory and in SQLite; an `Ok` is for a
/// well-formed id, holds exactly the notifications from `start` (at least 1)
/// up to `stop`, the end of the log or the section size, whichever comes
/// first (none if `stop` is below `start`), and names them and the next
/// section rightly. Nothing is allocated in proportion to
/// the numbers in the id (the fuzzer's `-malloc_limit_mb` would catch it).
pub fn section_id(data: &[u8]) {
    let section_id = String::from_utf8_lossy(data);
    let apps = apps();
    let memory = apps.memory.notification_log().section(&section_id);
    let sqlite = apps.sqlite.notification_log().section(&section_id);
    match (memory, sqlite) {
        (Ok(memory), Ok(sqlite)) => {
            assert_eq!(memory, sqlite, "the backends answer {section_id:?} alike");
            assert_section_is_right(&section_id, &memory);
        }
        (Err(memory), Err(sqlite)) => {
            assert_eq!(memory.to_string(), sqlite.to_string());
            assert!(matches!(memory, Error::InvalidSectionId { .. }), "{memory}");
        }
        (memory, sqlite) => {
            panic!("the backends disagree on {section_id:?}: {memory:?} against {sqlite:?}")
        }
    }
}

fn assert_section_is_right(section_id: &str, section: &Section) {
    let (start, stop) = section_id
        .split_once(',')
        .and_then(|(start, stop)| {
            Some((
                start.trim().parse::<i64>().ok()?,
                stop.trim().parse::<i64>().ok()?,
            ))
        })
        .unwrap_or_else(|| panic!("{section_id:?} is not a section id, yet it was answered"));
    // As the Python library reads it: from 1 at the least, as many as the
    // numbers span but no more than the section size, none if stop < start.
    let start = start.max(1);
    let span = i128::from(stop) - i128::from(start) + 1;
    let asked = usize::try_from(span.clamp(0, DEFAULT_SECTION_SIZE as i128)).expect("small");
    let start = start.unsigned_abs();
    let expected: Vec<u64> = (start..=LOGGED as u64).take(asked).collect();
    let ids: Vec<u64> = section.items.iter().map(|item| item.id).collect();
    assert_eq!(ids, expected, "{section_id:?}");
    for item in &section.items {
        assert_eq!(item.event.topic, apps().topic_of(item.id));
    }
    match (ids.first(), ids.last()) {
        (Some(first), Some(last)) => {
            assert_eq!(
                section.id.as_deref(),
                Some(format!("{first},{last}").as_str())
            );
            let next =
                (ids.len() == asked).then(|| format!("{},{}", last + 1, last + asked as u64));
            assert_eq!(section.next_id, next, "{section_id:?}");
        }
        _ => assert_eq!((&section.id, &section.next_id), (&None, &None)),
    }
}

/// The application the HTTP target's routers serve, and its name.
const SERVED: &str = "parcels";

/// The token of the HTTP target's router for readers.
const FUZZ_TOKEN: &str = "fuzz-reader-token";

/// A runtime and two routers over one small in-memory log (three
/// originators: a UUID, a text id and text that spells a UUID), one open
/// and one for readers with a token and a rate limit, made once.
struct Http {
    runtime: tokio::runtime::Runtime,
    open: axum::Router,
    for_readers: axum::Router,
}

fn http() -> &'static Http {
    static HTTP: OnceLock<Http> = OnceLock::new();
    HTTP.get_or_init(|| {
        let app = Arc::new(
            Application::builder()
                .name(SERVED)
                .in_memory()
                .build()
                .expect("an in-memory application"),
        );
        let ids = [
            OriginatorId::from(Uuid::from_u128(0x0e1a_8a4d_7c6b_4a5e_9f3b_2c1d_0e9f_8a7b)),
            OriginatorId::text("parcel-1").expect("a text id"),
            OriginatorId::text("5a0cf8d2e4b14c6f8e3a9b7d1c2e4f60").expect("a text id"),
        ];
        for (index, id) in ids.iter().enumerate() {
            let events: Vec<StoredEvent> = (1..=index as u64 + 2)
                .map(|version| StoredEvent {
                    originator_id: id.clone(),
                    originator_version: version,
                    topic: TOPICS[index].to_owned(),
                    state: vec![version as u8; 3],
                })
                .collect();
            app.recorder().insert_events(&events).expect("insert");
        }
        // No long poll: an input asking for a wait would stall the fuzzer.
        let server = || LogServer::new([Arc::clone(&app)]).longest_wait(Duration::ZERO);
        Http {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime"),
            open: server().router().expect("a router"),
            for_readers: server()
                .readers([FUZZ_TOKEN])
                .rate_limit(u32::MAX, u32::MAX)
                .router()
                .expect("a router"),
        }
    })
}

/// The headers the HTTP target may send, picked by the byte after the
/// request target's line.
const HEADERS: [&str; 4] = [
    "if-none-match",
    "authorization",
    "accept",
    "x-forwarded-for",
];

/// Random bytes as a GET to the log server's routes: the bytes up to the
/// first newline are the request target (path and query; a `/` is put in
/// front if they lack one), and after it, the first byte picks a header of
/// [`HEADERS`] and the router (odd: the one for readers), the rest is the
/// header's value. A target or value that HTTP cannot carry is dropped, as
/// the server's HTTP parser would refuse it before any route saw it.
///
/// The answer is never a 5xx nor a panic; every answer but a 2xx or a 304
/// is JSON with an `"error"` string, and every 200 is JSON.
pub fn http_request(data: &[u8]) {
    let (target, header) = match data.iter().position(|&byte| byte == b'\n') {
        Some(end) => (&data[..end], data.get(end + 1..)),
        None => (data, None),
    };
    let mut uri = Vec::with_capacity(target.len() + 1);
    if target.first() != Some(&b'/') {
        uri.push(b'/');
    }
    uri.extend_from_slice(target);
    let Ok(uri) = axum::http::Uri::try_from(uri) else {
        return;
    };
    let mut request = axum::http::Request::get(uri);
    let mut for_readers = false;
    if let Some((&pick, value)) = header.and_then(<[u8]>::split_first) {
        let Ok(value) = axum::http::HeaderValue::from_bytes(value) else {
            return;
        };
        request = request.header(HEADERS[usize::from(pick) % HEADERS.len()], value);
        for_readers = pick % 2 == 1;
    }
    let Ok(request) = request.body(axum::body::Body::empty()) else {
        return;
    };
    let http = http();
    let router = if for_readers {
        &http.for_readers
    } else {
        &http.open
    };
    let shown = String::from_utf8_lossy(data);
    let (status, body) = http.runtime.block_on(async {
        use tower::ServiceExt as _;
        let response = router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_else(|e| panic!("{shown:?}: the body does not read: {e}"));
        (status, body)
    });
    assert!(
        !status.is_server_error(),
        "{shown:?}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    if status.is_success() || status == axum::http::StatusCode::NOT_MODIFIED {
        if status == axum::http::StatusCode::OK {
            es_core::serde_json::from_slice::<Value>(&body)
                .unwrap_or_else(|e| panic!("{shown:?}: a 200 that is not JSON ({e})"));
        }
        return;
    }
    let error: Value = es_core::serde_json::from_slice(&body).unwrap_or_else(|e| {
        panic!(
            "{shown:?}: a {status} whose body is not JSON ({e}): {}",
            String::from_utf8_lossy(&body)
        )
    });
    assert!(
        error["error"].is_string(),
        "{shown:?}: a {status} without an error: {error}"
    );
}

/// Seed inputs for each target: `(target, file name, bytes)`. For the decode
/// target, a valid encoding of every event and of a snapshot, at the current
/// and the previous schema version, under each of the twelve mappers.
pub fn seeds() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let topic_index = |topic: &str| {
        let index = TOPICS
            .iter()
            .position(|known| *known == topic)
            .expect("a listed topic");
        u8::try_from(index).expect("few topics")
    };
    let parcel = sample_parcel();
    let timestamp = "2026-03-01T12:30:00.123456Z";
    let old_weighed = json!({ "timestamp": timestamp, "data": { "kg": 3 } });
    let old_snapshot = json!({
        "created_on": timestamp,
        "modified_on": timestamp,
        "state": { "label": "x", "items": [1], "grams": 5, "note": null, "seal": null },
    });
    for (index, pipeline) in pipelines().iter().enumerate() {
        let index = u8::try_from(index).expect("twelve pipelines");
        let mut add = |what: &str, topic: &str, state: Vec<u8>| {
            let mut input = vec![index, topic_index(topic)];
            input.extend(state);
            seeds.push((
                "decode_stored_event",
                format!("seed-{}-{what}", pipeline.name),
                input,
            ));
        };
        for event in parcel.pending_events() {
            let stored = pipeline.mapper.to_stored_event(event).expect("encode");
            let alias = match stored.topic.as_str() {
                "Parcel.Packed" => Some("Crate.Packed"),
                "Parcel.Noted" => Some("Parcel.Annotated"),
                _ => None,
            };
            if let Some(alias) = alias {
                add(&alias.replace('.', "-"), alias, stored.state.clone());
            }
            add(&stored.topic.replace('.', "-"), &stored.topic, stored.state);
        }
        let snapshot = pipeline.mapper.snapshot_to_stored(&parcel).expect("encode");
        add("Parcel-Snapshot", &snapshot.topic, snapshot.state);
        if pipeline.compressor == Some(Compressor::Zstd) {
            add("zstd-bomb", "Parcel.Packed", pipeline.encrypt(zstd_bomb()));
        }
        let transcoder = pipeline.mapper.transcoder();
        for (what, topic, value) in [
            ("Parcel-Weighed-v1", "Parcel.Weighed", &old_weighed),
            ("Crate-Snapshot-v1", "Crate.Snapshot", &old_snapshot),
        ] {
            let encoded = transcoder.encode(value).expect("encode");
            add(what, topic, pipeline.seal(encoded));
        }
    }

    let mut topics: Vec<String> = es_core::topics::registered()
        .into_iter()
        .map(|(topic, _)| topic.to_owned())
        .collect();
    topics.extend(
        [
            "",
            "Parcel",
            "Parcel.",
            ".Packed",
            "parcel.packed",
            "Parcel.Packed\0",
            "Parcel.Snapshot",
            "Crate.Snapshot",
            "Parcel.Packed ",
            "Parcel.Pаcked",
        ]
        .map(String::from),
    );
    for (index, topic) in topics.into_iter().enumerate() {
        seeds.push(("topic", format!("seed-{index:02}"), topic.into_bytes()));
    }

    for (index, section_id) in [
        "1,10",
        "11,20",
        "21,30",
        "1,1",
        "25,25",
        "26,100",
        " 3 , 3 ",
        "+1,+2",
        "0,10",
        "5,4",
        "1,18446744073709551615",
        "18446744073709551615,18446744073709551615",
        "1,18446744073709551616",
        "-1,3",
        "a,b",
        "",
        "1",
        ",",
        "1,10,20",
        "1;10",
        "1,\u{3000}9",
    ]
    .into_iter()
    .enumerate()
    {
        seeds.push((
            "section_id",
            format!("seed-{index:02}"),
            section_id.as_bytes().to_vec(),
        ));
    }

    for (index, request) in [
        "/parcels",
        "/parcels/notifications/1,10",
        "/parcels/notifications/1,0",
        "/parcels/notifications/1,99999999999999999999999",
        "/parcels/notifications/%FF%FE,%00",
        "/parcels/notifications?start=18446744073709551615&limit=18446744073709551616&topics=,,,",
        "/parcels/notifications?start=1&wait_ms=60000&topics=Parcel.Packed&start=2",
        "/parcels/aggregates/0e1a8a4d7c6b4a5e9f3b2c1d0e9f8a7b?gt=1&lte=0&limit=1&desc=true",
        "/parcels/aggregates/5a0cf8d2e4b14c6f8e3a9b7d1c2e4f60?text=true&desc=1",
        "/parcels/aggregates/parcel%2D1?gt=-1",
        "/parcels/aggregates/%E2%9C%93%20%00?limit=%",
        "//notifications//",
        "/%70arcels/notifications/1,10?%FF=%FE&&=&a[b]=c",
        "/p\u{e4}rcels/\u{1f4e6}",
        "/parcels/notifications/1,10\n\0\"1,10\"",
        "/parcels/notifications/1,10\n\x01Bearer fuzz-reader-token",
        "/parcels/aggregates/parcel-1\n\x03Bearer \x7f",
    ]
    .into_iter()
    .enumerate()
    {
        seeds.push((
            "http_request",
            format!("seed-{index:02}"),
            request.as_bytes().to_vec(),
        ));
    }
    seeds
}

/// A zstd frame of 4 KB that expands to 125 MiB of spaces: a frame header
/// (magic number, no flags, a 128 KiB window) and 1000 RLE blocks, each 4
/// bytes that stand for 128 KiB. Made by hand: compressing 125 MiB would make
/// the corpus replay slow.
fn zstd_bomb() -> Vec<u8> {
    const BLOCKS: usize = 1000;
    const RLE: u32 = 1 << 1;
    const LAST: u32 = 1;
    let block = |last: bool| {
        let header = ((128 * 1024) << 3) | RLE | if last { LAST } else { 0 };
        let [a, b, c, _] = header.to_le_bytes();
        [a, b, c, b' ']
    };
    let mut frame = vec![0x28, 0xb5, 0x2f, 0xfd, 0x00, (17 - 10) << 3];
    for index in 0..BLOCKS {
        frame.extend(block(index == BLOCKS - 1));
    }
    frame
}

/// The names of the targets, as the corpus directories are named.
pub const TARGETS: [&str; 4] = ["decode_stored_event", "topic", "section_id", "http_request"];

/// The check function of the target `name`.
pub fn target(name: &str) -> fn(&[u8]) {
    match name {
        "decode_stored_event" => decode_stored_event,
        "topic" => topic,
        "section_id" => section_id,
        "http_request" => http_request,
        _ => panic!("no fuzz target {name:?}"),
    }
}
