//! TLS to PostgreSQL (rustls), chosen by the URL's `sslmode` as libpq does:
//!
//! - `disable`: plain TCP.
//! - `prefer` (libpq's default) and `require`: TLS (`prefer` falls back to plain when
//!   the server has none); the certificate is not checked, unless a CA file is given
//!   (`postgres.ca_path`), which makes it `verify-ca`, as libpq does with a root file.
//! - `verify-ca`: the chain must lead to a trusted CA (the CA file, else the system's).
//! - `verify-full`: that, and the certificate must name the host connected to.
//!
//! tokio-postgres itself knows only `disable`, `prefer` and `require`: the two `verify-`
//! modes are read here and handed on as `require`. No channel binding is offered (its
//! `tls-server-end-point` hash depends on the certificate's signature algorithm), so the
//! login is SCRAM-SHA-256 inside the verified TLS.

use crate::StorageError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error as TlsError, RootCertStore, SignatureScheme};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// How much of the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Encryption only (`prefer`, `require` without a CA file).
    Nothing,
    /// The chain (`verify-ca`, or a CA file given).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

/// The URL with a `verify-` mode replaced by `require` (what tokio-postgres parses) and
/// the verification it asks for. `ca` given: at least the chain is checked.
pub fn read_sslmode(url: &str, ca: bool) -> (String, Verify) {
    for (mode, verify) in [("verify-full", Verify::Full), ("verify-ca", Verify::Chain)] {
        let key = format!("sslmode={mode}");
        if url.contains(&key) {
            return (url.replacen(&key, "sslmode=require", 1), verify);
        }
    }
    let verify = if ca { Verify::Chain } else { Verify::Nothing };
    (url.to_owned(), verify)
}

/// The connector the pool makes connections with.
#[derive(Clone)]
pub struct PgTls {
    config: Arc<rustls::ClientConfig>,
}

impl PgTls {
    /// TLS checking `verify` against the CA file's certificates (PEM), or the system's.
    pub fn new(verify: Verify, ca_pem: Option<&[u8]>) -> Result<Self, StorageError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| config_error(format!("postgres.ca_path: {e}")))?;
                    roots
                        .add(cert)
                        .map_err(|e| config_error(format!("postgres.ca_path: {e}")))?;
                }
            }
            None => {
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
            }
        }
        if roots.is_empty() && verify != Verify::Nothing {
            return Err(config_error(
                "no CA certificate to check PostgreSQL's against",
            ));
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| config_error(format!("postgres TLS: {e}")))?;
        let verifier = Arc::new(Verifier {
            verify,
            webpki,
            provider: provider.clone(),
        });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| config_error(format!("postgres TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
        })
    }
}

fn config_error(text: impl Into<String>) -> StorageError {
    StorageError::Unavailable(text.into())
}

/// The checks `Verify` names: webpki's, with the name check left out for `Chain` and
/// the whole certificate for `Nothing` (handshake signatures are always checked).
#[derive(Debug)]
struct Verifier {
    verify: Verify,
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        let checked = match self.verify {
            Verify::Nothing => return Ok(ServerCertVerified::assertion()),
            _ => self
                .webpki
                .verify_server_cert(end_entity, intermediates, name, ocsp, now),
        };
        match (checked, self.verify) {
            (
                Err(TlsError::InvalidCertificate(rustls::CertificateError::NotValidForName)),
                Verify::Chain,
            )
            | (
                Err(TlsError::InvalidCertificate(
                    rustls::CertificateError::NotValidForNameContext { .. },
                )),
                Verify::Chain,
            ) => Ok(ServerCertVerified::assertion()),
            (result, _) => result,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl<S> MakeTlsConnect<S> for PgTls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type TlsConnect = PgTlsConnect;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> Result<PgTlsConnect, Self::Error> {
        Ok(PgTlsConnect {
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
            name: ServerName::try_from(host.to_owned())?,
        })
    }
}

pub struct PgTlsConnect {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

type Connecting<S> = Pin<Box<dyn Future<Output = std::io::Result<PgTlsStream<S>>> + Send>>;

impl<S> TlsConnect<S> for PgTlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = PgTlsStream<S>;
    type Error = std::io::Error;
    type Future = Connecting<S>;

    fn connect(self, stream: S) -> Connecting<S> {
        Box::pin(async move {
            let tls = self.connector.connect(self.name, stream).await?;
            Ok(PgTlsStream(tls))
        })
    }
}

pub struct PgTlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for PgTlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for PgTlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for PgTlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
