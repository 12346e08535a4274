//! The process the follower crash test kills: a follower that catches up
//! with the box office's log, receipt by receipt, until it is killed or done.
//!
//! ```text
//! crash-follower <page-size> <batch-size> <leader.sqlite3> sqlite <follower.sqlite3>
//! crash-follower <page-size> <batch-size> <leader.sqlite3> postgres <url> <table-prefix>
//! ```
//!
//! Prints `ready` once both stores are open and `done` when nothing is left
//! to process. Any error is printed to stderr and ends the process with
//! status 1.

mod box_office;
mod child;

use child::Child;

const CHILD: Child = Child {
    name: "crash-follower",
    usage: "crash-follower <page-size> <batch-size> <leader.sqlite3> (sqlite <path> | postgres <url> <table-prefix>)",
};

use es_core::prelude::*;
use es_core::system::ProcessApplication;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [page_size, batch_size, leader, store @ ..] = args.as_slice() else {
        CHILD.usage()
    };
    let page_size: usize = page_size.parse().unwrap_or_else(|_| CHILD.usage());
    let batch_size: usize = batch_size.parse().unwrap_or_else(|_| CHILD.usage());
    let leader = Application::builder()
        .name(box_office::LEADER)
        .sqlite(leader)
        .build()
        .unwrap_or_else(|error| CHILD.fail("opening the leader", error));
    let follower =
        CHILD.open(CHILD.store(Application::builder().name(box_office::FOLLOWER), store));
    let follower = ProcessApplication::new(follower, box_office::receipts())
        .unwrap_or_else(|error| CHILD.fail("the follower", error))
        .with_page_size(page_size)
        .with_batch_size(batch_size);
    CHILD.say("ready");
    loop {
        match follower.pull_and_process(&leader, None) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => CHILD.fail("processing", error),
        }
    }
    CHILD.say("done");
}
