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

use std::fmt::Display;
use std::io::{BufRead as _, Write as _};
use std::process::exit;
use std::time::Duration;

use es_core::persistence::PostgresConfig;
use es_core::prelude::*;

fn fail(what: &str, error: impl Display) -> ! {
    let _ = writeln!(std::io::stderr(), "sell-tickets: {what}: {error}");
    exit(1)
}

fn usage() -> ! {
    fail(
        "usage",
        "sell-tickets <count> <pause-ms> (sqlite <path> | postgres <url> <table-prefix>)",
    )
}

fn say(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [count, pause, store @ ..] = args.as_slice() else {
        usage()
    };
    let count: u64 = count.parse().unwrap_or_else(|_| usage());
    let pause = Duration::from_millis(pause.parse().unwrap_or_else(|_| usage()));
    let builder = Application::builder().name(box_office::LEADER);
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
    let leader = builder
        .build()
        .unwrap_or_else(|error| fail("opening the store", error));
    say("ready");
    let mut go = String::new();
    if let Err(error) = std::io::stdin().lock().read_line(&mut go) {
        fail("waiting for the go", error);
    }
    for seat in 0..count {
        let recorded = leader
            .save(&mut box_office::Ticket::sell(seat))
            .unwrap_or_else(|error| fail("selling", error));
        say(&format!("sold {}", recorded[0].notification_id));
        std::thread::sleep(pause);
    }
    say("done");
}
