//! A real server on 127.0.0.1:0 and a minimal XMPP client built on the core framer and
//! SCRAM client, for integration tests over real sockets.

#![allow(dead_code)]

pub mod bosh;
pub mod component;
pub mod relay;
pub mod sasl2;
pub mod sm;
pub mod tokio_xmpp;
pub mod ws;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use switchyard::config::Config;
use switchyard::serve::Running;
use switchyard_core::sasl::{HashAlg, ScramClient, StoredCredentials};
use switchyard_core::xml::{Element, Frame, Framer, Limits};
use switchyard_core::Jid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

pub const OPEN: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
pub const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Server {
    pub running: Running,
    pub dir: tempfile::TempDir,
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with the test listeners and `adjust` applied to the configuration.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.listen.c2s = "127.0.0.1:0".into();
        config.listen.c2s_direct_tls = "127.0.0.1:0".into();
        config.listen.websocket = "127.0.0.1:0".into();
        config.admin.listen = "127.0.0.1:0".into();
        config.admin.token = "test-admin-token".into();
        adjust(&mut config);
        let running = switchyard::serve::start(config)
            .await
            .expect("server starts");
        let server = Self { running, dir };
        for user in ["alice", "bob", "carol"] {
            server.add_user(user, "secret").await;
        }
        server
    }

    pub async fn add_user(&self, user: &str, password: &str) {
        let jid = Jid::parse(&format!("{user}@localhost")).unwrap();
        let creds = StoredCredentials::from_password(password, 4096).unwrap();
        self.running
            .accounts
            .as_ref()
            .expect("this process stores accounts")
            .create(&jid, &creds)
            .await
            .expect("create account");
    }

    pub fn c2s(&self) -> SocketAddr {
        self.running.c2s.expect("c2s listener")
    }

    pub fn direct(&self) -> SocketAddr {
        self.running.c2s_direct_tls.expect("direct TLS listener")
    }

    pub fn websocket(&self) -> SocketAddr {
        self.running.websocket.expect("WebSocket listener")
    }

    pub fn cert_der(&self) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        let pem = std::fs::read(self.dir.path().join("dev-cert.pem")).unwrap();
        CertificateDer::from_pem_slice(&pem).unwrap().to_vec()
    }
}

/// Trusts exactly one certificate (the server's generated one), still checking signatures.
#[derive(Debug)]
struct Pinned(Vec<u8>, Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end.as_ref() == self.0.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("unexpected certificate".into()))
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.1.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

/// Runs a `switchyard` command to its end (bounded by `limit`): whether it succeeded, and
/// what it printed, stdout then stderr.
pub async fn run_cli(mut cmd: tokio::process::Command, limit: Duration) -> (bool, String) {
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .expect("the command finished in time")
        .expect("the command ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn tls_config(cert: Vec<u8>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned(cert, provider)))
        .with_no_client_auth();
    Arc::new(config)
}

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One direction of a split client connection: reads of the write half end at once, and
/// writes to the read half fail.
enum Half {
    Read(tokio::io::ReadHalf<Box<dyn Io>>),
    Write(tokio::io::WriteHalf<Box<dyn Io>>),
}

impl AsyncRead for Half {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Half::Read(r) => std::pin::Pin::new(r).poll_read(cx, buf),
            Half::Write(_) => std::task::Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Half {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Half::Write(w) => std::pin::Pin::new(w).poll_write(cx, buf),
            Half::Read(_) => std::task::Poll::Ready(Err(std::io::ErrorKind::Unsupported.into())),
        }
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Half::Write(w) => std::pin::Pin::new(w).poll_flush(cx),
            Half::Read(_) => std::task::Poll::Ready(Ok(())),
        }
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Half::Write(w) => std::pin::Pin::new(w).poll_shutdown(cx),
            Half::Read(_) => std::task::Poll::Ready(Ok(())),
        }
    }
}

pub struct Client {
    pub io: Box<dyn Io>,
    pub framer: Framer,
    pub exporter: Option<Vec<u8>>,
    pub jid: Option<String>,
    /// The stream's `to` (the served domain the account is in).
    pub domain: String,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Self {
            io: Box::new(tcp),
            framer: Framer::new(Limits::default()),
            exporter: None,
            jid: None,
            domain: "localhost".into(),
        }
    }

    /// Splits a logged-in client into a reader and a writer that run independently.
    pub fn split(self) -> (Client, Client) {
        let (read, write) = tokio::io::split(self.io);
        let reader = Client {
            io: Box::new(Half::Read(read)),
            framer: self.framer,
            exporter: None,
            jid: self.jid.clone(),
            domain: self.domain.clone(),
        };
        let writer = Client {
            io: Box::new(Half::Write(write)),
            framer: Framer::new(Limits::default()),
            exporter: None,
            jid: self.jid,
            domain: self.domain,
        };
        (reader, writer)
    }

    /// Writes and flushes: over TLS, bytes the socket could not take at once would
    /// otherwise wait in the TLS layer for the next write.
    pub async fn send(&mut self, xml: &str) {
        self.io.write_all(xml.as_bytes()).await.expect("write");
        self.io.flush().await.expect("flush");
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        if self.io.write_all(bytes).await.is_ok() {
            let _ = self.io.flush().await;
        }
    }

    /// The next frame from the server, `None` at end of stream.
    pub async fn frame(&mut self) -> Option<Frame> {
        self.frame_within(TIMEOUT).await
    }

    /// The next frame, waiting up to `limit` for each read.
    pub async fn frame_within(&mut self, limit: Duration) -> Option<Frame> {
        let mut buf = [0u8; 4096];
        loop {
            match self.framer.next_frame() {
                Ok(Some(Frame::Whitespace)) => continue,
                Ok(Some(f)) => return Some(f),
                Ok(None) => {}
                Err(e) => panic!("server sent bad XML: {e}"),
            }
            let n = tokio::time::timeout(limit, self.io.read(&mut buf))
                .await
                .expect("server answered in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.framer.push(&buf[..n]);
        }
    }

    pub async fn element(&mut self) -> Element {
        self.element_within(TIMEOUT).await
    }

    /// The next element, waiting up to `limit` for each read.
    pub async fn element_within(&mut self, limit: Duration) -> Element {
        match self.frame_within(limit).await {
            Some(Frame::Stanza(e, _)) => e,
            other => panic!("expected an element, got {other:?}"),
        }
    }

    /// Reads elements until one satisfies `wanted` (at most 50), returning it and the
    /// ones read before it.
    pub async fn until(&mut self, wanted: impl Fn(&Element) -> bool) -> (Element, Vec<Element>) {
        let mut read = self.until_each(&[&wanted]).await;
        let found = read.pop().expect("the last one read is the one wanted");
        (found, read)
    }

    /// Reads elements until each of `wanted` was satisfied by one of them, in any order
    /// (at most 50): for answers whose order nothing guarantees, which two `until` calls
    /// would get wrong (the first skips the second's answer).
    pub async fn until_each(&mut self, wanted: &[&dyn Fn(&Element) -> bool]) -> Vec<Element> {
        let mut seen = vec![false; wanted.len()];
        let mut read = Vec::new();
        for _ in 0..50 {
            let e = self.element().await;
            for (w, s) in wanted.iter().zip(seen.iter_mut()) {
                *s |= w(&e);
            }
            read.push(e);
            if seen.iter().all(|s| *s) {
                return read;
            }
        }
        panic!("not everything wanted among {read:#?}");
    }

    /// Opens a stream and returns the features.
    pub async fn open(&mut self) -> Element {
        self.framer = Framer::new(Limits::default());
        let open = OPEN.replacen("to='localhost'", &format!("to='{}'", self.domain), 1);
        self.send(&open).await;
        assert!(matches!(self.frame().await, Some(Frame::Open(_))));
        self.element().await
    }

    pub async fn starttls(&mut self, cert: Vec<u8>) {
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        assert_eq!(self.element().await.name(), "proceed");
        let io = std::mem::replace(&mut self.io, Box::new(tokio::io::empty()));
        self.tls(io, cert).await;
    }

    async fn tls(&mut self, io: Box<dyn Io>, cert: Vec<u8>) {
        let connector = tokio_rustls::TlsConnector::from(tls_config(cert));
        let stream = connector
            .connect(ServerName::try_from("localhost").unwrap(), io)
            .await
            .expect("TLS handshake");
        self.exporter = stream
            .get_ref()
            .1
            .export_keying_material(vec![0; 32], b"EXPORTER-Channel-Binding", None)
            .ok();
        self.io = Box::new(stream);
    }

    /// SASL with `mechanism`; returns the server's final element (`success` or `failure`).
    pub async fn auth(&mut self, mechanism: &str, user: &str, password: &str) -> Element {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD;
        if mechanism == "PLAIN" {
            let msg = b64.encode(format!("\0{user}\0{password}"));
            self.send(&format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{msg}</auth>"
            ))
            .await;
            return self.element().await;
        }
        let alg = if mechanism.starts_with("SCRAM-SHA-256") {
            HashAlg::Sha256
        } else {
            HashAlg::Sha1
        };
        let exporter = self.exporter.clone().unwrap_or_default();
        let binding = mechanism
            .ends_with("-PLUS")
            .then_some(("tls-exporter", exporter.as_slice()));
        let mut scram = ScramClient::new(alg, user, password, binding);
        let first = b64.encode(scram.client_first());
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='{mechanism}'>{first}</auth>"
        ))
        .await;
        let challenge = self.element().await;
        if challenge.name() != "challenge" {
            return challenge;
        }
        let server_first = String::from_utf8(b64.decode(challenge.text()).unwrap()).unwrap();
        let fin = b64.encode(
            scram
                .client_final(&server_first)
                .expect("valid server-first"),
        );
        self.send(&format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{fin}</response>"
        ))
        .await;
        let outcome = self.element().await;
        if outcome.name() == "success" {
            let v = String::from_utf8(b64.decode(outcome.text()).unwrap()).unwrap();
            assert!(
                scram.verify_server_final(&v),
                "server proved knowledge of the keys"
            );
        }
        outcome
    }

    pub async fn bind(&mut self, resource: &str) -> String {
        let features = self.open().await;
        assert!(features
            .child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
            .is_some());
        self.send(&format!("<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>")).await;
        let result = self.element().await;
        assert_eq!(result.attr("type"), Some("result"), "{result:?}");
        let jid = result
            .child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
            .unwrap()
            .child("jid", "urn:ietf:params:xml:ns:xmpp-bind")
            .unwrap()
            .text();
        self.jid = Some(jid.clone());
        jid
    }

    /// STARTTLS + mechanism + bind.
    pub async fn login(server: &Server, user: &str, mechanism: &str, resource: &str) -> Self {
        Self::login_at(server.c2s(), server.cert_der(), user, mechanism, resource).await
    }

    /// STARTTLS + mechanism + bind at `addr`, trusting `cert`; the password is `secret`.
    pub async fn login_at(
        addr: SocketAddr,
        cert: Vec<u8>,
        user: &str,
        mechanism: &str,
        resource: &str,
    ) -> Self {
        let mut c = Self::authenticated_at(addr, cert, user, mechanism).await;
        c.bind(resource).await;
        c
    }

    /// STARTTLS + mechanism at `addr`, trusting `cert`, not yet bound (the stream not
    /// yet restarted); the password is `secret`.
    pub async fn authenticated_at(
        addr: SocketAddr,
        cert: Vec<u8>,
        user: &str,
        mechanism: &str,
    ) -> Self {
        let mut c = Self::connect(addr).await;
        c.open().await;
        c.starttls(cert).await;
        let features = c.open().await;
        assert!(features
            .child("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
            .is_some());
        assert_eq!(c.auth(mechanism, user, "secret").await.name(), "success");
        c
    }

    /// Direct TLS (XEP-0368) + mechanism + bind.
    pub async fn login_direct(
        server: &Server,
        user: &str,
        mechanism: &str,
        resource: &str,
    ) -> Self {
        let mut c = Self::connect(server.direct()).await;
        let io = std::mem::replace(&mut c.io, Box::new(tokio::io::empty()));
        c.tls(io, server.cert_der()).await;
        c.open().await;
        assert_eq!(c.auth(mechanism, user, "secret").await.name(), "success");
        c.bind(resource).await;
        c
    }

    /// Reads until the stream ends and returns the stream error condition, if any.
    pub async fn stream_error(&mut self) -> Option<String> {
        let mut condition = None;
        while let Some(frame) = self.frame().await {
            match frame {
                Frame::Stanza(e, _) if e.is("error", "http://etherx.jabber.org/streams") => {
                    condition = e.children().next().map(|c| c.name().to_owned());
                }
                Frame::Close => break,
                _ => {}
            }
        }
        condition
    }
}

/// `GET /api/v1/users/{jid}/{what}` on the admin API, which must answer 200: the body.
pub async fn user_view(server: &Server, jid: &str, what: &str) -> String {
    let admin = format!("http://{}", server.running.admin.expect("admin listener"));
    let path = format!("/api/v1/users/{jid}/{what}");
    let (status, body) =
        switchyard::admin_client::request(&admin, "GET", &path, "test-admin-token", None)
            .await
            .unwrap();
    assert_eq!(status, 200, "{body}");
    body
}

/// The sessions the admin API lists for `jid`.
pub async fn sessions_of(server: &Server, jid: &str) -> String {
    user_view(server, jid, "sessions").await
}

/// Whether `jid`'s session `resource` is gone within `within` (polled every 100 ms).
pub async fn session_gone_within(
    server: &Server,
    jid: &str,
    resource: &str,
    within: Duration,
) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if !sessions_of(server, jid).await.contains(resource) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Proves the server still serves: two fresh clients log in and exchange a message.
pub async fn assert_still_chatting(server: &Server) {
    let mut a = Client::login(server, "carol", "SCRAM-SHA-256-PLUS", "check-a").await;
    let mut b = Client::login(server, "bob", "SCRAM-SHA-256", "check-b").await;
    a.send("<message to='bob@localhost/check-b' type='chat'><body>still here</body></message>")
        .await;
    let got = b.element().await;
    assert_eq!(got.attr("from"), Some("carol@localhost/check-a"));
    assert_eq!(
        got.child("body", "jabber:client")
            .map(|b| b.text())
            .as_deref(),
        Some("still here")
    );
}
