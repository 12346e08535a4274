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

use std::fmt::Display;
use std::io::Write as _;
use std::process::exit;

use es_core::persistence::PostgresConfig;
use es_core::prelude::*;
use es_core::system::ProcessApplication;

fn fail(what: &str, error: impl Display) -> ! {
    let _ = writeln!(std::io::stderr(), "crash-follower: {what}: {error}");
    exit(1)
}

fn usage() -> ! {
    fail(
        "usage",
        "crash-follower <page-size> <batch-size> <leader.sqlite3> \
         (sqlite <path> | postgres <url> <table-prefix>)",
    )
}

fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [page_size, batch_size, leader, store @ ..] = args.as_slice() else {
        usage()
    };
    let page_size: usize = page_size.parse().unwrap_or_else(|_| usage());
    let batch_size: usize = batch_size.parse().unwrap_or_else(|_| usage());
    let leader = Application::builder()
        .name(box_office::LEADER)
        .sqlite(leader)
        .build()
        .unwrap_or_else(|error| fail("opening the leader", error));
    let builder = Application::builder().name(box_office::FOLLOWER);
    let builder = match store {
        [kind, path] if kind == "sqlite" => builder.sqlite(path),
        [kind, url, prefix] if kind == "postgres" => {
            let mut config = PostgresConfig::from_url(url)
                .unwrap_or_else(|error| fail("the PostgreSQL URL", error));
            config.table_prefix = Some(prefix.clone());
            builder.postgres(config)
        }
        _ => usage(),
    };
    let follower = builder
        .build()
        .unwrap_or_else(|error| fail("opening the follower", error));
    let follower = ProcessApplication::new(follower, box_office::receipts())
        .unwrap_or_else(|error| fail("the follower", error))
        .with_page_size(page_size)
        .with_batch_size(batch_size);
    say("ready");
    loop {
        match follower.pull_and_process(&leader, None) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) => fail("processing", error),
        }
    }
    say("done");
}
