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

fn bound() -> (tokio::runtime::Runtime, tokio::net::TcpListener, String) {
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
