//! The cases of listeners and subscriptions: a reader told of what is
//! recorded after it started listening, and a subscription from any id that
//! hands out each later notification once, in order.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use super::{Fixture, event, uuid_id};
use crate::persistence::listen::Subscription;

/// Long enough for any store's listener on a loaded machine; a test that
/// waits this long has failed.
const PATIENCE: Duration = Duration::from_secs(20);

/// A listener made before a commit says so (within the store's bound), and
/// a listener with nothing new says so when its time is up.
pub fn a_listener_hears_a_commit_made_after_it(fixture: Fixture) {
    let recorder = Arc::clone(&fixture.recorder);
    let mut listener = recorder.listen().expect("listen");
    let writer = {
        let recorder = Arc::clone(&recorder);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            recorder
                .insert_events(&[event(uuid_id(), 1, "Heard")])
                .expect("insert");
        })
    };
    let mut heard = false;
    let started = std::time::Instant::now();
    while !heard && started.elapsed() < PATIENCE {
        heard = listener.wait(PATIENCE).expect("wait");
    }
    writer.join().expect("writer");
    assert!(heard, "the commit was never heard");
}

/// A subscription from id 2 of a log of 5, while four threads record 200
/// more: it hands out 3 to the last, each once and in id order, exactly the
/// notifications the log holds after 2.
pub fn a_subscription_from_any_id_hands_out_each_later_notification_once(fixture: Fixture) {
    const WRITERS: usize = 4;
    const EACH: usize = 50;
    let recorder = Arc::clone(&fixture.recorder);
    for _ in 0..5 {
        recorder
            .insert_events(&[event(uuid_id(), 1, "Before")])
            .expect("insert");
    }
    let after = recorder
        .select_notifications(1, 2, None, &[])
        .expect("select")
        .last()
        .map(|notification| notification.id);
    let mut subscription = Subscription::new(Arc::clone(&recorder), after).expect("subscribe");
    let writers: Vec<_> = (0..WRITERS)
        .map(|_| {
            let recorder = Arc::clone(&recorder);
            thread::spawn(move || {
                for _ in 0..EACH {
                    recorder
                        .insert_events(&[event(uuid_id(), 1, "During")])
                        .expect("insert");
                }
            })
        })
        .collect();
    let mut seen = Vec::new();
    while seen.len() < 3 + WRITERS * EACH {
        let notification = subscription
            .next_within(PATIENCE)
            .expect("next")
            .unwrap_or_else(|| panic!("stuck after {} notifications", seen.len()));
        assert_eq!(subscription.position(), Some(notification.id));
        seen.push(notification.id);
    }
    for writer in writers {
        writer.join().expect("writer");
    }
    assert!(
        subscription
            .next_within(Duration::from_millis(50))
            .expect("next")
            .is_none(),
        "nothing more was recorded"
    );
    assert!(
        seen.windows(2).all(|pair| pair[0] < pair[1]),
        "in order, once"
    );
    let start = after.map_or(1, |id| id + 1);
    let log: BTreeSet<u64> = recorder
        .select_notifications(start, usize::MAX >> 1, None, &[])
        .expect("select")
        .iter()
        .map(|notification| notification.id)
        .collect();
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), log);
}
