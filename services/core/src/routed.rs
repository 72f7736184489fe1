//! A stanza on its way from a router to the connection that writes it.
//!
//! Parsed once per process boundary: in one process the router's tree travels to the
//! session as it is, shared by every recipient (an `Arc`, never a deep copy); across a
//! link a stanza the router did not change travels as the bytes the sending edge wrote,
//! and the receiving edge writes those bytes to the socket without parsing them again.

use crate::ns;
use crate::xml::Element;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// A tree, written when the session sends it.
    Tree(Arc<Element>),
    /// One serialized element, `jabber:client` declared on it.
    Wire {
        xml: Arc<str>,
        /// A presence's sender (XEP-0352 holds the latest presence per sender); `None`
        /// for anything else.
        presence_from: Option<Arc<str>>,
    },
}

impl Routed {
    /// The bytes of `element`, with what a session needs to know of it.
    pub fn wire(xml: Arc<str>, element: &Element) -> Self {
        let presence_from = (element.name() == "presence")
            .then(|| element.attr("from").map(Arc::from))
            .flatten();
        Self::Wire { xml, presence_from }
    }

    /// The element's name (`message`, `presence`, `iq`).
    pub fn name(&self) -> &str {
        match self {
            Self::Tree(el) => el.name(),
            Self::Wire { xml, .. } => {
                let tag = xml.strip_prefix('<').unwrap_or_default();
                let end = tag
                    .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
                    .unwrap_or(tag.len());
                &tag[..end]
            }
        }
    }

    /// A presence's sender; `None` for a message or an IQ.
    pub fn presence_from(&self) -> Option<&str> {
        match self {
            Self::Tree(el) if el.name() == "presence" => el.attr("from"),
            Self::Tree(_) => None,
            Self::Wire { presence_from, .. } => presence_from.as_deref(),
        }
    }

    /// Bytes for queue bounds: never below what writing it takes.
    pub fn estimated_bytes(&self) -> usize {
        match self {
            Self::Tree(el) => el.estimated_bytes(),
            Self::Wire { xml, .. } => xml.len(),
        }
    }

    /// The stanza as written on a client stream (`jabber:client` its default namespace).
    pub fn to_client_xml(&self) -> String {
        match self {
            Self::Tree(el) => el.to_xml(ns::CLIENT),
            Self::Wire { xml, .. } => xml.to_string(),
        }
    }

    /// The stanza as carried on a link: one element with its namespace declared.
    pub fn to_wire_xml(&self) -> Arc<str> {
        match self {
            Self::Tree(el) => el.to_xml("").into(),
            Self::Wire { xml, .. } => xml.clone(),
        }
    }

    /// The tree: the one held, or the bytes parsed (for tests and diagnostics).
    pub fn to_element(&self) -> Result<Element, crate::FramerError> {
        match self {
            Self::Tree(el) => Ok(Element::clone(el)),
            Self::Wire { xml, .. } => Element::parse(xml),
        }
    }
}

impl From<Element> for Routed {
    fn from(element: Element) -> Self {
        Self::Tree(Arc::new(element))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence() -> Element {
        Element::new("presence", ns::CLIENT)
            .with_attr("from", "juliet@example.com/balcony")
            .with_child(Element::new("show", ns::CLIENT).with_text("away"))
    }

    #[test]
    fn wire_and_tree_write_the_same_stanza() {
        let el = presence();
        let wire = Routed::wire(el.to_xml("").into(), &el);
        let tree = Routed::from(el.clone());
        assert_eq!(wire.to_element().unwrap(), el);
        assert_eq!(tree.to_element().unwrap(), el);
        assert_eq!(Element::parse(&wire.to_client_xml()).unwrap(), el);
        assert_eq!(wire.to_wire_xml(), tree.to_wire_xml());
        // On a client stream the tree leaves the default namespace undeclared.
        assert!(!tree.to_client_xml().contains("xmlns"));
    }

    #[test]
    fn a_presence_is_known_by_its_sender_in_both_forms() {
        let el = presence();
        let wire = Routed::wire(el.to_xml("").into(), &el);
        assert_eq!(wire.presence_from(), Some("juliet@example.com/balcony"));
        assert_eq!(wire.name(), "presence");
        assert_eq!(
            Routed::from(el).presence_from(),
            Some("juliet@example.com/balcony")
        );
        let message = Element::new("message", ns::CLIENT).with_attr("from", "a@b/c");
        let wire = Routed::wire(message.to_xml("").into(), &message);
        assert_eq!(wire.presence_from(), None);
        assert_eq!(wire.name(), "message");
        let bare = Element::new("iq", ns::CLIENT);
        assert_eq!(Routed::wire(bare.to_xml("").into(), &bare).name(), "iq");
        assert_eq!(Routed::from(message).presence_from(), None);
    }

    #[test]
    fn wire_bytes_bound_what_is_written() {
        let el = presence();
        let wire = Routed::wire(el.to_xml("").into(), &el);
        assert!(wire.estimated_bytes() >= wire.to_client_xml().len());
        let tree = Routed::from(el);
        assert!(tree.estimated_bytes() >= tree.to_client_xml().len());
    }
}
