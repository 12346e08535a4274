//! What the tests over real HTTP share: a router served on a free port of
//! loopback, from a runtime on a thread of its own that lives as long as
//! the test's process.

#![allow(dead_code)] // Each test target uses its own part of this module.

/// Serves `router`; the base URL (`http://127.0.0.1:PORT`).
pub fn serve(router: axum::Router) -> String {
    let (runtime, listener, base) = bound();
    std::thread::spawn(move || runtime.block_on(async { axum::serve(listener, router).await }));
    base
}

/// As [`serve`], telling the router each request's peer address (for the
/// rate limit's per-address buckets).
pub fn serve_with_peers(router: axum::Router) -> String {
    let (runtime, listener, base) = bound();
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    std::thread::spawn(move || runtime.block_on(async { axum::serve(listener, service).await }));
    base
}

/// A runtime, a listener on a free port of loopback and its base URL.
pub fn bound() -> (tokio::runtime::Runtime, tokio::net::TcpListener, String) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("a free port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    (runtime, listener, base)
}

/// A request written by hand, to see the status, headers and body as any
/// client would: `base` is `http://host:port` or `host:port`, `headers`
/// lines ending in CRLF. The status, the head in lower case, the body.
pub fn request(base: &str, method: &str, path: &str, headers: &str) -> (u16, String, String) {
    use std::io::{Read as _, Write as _};
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{headers}\r\n"
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
