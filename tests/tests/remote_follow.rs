//! A follower kept up to date with a log served over HTTP by a
//! `FollowerRunner`: woken by the remote leader's long poll, not by its poll
//! interval (an hour here), and still following after the log's server went
//! away and came back on the same port.

#[path = "../bin/box_office.rs"]
mod box_office;

use std::sync::Arc;
use std::time::{Duration, Instant};

use es_core::interface::http::{RemoteLeader, RemoteLog, log_router};
use es_core::persistence::Mapper;
use es_core::prelude::*;
use es_core::system::{FollowerRunner, ProcessApplication};

use box_office::{FOLLOWER, LEADER, Ticket};

/// Far longer than any wait below: only the listener can wake the runner.
const POLL_INTERVAL: Duration = Duration::from_secs(3600);
/// The latest a sale may be heard.
const HEARD_WITHIN: Duration = Duration::from_secs(3);

/// The leader's log served on `port` (0 for a free one) until dropped.
struct LogServer {
    port: u16,
    runtime: Option<tokio::runtime::Runtime>,
}

impl LogServer {
    fn start(leader: &Arc<Application>, port: u16) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .expect("the port");
        let port = listener.local_addr().expect("an address").port();
        let router = log_router([Arc::clone(leader)]).expect("a router");
        runtime.spawn(async move { axum::serve(listener, router).await });
        LogServer {
            port,
            runtime: Some(runtime),
        }
    }
}

impl Drop for LogServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Open long polls are cut off, as when the server's process dies.
            runtime.shutdown_timeout(Duration::from_millis(100));
        }
    }
}

fn sell_and_time(
    leader: &Application,
    runner: &FollowerRunner<ProcessApplication>,
    seat: u64,
) -> Duration {
    let saved = leader.save(&mut Ticket::sell(seat)).expect("a sale");
    let started = Instant::now();
    runner
        .wait(saved[0].notification_id, HEARD_WITHIN)
        .unwrap_or_else(|error| panic!("sale {seat}: {error}"));
    started.elapsed()
}

#[test]
fn a_follower_runner_hears_a_remote_leader_without_polling_and_across_its_restart() {
    let leader = Arc::new(
        Application::builder()
            .name(LEADER)
            .in_memory()
            .build()
            .expect("the leader"),
    );
    leader.save(&mut Ticket::sell(0)).expect("a first sale");
    let server = LogServer::start(&leader, 0);
    let port = server.port;
    let follower = ProcessApplication::new(
        Application::builder()
            .name(FOLLOWER)
            .in_memory()
            .build()
            .expect("the follower"),
        box_office::receipts(),
    )
    .expect("a process application");
    let remote = RemoteLeader::new(
        RemoteLog::new(&format!("http://127.0.0.1:{port}"), LEADER),
        Mapper::default(),
    );
    let runner =
        FollowerRunner::start_with_poll_interval(Arc::new(remote), follower, POLL_INTERVAL)
            .expect("the runner");
    runner
        .wait(1, HEARD_WITHIN)
        .expect("the first sale, caught up at start");
    for seat in 1..=5 {
        // Between sales, the listener's long poll is left waiting at the server.
        std::thread::sleep(Duration::from_millis(200));
        let heard = sell_and_time(&leader, &runner, seat);
        assert!(heard < HEARD_WITHIN, "sale {seat} heard after {heard:?}");
    }

    drop(server);
    leader
        .save(&mut Ticket::sell(6))
        .expect("a sale while the log is not served");
    std::thread::sleep(Duration::from_millis(500));
    let _server = LogServer::start(&leader, port);
    runner
        .wait(7, Duration::from_secs(20))
        .expect("the sale made while the server was away, once it is back");
    sell_and_time(&leader, &runner, 7);
    assert_eq!(
        runner.follower().position(LEADER).expect("a position"),
        Some(8)
    );
    let receipts = runner
        .follower()
        .application()
        .notification_log()
        .select(1, 100)
        .expect("the receipts");
    assert_eq!(receipts.len(), 8, "each sale has exactly one receipt");
    runner.stop().expect("a runner that never failed");
}
