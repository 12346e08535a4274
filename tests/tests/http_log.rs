//! The notification log over HTTP: sections and selections in the Python
//! library's JSON, cached where they can no longer change, clear JSON errors
//! for bad requests, a long poll that answers when the log grows, and a
//! process application following a remote log with exactly-once tracking.

#[path = "../bin/box_office.rs"]
mod box_office;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use es_core::interface::http::{RemoteLeader, RemoteLog, log_router, log_router_for_readers};
use es_core::persistence::Mapper;
use es_core::prelude::*;
use es_core::system::ProcessApplication;

use box_office::{FOLLOWER, LEADER, ReceiptEvent, Ticket};

/// Serves `apps` on a port of loopback from a thread of its own; the base URL.
fn serve(apps: Vec<Arc<Application>>) -> String {
    serve_router(log_router(apps).expect("router"))
}

fn serve_router(router: axum::Router) -> String {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || runtime.block_on(async { axum::serve(listener, router).await }));
    format!("http://127.0.0.1:{port}")
}

/// A raw GET, to see the status, headers and body as any client would.
fn get(base: &str, path: &str, headers: &str) -> (u16, String, String) {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{headers}\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status");
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn box_office(dir: &std::path::Path) -> Arc<Application> {
    Arc::new(
        Application::builder()
            .name(LEADER)
            .sqlite(dir.join("box_office.sqlite3"))
            .build()
            .expect("leader"),
    )
}

fn sell(leader: &Application, seats: std::ops::Range<u64>) {
    for seat in seats {
        leader.save(&mut Ticket::sell(seat)).expect("sell");
    }
}

#[test]
fn sections_are_the_local_ones_in_the_python_librarys_json_and_full_ones_are_cached() {
    let dir = tempfile::tempdir().expect("dir");
    let leader = box_office(dir.path());
    sell(&leader, 0..25);
    let base = serve(vec![Arc::clone(&leader)]);
    let log = RemoteLog::new(&base, LEADER);
    assert_eq!(log.max_id().expect("max"), Some(25));
    let (section, items) = log.section("1,10").expect("section");
    assert_eq!(section.id.as_deref(), Some("1,10"));
    assert_eq!(section.next_id.as_deref(), Some("11,20"));
    assert_eq!(
        items,
        leader.notification_log().select(1, 10).expect("local")
    );

    let (status, head, body) = get(&base, "/box_office/notifications/1,10", "");
    assert_eq!(status, 200);
    assert!(head.contains("etag: \"1,10\""), "{head}");
    assert!(head.contains("immutable"), "{head}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("json");
    let item = &json["items"][0];
    for field in [
        "id",
        "originator_id",
        "originator_version",
        "topic",
        "state",
    ] {
        assert!(item.get(field).is_some(), "{field} in {item}");
    }
    assert_eq!(
        item["originator_id"].as_str().map(str::len),
        Some(32),
        "hex, as Python writes"
    );
    let (status, _, _) = get(
        &base,
        "/box_office/notifications/1,10",
        "If-None-Match: \"1,10\"\r\n",
    );
    assert_eq!(status, 304);
    // The last section can still grow: not cached.
    let (status, head, _) = get(&base, "/box_office/notifications/21,30", "");
    assert_eq!(status, 200);
    assert!(
        head.contains("no-cache") && !head.contains("etag"),
        "{head}"
    );
}

#[test]
fn bad_requests_get_json_errors_and_the_server_goes_on() {
    let dir = tempfile::tempdir().expect("dir");
    let leader = box_office(dir.path());
    sell(&leader, 0..3);
    let base = serve(vec![Arc::clone(&leader)]);
    for (path, status) in [
        ("/nobody/notifications/1,10", 404),
        ("/box_office/notifications/1,x", 400),
        ("/box_office/notifications/1,2,3", 400),
        ("/box_office/notifications?start=abc", 400),
        ("/box_office/notifications?limit=-1", 400),
        ("/box_office/notifications/%00", 400),
    ] {
        let (got, _, body) = get(&base, path, "");
        assert_eq!(got, status, "{path}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"));
        assert!(json["error"].is_string(), "{path}: {body}");
    }
    let missing = RemoteLog::new(&base, "nobody")
        .max_id()
        .expect_err("unknown");
    assert!(
        matches!(&missing, es_core::Error::Database { .. }) && missing.to_string().contains("404"),
        "{missing}"
    );
    assert_eq!(
        RemoteLog::new(&base, LEADER).max_id().expect("max"),
        Some(3)
    );
}

#[test]
fn a_long_poll_answers_as_soon_as_the_log_grows() {
    let dir = tempfile::tempdir().expect("dir");
    let leader = box_office(dir.path());
    sell(&leader, 0..1);
    let base = serve(vec![Arc::clone(&leader)]);
    let log = RemoteLog::new(&base, LEADER);
    let seller = {
        let leader = Arc::clone(&leader);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            sell(&leader, 1..2);
        })
    };
    let started = Instant::now();
    let found = log
        .select_waiting(2, 10, Duration::from_secs(20))
        .expect("long poll");
    seller.join().expect("seller");
    assert_eq!(found.iter().map(|n| n.id).collect::<Vec<_>>(), [2]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}",
        started.elapsed()
    );
    // Nothing new: the wait ends empty at its bound.
    let found = log
        .select_waiting(3, 10, Duration::from_millis(200))
        .expect("empty");
    assert!(found.is_empty());
}

#[test]
fn a_process_application_follows_a_remote_log_exactly_once() {
    let dir = tempfile::tempdir().expect("dir");
    let leader = box_office(dir.path());
    sell(&leader, 0..40);
    let base = serve(vec![Arc::clone(&leader)]);
    let remote = RemoteLeader::new(RemoteLog::new(&base, LEADER), Mapper::default());
    let follower = || {
        let app = Application::builder()
            .name(FOLLOWER)
            .sqlite(dir.path().join("receipts.sqlite3"))
            .build()
            .expect("follower");
        ProcessApplication::new(app, box_office::receipts())
            .expect("process")
            .with_page_size(7)
            .with_batch_size(3)
    };
    assert_eq!(
        follower()
            .pull_and_process(&remote, Some(25))
            .expect("pull"),
        25
    );
    sell(&leader, 40..50);
    // Another process, later: it resumes after the 25th sale.
    let receipts = follower();
    assert_eq!(receipts.pull_and_process(&remote, None).expect("pull"), 25);
    assert_eq!(receipts.pull_and_process(&remote, None).expect("pull"), 0);
    let mut sales: Vec<u64> = receipts
        .application()
        .notification_log()
        .select(1, 100)
        .expect("receipts")
        .iter()
        .map(|notification| {
            let ReceiptEvent::Issued { sale } = receipts
                .application()
                .mapper()
                .to_domain_event::<ReceiptEvent>(&notification.event)
                .expect("receipt")
                .payload;
            sale
        })
        .collect();
    sales.sort_unstable();
    assert_eq!(sales, (1..=50).collect::<Vec<_>>());
}

/// A token no message has any other reason to contain.
const TOKEN: &str = "Tk9-reader-of-receipts";

#[test]
fn a_log_served_to_readers_with_tokens_refuses_the_others_and_never_shows_a_token() {
    let dir = tempfile::tempdir().expect("dir");
    let leader = box_office(dir.path());
    sell(&leader, 0..3);
    let base = serve_router(
        log_router_for_readers([Arc::clone(&leader)], [TOKEN, "another-readers-token"])
            .expect("router"),
    );
    for (headers, expected) in [
        (String::new(), 401),
        ("Authorization: Bearer wrong\r\n".to_owned(), 401),
        (format!("Authorization: Basic {TOKEN}\r\n"), 401),
        (format!("Authorization: Bearer {TOKEN}x\r\n"), 401),
        (format!("Authorization: Bearer {TOKEN}\r\n"), 200),
        (
            "Authorization: Bearer another-readers-token\r\n".to_owned(),
            200,
        ),
    ] {
        let (status, head, body) = get(&base, "/box_office/notifications/1,10", &headers);
        assert_eq!(status, expected, "{headers}: {body}");
        assert!(!body.contains(TOKEN), "{body}");
        if status == 401 {
            assert!(head.contains("www-authenticate: bearer"), "{head}");
            let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
            assert!(json["error"].is_string(), "{body}");
        }
    }
    let without = RemoteLog::new(&base, LEADER);
    let refused = without.max_id().expect_err("no token");
    assert!(refused.to_string().contains("401"), "{refused}");
    let with = RemoteLog::new(&base, LEADER).with_token(TOKEN);
    assert_eq!(with.max_id().expect("with the token"), Some(3));
    assert!(!format!("{with:?}").contains(TOKEN));
    let wrong = RemoteLog::new(&base, LEADER).with_token(format!("{TOKEN}-old"));
    let error = wrong.max_id().expect_err("a wrong token");
    assert!(!format!("{error} {error:?}").contains(TOKEN), "{error:?}");
    for tokens in [vec![], vec![""]] {
        assert!(matches!(
            log_router_for_readers([Arc::clone(&leader)], tokens),
            Err(es_core::Error::Config { .. })
        ));
    }
}

/// A "server" on loopback that answers every connection with `reply` and
/// closes it; the base URL.
fn answering(reply: String) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    format!("http://127.0.0.1:{port}")
}

/// What comes back from something that is not a well-behaved log server is
/// an error naming the problem, never a panic nor a made-up notification:
/// the server's failure or a cut answer is Error::Database (runners try
/// again), an answer that does not decode is Error::Corrupt.
#[test]
fn a_reader_meets_broken_and_hostile_answers_with_errors() {
    let ok = |body: &str| {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let item = |state: &str| {
        format!(
            "[{{\"id\":1,\"originator_id\":\"x\",\"originator_version\":1,\"topic\":\"T\",\"state\":\"{state}\"}}]"
        )
    };
    for (reply, corrupt) in [
        (ok("hello"), true),
        (ok(&item("%%%")), true),
        (ok("{\"items\": 7}"), true),
        (ok("[{\"id\": -1}]"), true),
        // A well-formed item is read: the check above is not vacuous.
        (ok(&item("e30=")), false),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n[{\"id\":1".to_owned(),
            false,
        ),
        (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy".to_owned(),
            false,
        ),
        ("this is not HTTP at all\r\n\r\n".to_owned(), false),
    ] {
        let well_formed = reply.ends_with("\"e30=\"}]");
        let log = RemoteLog::new(&answering(reply.clone()), LEADER);
        if well_formed {
            let read = log.select(1, 10).expect("a well-formed answer");
            assert_eq!(
                (read.len(), read[0].event.state.as_slice()),
                (1, &b"{}"[..])
            );
            continue;
        }
        let error = log.select(1, 10).expect_err("no notification from that");
        let is_corrupt = matches!(error, es_core::Error::Corrupt(_));
        let is_database = matches!(error, es_core::Error::Database { .. });
        assert!(
            if corrupt { is_corrupt } else { is_database },
            "{reply:?}: {error:?}"
        );
    }
}
