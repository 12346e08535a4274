//! Systems of applications: followers process each leader event exactly
//! once, stop at a failure naming the event, resume after restarts, and
//! systems are checked when declared.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use es_core::persistence::{Notification, StoredEvent};
use es_core::prelude::*;
use es_core::system::{
    Leader, MultiThreadedRunner, Policies, ProcessApplication, SingleThreadedRunner, System,
    SystemError,
};
use es_core::{AnyEvent, BoxError, Error};

#[aggregate]
pub struct Ticket {
    seat: u32,
}

#[aggregate]
impl Ticket {
    #[event("Sold")]
    pub fn sell(seat: u32) -> Self {
        Ticket { seat }
    }
}

#[aggregate]
pub struct Receipt {
    seat: u32,
}

#[aggregate]
impl Receipt {
    /// One receipt per ticket: a second would conflict on its id.
    #[event("Issued", id = create_id(&format!("receipt-{ticket}")))]
    pub fn issue(ticket: OriginatorId, seat: u32) -> Self {
        let _ = ticket;
        Receipt { seat }
    }
}

fn app(name: &str) -> Application {
    Application::builder()
        .name(name)
        .in_memory()
        .build()
        .expect("app")
}

fn sqlite_app(name: &str, dir: &std::path::Path) -> Application {
    Application::builder()
        .name(name)
        .sqlite(dir.join(format!("{name}.sqlite3")))
        .build()
        .expect("app")
}

/// Issues a receipt per ticket sold.
fn receipts() -> Policies {
    Policies::new().on(|event: DomainEvent<TicketEvent>, context| {
        let TicketEvent::Sold { seat } = event.payload;
        context.collect(Receipt::issue(event.originator_id, seat));
        Ok(())
    })
}

fn receipt_count(app: &Application) -> usize {
    app.recorder()
        .select_notifications(1, 100_000, None, &["Receipt.Issued"])
        .expect("log")
        .len()
}

fn sell(leader: &Application, seats: std::ops::Range<u32>) {
    for seat in seats {
        leader.save(&mut Ticket::sell(seat)).expect("sell");
    }
}

#[test]
fn a_follower_processes_each_event_once_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let box_office = sqlite_app("box_office", dir.path());
    sell(&box_office, 0..7);
    {
        let accounts = ProcessApplication::new(sqlite_app("accounts", dir.path()), receipts())
            .expect("follower");
        assert_eq!(
            accounts
                .pull_and_process(&box_office, Some(4))
                .expect("pull"),
            4
        );
        assert_eq!(accounts.position("box_office").expect("position"), Some(4));
    }
    sell(&box_office, 7..10);
    // The follower's process ended; a new one resumes after the 4th ticket.
    let accounts = ProcessApplication::new(sqlite_app("accounts", dir.path()), receipts())
        .expect("follower")
        .with_page_size(3);
    assert_eq!(
        accounts.pull_and_process(&box_office, None).expect("pull"),
        6
    );
    assert_eq!(
        accounts.pull_and_process(&box_office, None).expect("pull"),
        0
    );
    assert_eq!(receipt_count(accounts.application()), 10);
    assert_eq!(accounts.position("box_office").expect("position"), Some(10));
}

#[test]
fn two_copies_of_a_follower_never_record_an_event_twice() {
    let dir = tempfile::tempdir().expect("dir");
    let box_office = Arc::new(sqlite_app("box_office", dir.path()));
    sell(&box_office, 0..60);
    let copies: Vec<_> = [(1, 1), (7, 3)]
        .into_iter()
        .map(|(page_size, batch_size)| {
            let box_office = Arc::clone(&box_office);
            let follower = ProcessApplication::new(sqlite_app("accounts", dir.path()), receipts())
                .expect("follower")
                .with_page_size(page_size)
                .with_batch_size(batch_size);
            // A copy that finds part of a batch recorded by the other goes on
            // after the other's position, without an error.
            std::thread::spawn(move || follower.pull_and_process(&*box_office, None))
        })
        .collect();
    let mut processed = 0;
    for copy in copies {
        processed += copy.join().expect("copy").expect("caught up");
    }
    assert_eq!(processed, 60, "between them, each event processed once");
    let accounts = sqlite_app("accounts", dir.path());
    assert_eq!(receipt_count(&accounts), 60);
    assert_eq!(
        accounts
            .process_recorder()
            .max_tracking_id("box_office")
            .expect("max"),
        Some(60)
    );
}

/// A leader whose first read lets another copy of the follower process the
/// log up to `stop` first: as when a killed follower's last commit reaches
/// the server after its successor has read its position.
struct Overtaking<'a> {
    leader: &'a Application,
    other: &'a ProcessApplication,
    stop: u64,
    overtaken: AtomicBool,
}

impl Leader for Overtaking<'_> {
    fn leader_name(&self) -> &str {
        self.leader.leader_name()
    }

    fn notifications(&self, start: u64, limit: usize) -> es_core::Result<Vec<Notification>> {
        if !self.overtaken.swap(true, Ordering::SeqCst) {
            self.other
                .pull_and_process(self.leader, Some(self.stop))
                .expect("the other copy");
        }
        self.leader.notifications(start, limit)
    }

    fn decode(&self, stored: &StoredEvent) -> es_core::Result<DomainEvent<Box<dyn AnyEvent>>> {
        self.leader.decode(stored)
    }

    fn last_id(&self) -> es_core::Result<Option<u64>> {
        self.leader.last_id()
    }
}

#[test]
fn a_follower_overtaken_within_a_batch_goes_on_after_the_recorded_position() {
    for (batch_size, stop) in [(4, 3), (4, 1), (1, 1), (100, 9)] {
        let dir = tempfile::tempdir().expect("dir");
        let box_office = sqlite_app("box_office", dir.path());
        sell(&box_office, 0..10);
        let follower = |batch_size| {
            ProcessApplication::new(sqlite_app("accounts", dir.path()), receipts())
                .expect("follower")
                .with_batch_size(batch_size)
        };
        let (late, successor) = (follower(1), follower(batch_size));
        let overtaking = Overtaking {
            leader: &box_office,
            other: &late,
            stop,
            overtaken: AtomicBool::new(false),
        };
        let processed = successor
            .pull_and_process(&overtaking, None)
            .expect("overtaken, not failed");
        assert_eq!(processed, 10 - stop as usize, "batch size {batch_size}");
        assert_eq!(receipt_count(successor.application()), 10);
        assert_eq!(
            successor.position("box_office").expect("position"),
            Some(10)
        );
    }
}

#[test]
fn an_event_that_does_not_decode_stops_only_the_follower_that_reads_it() {
    let box_office = app("box_office");
    sell(&box_office, 0..2);
    box_office
        .recorder()
        .insert_events(&[StoredEvent {
            originator_id: Uuid::new_v4().into(),
            originator_version: 1,
            topic: "Ticket.Refunded".into(),
            state: b"{}".to_vec(),
        }])
        .expect("a row another program wrote");
    sell(&box_office, 2..3);

    // A follower of every event meets the unknown topic.
    let audit = ProcessApplication::new(
        app("audit"),
        |_: DomainEvent<Box<dyn AnyEvent>>, _: &mut es_core::system::ProcessingContext<'_>| {
            Ok::<(), BoxError>(())
        },
    )
    .expect("follower");
    let error = audit
        .pull_and_process(&box_office, None)
        .expect_err("unknown topic");
    match &error {
        SystemError::Decode {
            follower,
            leader,
            notification_id,
            topic,
            source,
        } => {
            assert_eq!(
                (follower.as_str(), leader.as_str(), *notification_id),
                ("audit", "box_office", 3)
            );
            assert_eq!(topic, "Ticket.Refunded");
            assert!(matches!(**source, Error::UnknownTopic { .. }), "{source:?}");
        }
        other => panic!("{other:?}"),
    }
    let message = error.to_string();
    assert!(
        message.contains("box_office") && message.contains("Ticket.Refunded"),
        "{message}"
    );
    assert_eq!(audit.position("box_office").expect("position"), Some(2));

    // A follower of tickets' events only never decodes it, and goes on.
    let accounts = ProcessApplication::new(app("accounts"), receipts()).expect("follower");
    assert_eq!(
        accounts.pull_and_process(&box_office, None).expect("pull"),
        3
    );
    assert_eq!(accounts.position("box_office").expect("position"), Some(4));
}

#[test]
fn a_policy_error_records_nothing_and_the_event_is_processed_once_fixed() {
    let box_office = app("box_office");
    sell(&box_office, 0..3);
    let broken = Arc::new(AtomicBool::new(true));
    let policy = {
        let broken = Arc::clone(&broken);
        Policies::new().on(move |event: DomainEvent<TicketEvent>, context| {
            let TicketEvent::Sold { seat } = event.payload;
            context.collect(Receipt::issue(event.originator_id, seat));
            if seat == 1 && broken.load(Ordering::SeqCst) {
                return Err("the printer is out of paper".into());
            }
            Ok(())
        })
    };
    let accounts = ProcessApplication::new(app("accounts"), policy).expect("follower");
    let error = accounts
        .pull_and_process(&box_office, None)
        .expect_err("seat 1 fails");
    assert!(
        matches!(&error, SystemError::Policy { notification_id: 2, topic, .. } if topic == "Ticket.Sold"),
        "{error:?}"
    );
    assert!(error.to_string().contains("out of paper"), "{error}");
    assert_eq!(receipt_count(accounts.application()), 1);
    assert_eq!(accounts.position("box_office").expect("position"), Some(1));
    broken.store(false, Ordering::SeqCst);
    assert_eq!(
        accounts.pull_and_process(&box_office, None).expect("pull"),
        2
    );
    assert_eq!(receipt_count(accounts.application()), 3);
}

#[test]
fn events_a_policy_does_not_want_move_the_position_without_being_decoded() {
    let box_office = app("box_office");
    box_office
        .recorder()
        .insert_events(&[StoredEvent {
            originator_id: Uuid::new_v4().into(),
            originator_version: 1,
            topic: "Kiosk.Opened".into(),
            state: b"not even JSON".to_vec(),
        }])
        .expect("insert");
    let accounts = ProcessApplication::new(app("accounts"), receipts()).expect("follower");
    assert_eq!(
        accounts.pull_and_process(&box_office, None).expect("pull"),
        0
    );
    assert_eq!(accounts.position("box_office").expect("position"), Some(1));
    sell(&box_office, 0..1);
    assert_eq!(
        accounts.pull_and_process(&box_office, None).expect("pull"),
        1
    );
}

#[test]
fn a_system_is_checked_when_it_is_built() {
    let invalid = |builder: es_core::system::SystemBuilder, says: &str| {
        let error = builder.build().expect_err("invalid");
        assert!(matches!(error, SystemError::Invalid(_)), "{error:?}");
        assert!(
            error.to_string().contains(says),
            "{error} should say {says:?}"
        );
    };
    let follower = || ProcessApplication::new(app("accounts"), receipts()).expect("follower");
    invalid(
        System::builder()
            .application(app("box_office"))
            .process(follower())
            .pipe(["box_office", "acounts"]),
        "\"acounts\", which is not an application",
    );
    invalid(
        System::builder()
            .application(app("box_office"))
            .application(app("box_office")),
        "two applications are named \"box_office\"",
    );
    invalid(
        System::builder()
            .application(app("box_office"))
            .application(app("accounts"))
            .pipe(["box_office", "accounts"]),
        "add it as a ProcessApplication",
    );
    invalid(
        System::builder().application(Application::builder().in_memory().build().expect("app")),
        "needs a name",
    );
    invalid(
        System::builder()
            .application(app("box_office"))
            .pipe(["box_office"]),
        "fewer than two",
    );
    invalid(
        System::builder()
            .process(follower())
            .pipe(["accounts", "accounts"]),
        "follow itself",
    );
    invalid(
        System::builder()
            .application(app("box_office"))
            .process(ProcessApplication::new(app("accounts"), Policies::new()).expect("follower"))
            .pipe(["box_office", "accounts"]),
        "wants none of the",
    );
    assert!(
        ProcessApplication::new(
            Application::builder().in_memory().build().expect("app"),
            receipts()
        )
        .is_err()
    );
    let system = System::builder()
        .application(app("box_office"))
        .process(follower())
        .pipe(["box_office", "accounts"])
        .pipe(["box_office", "accounts"])
        .build()
        .expect("valid");
    assert_eq!(system.leaders_of("accounts"), ["box_office"]);
    assert_eq!(system.followers_of("box_office"), ["accounts"]);
}

fn failing_system() -> System {
    failing_system_in_order(false)
}

/// A system where `superstition` fails at seat 13 and `accounts` does not;
/// `superstition`'s pipe first if `failing_first`.
fn failing_system_in_order(failing_first: bool) -> System {
    let fails = Policies::new().on(|event: DomainEvent<TicketEvent>, _| {
        let TicketEvent::Sold { seat } = event.payload;
        if seat == 13 {
            return Err("unlucky seat".into());
        }
        Ok(())
    });
    let builder = System::builder()
        .application(app("box_office"))
        .process(ProcessApplication::new(app("accounts"), receipts()).expect("follower"))
        .process(ProcessApplication::new(app("superstition"), fails).expect("follower"));
    let (first, second) = if failing_first {
        ("superstition", "accounts")
    } else {
        ("accounts", "superstition")
    };
    builder
        .pipe(["box_office", first])
        .pipe(["box_office", second])
        .build()
        .expect("system")
}

#[test]
fn under_the_single_threaded_runner_the_other_followers_carry_on_past_a_failure() {
    let runner = SingleThreadedRunner::start(failing_system_in_order(true)).expect("runner");
    let box_office = runner.application("box_office").expect("app");
    box_office
        .save(&mut Ticket::sell(13))
        .expect_err("superstition fails");
    box_office
        .save(&mut Ticket::sell(14))
        .expect_err("superstition is still stuck at 13");
    // Accounts, after the failing follower in every round, saw both.
    assert_eq!(
        receipt_count(runner.application("accounts").expect("app")),
        2
    );
}

#[test]
fn under_the_single_threaded_runner_a_follower_failure_is_the_saves_error() {
    let runner = SingleThreadedRunner::start(failing_system()).expect("runner");
    let box_office = runner.application("box_office").expect("app");
    let error = box_office
        .save(&mut Ticket::sell(13))
        .expect_err("the follower fails");
    let Error::Subscriber { source, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(source.to_string().contains("unlucky seat"), "{source}");
    // The ticket was sold all the same, and the other follower processed it.
    assert_eq!(
        box_office.notification_log().max_id().expect("max"),
        Some(1)
    );
    assert_eq!(
        receipt_count(runner.application("accounts").expect("app")),
        1
    );
    assert!(
        runner.run().is_err(),
        "the failing follower stays at the event"
    );
}

#[test]
fn under_the_multi_threaded_runner_a_failing_follower_stops_and_the_others_go_on() {
    let runner =
        MultiThreadedRunner::start_with_poll_interval(failing_system(), Duration::from_millis(20))
            .expect("runner");
    let box_office = runner.application("box_office").expect("app");
    sell(box_office, 12..15);
    runner
        .wait("accounts", "box_office", 3, Duration::from_secs(10))
        .expect("accounts processes every ticket");
    assert_eq!(
        receipt_count(runner.application("accounts").expect("app")),
        3
    );
    let error = runner
        .wait("superstition", "box_office", 3, Duration::from_secs(10))
        .expect_err("superstition stopped at seat 13");
    assert!(error.to_string().contains("unlucky seat"), "{error}");
    assert_eq!(runner.errors().len(), 1);
    assert!(runner.stop().is_err());
}

/// With a batch latency, events saved one by one while the follower holds
/// back share its transactions: fewer saves than events, the same receipts.
/// (Without it, this test sees about one transaction per sale.)
#[test]
fn a_batch_latency_gathers_events_saved_meanwhile_into_fewer_transactions() {
    let mut accounts = app("accounts");
    let saves = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let saves = Arc::clone(&saves);
        accounts.subscribe(move |_| {
            saves.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    }
    let follower = ProcessApplication::new(accounts, receipts())
        .expect("follower")
        .with_batch_size(100)
        .with_batch_latency(Duration::from_millis(300));
    let system = System::builder()
        .application(app("box_office"))
        .process(follower)
        .pipe(["box_office", "accounts"])
        .build()
        .expect("system");
    let runner = MultiThreadedRunner::start(system).expect("runner");
    let box_office = runner.application("box_office").expect("app");
    // The follower is running and waiting before the sales begin.
    sell(box_office, 0..1);
    runner
        .wait("accounts", "box_office", 1, Duration::from_secs(10))
        .expect("the first ticket processed");
    let before = saves.load(Ordering::SeqCst);
    // A sale every 5 ms: without the latency, each would be a transaction.
    for seat in 1..31 {
        sell(box_office, seat..seat + 1);
        std::thread::sleep(Duration::from_millis(5));
    }
    runner
        .wait("accounts", "box_office", 31, Duration::from_secs(10))
        .expect("every ticket processed");
    assert_eq!(
        receipt_count(runner.application("accounts").expect("app")),
        31
    );
    let transactions = saves.load(Ordering::SeqCst) - before;
    assert!(
        transactions < 10,
        "30 tickets sold in quick succession took {transactions} transactions"
    );
    runner.stop().expect("stop");
}

#[aggregate]
pub struct Tally {
    count: u32,
}

#[aggregate]
impl Tally {
    #[event("Opened", id = create_id("tally"))]
    pub fn open() -> Self {
        Tally { count: 0 }
    }

    #[event("Counted")]
    pub fn count(&mut self, seat: u32) {
        let _ = seat;
        self.count += 1;
    }
}

/// Counts tickets on one aggregate: every event changes the same aggregate,
/// which a batch must see as changed by the events before it in the batch.
/// Seat `fail_at`, if given, fails.
fn tally(fail_at: Option<u32>) -> Policies {
    Policies::new().on(move |event: DomainEvent<TicketEvent>, context| {
        let TicketEvent::Sold { seat } = event.payload;
        if Some(seat) == fail_at {
            return Err(format!("seat {seat} fails").into());
        }
        let mut tally = match context.get::<Tally>(create_id("tally")) {
            Ok(tally) => tally,
            Err(Error::AggregateNotFound { .. }) => Tally::open(),
            Err(error) => return Err(error.into()),
        };
        tally.count(seat);
        context.collect(tally);
        Ok(())
    })
}

/// The follower's log as (id, version, topic), in order.
fn log_of(app: &Application) -> Vec<(String, u64, String)> {
    app.recorder()
        .select_notifications(1, 100_000, None, &[])
        .expect("log")
        .into_iter()
        .map(|n| {
            (
                n.event.originator_id.to_string(),
                n.event.originator_version,
                n.event.topic,
            )
        })
        .collect()
}

/// A leader with tickets and, among them, events no tally wants.
fn mixed_leader() -> Application {
    let leader = app("box_office");
    for seat in 0..40 {
        leader.save(&mut Ticket::sell(seat)).expect("sell");
        if seat % 7 == 3 {
            leader
                .save(&mut Receipt::issue(Uuid::new_v4().into(), seat))
                .expect("other");
        }
    }
    leader
}

#[test]
fn batches_record_what_one_at_a_time_records() {
    let leader = mixed_leader();
    let last = leader.notification_log().max_id().expect("max");
    let mut logs = Vec::new();
    for (batch, page) in [(1, 100), (3, 5), (7, 100), (100, 9), (1_000, 1_000)] {
        let follower = ProcessApplication::new(app("tally"), tally(None))
            .expect("follower")
            .with_batch_size(batch)
            .with_page_size(page);
        assert_eq!(
            follower.pull_and_process(&leader, None).expect("pull"),
            40,
            "batch {batch}"
        );
        assert_eq!(
            follower.position("box_office").expect("position"),
            last,
            "batch {batch}"
        );
        let tally: Tally = follower
            .application()
            .repository()
            .get(create_id("tally"))
            .expect("tally");
        assert_eq!(tally.count, 40, "batch {batch}");
        logs.push(log_of(follower.application()));
    }
    assert!(logs.windows(2).all(|pair| pair[0] == pair[1]));
}

#[test]
fn a_failure_inside_a_batch_leaves_what_one_at_a_time_leaves() {
    let leader = mixed_leader();
    let mut outcomes = Vec::new();
    for batch in [1, 4, 50] {
        let follower = ProcessApplication::new(app("tally"), tally(Some(17)))
            .expect("follower")
            .with_batch_size(batch);
        let error = follower
            .pull_and_process(&leader, None)
            .expect_err("seat 17 fails");
        let SystemError::Policy {
            notification_id, ..
        } = error
        else {
            panic!("{error:?}");
        };
        let position = follower.position("box_office").expect("position");
        assert!(position < Some(notification_id), "batch {batch}");
        outcomes.push((notification_id, position, log_of(follower.application())));
    }
    assert!(
        outcomes.windows(2).all(|pair| pair[0] == pair[1]),
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes[0].2.len(),
        18,
        "the tally opened and counted seats 0 to 16"
    );
}

#[test]
fn a_leader_without_a_name_is_refused_rather_than_sharing_a_position() {
    let unnamed = Application::builder().in_memory().build().expect("app");
    sell(&unnamed, 0..2);
    let accounts = ProcessApplication::new(app("accounts"), receipts()).expect("follower");
    let error = accounts
        .pull_and_process(&unnamed, None)
        .expect_err("no name to keep the position under");
    assert!(matches!(error, SystemError::Invalid(_)), "{error:?}");
    assert!(error.to_string().contains("without a name"), "{error}");
    assert_eq!(receipt_count(accounts.application()), 0);
}
