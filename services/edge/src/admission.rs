//! Admission control for reconnect storms.
//!
//! When an edge dies, its clients come back at once through the others. What costs an
//! edge there is the handshake (TLS, SASL, bind or resume), not the established session,
//! so the edge bounds connections *in their handshake* (`limits.max_concurrent_handshakes`)
//! rather than letting thousands of them share the CPU until all time out. A connection
//! past the bound is refused at once and cheaply:
//!
//! - on the STARTTLS listener, once the client's stream header arrived (or 2 s passed),
//!   with our header and a `resource-constraint` stream error whose text says when to
//!   retry (RFC 6120 §4.9.3.17; XMPP has no structured retry field), then the stream
//!   closes;
//! - on the direct-TLS and WebSocket listeners the connection is closed before any TLS or
//!   HTTP work: a TLS handshake is the very cost being avoided.
//!
//! Clients back off and come back, and get in as earlier handshakes finish. Sessions
//! already established are not touched. Refusals in progress are bounded too
//! ([`MAX_REFUSING`]); past that a connection is just closed.

use crate::listener::{EdgeCtx, ListenerKind};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchyard_core::xml::escape_attr;
use switchyard_core::{ns, StreamCondition};
use switchyard_telemetry as metrics;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

/// Longest a refused client is given to send its stream header.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Refusals being answered at once.
const MAX_REFUSING: usize = 1024;
/// The retry hint, in seconds.
const RETRY_SECS: u32 = 5;

static REFUSING: Semaphore = Semaphore::const_new(MAX_REFUSING);

/// Handshakes in progress per client address: one address may hold at most
/// `limits.max_concurrent_handshakes_per_ip` of the edge's places, so one host cannot
/// take them all and lock every other client (and every resumption) out.
#[derive(Debug, Default)]
pub(crate) struct PerIp(Mutex<HashMap<IpAddr, usize>>);

impl PerIp {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A connection's place among those in their handshake (the edge's and its address's),
/// given back when its session is bound or resumed, or when it ends.
pub(crate) struct Handshake {
    _permit: OwnedSemaphorePermit,
    per_ip: Arc<PerIp>,
    ip: IpAddr,
    /// When the connection was admitted, for the login duration.
    since: std::time::Instant,
}

impl Handshake {
    /// The place, unless `ip` already holds `per_ip_limit` of them.
    pub(crate) fn new(
        permit: OwnedSemaphorePermit,
        per_ip: &Arc<PerIp>,
        ip: IpAddr,
        per_ip_limit: usize,
    ) -> Option<Self> {
        {
            let mut counts = per_ip.lock();
            let count = counts.entry(ip).or_default();
            if *count >= per_ip_limit {
                return None;
            }
            *count += 1;
        }
        metrics::EDGE_HANDSHAKES.inc();
        Some(Self {
            _permit: permit,
            per_ip: per_ip.clone(),
            ip,
            since: std::time::Instant::now(),
        })
    }

    /// The session is bound or resumed: the place is given back and the time it took
    /// recorded.
    pub(crate) fn established(self) {
        metrics::EDGE_LOGIN_DURATION.observe(self.since.elapsed().as_secs_f64());
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        metrics::EDGE_HANDSHAKES.dec();
        let mut counts = self.per_ip.lock();
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Refuses, from its own task, a connection whose address holds its share of places.
pub(crate) async fn refuse_here(ctx: &EdgeCtx, tcp: TcpStream, kind: ListenerKind) {
    metrics::EDGE_ADMISSION_REFUSED
        .with_label_values(&[kind.label()])
        .inc();
    if kind == ListenerKind::StartTls {
        let domain = ctx.session.domains.first().cloned().unwrap_or_default();
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT * 2, answer(tcp, &domain)).await;
    }
}

/// Refuses a connection that found every handshake place taken (see the module doc).
pub(crate) fn refuse(ctx: &EdgeCtx, tracker: &TaskTracker, tcp: TcpStream, kind: ListenerKind) {
    let listener = kind.label();
    metrics::EDGE_ADMISSION_REFUSED
        .with_label_values(&[listener])
        .inc();
    tracing::debug!(listener, "handshake limit reached; refusing a connection");
    let Ok(refusing) = REFUSING.try_acquire() else {
        return;
    };
    if kind != ListenerKind::StartTls {
        return;
    }
    refusing.forget();
    let domain = ctx.session.domains.first().cloned().unwrap_or_default();
    tracker.spawn(async move {
        let _ = tokio::time::timeout(REFUSAL_TIMEOUT * 2, answer(tcp, &domain)).await;
        REFUSING.add_permits(1);
    });
}

/// Waits for the client's header (not parsed: only its arrival), then answers.
async fn answer(mut tcp: TcpStream, domain: &str) -> std::io::Result<()> {
    let mut header = [0u8; 512];
    let _ = tokio::time::timeout(REFUSAL_TIMEOUT, tcp.read(&mut header)).await;
    tcp.write_all(refusal(domain).as_bytes()).await?;
    tcp.shutdown().await
}

/// Our stream header, then `resource-constraint` with the retry hint (RFC 6120 §4.9.1.2:
/// an error before the stream is set up still opens it first).
fn refusal(domain: &str) -> String {
    let text = format!("too many connections are being set up; retry in {RETRY_SECS} seconds");
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' from='{}' version='1.0' xml:lang='en'>{}</stream:stream>",
        ns::CLIENT,
        ns::STREAMS,
        escape_attr(domain),
        StreamCondition::ResourceConstraint.to_xml(Some(&text)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_whole_stream_with_the_error_and_a_retry_hint() {
        let xml = refusal("example.org");
        let mut framer = switchyard_core::Framer::new(switchyard_core::Limits::default());
        framer.push(xml.as_bytes());
        assert!(matches!(
            framer.next_frame(),
            Ok(Some(switchyard_core::Frame::Open(_)))
        ));
        let Ok(Some(switchyard_core::Frame::Stanza(error, _))) = framer.next_frame() else {
            panic!("an error element: {xml}");
        };
        assert!(error.is("error", ns::STREAMS));
        assert!(error
            .child("resource-constraint", ns::STREAM_ERRORS)
            .is_some());
        assert!(error
            .child("text", ns::STREAM_ERRORS)
            .is_some_and(|t| t.text().contains("retry in 5 seconds")));
        assert!(matches!(
            framer.next_frame(),
            Ok(Some(switchyard_core::Frame::Close))
        ));
    }
}
