//! XML for XMPP streams: a small owned element tree, its serializer, and the streaming
//! framer that cuts a byte stream into stream headers and top-level stanzas.
//!
//! Everything here treats its input as hostile:
//!
//! - Restricted XML (RFC 6120 §11.1): no comments, processing instructions, DTDs or
//!   entities other than the predefined ones.
//! - Hard [`Limits`] on every parse path: the framer (client streams) and
//!   [`Element::parse`] (stanzas from the cluster link and from storage) both bound bytes,
//!   depth, element count and attributes. Because depth is bounded when a tree is parsed,
//!   the recursive walks over it (drop, clone, comparison, serialization) are bounded too:
//!   at most [`Limits::INTERNAL`]'s 64 levels.
//! - Only characters XML 1.0 §2.2 allows are accepted, raw or as character references
//!   (well-formedness, RFC 6120 §11.3), and only those are ever written (`chars.rs`).
//! - Namespace names are shared between an element and the children that inherit them, so
//!   a tree costs memory in proportion to its input (`namespace.rs`).
//! - Every element written is namespace-well-formed on its own (Namespaces in XML 1.0;
//!   RFC 6120 §11.2, §11.3), whatever the stream it was read from declared (`write.rs`).

mod chars;
mod check;
mod element;
mod framer;
mod limits;
mod namespace;
mod parse;
mod scan;
mod write;

pub use check::one_element;
pub use element::{Element, Node};
pub use framer::{Frame, Framer, FramerError, StreamHeader};
pub use limits::Limits;
pub use write::{escape_attr, escape_text};

impl Element {
    /// Parses one serialized element, as written by [`Element::to_xml`] with an empty
    /// stream namespace (how stored stanzas and stanzas on the cluster link are carried),
    /// under [`Limits::INTERNAL`]. Restricted XML applies as on a stream.
    pub fn parse(text: &str) -> Result<Element, FramerError> {
        Self::parse_with(text, &Limits::INTERNAL)
    }

    /// [`Element::parse`] under the given limits (`max_stanza_bytes` is the byte limit;
    /// `max_stanza_bytes_before_auth` does not apply).
    pub fn parse_with(text: &str, limits: &Limits) -> Result<Element, FramerError> {
        parse::element(text, &parse::Scope::new(""), limits)
    }
}

#[cfg(test)]
mod tests;
