//! The box office's log served over HTTP, in a process of its own, for the
//! tests that kill it or its follower.
//!
//! ```text
//! log-server <leader.sqlite3> <port>
//! ```
//!
//! Prints `listening` once the port is bound, then serves until killed. Any
//! error is printed to stderr and ends the process with status 1.

mod box_office;
mod child;

use std::sync::Arc;

use child::Child;
use es_core::prelude::*;

const CHILD: Child = Child {
    name: "log-server",
    usage: "log-server <leader.sqlite3> <port>",
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, port] = args.as_slice() else {
        CHILD.usage()
    };
    let port: u16 = port.parse().unwrap_or_else(|_| CHILD.usage());
    let leader = CHILD.open(Application::builder().name(box_office::LEADER).sqlite(path));
    let router = es_core::interface::http::log_router([Arc::new(leader)])
        .unwrap_or_else(|error| CHILD.fail("the router", error));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|error| CHILD.fail("the runtime", error));
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|error| CHILD.fail("binding the port", error));
        CHILD.say("listening");
        if let Err(error) = axum::serve(listener, router).await {
            CHILD.fail("serving", error);
        }
    });
}
