//! Interop with tokio-xmpp, a client we did not write: it logs in over STARTTLS and over
//! direct TLS (XEP-0368) with SCRAM-SHA-256-PLUS (tls-exporter channel binding) and two
//! clients exchange chat messages. A tap on the client's writes proves the mechanism and
//! the GS2 channel-binding header it really used.

mod support;

use std::borrow::Cow;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use sasl::common::ChannelBinding;
use tokio::io::{AsyncBufRead, AsyncRead, AsyncWrite, BufStream, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, pki_types::ServerName};
use tokio_rustls::{client::TlsStream, TlsConnector};
use tokio_xmpp::connect::ServerConnector;
use tokio_xmpp::error::ProtocolError;
use tokio_xmpp::parsers::jid::{FullJid, Jid};
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};
use tokio_xmpp::parsers::starttls;
use tokio_xmpp::xmlstream::{
    initiate_stream, PendingFeaturesRecv, ReadError, StreamHeader, Timeouts, XmppStreamElement,
};
use tokio_xmpp::{Client, Event, Stanza};

/// Connects to a fixed address with our own rustls config.
#[derive(Clone, Debug)]
struct TestConnector {
    addr: SocketAddr,
    direct_tls: bool,
    tls: Arc<rustls::ClientConfig>,
    /// Everything the client wrote inside TLS (plaintext XML).
    sent: Arc<Mutex<Vec<u8>>>,
}

impl ServerConnector for TestConnector {
    type Stream = Tap<BufStream<TlsStream<TcpStream>>>;

    async fn connect(
        &self,
        jid: &Jid,
        ns: &'static str,
        timeouts: Timeouts,
    ) -> Result<(PendingFeaturesRecv<Self::Stream>, ChannelBinding), tokio_xmpp::Error> {
        let domain = jid.domain().as_str();
        let header = || StreamHeader {
            to: Some(Cow::Borrowed(domain)),
            from: None,
            id: None,
        };

        let mut tcp = TcpStream::connect(self.addr).await?;
        if !self.direct_tls {
            let (features, mut xs) = initiate_stream(BufStream::new(tcp), ns, header(), timeouts)
                .await?
                .recv_features::<XmppStreamElement>()
                .await?;
            if !features.can_starttls() {
                return Err(ProtocolError::NoTls.into());
            }
            xs.send(&XmppStreamElement::Starttls(starttls::Nonza::Request(
                starttls::Request,
            )))
            .await?;
            loop {
                match xs.next().await {
                    Some(Ok(XmppStreamElement::Starttls(starttls::Nonza::Proceed(_)))) => break,
                    Some(Err(ReadError::SoftTimeout)) => continue,
                    other => {
                        return Err(io::Error::other(format!("STARTTLS refused: {other:?}")).into())
                    }
                }
            }
            tcp = xs.into_inner().into_inner(); // XmlStream -> BufStream -> TcpStream
        }

        let name = ServerName::try_from(domain.to_owned()).map_err(io::Error::other)?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await?;
        let conn = tls.get_ref().1;
        // Same as tokio-xmpp's own connectors: RFC 9266 tls-exporter on TLS 1.3 only.
        let cb = if conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_3) {
            ChannelBinding::TlsExporter(
                conn.export_keying_material(vec![0u8; 32], b"EXPORTER-Channel-Binding", None)
                    .map_err(io::Error::other)?,
            )
        } else {
            ChannelBinding::None // -> tokio-xmpp offers plain SCRAM-SHA-256 with "n,,"
        };
        let io = Tap {
            inner: BufStream::new(tls),
            sent: self.sent.clone(),
        };
        Ok((initiate_stream(io, ns, header(), timeouts).await?, cb))
    }
}

/// Pass-through stream that records what is written.
#[derive(Debug)]
struct Tap<S> {
    inner: S,
    sent: Arc<Mutex<Vec<u8>>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tap<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncBufRead + Unpin> AsyncBufRead for Tap<S> {
    fn poll_fill_buf(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<&[u8]>> {
        Pin::new(&mut self.get_mut().inner).poll_fill_buf(cx)
    }
    fn consume(mut self: Pin<&mut Self>, amt: usize) {
        Pin::new(&mut self.inner).consume(amt)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tap<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = res {
            self.sent.lock().unwrap().extend_from_slice(&buf[..n]);
        }
        res
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn wait_online(c: &mut Client) -> FullJid {
    loop {
        match c.next().await.expect("client event stream ended") {
            Event::Online { bound_jid, .. } => return bound_jid.try_into_full().unwrap(),
            Event::Disconnected(e) => panic!("disconnected before online: {e}"),
            Event::Stanza(_) => {}
        }
    }
}

async fn wait_chat(c: &mut Client, body: &str) -> Message {
    loop {
        match c.next().await.expect("client event stream ended") {
            Event::Stanza(Stanza::Message(m)) if m.type_ == MessageType::Error => {
                panic!("error message: {m:?}")
            }
            Event::Stanza(Stanza::Message(m))
                if m.get_best_body(vec![]).map(|(_, b)| b.as_str()) == Some(body) =>
            {
                return m
            }
            Event::Disconnected(e) => panic!("disconnected: {e}"),
            _ => {}
        }
    }
}

/// The client's <auth/> must name SCRAM-SHA-256-PLUS and its client-first-message
/// must start with the GS2 header "p=tls-exporter,,".
fn assert_scram_plus(sent: &Mutex<Vec<u8>>) {
    let xml = String::from_utf8_lossy(&sent.lock().unwrap()).into_owned();
    assert!(
        xml.contains("SCRAM-SHA-256-PLUS"),
        "client did not use SCRAM-SHA-256-PLUS:\n{xml}"
    );
    // base64("p=tls-exporter,,n=") — 18 bytes, so a stable 24-char prefix
    assert!(
        xml.contains("cD10bHMtZXhwb3J0ZXIsLG49"),
        "GS2 header not tls-exporter:\n{xml}"
    );
}

async fn chat_roundtrip(addr: SocketAddr, direct_tls: bool, cert: Vec<u8>) {
    let tls = support::tls_config(cert);
    let (sent_a, sent_b) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(Mutex::new(Vec::new())),
    );
    let connector = |sent: &Arc<Mutex<Vec<u8>>>| TestConnector {
        addr,
        direct_tls,
        tls: tls.clone(),
        sent: sent.clone(),
    };
    // Tests run in parallel with the same accounts: keep resources and bodies distinct.
    let mode = if direct_tls { "direct" } else { "starttls" };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let token = format!("{mode}-{nanos}");
    let mut a = Client::new_with_connector(
        Jid::new(&format!("alice@localhost/tx-{mode}")).unwrap(),
        "secret",
        connector(&sent_a),
        Timeouts::tight(),
    );
    let mut b = Client::new_with_connector(
        Jid::new(&format!("bob@localhost/tx-{mode}")).unwrap(),
        "secret",
        connector(&sent_b),
        Timeouts::tight(),
    );

    // tokio-xmpp retries failed connects/auth forever (1 s, 2 s, … 30 s) and emits no
    // event for them, so a deadline is the only way a failure surfaces.
    tokio::time::timeout(Duration::from_secs(20), async {
        let a_jid = wait_online(&mut a).await;
        let b_jid = wait_online(&mut b).await;

        let ping = format!("ping {token}");
        let msg =
            Message::chat(Some(Jid::from(b_jid.clone()))).with_body(Lang::default(), ping.clone());
        a.send_stanza(msg.into()).await.unwrap();
        let got = wait_chat(&mut b, &ping).await;
        assert_eq!(got.from, Some(Jid::from(a_jid.clone())));

        let pong = format!("pong {token}");
        let reply = Message::chat(got.from.clone()).with_body(Lang::default(), pong.clone());
        b.send_stanza(reply.into()).await.unwrap();
        let got = wait_chat(&mut a, &pong).await;
        assert_eq!(got.from, Some(Jid::from(b_jid)));
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "timed out; client a sent:\n{}",
            String::from_utf8_lossy(&sent_a.lock().unwrap())
        )
    });

    assert_scram_plus(&sent_a);
    assert_scram_plus(&sent_b);
    a.send_end().await.unwrap();
    b.send_end().await.unwrap();
}

#[tokio::test]
async fn tokio_xmpp_chat_starttls() {
    let server = support::Server::start().await;
    chat_roundtrip(server.c2s(), false, server.cert_der()).await;
}

#[tokio::test]
async fn tokio_xmpp_chat_direct_tls() {
    let server = support::Server::start().await;
    chat_roundtrip(server.direct(), true, server.cert_der()).await;
}
