//! Serving the log's router over TLS: rustls (with ring) makes the
//! handshake, then hyper runs the connection as `axum::serve` runs a plain
//! one. Each request carries its peer's address as `ConnectInfo`, so that a
//! [`LogServer`](super::LogServer)'s rate limit can tell clients apart.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower::ServiceExt as _;

use crate::error::Error;

/// How long a client may take over its handshake, and over a request's
/// headers: a client that sends nothing must not hold a task for ever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait before accepting again when the listener fails for want
/// of resources (file descriptors, most often), as `axum::serve` waits.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// A server's certificate chain and private key, ready for [`serve_tls`].
/// Its `Debug` shows neither.
///
/// ```
/// let error = es_core::interface::http::TlsConfig::from_pem(b"not PEM", b"nor this")
///     .unwrap_err();
/// assert!(matches!(error, es_core::Error::Config { .. }), "{error}");
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    server: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsConfig(..)")
    }
}

impl TlsConfig {
    /// The certificates of `cert_chain` (PEM, the server's first, then any
    /// intermediates) and the key of `key` (PEM: PKCS #8, PKCS #1 or SEC1).
    /// A chain or key that does not parse, or that do not match, is an
    /// [`Error::Config`] naming which.
    ///
    /// ```
    /// use es_core::interface::http::TlsConfig;
    /// let refused = TlsConfig::from_pem(b"not a certificate", b"not a key");
    /// assert!(matches!(refused, Err(es_core::Error::Config { .. })));
    /// // With a real pair, as read from the files a certificate authority gave:
    /// // let tls = TlsConfig::from_pem(&std::fs::read("cert.pem")?, &std::fs::read("key.pem")?)?;
    /// ```
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Self, Error> {
        let bad = |variable: &str, expected: &str, why: String| Error::Config {
            variable: variable.into(),
            value: why,
            expected: expected.into(),
        };
        let certs = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad("TLS certificate chain", "PEM certificates", e.to_string()))?;
        if certs.is_empty() {
            return Err(bad(
                "TLS certificate chain",
                "at least one PEM certificate (-----BEGIN CERTIFICATE-----)",
                "no certificate".into(),
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key)
            .map_err(|e| bad("TLS private key", "a PEM private key", e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|builder| builder.with_no_client_auth().with_single_cert(certs, key))
            .map_err(|e| {
                bad(
                    "TLS certificate chain and key",
                    "a certificate chain and the private key of its first certificate",
                    e.to_string(),
                )
            })?;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig {
            server: Arc::new(server),
        })
    }
}

/// Serves `router` over TLS on `listener` until the future is dropped, as
/// `axum::serve` serves it over TCP. A client that fails its handshake
/// (plain HTTP, say, or one that does not trust the certificate) is
/// dropped, and the others are served on. Each request carries its peer's
/// address (`ConnectInfo<SocketAddr>`). The error is the listener's, if
/// its address cannot be read.
///
/// ```
/// # #[cfg(feature = "http-client")] {
/// use std::sync::Arc;
/// use es_core::interface::http::{RemoteLog, TlsConfig, log_router, serve_tls};
/// use es_core::prelude::*;
/// # fn pem() -> (Vec<u8>, Vec<u8>) {
/// #     let key = rcgen::KeyPair::generate().unwrap();
/// #     let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
/// #     (params.self_signed(&key).unwrap().pem().into_bytes(), key.serialize_pem().into_bytes())
/// # }
/// let (cert, key) = pem(); // the server's certificate and key, as PEM
/// let app = Arc::new(Application::builder().name("vault").in_memory().build()?);
/// let router = log_router([app])?;
/// let tls = TlsConfig::from_pem(&cert, &key)?;
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
/// let port = listener.local_addr()?.port();
/// std::thread::spawn(move || runtime.block_on(serve_tls(listener, router, tls)));
///
/// let log = RemoteLog::new(&format!("https://localhost:{port}"), "vault")
///     .with_root_certificate(&cert)?;
/// assert_eq!(log.max_id()?, None);
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    tls: TlsConfig,
) -> io::Result<()> {
    let address = listener.local_addr()?;
    tracing::info!(%address, "serving the notification log over TLS");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) if is_the_clients(&error) => continue,
            Err(error) => {
                tracing::warn!(%error, "accepting a connection failed; trying again");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        tokio::spawn(serve_connection(
            acceptor.clone(),
            router.clone(),
            stream,
            peer,
        ));
    }
}

/// Whether an accept's failure concerns only the client that went away.
fn is_the_clients(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

async fn serve_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    router: axum::Router,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            tracing::debug!(%peer, %error, "a TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "a TLS handshake took too long");
            return;
        }
    };
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request)
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(error) = served {
        tracing::debug!(%peer, %error, "a connection over TLS ended in an error");
    }
}
