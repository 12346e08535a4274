//! The process the follower crash test kills: a follower that catches up
//! with the box office's log, receipt by receipt, until it is killed or done.
//!
//! ```text
//! crash-follower <page-size> <batch-size> <leader> sqlite <follower.sqlite3>
//! crash-follower <page-size> <batch-size> <leader> postgres <url> <table-prefix>
//! ```
//!
//! The leader is its SQLite file, or the URL of a log server
//! (`http://host:port`), whose going away for a moment (the server killed and
//! started again) the follower rides out, as a runner would. Prints `ready`
//! once both stores are open and `done` when nothing is left to process. Any
//! other error is printed to stderr and ends the process with status 1.

mod box_office;
mod child;

use child::Child;

const CHILD: Child = Child {
    name: "crash-follower",
    usage: "crash-follower <page-size> <batch-size> (<leader.sqlite3> | http://<host>:<port>) \
            (sqlite <path> | postgres <url> <table-prefix>)",
};

use std::time::{Duration, Instant};

use es_core::interface::http::{RemoteLeader, RemoteLog};
use es_core::persistence::Mapper;
use es_core::prelude::*;
use es_core::system::{Leader, ProcessApplication, SystemError};

/// How long the follower rides out a leader it cannot reach.
const UNREACHABLE_FOR_AT_MOST: Duration = Duration::from_secs(20);

fn open_leader(argument: &str) -> Box<dyn Leader> {
    if argument.starts_with("http://") {
        let log = RemoteLog::new(argument, box_office::LEADER);
        return Box::new(RemoteLeader::new(log, Mapper::default()));
    }
    Box::new(
        Application::builder()
            .name(box_office::LEADER)
            .sqlite(argument)
            .build()
            .unwrap_or_else(|error| CHILD.fail("opening the leader", error)),
    )
}

/// Whether the leader (or the follower's store) could not be reached.
fn unreachable(error: &SystemError) -> bool {
    matches!(error, SystemError::Store { source, .. } if matches!(**source, es_core::Error::Database { .. }))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [page_size, batch_size, leader, store @ ..] = args.as_slice() else {
        CHILD.usage()
    };
    let page_size: usize = page_size.parse().unwrap_or_else(|_| CHILD.usage());
    let batch_size: usize = batch_size.parse().unwrap_or_else(|_| CHILD.usage());
    let leader = open_leader(leader);
    let follower =
        CHILD.open(CHILD.store(Application::builder().name(box_office::FOLLOWER), store));
    let follower = ProcessApplication::new(follower, box_office::receipts())
        .unwrap_or_else(|error| CHILD.fail("the follower", error))
        .with_page_size(page_size)
        .with_batch_size(batch_size);
    CHILD.say("ready");
    let mut unreachable_since = None;
    loop {
        match follower.pull_and_process(&*leader, None) {
            Ok(0) => break,
            Ok(_) => unreachable_since = None,
            Err(error) if unreachable(&error) => {
                let since = *unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() > UNREACHABLE_FOR_AT_MOST {
                    CHILD.fail("processing", error);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(error) => CHILD.fail("processing", error),
        }
    }
    CHILD.say("done");
}
