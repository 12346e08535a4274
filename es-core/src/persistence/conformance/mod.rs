//! One conformance suite for every recorder, written once over the recorder
//! traits. A backend's tests get every case with one line:
//!
//! ```
//! use es_core::persistence::{MemoryRecorder, conformance::Fixture};
//!
//! es_core::recorder_conformance_tests!(|| Fixture::new(MemoryRecorder::new()));
//! ```
//!
//! Each case takes a fresh, empty recorder. Enabled by the `conformance` feature.
//!
//! A fixture may also return `Option<Fixture>`: `None` skips the case, for a
//! backend whose server is not there (the fixture says so when it decides).

use std::any::Any;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use uuid::Uuid;

use crate::domain::id::OriginatorId;
use crate::error::Error;

use super::recorder::{AggregateRecorder, ApplicationRecorder, EventQuery, ProcessRecorder};
use super::stored_event::{Notification, StoredEvent};

mod listen;
mod tracking;
pub use listen::*;
pub use tracking::*;

/// A fresh recorder for one case, with whatever must live as long as it (a
/// temporary directory, say).
pub struct Fixture {
    /// The recorder under test.
    pub recorder: Arc<dyn ApplicationRecorder>,
    /// Whether the recorder keeps text ids; if not, the text-id cases check
    /// that it refuses them with [`Error::InvalidId`] instead.
    pub text_ids: bool,
    /// How to make the recorder skip notification ids, if it ever does; see [`Fixture::with_gaps`].
    pub gaps: Option<GapMaker>,
    /// The same recorder as a process recorder, for the tracking cases; see
    /// [`Fixture::process`].
    pub process: Option<Arc<dyn ProcessRecorder>>,
    _keep_alive: Option<Box<dyn Any + Send + Sync>>,
}

impl Fixture {
    /// A fixture around `recorder`.
    pub fn new(recorder: impl ApplicationRecorder + 'static) -> Self {
        Fixture {
            recorder: Arc::new(recorder),
            text_ids: true,
            gaps: None,
            process: None,
            _keep_alive: None,
        }
    }

    /// A fixture around a process recorder: every case of
    /// [`recorder_conformance_tests!`](crate::recorder_conformance_tests),
    /// and those of
    /// [`process_recorder_conformance_tests!`](crate::process_recorder_conformance_tests).
    pub fn process(recorder: impl ProcessRecorder + 'static) -> Self {
        let process: Arc<dyn ProcessRecorder> = Arc::new(recorder);
        Fixture {
            recorder: Arc::clone(&process) as Arc<dyn ApplicationRecorder>,
            text_ids: true,
            gaps: None,
            process: Some(process),
            _keep_alive: None,
        }
    }

    /// Marks the recorder as one that keeps UUID ids only (a PostgreSQL store
    /// with `uuid` columns): the text-id cases then check that every text id
    /// is refused with an [`Error::InvalidId`] naming it, and nothing written.
    pub fn uuid_ids_only(mut self) -> Self {
        self.text_ids = false;
        self
    }

    /// Keeps `guard` alive as long as the fixture.
    pub fn keeping(mut self, guard: impl Any + Send + Sync) -> Self {
        self._keep_alive = Some(Box::new(guard));
        self
    }
}

/// Generates one `#[test]` per conformance case, each calling `$fixture` for a
/// fresh recorder.
#[macro_export]
macro_rules! recorder_conformance_tests {
    ($fixture:expr) => {
        $crate::recorder_conformance_tests!(@cases $fixture;
            inserted_events_are_selected_back,
            a_taken_version_is_a_conflict_and_writes_nothing,
            a_multi_aggregate_insert_is_all_or_nothing,
            an_empty_insert_is_a_no_op,
            select_events_honours_every_combination_of_filters,
            notification_ids_increase_and_selects_honour_start_limit_stop,
            notifications_filter_by_topic,
            max_notification_id_on_empty_and_filled_stores,
            large_and_binary_states_round_trip,
            concurrent_writers_lose_nothing_and_leave_no_gaps,
            racing_writers_of_one_version_conflict_exactly_once,
            a_follower_sees_every_event_once_and_in_order_while_writers_write,
            text_ids_are_inserted_and_selected_back_beside_uuids,
            a_taken_version_of_a_text_id_is_a_conflict_naming_it,
            notifications_give_text_ids_back,
            text_ids_are_exact_case_and_space_sensitive,
            visit_events_visits_what_select_events_selects,
            visit_events_stops_at_the_visitors_error,
            visit_from_snapshot_starts_after_the_latest_snapshot_at_or_below_the_version,
            a_listener_hears_a_commit_made_after_it,
            a_subscription_from_any_id_hands_out_each_later_notification_once,
        );
    };
    (@cases $fixture:expr; $($case:ident,)+) => {
        $(
            #[test]
            fn $case() {
                $crate::persistence::conformance::run($fixture(), $crate::persistence::conformance::$case);
            }
        )+
    };
}

/// Runs `case` on `fixture`, or nothing if the fixture is `None`. What
/// [`recorder_conformance_tests!`](crate::recorder_conformance_tests) calls.
///
/// ```
/// use es_core::persistence::{MemoryRecorder, conformance::{self, Fixture}};
/// conformance::run(Fixture::new(MemoryRecorder::new()), conformance::an_empty_insert_is_a_no_op);
/// conformance::run(None, conformance::an_empty_insert_is_a_no_op); // skipped
/// ```
pub fn run(fixture: impl Into<Option<Fixture>>, case: fn(Fixture)) {
    if let Some(fixture) = fixture.into() {
        case(fixture);
    }
}

/// A fresh UUID id, as aggregates get by default.
fn uuid_id() -> OriginatorId {
    Uuid::new_v4().into()
}

fn event(originator_id: impl Into<OriginatorId>, version: u64, topic: &str) -> StoredEvent {
    StoredEvent {
        originator_id: originator_id.into(),
        originator_version: version,
        topic: topic.to_owned(),
        state: format!("{{\"v\":{version}}}").into_bytes(),
    }
}

fn versions(events: &[StoredEvent]) -> Vec<u64> {
    events.iter().map(|e| e.originator_version).collect()
}

/// Events inserted are selected back whole, in version order, and only the
/// originator's own.
pub fn inserted_events_are_selected_back(fixture: Fixture) {
    let recorder = &fixture.recorder;
    let (a, b) = (uuid_id(), uuid_id());
    let batch = [
        event(&a, 1, "A.Created"),
        event(&a, 2, "A.Changed"),
        event(&b, 1, "B.Created"),
    ];
    let ids = recorder.insert_events(&batch).expect("insert");
    assert_eq!(ids.len(), 3, "one notification id per event");
    assert_eq!(
        recorder
            .select_events(&a, EventQuery::new())
            .expect("select"),
        batch[..2]
    );
    assert_eq!(
        recorder
            .select_events(&b, EventQuery::new())
            .expect("select"),
        batch[2..]
    );
    assert!(
        recorder
            .select_events(&uuid_id(), EventQuery::new())
            .expect("select")
            .is_empty()
    );
}

/// A version already recorded is a conflict, and nothing of the failing batch is written.
pub fn a_taken_version_is_a_conflict_and_writes_nothing(fixture: Fixture) {
    let recorder = &fixture.recorder;
    let id = uuid_id();
    recorder
        .insert_events(&[event(&id, 1, "T")])
        .expect("first insert");
    let error = recorder
        .insert_events(&[event(&id, 2, "T"), event(&id, 1, "T")])
        .expect_err("version 1 is taken");
    assert!(
        matches!(&error, crate::Error::Conflict { originator_id, originator_version: 1 } if *originator_id == id),
        "{error}"
    );
    assert_eq!(
        versions(
            &recorder
                .select_events(&id, EventQuery::new())
                .expect("select")
        ),
        [1]
    );
    let error = recorder
        .insert_events(&[event(&id, 2, "T"), event(&id, 2, "T")])
        .expect_err("a batch that repeats a version");
    assert!(error.is_conflict(), "{error}");
    assert_eq!(recorder.max_notification_id().expect("max"), Some(1));
    recorder
        .insert_events(&[event(&id, 2, "T")])
        .expect("the next version still works");
}

/// A batch over several aggregates is written whole or not at all.
pub fn a_multi_aggregate_insert_is_all_or_nothing(fixture: Fixture) {
    let recorder = &fixture.recorder;
    let (a, b) = (uuid_id(), uuid_id());
    recorder
        .insert_events(&[event(&b, 1, "T")])
        .expect("insert");
    let error = recorder
        .insert_events(&[event(&a, 1, "T"), event(&a, 2, "T"), event(&b, 1, "T")])
        .expect_err("b's version 1 is taken");
    assert!(error.is_conflict());
    assert!(
        recorder
            .select_events(&a, EventQuery::new())
            .expect("select")
            .is_empty(),
        "a was not written"
    );
    assert_eq!(recorder.max_notification_id().expect("max"), Some(1));
}

/// Inserting nothing writes nothing and is no error.
pub fn an_empty_insert_is_a_no_op(fixture: Fixture) {
    assert!(
        fixture
            .recorder
            .insert_events(&[])
            .expect("insert")
            .is_empty()
    );
    assert_eq!(fixture.recorder.max_notification_id().expect("max"), None);
}

/// `select_events` with every combination of `gt`, `lte`, `desc` and `limit`
/// gives what the same filters give on a plain list.
pub fn select_events_honours_every_combination_of_filters(fixture: Fixture) {
    let recorder = &fixture.recorder;
    let id = uuid_id();
    let all: Vec<StoredEvent> = (1..=10).map(|v| event(&id, v, "T")).collect();
    recorder.insert_events(&all).expect("insert");
    recorder
        .insert_events(&[event(uuid_id(), 1, "T")])
        .expect("another originator");
    let bounds = [None, Some(0), Some(1), Some(4), Some(10), Some(12)];
    let limits = [None, Some(0), Some(1), Some(3), Some(20)];
    for gt in bounds {
        for lte in bounds {
            for desc in [false, true] {
                for limit in limits {
                    let query = EventQuery {
                        gt,
                        lte,
                        desc,
                        limit,
                    };
                    let mut expected: Vec<u64> = (1..=10)
                        .filter(|v| gt.is_none_or(|gt| *v > gt) && lte.is_none_or(|lte| *v <= lte))
                        .collect();
                    if desc {
                        expected.reverse();
                    }
                    expected.truncate(limit.unwrap_or(usize::MAX));
                    let got = recorder.select_events(&id, query).expect("select");
                    assert_eq!(versions(&got), expected, "{query:?}");
                }
            }
        }
    }
}

fn ids(notifications: &[Notification]) -> Vec<u64> {
    notifications.iter().map(|n| n.id).collect()
}

/// Notification ids increase with each insert, and `start`, `limit` and `stop`
/// select by id, inclusively.
pub fn notification_ids_increase_and_selects_honour_start_limit_stop(fixture: Fixture) {
    let recorder = &fixture.recorder;
    let mut all_ids = Vec::new();
    for _ in 0..4 {
        let id = uuid_id();
        all_ids.extend(
            recorder
                .insert_events(&[event(&id, 1, "T"), event(&id, 2, "T")])
                .expect("insert"),
        );
    }
    assert!(
        all_ids.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increase: {all_ids:?}"
    );
    let listed = recorder
        .select_notifications(1, 100, None, &[])
        .expect("select");
    assert_eq!(ids(&listed), all_ids);
    let first = all_ids[0];
    let third = all_ids[2];
    let sixth = all_ids[5];
    assert_eq!(
        ids(&recorder
            .select_notifications(third, 2, None, &[])
            .expect("select")),
        all_ids[2..4]
    );
    assert_eq!(
        ids(&recorder
            .select_notifications(third, 100, Some(sixth), &[])
            .expect("select")),
        all_ids[2..6]
    );
    assert_eq!(
        ids(&recorder
            .select_notifications(first, 0, None, &[])
            .expect("select")),
        Vec::<u64>::new()
    );
    assert!(
        recorder
            .select_notifications(all_ids[7] + 1, 10, None, &[])
            .expect("select")
            .is_empty()
    );
    assert!(
        recorder
            .select_notifications(sixth, 10, Some(third), &[])
            .expect("select")
            .is_empty()
    );
    let notification = &listed[1];
    assert_eq!(notification.event.originator_version, 2);
    assert_eq!(notification.event.state, b"{\"v\":2}");
}

/// A topic filter keeps only the named topics, and `limit` counts only those.
pub fn notifications_filter_by_topic(fixture: Fixture) {
    let recorder = &fixture.recorder;
    let topics = ["A", "B", "C", "A", "B", "A"];
    let inserted: Vec<u64> = topics
        .iter()
        .flat_map(|topic| {
            recorder
                .insert_events(&[event(uuid_id(), 1, topic)])
                .expect("insert")
        })
        .collect();
    let of = |wanted: &[&str]| -> Vec<u64> {
        topics
            .iter()
            .zip(&inserted)
            .filter(|(topic, _)| wanted.contains(topic))
            .map(|(_, id)| *id)
            .collect()
    };
    assert_eq!(
        ids(&recorder
            .select_notifications(1, 100, None, &["A"])
            .expect("select")),
        of(&["A"])
    );
    assert_eq!(
        ids(&recorder
            .select_notifications(1, 100, None, &["A", "C"])
            .expect("select")),
        of(&["A", "C"])
    );
    assert_eq!(
        ids(&recorder
            .select_notifications(1, 2, None, &["A"])
            .expect("select")),
        of(&["A"])[..2]
    );
    assert!(
        recorder
            .select_notifications(1, 100, None, &["Z"])
            .expect("select")
            .is_empty()
    );
    let stop = inserted[3];
    assert_eq!(
        ids(&recorder
            .select_notifications(2, 100, Some(stop), &["A", "B"])
            .expect("select")),
        inserted[1..=1]
            .iter()
            .chain(&inserted[3..=3])
            .copied()
            .collect::<Vec<_>>()
    );
}

/// `max_notification_id` is `None` on an empty store, then the highest id.
pub fn max_notification_id_on_empty_and_filled_stores(fixture: Fixture) {
    let recorder = &fixture.recorder;
    assert_eq!(recorder.max_notification_id().expect("max"), None);
    let ids = recorder
        .insert_events(&[event(uuid_id(), 1, "T"), event(uuid_id(), 1, "T")])
        .expect("insert");
    assert_eq!(
        recorder.max_notification_id().expect("max"),
        ids.last().copied()
    );
}

/// States of any bytes and of some size come back unchanged.
pub fn large_and_binary_states_round_trip(fixture: Fixture) {
    let recorder = &fixture.recorder;
    let id = uuid_id();
    let binary: Vec<u8> = (0..=255).collect();
    let large = vec![b'x'; 1 << 20];
    let events = [
        StoredEvent {
            state: binary,
            ..event(&id, 1, "T")
        },
        StoredEvent {
            state: large,
            ..event(&id, 2, "T")
        },
        StoredEvent {
            state: Vec::new(),
            topic: "Ünïcödé.Tøpic".into(),
            ..event(&id, 3, "T")
        },
    ];
    recorder.insert_events(&events).expect("insert");
    assert_eq!(
        recorder
            .select_events(&id, EventQuery::new())
            .expect("select"),
        events
    );
}

const WRITERS: usize = 4;
const SAVES_PER_WRITER: u64 = 25;

/// Several threads writing at once: every event is stored, each originator's
/// versions have no gap, and notification ids strictly increase.
pub fn concurrent_writers_lose_nothing_and_leave_no_gaps(fixture: Fixture) {
    let recorder = fixture.recorder.clone();
    let handles: Vec<_> = (0..WRITERS)
        .map(|_| {
            let recorder = recorder.clone();
            thread::spawn(move || {
                let id = uuid_id();
                for version in 1..=SAVES_PER_WRITER {
                    recorder
                        .insert_events(&[event(&id, version, "T")])
                        .expect("insert");
                }
                id
            })
        })
        .collect();
    let originators: Vec<OriginatorId> = handles
        .into_iter()
        .map(|h| h.join().expect("writer thread"))
        .collect();
    for id in originators {
        let stored = recorder
            .select_events(&id, EventQuery::new())
            .expect("select");
        assert_eq!(
            versions(&stored),
            (1..=SAVES_PER_WRITER).collect::<Vec<_>>()
        );
    }
    let log = recorder
        .select_notifications(1, usize::MAX >> 1, None, &[])
        .expect("select");
    assert_eq!(log.len(), WRITERS * SAVES_PER_WRITER as usize);
    assert!(log.windows(2).all(|w| w[0].id < w[1].id));
}

/// Two threads racing to record the same version: exactly one wins, the other
/// gets a conflict, and the history has no gap and no duplicate.
pub fn racing_writers_of_one_version_conflict_exactly_once(fixture: Fixture) {
    let recorder = fixture.recorder.clone();
    for _ in 0..20 {
        let id = uuid_id();
        recorder
            .insert_events(&[event(&id, 1, "T")])
            .expect("insert");
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let racers: Vec<_> = (0..2)
            .map(|_| {
                let (recorder, barrier, id) = (recorder.clone(), barrier.clone(), id.clone());
                thread::spawn(move || {
                    barrier.wait();
                    recorder.insert_events(&[event(&id, 2, "T"), event(&id, 3, "T")])
                })
            })
            .collect();
        let results: Vec<_> = racers
            .into_iter()
            .map(|r| r.join().expect("racer thread"))
            .collect();
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert!(
            results
                .iter()
                .any(|r| matches!(r, Err(e) if e.is_conflict())),
            "{results:?}"
        );
        assert_eq!(
            versions(
                &recorder
                    .select_events(&id, EventQuery::new())
                    .expect("select")
            ),
            [1, 2, 3]
        );
    }
}

/// A follower polling the log while writers write sees every event exactly
/// once, in increasing id order: no id below one it has seen appears later.
pub fn a_follower_sees_every_event_once_and_in_order_while_writers_write(fixture: Fixture) {
    let recorder = fixture.recorder.clone();
    let done = Arc::new(AtomicBool::new(false));
    let follower = {
        let (recorder, done) = (recorder.clone(), done.clone());
        thread::spawn(move || {
            let mut seen: Vec<Notification> = Vec::new();
            let mut next = 1;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let page = recorder
                    .select_notifications(next, 7, None, &[])
                    .expect("follow");
                if let Some(last) = page.last() {
                    next = last.id + 1;
                }
                let empty = page.is_empty();
                seen.extend(page);
                if finished && empty {
                    return seen;
                }
                thread::yield_now();
            }
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let recorder = recorder.clone();
            thread::spawn(move || {
                let id = uuid_id();
                for version in (1..=SAVES_PER_WRITER).step_by(2) {
                    recorder
                        .insert_events(&[event(&id, version, "T"), event(&id, version + 1, "T")])
                        .expect("insert");
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().expect("writer thread");
    }
    done.store(true, Ordering::SeqCst);
    let seen = follower.join().expect("follower thread");
    assert!(
        seen.windows(2).all(|w| w[0].id < w[1].id),
        "in order, no repeats"
    );
    let keys: HashSet<(OriginatorId, u64)> = seen
        .iter()
        .map(|n| (n.event.originator_id.clone(), n.event.originator_version))
        .collect();
    assert_eq!(keys.len(), seen.len(), "each event once");
    let all = recorder
        .select_notifications(1, usize::MAX >> 1, None, &[])
        .expect("select");
    assert_eq!(ids(&seen), ids(&all), "the follower saw the whole log");
    let mut per_originator: HashMap<OriginatorId, Vec<u64>> = HashMap::new();
    for n in &seen {
        per_originator
            .entry(n.event.originator_id.clone())
            .or_default()
            .push(n.event.originator_version);
    }
    for versions in per_originator.values() {
        assert!(
            versions.windows(2).all(|w| w[1] == w[0] + 1),
            "in version order: {versions:?}"
        );
    }
}

/// Text ids of several shapes, some of them near UUIDs: a case gets these.
fn text_ids() -> Vec<OriginatorId> {
    let uuid = Uuid::new_v4();
    [
        format!("user-{}", Uuid::new_v4().simple()),
        format!("Ünïcödé ✓ {}", Uuid::new_v4().simple()),
        // Another spelling of a UUID is a text id, kept as written.
        uuid.hyphenated().to_string().to_uppercase(),
        uuid.simple().to_string(),
        // The longest id allowed.
        format!(
            "{}{}",
            Uuid::new_v4().simple(),
            "x".repeat(OriginatorId::MAX_TEXT_LEN - 32)
        ),
    ]
    .into_iter()
    .map(|text| OriginatorId::text(text).expect("a valid text id"))
    .collect()
}

/// On a recorder without text ids, every use of a text id is refused with an
/// error naming it, and nothing is written.
fn text_ids_are_refused(fixture: &Fixture) {
    let recorder = &fixture.recorder;
    let uuid = uuid_id();
    let text = OriginatorId::text("user-refused").expect("valid");
    let refused = |error: Error| {
        assert!(
            matches!(&error, Error::InvalidId { id, .. } if id == "user-refused"),
            "{error}"
        );
    };
    refused(
        recorder
            .insert_events(&[event(&uuid, 1, "T"), event(&text, 1, "T")])
            .expect_err("a text id"),
    );
    refused(
        recorder
            .select_events(&text, EventQuery::new())
            .expect_err("a text id"),
    );
    assert_eq!(
        recorder.max_notification_id().expect("max"),
        None,
        "nothing written"
    );
    recorder
        .insert_events(&[event(&uuid, 1, "T")])
        .expect("UUID ids still work");
}

/// Text ids, in one batch with a UUID id, are stored and selected back as the
/// same ids; the canonical text of a UUID and the UUID are one id.
pub fn text_ids_are_inserted_and_selected_back_beside_uuids(fixture: Fixture) {
    if !fixture.text_ids {
        return text_ids_are_refused(&fixture);
    }
    let recorder = &fixture.recorder;
    let texts = text_ids();
    let uuid = Uuid::new_v4();
    let mut batch: Vec<StoredEvent> = texts
        .iter()
        .flat_map(|id| [event(id, 1, "T.Created"), event(id, 2, "T.Changed")])
        .collect();
    batch.push(event(uuid, 1, "U.Created"));
    recorder.insert_events(&batch).expect("insert");
    for (i, id) in texts.iter().enumerate() {
        let selected = recorder
            .select_events(id, EventQuery::new())
            .expect("select");
        assert_eq!(selected, batch[2 * i..2 * i + 2], "{id}");
        assert_eq!(
            versions(
                &recorder
                    .select_events(id, EventQuery::new().desc().limit(1))
                    .expect("select")
            ),
            [2]
        );
    }
    let as_text = OriginatorId::text(uuid.to_string()).expect("valid");
    assert_eq!(
        recorder
            .select_events(&as_text, EventQuery::new())
            .expect("select"),
        batch[batch.len() - 1..],
        "a UUID's canonical text is the UUID"
    );
    assert!(
        recorder
            .select_events(
                &OriginatorId::text("user-nobody").expect("valid"),
                EventQuery::new()
            )
            .expect("select")
            .is_empty()
    );
}

/// A version already recorded for a text id is a conflict naming that id, and
/// nothing of the batch is written.
pub fn a_taken_version_of_a_text_id_is_a_conflict_naming_it(fixture: Fixture) {
    if !fixture.text_ids {
        return text_ids_are_refused(&fixture);
    }
    let recorder = &fixture.recorder;
    let id = OriginatorId::text(format!("order-{}", Uuid::new_v4().simple())).expect("valid");
    let other = uuid_id();
    recorder
        .insert_events(&[event(&id, 1, "T")])
        .expect("insert");
    let error = recorder
        .insert_events(&[
            event(&other, 1, "T"),
            event(&id, 2, "T"),
            event(&id, 1, "T"),
        ])
        .expect_err("version 1 is taken");
    assert!(
        matches!(&error, Error::Conflict { originator_id, originator_version: 1 } if *originator_id == id),
        "{error}"
    );
    assert!(error.to_string().contains(&id.to_string()), "{error}");
    assert!(
        recorder
            .select_events(&other, EventQuery::new())
            .expect("select")
            .is_empty()
    );
    assert_eq!(
        versions(
            &recorder
                .select_events(&id, EventQuery::new())
                .expect("select")
        ),
        [1]
    );
    assert_eq!(recorder.max_notification_id().expect("max"), Some(1));
}

/// The notification log gives text ids back as they were written, and UUID
/// ids as UUIDs, filtered by topic as any other.
pub fn notifications_give_text_ids_back(fixture: Fixture) {
    if !fixture.text_ids {
        return text_ids_are_refused(&fixture);
    }
    let recorder = &fixture.recorder;
    let texts = text_ids();
    let uuid = uuid_id();
    let mut written: Vec<StoredEvent> = texts.iter().map(|id| event(id, 1, "Text")).collect();
    written.insert(2, event(&uuid, 1, "Uuid"));
    let ids = recorder.insert_events(&written).expect("insert");
    let log = recorder
        .select_notifications(1, 100, None, &[])
        .expect("select");
    assert_eq!(ids, log.iter().map(|n| n.id).collect::<Vec<_>>());
    let read: Vec<StoredEvent> = log.into_iter().map(|n| n.event).collect();
    assert_eq!(read, written);
    assert!(read[2].originator_id.as_uuid().is_some());
    assert!(
        read.iter()
            .filter(|e| e.topic == "Text")
            .all(|e| e.originator_id.as_str().is_some())
    );
    let only_text = recorder
        .select_notifications(1, 100, None, &["Text"])
        .expect("select");
    assert_eq!(
        only_text
            .iter()
            .map(|n| n.event.originator_id.clone())
            .collect::<Vec<_>>(),
        texts
    );
}

/// Text ids that differ only in case or in spaces are different aggregates.
pub fn text_ids_are_exact_case_and_space_sensitive(fixture: Fixture) {
    if !fixture.text_ids {
        return text_ids_are_refused(&fixture);
    }
    let recorder = &fixture.recorder;
    let base = format!("ada-{}", Uuid::new_v4().simple());
    let spellings = [
        base.clone(),
        base.to_uppercase(),
        format!("{base} "),
        format!(" {base}"),
    ];
    let ids: Vec<OriginatorId> = spellings
        .iter()
        .map(|text| OriginatorId::text(text).expect("valid"))
        .collect();
    for (n, id) in ids.iter().enumerate() {
        let events: Vec<StoredEvent> = (1..=n as u64 + 1).map(|v| event(id, v, "T")).collect();
        recorder
            .insert_events(&events)
            .expect("distinct ids do not conflict");
    }
    for (n, id) in ids.iter().enumerate() {
        let selected = recorder
            .select_events(id, EventQuery::new())
            .expect("select");
        assert_eq!(selected.len(), n + 1, "{id:?}");
        assert!(selected.iter().all(|e| e.originator_id == *id), "{id:?}");
    }
}

/// `visit_events` visits, in order, exactly the events `select_events` gives,
/// for every combination of filters.
pub fn visit_events_visits_what_select_events_selects(fixture: Fixture) {
    let recorder = &fixture.recorder;
    let id = uuid_id();
    let events: Vec<StoredEvent> = (1..=6).map(|v| event(&id, v, "T")).collect();
    recorder.insert_events(&events).expect("insert");
    recorder
        .insert_events(&[event(uuid_id(), 1, "T")])
        .expect("another aggregate");
    for gt in [None, Some(0), Some(2), Some(6)] {
        for lte in [None, Some(1), Some(4)] {
            for desc in [false, true] {
                for limit in [None, Some(0), Some(2)] {
                    let query = EventQuery {
                        gt,
                        lte,
                        desc,
                        limit,
                    };
                    let mut visited = Vec::new();
                    recorder
                        .visit_events(&id, query, &mut |event| {
                            visited.push(event);
                            Ok(())
                        })
                        .expect("visit");
                    let selected = recorder.select_events(&id, query).expect("select");
                    assert_eq!(visited, selected, "{query:?}");
                }
            }
        }
    }
    let mut none = 0;
    recorder
        .visit_events(&uuid_id(), EventQuery::new(), &mut |_| {
            none += 1;
            Ok(())
        })
        .expect("an aggregate with no events");
    assert_eq!(none, 0);
}

/// An error from the visitor stops the visit at once and is what
/// `visit_events` returns.
pub fn visit_events_stops_at_the_visitors_error(fixture: Fixture) {
    let recorder = &fixture.recorder;
    let id = uuid_id();
    let events: Vec<StoredEvent> = (1..=5).map(|v| event(&id, v, "T")).collect();
    recorder.insert_events(&events).expect("insert");
    let mut visited = Vec::new();
    let error = recorder
        .visit_events(&id, EventQuery::new(), &mut |event| {
            visited.push(event.originator_version);
            if event.originator_version == 2 {
                return Err(Error::Corrupt("the visitor refused version 2".into()));
            }
            Ok(())
        })
        .expect_err("the visitor's error");
    assert!(error.to_string().contains("refused version 2"), "{error}");
    assert_eq!(visited, [1, 2]);
    // The recorder is still usable: the visit left nothing open.
    assert_eq!(
        versions(
            &recorder
                .select_events(&id, EventQuery::new())
                .expect("select")
        ),
        [1, 2, 3, 4, 5]
    );
}

/// `visit_from_snapshot` visits the latest snapshot at or below the wanted
/// version, then the events after it up to that version; without a snapshot,
/// the events from the first.
pub fn visit_from_snapshot_starts_after_the_latest_snapshot_at_or_below_the_version(
    fixture: Fixture,
) {
    use super::recorder::SnapshotOrEvent;

    let recorder = &fixture.recorder;
    let snapshots = super::MemoryRecorder::new();
    let id = uuid_id();
    let events: Vec<StoredEvent> = (1..=6).map(|v| event(&id, v, "T")).collect();
    recorder.insert_events(&events).expect("insert");
    snapshots
        .insert_events(&[event(&id, 2, "S"), event(&id, 4, "S")])
        .expect("snapshots");
    let cases: [(Option<u64>, Option<u64>, &[u64]); 5] = [
        (None, Some(4), &[5, 6]),
        (Some(5), Some(4), &[5]),
        (Some(3), Some(2), &[3]),
        (Some(2), Some(2), &[]),
        (Some(1), None, &[1]),
    ];
    for (lte, snapshot, after) in cases {
        let (mut visited_snapshot, mut visited) = (None, Vec::new());
        recorder
            .visit_from_snapshot(&snapshots, &id, lte, &mut |item| {
                match item {
                    SnapshotOrEvent::Snapshot(stored) => {
                        assert!(visited.is_empty(), "the snapshot comes first");
                        visited_snapshot = Some(stored.originator_version);
                    }
                    SnapshotOrEvent::Event(stored) => visited.push(stored.originator_version),
                }
                Ok(())
            })
            .expect("visit");
        assert_eq!(
            (visited_snapshot, &visited[..]),
            (snapshot, after),
            "lte {lte:?}"
        );
    }
}

/// Makes the next notification id skip at least one, as a recorder that
/// leaves gaps does: see [`Fixture::with_gaps`].
pub type GapMaker = Arc<dyn Fn(&dyn ApplicationRecorder) + Send + Sync>;

impl Fixture {
    /// Declares that the recorder's notification ids can have gaps, and how
    /// to make one: the gap cases ([`notification_gap_conformance_tests!`](crate::notification_gap_conformance_tests))
    /// run only on fixtures that declare it. On PostgreSQL, pass
    /// [`gap_by_conflicting_insert`]; a store that never leaves gaps can make
    /// one by other means (the SQLite tests raise `sqlite_sequence`), or skip.
    ///
    /// ```
    /// use es_core::persistence::{MemoryRecorder, conformance::{self, Fixture}};
    /// // The in-memory recorder never skips an id: it declares nothing, and skips.
    /// conformance::run(Fixture::new(MemoryRecorder::new()), conformance::pages_read_every_notification_across_gaps);
    /// ```
    pub fn with_gaps(
        mut self,
        make_gap: impl Fn(&dyn ApplicationRecorder) + Send + Sync + 'static,
    ) -> Self {
        self.gaps = Some(Arc::new(make_gap));
        self
    }
}

/// Generates one `#[test]` per case that needs gaps in the notification ids;
/// each is skipped unless `$fixture`'s fixture declares [`Fixture::with_gaps`].
#[macro_export]
macro_rules! notification_gap_conformance_tests {
    ($fixture:expr) => {
        $crate::recorder_conformance_tests!(@cases $fixture;
            pages_read_every_notification_across_gaps,
        );
    };
}

/// A gap as PostgreSQL leaves one: a batch whose second event takes a version
/// already recorded, so the batch fails after its first event drew an id.
pub fn gap_by_conflicting_insert(recorder: &dyn ApplicationRecorder) {
    let taken = uuid_id();
    recorder
        .insert_events(&[event(&taken, 1, "Gap.Taken")])
        .expect("insert");
    let error = recorder
        .insert_events(&[
            event(uuid_id(), 1, "Gap.Lost"),
            event(&taken, 1, "Gap.Lost"),
        ])
        .expect_err("version 1 is taken");
    assert!(error.is_conflict(), "{error}");
}

/// Inserts `count` events of fresh originators, one insert each, making a gap
/// after each one for which `gap_after` says so.
fn insert_with_gaps(
    fixture: &Fixture,
    make_gap: &GapMaker,
    count: u64,
    gap_after: impl Fn(u64) -> bool,
) -> Vec<Notification> {
    let recorder = &*fixture.recorder;
    for n in 1..=count {
        recorder
            .insert_events(&[event(uuid_id(), 1, "Paged")])
            .expect("insert");
        if gap_after(n) {
            make_gap(recorder);
        }
    }
    recorder
        .select_notifications(1, usize::MAX >> 1, None, &["Paged"])
        .expect("select")
}

/// With ids that skip (as they do under contention on PostgreSQL), a limit
/// counts notifications, not ids: a reader that asks for `limit` from the id
/// after the last it read, and stops at the first page short of its limit
/// (the Python library's rule for `next_id`), reads every notification once,
/// in order. A page bounded by `stop` at a gap is short, which is why a
/// section must not be read with its end as `stop`.
pub fn pages_read_every_notification_across_gaps(fixture: Fixture) {
    let Some(make_gap) = fixture.gaps.clone() else {
        return;
    };
    let wanted = insert_with_gaps(&fixture, &make_gap, 23, |n| n % 4 == 0 || n == 9);
    assert_eq!(wanted.len(), 23);
    let span = wanted[22].id - wanted[0].id + 1;
    assert!(
        span > 23,
        "the fixture's gap maker made no gap: ids {:?}",
        ids(&wanted)
    );

    let recorder = &*fixture.recorder;
    let limit = 5;
    let (mut read, mut start) = (Vec::new(), 1);
    loop {
        let page = recorder
            .select_notifications(start, limit, None, &[])
            .expect("select");
        read.extend(page.iter().filter(|n| n.event.topic == "Paged").cloned());
        match page.last() {
            Some(last) if page.len() == limit => start = last.id + 1,
            _ => break,
        }
    }
    assert_eq!(ids(&read), ids(&wanted));
    assert_eq!(read, wanted);

    let all = recorder
        .select_notifications(1, usize::MAX >> 1, None, &[])
        .expect("select");
    let first_gap = all
        .windows(2)
        .find(|pair| pair[1].id > pair[0].id + 1)
        .map(|pair| pair[0].id)
        .expect("a gap");
    let bounded = recorder
        .select_notifications(first_gap, limit, Some(first_gap + 1), &[])
        .expect("select");
    assert_eq!(
        ids(&bounded),
        [first_gap],
        "the id after {first_gap} is a gap"
    );
}
