//! The notification log over HTTP: sections and selections in the Python
//! library's JSON, cached where they can no longer change, clear JSON errors
//! for bad requests, a long poll that answers when the log grows, and a
//! process application following a remote log with exactly-once tracking.

#[path = "../bin/box_office.rs"]
mod box_office;
mod http_support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use es_core::interface::http::MAX_LIMIT;
use es_core::interface::http::{
    LogServer, RemoteLeader, RemoteLog, TlsConfig, log_router, log_router_for_readers, serve_tls,
};
use es_core::persistence::{EventQuery, Mapper, StoredEvent};
use es_core::prelude::*;
use es_core::system::ProcessApplication;

use box_office::{FOLLOWER, LEADER, ReceiptEvent, Ticket};
use http_support::{bound, request, serve, serve_with_peers};

/// Serves `apps`' logs on a port of loopback; the base URL.
fn serve_logs(apps: Vec<Arc<Application>>) -> String {
    serve(log_router(apps).expect("router"))
}

/// A raw GET, to see the status, headers and body as any client would.
fn get(base: &str, path: &str, headers: &str) -> (u16, String, String) {
    request(base, "GET", path, headers)
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
    let base = serve_logs(vec![Arc::clone(&leader)]);
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
    let base = serve_logs(vec![Arc::clone(&leader)]);
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
    for method in ["POST", "DELETE"] {
        let (status, _, body) = request(&base, method, "/box_office", "Content-Length: 0\r\n");
        assert_eq!(status, 405, "{method}: {body}");
        assert!(body.contains("\"error\""), "{method}: {body}");
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
    let base = serve_logs(vec![Arc::clone(&leader)]);
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
    let base = serve_logs(vec![Arc::clone(&leader)]);
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

/// `versions` events of `id` in `leader`'s store, each state its version.
fn record(leader: &Application, id: &OriginatorId, versions: std::ops::RangeInclusive<u64>) {
    let events: Vec<StoredEvent> = versions
        .map(|version| StoredEvent {
            originator_id: id.clone(),
            originator_version: version,
            topic: "Seat.Booked".into(),
            state: version.to_be_bytes().to_vec(),
        })
        .collect();
    leader.recorder().insert_events(&events).expect("insert");
}

fn json_of(path: &str, body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
}

#[test]
fn an_aggregates_events_are_the_local_ones_filtered_as_asked() {
    let dir = tempfile::tempdir().expect("dir");
    let leader = box_office(dir.path());
    let uuid = Uuid::new_v4();
    let spelled_like_a_uuid = Uuid::new_v4().simple().to_string();
    let ids = [
        OriginatorId::from(uuid),
        OriginatorId::text("seat/12 ?&% ✓").expect("text"),
        OriginatorId::text(&spelled_like_a_uuid).expect("text"),
    ];
    for id in &ids {
        record(&leader, id, 1..=6);
    }
    let base = serve_logs(vec![Arc::clone(&leader)]);
    let log = RemoteLog::new(&base, LEADER);
    for id in &ids {
        for (gt, lte, limit) in [
            (None, None, None),
            (Some(2), None, None),
            (None, Some(4), None),
            (Some(1), Some(5), Some(2)),
            (Some(6), None, None),
            (Some(4), Some(2), None),
            (None, None, Some(0)),
        ] {
            let query = EventQuery {
                gt,
                lte,
                limit,
                ..EventQuery::new()
            };
            let local = leader.recorder().select_events(id, query).expect("local");
            let remote = log
                .aggregate_events(id.clone(), gt, lte, limit)
                .expect("remote");
            assert_eq!(remote, local, "{id:?} {gt:?} {lte:?} {limit:?}");
        }
    }
    assert_eq!(
        log.aggregate_events(Uuid::new_v4(), None, None, None)
            .expect("none"),
        []
    );

    // Newest first, in the notifications' JSON without their ids; any
    // spelling of a UUID names it.
    let path = format!(
        "/box_office/aggregates/{}?desc=true&limit=2",
        uuid.hyphenated()
    );
    let (status, _, body) = get(&base, &path, "");
    assert_eq!(status, 200, "{body}");
    let json = json_of(&path, &body);
    let items = json.as_array().expect("a list");
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["originator_version"], 6);
    assert_eq!(items[1]["originator_version"], 5);
    assert_eq!(items[0]["originator_id"], uuid.simple().to_string());
    assert_eq!(items[0]["topic"], "Seat.Booked");
    assert_eq!(items[0]["state"], "AAAAAAAAAAY=");
    assert!(items[0].get("id").is_none(), "{body}");
    // Text that spells a UUID is the UUID unless it says it is text.
    for (query, versions) in [("", 0), ("?text=true", 6)] {
        let path = format!("/box_office/aggregates/{spelled_like_a_uuid}{query}");
        let (status, _, body) = get(&base, &path, "");
        assert_eq!(status, 200, "{body}");
        let items = json_of(&path, &body);
        assert_eq!(items.as_array().map(Vec::len), Some(versions), "{path}");
        if versions > 0 {
            assert_eq!(items[0]["originator_id_is_text"], true, "{body}");
        }
    }
}

#[test]
fn an_aggregates_events_are_capped_and_bad_requests_for_them_get_json_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let leader = box_office(dir.path());
    let id = OriginatorId::from(Uuid::new_v4());
    record(&leader, &id, 1..=MAX_LIMIT as u64 + 1);
    let base = serve_logs(vec![Arc::clone(&leader)]);
    let log = RemoteLog::new(&base, LEADER);
    let all = log
        .aggregate_events(id.clone(), None, None, Some(usize::MAX))
        .expect("capped");
    assert_eq!(all.len(), MAX_LIMIT);
    assert_eq!(
        all.last().map(|e| e.originator_version),
        Some(MAX_LIMIT as u64)
    );

    let too_long = "x".repeat(OriginatorId::MAX_TEXT_LEN + 1);
    for (path, status) in [
        ("/box_office/aggregates/%00".to_owned(), 400),
        (format!("/box_office/aggregates/{too_long}"), 400),
        ("/box_office/aggregates/%FF".to_owned(), 400),
        (format!("/box_office/aggregates/{}?gt=-1", id), 400),
        (format!("/box_office/aggregates/{}?limit=many", id), 400),
        (format!("/box_office/aggregates/{}?desc=maybe", id), 400),
        (
            format!("/box_office/aggregates/{}?lte=18446744073709551616", id),
            400,
        ),
        ("/nobody/aggregates/seat-1".to_owned(), 404),
        ("/box_office/aggregates/".to_owned(), 404),
        ("/box_office/aggregates/a/b".to_owned(), 404),
    ] {
        let (got, _, body) = get(&base, &path, "");
        assert_eq!(got, status, "{path}: {body}");
        assert!(json_of(&path, &body)["error"].is_string(), "{path}: {body}");
    }
    let (status, _, body) = get(
        &base,
        &format!("/box_office/aggregates/{id}?gt=18446744073709551615"),
        "",
    );
    assert_eq!((status, body.as_str()), (200, "[]"));
    let unknown = RemoteLog::new(&base, "nobody")
        .aggregate_events(id, None, None, None)
        .expect_err("unknown application");
    assert!(unknown.to_string().contains("404"), "{unknown}");
}

/// A token no message has any other reason to contain.
const TOKEN: &str = "Tk9-reader-of-receipts";

#[test]
fn a_log_served_to_readers_with_tokens_refuses_the_others_and_never_shows_a_token() {
    let dir = tempfile::tempdir().expect("dir");
    let leader = box_office(dir.path());
    sell(&leader, 0..3);
    let base = serve(
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

/// Asserts that a GET of `path` is refused for its rate, with a JSON error
/// and a `Retry-After` of at least a second.
fn assert_too_many(base: &str, path: &str, headers: &str) {
    let (status, head, body) = get(base, path, headers);
    assert_eq!(status, 429, "{headers}: {body}");
    let retry_after: u64 = head
        .lines()
        .find_map(|line| line.strip_prefix("retry-after: "))
        .and_then(|seconds| seconds.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in {head}"));
    assert!(retry_after >= 1, "{head}");
    assert!(json_of(path, &body)["error"].is_string(), "{body}");
    assert!(!body.contains(TOKEN), "{body}");
}

#[test]
fn a_reader_past_the_rate_limit_is_told_to_wait_and_the_others_are_not() {
    let dir = tempfile::tempdir().expect("dir");
    let leader = box_office(dir.path());
    sell(&leader, 0..3);
    let other = "token-of-another-reader";
    // A request a second refills the burst far slower than these requests come.
    let server = LogServer::new([Arc::clone(&leader)])
        .readers([TOKEN, other])
        .rate_limit(1, 3);
    assert!(!format!("{server:?}").contains(TOKEN));
    let base = serve_with_peers(server.router().expect("router"));
    let path = "/box_office/notifications/1,10";
    let first = format!("Authorization: Bearer {TOKEN}\r\n");
    for _ in 0..3 {
        assert_eq!(get(&base, path, &first).0, 200);
    }
    assert_too_many(&base, path, &first);
    let limited = RemoteLog::new(&base, LEADER).with_token(TOKEN);
    let error = limited.max_id().expect_err("over the limit");
    assert!(
        matches!(&error, es_core::Error::Database { .. }) && error.to_string().contains("429"),
        "{error}"
    );
    // Another reader has a bucket of its own.
    let second = format!("Authorization: Bearer {other}\r\n");
    assert_eq!(get(&base, path, &second).0, 200);
    assert_eq!(
        RemoteLog::new(&base, LEADER)
            .with_token(other)
            .max_id()
            .expect("the other reader"),
        Some(3)
    );
    // Guessing tokens is limited too, by the guesser's address.
    for _ in 0..3 {
        assert_eq!(get(&base, path, "Authorization: Bearer guess\r\n").0, 401);
    }
    assert_too_many(&base, path, "Authorization: Bearer guess\r\n");
}

#[test]
fn without_tokens_or_peer_addresses_every_client_shares_one_rate() {
    let dir = tempfile::tempdir().expect("dir");
    let leader = box_office(dir.path());
    let base = serve(
        LogServer::new([Arc::clone(&leader)])
            .rate_limit(1, 2)
            .router()
            .expect("router"),
    );
    assert_eq!(get(&base, "/box_office", "").0, 200);
    assert_eq!(get(&base, "/box_office/notifications", "").0, 200);
    assert_too_many(&base, "/box_office/aggregates/seat-1", "");
    for (per_second, burst) in [(0, 1), (1, 0)] {
        assert!(matches!(
            LogServer::new([Arc::clone(&leader)])
                .rate_limit(per_second, burst)
                .router(),
            Err(es_core::Error::Config { .. })
        ));
    }
}

/// A self-signed certificate for 127.0.0.1 and its key, as PEM.
fn self_signed() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("params");
    let cert = params.self_signed(&key).expect("certificate");
    (cert.pem(), key.serialize_pem())
}

/// Serves `router` over TLS on a port of loopback from a thread of its own;
/// the port.
fn serve_over_tls(router: axum::Router, tls: TlsConfig) -> u16 {
    let (runtime, listener, _) = bound();
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || runtime.block_on(serve_tls(listener, router, tls)));
    port
}

#[test]
fn a_log_served_over_tls_is_read_by_readers_that_trust_its_certificate_and_no_other() {
    let dir = tempfile::tempdir().expect("dir");
    let leader = box_office(dir.path());
    sell(&leader, 0..5);
    let (cert, key) = self_signed();
    let tls = TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).expect("TLS");
    assert!(!format!("{tls:?}").contains("BEGIN"));
    let router = LogServer::new([Arc::clone(&leader)])
        .readers([TOKEN])
        .router()
        .expect("router");
    let port = serve_over_tls(router, tls);
    let base = format!("https://127.0.0.1:{port}");
    let log = RemoteLog::new(&base, LEADER)
        .with_token(TOKEN)
        .with_root_certificate(cert.as_bytes())
        .expect("a root");
    assert_eq!(log.max_id().expect("over TLS"), Some(5));
    assert_eq!(
        log.select(1, 10).expect("select"),
        leader.notification_log().select(1, 10).expect("local")
    );

    // Readers that do not trust the certificate get an error, as for any
    // server they cannot reach.
    let (other_cert, _) = self_signed();
    for untrusting in [
        RemoteLog::new(&base, LEADER).with_token(TOKEN),
        RemoteLog::new(&base, LEADER)
            .with_token(TOKEN)
            .with_root_certificate(other_cert.as_bytes())
            .expect("a root"),
    ] {
        let error = untrusting.max_id().expect_err("an untrusted certificate");
        assert!(
            matches!(error, es_core::Error::Database { .. }),
            "{error:?}"
        );
        assert!(!format!("{error} {error:?}").contains(TOKEN), "{error:?}");
    }

    // Plain HTTP to the TLS port gets no HTTP answer, and breaks nothing.
    let plain = RemoteLog::new(&format!("http://127.0.0.1:{port}"), LEADER).with_token(TOKEN);
    assert!(matches!(
        plain.max_id(),
        Err(es_core::Error::Database { .. })
    ));
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "GET /box_office HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(log.max_id().expect("still served"), Some(5));
}

#[test]
fn certificates_and_keys_that_do_not_parse_or_match_are_refused() {
    let (cert, key) = self_signed();
    let (_, other_key) = self_signed();
    for (cert, key) in [
        ("", key.as_str()),
        ("not PEM", key.as_str()),
        (cert.as_str(), ""),
        (key.as_str(), cert.as_str()),
        (cert.as_str(), other_key.as_str()),
    ] {
        let error =
            TlsConfig::from_pem(cert.as_bytes(), key.as_bytes()).expect_err("a bad chain or key");
        assert!(matches!(error, es_core::Error::Config { .. }), "{error}");
        assert!(!error.to_string().contains("PRIVATE KEY-----\n"), "{error}");
    }
    for pem in ["", "garbage", key.as_str()] {
        assert!(matches!(
            RemoteLog::new("https://127.0.0.1:1", LEADER).with_root_certificate(pem.as_bytes()),
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
