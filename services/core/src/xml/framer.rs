//! Streaming framer: bytes in, [`Frame`]s out (RFC 6120 §4.2–§4.4, §11).
//!
//! The framer buffers at most one incomplete frame. Limits are checked while bytes are
//! scanned, before a stanza is parsed, so a peer can never make it hold more than the
//! stanza byte limit plus one read, nor open more elements than `max_depth` deep and
//! `max_elements` in one stanza. Until [`Framer::set_authenticated`] the byte limit is
//! `max_stanza_bytes_before_auth` (RFC 6120 §13.12). Each complete stanza is validated as
//! UTF-8 and XML 1.0 characters and parsed once by quick-xml. After an error the framer
//! must be discarded with its stream.

use super::chars;
use super::element::Element;
use super::limits::Limits;
use super::parse::{self, Scope};
use super::scan::{Scan, Scanner, TokenKind};
use crate::error::StreamCondition;
use quick_xml::events::Event;
use quick_xml::Reader;

/// Why the framer gave up; each maps to exactly one RFC 6120 §4.9.3 condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramerError {
    #[error("not well-formed: {0}")]
    NotWellFormed(String),
    #[error("restricted XML (comment, processing instruction, DTD or entity)")]
    RestrictedXml,
    #[error("limit exceeded: {0}")]
    PolicyViolation(&'static str),
    #[error("stream is not valid UTF-8")]
    UnsupportedEncoding,
    #[error("character data at stream level")]
    BadFormat,
    #[error("a stream header inside the stream")]
    NestedStream,
}

impl FramerError {
    pub fn condition(&self) -> StreamCondition {
        match self {
            Self::NotWellFormed(_) => StreamCondition::NotWellFormed,
            Self::RestrictedXml => StreamCondition::RestrictedXml,
            Self::PolicyViolation(_) => StreamCondition::PolicyViolation,
            Self::UnsupportedEncoding => StreamCondition::UnsupportedEncoding,
            Self::BadFormat => StreamCondition::BadFormat,
            Self::NestedStream => StreamCondition::UnsupportedStanzaType,
        }
    }
}

/// The opening `<stream:stream>` tag, namespaces resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    /// The element with its attributes (no children).
    pub element: Element,
    /// The default (content) namespace the header declared, if any.
    pub content_ns: Option<String>,
}

/// One unit of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Open(StreamHeader),
    /// A complete top-level element and how many bytes it took on the wire.
    Stanza(Element, usize),
    /// Whitespace between stanzas (a keepalive, RFC 6120 §4.6.1).
    Whitespace,
    Close,
}

/// The streaming framer of one stream direction.
#[derive(Debug)]
pub struct Framer {
    limits: Limits,
    /// Whether the peer has authenticated: until then stanzas are held to
    /// `max_stanza_bytes_before_auth`. Survives stream restarts.
    authenticated: bool,
    buf: Vec<u8>,
    scanner: Scanner,
    /// 0 before the stream header, 1 inside the stream, more inside a stanza.
    depth: usize,
    /// Start tags seen in the stanza being scanned.
    elements: usize,
    /// Where the stanza being scanned starts in `buf`.
    stanza_start: Option<usize>,
    /// Namespace bindings from the stream header, the root scope of every stanza.
    scope: Scope,
    /// Qualified name of the stream element, to match the closing tag.
    stream_qname: String,
    /// Whether anything but whitespace was seen since the (re)start; an XML declaration is
    /// only allowed before that.
    started: bool,
}

impl Framer {
    /// A framer for a peer that is authenticated or trusted (a client reading its server's
    /// stream): stanzas up to `max_stanza_bytes`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            authenticated: true,
            buf: Vec::new(),
            scanner: Scanner::default(),
            depth: 0,
            elements: 0,
            stanza_start: None,
            scope: Scope::default(),
            stream_qname: String::new(),
            started: false,
        }
    }

    /// A framer for a server reading a peer that has not authenticated yet: stanzas up to
    /// `max_stanza_bytes_before_auth` until [`Framer::set_authenticated`].
    pub fn unauthenticated(limits: Limits) -> Self {
        Self {
            authenticated: false,
            ..Self::new(limits)
        }
    }

    /// The peer has authenticated (SASL success, RFC 6120 §6.4.6): from the next stanza on
    /// the full `max_stanza_bytes` applies.
    pub fn set_authenticated(&mut self) {
        self.authenticated = true;
    }

    /// Stream restart (RFC 6120 §4.3.3): forget everything including buffered bytes, which
    /// after STARTTLS would be unprotected plaintext injected ahead of the handshake.
    pub fn restart(&mut self) {
        *self = Self {
            authenticated: self.authenticated,
            ..Self::new(self.limits)
        };
    }

    /// Stream restart after SASL success (RFC 6120 §6.4.6): parsing state starts over but
    /// bytes already received stay, since they belong to the new stream.
    pub fn reset_stream(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.restart();
        self.buf = buf;
    }

    /// Bytes buffered and not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The limits in force now: the configured ones with the byte limit for the peer's
    /// authentication state.
    fn limits(&self) -> Limits {
        Limits {
            max_stanza_bytes: self.limits.stanza_bytes(self.authenticated),
            ..self.limits
        }
    }

    /// Consumes `buf[..end]` and restarts scanning at the new front. An emptied buffer gives
    /// its memory back: an idle stream then holds none, whatever it received before.
    fn consume(&mut self, end: usize) {
        self.buf.drain(..end);
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
        self.scanner.reset(0);
        self.stanza_start = None;
    }

    fn check_size(&self, token_start: usize, scanned_to: usize) -> Result<(), FramerError> {
        let from = self.stanza_start.unwrap_or(token_start);
        if scanned_to - from > self.limits.stanza_bytes(self.authenticated) {
            return Err(FramerError::PolicyViolation("stanza too large"));
        }
        Ok(())
    }

    /// Returns the next complete frame, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramerError> {
        loop {
            let (kind, start, end) = match self.scanner.next(&self.buf) {
                Scan::Incomplete { start, scanned } => {
                    self.check_size(start, start + scanned)?;
                    return Ok(None);
                }
                Scan::Token(kind, start, end) => (kind, start, end),
            };
            self.check_size(start, end)?;
            if let Some(frame) = self.token(kind, start, end)? {
                return Ok(Some(frame));
            }
        }
    }

    fn token(
        &mut self,
        kind: TokenKind,
        start: usize,
        end: usize,
    ) -> Result<Option<Frame>, FramerError> {
        match (kind, self.depth) {
            (TokenKind::Declaration, _) => Err(FramerError::RestrictedXml),
            (TokenKind::ProcessingInstruction, 0) if !self.started => {
                self.xml_declaration(start, end)?;
                self.started = true;
                self.consume(end);
                Ok(None)
            }
            (TokenKind::ProcessingInstruction, _) => Err(FramerError::RestrictedXml),
            (TokenKind::Text, 0 | 1) => {
                if !self.buf[start..end].iter().all(u8::is_ascii_whitespace) {
                    return Err(if self.depth == 0 {
                        FramerError::NotWellFormed("content before the stream header".into())
                    } else {
                        FramerError::BadFormat
                    });
                }
                self.consume(end);
                Ok((self.depth == 1).then_some(Frame::Whitespace))
            }
            (TokenKind::CData, 0 | 1) => Err(FramerError::BadFormat),
            (TokenKind::Start { empty: false }, 0) => self.header(start, end).map(Some),
            (TokenKind::Start { empty: true }, 0) | (TokenKind::End, 0) => Err(
                FramerError::NotWellFormed("expected a stream header".into()),
            ),
            (TokenKind::End, 1) => {
                let name = &self.buf[start + 2..end - 1];
                if name.trim_ascii() != self.stream_qname.as_bytes() {
                    return Err(FramerError::NotWellFormed(
                        "mismatched stream end tag".into(),
                    ));
                }
                self.consume(end);
                self.depth = 0;
                Ok(Some(Frame::Close))
            }
            (TokenKind::Start { empty }, depth) => {
                if depth == 1 {
                    if tag_name(&self.buf[start..end]) == self.stream_qname.as_bytes() {
                        return Err(FramerError::NestedStream);
                    }
                    self.stanza_start = Some(start);
                    self.elements = 0;
                }
                // `depth` is the new element's depth in its stanza (the stream is 1 level).
                if depth > self.limits.max_depth {
                    return Err(FramerError::PolicyViolation("elements nested too deeply"));
                }
                self.elements += 1;
                if self.elements > self.limits.max_elements {
                    return Err(FramerError::PolicyViolation("too many elements"));
                }
                if !empty {
                    self.depth += 1;
                    return Ok(None);
                }
                self.finish_if_top(end)
            }
            (TokenKind::End, _) => {
                self.depth -= 1;
                self.finish_if_top(end)
            }
            (TokenKind::Text | TokenKind::CData, _) => Ok(None),
        }
    }

    /// Emits the stanza when the stream is back at depth 1.
    fn finish_if_top(&mut self, end: usize) -> Result<Option<Frame>, FramerError> {
        if self.depth != 1 {
            return Ok(None);
        }
        let start = self.stanza_start.unwrap_or(0);
        let text = valid_text(&self.buf[start..end])?;
        let element = parse::element_checked(text, &self.scope, &self.limits())?;
        self.consume(end);
        Ok(Some(Frame::Stanza(element, end - start)))
    }

    fn xml_declaration(&self, start: usize, end: usize) -> Result<(), FramerError> {
        let decl = valid_text(&self.buf[start..end])?;
        let Some(body) = decl
            .strip_prefix("<?xml")
            .filter(|b| b.starts_with(char::is_whitespace))
        else {
            return Err(FramerError::RestrictedXml);
        };
        let encoding = body
            .split_once("encoding")
            .and_then(|(_, rest)| rest.split(['\'', '"']).nth(1));
        match encoding {
            Some(enc) if !enc.eq_ignore_ascii_case("utf-8") => {
                Err(FramerError::UnsupportedEncoding)
            }
            _ => Ok(()),
        }
    }

    fn header(&mut self, start: usize, end: usize) -> Result<Frame, FramerError> {
        let text = valid_text(&self.buf[start..end])?;
        let mut reader = Reader::from_str(text);
        let tag = match reader.read_event() {
            Ok(Event::Start(tag)) => tag,
            Ok(_) => {
                return Err(FramerError::NotWellFormed(
                    "expected a stream header".into(),
                ))
            }
            Err(e) => return Err(FramerError::NotWellFormed(e.to_string())),
        };
        let mut scope = Scope::new("");
        let (element, _) = parse::open(&tag, &mut scope, &self.limits)?;
        let content_ns = parse_default_ns(&tag)?;
        self.stream_qname = String::from_utf8_lossy(tag.name().as_ref()).into_owned();
        self.scope = scope;
        self.depth = 1;
        self.started = true;
        self.consume(end);
        Ok(Frame::Open(StreamHeader {
            element,
            content_ns,
        }))
    }
}

fn parse_default_ns(
    tag: &quick_xml::events::BytesStart<'_>,
) -> Result<Option<String>, FramerError> {
    for attr in tag.attributes().flatten() {
        if attr.key.as_ref() == b"xmlns" {
            let v = attr
                .unescape_value()
                .map_err(|e| FramerError::NotWellFormed(e.to_string()))?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

/// The qualified name of a start tag's bytes (`<name ...>`).
fn tag_name(tag: &[u8]) -> &[u8] {
    let name = &tag[1..];
    let end = name
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b == b'>' || b == b'/')
        .unwrap_or(name.len());
    &name[..end]
}

/// Checks UTF-8 and the XML 1.0 `Char` production (XML 1.0 §2.2) on raw bytes.
fn valid_text(bytes: &[u8]) -> Result<&str, FramerError> {
    let text = std::str::from_utf8(bytes).map_err(|_| FramerError::UnsupportedEncoding)?;
    chars::check_raw(text)?;
    Ok(text)
}

#[cfg(test)]
mod tests;
