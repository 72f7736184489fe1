//! Mutual TLS on the edge↔router link (DESIGN, trust boundaries: "edge → router (mutual
//! TLS, edge identity from its certificate)").
//!
//! Every cluster process has three PEM files: the cluster CA, its own certificate chain
//! and its key. A router presents the pair as its server certificate and requires a client
//! certificate chained to the CA; an edge presents it as its client certificate and
//! verifies the router's against the CA and one fixed DNS name (`cluster.tls_server_name`:
//! router pods come and go behind a headless Service, so no per-pod name is checked).
//! TLS 1.2 and 1.3 with rustls' ring provider, ALPN `h2`.
//!
//! - [`ClusterTls`] holds the rustls configurations built from the files. [`ClusterTls::watch`]
//!   re-reads the files every few seconds; when their bytes changed it builds new
//!   configurations, used from the next handshake on (established links keep theirs). A file
//!   that does not load (half-written, wrong key, garbage) is logged once and the running
//!   configuration kept, so a cert-manager rotation needs no restart and a bad one breaks
//!   nothing that works.
//! - Router: [`incoming`] accepts TCP connections and completes the TLS handshake off the
//!   accept loop (bounded in number and time); [`with_peer`] wraps the gRPC service so that
//!   every request carries the caller's [`PeerIdentity`] and `TcpConnectInfo` (for
//!   `request.remote_addr()`) in its extensions.
//! - Edge: [`connect_lazy`] builds the tonic channel to one router, over TLS as
//!   [`set_link_security`] said at start-up.
//! - [`generate_cluster_certs`]: a CA and leaf certificates for development and
//!   docker-compose (`switchyard gen-cluster-certs`).

mod client;
mod generate;
mod server;
#[cfg(test)]
mod tests;

pub use client::{connect_lazy, probe, set_link_security, tls_channel, LinkSecurity};
pub use generate::generate_cluster_certs;
pub use server::{incoming, with_peer, LinkConnectInfo, LinkStream, PeerIdentity, WithPeer};

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why the cluster certificates could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterTlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no usable PEM {what}")]
    Pem { path: PathBuf, what: &'static str },
    #[error("the cluster certificates do not form a valid configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("the cluster CA cannot verify client certificates: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("{0:?} is not a DNS name a certificate can be checked against")]
    ServerName(String),
    #[error("cannot generate certificates: {0}")]
    Generate(String),
}

/// Where a process's cluster certificates are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA (PEM, one or more certificates): what a peer must chain to.
    pub ca: PathBuf,
    /// This process's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The rustls configurations of one version of the files.
#[derive(Debug)]
struct Configs {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

/// The cluster certificates of this process, reloaded when their files change.
#[derive(Debug)]
pub struct ClusterTls {
    files: TlsFiles,
    server_name: ServerName<'static>,
    current: RwLock<Arc<Configs>>,
    /// The bytes last read, loaded or rejected: an unchanged file is not rebuilt, and an
    /// unchanged bad one not reported again.
    seen: Mutex<[Vec<u8>; 3]>,
}

fn read(path: &Path) -> Result<Vec<u8>, ClusterTlsError> {
    std::fs::read(path).map_err(|source| ClusterTlsError::Read {
        path: path.into(),
        source,
    })
}

fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, ClusterTlsError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ClusterTlsError::Pem {
            path: path.into(),
            what: "certificate",
        })
}

/// The DNS name edges expect in routers' certificates.
pub fn server_name(name: &str) -> Result<ServerName<'static>, ClusterTlsError> {
    match ServerName::try_from(name.to_owned()) {
        Ok(n @ ServerName::DnsName(_)) => Ok(n),
        _ => Err(ClusterTlsError::ServerName(name.to_owned())),
    }
}

fn build(files: &TlsFiles, bytes: &[Vec<u8>; 3]) -> Result<Configs, ClusterTlsError> {
    let [ca, cert, key] = bytes;
    let mut roots = RootCertStore::empty();
    for c in certificates(ca, &files.ca)? {
        roots.add(c)?;
    }
    let roots = Arc::new(roots);
    let chain = certificates(cert, &files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| ClusterTlsError::Pem {
        path: files.key.clone(),
        what: "private key",
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = [&rustls::version::TLS13, &rustls::version::TLS12];
    // Required, not optional: a connection without a client certificate chained to the CA
    // never completes its handshake.
    let verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    client.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Configs {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

impl ClusterTls {
    /// Loads the files; `server_name` is the DNS name routers' certificates must carry.
    pub fn open(files: TlsFiles, server_name: &str) -> Result<Arc<Self>, ClusterTlsError> {
        let server_name = self::server_name(server_name)?;
        let bytes = [read(&files.ca)?, read(&files.cert)?, read(&files.key)?];
        let configs = build(&files, &bytes)?;
        Ok(Arc::new(Self {
            files,
            server_name,
            current: RwLock::new(Arc::new(configs)),
            seen: Mutex::new(bytes),
        }))
    }

    fn configs(&self) -> Arc<Configs> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The router's configuration for the next handshake.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.configs().server.clone()
    }

    /// The edge's configuration for the next handshake.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.configs().client.clone()
    }

    /// This process's own certificate as last read (DER), for its expiry.
    pub fn certificate(&self) -> Option<Vec<u8>> {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let first = CertificateDer::pem_slice_iter(&seen[1]).next()?.ok()?;
        Some(first.to_vec())
    }

    /// The name an edge checks in a router's certificate.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    /// Re-reads the files: `Ok(true)` when they changed and now serve, `Ok(false)` when
    /// they are as last read, an error (once per new content) when they changed but do not
    /// load, in which case the running configuration stays.
    pub fn reload(&self) -> Result<bool, ClusterTlsError> {
        let bytes = [
            read(&self.files.ca)?,
            read(&self.files.cert)?,
            read(&self.files.key)?,
        ];
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if *seen == bytes {
                return Ok(false);
            }
            seen.clone_from(&bytes);
        }
        let configs = build(&self.files, &bytes)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(configs);
        Ok(true)
    }

    /// Reloads every `every` until `shutdown`, logging what happened.
    pub async fn watch(self: Arc<Self>, every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            match self.reload() {
                Ok(true) => tracing::info!(
                    cert = %self.files.cert.display(),
                    "cluster TLS certificates reloaded"
                ),
                Ok(false) => {}
                Err(e) => tracing::error!(
                    error = %e,
                    "cluster TLS reload failed; keeping the current certificates"
                ),
            }
        }
    }
}
