//! A runner whose database goes away (a server restarting: the port closed,
//! every connection cut) keeps its followers: they try again, and once the
//! server is back they process what the leader saved, each event once. The
//! server is reached through a proxy on loopback that the test takes down
//! and brings back up.

#[path = "../bin/box_office.rs"]
mod box_office;

#[path = "pg_support/mod.rs"]
mod pg_support;

mod reliability_log;

use std::sync::Arc;
use std::time::Duration;

use es_core::persistence::{PostgresConfig, PostgresDatabase, PostgresView};
use es_core::prelude::*;
use es_core::system::{
    MultiThreadedRunner, ProcessApplication, Projection, ProjectionRunner, System,
};

use box_office::{FOLLOWER, LEADER, ReceiptEvent, Ticket, TicketEvent};
use pg_support::{DropTables, StallingProxy, server, unique_prefix};

/// How long the server is away: several of the runners' tries.
const OUTAGE: Duration = Duration::from_millis(1500);
/// After the server is back, the longest the followers may take: their
/// longest wait between tries (a few seconds by then) and the work.
const AFTER: Duration = Duration::from_secs(20);

/// The test server's configuration through a new proxy, and the proxy.
fn through_proxy(test: &str) -> Option<(PostgresConfig, StallingProxy)> {
    let server_config = server(test)?;
    let proxy = StallingProxy::start(format!("{}:{}", server_config.host, server_config.port))
        .expect("proxy");
    let mut config = server_config;
    config.host = "127.0.0.1".into();
    config.port = proxy.port;
    config.connect_timeout = Duration::from_secs(1);
    Some((config, proxy))
}

fn app(config: &PostgresConfig, prefix: &str, name: &str) -> Application {
    let mut config = config.clone();
    config.table_prefix = Some(format!("{prefix}_{name}"));
    Application::builder()
        .name(name)
        .postgres(config)
        .build()
        .expect("app")
}

fn sell(leader: &Application, seats: std::ops::Range<u64>) -> u64 {
    let mut last = 0;
    for seat in seats {
        last = leader.save(&mut Ticket::sell(seat)).expect("sell")[0].notification_id;
    }
    last
}

/// Takes the database away and back `ES_FAULT_SCALE` times; after each
/// outage, sells 5 more tickets and hands `caught_up` the last sale's id to
/// wait for. How many outages there were.
fn outages(proxy: &StallingProxy, leader: &Application, caught_up: impl Fn(u64)) -> u64 {
    let outages = reliability_log::scale() as u64;
    for outage in 0..outages {
        proxy.down();
        std::thread::sleep(OUTAGE);
        proxy.up().expect("the proxy back on its port");
        caught_up(sell(leader, 5 + outage * 5..10 + outage * 5));
    }
    outages
}

#[test]
fn the_multi_threaded_runner_carries_on_after_its_database_comes_back() {
    let Some((config, proxy)) =
        through_proxy("the_multi_threaded_runner_carries_on_after_its_database_comes_back")
    else {
        return;
    };
    let prefix = unique_prefix();
    let _drop = [LEADER, FOLLOWER].map(|name| DropTables::new(&format!("{prefix}_{name}")));
    let system = System::builder()
        .application(app(&config, &prefix, LEADER))
        .process(
            ProcessApplication::new(app(&config, &prefix, FOLLOWER), box_office::receipts())
                .expect("follower"),
        )
        .pipe([LEADER, FOLLOWER])
        .build()
        .expect("system");
    let runner = MultiThreadedRunner::start_with_poll_interval(system, Duration::from_millis(100))
        .expect("runner");
    let leader = runner.application(LEADER).expect("leader");
    let first = sell(leader, 0..5);
    runner
        .wait(FOLLOWER, LEADER, first, Duration::from_secs(10))
        .expect("before the outage");

    let outages = outages(&proxy, leader, |last| {
        runner
            .wait(FOLLOWER, LEADER, last, AFTER)
            .expect("the follower carried on");
    });
    assert!(runner.errors().is_empty(), "{:?}", runner.errors());
    let follower = runner.application(FOLLOWER).expect("follower");
    let receipts = follower
        .notification_log()
        .select(1, 100)
        .expect("receipts");
    let mut sales: Vec<u64> = receipts
        .iter()
        .map(|notification| {
            let ReceiptEvent::Issued { sale } = follower
                .mapper()
                .to_domain_event::<ReceiptEvent>(&notification.event)
                .expect("a receipt")
                .payload;
            sale
        })
        .collect();
    sales.sort_unstable();
    let sold: Vec<u64> = leader
        .notification_log()
        .select(1, 100)
        .expect("sales")
        .iter()
        .map(|notification| notification.id)
        .collect();
    assert_eq!(sales, sold, "one receipt per sale");
    runner.stop().expect("stop");
    reliability_log::record(reliability_log::Trial {
        fault: "the database of a running multi-threaded runner gone (port closed, connections cut) and back",
        backend: "postgres",
        trials: outages as usize,
        checked: format!(
            "{} sales, one receipt each; no follower stopped",
            sold.len()
        ),
    });
}

#[test]
fn the_projection_runner_carries_on_after_its_database_comes_back() {
    let Some((config, proxy)) =
        through_proxy("the_projection_runner_carries_on_after_its_database_comes_back")
    else {
        return;
    };
    let prefix = unique_prefix();
    let _drop = DropTables::new(&format!("{prefix}_{LEADER}"));
    let leader = Arc::new(app(&config, &prefix, LEADER));
    let view = PostgresView::new(PostgresDatabase::open(&config).expect("db")).expect("view");
    let table = format!("\"{}\".{prefix}_seats", view.schema());
    view.batch_execute(&format!("CREATE TABLE {table} (seat bigint PRIMARY KEY)"))
        .expect("table");
    let _drop_view = DropView(view.clone(), table.clone(), prefix.clone());
    let insert = format!("INSERT INTO {table} VALUES ($1)");
    let projection = Projection::new(format!("{prefix}_seats"), view.clone()).on(
        move |event: DomainEvent<TicketEvent>, transaction| {
            let TicketEvent::Sold { seat } = event.payload;
            transaction.execute(&insert, &[&i64::try_from(seat)?])?;
            Ok(())
        },
    );
    let runner = ProjectionRunner::start_with_poll_interval(
        Arc::clone(&leader),
        projection,
        Duration::from_millis(100),
    )
    .expect("runner");
    let first = sell(&leader, 0..5);
    runner
        .wait(first, Duration::from_secs(10))
        .expect("before the outage");

    let outages = outages(&proxy, &leader, |last| {
        runner.wait(last, AFTER).expect("the projection carried on");
    });
    assert!(runner.failure().is_none());
    let seats: i64 = view
        .read(|client| client.query_one(&format!("SELECT count(*) FROM {table}"), &[]))
        .expect("count")
        .get(0);
    let sold = 5 + 5 * outages;
    assert_eq!(seats, sold as i64, "one row per sale");
    runner.stop().expect("stop");
    reliability_log::record(reliability_log::Trial {
        fault: "the database of a running projection runner gone (port closed, connections cut) and back",
        backend: "postgres",
        trials: outages as usize,
        checked: format!("{sold} sales, one view row each; the runner never stopped"),
    });
}

/// Drops the view's table and its positions when the test is done.
struct DropView(PostgresView, String, String);

impl Drop for DropView {
    fn drop(&mut self) {
        let DropView(view, table, projection) = self;
        let _ = view.batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}; DELETE FROM \"{}\".projection_tracking \
             WHERE projection = '{projection}_seats'",
            view.schema()
        ));
    }
}
