//! Encrypted connections, with rustls (no system OpenSSL), and the stream
//! under them that bounds how long a request waits for its reply.
//!
//! The modes follow libpq's `sslmode`: `prefer` and `require` encrypt without
//! checking who answers, `verify-ca` checks the certificate against the
//! authorities, `verify-full` also checks that it names the host.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::Socket;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::config::{PostgresConfig, SslMode};
use crate::error::{Error, Result};

/// The driver's TLS connector, over a [`ReplyDeadline`] stream.
#[derive(Clone)]
pub(super) struct Connector {
    rustls: MakeRustlsConnect,
    reply_timeout: Option<Duration>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("reply_timeout", &self.reply_timeout)
            .finish_non_exhaustive()
    }
}

impl Connector {
    /// The connector `config` asks for: its certificate checks, and its
    /// reply timeout. An unreadable `ssl_root_cert` is an [`Error::Config`].
    pub(super) fn new(config: &PostgresConfig) -> Result<Self> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::database("setting up TLS", e))?;
        let client = match config.ssl_mode {
            SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(
                    provider.signature_verification_algorithms,
                ))),
            SslMode::VerifyCa | SslMode::VerifyFull => {
                let roots = Arc::new(root_certificates(config)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| Error::database("setting up TLS", e))?;
                let verifier: Arc<dyn ServerCertVerifier> = if config.ssl_mode == SslMode::VerifyCa
                {
                    Arc::new(AnyHostName(webpki))
                } else {
                    webpki
                };
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
            }
        }
        .with_no_client_auth();
        Ok(Connector {
            rustls: MakeRustlsConnect::new(client),
            reply_timeout: reply_timeout(config),
        })
    }
}

/// How long a request may wait for the first byte of its reply: the longest
/// the server may stay silent (its statement timeout), plus the network's
/// allowance. Without a statement timeout the server may rightly stay silent
/// for as long as a statement runs or a lock is awaited, so no bound is set.
pub(super) fn reply_timeout(config: &PostgresConfig) -> Option<Duration> {
    (!config.statement_timeout.is_zero() && !config.network_timeout.is_zero())
        .then(|| config.statement_timeout + config.network_timeout)
}

/// The authorities of `ssl_root_cert`, or the web's when it is not set.
fn root_certificates(config: &PostgresConfig) -> Result<RootCertStore> {
    let Some(path) = &config.ssl_root_cert else {
        return Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        });
    };
    let refuse = |why: String| Error::Config {
        variable: "POSTGRES_SSLROOTCERT".into(),
        value: path.display().to_string(),
        expected: format!("a readable PEM file of certificate authorities ({why})"),
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|e| refuse(e.to_string()))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| refuse(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(refuse("it holds no certificate".into()));
    }
    Ok(roots)
}

/// `prefer` and `require`: the handshake's signatures are checked, so the
/// channel is private to whoever holds the certificate's key, but the
/// certificate itself is not (as libpq).
#[derive(Debug)]
struct EncryptOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, signature, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, signature, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the certificate must chain to an authority, whatever host it names.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

type RustlsOver = <MakeRustlsConnect as MakeTlsConnect<ReplyDeadline<Socket>>>::TlsConnect;
type RustlsStream = <MakeRustlsConnect as MakeTlsConnect<ReplyDeadline<Socket>>>::Stream;
type RustlsFuture = <RustlsOver as TlsConnect<ReplyDeadline<Socket>>>::Future;

impl MakeTlsConnect<Socket> for Connector {
    type Stream = RustlsStream;
    type TlsConnect = Connect;
    type Error = <MakeRustlsConnect as MakeTlsConnect<ReplyDeadline<Socket>>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> std::result::Result<Connect, Self::Error> {
        Ok(Connect {
            rustls: MakeTlsConnect::<ReplyDeadline<Socket>>::make_tls_connect(
                &mut self.rustls,
                domain,
            )?,
            reply_timeout: self.reply_timeout,
        })
    }
}

/// One connection's handshake, over a [`ReplyDeadline`].
pub(super) struct Connect {
    rustls: RustlsOver,
    reply_timeout: Option<Duration>,
}

impl TlsConnect<Socket> for Connect {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = RustlsFuture;

    fn connect(self, socket: Socket) -> RustlsFuture {
        self.rustls
            .connect(ReplyDeadline::new(socket, self.reply_timeout))
    }
}

/// A stream that fails a read with `TimedOut` when bytes were written and
/// nothing has come back within the timeout: a server, or anything between,
/// that stops answering without closing the connection cannot hold a caller
/// forever. Any byte received stops the clock; the next write starts it again.
pub(super) struct ReplyDeadline<S> {
    inner: S,
    timeout: Option<Duration>,
    clock: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> ReplyDeadline<S> {
    fn new(inner: S, timeout: Option<Duration>) -> Self {
        ReplyDeadline {
            inner,
            timeout,
            clock: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReplyDeadline<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.clock = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = this
                    .clock
                    .as_mut()
                    .is_some_and(|clock| clock.as_mut().poll(cx).is_ready());
                if expired {
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "the server sent nothing back for {:?} (the statement timeout plus \
                             POSTGRES_NETWORK_TIMEOUT); the connection is given up",
                            this.timeout.unwrap_or_default()
                        ),
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReplyDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let (Poll::Ready(Ok(written)), None, Some(timeout)) =
            (&result, &this.clock, this.timeout)
            && *written > 0
        {
            let mut clock = Box::pin(tokio::time::sleep(timeout));
            // Polled once so that its expiry wakes the task, which will then
            // find the read still pending: the driver may have polled its
            // read before this write, with no clock to wake it.
            let _ = clock.as_mut().poll(cx);
            this.clock = Some(clock);
        }
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::super::pool::PostgresDatabase;
    use super::super::test_server;
    use super::*;

    fn encrypted(db: &PostgresDatabase) -> Result<bool> {
        db.read("asking whether the session is encrypted", |connection| {
            connection
                .client
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )?
                .try_get(0)
        })
    }

    fn with_mode(config: &PostgresConfig, mode: SslMode) -> PostgresConfig {
        let mut config = config.clone();
        config.ssl_mode = mode;
        config.connect_timeout = Duration::from_secs(5);
        config
    }

    /// The server's certificate file, if the server has TLS on and the file
    /// can be read: `None` (after saying why) outside CI, a failure under CI.
    fn server_certificate(config: &PostgresConfig) -> Option<std::path::PathBuf> {
        let db = PostgresDatabase::open(&with_mode(config, SslMode::Disable)).expect("pool");
        let path: String = db
            .read("finding the certificate", |connection| {
                connection
                    .client
                    .query_one("SELECT current_setting('ssl_cert_file')", &[])?
                    .try_get(0)
            })
            .expect("ssl_cert_file");
        match std::fs::read(&path) {
            Ok(_) => Some(path.into()),
            Err(error) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("the server's certificate {path} cannot be read under CI=true: {error}")
            }
            Err(error) => {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: the server's certificate {path} cannot be read ({error}); \
                     run as a user who can read it (CI=true makes this a failure)"
                );
                None
            }
        }
    }

    #[test]
    fn require_and_prefer_encrypt_and_disable_does_not() {
        let Some(config) = test_server() else {
            return;
        };
        let open = |mode| PostgresDatabase::open(&with_mode(&config, mode)).expect("pool");
        assert!(encrypted(&open(SslMode::Require)).expect("require"));
        assert!(encrypted(&open(SslMode::Prefer)).expect("prefer, the default"));
        assert!(!encrypted(&open(SslMode::Disable)).expect("disable"));
    }

    #[test]
    fn verify_full_against_the_web_roots_refuses_a_self_signed_certificate() {
        let Some(config) = test_server() else {
            return;
        };
        let db = PostgresDatabase::open(&with_mode(&config, SslMode::VerifyFull)).expect("pool");
        let started = std::time::Instant::now();
        let error = encrypted(&db).expect_err("not signed by a known authority");
        let message = error.to_string();
        assert!(started.elapsed() < Duration::from_secs(3), "{message}");
        assert!(matches!(error, Error::Database { .. }), "{message}");
        assert!(
            message.contains("certificate") && message.contains("POSTGRES_SSLROOTCERT"),
            "{message}"
        );
    }

    #[test]
    fn the_servers_own_certificate_as_root_passes_where_the_name_matches() {
        let Some(config) = test_server() else {
            return;
        };
        let Some(certificate) = server_certificate(&config) else {
            return;
        };
        let mut trusted = with_mode(&config, SslMode::VerifyFull);
        trusted.ssl_root_cert = Some(certificate);
        // The certificate of the test servers names `localhost`, not the address.
        trusted.host = "localhost".into();
        let db = PostgresDatabase::open(&trusted).expect("pool");
        assert!(encrypted(&db).expect("verify-full for the name it bears"));

        trusted.host = "127.0.0.1".into();
        let db = PostgresDatabase::open(&trusted).expect("pool");
        let error = encrypted(&db).expect_err("not the name in the certificate");
        assert!(error.to_string().contains("certificate"), "{error}");
        trusted.ssl_mode = SslMode::VerifyCa;
        let db = PostgresDatabase::open(&trusted).expect("pool");
        assert!(encrypted(&db).expect("verify-ca does not look at the name"));
    }

    #[test]
    fn an_unreadable_root_certificate_file_is_a_configuration_error() {
        let mut config = PostgresConfig::new("localhost", "test", "postgres");
        config.ssl_mode = SslMode::VerifyCa;
        config.ssl_root_cert = Some("/nonexistent/ca.pem".into());
        let error = PostgresDatabase::open(&config).expect_err("no such file");
        assert!(
            matches!(&error, Error::Config { variable, .. } if variable == "POSTGRES_SSLROOTCERT"),
            "{error}"
        );
        let empty = std::env::temp_dir().join(format!("es-core-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate").expect("write");
        config.ssl_root_cert = Some(empty.clone());
        let error = PostgresDatabase::open(&config).expect_err("no certificate in it");
        let _ = std::fs::remove_file(&empty);
        assert!(error.to_string().contains("no certificate"), "{error}");
    }

    #[test]
    fn replies_are_bounded_only_when_the_server_itself_is() {
        let mut config = PostgresConfig::new("h", "d", "u");
        assert_eq!(
            reply_timeout(&config),
            None,
            "no statement timeout by default"
        );
        config.statement_timeout = Duration::from_secs(3);
        assert_eq!(reply_timeout(&config), Some(Duration::from_secs(63)));
        config.network_timeout = Duration::ZERO;
        assert_eq!(reply_timeout(&config), None);
    }
}
