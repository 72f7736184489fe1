//! Cluster TLS over loopback sockets: who gets through the router's handshake, which
//! identity it sees, and certificates reloaded (or kept) when their files change.

use super::client::{Connector, Source};
use super::server::{incoming, LinkConnectInfo, PeerIdentity};
use super::{generate_cluster_certs, ClusterTls, TlsFiles};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::codegen::Service;
use tonic::transport::server::Connected;

const SERVER: &str = "switchyard-router";

fn files(dir: &Path, name: &str) -> TlsFiles {
    TlsFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join(format!("{name}.pem")),
        key: dir.join(format!("{name}-key.pem")),
    }
}

/// A CA in `dir` with a router leaf and the given edge leaves.
fn pki(dir: &Path, edges: &[&str]) {
    let mut names = vec![SERVER.to_owned()];
    names.extend(edges.iter().map(|e| e.to_string()));
    generate_cluster_certs(dir, &names).unwrap();
}

struct Router {
    addr: std::net::SocketAddr,
    streams: tokio_stream::wrappers::ReceiverStream<std::io::Result<super::LinkStream>>,
    stop: CancellationToken,
}

async fn router(tls: Arc<ClusterTls>) -> Router {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let streams = incoming(listener, Some(tls), stop.clone());
    Router {
        addr,
        streams,
        stop,
    }
}

/// Connects as an edge with `client`; on the router's side a completed handshake answers
/// one byte. Returns the identity the router saw and the certificate the edge was served,
/// or `None` when the connection did not get through.
async fn try_link(router: &mut Router, client: Source) -> Option<(PeerIdentity, Vec<u8>)> {
    let uri = format!("http://{}", router.addr).parse().unwrap();
    let connecting = Connector { config: client }.call(uri);
    let connecting = async { connecting.await.ok() };
    let accepted = async {
        let stream = router.streams.next().await?.ok()?;
        Some(stream)
    };
    let (connected, accepted) = tokio::join!(
        connecting,
        tokio::time::timeout(Duration::from_millis(1000), accepted)
    );
    let mut client = connected?;
    let mut server = accepted.ok().flatten()?;
    let LinkConnectInfo { identity, tcp } = server.connect_info();
    assert_eq!(
        tcp.remote_addr().map(|a| a.ip()),
        Some([127, 0, 0, 1].into())
    );
    server.write_all(b"x").await.unwrap();
    let mut byte = [0u8; 1];
    client.inner_mut().read_exact(&mut byte).await.ok()?;
    let served = client.inner().get_ref().1.peer_certificates().unwrap()[0].to_vec();
    Some((identity.unwrap(), served))
}

fn leaf_der(dir: &Path, name: &str) -> Vec<u8> {
    let pem = std::fs::read(dir.join(format!("{name}.pem"))).unwrap();
    super::certificates(&pem, Path::new(name)).unwrap()[0].to_vec()
}

#[tokio::test]
async fn an_edge_with_a_cluster_certificate_links_and_is_named_by_it() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path(), &["edge-a"]);
    let router_tls = ClusterTls::open(files(dir.path(), SERVER), SERVER).unwrap();
    let edge_tls = ClusterTls::open(files(dir.path(), "edge-a"), SERVER).unwrap();
    let mut r = router(router_tls).await;
    let (identity, served) = try_link(&mut r, Source::Store(edge_tls))
        .await
        .expect("linked");
    assert_eq!(identity, PeerIdentity("edge-a".into()));
    assert_eq!(served, leaf_der(dir.path(), SERVER));
    r.stop.cancel();
}

#[tokio::test]
async fn no_client_certificate_another_ca_or_a_wrong_server_name_gets_nothing() {
    let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    pki(dir.path(), &["edge-a"]);
    pki(other.path(), &["edge-a"]);
    let router_tls = ClusterTls::open(files(dir.path(), SERVER), SERVER).unwrap();
    let mut r = router(router_tls.clone()).await;

    // The right CA to verify the router, but no certificate of its own.
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
    for c in super::certificates(&ca, Path::new("ca.pem")).unwrap() {
        roots.add(c).unwrap();
    }
    let anonymous = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = super::server_name(SERVER).unwrap();
    assert!(try_link(&mut r, Source::Fixed(Arc::new(anonymous), name))
        .await
        .is_none());

    // A certificate from another CA (which also cannot verify the router).
    let stranger = ClusterTls::open(files(other.path(), "edge-a"), SERVER).unwrap();
    assert!(try_link(&mut r, Source::Store(stranger)).await.is_none());
    // Another CA's certificate, trusting the real CA: still refused by the router.
    let mut mixed = files(other.path(), "edge-a");
    mixed.ca = dir.path().join("ca.pem");
    let mixed = ClusterTls::open(mixed, SERVER).unwrap();
    assert!(try_link(&mut r, Source::Store(mixed)).await.is_none());

    // A good certificate expecting another router name: the edge refuses the router.
    let misnamed = ClusterTls::open(files(dir.path(), "edge-a"), "router.example").unwrap();
    assert!(try_link(&mut r, Source::Store(misnamed)).await.is_none());

    // Plaintext bytes (an h2c preface) never make a stream either.
    let mut plain = tokio::net::TcpStream::connect(r.addr).await.unwrap();
    plain
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    let nothing = tokio::time::timeout(Duration::from_millis(500), r.streams.next()).await;
    assert!(nothing.is_err(), "a plaintext connection reached tonic");
    let mut rest = Vec::new();
    let _ = plain.read_to_end(&mut rest).await;
    assert!(!rest.starts_with(b"\x00\x00"), "no HTTP/2 frame came back");

    // And the legitimate edge still gets through afterwards.
    let edge = ClusterTls::open(files(dir.path(), "edge-a"), SERVER).unwrap();
    assert!(try_link(&mut r, Source::Store(edge)).await.is_some());
    r.stop.cancel();
}

#[tokio::test]
async fn reload_keeps_a_bad_file_out_and_serves_a_good_one() {
    let (dir, next) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    pki(dir.path(), &["edge-a"]);
    pki(next.path(), &["edge-b"]);
    let router_files = files(dir.path(), SERVER);
    let router_tls = ClusterTls::open(router_files.clone(), SERVER).unwrap();
    let old_edge = ClusterTls::open(files(dir.path(), "edge-a"), SERVER).unwrap();
    let new_edge = ClusterTls::open(files(next.path(), "edge-b"), SERVER).unwrap();
    let mut r = router(router_tls.clone()).await;
    assert!(
        !router_tls.reload().unwrap(),
        "unchanged files are not rebuilt"
    );

    // A half-written certificate: reported once, the running configuration kept.
    let before = router_tls.server_config();
    let good_cert = std::fs::read(&router_files.cert).unwrap();
    std::fs::write(&router_files.cert, b"-----BEGIN CERTIFICATE-----\nAAAA").unwrap();
    assert!(router_tls.reload().is_err());
    assert!(
        !router_tls.reload().unwrap(),
        "the same bad file is reported once"
    );
    assert!(Arc::ptr_eq(&before, &router_tls.server_config()));
    assert!(try_link(&mut r, Source::Store(old_edge.clone()))
        .await
        .is_some());

    // A key that does not match the certificate: kept out too.
    std::fs::write(&router_files.cert, good_cert).unwrap();
    std::fs::copy(files(next.path(), SERVER).key, &router_files.key).unwrap();
    assert!(router_tls.reload().is_err());
    assert!(Arc::ptr_eq(&before, &router_tls.server_config()));

    // The whole set rotated to a new CA: new handshakes use it, the old edge is out.
    for (from, to) in [
        (next.path().join("ca.pem"), &router_files.ca),
        (files(next.path(), SERVER).cert, &router_files.cert),
        (files(next.path(), SERVER).key, &router_files.key),
    ] {
        std::fs::copy(from, to).unwrap();
    }
    assert!(router_tls.reload().unwrap());
    let (identity, served) = try_link(&mut r, Source::Store(new_edge))
        .await
        .expect("new PKI");
    assert_eq!(identity, PeerIdentity("edge-b".into()));
    assert_eq!(served, leaf_der(next.path(), SERVER));
    assert!(try_link(&mut r, Source::Store(old_edge)).await.is_none());
    r.stop.cancel();
}

#[tokio::test(start_paused = true)]
async fn watch_picks_up_a_change_within_its_interval() {
    let (dir, next) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    pki(dir.path(), &[]);
    pki(next.path(), &[]);
    let router_files = files(dir.path(), SERVER);
    let tls = ClusterTls::open(router_files.clone(), SERVER).unwrap();
    let stop = CancellationToken::new();
    let watcher = tokio::spawn(tls.clone().watch(Duration::from_secs(5), stop.clone()));
    let before = tls.server_config();
    for (from, to) in [
        (next.path().join("ca.pem"), &router_files.ca),
        (files(next.path(), SERVER).cert, &router_files.cert),
        (files(next.path(), SERVER).key, &router_files.key),
    ] {
        std::fs::copy(from, to).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(5100)).await;
    assert!(
        !Arc::ptr_eq(&before, &tls.server_config()),
        "reloaded by the watcher"
    );
    stop.cancel();
    watcher.await.unwrap();
}

#[test]
fn gen_cluster_certs_keeps_what_exists_and_issues_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let first = generate_cluster_certs(dir.path(), &["a".into()]).unwrap();
    assert_eq!(first.len(), 4, "{first:?}");
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
    let again = generate_cluster_certs(dir.path(), &["a".into(), "b".into()]).unwrap();
    assert_eq!(
        again,
        vec![dir.path().join("b.pem"), dir.path().join("b-key.pem")]
    );
    assert_eq!(std::fs::read(dir.path().join("ca.pem")).unwrap(), ca);
    // "b", issued by the CA read back from disk, still chains to it.
    ClusterTls::open(files(dir.path(), "b"), "a").unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("b-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "keys are private");
    assert!(generate_cluster_certs(dir.path(), &["not a name".into()]).is_err());
}

#[test]
fn with_peer_puts_identity_and_address_into_the_extensions() {
    #[derive(Clone)]
    struct Echo;
    impl Service<tonic::codegen::http::Request<()>> for Echo {
        type Response = (Option<PeerIdentity>, Option<std::net::SocketAddr>);
        type Error = std::convert::Infallible;
        type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Result<(), Self::Error>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, r: tonic::codegen::http::Request<()>) -> Self::Future {
            let request = tonic::Request::from_http(r);
            std::future::ready(Ok((
                request.extensions().get::<PeerIdentity>().cloned(),
                request.remote_addr(),
            )))
        }
    }
    let remote: std::net::SocketAddr = "10.1.2.3:5555".parse().unwrap();
    let mut request = tonic::codegen::http::Request::new(());
    request.extensions_mut().insert(LinkConnectInfo {
        tcp: tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(remote),
        },
        identity: Some(PeerIdentity("edge-a".into())),
    });
    let seen = super::with_peer(Echo).call(request);
    let (identity, addr) = futures_ready(seen);
    assert_eq!(identity, Some(PeerIdentity("edge-a".into())));
    assert_eq!(addr, Some(remote));
}

fn futures_ready<T, E: std::fmt::Debug>(f: std::future::Ready<Result<T, E>>) -> T {
    f.into_inner().unwrap()
}
