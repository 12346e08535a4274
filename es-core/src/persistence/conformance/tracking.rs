//! The cases of process recorders: tracking records, alone and with events.
//! Each takes a fixture made with [`Fixture::process`].

use std::sync::{Arc, Barrier};
use std::thread;

use super::{Fixture, event, uuid_id, versions};
use crate::error::Error;
use crate::persistence::recorder::{EventQuery, ProcessRecorder, Tracking};

/// Generates one `#[test]` per process recorder case, each calling `$fixture`
/// for a fresh recorder made with [`Fixture::process`].
///
/// ```
/// use es_core::persistence::{MemoryRecorder, conformance::Fixture};
///
/// es_core::process_recorder_conformance_tests!(|| Fixture::process(MemoryRecorder::new()));
/// ```
#[macro_export]
macro_rules! process_recorder_conformance_tests {
    ($fixture:expr) => {
        $crate::recorder_conformance_tests!(@cases $fixture;
            tracking_starts_empty_and_only_rises,
            tracking_at_or_below_the_recorded_id_is_a_conflict_and_writes_nothing,
            a_batch_reaching_back_to_the_recorded_id_is_a_conflict_and_writes_nothing,
            events_and_their_tracking_are_recorded_together_or_not_at_all,
            tracking_alone_records_no_event,
            racing_processors_of_one_notification_record_it_once,
            upstream_names_are_kept_apart_exactly,
            tracked_events_get_notification_ids_like_any_other,
        );
    };
}

fn process(fixture: &Fixture) -> &dyn ProcessRecorder {
    fixture
        .process
        .as_deref()
        .expect("a process recorder case needs a fixture made with Fixture::process")
}

fn is_tracking_conflict(error: &Error, name: &str, id: u64) -> bool {
    matches!(error, Error::TrackingConflict { application_name, notification_id }
        if application_name == name && *notification_id == id)
}

/// No position before anything is tracked; each record raises the position,
/// ids may skip, and `has_tracking_id` means "processed up to at least".
pub fn tracking_starts_empty_and_only_rises(fixture: Fixture) {
    let recorder = process(&fixture);
    assert_eq!(recorder.max_tracking_id("orders").expect("max"), None);
    assert!(!recorder.has_tracking_id("orders", 1).expect("has"));
    recorder
        .insert_tracking(&Tracking::new("orders", 1))
        .expect("first");
    recorder
        .insert_tracking(&Tracking::new("orders", 5))
        .expect("a gap is fine");
    assert_eq!(recorder.max_tracking_id("orders").expect("max"), Some(5));
    for (id, has) in [(1, true), (3, true), (5, true), (6, false)] {
        assert_eq!(
            recorder.has_tracking_id("orders", id).expect("has"),
            has,
            "id {id}"
        );
    }
    assert_eq!(recorder.max_tracking_id("payments").expect("max"), None);
}

/// The same notification again, or an earlier one, is refused with its
/// upstream name and id, and none of the events that came with it is written.
pub fn tracking_at_or_below_the_recorded_id_is_a_conflict_and_writes_nothing(fixture: Fixture) {
    let recorder = process(&fixture);
    let first = uuid_id();
    recorder
        .insert_events_with_tracking(&[event(&first, 1, "Reserved")], &Tracking::new("orders", 3))
        .expect("first processing");
    for again in [3, 2] {
        let late = uuid_id();
        let error = recorder
            .insert_events_with_tracking(
                &[event(&late, 1, "Reserved")],
                &Tracking::new("orders", again),
            )
            .expect_err("processed before");
        assert!(is_tracking_conflict(&error, "orders", again), "{error:?}");
        assert!(!error.is_conflict(), "not a version conflict: {error}");
        assert!(
            recorder
                .select_events(&late, EventQuery::new())
                .expect("select")
                .is_empty()
        );
        let error = recorder
            .insert_tracking(&Tracking::new("orders", again))
            .expect_err("processed before");
        assert!(is_tracking_conflict(&error, "orders", again), "{error:?}");
    }
    assert_eq!(recorder.max_tracking_id("orders").expect("max"), Some(3));
    assert_eq!(recorder.max_notification_id().expect("max"), Some(1));
}

/// A batch of notifications recorded with one record is refused if the
/// recorded position falls within it, even though its last id is above
/// that position: part of the batch was processed already.
pub fn a_batch_reaching_back_to_the_recorded_id_is_a_conflict_and_writes_nothing(fixture: Fixture) {
    let recorder = process(&fixture);
    recorder
        .insert_tracking(&Tracking::new("orders", 5))
        .expect("processed up to 5");
    for first in [5, 3] {
        let late = uuid_id();
        let error = recorder
            .insert_events_with_tracking(
                &[event(&late, 1, "Reserved")],
                &Tracking::batch("orders", first, 9),
            )
            .expect_err("part of the batch was processed");
        assert!(is_tracking_conflict(&error, "orders", 9), "{error:?}");
        assert!(
            recorder
                .select_events(&late, EventQuery::new())
                .expect("select")
                .is_empty()
        );
        let error = recorder
            .insert_tracking(&Tracking::batch("orders", first, 9))
            .expect_err("part of the batch was processed");
        assert!(is_tracking_conflict(&error, "orders", 9), "{error:?}");
    }
    assert_eq!(recorder.max_tracking_id("orders").expect("max"), Some(5));
    // A first id above the last is taken as the last: positions only rise.
    let error = recorder
        .insert_tracking(&Tracking::batch("orders", 8, 4))
        .expect_err("below the recorded position");
    assert!(is_tracking_conflict(&error, "orders", 4), "{error:?}");
    let ids = recorder
        .insert_events_with_tracking(
            &[event(uuid_id(), 1, "Reserved")],
            &Tracking::batch("orders", 6, 9),
        )
        .expect("6 to 9 is new");
    assert_eq!(ids.len(), 1);
    assert_eq!(recorder.max_tracking_id("orders").expect("max"), Some(9));
}

/// A taken version refuses the tracking record with it: the notification
/// stays unprocessed, to be processed again.
pub fn events_and_their_tracking_are_recorded_together_or_not_at_all(fixture: Fixture) {
    let recorder = process(&fixture);
    let taken = uuid_id();
    recorder
        .insert_events_with_tracking(&[event(&taken, 1, "Reserved")], &Tracking::new("orders", 1))
        .expect("first");
    let fresh = uuid_id();
    let error = recorder
        .insert_events_with_tracking(
            &[event(&fresh, 1, "Reserved"), event(&taken, 1, "Reserved")],
            &Tracking::new("orders", 2),
        )
        .expect_err("version 1 is taken");
    assert!(error.is_conflict(), "{error:?}");
    assert_eq!(recorder.max_tracking_id("orders").expect("max"), Some(1));
    assert!(
        recorder
            .select_events(&fresh, EventQuery::new())
            .expect("select")
            .is_empty()
    );
    // Processed again, it goes in whole.
    let ids = recorder
        .insert_events_with_tracking(
            &[event(&fresh, 1, "Reserved"), event(&taken, 2, "Reserved")],
            &Tracking::new("orders", 2),
        )
        .expect("second try");
    assert_eq!(ids.len(), 2);
    assert_eq!(recorder.max_tracking_id("orders").expect("max"), Some(2));
    let taken_versions = versions(
        &recorder
            .select_events(&taken, EventQuery::new())
            .expect("select"),
    );
    assert_eq!(taken_versions, [1, 2]);
}

/// A notification the policy ignored is tracked with no events, by either call.
pub fn tracking_alone_records_no_event(fixture: Fixture) {
    let recorder = process(&fixture);
    let ids = recorder
        .insert_events_with_tracking(&[], &Tracking::new("orders", 4))
        .expect("tracking alone");
    assert!(ids.is_empty());
    recorder
        .insert_tracking(&Tracking::new("orders", 9))
        .expect("tracking alone");
    assert_eq!(recorder.max_tracking_id("orders").expect("max"), Some(9));
    assert_eq!(recorder.max_notification_id().expect("max"), None);
}

/// Processors racing to record one notification (two copies of a follower,
/// or one retried after a lost reply): exactly one records it, with its
/// events; the others get the tracking conflict and write nothing.
pub fn racing_processors_of_one_notification_record_it_once(fixture: Fixture) {
    const RACERS: usize = 6;
    let recorder = Arc::clone(fixture.process.as_ref().expect("a process fixture"));
    let start = Arc::new(Barrier::new(RACERS));
    let racers: Vec<_> = (0..RACERS)
        .map(|_| {
            let (recorder, start) = (Arc::clone(&recorder), Arc::clone(&start));
            thread::spawn(move || {
                let derived = uuid_id();
                start.wait();
                let result = recorder.insert_events_with_tracking(
                    &[event(&derived, 1, "Derived")],
                    &Tracking::new("orders", 1),
                );
                (derived, result)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        let (derived, result) = racer.join().expect("racer");
        match result {
            Ok(_) => winners.push(derived),
            Err(error) => {
                assert!(is_tracking_conflict(&error, "orders", 1), "{error:?}");
                assert!(
                    recorder
                        .select_events(&derived, EventQuery::new())
                        .expect("select")
                        .is_empty()
                );
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one records the notification");
    let log = recorder
        .select_notifications(1, 100, None, &["Derived"])
        .expect("select");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].event.originator_id, winners[0]);
}

/// Upstream names are compared exactly: case, spaces and non-ASCII letters
/// make different names, each with its own position.
pub fn upstream_names_are_kept_apart_exactly(fixture: Fixture) {
    let recorder = process(&fixture);
    let names = [
        "orders",
        "Orders",
        "orders ",
        "café",
        "cafe\u{301}",
        "a-b.c/d",
    ];
    for (n, name) in names.iter().enumerate() {
        recorder
            .insert_tracking(&Tracking::new(*name, 10 + n as u64))
            .expect("tracking");
    }
    for (n, name) in names.iter().enumerate() {
        assert_eq!(
            recorder.max_tracking_id(name).expect("max"),
            Some(10 + n as u64),
            "{name:?}"
        );
    }
}

/// The events of a tracked insert are in the notification log, in order,
/// with the ids the insert returned.
pub fn tracked_events_get_notification_ids_like_any_other(fixture: Fixture) {
    let recorder = process(&fixture);
    recorder
        .insert_events(&[event(uuid_id(), 1, "Plain")])
        .expect("plain insert");
    let derived = uuid_id();
    let ids = recorder
        .insert_events_with_tracking(
            &[event(&derived, 1, "Derived"), event(&derived, 2, "Derived")],
            &Tracking::new("orders", 7),
        )
        .expect("tracked insert");
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1] && ids[0] > 1, "{ids:?}");
    let log = recorder
        .select_notifications(ids[0], 10, None, &[])
        .expect("select");
    assert_eq!(log.iter().map(|n| n.id).collect::<Vec<_>>(), ids);
    assert_eq!(
        versions(&log.into_iter().map(|n| n.event).collect::<Vec<_>>()),
        [1, 2]
    );
}
