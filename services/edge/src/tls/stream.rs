//! A client's TLS stream over rustls' unbuffered API.
//!
//! rustls' buffered connection keeps a 4 KiB record buffer for the life of every
//! connection, which is most of an idle session's memory. Here the socket is read into a
//! buffer on the stack for the length of one poll, and records are decrypted from there;
//! only the bytes of a record that has not fully arrived are kept with the connection, and
//! their allocation goes as soon as the record is whole. An idle session holds no buffer.
//!
//! What this module drives by hand, as rustls' unbuffered API asks:
//! - the handshake (RFC 8446 §4, RFC 5246 §7.3): records in, handshake records out;
//! - records rustls sends after it (an alert after a bad record, RFC 8446 §6.2; a
//!   refused renegotiation): kept as bytes and written before any later application
//!   data, so the order on the wire is rustls' order. The `key_update` answering a
//!   client's (RFC 8446 §4.6.3) rustls puts ahead of our next application data itself;
//! - `close_notify` at the end (RFC 8446 §6.1).
//!
//! rustls' one rule for the caller: the bytes it has seen and not yet discarded stay at
//! the front of the buffer given to its next call. Every call here gets the kept
//! ciphertext (`incoming`), or a fresh read whose undiscarded rest then becomes it.
//! After an error nothing more is read or written, but the alert rustls queued.
//!
//! The `tls-exporter` channel binding (RFC 9266) comes from the exporter secret rustls
//! gives a `KeyLog`, since the unbuffered API has no keying-material exporter; see
//! [`super::exporter`].

use super::exporter;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, UnbufferedStatus};
use rustls::ServerConfig;
use std::future::poll_fn;
use std::io::{self, ErrorKind};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::net::TcpStream;

/// Ciphertext taken from the socket per read, on the stack during a poll.
const READ_CHUNK: usize = 8 * 1024;

/// The largest plaintext of one record (RFC 8446 §5.1).
const MAX_PLAINTEXT: usize = 1 << 14;

/// Plaintext handed to the reader per poll, on the stack. Records are decrypted only while
/// a whole one still fits, so rustls never holds plaintext between polls.
const PLAIN_CHUNK: usize = 2 * MAX_PLAINTEXT;

/// Ciphertext held during the handshake at most: rustls refuses handshake messages over
/// 64 KiB, and the records carrying one come on top.
const MAX_HANDSHAKE_BUFFER: usize = 80 * 1024;

/// Ciphertext held after the handshake at most: two of the largest records (RFC 8446
/// §5.2) and one read. A client has nothing longer to send then; bytes of a handshake
/// message still arriving are held until it is whole, so without a bound a client could
/// make a connection hold megabytes, one byte per record.
const MAX_HELD: usize = 2 * (MAX_PLAINTEXT + 256 + 5) + READ_CHUNK;

/// Bytes of a TLS record beyond its plaintext, generously (header, content type, tag,
/// TLS 1.2 explicit nonce or CBC padding).
const RECORD_OVERHEAD: usize = 64;

pub(crate) struct TlsStream {
    tcp: TcpStream,
    tls: UnbufferedServerConnection,
    /// Ciphertext not yet decrypted: the start of a record still arriving, or records
    /// left for the next poll. Empty, without an allocation, whenever a read ends on a
    /// record boundary.
    incoming: Vec<u8>,
    /// TLS records not yet written: sealed application data, or what rustls produced
    /// while reading. Freed once written.
    outgoing: Vec<u8>,
    /// Plaintext a reader had no room for, or that came with the handshake while a
    /// write went first; read before anything else.
    plain_left: Vec<u8>,
    /// The peer's `close_notify` arrived, or the socket ended.
    ended: bool,
    /// Our `close_notify` is queued.
    closing: bool,
    /// rustls reported an error: only its alert goes out after it.
    failed: bool,
}

/// What an established stream gives the session: the stream, and for TLS 1.3 the
/// `tls-exporter` binding.
pub(crate) struct Established {
    pub(crate) stream: TlsStream,
    pub(crate) exporter: Option<Vec<u8>>,
}

fn tls_error(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, e)
}

impl TlsStream {
    /// Runs the server side of the handshake on `tcp`; the caller bounds it in time.
    pub(crate) async fn accept(
        tcp: TcpStream,
        config: Arc<ServerConfig>,
    ) -> io::Result<Established> {
        let tls = UnbufferedServerConnection::new(config).map_err(tls_error)?;
        let mut stream = Self {
            tcp,
            tls,
            incoming: Vec::new(),
            outgoing: Vec::new(),
            plain_left: Vec::new(),
            ended: false,
            closing: false,
            failed: false,
        };
        let mut exporter_secret = None;
        loop {
            let (status, secret) =
                exporter::capture(|| stream.tls.process_tls_records(&mut stream.incoming));
            exporter_secret = exporter_secret.or(secret);
            let UnbufferedStatus { discard, state } = status;
            let step = match state {
                Err(e) => Err(tls_error(e)),
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    encode_into(&mut stream.outgoing, |out| encode.encode(out)).map(|()| Step::Go)
                }
                Ok(ConnectionState::TransmitTlsData(sent)) => {
                    // Written below, before the next call; rustls only needs to know it will be.
                    sent.done();
                    Ok(Step::Send)
                }
                Ok(ConnectionState::BlockedHandshake) => Ok(Step::Read),
                // Established: application data may already be waiting (the client's
                // stream header, sent right behind its Finished); the first read takes it.
                Ok(ConnectionState::WriteTraffic(_) | ConnectionState::ReadTraffic(_)) => {
                    Ok(Step::Done)
                }
                Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => {
                    Err(ErrorKind::UnexpectedEof.into())
                }
                Ok(_) => Err(tls_error("early data is not accepted")),
            };
            stream.incoming.drain(..discard);
            let step = match step {
                Ok(step) => step,
                Err(e) => {
                    stream.fail();
                    // The alert, if the socket still takes it.
                    let _ = poll_fn(|cx| stream.poll_send(cx)).await;
                    return Err(e);
                }
            };
            match step {
                Step::Go => {}
                Step::Send => poll_fn(|cx| stream.poll_send(cx)).await?,
                Step::Read => {
                    if stream.incoming.len() > MAX_HANDSHAKE_BUFFER {
                        return Err(tls_error("a handshake larger than allowed"));
                    }
                    let mut chunk = [0u8; READ_CHUNK];
                    let n = stream.tcp.read(&mut chunk).await?;
                    if n == 0 {
                        return Err(ErrorKind::UnexpectedEof.into());
                    }
                    stream.incoming.extend_from_slice(&chunk[..n]);
                }
                Step::Done => break,
            }
        }
        stream.incoming.shrink_to_fit();
        let exporter = exporter_secret.and_then(|mut secret| {
            let binding = exporter::binding(&stream.tls, &secret);
            exporter::wipe(&mut secret);
            binding
        });
        Ok(Established { stream, exporter })
    }

    /// Polls for plaintext and hands it (empty at the end of the stream) to `f` while the
    /// buffers are still on the stack.
    pub(crate) fn poll_read_with<R>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(io::Result<&[u8]>) -> R,
    ) -> Poll<R> {
        if !self.plain_left.is_empty() {
            let left = std::mem::take(&mut self.plain_left);
            return Poll::Ready(f(Ok(&left)));
        }
        if self.failed {
            return Poll::Ready(f(Err(tls_error("the TLS stream failed"))));
        }
        let mut space = [MaybeUninit::<u8>::uninit(); PLAIN_CHUNK];
        let mut plain = ReadBuf::uninit(&mut space);
        // First what is kept from an earlier poll, then the socket, until plaintext comes.
        let mut result = self.decrypt_kept(&mut plain);
        while result.is_ok() && plain.filled().is_empty() && !self.ended {
            let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut scratch);
            match Pin::new(&mut self.tcp).poll_read(cx, &mut buf) {
                Poll::Pending => {
                    self.try_write_outgoing();
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(f(Err(e))),
                Poll::Ready(Ok(())) => {}
            }
            result = if buf.filled().is_empty() {
                // The end of the socket without close_notify: a truncation (RFC 8446 §6.1).
                self.ended = true;
                Err(ErrorKind::UnexpectedEof.into())
            } else if self.incoming.is_empty() {
                // The usual case: records decrypted where they were read, and only what
                // rustls did not discard (the start of a record still arriving) kept.
                let bytes = buf.filled_mut();
                let (used, result) = self.decrypt(bytes, &mut plain);
                self.incoming.extend_from_slice(&bytes[used..]);
                result
            } else {
                self.incoming.extend_from_slice(buf.filled());
                self.decrypt_kept(&mut plain)
            };
            if result.is_ok() && self.incoming.len() > MAX_HELD {
                result = Err(tls_error("more ciphertext held than a client needs"));
            }
        }
        if result.is_err() && !self.ended {
            self.fail();
        }
        // Records rustls wants sent (an alert) go now if the socket takes them; the rest
        // go before the next write.
        self.try_write_outgoing();
        Poll::Ready(f(result.map(|()| plain.filled())))
    }

    /// Decrypts from the kept ciphertext, keeping what is left (its allocation freed
    /// when nothing is).
    fn decrypt_kept(&mut self, plain: &mut ReadBuf<'_>) -> io::Result<()> {
        // Even with nothing kept, rustls may hold a record read with the handshake.
        let mut kept = std::mem::take(&mut self.incoming);
        let (used, result) = self.decrypt(&mut kept, plain);
        kept.drain(..used);
        self.keep(kept);
        result
    }

    fn keep(&mut self, bytes: Vec<u8>) {
        self.incoming = if bytes.is_empty() { Vec::new() } else { bytes };
    }

    /// Decrypts the whole records at the front of `bytes` into `plain` while a whole
    /// record still fits: how many bytes rustls discarded, and whether it went well.
    fn decrypt(&mut self, bytes: &mut [u8], plain: &mut ReadBuf<'_>) -> (usize, io::Result<()>) {
        let mut used = 0;
        while plain.remaining() >= MAX_PLAINTEXT {
            let UnbufferedStatus { discard, state } =
                self.tls.process_tls_records(&mut bytes[used..]);
            let mut step = Ok(true);
            match state {
                Err(e) => step = Err(tls_error(e)),
                // One record's plaintext (rustls stops after each), which fits.
                Ok(ConnectionState::ReadTraffic(mut traffic)) => {
                    while let Some(record) = traffic.next_record() {
                        match record {
                            Ok(record) if record.payload.len() <= plain.remaining() => {
                                used += record.discard;
                                plain.put_slice(record.payload);
                            }
                            Ok(_) => step = Err(tls_error("a record larger than TLS allows")),
                            Err(e) => step = Err(tls_error(e)),
                        }
                        if step.is_err() {
                            break;
                        }
                    }
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    step = encode_into(&mut self.outgoing, |out| encode.encode(out)).map(|()| true);
                }
                Ok(ConnectionState::TransmitTlsData(sent)) => sent.done(),
                Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => {
                    self.ended = true;
                    step = Ok(false);
                }
                // Nothing whole is left to read.
                Ok(ConnectionState::WriteTraffic(_) | ConnectionState::BlockedHandshake) => {
                    step = Ok(false);
                }
                Ok(_) => step = Err(tls_error("unexpected early data")),
            }
            used += discard;
            match step {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return (used, Err(e)),
            }
        }
        (used, Ok(()))
    }

    /// After an error: nothing more is read or written, but the alert rustls queued.
    /// One call takes it: a queued record comes out before anything is read again, and
    /// a second call would process the failed bytes again.
    fn fail(&mut self) {
        self.failed = true;
        let UnbufferedStatus { discard, state } = self.tls.process_tls_records(&mut self.incoming);
        if let Ok(ConnectionState::EncodeTlsData(mut encode)) = state {
            let _ = encode_into(&mut self.outgoing, |out| encode.encode(out));
        }
        self.incoming.drain(..discard);
    }
}

/// The steps of the handshake loop.
enum Step {
    Go,
    Send,
    Read,
    Done,
}

/// For hyper (WebSocket and BOSH over TLS): the same stream as a byte pipe.
impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut left = Vec::new();
        let read = ready!(this.poll_read_with(cx, |read| {
            read.map(|bytes| {
                let n = bytes.len().min(buf.remaining());
                buf.put_slice(&bytes[..n]);
                left.extend_from_slice(&bytes[n..]);
            })
        }));
        if !left.is_empty() {
            this.plain_left = left;
        }
        Poll::Ready(read)
    }
}

mod write;
use write::encode_into;

#[cfg(test)]
mod tests;
