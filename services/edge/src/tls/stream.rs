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
//! - records rustls sends after it (a `key_update` answering the client's, RFC 8446
//!   §4.6.3; an alert after a bad record): kept as bytes and written before any later
//!   application data, so the order on the wire is rustls' order;
//! - `close_notify` at the end (RFC 8446 §6.1).
//!
//! The `tls-exporter` channel binding (RFC 9266) comes from the exporter secret rustls
//! gives a `KeyLog`, since the unbuffered API has no keying-material exporter; see
//! [`super::exporter`].

use super::exporter;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::ServerConfig;
use std::future::poll_fn;
use std::io::{self, ErrorKind};
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Ciphertext taken from the socket per read, on the stack during a poll.
const READ_CHUNK: usize = 8 * 1024;

/// The largest plaintext of one record (RFC 8446 §5.1).
const MAX_PLAINTEXT: usize = 1 << 14;

/// Plaintext handed to the reader per poll, on the stack. Records are decrypted only while
/// a whole one still fits, so rustls never holds plaintext between polls.
const PLAIN_CHUNK: usize = 2 * MAX_PLAINTEXT;

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
    /// TLS records rustls produced while reading (a `key_update`, an alert), written
    /// before anything else.
    outgoing: Vec<u8>,
    /// Plaintext a reader had no room for, or that came with the handshake while a
    /// write went first; read before anything else.
    plain_left: Vec<u8>,
    /// The peer's `close_notify` arrived, or the socket ended.
    ended: bool,
    /// Our `close_notify` is queued.
    closing: bool,
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
        };
        let mut exporter_secret = None;
        loop {
            let (status, secret) =
                exporter::capture(|| stream.tls.process_tls_records(&mut stream.incoming));
            exporter_secret = exporter_secret.or(secret);
            let UnbufferedStatus { discard, state } = status;
            let mut need_bytes = false;
            let mut transmit = false;
            let done = match state {
                Err(e) => {
                    stream.incoming.drain(..discard);
                    // The alert rustls queued for the error, if it can still go.
                    let _ = stream.flush_records().await;
                    return Err(tls_error(e));
                }
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    encode_into(&mut stream.outgoing, |out| encode.encode(out))?;
                    false
                }
                Ok(ConnectionState::TransmitTlsData(sent)) => {
                    // Written below, before the next call; rustls only needs to know it will be.
                    sent.done();
                    transmit = true;
                    false
                }
                Ok(ConnectionState::BlockedHandshake) => {
                    need_bytes = true;
                    false
                }
                // Established: application data may already be waiting (the client's
                // stream header, sent right behind its Finished); the first read takes it.
                Ok(ConnectionState::WriteTraffic(_) | ConnectionState::ReadTraffic(_)) => true,
                Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => {
                    return Err(ErrorKind::UnexpectedEof.into());
                }
                Ok(_) => return Err(tls_error("early data is not accepted")),
            };
            stream.incoming.drain(..discard);
            if transmit {
                poll_fn(|cx| stream.poll_send(cx)).await?;
            }
            if done {
                break;
            }
            if need_bytes {
                stream.incoming.reserve(READ_CHUNK);
                if stream.tcp.read_buf(&mut stream.incoming).await? == 0 {
                    return Err(ErrorKind::UnexpectedEof.into());
                }
            }
        }
        stream.incoming.shrink_to_fit();
        let exporter = exporter_secret.and_then(|secret| exporter::binding(&stream.tls, &secret));
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
        let mut plain = [0u8; PLAIN_CHUNK];
        let mut filled = 0;
        // First what is left from an earlier poll, then the socket, until plaintext comes.
        if let Err(e) = self.decrypt_kept(&mut plain, &mut filled) {
            return Poll::Ready(f(Err(e)));
        }
        while filled == 0 && !self.ended {
            let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
            let mut buf = ReadBuf::uninit(&mut scratch);
            match Pin::new(&mut self.tcp).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(f(Err(e))),
                Poll::Ready(Ok(())) => {}
            }
            let result = if buf.filled().is_empty() {
                self.ended = true;
                match self.incoming.is_empty() {
                    true => Ok(()),
                    false => Err(ErrorKind::UnexpectedEof.into()),
                }
            } else if self.incoming.is_empty() {
                // The usual case: records decrypted where they were read, and only the
                // start of one still arriving kept.
                let bytes = buf.filled_mut();
                self.decrypt(bytes, &mut plain, &mut filled).map(|used| {
                    self.incoming.extend_from_slice(&bytes[used..]);
                })
            } else {
                self.incoming.extend_from_slice(buf.filled());
                self.decrypt_kept(&mut plain, &mut filled)
            };
            if let Err(e) = result {
                return Poll::Ready(f(Err(e)));
            }
        }
        // Records rustls wants sent (a key update's answer) go now if the socket takes
        // them; the rest go before the next write.
        self.try_write_outgoing();
        Poll::Ready(f(Ok(&plain[..filled])))
    }

    /// Decrypts from the kept ciphertext, keeping what is left (its allocation freed
    /// when nothing is).
    fn decrypt_kept(
        &mut self,
        plain: &mut [u8; PLAIN_CHUNK],
        filled: &mut usize,
    ) -> io::Result<()> {
        // Even with nothing kept, rustls may hold a record read with the handshake.
        let mut kept = std::mem::take(&mut self.incoming);
        let result = self.decrypt(&mut kept, plain, filled);
        if let Ok(used) = result {
            kept.drain(..used);
        }
        if !kept.is_empty() {
            self.incoming = kept;
        }
        result.map(drop)
    }

    /// Decrypts the whole records at the front of `bytes` into `plain` while a whole
    /// record still fits; how many bytes it used.
    fn decrypt(
        &mut self,
        bytes: &mut [u8],
        plain: &mut [u8; PLAIN_CHUNK],
        filled: &mut usize,
    ) -> io::Result<usize> {
        let mut used = 0;
        while *filled + MAX_PLAINTEXT <= PLAIN_CHUNK {
            let UnbufferedStatus { discard, state } =
                self.tls.process_tls_records(&mut bytes[used..]);
            used += discard;
            match state.map_err(tls_error)? {
                // One record's plaintext (rustls stops after each), which fits.
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record.map_err(tls_error)?;
                        used += record.discard;
                        let end = *filled + record.payload.len();
                        let Some(room) = plain.get_mut(*filled..end) else {
                            return Err(tls_error("a record larger than TLS allows"));
                        };
                        room.copy_from_slice(record.payload);
                        *filled = end;
                    }
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    encode_into(&mut self.outgoing, |out| encode.encode(out))?;
                }
                ConnectionState::TransmitTlsData(sent) => sent.done(),
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    self.ended = true;
                    break;
                }
                // Nothing whole is left to read.
                ConnectionState::WriteTraffic(_) | ConnectionState::BlockedHandshake => break,
                _ => return Err(tls_error("unexpected early data")),
            }
        }
        Ok(used)
    }

    /// Appends the records of `plain` to what is to be sent.
    fn seal(&mut self, plain: &[u8]) -> io::Result<()> {
        let mut out = std::mem::take(&mut self.outgoing);
        let result = self.seal_into(&mut out, plain);
        self.outgoing = out;
        result
    }

    fn seal_into(&mut self, out: &mut Vec<u8>, plain: &[u8]) -> io::Result<()> {
        loop {
            let UnbufferedStatus { state, .. } = self.tls.process_tls_records(&mut []);
            match state.map_err(tls_error)? {
                ConnectionState::WriteTraffic(mut traffic) => {
                    let start = out.len();
                    let records = plain.len().div_ceil(MAX_PLAINTEXT).max(1);
                    let mut room = plain.len() + records * RECORD_OVERHEAD;
                    loop {
                        out.resize(start + room, 0);
                        match traffic.encrypt(plain, &mut out[start..]) {
                            Ok(n) => {
                                out.truncate(start + n);
                                return Ok(());
                            }
                            Err(EncryptError::InsufficientSize(e)) => room = e.required_size,
                            Err(e) => {
                                out.truncate(start);
                                return Err(tls_error(e.to_string()));
                            }
                        }
                    }
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    encode_into(out, |o| encode.encode(o))?;
                }
                ConnectionState::TransmitTlsData(sent) => sent.done(),
                // Plaintext that came with the handshake, not read yet: kept for the
                // next read, so that writing can go on.
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        self.plain_left
                            .extend_from_slice(record.map_err(tls_error)?.payload);
                    }
                }
                ConnectionState::PeerClosed => self.ended = true,
                _ => return Err(ErrorKind::NotConnected.into()),
            }
        }
    }

    /// Writes what is to be sent, and frees its buffer once it is.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
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

    /// Encodes what rustls has queued (an alert after an error) and writes it.
    async fn flush_records(&mut self) -> io::Result<()> {
        while let Ok(ConnectionState::EncodeTlsData(mut encode)) =
            self.tls.process_tls_records(&mut []).state
        {
            encode_into(&mut self.outgoing, |out| encode.encode(out))?;
        }
        poll_fn(|cx| self.poll_send(cx)).await
    }

    fn try_write_outgoing(&mut self) {
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

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        // What was sealed before goes first, so that what is held stays bounded.
        ready!(this.poll_send(cx))?;
        this.seal(buf)?;
        let _ = this.poll_send(cx)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.closing = true;
            if let Ok(ConnectionState::WriteTraffic(mut traffic)) =
                this.tls.process_tls_records(&mut []).state
            {
                let mut alert = [0u8; RECORD_OVERHEAD];
                if let Ok(n) = traffic.queue_close_notify(&mut alert) {
                    this.outgoing.extend_from_slice(&alert[..n]);
                }
            }
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

/// Appends one encoded record to `out`, growing it to the size rustls asks for.
fn encode_into(
    out: &mut Vec<u8>,
    mut encode: impl FnMut(&mut [u8]) -> Result<usize, EncodeError>,
) -> io::Result<()> {
    let start = out.len();
    let mut room = 512;
    loop {
        out.resize(start + room, 0);
        match encode(&mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(e)) => room = e.required_size,
            Err(e) => {
                out.truncate(start);
                return Err(tls_error(e.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests;
