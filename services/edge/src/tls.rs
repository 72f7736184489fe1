//! TLS configuration (RFC 7590: TLS 1.2+, rustls) with hot reload.
//!
//! The certificate chain and key are PEM files. When none are configured a self-signed
//! development certificate for the served domains is generated once into the data
//! directory. [`TlsStore::reload`] swaps in a new acceptor atomically; each connection
//! takes a snapshot at accept time, so the `tls-server-end-point` channel binding always
//! matches the certificate that connection was actually served.

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256, Sha384, Sha512};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;
use switchyard_core::sasl::ChannelBindings;

mod exporter;
mod stream;
pub(crate) use stream::{Established, TlsStream};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no usable PEM {what}")]
    Pem { path: PathBuf, what: &'static str },
    #[error("certificate and key do not form a valid configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("cannot generate a development certificate: {0}")]
    Generate(String),
    #[error("{path}: {what}")]
    Unfit { path: PathBuf, what: String },
}

/// What `check-config` can tell of the client certificate without starting: the pair
/// loads as the server would load it, the first certificate is not expired (nor not yet
/// valid), and it names every served domain (RFC 6125 DNS-ID, as clients check it).
pub fn check(cert: &Path, key: &Path, domains: &[String]) -> Result<(), TlsError> {
    load(cert, key)?;
    let pem = read(cert)?;
    let unfit = |what: String| TlsError::Unfit {
        path: cert.into(),
        what,
    };
    let first = CertificateDer::pem_slice_iter(&pem)
        .next()
        .and_then(Result::ok)
        .ok_or_else(|| unfit("no certificate".into()))?;
    let leaf = webpki::EndEntityCert::try_from(&first)
        .map_err(|e| unfit(format!("not a usable certificate: {e}")))?;
    // Its own validity is checked before any issuer is looked for, so with no trust
    // anchors the answer is "expired" or "not yet valid", or else "unknown issuer".
    let algorithms = rustls::crypto::ring::default_provider()
        .signature_verification_algorithms
        .all;
    let now = rustls_pki_types::UnixTime::now();
    let usage = webpki::KeyUsage::server_auth();
    match leaf.verify_for_usage(algorithms, &[], &[], now, usage, None, None) {
        Err(webpki::Error::CertExpired { .. }) => return Err(unfit("expired".into())),
        Err(webpki::Error::CertNotValidYet { .. }) => return Err(unfit("not valid yet".into())),
        _ => {}
    }
    let uncovered: Vec<&str> = domains
        .iter()
        .filter(|d| {
            rustls_pki_types::ServerName::try_from(d.as_str()).map_or(true, |name| {
                leaf.verify_is_valid_for_subject_name(&name).is_err()
            })
        })
        .map(String::as_str)
        .collect();
    if uncovered.is_empty() {
        Ok(())
    } else {
        Err(unfit(format!(
            "does not name served domain(s) {}",
            uncovered.join(", ")
        )))
    }
}

/// A server configuration and the RFC 5929 end-point hash of its certificate.
#[derive(Clone)]
pub struct TlsSnapshot {
    pub config: Arc<ServerConfig>,
    pub end_point: Vec<u8>,
    /// The certificate's notAfter, as a Unix time.
    pub not_after: Option<i64>,
}

impl std::fmt::Debug for TlsSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSnapshot").finish_non_exhaustive()
    }
}

impl TlsSnapshot {
    /// Runs the handshake on `tcp` and returns the stream with its channel bindings.
    pub(crate) async fn accept(
        &self,
        tcp: tokio::net::TcpStream,
    ) -> std::io::Result<(TlsStream, ChannelBindings)> {
        let Established { stream, exporter } = TlsStream::accept(tcp, self.config.clone()).await?;
        let bindings = ChannelBindings {
            tls_exporter: exporter,
            tls_server_end_point: Some(self.end_point.clone()),
        };
        Ok((stream, bindings))
    }
}

#[derive(Debug)]
pub struct TlsStore {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<(Arc<TlsSnapshot>, Option<SystemTime>)>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load(cert: &Path, key: &Path) -> Result<TlsSnapshot, TlsError> {
    let cert_pem = read(cert)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .ok()
        .filter(|c: &Vec<_>| !c.is_empty())
        .ok_or_else(|| TlsError::Pem {
            path: cert.into(),
            what: "certificate",
        })?;
    let key_der = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|_| TlsError::Pem {
        path: key.into(),
        what: "private key",
    })?;
    let end_point = end_point_hash(&chain[0]);
    let not_after = not_after(&chain[0]);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)?;
    config.key_log = Arc::new(exporter::ExporterLog);
    Ok(TlsSnapshot {
        config: Arc::new(config),
        end_point,
        not_after,
    })
}

/// A DER certificate's notAfter, as a Unix time.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// Publishes the expiry of the certificate in use for `purpose`.
pub fn publish_expiry(purpose: &str, not_after: Option<i64>) {
    if let Some(t) = not_after {
        switchyard_telemetry::TLS_CERTIFICATE_EXPIRY
            .with_label_values(&[purpose])
            .set(t);
    }
}

/// RFC 5929 §4.1: hash the certificate with its signature's hash, SHA-256 for MD5/SHA-1.
fn end_point_hash(cert: &[u8]) -> Vec<u8> {
    // OIDs of sha384/sha512 signature algorithms (RSA and ECDSA), DER-encoded bodies.
    const SHA384: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03],
    ];
    const SHA512: [&[u8]; 2] = [
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d],
        &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04],
    ];
    // The outer signatureAlgorithm sits near the end, after the TBS certificate.
    let tail = &cert[cert.len().saturating_sub(600)..];
    let has = |oids: &[&[u8]]| {
        oids.iter()
            .any(|oid| tail.windows(oid.len()).any(|w| w == *oid))
    };
    if has(&SHA512) {
        Sha512::digest(cert).to_vec()
    } else if has(&SHA384) {
        Sha384::digest(cert).to_vec()
    } else {
        Sha256::digest(cert).to_vec()
    }
}

/// Writes a self-signed certificate for `domains` unless the files exist.
fn generate(cert: &Path, key: &Path, domains: &[String]) -> Result<(), TlsError> {
    if cert.exists() && key.exists() {
        return Ok(());
    }
    let gen = rcgen::generate_simple_self_signed(domains.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    // The data directory and the key are private to the service user from the start.
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = cert.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| TlsError::Read {
                path: dir.into(),
                source,
            })?;
    }
    std::fs::write(cert, gen.cert.pem()).map_err(|source| TlsError::Read {
        path: cert.into(),
        source,
    })?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(key)
        .and_then(|mut file| file.write_all(gen.key_pair.serialize_pem().as_bytes()))
        .map_err(|source| TlsError::Read {
            path: key.into(),
            source,
        })?;
    tracing::warn!(cert = %cert.display(), "generated a self-signed development certificate");
    Ok(())
}

impl TlsStore {
    /// Loads the configured files, or generates a development certificate at those paths
    /// when `generate_if_missing` is set.
    pub fn open(
        cert: PathBuf,
        key: PathBuf,
        domains: &[String],
        generate_if_missing: bool,
    ) -> Result<Self, TlsError> {
        if generate_if_missing {
            generate(&cert, &key, domains)?;
        }
        let snapshot = load(&cert, &key)?;
        publish_expiry("client", snapshot.not_after);
        let stamp = modified(&cert).max(modified(&key));
        Ok(Self {
            cert,
            key,
            current: RwLock::new((Arc::new(snapshot), stamp)),
        })
    }

    pub fn snapshot(&self) -> Arc<TlsSnapshot> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
            .clone()
    }

    /// Reloads when the files changed (or always with `force`). A bad new pair is logged
    /// and the running certificate kept, so a half-written renewal never takes TLS down.
    pub fn reload(&self, force: bool) -> bool {
        let stamp = modified(&self.cert).max(modified(&self.key));
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !force && stamp == current.1 {
            return false;
        }
        match load(&self.cert, &self.key) {
            Ok(snapshot) => {
                publish_expiry("client", snapshot.not_after);
                *current = (Arc::new(snapshot), stamp);
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS reload failed; keeping the current certificate");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a self-signed certificate for `names`, valid in `[from, until]` (years),
    /// and its key; their paths.
    fn pair(dir: &Path, names: &[&str], from: i32, until: i32) -> (PathBuf, PathBuf) {
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (c, k) = (
            dir.join(format!("{from}-{until}.pem")),
            dir.join(format!("{from}-{until}-key.pem")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn check_finds_missing_files_other_names_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let domains = ["example.org".to_owned(), "chat.example.org".to_owned()];
        let (cert, key) = pair(dir.path(), &["example.org", "chat.example.org"], 2020, 2100);
        assert!(check(&cert, &key, &domains).is_ok());

        let (narrow, narrow_key) = pair(dir.path(), &["example.org"], 2021, 2100);
        let err = check(&narrow, &narrow_key, &domains)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("chat.example.org") && !err.contains("example.org,"),
            "{err}"
        );

        let (old, old_key) = pair(dir.path(), &["example.org", "chat.example.org"], 2019, 2020);
        let err = check(&old, &old_key, &domains).unwrap_err().to_string();
        assert!(err.contains("expired"), "{err}");

        let (soon, soon_key) = pair(dir.path(), &["example.org", "chat.example.org"], 2090, 2100);
        let err = check(&soon, &soon_key, &domains).unwrap_err().to_string();
        assert!(err.contains("not valid yet"), "{err}");

        let missing = dir.path().join("missing.pem");
        let err = check(&missing, &key, &domains).unwrap_err().to_string();
        assert!(err.contains("cannot read"), "{err}");
        let err = check(&cert, &cert, &domains).unwrap_err().to_string();
        assert!(
            err.contains("private key"),
            "a certificate given as the key: {err}"
        );
    }
}
