//! XML for XMPP streams: a small owned element tree, its serializer, and the streaming
//! framer that cuts a byte stream into stream headers and top-level stanzas while enforcing
//! RFC 6120 §11 (restricted XML) and the configured size limits.

mod element;
mod framer;
mod parse;
mod scan;

pub use element::{escape_attr, escape_text, Element, Node};
pub use framer::{Frame, Framer, FramerError, Limits, StreamHeader};

impl Element {
    /// Parses one serialized element, as written by [`Element::to_xml`] with an empty
    /// stream namespace (how stored stanzas are kept). Restricted XML applies as on a
    /// stream; attribute limits are those of [`Limits::default`].
    pub fn parse(text: &str) -> Result<Element, FramerError> {
        let limits = Limits::default();
        let attrs = parse::AttrLimits {
            max_attributes: limits.max_attributes,
            max_attribute_bytes: limits.max_attribute_bytes,
        };
        parse::element(text, &parse::Scope::new(""), attrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_stanza_round_trips() {
        let el = Element::new("message", crate::ns::CLIENT)
            .with_attr("to", "a@b")
            .with_child(Element::new("body", crate::ns::CLIENT).with_text("<&'\">"))
            .with_child(Element::new("x", "urn:x").with_attr("v", "1'2"));
        let text = el.to_xml("");
        assert_eq!(Element::parse(&text).unwrap(), el);
        assert!(Element::parse("<a><!-- c --></a>").is_err());
    }
}
