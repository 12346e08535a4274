//! The NATS store on a three-node cluster (R3 streams) while its servers
//! die: writers and a follower run while a node is killed with SIGKILL and
//! started again, and while the stream's leader is. No acknowledged save
//! is lost, none is partly applied, no notification id is given twice,
//! writes resume within an election, and the follower sees every event
//! exactly once.
//!
//! Each writer saves two new aggregates of two events each per save (one
//! atomic batch over two subjects), so that a partly applied save would
//! show. A writer whose server dies mid-save retries through another; a
//! save it could not settle is an `OutcomeUnknown`, which must then be
//! all there or not there at all. `NATS_FAULT_ROUNDS` (default
//! `ES_FAULT_SCALE`, itself 1 in CI) repeats the kill cycle for a longer run.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use es_core::Error;
use es_core::persistence::{
    AggregateRecorder, ApplicationRecorder, EventQuery, NatsConfig, NatsConnection, NatsRecorder,
    StoredEvent, Subscription,
};
use es_core::prelude::*;

#[path = "nats_support/mod.rs"]
mod nats_support;
#[path = "reliability_log/mod.rs"]
mod reliability_log;

const WRITERS: usize = 3;
/// The longest a stream may go without a save after its leader dies: the
/// servers' election (4 to 9 s by default) and the client's retry.
const ELECTION: Duration = Duration::from_secs(20);

/// What one writer saved, and what it could not be sure of.
#[derive(Default)]
struct Outcomes {
    /// Acknowledged saves: the notification ids the store gave each event.
    acknowledged: Vec<(Vec<StoredEvent>, Vec<u64>)>,
    /// Saves whose outcome the store could not settle.
    unknown: Vec<Vec<StoredEvent>>,
    /// Saves refused before anything could be stored (no server to ask).
    refused: Vec<Vec<StoredEvent>>,
    /// When each acknowledged save returned.
    times: Vec<Instant>,
}

fn save_of_two_aggregates(save: usize) -> Vec<StoredEvent> {
    let (a, b) = (
        OriginatorId::from(Uuid::new_v4()),
        OriginatorId::from(Uuid::new_v4()),
    );
    let event = |id: &OriginatorId, version: u64| StoredEvent {
        originator_id: id.clone(),
        originator_version: version,
        topic: "Fault.Saved".into(),
        state: format!("{{\"save\":{save},\"v\":{version}}}").into_bytes(),
    };
    vec![event(&a, 1), event(&b, 1), event(&a, 2), event(&b, 2)]
}

/// A recorder of the stream, made before any server is killed; a loaded
/// machine may make a fresh cluster slow to answer at first, so it tries
/// for a while.
fn recorder(urls: &str) -> NatsRecorder {
    let config = NatsConfig::new(urls, "faults")
        .expect("config")
        .replicas(3)
        .request_timeout(Duration::from_secs(3));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match NatsConnection::connect(&config).and_then(|c| NatsRecorder::events(&c, true)) {
            Ok(recorder) => return recorder,
            Err(error) if Instant::now() < deadline => {
                eprintln!("the cluster is not answering yet: {error}");
                thread::sleep(Duration::from_millis(500));
            }
            Err(error) => panic!("no recorder within a minute: {error}"),
        }
    }
}

/// The server that `node` says leads the stream, by its monitoring endpoint.
fn leader_seen_by(node: &mut nats_support::NatsNode) -> Option<String> {
    if !node.is_running() {
        return None;
    }
    let url = format!("{}/jsz?accounts=true&streams=true", node.monitor_url());
    let body = ureq::get(&url)
        .call()
        .ok()?
        .body_mut()
        .read_to_string()
        .ok()?;
    let jsz = serde_json::from_str::<serde_json::Value>(&body).ok()?;
    jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|account| account["stream_detail"].as_array().into_iter().flatten())
        .find(|stream| stream["name"] == "faults")
        .and_then(|stream| stream["cluster"]["leader"].as_str())
        .filter(|leader| !leader.is_empty())
        .map(str::to_owned)
}

/// The server whose copy of the stream leads: one that some node names
/// and that names itself, so that a node's stale view is not taken.
fn stream_leader(cluster: &mut nats_support::NatsCluster) -> Option<usize> {
    for i in 0..cluster.nodes.len() {
        let Some(named) = leader_seen_by(&mut cluster.nodes[i]) else {
            continue;
        };
        let Some(leader) = cluster.nodes.iter().position(|node| node.name == named) else {
            continue;
        };
        if leader_seen_by(&mut cluster.nodes[leader]).as_deref() == Some(named.as_str()) {
            return Some(leader);
        }
    }
    None
}

fn leader_index(cluster: &mut nats_support::NatsCluster) -> usize {
    let deadline = Instant::now() + ELECTION;
    loop {
        if let Some(index) = stream_leader(cluster) {
            return index;
        }
        assert!(
            Instant::now() < deadline,
            "no stream leader:\n{}",
            cluster.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn writers_and_a_follower_lose_nothing_while_nodes_and_the_leader_die() {
    let Some(mut cluster) = nats_support::NatsCluster::start("the NATS cluster fault test", 3)
    else {
        return;
    };
    let rounds: usize = std::env::var("NATS_FAULT_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or_else(reliability_log::scale);
    let urls = cluster.urls();
    // Made first, so that the writers and the follower find the stream.
    let setup = recorder(&urls);
    let stop = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (recorder, stop) = (recorder(&urls), Arc::clone(&stop));
            thread::spawn(move || {
                let mut outcomes = Outcomes::default();
                let mut save = writer * 1_000_000;
                while !stop.load(Ordering::SeqCst) {
                    save += 1;
                    let events = save_of_two_aggregates(save);
                    match recorder.insert_events(&events) {
                        Ok(ids) => {
                            outcomes.acknowledged.push((events, ids));
                            outcomes.times.push(Instant::now());
                        }
                        Err(Error::OutcomeUnknown { .. }) => outcomes.unknown.push(events),
                        // No server answered before anything was sent.
                        Err(Error::Database { .. }) => {
                            outcomes.refused.push(events);
                            thread::sleep(Duration::from_millis(50));
                        }
                        Err(other) => panic!("writer {writer}: {other}"),
                    }
                }
                outcomes
            })
        })
        .collect();

    let seen = Arc::new(Mutex::new(Vec::new()));
    let follower = {
        let recorder: Arc<dyn ApplicationRecorder> = Arc::new(recorder(&urls));
        let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
        thread::spawn(move || {
            let mut subscription = loop {
                match Subscription::new(Arc::clone(&recorder), None) {
                    Ok(subscription) => break subscription,
                    Err(_) => thread::sleep(Duration::from_millis(100)),
                }
            };
            // After `stop`, reads on until the log's end as the writers left it.
            let mut end = None;
            loop {
                if end.is_none() && stop.load(Ordering::SeqCst) {
                    end = Some(
                        recorder
                            .max_notification_id()
                            .expect("the log's end")
                            .unwrap_or(0),
                    );
                }
                if end.is_some_and(|end| subscription.position().unwrap_or(0) >= end) {
                    break;
                }
                match subscription.next_within(Duration::from_millis(200)) {
                    Ok(Some(notification)) => seen.lock().expect("seen").push(notification),
                    Ok(None) => {}
                    Err(_) => thread::sleep(Duration::from_millis(100)),
                }
            }
        })
    };

    let pause = |seconds: u64| thread::sleep(Duration::from_secs(seconds));
    let mut leader_kills = Vec::new();
    pause(2);
    for _ in 0..rounds {
        // A node that does not lead the stream.
        let leader = leader_index(&mut cluster);
        let other = (leader + 1) % cluster.nodes.len();
        cluster.kill(other);
        pause(3);
        cluster.restart(other);
        pause(2);
        // The leader.
        let leader = leader_index(&mut cluster);
        leader_kills.push(Instant::now());
        cluster.kill(leader);
        pause(10);
        cluster.restart(leader);
        cluster.wait_ready(ELECTION);
        pause(3);
    }
    stop.store(true, Ordering::SeqCst);
    let outcomes: Vec<Outcomes> = writers
        .into_iter()
        .map(|writer| writer.join().expect("writer"))
        .collect();
    follower.join().expect("follower");

    // The log as the cluster keeps it.
    let log = setup
        .select_notifications(1, usize::MAX, None, &[])
        .expect("the log");
    let mut by_event: HashMap<(OriginatorId, u64), u64> = HashMap::new();
    let mut ids = HashSet::new();
    for notification in &log {
        assert!(
            ids.insert(notification.id),
            "id {} given twice",
            notification.id
        );
        let key = (
            notification.event.originator_id.clone(),
            notification.event.originator_version,
        );
        assert!(
            by_event.insert(key.clone(), notification.id).is_none(),
            "event {key:?} recorded twice"
        );
    }
    assert!(
        log.windows(2).all(|pair| pair[0].id < pair[1].id),
        "ids in commit order"
    );

    let (mut acknowledged, mut unknown_there, mut unknown_not) = (0, 0, 0);
    for outcome in &outcomes {
        for (events, returned) in &outcome.acknowledged {
            acknowledged += 1;
            let stored: Vec<Option<u64>> = events
                .iter()
                .map(|e| {
                    by_event
                        .get(&(e.originator_id.clone(), e.originator_version))
                        .copied()
                })
                .collect();
            let expected: Vec<Option<u64>> = returned.iter().copied().map(Some).collect();
            assert_eq!(
                stored, expected,
                "an acknowledged save, under the ids it was given"
            );
        }
        for events in &outcome.refused {
            assert!(
                events
                    .iter()
                    .all(|e| !by_event
                        .contains_key(&(e.originator_id.clone(), e.originator_version))),
                "a save that failed with a plain error was stored"
            );
        }
        for events in &outcome.unknown {
            let there = events
                .iter()
                .filter(|e| by_event.contains_key(&(e.originator_id.clone(), e.originator_version)))
                .count();
            assert!(
                there == 0 || there == events.len(),
                "a save partly applied: {there} of 4"
            );
            if there == 0 {
                unknown_not += 1;
            } else {
                unknown_there += 1;
            }
        }
    }
    let saved = log.len() / 4;
    assert_eq!(log.len() % 4, 0);
    assert_eq!(
        saved,
        acknowledged + unknown_there,
        "every save in the log was made by a writer"
    );
    // Read back aggregate by aggregate too (a sample: each read is a request).
    for (originator_id, _) in by_event
        .keys()
        .filter(|(_, version)| *version == 1)
        .take(300)
    {
        let versions: Vec<u64> = setup
            .select_events(originator_id, EventQuery::new())
            .expect("an aggregate")
            .iter()
            .map(|e| e.originator_version)
            .collect();
        assert_eq!(versions, [1, 2], "aggregate {originator_id}");
    }

    // Writes resumed within an election of each leader's death.
    let mut times: Vec<Instant> = outcomes
        .iter()
        .flat_map(|o| o.times.iter().copied())
        .collect();
    times.sort();
    for killed in &leader_kills {
        let resumed = times
            .iter()
            .find(|time| *time > killed)
            .expect("saves after the kill");
        eprintln!(
            "the first save after the leader died returned {:?} later",
            resumed.duration_since(*killed)
        );
        assert!(
            resumed.duration_since(*killed) < ELECTION,
            "no save for {:?} after the leader died",
            resumed.duration_since(*killed)
        );
    }

    // The follower saw the whole log, each event once, in order.
    let seen = seen.lock().expect("seen");
    let seen_ids: Vec<u64> = seen.iter().map(|n| n.id).collect();
    let log_ids: Vec<u64> = log.iter().map(|n| n.id).collect();
    assert_eq!(seen_ids, log_ids, "the follower's notifications");
    let unknown_total = unknown_there + unknown_not;
    let refused: usize = outcomes.iter().map(|o| o.refused.len()).sum();
    let by_outcome: BTreeMap<&str, usize> = [
        ("acknowledged", acknowledged),
        ("refused, not stored", refused),
        ("unknown, stored", unknown_there),
        ("unknown, not stored", unknown_not),
    ]
    .into();
    eprintln!("{rounds} round(s), saves: {by_outcome:?}; {unknown_total} unsettled");
    assert!(
        acknowledged > 50,
        "too few saves to mean anything: {acknowledged}"
    );
}
