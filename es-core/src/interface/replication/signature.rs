//! Webhook signatures: the sender proves it holds the subscription's secret
//! and when it sent, so a receiver refuses forged bodies and old ones replayed.
//!
//! The signed text is `"{timestamp}.{body}"`, `timestamp` in Unix seconds, so
//! that moving a body to another time breaks its signature; the MAC is
//! HMAC-SHA256, sent as `sha256=<lowercase hex>`.

use hmac::{KeyInit, Mac};

/// The header carrying the sender's Unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "x-replication-timestamp";
/// The header carrying `sha256=<hex HMAC-SHA256 of "{timestamp}.{body}">`.
pub const SIGNATURE_HEADER: &str = "x-replication-signature";
/// How far a signed timestamp may be from the receiver's clock unless told
/// otherwise: five minutes.
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn mac(secret: &[u8], timestamp: u64, body: &[u8]) -> HmacSha256 {
    // HMAC takes a key of any length: new_from_slice cannot fail for it.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The signature header's value for `body` sent at `timestamp`.
///
/// ```
/// use es_core::interface::replication::signature::{sign, verify};
/// let signature = sign(b"secret", 1_700_000_000, br#"{"count":0,"results":[]}"#);
/// assert!(signature.starts_with("sha256="));
/// assert!(verify(b"secret", 1_700_000_000, br#"{"count":0,"results":[]}"#, &signature).is_ok());
/// ```
pub fn sign(secret: &[u8], timestamp: u64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    let mut text = String::with_capacity(7 + digest.len() * 2);
    text.push_str("sha256=");
    for byte in digest {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    text
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Why a signature was refused.
///
/// ```
/// use es_core::interface::replication::signature::{SignatureError, verify};
/// let refused = verify(b"secret", 1, b"{}", "sha256=00").unwrap_err();
/// assert_eq!(refused, SignatureError::Malformed);
/// let zeros = format!("sha256={}", "0".repeat(64));
/// let refused = verify(b"secret", 1, b"{}", &zeros).unwrap_err();
/// assert_eq!(refused, SignatureError::Mismatch);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header is not `sha256=` followed by 64 hex digits.
    #[error("the signature is not `sha256=` followed by 64 hexadecimal digits")]
    Malformed,
    /// The body, timestamp or secret differ from the sender's.
    #[error(
        "the signature does not match the body and timestamp (a wrong secret, or a changed body)"
    )]
    Mismatch,
    /// The timestamp is too far from now.
    #[error(
        "the timestamp {timestamp} is {skew} s away from the receiver's clock, more than the {tolerance} s allowed (a replayed or delayed delivery)"
    )]
    Stale {
        /// The signed timestamp.
        timestamp: u64,
        /// Its distance from now, in seconds.
        skew: u64,
        /// The distance allowed.
        tolerance: u64,
    },
}

/// Checks `signature` against `body` sent at `timestamp`, in constant time.
///
/// ```
/// use es_core::interface::replication::signature::{SignatureError, sign, verify};
/// let signature = sign(b"secret", 42, b"body");
/// assert_eq!(verify(b"other", 42, b"body", &signature), Err(SignatureError::Mismatch));
/// assert_eq!(verify(b"secret", 43, b"body", &signature), Err(SignatureError::Mismatch));
/// ```
pub fn verify(
    secret: &[u8],
    timestamp: u64,
    body: &[u8],
    signature: &str,
) -> Result<(), SignatureError> {
    let hex = signature
        .strip_prefix("sha256=")
        .ok_or(SignatureError::Malformed)?;
    let expected = decode_hex(hex).ok_or(SignatureError::Malformed)?;
    mac(secret, timestamp, body)
        .verify_slice(&expected)
        .map_err(|_| SignatureError::Mismatch)
}

/// Checks that `timestamp` is within `tolerance` seconds of `now`.
///
/// ```
/// use es_core::interface::replication::signature::{SignatureError, check_freshness};
/// assert!(check_freshness(1_000, 1_100, 300).is_ok());
/// assert!(matches!(check_freshness(1_000, 2_000, 300), Err(SignatureError::Stale { skew: 1_000, .. })));
/// ```
pub fn check_freshness(timestamp: u64, now: u64, tolerance: u64) -> Result<(), SignatureError> {
    let skew = timestamp.abs_diff(now);
    if skew > tolerance {
        return Err(SignatureError::Stale {
            timestamp,
            skew,
            tolerance,
        });
    }
    Ok(())
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    text.as_bytes()
        .chunks(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// The current Unix time in seconds.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_64_hex_digits_and_verifies() {
        let signature = sign(b"k", 7, b"payload");
        assert_eq!(signature.len(), 7 + 64);
        assert_eq!(verify(b"k", 7, b"payload", &signature), Ok(()));
        assert_eq!(
            verify(
                b"k",
                7,
                b"payload",
                &signature.to_uppercase().replace("SHA256", "sha256")
            ),
            Ok(())
        );
    }

    #[test]
    fn malformed_signatures_are_refused_before_any_mac() {
        for bad in [
            "",
            "sha256=",
            "md5=00",
            "sha256=zz",
            &format!("sha256={}", "0".repeat(63)),
        ] {
            assert_eq!(
                verify(b"k", 7, b"x", bad),
                Err(SignatureError::Malformed),
                "{bad:?}"
            );
        }
    }
}
