//! A minimal BOSH (XEP-0124/XEP-0206) client: one TLS connection per request, so that
//! requests can be held side by side.

use super::{tls_config, Server, TIMEOUT};
use std::net::SocketAddr;
use switchyard_core::xml::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const NS: &str = "http://jabber.org/protocol/httpbind";

/// An HTTP response: status, headers (lower-case names) and body.
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request to the listener over TLS and reads the whole response.
pub async fn http(
    addr: SocketAddr,
    cert: Vec<u8>,
    method: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(tls_config(cert));
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let mut request = format!(
        "{method} /http-bind HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    let read = tls.read_to_string(&mut raw);
    // A held request takes up to `wait`; the tests ask for short waits.
    tokio::time::timeout(TIMEOUT * 7, read)
        .await
        .unwrap()
        .unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// One BOSH session seen from the client.
pub struct BoshClient {
    pub addr: SocketAddr,
    pub cert: Vec<u8>,
    pub sid: String,
    pub rid: u64,
    /// The session creation response.
    pub created: Element,
}

impl BoshClient {
    /// Creates a session with `wait` seconds.
    pub async fn create(server: &Server, wait: u32) -> Self {
        let addr = server.websocket();
        let cert = server.cert_der();
        let rid = 1000;
        let create = format!("<body xmlns='{NS}' xmlns:xmpp='urn:xmpp:xbosh' rid='{rid}' to='localhost' wait='{wait}' hold='1' ver='1.6' xmpp:version='1.0' xml:lang='en'/>");
        let response = http(addr, cert.clone(), "POST", &[], &create).await;
        assert_eq!(response.status, 200);
        let created = Element::parse(&response.body).expect("a body");
        let sid = created.attr("sid").expect("a sid").to_owned();
        Self {
            addr,
            cert,
            sid,
            rid,
            created,
        }
    }

    /// Sends `payload` with the next rid and `attrs`; the response body.
    pub async fn send_with(&mut self, attrs: &str, payload: &str) -> Element {
        self.rid += 1;
        self.send_rid(self.rid, attrs, payload).await
    }

    /// A handle that can send requests of the same session from another task.
    pub fn handle(&self) -> Self {
        Self {
            addr: self.addr,
            cert: self.cert.clone(),
            sid: self.sid.clone(),
            rid: self.rid,
            created: self.created.clone(),
        }
    }

    pub async fn send_rid(&self, rid: u64, attrs: &str, payload: &str) -> Element {
        let body = format!(
            "<body xmlns='{NS}' xmlns:xmpp='urn:xmpp:xbosh' sid='{}' rid='{rid}'{attrs}>{payload}</body>",
            self.sid
        );
        let response = http(self.addr, self.cert.clone(), "POST", &[], &body).await;
        assert_eq!(response.status, 200, "{}", response.body);
        Element::parse(&response.body).expect("a body")
    }

    /// XEP-0206 §6: ends the session with a last unavailable presence; the answer.
    pub async fn terminate(&mut self) -> Element {
        let unavailable = "<presence xmlns='jabber:client' type='unavailable'/>";
        self.send_with(" type='terminate'", unavailable).await
    }

    pub async fn send(&mut self, payload: &str) -> Element {
        self.send_with("", payload).await
    }

    /// Polls until an element satisfying `wanted` arrives (at most 20 polls).
    pub async fn until(&mut self, wanted: impl Fn(&Element) -> bool) -> Element {
        for _ in 0..20 {
            let body = self.send("").await;
            let found = body.children().find(|e| wanted(e)).cloned();
            if let Some(found) = found {
                return found;
            }
        }
        panic!("nothing wanted in 20 polls");
    }

    /// Sends `payload` with `attrs`, then polls until an element satisfying `wanted`
    /// arrives.
    pub async fn expect(
        &mut self,
        attrs: &str,
        payload: &str,
        wanted: impl Fn(&Element) -> bool,
    ) -> Element {
        let body = self.send_with(attrs, payload).await;
        let found = body.children().find(|e| wanted(e)).cloned();
        if let Some(found) = found {
            return found;
        }
        self.until(wanted).await
    }

    /// Creates, logs in with PLAIN as `user` (password `secret`), restarts and binds.
    pub async fn login(server: &Server, user: &str, resource: &str) -> Self {
        Self::login_waiting(server, user, resource, 2).await
    }

    /// [`Self::login`] with requests held up to `wait` seconds.
    pub async fn login_waiting(server: &Server, user: &str, resource: &str, wait: u32) -> Self {
        use base64::Engine;
        let mut c = Self::create(server, wait).await;
        let creds = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0secret"));
        let auth = format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{creds}</auth>"
        );
        let answer = c.expect("", &auth, |e| e.name() != "features").await;
        assert_eq!(answer.name(), "success", "{answer:?}");
        let restart = " xmpp:restart='true' to='localhost'";
        let features = c.expect(restart, "", |e| e.name() == "features").await;
        assert!(features
            .child("bind", "urn:ietf:params:xml:ns:xmpp-bind")
            .is_some());
        let bind = format!("<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>{resource}</resource></bind></iq>");
        let bound = c.expect("", &bind, |e| e.attr("id") == Some("bind")).await;
        assert_eq!(bound.attr("type"), Some("result"), "{bound:?}");
        c
    }
}
