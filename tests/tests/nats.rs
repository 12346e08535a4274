//! The NATS JetStream store beyond the recorder conformance suite: followers
//! and their tracking on it, a save whose answer is lost on the way back,
//! and the inputs and servers it must refuse with a clear error.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use es_core::persistence::{
    AggregateRecorder, ApplicationRecorder, EventQuery, NatsConfig, NatsConnection, NatsRecorder,
    StoredEvent, Tracking, TrackingRecorder,
};
use es_core::prelude::*;
use es_core::system::{Policies, ProcessApplication};
use es_core::{Environment, Error};

#[path = "nats_support/mod.rs"]
mod nats_support;
#[path = "reliability_log/mod.rs"]
mod reliability_log;

#[aggregate]
pub struct Parcel {
    weight: u32,
}

#[aggregate]
impl Parcel {
    #[event("Posted")]
    pub fn post(weight: u32) -> Self {
        Parcel { weight }
    }
}

#[aggregate]
pub struct Label {
    weight: u32,
}

#[aggregate]
impl Label {
    /// One label per parcel: a second would conflict on its id.
    #[event("Printed", id = create_id(&format!("label-{parcel}")))]
    pub fn print(parcel: OriginatorId, weight: u32) -> Self {
        let _ = parcel;
        Label { weight }
    }
}

fn app(name: &str, url: &str) -> Application {
    let environment = Environment::from_vars([("PERSISTENCE_MODULE", "nats"), ("NATS_URL", url)]);
    Application::builder()
        .name(name)
        .environment(environment)
        .build()
        .expect("an application on NATS")
}

fn labels() -> Policies {
    Policies::new().on(|event: DomainEvent<ParcelEvent>, context| {
        let ParcelEvent::Posted { weight } = event.payload;
        context.collect(Label::print(event.originator_id, weight));
        Ok(())
    })
}

#[test]
fn a_follower_on_nats_processes_each_event_once_and_resumes_after_a_restart() {
    let Some(node) = nats_support::single("the NATS follower test") else {
        return;
    };
    let post_office = Arc::new(app("post_office", &node.url()));
    assert_eq!(
        post_office.persistence().to_string(),
        format!("nats:{}/post_office", node.url())
    );
    for weight in 0..7 {
        post_office.save(&mut Parcel::post(weight)).expect("post");
    }
    {
        let printer =
            ProcessApplication::new(app("printer", &node.url()), labels()).expect("follower");
        assert_eq!(
            printer
                .pull_and_process(&*post_office, Some(4))
                .expect("pull"),
            4
        );
        assert_eq!(printer.position("post_office").expect("position"), Some(4));
    }
    for weight in 7..40 {
        post_office.save(&mut Parcel::post(weight)).expect("post");
    }
    // Two copies of the follower, started again, race through the rest:
    // between them each parcel gets one label, and the position is the end.
    let copies: Vec<_> = [(1, 1), (7, 3)]
        .into_iter()
        .map(|(page_size, batch_size)| {
            let post_office = Arc::clone(&post_office);
            let printer = ProcessApplication::new(app("printer", &node.url()), labels())
                .expect("follower")
                .with_page_size(page_size)
                .with_batch_size(batch_size);
            thread::spawn(move || printer.pull_and_process(&*post_office, None))
        })
        .collect();
    let processed: usize = copies
        .into_iter()
        .map(|copy| copy.join().expect("copy").expect("caught up"))
        .sum();
    assert_eq!(processed, 36, "between them, each parcel processed once");
    let printer = app("printer", &node.url());
    let labels = printer
        .recorder()
        .select_notifications(1, 1000, None, &["Label.Printed"])
        .expect("labels");
    assert_eq!(labels.len(), 40);
    assert_eq!(
        printer
            .process_recorder()
            .max_tracking_id("post_office")
            .expect("max"),
        Some(40)
    );
}

/// A TCP proxy in front of a server that, once armed, lets the next
/// publish through and then loses everything the server answers, and
/// closes the connection: a save whose answer is lost on the way back.
struct LosingProxy {
    port: u16,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
}

impl LosingProxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("address").port();
        let armed = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let (armed_in, cuts_in) = (Arc::clone(&armed), Arc::clone(&cuts));
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let lost = Arc::new(AtomicBool::new(false));
                let (armed, cuts) = (Arc::clone(&armed_in), Arc::clone(&cuts_in));
                let pipes = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let lost_out = Arc::clone(&lost);
                thread::spawn(move || {
                    pump(client, server, |chunk| {
                        if chunk.windows(8).any(|w| w == b"HPUB es.")
                            && armed.swap(false, Ordering::SeqCst)
                        {
                            lost_out.store(true, Ordering::SeqCst);
                            cuts.fetch_add(1, Ordering::SeqCst);
                        }
                        true
                    })
                });
                thread::spawn(move || {
                    let (client, server) = pipes;
                    let (client_end, server_end) = (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    );
                    let lost_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
                    pump(server, client, move |_| {
                        if !lost.load(Ordering::SeqCst) {
                            return true;
                        }
                        let mut at = lost_at.lock().expect("lock");
                        let since = *at.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_millis(300) {
                            let _ = client_end.shutdown(Shutdown::Both);
                            let _ = server_end.shutdown(Shutdown::Both);
                        }
                        false
                    });
                });
            }
        });
        LosingProxy { port, armed, cuts }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Loses the answer to the next publish; returns once that happened.
    fn lose_next_answer(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to`, chunk by chunk, those `keep` says to keep.
fn pump(mut from: TcpStream, mut to: TcpStream, mut keep: impl FnMut(&[u8]) -> bool) {
    let mut buffer = [0u8; 64 * 1024];
    // Wakes the server-to-client side now and then, so that a lost
    // connection is closed even when the server says nothing more.
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    loop {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                if keep(&buffer[..n]) && to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if !keep(&[]) {
                    continue;
                }
            }
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}

fn stored(id: OriginatorId, version: u64, topic: &str) -> StoredEvent {
    StoredEvent {
        originator_id: id,
        originator_version: version,
        topic: topic.into(),
        state: format!("{{\"v\":{version}}}").into_bytes(),
    }
}

#[test]
fn a_save_whose_answer_is_lost_is_retried_without_writing_twice() {
    let Some(node) = nats_support::single("the lost-answer test") else {
        return;
    };
    let proxy = LosingProxy::start(node.port);
    let config = NatsConfig::new(proxy.url(), "lost_answers")
        .expect("config")
        .request_timeout(Duration::from_secs(1));
    let recorder = NatsRecorder::events(&NatsConnection::connect(&config).expect("connect"), true)
        .expect("recorder");
    let (a, b) = (
        OriginatorId::from(Uuid::new_v4()),
        OriginatorId::from(Uuid::new_v4()),
    );

    // One event alone, then a batch of two aggregates, then a follower's position.
    proxy.lose_next_answer();
    let started = Instant::now();
    let first = recorder
        .insert_events(&[stored(a.clone(), 1, "A")])
        .expect("saved once");
    // Answered only after the connection was lost and made again.
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1, "the answer was lost");
    proxy.lose_next_answer();
    let batch = [
        stored(a.clone(), 2, "A"),
        stored(b.clone(), 1, "B"),
        stored(a.clone(), 3, "A"),
    ];
    let ids = recorder.insert_events(&batch).expect("saved once");
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 2, "the answer was lost");
    proxy.lose_next_answer();
    recorder
        .insert_tracking(&Tracking::new("upstream", 9))
        .expect("recorded once");
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 3, "the answer was lost");

    let log = recorder
        .select_notifications(1, 100, None, &[])
        .expect("log");
    let logged: Vec<_> = log
        .iter()
        .map(|n| (n.id, n.event.originator_version))
        .collect();
    let expected: Vec<_> = first
        .iter()
        .chain(&ids)
        .copied()
        .zip([1, 2, 1, 3])
        .collect();
    assert_eq!(
        logged, expected,
        "each event once, under the ids the saves returned"
    );
    assert_eq!(
        recorder
            .select_events(&a, EventQuery::new())
            .expect("a")
            .len(),
        3
    );
    assert_eq!(recorder.max_tracking_id("upstream").expect("max"), Some(9));
    reliability_log::record(reliability_log::Trial {
        fault: "the answer to a save lost with its connection (a single event, a batch of two aggregates, a tracking record)",
        backend: "nats",
        trials: 3,
        checked: "each save retried to success, its events once in the log under the ids returned"
            .into(),
    });
}

#[test]
fn topics_nats_would_alter_are_refused_and_nothing_is_written() {
    let Some(node) = nats_support::single("the NATS topics test") else {
        return;
    };
    let config = NatsConfig::new(node.url(), "topics").expect("config");
    let recorder = NatsRecorder::events(&NatsConnection::connect(&config).expect("connect"), true)
        .expect("recorder");
    let id = OriginatorId::from(Uuid::new_v4());
    for topic in ["", " Padded", "Padded ", "Two\nLines", "Carriage\rReturn"] {
        let error = recorder
            .insert_events(&[stored(id.clone(), 1, "Fine"), stored(id.clone(), 2, topic)])
            .expect_err(topic);
        assert!(matches!(error, Error::Encode { .. }), "{topic:?}: {error}");
    }
    assert_eq!(recorder.max_notification_id().expect("max"), None);
    let oversized = StoredEvent {
        state: vec![0; 9 << 20],
        ..stored(id.clone(), 1, "Huge")
    };
    let error = recorder
        .insert_events(&[oversized])
        .expect_err("over max_payload");
    assert!(error.to_string().contains("max_payload"), "{error}");
    assert_eq!(recorder.max_notification_id().expect("max"), None);
}

#[test]
fn an_unreachable_server_is_a_clear_error_within_the_timeout() {
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("address").port();
    drop(closed);
    let started = Instant::now();
    let environment = Environment::from_vars([
        ("PERSISTENCE_MODULE", "nats".to_owned()),
        ("NATS_URL", format!("nats://127.0.0.1:{port}")),
        ("NATS_TIMEOUT", "1".to_owned()),
    ]);
    let error = Application::builder()
        .environment(environment)
        .build()
        .expect_err("no server");
    assert!(error.to_string().contains("connecting to NATS"), "{error}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// Debian's nats-server (2.9) lacks atomic batch publish: refused, naming
/// the versions, rather than used with saves that could be half written.
#[test]
fn a_server_older_than_2_12_is_refused_naming_its_version() {
    let debian = std::path::Path::new("/usr/sbin/nats-server");
    if !debian.is_file() {
        eprintln!("SKIPPED: no Debian nats-server at /usr/sbin/nats-server to be refused");
        return;
    }
    let free = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = free.local_addr().expect("address").port();
    drop(free);
    let mut server = std::process::Command::new(debian)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start Debian's nats-server");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let config = NatsConfig::new(format!("nats://127.0.0.1:{port}"), "old").expect("config");
    let outcome = NatsConnection::connect(&config);
    let _ = server.kill();
    let _ = server.wait();
    match outcome {
        Err(error @ Error::Config { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains("2.12 or later") && message.contains("2."),
                "{message}"
            );
        }
        Err(other) => panic!("not a configuration error: {other}"),
        Ok(_) => eprintln!("SKIPPED: /usr/sbin/nats-server is 2.12 or later"),
    }
}
