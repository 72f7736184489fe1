//! The I/O driver of one simulated client: a TCP socket (bound to a chosen source
//! address), optional TLS, the core framer, and the login machine run to completion under
//! one timeout. After login the stream is split into a reader and a writer half.
//! A session with stream management keeps its counters ([`SmClient`]) so that holding it
//! answers the server's ack requests and a broken stream can be resumed.

use super::ledger::Ledger;
use super::login::{Action, Login, Params};
use super::scram_cache::ScramCache;
use super::sm::{Inbound, SmClient};
use crate::cli::{Target, Transport};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use switchyard_core::{Frame, Framer, Limits};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

/// Bytes read from the socket at once.
const READ_CHUNK_BYTES: usize = 4096;

/// A plain or TLS socket, one type so scenarios do not care which.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_write(cx, b),
            Self::Tls(s) => Pin::new(s).poll_write(cx, b),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_flush(cx),
            Self::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// What every connection of a run shares.
#[derive(Debug)]
pub struct Connector {
    pub target: Target,
    pub tls: Arc<rustls::ClientConfig>,
    pub scram_cache: ScramCache,
    /// Where the sessions count numbered messages, from their first frame on (a login
    /// reads what arrives before it is ready too), when a run sends them.
    pub ledger: std::sync::OnceLock<Arc<Ledger>>,
}

/// A logged-in client: its stream and the framer holding any bytes read past the roster.
#[derive(Debug)]
pub struct Session {
    pub stream: Stream,
    pub framer: Framer,
    /// Stream management, when enabled (or resumed).
    pub sm: Option<SmClient>,
    /// Stanzas [`Session::hold`] read (after login, or after `<resumed/>`), numbered
    /// messages aside.
    pub stanzas_held: u64,
    /// Where the numbered messages this session reads are counted, if any are sent.
    pub ledger: Option<Arc<Ledger>>,
}

impl Connector {
    pub fn new(target: Target) -> anyhow::Result<Self> {
        let tls = super::tls::client_config(target.tls_ca.as_deref())?;
        let scram_cache = ScramCache::load(target.scram_cache.as_deref())?;
        Ok(Self {
            target,
            tls,
            scram_cache,
            ledger: std::sync::OnceLock::new(),
        })
    }

    /// Connects from the `n`th source address (round robin).
    pub async fn tcp(&self, n: usize) -> io::Result<TcpStream> {
        let server = self.target.server;
        let socket = match server {
            SocketAddr::V4(_) => TcpSocket::new_v4()?,
            SocketAddr::V6(_) => TcpSocket::new_v6()?,
        };
        if !self.target.sources.is_empty() {
            let ip: IpAddr = self.target.sources[n % self.target.sources.len()];
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(server).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// The TLS handshake over `tcp` (direct TLS or after `<proceed/>`).
    pub async fn tls_stream(&self, tcp: TcpStream) -> Result<Stream, String> {
        let name = rustls_pki_types::ServerName::try_from(self.target.accounts.domain.clone())
            .map_err(|_| "tls-bad-server-name".to_owned())?;
        let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
        match connector.connect(name, tcp).await {
            Ok(s) => Ok(Stream::Tls(Box::new(s))),
            Err(_) => Err("tls-handshake".into()),
        }
    }

    /// Logs session `n` in as user `n % users` with resource `r{n}` (see
    /// [`crate::cli::Accounts::full_jid`]); the error is the
    /// failure kind.
    pub async fn login(&self, n: usize) -> Result<Session, String> {
        self.login_or_resume(n, None).await
    }

    /// As [`Connector::login`], but with `resume` (a broken stream's state) the new
    /// stream resumes it (XEP-0198 §5) instead of binding; it is ready at `<resumed/>`.
    pub async fn login_or_resume(
        &self,
        n: usize,
        resume: Option<SmClient>,
    ) -> Result<Session, String> {
        let limit = Duration::from_secs(self.target.login_timeout_secs);
        match tokio::time::timeout(limit, self.login_inner(n, resume)).await {
            Ok(result) => result,
            Err(_) => Err("login-timeout".into()),
        }
    }

    async fn login_inner(&self, n: usize, resume: Option<SmClient>) -> Result<Session, String> {
        let t = &self.target;
        let tcp = self.tcp(n).await.map_err(connect_error)?;
        let direct = t.transport == Transport::Tls;
        let stream = if direct {
            self.tls_stream(tcp).await?
        } else {
            Stream::Plain(tcp)
        };
        let username = t.accounts.username(n % t.accounts.users.max(1));
        let cache_key = format!("{}:{username}", t.mechanism.name());
        let params = Params {
            domain: t.accounts.domain.clone(),
            salted: self.scram_cache.get(&cache_key),
            username,
            password: t.accounts.password.clone(),
            resource: crate::cli::Accounts::resource(n),
            mechanism: t.mechanism,
            starttls: t.transport == Transport::Starttls,
            sm: t.sm || resume.is_some(),
            resume,
        };
        let (login, first) = Login::start(params, direct);
        let (mut session, mut login) = self.drive(stream, login, first).await?;
        session.sm = login.take_sm();
        if let Some(salted) = login.salted_password() {
            self.scram_cache.put(cache_key, salted);
        }
        Ok(session)
    }

    async fn drive(
        &self,
        stream: Stream,
        mut login: Login,
        first: Action,
    ) -> Result<(Session, Login), String> {
        let mut s = Session {
            stream,
            framer: Framer::new(Limits::default()),
            sm: None,
            stanzas_held: 0,
            ledger: self.ledger.get().cloned(),
        };
        let mut actions = vec![first];
        let mut buf = [0u8; READ_CHUNK_BYTES];
        loop {
            for action in std::mem::take(&mut actions) {
                match action {
                    Action::Send(xml) => write(&mut s.stream, xml.as_bytes()).await?,
                    Action::StartTls => {
                        let Stream::Plain(tcp) = s.stream else {
                            return Err("starttls-twice".into());
                        };
                        s.stream = self.tls_stream(tcp).await?;
                        s.framer = Framer::new(Limits::default());
                        actions.push(login.tls_up());
                    }
                    Action::RestartStream => s.framer.reset_stream(),
                    Action::Ready => return Ok((s, login)),
                }
            }
            if actions.is_empty() {
                let frame = next_frame(&mut s.stream, &mut s.framer, &mut buf).await?;
                if let (Frame::Stanza(el, _), Some(ledger)) = (&frame, &s.ledger) {
                    ledger.record(el);
                }
                actions = login.handle(frame)?;
            }
        }
    }
}

fn connect_error(e: io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connect-refused".into(),
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => "connect-no-port".into(),
        _ if e.raw_os_error() == Some(24) => "connect-too-many-files".into(),
        _ => "connect-error".into(),
    }
}

/// Writes and flushes (TLS buffers otherwise).
pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> Result<(), String> {
    w.write_all(data).await.map_err(|_| "write-error")?;
    w.flush().await.map_err(|_| "write-error".to_owned())
}

/// Reads until the framer yields a frame.
pub async fn next_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    framer: &mut Framer,
    buf: &mut [u8],
) -> Result<Frame, String> {
    loop {
        match framer.next_frame() {
            Ok(Some(frame)) => return Ok(frame),
            Ok(None) => {}
            Err(e) => return Err(format!("bad-xml:{:?}", e.condition())),
        }
        match r.read(buf).await {
            Ok(0) => return Err("closed".into()),
            Ok(n) => framer.push(&buf[..n]),
            Err(_) => return Err("read-error".into()),
        }
    }
}

/// Seconds between whitespace keepalives (RFC 6120 §4.6.1) while a session idles.
const KEEPALIVE_SECS: u64 = 60;

impl Session {
    /// Reads and discards what the server sends until `until` completes; `Err` names why
    /// the server ended the session first.
    pub async fn hold(
        &mut self,
        until: impl std::future::Future<Output = ()>,
    ) -> Result<(), String> {
        let mut buf = [0u8; READ_CHUNK_BYTES];
        let period = Duration::from_secs(KEEPALIVE_SECS);
        let mut keepalive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tokio::pin!(until);
        loop {
            tokio::select! {
                frame = next_frame(&mut self.stream, &mut self.framer, &mut buf) => {
                    if let Frame::Stanza(el, _) = stream_end(frame?)? {
                        if let Some(ack) = self.on_element(&el) {
                            write(&mut self.stream, ack.as_bytes()).await?;
                        }
                    }
                }
                _ = keepalive.tick() => write(&mut self.stream, b" ").await?,
                () = &mut until => return Ok(()),
            }
        }
    }

    /// Counts what a held session reads; with stream management, the `<a/>` that answers
    /// an `<r/>`.
    pub fn on_element(&mut self, el: &switchyard_core::Element) -> Option<String> {
        let counted = match self.sm.as_mut() {
            Some(sm) => match sm.on_element(el) {
                Inbound::Request(ack) => return Some(ack),
                Inbound::Stanza => true,
                Inbound::Ack(_) | Inbound::Other => false,
            },
            None => {
                el.ns() == switchyard_core::ns::CLIENT
                    && matches!(el.name(), "message" | "presence" | "iq")
            }
        };
        let numbered = self.ledger.as_ref().is_some_and(|l| l.record(el));
        if counted && !numbered {
            self.stanzas_held += 1;
        }
        None
    }

    /// Breaks the connection the way a lost network does for the server: no
    /// `</stream:stream>`, no TLS close; `SO_LINGER` 0 makes the close a TCP reset.
    pub fn abort(self) {
        let tcp = match &self.stream {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => tls.get_ref().0,
        };
        // A reset needs no lingering, so the drop below does not block.
        let _ = tcp.set_zero_linger();
        drop(self);
    }

    /// Closes the stream politely and shuts the socket down (bounded by a short timeout).
    pub async fn close(mut self) {
        let bye = async {
            let _ = write(&mut self.stream, b"</stream:stream>").await;
            let _ = self.stream.shutdown().await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), bye).await;
    }
}

/// `Err` with the kind when a frame ends the stream (close or stream error).
pub fn stream_end(frame: Frame) -> Result<Frame, String> {
    match frame {
        Frame::Close => Err("closed-by-server".into()),
        Frame::Stanza(el, _) if el.is("error", switchyard_core::ns::STREAMS) => {
            let condition = el.children().next().map_or("undefined", |c| c.name());
            Err(format!("stream-error:{condition}"))
        }
        other => Ok(other),
    }
}
