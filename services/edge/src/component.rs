//! XEP-0114 external components on their own listener (`listen.component`): one task per
//! component connection drives a [`Component`] (see `switchyard_core::component`).
//!
//! Once its handshake is proved the component's domain is bound like a session (the
//! record's JID is the bare domain), so the router reaches it through the registry from
//! any router, and a component on another edge is found the same way. Its stanzas are
//! routed one at a time, in order (the next is read once the router has the last);
//! deliveries to it are written as they come, each answered once written, as for a
//! client. When the connection ends the domain is unbound, and stanzas for it are answered
//! `service-unavailable` until it is back.
//!
//! The listener is for the cluster's own network: XEP-0114 streams are not encrypted, so
//! components run beside the edges (a sidecar or a pod on the pod network), never across
//! the internet.

use crate::admission::Handshake;
use crate::connections::{Command, Written};
use crate::listener::EdgeCtx;
use std::net::IpAddr;
use std::sync::Arc;
use switchyard_core::component::{Component, Input, Output};
use switchyard_core::{Jid, StreamCondition};
use switchyard_model::SessionRecord;
use switchyard_telemetry as metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::time::{sleep_until, timeout, Instant};

/// Serves one component connection until it ends.
pub(crate) async fn run(
    ctx: Arc<EdgeCtx>,
    tcp: TcpStream,
    id: u64,
    ip: IpAddr,
    admitted: Handshake,
) {
    let mailbox = ctx.connections.register(id, ctx.config.mailbox);
    let mut conn = Conn {
        component: Component::new(ctx.config.components.clone()),
        ctx,
        tcp,
        id,
        admitted: Some(admitted),
        bound: None,
        written: Vec::new(),
    };
    let deadline = Instant::now() + conn.ctx.config.handshake_timeout;
    let mut buf = vec![0u8; 8 * 1024];
    while !conn.component.is_closed() {
        let outputs = tokio::select! {
            read = conn.tcp.read(&mut buf), if conn.component.wants_bytes() => match read {
                Ok(0) | Err(_) => conn.component.handle(Input::PeerClosed),
                Ok(n) => {
                    metrics::EDGE_BYTES_IN.inc_by(n as u64);
                    conn.component.handle(Input::Bytes(&buf[..n]))
                }
            },
            command = mailbox.recv() => conn.command(command),
            () = sleep_until(deadline), if !conn.component.is_established() => {
                conn.component.handle(Input::Terminate(StreamCondition::ConnectionTimeout))
            }
        };
        if !Box::pin(conn.execute(outputs)).await {
            break;
        }
    }
    conn.written.clear();
    conn.ctx.connections.release(id, ip);
    if let Some(domain) = conn.bound.take() {
        conn.ctx.link.unbind(&domain, id, Vec::new()).await;
        tracing::info!(%domain, conn = id, "component disconnected");
    }
}

struct Conn {
    ctx: Arc<EdgeCtx>,
    component: Component,
    tcp: TcpStream,
    id: u64,
    /// Its place among connections in their handshake, until the domain is bound.
    admitted: Option<Handshake>,
    /// The domain bound to this connection.
    bound: Option<Jid>,
    /// Deliveries handed to the component since the last write.
    written: Vec<oneshot::Sender<Written>>,
}

impl Conn {
    fn command(&mut self, command: Option<Command>) -> Vec<Output> {
        match command {
            Some(Command::Deliver(delivery)) => {
                self.written.push(delivery.written);
                self.component.handle(Input::Deliver(delivery.stanza))
            }
            Some(Command::Terminate(condition)) => {
                self.component.handle(Input::Terminate(condition))
            }
            // Stream management is a client's: nothing to resume or move here.
            Some(Command::Resume(..) | Command::Export(_) | Command::Confirmed(_)) => Vec::new(),
            None => self
                .component
                .handle(Input::Terminate(StreamCondition::PolicyViolation)),
        }
    }

    /// Carries out outputs in order; `false` once the connection is finished.
    async fn execute(&mut self, outputs: Vec<Output>) -> bool {
        let mut queue = std::collections::VecDeque::from(outputs);
        let mut pending = String::new();
        while let Some(output) = queue.pop_front() {
            match output {
                Output::Send(xml) => pending.push_str(&xml),
                Output::Bind { domain } => {
                    let bound = self.bind(domain).await;
                    queue.extend(self.component.handle(Input::Bound(bound)));
                }
                Output::Route(stanza) => self.ctx.link.submit(stanza, None).await,
                Output::StreamError(condition) => {
                    metrics::EDGE_STREAM_ERRORS
                        .with_label_values(&[condition.as_str()])
                        .inc();
                }
                Output::Close => {
                    self.flush(&pending).await;
                    let _ = self.tcp.shutdown().await;
                    return false;
                }
            }
        }
        self.flush(&pending).await
    }

    async fn bind(&mut self, domain: Jid) -> bool {
        let record = SessionRecord::bound(domain.clone(), &self.ctx.config.edge_id, self.id);
        self.ctx.connections.claim(self.id, domain.clone());
        let bound = self.ctx.link.bind(record).await.is_ok();
        if bound {
            tracing::info!(%domain, conn = self.id, "component connected");
            self.ctx.connections.bound(self.id, domain.clone());
            self.bound = Some(domain);
            if let Some(place) = self.admitted.take() {
                place.established();
            }
        } else {
            self.ctx.connections.unclaim(self.id);
        }
        bound
    }

    /// Writes what is pending, then answers the deliveries it carried.
    async fn flush(&mut self, pending: &str) -> bool {
        if !pending.is_empty() {
            metrics::EDGE_BYTES_OUT.inc_by(pending.len() as u64);
            let write = self.tcp.write_all(pending.as_bytes());
            if !matches!(
                timeout(self.ctx.config.write_timeout, write).await,
                Ok(Ok(()))
            ) {
                self.written.clear();
                return false;
            }
        }
        for written in self.written.drain(..) {
            let _ = written.send(Written::default());
        }
        true
    }
}
