//! What a connection's bytes travel over: TCP, TLS, an upgraded WebSocket (one element
//! per message, RFC 7395) or a BOSH session's pipe (XEP-0206). The driver reads through
//! [`Transport::poll_read_with`] and writes [`Pending`] elements, whatever the transport.

use crate::tls::TlsStream;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

pub(crate) enum Transport {
    Plain(TcpStream),
    /// rustls' unbuffered API, driven in `crate::tls`: no buffer while idle.
    Tls(Box<TlsStream>),
    /// RFC 7395: one element per message (see `crate::websocket`).
    WebSocket(Box<WebSocket>),
    /// XEP-0206: messages from BOSH requests, elements for their responses.
    Bosh(Box<crate::bosh::Pipe>),
    /// No socket here: a STARTTLS handshake owns it, or the session is detached (XEP-0198).
    Upgrading,
}

pub(crate) type WebSocket =
    tokio_tungstenite::WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// Bytes taken from the socket per read; the buffer lives on the stack only during a poll.
const READ_CHUNK: usize = 8 * 1024;

impl Transport {
    /// Polls for bytes and hands them (empty at end of stream) to `f` while the scratch
    /// buffer is still on the stack.
    pub(super) fn poll_read_with<R>(
        &mut self,
        cx: &mut Context<'_>,
        f: impl FnOnce(std::io::Result<&[u8]>) -> R,
    ) -> Poll<R> {
        let mut scratch = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut buf = ReadBuf::uninit(&mut scratch);
        let polled = match self {
            Self::Plain(s) => Pin::new(s).poll_read(cx, &mut buf),
            Self::Tls(s) => return s.poll_read_with(cx, f),
            Self::WebSocket(ws) => return poll_message(ws, cx, f),
            Self::Bosh(pipe) => return pipe.poll_read_with(cx, f),
            Self::Upgrading => Poll::Ready(Ok(())),
        };
        polled.map(|result| f(result.map(|()| buf.filled())))
    }

    /// Writes what is pending: over TCP as one run of bytes, over WebSocket one message
    /// per element.
    pub(super) async fn write_all(&mut self, pending: &Pending) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(pending.text.as_bytes()).await,
            Self::Tls(s) => {
                s.write_all(pending.text.as_bytes()).await?;
                s.flush().await
            }
            Self::WebSocket(ws) => {
                use futures_util::SinkExt;
                for xml in pending.elements() {
                    ws.feed(Message::text(xml)).await.map_err(io_error)?;
                }
                ws.flush().await.map_err(io_error)
            }
            Self::Bosh(pipe) => pipe.write(pending.elements()).await,
            Self::Upgrading => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }

    pub(super) async fn shutdown(&mut self) {
        let _ = match self {
            Self::Plain(s) => s.shutdown().await,
            Self::Tls(s) => s.shutdown().await,
            Self::WebSocket(ws) => {
                // Our close frame, or the answer to the client's (RFC 6455 §5.5.1), then
                // whatever is still buffered.
                let closed = ws.close(None).await;
                let _ = futures_util::SinkExt::flush(ws.as_mut()).await;
                closed.map_err(io_error)
            }
            Self::Bosh(pipe) => {
                pipe.close();
                Ok(())
            }
            Self::Upgrading => Ok(()),
        };
    }
}

use tokio_tungstenite::tungstenite::Message;

fn io_error(e: tokio_tungstenite::tungstenite::Error) -> std::io::Error {
    std::io::Error::other(e)
}

/// The next text message, as the bytes of one read; control frames are answered by the
/// WebSocket layer and skipped. End of stream, a close frame, a binary message (not
/// XMPP, RFC 7395 §3.2) and a protocol error all end the connection.
fn poll_message<R>(
    ws: &mut WebSocket,
    cx: &mut Context<'_>,
    f: impl FnOnce(std::io::Result<&[u8]>) -> R,
) -> Poll<R> {
    use futures_util::Stream;
    loop {
        let message = match Pin::new(&mut *ws).poll_next(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None | Some(Ok(Message::Close(_)))) => return Poll::Ready(f(Ok(&[]))),
            Poll::Ready(Some(Ok(message))) => message,
            Poll::Ready(Some(Err(e))) => return Poll::Ready(f(Err(io_error(e)))),
        };
        match message {
            Message::Text(text) if !text.is_empty() => {
                return Poll::Ready(f(Ok(text.as_bytes())));
            }
            Message::Binary(_) => {
                tracing::info!("a binary WebSocket message: XMPP is text, closing");
                return Poll::Ready(f(Err(std::io::ErrorKind::InvalidData.into())));
            }
            // A client's ping is a sign of life, as whitespace is on TCP.
            Message::Ping(_) | Message::Pong(_) => return Poll::Ready(f(Ok(b" "))),
            _ => {}
        }
    }
}

/// What is to be written next: the elements' text in one buffer, and where each ends.
#[derive(Default)]
pub(super) struct Pending {
    pub(super) text: String,
    ends: Vec<usize>,
}

impl Pending {
    pub(super) fn push(&mut self, xml: &str) {
        self.text.push_str(xml);
        self.ends.push(self.text.len());
    }

    pub(super) fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }

    fn elements(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter()).map(|(a, &b)| &self.text[a..b])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pending_elements_come_out_one_by_one_as_pushed() {
        let mut pending = super::Pending::default();
        for xml in ["<a/>", "<b x='1'/>", "<c>text</c>"] {
            pending.push(xml);
        }
        assert_eq!(pending.text, "<a/><b x='1'/><c>text</c>");
        let elements: Vec<&str> = pending.elements().collect();
        assert_eq!(elements, ["<a/>", "<b x='1'/>", "<c>text</c>"]);
        pending.clear();
        assert!(pending.is_empty() && pending.elements().next().is_none());
    }
}
