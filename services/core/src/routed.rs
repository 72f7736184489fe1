//! A stanza on its way from a router to the connection that writes it.
//!
//! Parsed once per process boundary: in one process the router's tree travels to the
//! session as it is, shared by every recipient (an `Arc`, never a deep copy); across a
//! link a stanza the router did not change travels as the bytes the sending edge wrote,
//! and the receiving edge writes those bytes to the socket without building a tree
//! (after [`crate::xml::one_element`] checked them).

use crate::ns;
use crate::xml::Element;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// A tree, written when the session sends it.
    Tree(Arc<Element>),
    /// One serialized element, `jabber:client` declared on it.
    Wire(Arc<str>),
}

impl Routed {
    /// The element's name (`message`, `presence`, `iq`).
    pub fn name(&self) -> &str {
        match self {
            Self::Tree(el) => el.name(),
            Self::Wire(xml) => {
                let tag = xml.strip_prefix('<').unwrap_or_default();
                let end = tag
                    .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
                    .unwrap_or(tag.len());
                &tag[..end]
            }
        }
    }

    /// A presence's sender (XEP-0352 holds the latest presence per sender); `None` for a
    /// message or an IQ. From bytes it is the attribute as written, escapes kept: a key,
    /// the same for every presence of one sender, since one serializer wrote them all.
    pub fn presence_from(&self) -> Option<&str> {
        if self.name() != "presence" {
            return None;
        }
        match self {
            Self::Tree(el) => el.attr("from"),
            Self::Wire(xml) => start_tag_attr(xml, "from"),
        }
    }

    /// The stanza's sender as written (escapes kept, see [`Self::presence_from`]).
    pub fn from_attr(&self) -> Option<&str> {
        match self {
            Self::Tree(el) => el.attr("from"),
            Self::Wire(xml) => start_tag_attr(xml, "from"),
        }
    }

    /// Bytes for queue bounds: never below what writing it takes.
    pub fn estimated_bytes(&self) -> usize {
        match self {
            Self::Tree(el) => el.estimated_bytes(),
            Self::Wire(xml) => xml.len(),
        }
    }

    /// The stanza as written on a client stream (`jabber:client` its default namespace).
    pub fn to_client_xml(&self) -> String {
        match self {
            Self::Tree(el) => el.to_xml(ns::CLIENT),
            Self::Wire(xml) => xml.to_string(),
        }
    }

    /// The stanza as carried on a link: one element with its namespace declared.
    pub fn to_wire_xml(&self) -> Arc<str> {
        match self {
            Self::Tree(el) => el.to_xml("").into(),
            Self::Wire(xml) => xml.clone(),
        }
    }

    /// The tree: the one held, or the bytes parsed (for tests and diagnostics).
    pub fn to_element(&self) -> Result<Element, crate::FramerError> {
        match self {
            Self::Tree(el) => Ok(Element::clone(el)),
            Self::Wire(xml) => Element::parse(xml),
        }
    }
}

impl From<Element> for Routed {
    fn from(element: Element) -> Self {
        Self::Tree(Arc::new(element))
    }
}

/// The value of attribute `name` on the start tag `xml` begins with, as written; `None`
/// when the tag has no such attribute or is cut short.
fn start_tag_attr<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let mut rest = xml.strip_prefix('<')?;
    rest = rest.trim_start_matches(|c: char| !c.is_ascii_whitespace() && c != '>' && c != '/');
    loop {
        rest = rest.trim_start();
        if rest.is_empty() || rest.starts_with(['>', '/']) {
            return None;
        }
        let (key, after) = rest.split_once('=')?;
        let after = after.trim_start();
        let quote = after.chars().next().filter(|q| matches!(q, '\'' | '"'))?;
        let (value, tail) = after[1..].split_once(quote)?;
        if key.trim_end() == name {
            return Some(value);
        }
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presence() -> Element {
        Element::new("presence", ns::CLIENT)
            .with_attr("id", "p=1")
            .with_attr("from", "juliet@example.com/balcony")
            .with_child(Element::new("show", ns::CLIENT).with_text("away"))
    }

    fn wire(el: &Element) -> Routed {
        Routed::Wire(el.to_xml("").into())
    }

    #[test]
    fn wire_and_tree_write_the_same_stanza() {
        let el = presence();
        let tree = Routed::from(el.clone());
        assert_eq!(wire(&el).to_element().unwrap(), el);
        assert_eq!(tree.to_element().unwrap(), el);
        assert_eq!(Element::parse(&wire(&el).to_client_xml()).unwrap(), el);
        assert_eq!(wire(&el).to_wire_xml(), tree.to_wire_xml());
        // On a client stream the tree leaves the default namespace undeclared.
        assert!(!tree.to_client_xml().contains("xmlns"));
    }

    #[test]
    fn a_presence_is_known_by_its_sender_in_both_forms() {
        let el = presence();
        assert_eq!(
            wire(&el).presence_from(),
            Some("juliet@example.com/balcony")
        );
        assert_eq!(wire(&el).name(), "presence");
        assert_eq!(
            Routed::from(el).presence_from(),
            Some("juliet@example.com/balcony")
        );
        let spaced = Routed::Wire("<presence id = \"a'b\"  from = \"x@y/z\" />".into());
        assert_eq!(spaced.presence_from(), Some("x@y/z"));
        let none = Routed::Wire("<presence type='unavailable'/>".into());
        assert_eq!(none.presence_from(), None);
        let message = Element::new("message", ns::CLIENT).with_attr("from", "a@b/c");
        assert_eq!(
            wire(&message).presence_from(),
            None,
            "only a presence is held"
        );
        assert_eq!(wire(&message).name(), "message");
        assert_eq!(Routed::from(message).presence_from(), None);
        let bare = Element::new("iq", ns::CLIENT);
        assert_eq!(wire(&bare).name(), "iq");
    }

    #[test]
    fn wire_bytes_bound_what_is_written() {
        let el = presence().with_child(Element::new("status", ns::CLIENT).with_text("&&&'\"<>"));
        let wire = wire(&el);
        assert!(wire.estimated_bytes() >= wire.to_client_xml().len());
        let tree = Routed::from(el);
        assert!(tree.estimated_bytes() >= tree.to_client_xml().len());
    }
}
