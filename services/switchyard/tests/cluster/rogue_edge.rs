//! The router's gRPC port against a process on the same network that is not an edge of
//! this cluster (DESIGN, trust boundaries: edge → router is mutual TLS). A real gRPC
//! client (the generated one, through `switchyard_rpc::tls::probe`) makes one unary call:
//! with a cluster edge certificate it is answered; without a client certificate, with a
//! certificate from another CA, or in plaintext h2c it is not. And certificates rotated on
//! disk are used without a restart.

use crate::harness::{Cluster, ROUTER_CERT};
use crate::{body, online, subscribe};
use rustls_pki_types::pem::PemObject;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use switchyard_rpc::tls::{probe, tls_channel, ClusterTls, TlsFiles};
use tonic::transport::Endpoint;

/// Every call here ends, answered or refused, within this.
const CALL_BOUND: Duration = Duration::from_secs(10);

fn files(dir: &Path, leaf: &str) -> TlsFiles {
    TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{leaf}.pem")),
        key: dir.join(format!("{leaf}-key.pem")),
    }
}

fn endpoint(router: SocketAddr) -> Endpoint {
    Endpoint::from_shared(format!("http://{router}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
}

/// One call over TLS as `files` (trusting the CA in `files.ca`).
async fn call_as(router: SocketAddr, files: TlsFiles) -> Result<(), tonic::Status> {
    let tls = ClusterTls::open(files, ROUTER_CERT).unwrap();
    let channel = tls_channel(
        &endpoint(router),
        tls.client_config(),
        tls.server_name().clone(),
    );
    bounded(probe(channel)).await
}

async fn bounded(
    call: impl std::future::Future<Output = Result<(), tonic::Status>>,
) -> Result<(), tonic::Status> {
    tokio::time::timeout(CALL_BOUND, call)
        .await
        .expect("the call was answered or refused in time")
}

/// Whether the router answered at all: any status its service sent back counts (the link
/// protocol may well refuse a unary call outside a link); a connection refused does not.
fn answered(result: &Result<(), tonic::Status>) -> bool {
    match result {
        Ok(()) => true,
        Err(status) => {
            std::error::Error::source(status).is_none()
                && status.metadata().get("content-type").is_some()
        }
    }
}

fn refusals(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("cluster link: connection refused (TLS)")
        .count()
}

#[tokio::test]
async fn a_router_answers_only_edges_with_a_cluster_certificate() {
    let Some(cluster) = Cluster::start(&[]).await else {
        return;
    };
    let router = cluster.routers[0].addr;
    let certs = cluster.certs_dir();
    let log = cluster.dir.path().join("router0.log");
    let refused_before = refusals(&log);

    // The control: a cluster edge certificate gets an answer.
    let control = call_as(router, files(&certs, "edge0")).await;
    assert!(
        answered(&control),
        "an edge certificate from the cluster CA: {control:?}"
    );

    // (1) TLS, verifying the router properly, but no client certificate.
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(certs.join("ca.pem")).unwrap();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut anonymous = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    anonymous.alpn_protocols = vec![b"h2".to_vec()];
    let name = switchyard_rpc::tls::server_name(ROUTER_CERT).unwrap();
    let channel = tls_channel(&endpoint(router), Arc::new(anonymous), name);
    let refused = bounded(probe(channel)).await;
    assert!(!answered(&refused), "no client certificate: {refused:?}");

    // (2) A well-formed edge certificate from another CA, trusting the real one (so
    // that it is the router that refuses, not this client).
    let other = tempfile::tempdir().unwrap();
    switchyard_rpc::tls::generate_cluster_certs(other.path(), &["edge0".into()]).unwrap();
    let mut foreign = files(other.path(), "edge0");
    foreign.ca = certs.join("ca.pem");
    let refused = call_as(router, foreign).await;
    assert!(
        !answered(&refused),
        "a certificate from another CA: {refused:?}"
    );

    // (3) Plaintext h2c, as before cluster TLS.
    let refused = bounded(probe(endpoint(router).connect_lazy())).await;
    assert!(!answered(&refused), "plaintext h2c: {refused:?}");

    // The router logged each refused connection (at least one per attempt).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while refusals(&log) < refused_before + 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        refusals(&log) >= refused_before + 3,
        "refusals logged in {}",
        log.display()
    );
    // And it still answers its edges.
    let control = call_as(router, files(&certs, "edge1")).await;
    assert!(answered(&control), "edges are still answered: {control:?}");
    cluster.clean_up().await;
}

/// Replaces `to` with `from` in one rename, as a Secret volume update does.
fn replace(from: &Path, to: &Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

#[tokio::test]
async fn certificates_rotated_on_disk_are_used_without_a_restart() {
    let Some(cluster) = Cluster::start(&["alice", "bob"]).await else {
        return;
    };
    let router = cluster.routers[0].addr;
    let certs = cluster.certs_dir();
    // Clients online before the rotation keep their links through it.
    let mut alice = online(&cluster, 0, "alice", "desk").await;
    let mut bob = online(&cluster, 1, "bob", "phone").await;

    // A whole new PKI (new CA, new router and edge certificates) rotated over the old.
    let old = tempfile::tempdir().unwrap();
    for leaf in [ROUTER_CERT, "edge0"] {
        let f = files(&certs, leaf);
        for (from, name) in [
            (&f.cert, format!("{leaf}.pem")),
            (&f.key, format!("{leaf}-key.pem")),
        ] {
            std::fs::copy(from, old.path().join(name)).unwrap();
        }
    }
    std::fs::copy(certs.join("ca.pem"), old.path().join("ca.pem")).unwrap();
    let next = tempfile::tempdir().unwrap();
    let leaves = [ROUTER_CERT, "edge0", "edge1", "newcomer"].map(String::from);
    switchyard_rpc::tls::generate_cluster_certs(next.path(), &leaves).unwrap();
    for name in [
        "ca.pem",
        "switchyard-router.pem",
        "switchyard-router-key.pem",
    ]
    .into_iter()
    .map(String::from)
    .chain(
        ["edge0", "edge1"]
            .iter()
            .flat_map(|e| [format!("{e}.pem"), format!("{e}-key.pem")]),
    ) {
        replace(&next.path().join(&name), &certs.join(&name));
    }

    // Reloaded within the 1 s interval (a poll between two renames sees a mismatched
    // pair, logs it and keeps the old one): the new CA's certificates are answered, the
    // old CA's no longer.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let new = call_as(router, files(next.path(), "newcomer")).await;
        if answered(&new) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the router never served the rotated certificates: {new:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let stale = call_as(router, files(old.path(), "edge0")).await;
    assert!(
        !answered(&stale),
        "the old CA's certificate is refused: {stale:?}"
    );
    // Every process, edges included, reloaded (each polls every second).
    for name in ["router0", "router1", "edge0", "edge1"] {
        let log = cluster.dir.path().join(format!("{name}.log"));
        let reloaded = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("cluster TLS certificates reloaded")
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !reloaded() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(reloaded(), "{name} reloaded its certificates");
    }

    // Links made before the rotation still carry a conversation across edges.
    subscribe(&mut alice, "alice", &mut bob, "bob").await;
    alice
        .send("<message to='bob@localhost' type='chat'><body>after rotation</body></message>")
        .await;
    bob.until(|e| body(e).as_deref() == Some("after rotation"))
        .await;
    cluster.clean_up().await;
}
