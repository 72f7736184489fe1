//! How a stream is framed on the wire: an RFC 6120 XML stream (TCP), or RFC 7395 XMPP
//! over WebSocket, where every message is one whole element.
//!
//! The session speaks one language inside; only the edges of it differ (RFC 7395 §3.3):
//!
//! - The stream header is `<open xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>` and its end
//!   `<close/>` in the same namespace, each a message of its own, instead of
//!   `<stream:stream>` and `</stream:stream>`. A client's `<open/>` is read here as the
//!   stream header it stands for, so negotiation (`to`, `version`, restarts after SASL
//!   §3.3.3) is the same code as over TCP.
//! - No stream header declares namespaces for what follows, so every element the server
//!   writes declares its own (§3.3.3): `jabber:client` on each stanza, `xmlns:stream` on
//!   `<stream:features/>` and `<stream:error/>`.
//! - STARTTLS is not offered (§3.7: TLS belongs to the WebSocket connection); the edge
//!   gives such a session a configuration without it.
//!
//! The RFC 6120 stream framing (`<stream:stream>`, an XML declaration) is refused over
//! WebSocket with `bad-format`, and so is a framing element outside its namespace
//! (`invalid-namespace`).

use crate::error::StreamCondition;
use crate::ns;
use crate::routed::Routed;
use crate::xml::{escape_attr, Element};
use std::borrow::Cow;

/// The framing of one listener's streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Framing {
    /// RFC 6120 §4: one XML document for the whole stream.
    #[default]
    Stream,
    /// RFC 7395: one element per WebSocket message.
    WebSocket,
}

/// Why a WebSocket message could not be read as part of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub condition: StreamCondition,
    pub text: &'static str,
}

impl Framing {
    /// The namespace top-level elements are written under: the stream's default one over
    /// TCP, none over WebSocket (each element declares its own).
    pub(super) fn content_ns(self) -> &'static str {
        match self {
            Self::Stream => ns::CLIENT,
            Self::WebSocket => "",
        }
    }

    /// A stanza routed to the session, as written.
    pub(super) fn stanza(self, stanza: &Routed) -> String {
        match self {
            Self::Stream => stanza.to_client_xml(),
            Self::WebSocket => stanza.to_wire_xml().to_string(),
        }
    }

    /// The server's stream header with these attributes (each ` name='value'`, escaped).
    pub(super) fn header(self, attrs: &str) -> String {
        match self {
            Self::Stream => format!(
                "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}'{attrs}>",
                ns::CLIENT,
                ns::STREAMS
            ),
            Self::WebSocket => format!("<open xmlns='{}'{attrs}/>", ns::FRAMING),
        }
    }

    /// The end of the stream.
    pub(super) fn close(self) -> String {
        match self {
            Self::Stream => "</stream:stream>".into(),
            Self::WebSocket => format!("<close xmlns='{}'/>", ns::FRAMING),
        }
    }

    /// A `<stream:…>` element (features, error) as written on this framing: over
    /// WebSocket its prefix is declared on it.
    pub(super) fn stream_element(self, xml: String) -> String {
        if self == Self::Stream {
            return xml;
        }
        let Some(rest) = xml.strip_prefix("<stream:") else {
            return xml;
        };
        let name_end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let (name, tail) = rest.split_at(name_end);
        format!("<stream:{name} xmlns:stream='{}'{tail}", ns::STREAMS)
    }

    /// One message from a WebSocket client as the stream bytes it stands for: `<open/>`
    /// becomes the stream header, `<close/>` its end, anything else is read as it is.
    pub fn inbound(message: &[u8]) -> Result<Cow<'_, [u8]>, Refused> {
        let text = message.trim_ascii_start();
        let framing = |name: &str| {
            text.strip_prefix(b"<")
                .and_then(|t| t.strip_prefix(name.as_bytes()))
                .is_some_and(|t| t.first().is_none_or(|c| b" \t\r\n/>".contains(c)))
        };
        if framing("open") || framing("close") {
            return reframe(text.trim_ascii_end());
        }
        if text.starts_with(b"<stream:") || text.starts_with(b"</") || text.starts_with(b"<?") {
            return Err(Refused {
                condition: StreamCondition::BadFormat,
                text: "over WebSocket a stream is framed by <open/> and <close/> (RFC 7395)",
            });
        }
        Ok(Cow::Borrowed(message))
    }
}

/// `<open/>` or `<close/>`, parsed, as the RFC 6120 framing the session reads.
fn reframe(text: &[u8]) -> Result<Cow<'static, [u8]>, Refused> {
    let bad = |text| Refused {
        condition: StreamCondition::BadFormat,
        text,
    };
    let text = std::str::from_utf8(text).map_err(|_| bad("a message is not UTF-8"))?;
    let el = Element::parse(text).map_err(|_| bad("a framing element is not well-formed"))?;
    if el.ns() != ns::FRAMING {
        return Err(Refused {
            condition: StreamCondition::InvalidNamespace,
            text: "<open/> and <close/> belong to urn:ietf:params:xml:ns:xmpp-framing",
        });
    }
    if el.name() == "close" {
        return Ok(Cow::Borrowed(b"</stream:stream>"));
    }
    let mut header = format!(
        "<stream:stream xmlns='{}' xmlns:stream='{}'",
        ns::CLIENT,
        ns::STREAMS
    );
    for (name, value) in el.attrs() {
        // Declarations are the stream header's own; a prefix other than `xml:` would be
        // left unbound.
        if !name.contains(':') && name != "xmlns" || name.starts_with("xml:") {
            header.push_str(&format!(" {name}='{}'", escape_attr(value)));
        }
    }
    header.push('>');
    Ok(Cow::Owned(header.into_bytes()))
}
