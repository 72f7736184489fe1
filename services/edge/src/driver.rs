//! The connection driver: one task per connection that moves bytes and events between the
//! socket, the sans-IO session, the connection's mailbox and the router link.
//!
//! Bounded everywhere: reads stop while the session waits (credentials, bind, TLS), the
//! mailbox has a fixed capacity, writes have a timeout, and the handshake and idle timers
//! end the stream with `connection-timeout`.

use crate::connections::Command;
use crate::listener::EdgeCtx;
use crate::tls::TlsSnapshot;
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use switchyard_core::session::{Input, Lookup, Output, Session};
use switchyard_core::{Jid, StanzaKind, StreamCondition};
use switchyard_storage::SessionRecord;
use switchyard_telemetry as metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_rustls::server::TlsStream;
use tracing::Instrument;

enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while a STARTTLS handshake owns the socket.
    Upgrading,
}

impl Transport {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf).await,
            Self::Tls(s) => s.read(buf).await,
            Self::Upgrading => Ok(0),
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(data).await,
            Self::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Self::Upgrading => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    async fn shutdown(&mut self) {
        let _ = match self {
            Self::Plain(s) => s.shutdown().await,
            Self::Tls(s) => s.shutdown().await,
            Self::Upgrading => Ok(()),
        };
    }
}

/// Runs the TLS handshake and returns the stream with its channel bindings.
async fn handshake(
    ctx: &EdgeCtx,
    tcp: TcpStream,
) -> Option<(
    Box<TlsStream<TcpStream>>,
    switchyard_core::sasl::ChannelBindings,
)> {
    let snapshot: Arc<TlsSnapshot> = ctx.tls.snapshot();
    match timeout(ctx.config.handshake_timeout, snapshot.acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let cb = snapshot.bindings(stream.get_ref().1);
            Some((Box::new(stream), cb))
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            metrics::EDGE_TLS_FAILURES.inc();
            None
        }
        Err(_) => {
            metrics::EDGE_TLS_FAILURES.inc();
            None
        }
    }
}

pub(crate) async fn run(ctx: Arc<EdgeCtx>, tcp: TcpStream, direct_tls: bool, id: u64, ip: IpAddr) {
    let (transport, tls) = if direct_tls {
        match handshake(&ctx, tcp).await {
            Some((stream, cb)) => (Transport::Tls(stream), Some(cb)),
            None => return ctx.connections.release(id, ip),
        }
    } else {
        (Transport::Plain(tcp), None)
    };
    let (tx, rx) = mpsc::channel(ctx.config.mailbox_capacity);
    ctx.connections.register(id, tx);
    let mut conn = Conn {
        session: Session::new(ctx.session.clone(), tls),
        ctx,
        transport,
        id,
        ip,
        account: None,
    };
    conn.serve(rx).await;
    if let Some(jid) = conn.session.jid() {
        conn.ctx.link.unbind(jid, id).await;
        tracing::info!(%jid, conn = id, "session ended");
    }
}

struct Conn {
    ctx: Arc<EdgeCtx>,
    session: Session,
    transport: Transport,
    id: u64,
    ip: IpAddr,
    /// The account named in the current SASL attempt, for failure throttling.
    account: Option<Jid>,
}

impl Conn {
    async fn serve(&mut self, mut rx: mpsc::Receiver<Command>) {
        let cfg = self.ctx.config.clone();
        let handshake_deadline = Instant::now() + cfg.handshake_timeout;
        let mut idle_deadline = Instant::now() + cfg.idle_timeout;
        let mut buf = vec![0u8; cfg.read_buffer_bytes];
        let shutdown = self.ctx.shutdown.clone();
        loop {
            let deadline = if self.session.in_handshake() {
                handshake_deadline.min(idle_deadline)
            } else {
                idle_deadline
            };
            let outputs = tokio::select! {
                read = self.transport.read(&mut buf), if self.session.wants_bytes() => match read {
                    Ok(0) | Err(_) => self.session.handle(Input::PeerClosed),
                    Ok(n) => {
                        metrics::EDGE_BYTES_IN.inc_by(n as u64);
                        idle_deadline = Instant::now() + cfg.idle_timeout;
                        self.session.handle(Input::Bytes(&buf[..n]))
                    }
                },
                command = rx.recv() => match command {
                    Some(Command::Deliver(el)) => {
                        metrics::EDGE_STANZAS_OUT.with_label_values(&[el.name()]).inc();
                        self.session.handle(Input::Deliver(*el))
                    }
                    Some(Command::Terminate(c)) => self.session.handle(Input::Terminate(c)),
                    None => self.session.handle(Input::Terminate(StreamCondition::PolicyViolation)),
                },
                () = sleep_until(deadline) => self.session.handle(Input::Terminate(StreamCondition::ConnectionTimeout)),
                () = shutdown.cancelled() => self.session.handle(Input::Terminate(StreamCondition::SystemShutdown)),
            };
            if !self.execute(outputs).await {
                break;
            }
        }
        self.ctx.connections.release(self.id, self.ip);
    }

    /// Carries out outputs in order; `false` once the connection is finished.
    async fn execute(&mut self, outputs: Vec<Output>) -> bool {
        let mut queue: VecDeque<Output> = outputs.into();
        let mut pending = String::new();
        while let Some(output) = queue.pop_front() {
            let more = match output {
                Output::Send(xml) => {
                    pending.push_str(&xml);
                    continue;
                }
                Output::Route(stanza) => {
                    metrics::EDGE_STANZAS_IN
                        .with_label_values(&[stanza.kind.as_str()])
                        .inc();
                    if stanza.kind == StanzaKind::Presence && stanza.to.is_none() {
                        let available = stanza.type_attr().is_none();
                        let presence = available.then(|| stanza.element.clone());
                        self.ctx.connections.presence(self.id, presence);
                    }
                    let span = metrics::trace::stanza_span(stanza.kind.as_str());
                    self.ctx.link.submit(stanza).instrument(span).await;
                    continue;
                }
                Output::StreamError(condition) => {
                    metrics::EDGE_STREAM_ERRORS
                        .with_label_values(&[condition.as_str()])
                        .inc();
                    continue;
                }
                Output::Authenticated {
                    username,
                    mechanism,
                } => {
                    metrics::EDGE_LOGINS
                        .with_label_values(&[mechanism.name(), "success", "none"])
                        .inc();
                    tracing::info!(user = %username, mechanism = mechanism.name(), conn = self.id, "authenticated");
                    continue;
                }
                Output::AuthFailed { mechanism, failure } => {
                    metrics::EDGE_LOGINS
                        .with_label_values(&[mechanism.name(), "failure", failure.as_str()])
                        .inc();
                    self.ctx.throttle.failed(self.ip, self.account.as_ref());
                    tracing::info!(
                        mechanism = mechanism.name(),
                        reason = failure.as_str(),
                        conn = self.id,
                        "authentication failed"
                    );
                    continue;
                }
                other => {
                    if !self.flush(&mut pending).await {
                        return false;
                    }
                    other
                }
            };
            let next = match more {
                Output::StartTls => self.start_tls().await,
                Output::FetchCredentials { account } => self.fetch(account).await,
                Output::Bind { jid } => {
                    let record =
                        SessionRecord::bound(jid.clone(), &self.ctx.config.edge_id, self.id);
                    let result = self.ctx.link.bind(record).await;
                    if result.is_ok() {
                        tracing::info!(%jid, conn = self.id, "session bound");
                        self.ctx.connections.bound(self.id, jid);
                    }
                    self.session.handle(Input::Bound(result))
                }
                _ => {
                    self.transport.shutdown().await;
                    return false;
                }
            };
            queue.extend(next);
        }
        self.flush(&mut pending).await
    }

    async fn flush(&mut self, pending: &mut String) -> bool {
        if pending.is_empty() {
            return true;
        }
        metrics::EDGE_BYTES_OUT.inc_by(pending.len() as u64);
        let write = self.transport.write_all(pending.as_bytes());
        let ok = matches!(
            timeout(self.ctx.config.write_timeout, write).await,
            Ok(Ok(()))
        );
        pending.clear();
        ok
    }

    async fn start_tls(&mut self) -> Vec<Output> {
        let Transport::Plain(tcp) = std::mem::replace(&mut self.transport, Transport::Upgrading)
        else {
            return self.session.handle(Input::PeerClosed);
        };
        match handshake(&self.ctx, tcp).await {
            Some((stream, cb)) => {
                self.transport = Transport::Tls(stream);
                self.session.handle(Input::TlsEstablished(cb))
            }
            None => self.session.handle(Input::PeerClosed),
        }
    }

    async fn fetch(&mut self, account: Jid) -> Vec<Output> {
        let lookup = if !self.ctx.throttle.allowed(self.ip, Some(&account)) {
            Lookup::Throttled
        } else {
            match self.ctx.link.credentials(&account).await {
                Ok(Some(creds)) => Lookup::Found(Box::new(creds)),
                Ok(None) => Lookup::NotFound,
                Err(e) => {
                    tracing::warn!(error = %e, "credential lookup failed");
                    Lookup::Unavailable
                }
            }
        };
        self.account = Some(account);
        self.session.handle(Input::Credentials(lookup))
    }
}
