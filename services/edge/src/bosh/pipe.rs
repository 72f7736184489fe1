//! A BOSH session's transport as its driver sees it: messages from requests come in,
//! written elements wait for the next response.

use super::{lock, Bosh};
use hyper::body::Bytes;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

pub(crate) struct Pipe {
    bosh: Arc<Bosh>,
    inbound: mpsc::Receiver<Bytes>,
}

impl Pipe {
    pub(super) fn new(bosh: Arc<Bosh>, inbound: mpsc::Receiver<Bytes>) -> Self {
        Self { bosh, inbound }
    }

    /// The next message, as the bytes of one read (empty once the session is abandoned).
    pub(crate) fn poll_read_with<R>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(std::io::Result<&[u8]>) -> R,
    ) -> Poll<R> {
        match self.inbound.poll_recv(cx) {
            Poll::Ready(Some(bytes)) => Poll::Ready(f(Ok(&bytes))),
            Poll::Ready(None) => Poll::Ready(f(Ok(&[]))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Queues elements for the next response and returns once a response carries them,
    /// as a socket write returns once the bytes are out: only then are the deliveries
    /// among them answered. A client that stops polling meets the driver's write timeout,
    /// and what no response carried is unanswered (routed as for a session that is gone:
    /// stored offline, never lost).
    pub(crate) async fn write<'a>(
        &self,
        elements: impl Iterator<Item = &'a str>,
    ) -> std::io::Result<()> {
        let mut elements = Some(elements);
        let mut until = u64::MAX;
        loop {
            let notified = self.bosh.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = lock(&self.bosh.state);
                if state.taken >= until {
                    return Ok(());
                }
                if state.ended {
                    return Err(std::io::ErrorKind::NotConnected.into());
                }
                let room = state.outbox.is_empty() || state.outbox_bytes < self.bosh.outbox_limit;
                if let Some(queued) = elements.take_if(|_| room) {
                    for element in queued {
                        state.outbox_bytes += element.len();
                        state.outbox.push(element.to_owned());
                        state.written += 1;
                    }
                    until = state.written;
                    drop(state);
                    self.bosh.changed.notify_waiters();
                    continue;
                }
            }
            notified.await;
        }
    }

    /// The session's side is over: held requests are answered with what is left and
    /// the end of the session.
    pub(crate) fn close(&self) {
        lock(&self.bosh.state).ended = true;
        self.bosh.changed.notify_waiters();
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        self.close();
    }
}
