//! What every request of a [`LogServer`](super::LogServer) passes before it
//! reaches a route: the readers' tokens, then the request-rate limit.
//!
//! The limit's bucket is chosen before the token is judged, so that a
//! client guessing tokens is limited too: a request with a reader's token
//! draws on that reader's bucket (keyed by the token's position, so no copy
//! of a token is kept for it), any other on its peer address's when the
//! server was started with `into_make_service_with_connect_info::<SocketAddr>()`
//! (as `serve_tls` provides it), else on one bucket
//! shared by all of them.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::Clock as _;

use super::server::Failure;

/// Whose bucket a request draws on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// The reader whose token it carries, by the token's position.
    Reader(usize),
    /// A request without a reader's token, by the address it came from.
    Peer(IpAddr),
    /// A request without a reader's token, from an unknown address.
    Anyone,
}

/// After how many requests the buckets of clients that have gone quiet are
/// dropped, so that a server reached from many addresses keeps a bounded map.
const SWEEP_EVERY: u64 = 4096;

/// The request-rate limit: `per_second` on average, `burst` at once.
pub(crate) struct RateLimit {
    limiter: governor::DefaultKeyedRateLimiter<Key>,
    per_second: NonZeroU32,
    burst: NonZeroU32,
    seen: AtomicU64,
}

impl RateLimit {
    pub(crate) fn new(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        let quota = governor::Quota::per_second(per_second).allow_burst(burst);
        RateLimit {
            limiter: governor::RateLimiter::keyed(quota),
            per_second,
            burst,
            seen: AtomicU64::new(0),
        }
    }

    /// `None` if `key` may go on, else how long it should wait.
    fn refuse(&self, key: &Key) -> Option<std::time::Duration> {
        if self.seen.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(key)
            .err()
            .map(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }
}

/// The tokens and the limit a [`LogServer`](super::LogServer) was given.
pub(crate) struct Guard {
    /// Each reader's token, as bytes; `None` serves anyone.
    pub(crate) tokens: Option<Vec<Vec<u8>>>,
    pub(crate) rate: Option<RateLimit>,
}

/// Lets a request through if its bucket has room and, when readers have
/// tokens, it carries one.
pub(crate) async fn guard(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    let reader = guard.tokens.as_deref().map(|tokens| {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
        given.and_then(|given| reader_of(tokens, given))
    });
    if let Some(rate) = &guard.rate {
        let key = match reader {
            Some(Some(index)) => Key::Reader(index),
            _ => match request.extensions().get::<ConnectInfo<SocketAddr>>() {
                Some(ConnectInfo(peer)) => Key::Peer(peer.ip()),
                None => Key::Anyone,
            },
        };
        if let Some(wait) = rate.refuse(&key) {
            return too_many(rate, wait);
        }
    }
    if let Some(None) = reader {
        return unauthorized();
    }
    next.run(request).await
}

/// The position of the token equal to `given`. Every token is compared,
/// whatever matched, so that the time taken says nothing about which one
/// came close.
fn reader_of(tokens: &[Vec<u8>], given: &[u8]) -> Option<usize> {
    tokens
        .iter()
        .enumerate()
        .fold(None, |found, (index, token)| {
            let same = same_bytes(token, given);
            found.or(same.then_some(index))
        })
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths
/// only.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |differ, (x, y)| differ | (x ^ y)) == 0
}

fn unauthorized() -> Response {
    let mut response = Failure(
        StatusCode::UNAUTHORIZED,
        "this log is served to readers with a token: send it as `Authorization: Bearer <token>`"
            .into(),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn too_many(rate: &RateLimit, wait: std::time::Duration) -> Response {
    // Whole seconds, rounded up: a client that waits as long as told is let in.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = Failure(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "too many requests: this log serves each reader {} a second, {} at once; \
             try again in {seconds} s",
            rate.per_second, rate.burst
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_is_found_whichever_token_it_is() {
        let tokens = vec![b"first".to_vec(), b"second".to_vec()];
        assert_eq!(reader_of(&tokens, b"first"), Some(0));
        assert_eq!(reader_of(&tokens, b"second"), Some(1));
        assert_eq!(reader_of(&tokens, b"secon"), None);
        assert_eq!(reader_of(&tokens, b""), None);
    }

    #[test]
    fn a_burst_past_the_limit_is_told_how_long_to_wait() {
        let one = NonZeroU32::MIN;
        let rate = RateLimit::new(one, NonZeroU32::new(2).expect("two"));
        assert_eq!(rate.refuse(&Key::Anyone), None);
        assert_eq!(rate.refuse(&Key::Anyone), None);
        let wait = rate.refuse(&Key::Anyone).expect("over the burst");
        assert!(wait <= std::time::Duration::from_secs(1), "{wait:?}");
        assert_eq!(rate.refuse(&Key::Reader(0)), None, "another bucket");
    }
}
