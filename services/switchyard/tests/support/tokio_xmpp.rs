//! tokio-xmpp (a client we did not write) against our servers: a connector with our own
//! rustls config and a tap on what the client writes, and the XEP-0198 resumption
//! scenario through a [`super::relay::Relay`] that cuts its connection (a phone losing its
//! network) and sends the next one elsewhere (the load balancer choosing another edge),
//! run all-in-one and in the cluster.

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
pub struct TestConnector {
    pub addr: SocketAddr,
    pub direct_tls: bool,
    pub tls: Arc<rustls::ClientConfig>,
    /// Everything the client wrote inside TLS (plaintext XML).
    pub sent: Arc<Mutex<Vec<u8>>>,
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
pub struct Tap<S> {
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

pub async fn wait_online(c: &mut Client) -> FullJid {
    loop {
        match c.next().await.expect("client event stream ended") {
            Event::Online { bound_jid, .. } => return bound_jid.try_into_full().unwrap(),
            Event::Disconnected(e) => panic!("disconnected before online: {e}"),
            Event::Stanza(_) => {}
        }
    }
}

pub async fn wait_chat(c: &mut Client, body: &str) -> Message {
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

fn body_of(e: &switchyard_core::Element) -> Option<String> {
    e.child("body", "jabber:client").map(|b| b.text())
}

/// XEP-0198 with tokio-xmpp's own stream management (its `StanzaStream` enables it with
/// resumption and resumes by itself after a broken connection). Alice (tokio-xmpp,
/// through `relay`) gets m1 from Bob (our client, online as `bob_jid`); then her
/// connection is cut, with messages on their way both ways, and the relay sends her
/// next connection to `next`. tokio-xmpp must come back with `<resume/>` and report the
/// session resumed; what Bob sent meanwhile arrives once, in order, m1 does not come
/// again, and what Alice sent while cut off reaches Bob once. Returns what tokio-xmpp
/// wrote, for the caller's checks.
pub async fn resumes_after_a_cut(
    relay: &super::relay::Relay,
    tls: Arc<rustls::ClientConfig>,
    bob: &mut super::Client,
    bob_jid: &str,
    next: SocketAddr,
) -> String {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let connector = TestConnector {
        addr: relay.addr,
        direct_tls: false,
        tls,
        sent: sent.clone(),
    };
    let mut alice = Client::new_with_connector(
        Jid::new("alice@localhost/tx-sm").unwrap(),
        "secret",
        connector,
        Timeouts::tight(),
    );
    tokio::time::timeout(Duration::from_secs(30), async {
        let alice_jid = wait_online(&mut alice).await;
        let to_alice = |body: &str| {
            format!("<message to='{alice_jid}' type='chat'><body>{body}</body></message>")
        };
        bob.send(&to_alice("m1")).await;
        wait_chat(&mut alice, "m1").await;

        relay.cut(Some(next));
        bob.send(&format!("{}{}", to_alice("m2"), to_alice("m3")))
            .await;
        let bob_jid = Jid::new(bob_jid).unwrap();
        let a1 = Message::chat(Some(bob_jid.clone())).with_body(Lang::default(), "a1".into());
        alice.send_stanza(a1.into()).await.unwrap();

        let mut got = Vec::new();
        let mut resumed = false;
        while got.last().map(String::as_str) != Some("m4") {
            match alice.next().await.expect("client event stream ended") {
                Event::Online { resumed: true, .. } => {
                    resumed = true;
                    bob.send(&to_alice("m4")).await;
                }
                Event::Online { resumed: false, .. } => panic!("a fresh session, not resumed"),
                Event::Disconnected(e) => panic!("disconnected: {e}"),
                Event::Stanza(Stanza::Message(m)) => {
                    if let Some((_, body)) = m.get_best_body(vec![]) {
                        got.push(body.clone());
                    }
                }
                Event::Stanza(_) => {}
            }
        }
        assert!(resumed);
        assert_eq!(got, ["m2", "m3", "m4"], "each once, in order");

        // A marker Alice sends after resuming comes right after a1, once.
        let a2 = Message::chat(Some(bob_jid)).with_body(Lang::default(), "a2".into());
        alice.send_stanza(a2.into()).await.unwrap();
        let mut bodies = Vec::new();
        while bodies.last().map(String::as_str) != Some("a2") {
            let e = bob.element().await;
            if e.name() == "message" {
                bodies.extend(body_of(&e));
            }
        }
        assert_eq!(bodies, ["a1", "a2"], "sent once each, in order");
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "timed out; tokio-xmpp sent:\n{}",
            String::from_utf8_lossy(&sent.lock().unwrap())
        )
    });
    alice.send_end().await.unwrap();
    let xml = String::from_utf8_lossy(&sent.lock().unwrap()).into_owned();
    assert!(
        xml.contains("<resume"),
        "tokio-xmpp resumed with <resume/>:\n{xml}"
    );
    xml
}
