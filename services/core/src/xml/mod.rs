//! XML for XMPP streams: a small owned element tree, its serializer, and the streaming
//! framer that cuts a byte stream into stream headers and top-level stanzas while enforcing
//! RFC 6120 §11 (restricted XML) and the configured size limits.

mod element;
mod framer;
mod parse;
mod scan;

pub use element::{escape_attr, escape_text, Element, Node};
pub use framer::{Frame, Framer, FramerError, Limits, StreamHeader};
