//! A minimal RFC 7395 client: every message it reads must be one whole element that
//! parses on its own (namespaces declared), which is what the RFC asks of the server.

use super::{tls_config, Io, Server, TIMEOUT};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use switchyard_core::xml::Element;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub const FRAMING: &str = "urn:ietf:params:xml:ns:xmpp-framing";
pub const OPEN: &str =
    "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='localhost' version='1.0'/>";
pub const CLOSE: &str = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>";

pub struct WsClient {
    pub ws: WebSocketStream<Box<dyn Io>>,
    pub jid: Option<String>,
}

/// The upgrade's outcome: a client, or the HTTP status it was refused with.
pub async fn connect_with(
    addr: SocketAddr,
    cert: Option<Vec<u8>>,
    headers: &[(&str, &str)],
) -> Result<WsClient, u16> {
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let io: Box<dyn Io> = match cert {
        Some(cert) => {
            let connector = tokio_rustls::TlsConnector::from(tls_config(cert));
            let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
            Box::new(connector.connect(name, tcp).await.expect("TLS"))
        }
        None => Box::new(tcp),
    };
    let mut request = format!("ws://localhost:{}/xmpp-websocket", addr.port())
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    match tokio_tungstenite::client_async(request, io).await {
        Ok((ws, response)) => {
            let protocol = response.headers().get("sec-websocket-protocol");
            assert_eq!(protocol.map(|p| p.as_bytes()), Some(&b"xmpp"[..]));
            Ok(WsClient { ws, jid: None })
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("WebSocket handshake: {e}"),
    }
}

impl WsClient {
    /// Over TLS, offering the `xmpp` subprotocol.
    pub async fn connect(server: &Server) -> Self {
        connect_with(
            server.websocket(),
            Some(server.cert_der()),
            &[("sec-websocket-protocol", "xmpp")],
        )
        .await
        .expect("upgraded")
    }

    pub async fn send(&mut self, xml: &str) {
        self.ws.send(Message::text(xml)).await.expect("send");
    }

    /// The next text message, `None` once the connection is closed.
    pub async fn message(&mut self) -> Option<String> {
        loop {
            let next = tokio::time::timeout(TIMEOUT, self.ws.next())
                .await
                .expect("server answered in time");
            match next {
                Some(Ok(Message::Text(text))) => return Some(text.to_string()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(other)) => assert!(!other.is_binary(), "a binary message"),
            }
        }
    }

    /// The next message as an element; panics unless it is one whole element.
    pub async fn element(&mut self) -> Element {
        let text = self.message().await.expect("a message");
        Element::parse(&text).unwrap_or_else(|e| panic!("not a whole element ({e}): {text}"))
    }

    /// Reads elements until one satisfies `wanted` (at most 50).
    pub async fn until(&mut self, wanted: impl Fn(&Element) -> bool) -> Element {
        for _ in 0..50 {
            let e = self.element().await;
            if wanted(&e) {
                return e;
            }
        }
        panic!("nothing wanted in 50 messages");
    }

    /// Sends `<open/>`; returns the server's `<open/>` and features.
    pub async fn open(&mut self) -> (Element, Element) {
        self.send(OPEN).await;
        let open = self.element().await;
        assert!(open.is("open", FRAMING), "{open:?}");
        (open, self.element().await)
    }

    /// PLAIN as `user` with password `secret`; the server's answer.
    pub async fn auth(&mut self, user: &str) -> Element {
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0secret"));
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        ))
        .await;
        self.element().await
    }

    pub async fn bind(&mut self, resource: &str) -> String {
        let (_, features) = self.open().await;
        assert!(features
            .child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
            .is_some());
        self.send(&format!("<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>")).await;
        let result = self.element().await;
        assert!(result.is("iq", "jabber:client"), "{result:?}");
        let jid = result
            .child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
            .and_then(|b| b.child("jid", "urn:ietf:params:xml:ns:xmpp-bind"))
            .expect("bound")
            .text();
        self.jid = Some(jid.clone());
        jid
    }

    /// Over TLS: open, PLAIN, restart, bind.
    pub async fn login(server: &Server, user: &str, resource: &str) -> Self {
        let mut c = Self::connect(server).await;
        c.open().await;
        assert_eq!(c.auth(user).await.name(), "success");
        c.bind(resource).await;
        c
    }
}
