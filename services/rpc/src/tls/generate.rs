//! `switchyard gen-cluster-certs DIR [NAME…]`: a cluster CA and one leaf certificate per
//! name, for development and docker-compose (production uses cert-manager or the Helm
//! chart's own CA).
//!
//! Files in DIR: `ca.pem` and `ca-key.pem` (the CA), and `NAME.pem` + `NAME-key.pem` for
//! each name. The leaf's only DNS name is NAME (what a router checks as the caller's
//! identity, and what an edge checks in a router's certificate: `cluster.tls_server_name`),
//! with both server and client use, so one pair serves either role. Existing files are
//! kept: running it again only issues the leaves that are missing, signed by the CA already
//! there. Keys are written readable by their owner only.

use super::{certificates, ClusterTlsError};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::server::WebPkiClientVerifier;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The CA's subject; fixed, so that a CA key read back signs leaves that chain to the
/// `ca.pem` written with it.
const CA_NAME: &str = "Switchyard cluster CA";
const CA_DAYS: i64 = 3650;
const LEAF_DAYS: i64 = 825;

fn failed(e: impl std::fmt::Display) -> ClusterTlsError {
    ClusterTlsError::Generate(e.to_string())
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(CA_DAYS);
    params
}

fn leaf_params(name: &str) -> Result<CertificateParams, ClusterTlsError> {
    super::server_name(name)?;
    let mut params = CertificateParams::new(vec![name.to_owned()]).map_err(failed)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(LEAF_DAYS);
    Ok(params)
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), ClusterTlsError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if private { 0o600 } else { 0o644 })
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|source| ClusterTlsError::Write {
            path: path.into(),
            source,
        })
}

/// Writes the CA (unless present) and a leaf for each of `names` (unless present) into
/// `dir`; returns the files written.
pub fn generate_cluster_certs(
    dir: &Path,
    names: &[String],
) -> Result<Vec<PathBuf>, ClusterTlsError> {
    std::fs::create_dir_all(dir).map_err(|source| ClusterTlsError::Write {
        path: dir.into(),
        source,
    })?;
    let mut written = Vec::new();
    let (ca_pem, ca_key_pem) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    let (ca_key, ca) = if ca_pem.exists() || ca_key_pem.exists() {
        let text =
            std::fs::read_to_string(&ca_key_pem).map_err(|source| ClusterTlsError::Read {
                path: ca_key_pem.clone(),
                source,
            })?;
        let key = KeyPair::from_pem(&text).map_err(failed)?;
        let ca = ca_params().self_signed(&key).map_err(failed)?;
        (key, ca)
    } else {
        let key = KeyPair::generate().map_err(failed)?;
        let ca = ca_params().self_signed(&key).map_err(failed)?;
        write(&ca_key_pem, &key.serialize_pem(), true)?;
        write(&ca_pem, &ca.pem(), false)?;
        written.extend([ca_pem.clone(), ca_key_pem]);
        (key, ca)
    };
    // Leaves are checked against the CA file actually on disk.
    let ca_file = std::fs::read(&ca_pem).map_err(|source| ClusterTlsError::Read {
        path: ca_pem.clone(),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(&ca_file, &ca_pem)? {
        roots.add(c)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
    for name in names {
        let (cert_path, key_path) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}-key.pem")),
        );
        if cert_path.exists() && key_path.exists() {
            continue;
        }
        let key = KeyPair::generate().map_err(failed)?;
        let leaf = leaf_params(name)?
            .signed_by(&key, &ca, &ca_key)
            .map_err(failed)?;
        verifier
            .verify_client_cert(leaf.der(), &[], rustls_pki_types::UnixTime::now())
            .map_err(|e| {
                failed(format!(
                    "{} does not sign {name}'s certificate: {e}",
                    ca_pem.display()
                ))
            })?;
        for path in [&cert_path, &key_path] {
            if path.exists() {
                std::fs::remove_file(path).map_err(|source| ClusterTlsError::Write {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        write(&key_path, &key.serialize_pem(), true)?;
        write(&cert_path, &leaf.pem(), false)?;
        written.extend([cert_path, key_path]);
    }
    Ok(written)
}
