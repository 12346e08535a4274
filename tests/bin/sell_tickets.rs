//! Another process saving to a leader's store, for the listening tests: it
//! sells tickets in the box office, one save each, a pause apart.
//!
//! ```text
//! sell-tickets <count> <pause-ms> sqlite <path>
//! sell-tickets <count> <pause-ms> postgres <url> <table-prefix>
//! ```
//!
//! Prints `ready` once the store is open, waits for a line on stdin, then
//! sells, printing `sold <notification-id>` after each save and `done` at
//! the end. Any error is printed to stderr and ends the process with status 1.

mod box_office;
mod child;

use child::Child;

const CHILD: Child = Child {
    name: "sell-tickets",
    usage: "sell-tickets <count> <pause-ms> (sqlite <path> | postgres <url> <table-prefix>)",
};

use std::io::BufRead as _;
use std::time::Duration;

use es_core::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [count, pause, store @ ..] = args.as_slice() else {
        CHILD.usage()
    };
    let count: u64 = count.parse().unwrap_or_else(|_| CHILD.usage());
    let pause = Duration::from_millis(pause.parse().unwrap_or_else(|_| CHILD.usage()));
    let leader = CHILD.open(CHILD.store(Application::builder().name(box_office::LEADER), store));
    CHILD.say("ready");
    let mut go = String::new();
    if let Err(error) = std::io::stdin().lock().read_line(&mut go) {
        CHILD.fail("waiting for the go", error);
    }
    for seat in 0..count {
        let recorded = leader
            .save(&mut box_office::Ticket::sell(seat))
            .unwrap_or_else(|error| CHILD.fail("selling", error));
        CHILD.say(&format!("sold {}", recorded[0].notification_id));
        std::thread::sleep(pause);
    }
    CHILD.say("done");
}
