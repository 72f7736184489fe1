//! The unbuffered TLS stream against rustls' buffered client (as tokio-rustls drives it),
//! over loopback TCP: the handshake, the exporter binding, record boundaries both ways, a
//! key update, close_notify, a record trickled in, and bytes that are not TLS.

use super::super::exporter::ExporterLog;
use super::{Established, TlsStream, MAX_PLAINTEXT};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ServerConfig, SupportedCipherSuite};
use std::future::poll_fn;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn write(stream: &mut TlsStream, bytes: &[u8]) -> std::io::Result<()> {
    stream.write_all(bytes).await?;
    stream.flush().await
}
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::client::TlsStream as ClientStream;

const WAIT: Duration = Duration::from_secs(10);

fn certificate() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der());
    (cert.cert.der().clone(), key.into())
}

fn server_config(
    cert: &CertificateDer<'static>,
    key: &PrivateKeyDer<'static>,
) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key.clone_key())
        .unwrap();
    config.key_log = Arc::new(ExporterLog);
    Arc::new(config)
}

/// A client trusting `cert`, limited to `suite` (and its protocol version).
fn client_config(cert: &CertificateDer<'static>, suite: SupportedCipherSuite) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).unwrap();
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![suite];
    let version = match suite {
        SupportedCipherSuite::Tls13(_) => &rustls::version::TLS13,
        SupportedCipherSuite::Tls12(_) => &rustls::version::TLS12,
    };
    let config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// A loopback listener whose first connection our stream accepts; its address, the
/// handshake's outcome, and the certificate a client is to trust.
async fn listen() -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<std::io::Result<Established>>,
    CertificateDer<'static>,
) {
    let (cert, key) = certificate();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = server_config(&cert, &key);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        TlsStream::accept(tcp, config).await
    });
    (addr, server, cert)
}

/// Our stream and a buffered rustls client on either end of a loopback connection.
async fn connect(suite: SupportedCipherSuite) -> (Established, ClientStream<TcpStream>) {
    let (addr, server, cert) = listen().await;
    let connector = tokio_rustls::TlsConnector::from(client_config(&cert, suite));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let client = timeout(WAIT, connector.connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    let server = timeout(WAIT, server).await.unwrap().unwrap().unwrap();
    (server, client)
}

fn tls13() -> SupportedCipherSuite {
    rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
}

/// What one read of our stream gives (empty at the end of the stream).
async fn read(stream: &mut TlsStream) -> std::io::Result<Vec<u8>> {
    let poll = poll_fn(|cx| stream.poll_read_with(cx, |read| read.map(<[u8]>::to_vec)));
    timeout(WAIT, poll).await.expect("a read within the wait")
}

/// Reads until `n` bytes came.
async fn read_exactly(stream: &mut TlsStream, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let bytes = read(stream).await.unwrap();
        assert!(
            !bytes.is_empty(),
            "the stream ended after {} of {n} bytes",
            got.len()
        );
        got.extend_from_slice(&bytes);
    }
    assert_eq!(got.len(), n, "more than was sent");
    got
}

async fn send(client: &mut ClientStream<TcpStream>, bytes: &[u8]) {
    timeout(WAIT, async {
        client.write_all(bytes).await.unwrap();
        client.flush().await.unwrap();
    })
    .await
    .unwrap();
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn assert_idle(stream: &TlsStream) {
    assert_eq!(stream.incoming.capacity(), 0, "ciphertext kept while idle");
    assert_eq!(stream.outgoing.capacity(), 0, "records kept while idle");
}

#[tokio::test]
async fn the_exporter_binding_is_the_clients_for_each_tls13_hash_and_absent_on_tls12() {
    use rustls::crypto::ring::cipher_suite as suites;
    for suite in [
        suites::TLS13_AES_128_GCM_SHA256,
        suites::TLS13_AES_256_GCM_SHA384,
        suites::TLS13_CHACHA20_POLY1305_SHA256,
    ] {
        let (server, client) = connect(suite).await;
        let expected = client
            .get_ref()
            .1
            .export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
            .unwrap();
        assert_eq!(server.exporter, Some(expected), "{suite:?}");
    }
    let (server, _client) = connect(suites::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256).await;
    assert_eq!(
        server.stream.tls.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert_eq!(server.exporter, None);
}

/// Writes of one byte, a record's worth, one more, two records and a long run arrive
/// whole and in order both ways, on TLS 1.3 and 1.2; and nothing stays buffered after.
#[tokio::test]
async fn writes_around_record_boundaries_arrive_whole_both_ways() {
    let sizes = [
        1,
        MAX_PLAINTEXT - 1,
        MAX_PLAINTEXT,
        MAX_PLAINTEXT + 1,
        2 * MAX_PLAINTEXT,
        100_000,
    ];
    use rustls::crypto::ring::cipher_suite as suites;
    for suite in [tls13(), suites::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384] {
        let (Established { mut stream, .. }, mut client) = connect(suite).await;
        for (i, &n) in sizes.iter().enumerate() {
            let sent = pattern(n, i as u8);
            let (got, ()) = tokio::join!(read_exactly(&mut stream, n), send(&mut client, &sent));
            assert!(got == sent, "{n} bytes in");
            assert_idle(&stream);

            let mut got = vec![0u8; n];
            let (written, read) =
                tokio::join!(write(&mut stream, &sent), client.read_exact(&mut got));
            written.unwrap();
            read.unwrap();
            assert!(got == sent, "{n} bytes out");
            assert_idle(&stream);
        }
        // All of it at once, as a burst the stream takes in several reads.
        let burst: Vec<u8> = sizes
            .iter()
            .enumerate()
            .flat_map(|(i, &n)| pattern(n, i as u8))
            .collect();
        let (got, ()) = tokio::join!(
            read_exactly(&mut stream, burst.len()),
            send(&mut client, &burst)
        );
        assert!(got == burst);
        assert_idle(&stream);
    }
}

/// RFC 8446 §4.6.3: after the client's `key_update` asking for ours, both directions
/// go on under the new keys (the answer is written before our next data).
#[tokio::test]
async fn a_key_update_from_the_client_is_followed_both_ways() {
    let (Established { mut stream, .. }, mut client) = connect(tls13()).await;
    for round in 0..3u8 {
        client.get_mut().1.refresh_traffic_keys().unwrap();
        let sent = pattern(5_000, round);
        send(&mut client, &sent).await;
        assert!(read_exactly(&mut stream, sent.len()).await == sent);
        write(&mut stream, &sent).await.unwrap();
        let mut got = vec![0u8; sent.len()];
        timeout(WAIT, client.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert!(got == sent, "round {round}");
    }
    assert_idle(&stream);
}

/// RFC 8446 §6.1: the client's close_notify ends our stream (an empty read), and ours
/// ends the client's.
#[tokio::test]
async fn close_notify_ends_the_stream_each_way() {
    let (Established { mut stream, .. }, mut client) = connect(tls13()).await;
    client.write_all(b"<last/>").await.unwrap();
    client.shutdown().await.unwrap();
    let mut got = Vec::new();
    loop {
        let bytes = read(&mut stream).await.unwrap();
        if bytes.is_empty() {
            break;
        }
        got.extend_from_slice(&bytes);
    }
    assert_eq!(got, b"<last/>");

    let (Established { mut stream, .. }, mut client) = connect(tls13()).await;
    write(&mut stream, b"<bye/>").await.unwrap();
    stream.shutdown().await.unwrap();
    let mut got = Vec::new();
    timeout(WAIT, client.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"<bye/>", "a clean end after our data");
}

/// A record that arrives a few bytes at a time is kept only while incomplete.
#[tokio::test]
async fn a_record_trickled_in_is_kept_until_whole_and_then_freed() {
    let (Established { mut stream, .. }, client) = connect(tls13()).await;
    let (mut tcp, mut tls) = client.into_inner();
    tls.writer()
        .write_all(b"<message>trickled</message>")
        .unwrap();
    let mut record = Vec::new();
    tls.write_tls(&mut record).unwrap();
    let (head, tail) = record.split_at(7);
    tcp.write_all(head).await.unwrap();
    let poll = poll_fn(|cx| stream.poll_read_with(cx, |read| read.map(<[u8]>::to_vec)));
    assert!(
        timeout(Duration::from_millis(300), poll).await.is_err(),
        "no plaintext from part of a record"
    );
    assert_eq!(stream.incoming, head, "the part kept");
    // A write meanwhile leaves the part where it is.
    write(&mut stream, b"<r/>").await.unwrap();
    assert_eq!(stream.incoming, head, "the part still kept");
    for byte in tail {
        tcp.write_all(std::slice::from_ref(byte)).await.unwrap();
    }
    assert_eq!(
        read_exactly(&mut stream, 27).await,
        b"<message>trickled</message>"
    );
    assert_idle(&stream);
    let mut ack = [0u8; 4];
    timeout(WAIT, tls_read_exact(&mut tcp, &mut tls, &mut ack))
        .await
        .unwrap();
    assert_eq!(&ack, b"<r/>", "the write made meanwhile");

    // The socket ending inside a record is a truncation, not an end.
    tcp.write_all(head).await.unwrap();
    drop(tcp);
    assert!(read(&mut stream).await.is_err(), "a record cut short");
}

/// Reads plaintext through a buffered rustls client over a raw socket.
async fn tls_read_exact(tcp: &mut TcpStream, tls: &mut rustls::ClientConnection, out: &mut [u8]) {
    let mut got = 0;
    while got < out.len() {
        let mut buf = [0u8; 4096];
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "the socket ended");
        tls.read_tls(&mut &buf[..n]).unwrap();
        tls.process_new_packets().unwrap();
        if let Ok(n) = std::io::Read::read(&mut tls.reader(), &mut out[got..]) {
            got += n;
        }
    }
}

/// Sends `bytes` to a fresh listener's handshake; what `accept` made of them, and what
/// the client was sent back.
async fn handshake_with(bytes: Vec<u8>) -> (std::io::Result<()>, Vec<u8>) {
    let (addr, server, _) = listen().await;
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut rx, mut tx) = tcp.into_split();
    // The server may stop reading before all is written: what it does not read is moot.
    let writer = tokio::spawn(async move { tx.write_all(&bytes).await });
    let outcome = timeout(WAIT, server)
        .await
        .expect("accept ends")
        .unwrap()
        .map(drop);
    writer.abort();
    let mut answer = Vec::new();
    let _ = timeout(WAIT, rx.read_to_end(&mut answer)).await;
    (outcome, answer)
}

/// Bytes that are not TLS, or a handshake no client needs: an error, never a panic, and
/// the alert rustls chose when it chose one (RFC 8446 §6.2).
#[tokio::test]
async fn a_handshake_that_is_not_tls_or_too_large_is_refused() {
    let (outcome, answer) = handshake_with(b"<?xml version='1.0'?><stream:stream>".to_vec()).await;
    assert!(outcome.is_err(), "plaintext XMPP is not a ClientHello");
    assert_eq!(answer.first(), Some(&0x15), "an alert record: {answer:x?}");

    // A ClientHello that says it is 64 KiB long (rustls allows less).
    let (outcome, _) =
        handshake_with(vec![0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00]).await;
    assert!(outcome.is_err(), "an oversized ClientHello");

    // One that is allowed in length, sent one byte per record: six bytes held per byte
    // of it, until the handshake's bound ends it (well before it could be whole).
    let mut trickle = vec![0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0xea, 0x60];
    for _ in 0..20_000 {
        trickle.extend_from_slice(&[0x16, 0x03, 0x01, 0x00, 0x01, 0x03]);
    }
    let (outcome, _) = handshake_with(trickle).await;
    let error = outcome.unwrap_err().to_string();
    assert!(error.contains("larger than allowed"), "{error}");
}

/// Bytes that are not TLS after the handshake: an error, never a panic, and nothing
/// read or written after it.
#[tokio::test]
async fn a_record_that_does_not_decrypt_ends_the_stream() {
    let (Established { mut stream, .. }, client) = connect(tls13()).await;
    let (mut tcp, _) = client.into_inner();
    let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x20];
    forged.extend_from_slice(&[0x5a; 32]);
    tcp.write_all(&forged).await.unwrap();
    assert!(
        read(&mut stream).await.is_err(),
        "a record that does not decrypt"
    );
    assert!(read(&mut stream).await.is_err(), "and nothing after it");
    assert!(write(&mut stream, b"<late/>").await.is_err());
    let mut answer = Vec::new();
    let _ = timeout(Duration::from_millis(500), tcp.read_to_end(&mut answer)).await;
    // The session tickets sent after the handshake, then one alert record (two bytes,
    // the content type and the tag: 19), and nothing after it.
    let alert = answer
        .len()
        .checked_sub(24)
        .map(|start| &answer[start..start + 5]);
    assert_eq!(
        alert,
        Some(&[0x17, 0x03, 0x03, 0x00, 0x13][..]),
        "{answer:x?}"
    );
}

/// The client's first data in the flight of its Finished: the server may write first
/// (the data is kept, not lost) and reads it next; small reads through `AsyncRead` get
/// all of it in order.
#[tokio::test]
async fn data_sent_with_the_clients_finished_waits_for_the_first_read() {
    let (addr, server, cert) = listen().await;
    let client_config = client_config(&cert, tls13());
    let client = tokio::task::spawn_blocking(move || {
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = rustls::ClientConnection::new(client_config, name).unwrap();
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(WAIT)).unwrap();
        // Queued before the handshake: rustls sends it right behind the Finished.
        tls.writer()
            .write_all(b"<stream:stream to='example.org'>")
            .unwrap();
        while tls.is_handshaking() || tls.wants_write() {
            tls.complete_io(&mut tcp).unwrap();
        }
        let mut got = Vec::new();
        while got.len() < 8 {
            tls.complete_io(&mut tcp).unwrap();
            let mut chunk = [0u8; 64];
            if let Ok(n) = std::io::Read::read(&mut tls.reader(), &mut chunk) {
                got.extend_from_slice(&chunk[..n]);
            }
        }
        got
    });
    let Established { mut stream, .. } = timeout(WAIT, server).await.unwrap().unwrap().unwrap();
    write(&mut stream, b"<hello/>").await.unwrap();
    assert_eq!(timeout(WAIT, client).await.unwrap().unwrap(), b"<hello/>");
    let mut got = Vec::new();
    let header = b"<stream:stream to='example.org'>";
    while got.len() < header.len() {
        let mut small = [0u8; 5];
        let n = timeout(WAIT, stream.read(&mut small))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "ended after {got:?}");
        got.extend_from_slice(&small[..n]);
    }
    assert_eq!(got, header);
}
