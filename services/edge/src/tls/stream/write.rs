//! The writing half of [`TlsStream`]: sealing application data into records behind what
//! rustls queued, sending them, and `close_notify` (RFC 8446 §6.1).

use super::{tls_error, TlsStream, MAX_PLAINTEXT, RECORD_OVERHEAD};
use rustls::server::ServerConnectionData;
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncryptError, UnbufferedStatus, WriteTraffic,
};
use std::io::{self, ErrorKind};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::AsyncWrite;

impl TlsStream {
    /// Drives rustls until application data may be written, then lets `write` seal into
    /// what is to be sent. On the way, records rustls queued are encoded ahead of it, and
    /// plaintext it decrypted from kept ciphertext is kept for the next read.
    fn with_write_traffic<T>(
        &mut self,
        write: impl FnOnce(&mut WriteTraffic<'_, ServerConnectionData>, &mut Vec<u8>) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut write = Some(write);
        // Each turn encodes or takes one thing rustls holds; the kept ciphertext bounds them.
        loop {
            if self.failed {
                return Err(tls_error("the TLS stream failed"));
            }
            let UnbufferedStatus { discard, state } =
                self.tls.process_tls_records(&mut self.incoming);
            let mut extra = 0;
            let outcome = match state {
                Err(e) => Some(Err(tls_error(e))),
                Ok(ConnectionState::WriteTraffic(mut traffic)) => match write.take() {
                    Some(write) => Some(write(&mut traffic, &mut self.outgoing)),
                    None => Some(Err(ErrorKind::NotConnected.into())),
                },
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    encode_into(&mut self.outgoing, |out| encode.encode(out))
                        .err()
                        .map(Err)
                }
                Ok(ConnectionState::TransmitTlsData(sent)) => {
                    sent.done();
                    None
                }
                // Plaintext that came with the handshake, or from kept records: kept for
                // the next read, so that writing can go on.
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    let mut outcome = None;
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) => {
                                extra += record.discard;
                                self.plain_left.extend_from_slice(record.payload);
                            }
                            Err(e) => {
                                outcome = Some(Err(tls_error(e)));
                                break;
                            }
                        }
                    }
                    outcome
                }
                Ok(ConnectionState::PeerClosed) => {
                    self.ended = true;
                    None
                }
                Ok(_) => Some(Err(ErrorKind::NotConnected.into())),
            };
            self.incoming.drain(..discard + extra);
            if let Some(result) = outcome {
                let kept = std::mem::take(&mut self.incoming);
                self.keep(kept);
                if result.is_err() {
                    self.fail();
                }
                return result;
            }
        }
    }

    /// Appends the records of `plain` to what is to be sent.
    fn seal(&mut self, plain: &[u8]) -> io::Result<()> {
        self.with_write_traffic(|traffic, out| {
            let records = plain.len().div_ceil(MAX_PLAINTEXT).max(1);
            let room = plain.len() + records * RECORD_OVERHEAD;
            append(out, room, |buf| {
                traffic.encrypt(plain, buf).map_err(|e| match e {
                    EncryptError::InsufficientSize(e) => Short::Needs(e.required_size),
                    e => Short::Failed(e.to_string()),
                })
            })
        })
    }

    /// Writes what is to be sent, and frees its buffer once it is.
    pub(super) fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outgoing.is_empty() {
            match ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.outgoing)) {
                Ok(0) => return Poll::Ready(Err(ErrorKind::WriteZero.into())),
                Ok(n) => drop(self.outgoing.drain(..n)),
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        self.outgoing = Vec::new();
        Poll::Ready(Ok(()))
    }

    pub(super) fn try_write_outgoing(&mut self) {
        if self.outgoing.is_empty() {
            return;
        }
        match self.tcp.try_write(&self.outgoing) {
            Ok(n) if n == self.outgoing.len() => self.outgoing = Vec::new(),
            Ok(n) => drop(self.outgoing.drain(..n)),
            Err(_) => {}
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // What was sealed before goes first, so that at most one write is held.
        ready!(this.poll_send(cx))?;
        this.seal(buf)?;
        let _ = this.poll_send(cx)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    /// Sends `close_notify` (RFC 8446 §6.1) behind what is pending, then shuts the socket.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.closing = true;
            // A stream that failed has its alert queued instead.
            let _ = this.with_write_traffic(|traffic, out| {
                let mut alert = [0u8; RECORD_OVERHEAD];
                let n = traffic
                    .queue_close_notify(&mut alert)
                    .map_err(|e| tls_error(e.to_string()))?;
                out.extend_from_slice(&alert[..n]);
                Ok(())
            });
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

/// Appends one encoded record to `out`.
pub(super) fn encode_into(
    out: &mut Vec<u8>,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> io::Result<()> {
    append(out, 512, |buf| {
        encode(buf).map_err(|e| match e {
            EncodeError::InsufficientSize(e) => Short::Needs(e.required_size),
            e => Short::Failed(e.to_string()),
        })
    })
}

/// Why rustls wrote nothing into the room it was given.
enum Short {
    /// It needs this much room.
    Needs(usize),
    Failed(String),
}

/// Appends what `fill` writes to `out`, given `room` bytes first and, if rustls asks for
/// more, the size it asked for.
fn append(
    out: &mut Vec<u8>,
    mut room: usize,
    mut fill: impl FnMut(&mut [u8]) -> Result<usize, Short>,
) -> io::Result<()> {
    let start = out.len();
    for _ in 0..2 {
        out.resize(start + room, 0);
        match fill(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(Short::Needs(required)) => room = required,
            Err(Short::Failed(e)) => {
                out.truncate(start);
                return Err(tls_error(e));
            }
        }
    }
    out.truncate(start);
    Err(tls_error("rustls asked for more room than it used"))
}
