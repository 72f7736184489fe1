//! The three stanza kinds (RFC 6120 §8) and the routing envelope read from them.

use crate::error::StanzaError;
use crate::jid::Jid;
use crate::ns;
use crate::routed::Routed;
use crate::xml::Element;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StanzaKind {
    Message,
    Presence,
    Iq,
}

impl StanzaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Presence => "presence",
            Self::Iq => "iq",
        }
    }

    /// The kind of a top-level `jabber:client` element, if it is a stanza.
    pub fn of(element: &Element) -> Option<Self> {
        if element.ns() != ns::CLIENT {
            return None;
        }
        match element.name() {
            "message" => Some(Self::Message),
            "presence" => Some(Self::Presence),
            "iq" => Some(Self::Iq),
            _ => None,
        }
    }
}

/// A stanza whose `from` was stamped by the server and whose `to` parsed as a JID.
///
/// Its tree is immutable and shared: every recipient of the stanza as it is gets the
/// same tree (one process) or the bytes it was read from (across a link), never a copy.
#[derive(Debug, Clone)]
pub struct Stanza {
    pub kind: StanzaKind,
    pub from: Jid,
    /// `None` when absent: addressed to the sender's own account (RFC 6120 §10.3).
    pub to: Option<Jid>,
    element: Arc<Element>,
    /// The bytes `element` was parsed from, when it came over a link: forwarded as they
    /// are to every recipient of the stanza unchanged. Nothing changes a stanza once
    /// read (`kind`, `from` and `to` are read from the element and only read after).
    wire: Option<Arc<str>>,
}

/// Stanzas are equal when their trees are, whatever bytes either was read from.
impl PartialEq for Stanza {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind
            && self.from == other.from
            && self.to == other.to
            && self.element == other.element
    }
}

impl Eq for Stanza {}

impl Stanza {
    /// Builds a stanza from an element, taking `from`/`to` out of its attributes.
    /// Returns `None` when the element is not a stanza or its addresses do not parse.
    pub fn from_element(element: Element) -> Option<Self> {
        let kind = StanzaKind::of(&element)?;
        let from = Jid::parse(element.attr("from")?).ok()?;
        let to = element.attr("to").map(Jid::parse).transpose().ok()?;
        Some(Self {
            kind,
            from,
            to,
            element: Arc::new(element),
            wire: None,
        })
    }

    /// A stanza parsed from `xml` as [`Element::parse`] does; `xml` is kept, to be
    /// forwarded unchanged. `None` when it does not parse or is not a stanza.
    pub fn from_wire(xml: String) -> Option<Self> {
        let mut stanza = Self::from_element(Element::parse(&xml).ok()?)?;
        stanza.wire = Some(xml.into());
        Some(stanza)
    }

    pub fn element(&self) -> &Element {
        &self.element
    }

    /// The stanza as it is, for delivery: its bytes when it has them, else its tree.
    pub fn routed(&self) -> Routed {
        match &self.wire {
            Some(xml) => Routed::Wire(xml.clone()),
            None => Routed::Tree(self.element.clone()),
        }
    }

    pub fn id(&self) -> Option<&str> {
        self.element.attr("id")
    }

    pub fn type_attr(&self) -> Option<&str> {
        self.element.attr("type")
    }

    pub fn is_error(&self) -> bool {
        self.type_attr() == Some("error")
    }

    /// An IQ of type get or set (a request that demands a response, RFC 6120 §8.2.3).
    pub fn is_iq_request(&self) -> bool {
        self.kind == StanzaKind::Iq && matches!(self.type_attr(), Some("get" | "set"))
    }

    /// The single payload of an IQ request.
    pub fn payload(&self) -> Option<&Element> {
        self.element.children().next()
    }

    /// The address the stanza was sent to, its sender's bare JID when absent.
    pub fn effective_to(&self) -> Jid {
        self.to.clone().unwrap_or_else(|| self.from.bare())
    }

    /// A reply of the same kind from the recipient back to the sender (`to` and `from`
    /// swapped, same id) with the given type and no children.
    pub fn reply(&self, kind: &str) -> Element {
        let mut reply = Element::new(self.kind.as_str(), ns::CLIENT)
            .with_attr("type", kind)
            .with_attr("to", self.from.to_string())
            .with_attr("from", self.effective_to().to_string());
        if let Some(id) = self.id() {
            reply.set_attr("id", id);
        }
        reply
    }

    /// An IQ result carrying `payload`.
    pub fn result(&self, payload: Option<Element>) -> Element {
        let mut reply = self.reply("result");
        if let Some(payload) = payload {
            reply.push_child(payload);
        }
        reply
    }

    /// The error reply RFC 6120 §8.3.1 describes; `None` for an error stanza, which must
    /// never be answered with another error (no bounce loops).
    pub fn error_reply(&self, error: &StanzaError) -> Option<Element> {
        if self.is_error() {
            return None;
        }
        let mut reply = self.reply("error");
        for child in self.element.children() {
            reply.push_child(child.clone());
        }
        reply.push_child(error.to_element(None));
        Some(reply)
    }
}
