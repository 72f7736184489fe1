//! Parses one complete, size-checked piece of markup with quick-xml into an [`Element`],
//! resolving namespaces against the scope declared on the stream header.

use super::element::{Element, Node};
use super::framer::FramerError;
use crate::ns;
use quick_xml::escape::EscapeError;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use std::borrow::Cow;

/// Namespace bindings in force: `(prefix, namespace)`, innermost last; `""` is the default.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    bindings: Vec<(Cow<'static, str>, Cow<'static, str>)>,
}

/// Prefixes and namespaces every stream header declares, shared instead of copied: each
/// stream keeps its header's scope for its whole life.
const WELL_KNOWN: [&str; 6] = ["", "xml", "stream", ns::XML, ns::CLIENT, ns::STREAMS];

fn intern(s: &str) -> Cow<'static, str> {
    match WELL_KNOWN.iter().find(|known| **known == s) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(s.to_owned()),
    }
}

impl Scope {
    pub(crate) fn new(default_ns: &str) -> Self {
        let mut scope = Self::default();
        scope.bind("xml", ns::XML);
        scope.bind("", default_ns);
        scope
    }

    fn bind(&mut self, prefix: &str, ns: &str) {
        self.bindings.push((intern(prefix), intern(ns)));
    }

    fn resolve(&self, prefix: &str) -> Option<&str> {
        self.bindings
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, ns)| ns.as_ref())
    }
}

/// What the limits say about a single element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttrLimits {
    pub max_attributes: usize,
    pub max_attribute_bytes: usize,
}

fn map_err(e: quick_xml::Error) -> FramerError {
    match e {
        quick_xml::Error::Escape(EscapeError::UnrecognizedEntity(..)) => FramerError::RestrictedXml,
        other => FramerError::NotWellFormed(other.to_string()),
    }
}

fn map_attr_err(e: quick_xml::events::attributes::AttrError) -> FramerError {
    FramerError::NotWellFormed(e.to_string())
}

/// Opens an element from a start tag: binds its namespace declarations in `scope` and
/// resolves its name. The caller pops the scope (via the returned mark) when it closes.
pub(crate) fn open(
    start: &BytesStart<'_>,
    scope: &mut Scope,
    limits: AttrLimits,
) -> Result<(Element, usize), FramerError> {
    let mark = scope.bindings.len();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(map_attr_err)?;
        if attrs.len() >= limits.max_attributes {
            return Err(FramerError::PolicyViolation("too many attributes"));
        }
        if attr.value.len() > limits.max_attribute_bytes {
            return Err(FramerError::PolicyViolation("attribute value too long"));
        }
        let key =
            std::str::from_utf8(attr.key.as_ref()).map_err(|_| FramerError::UnsupportedEncoding)?;
        let value = attr.unescape_value().map_err(map_err)?.into_owned();
        match key.strip_prefix("xmlns") {
            Some("") => scope.bind("", &value),
            Some(rest) if rest.starts_with(':') => {
                scope.bind(&rest[1..], &value);
                attrs.push((key.to_owned(), value));
            }
            _ => attrs.push((key.to_owned(), value)),
        }
    }
    for (key, _) in &attrs {
        if let Some((prefix, _)) = key.split_once(':') {
            if prefix != "xmlns" && scope.resolve(prefix).is_none() {
                return Err(FramerError::NotWellFormed(format!(
                    "unbound prefix {prefix}"
                )));
            }
        }
    }
    let qname = std::str::from_utf8(start.name().as_ref())
        .map_err(|_| FramerError::UnsupportedEncoding)?
        .to_owned();
    let (prefix, local) = qname.split_once(':').unwrap_or(("", &qname));
    let ns = scope
        .resolve(prefix)
        .ok_or_else(|| FramerError::NotWellFormed(format!("unbound prefix {prefix}")))?
        .to_owned();
    let mut element = Element::new(local, ns);
    for (k, v) in attrs {
        element.set_attr(&k, v);
    }
    Ok((element, mark))
}

/// Parses a complete element (a whole stanza) from `text`.
pub(crate) fn element(
    text: &str,
    scope: &Scope,
    limits: AttrLimits,
) -> Result<Element, FramerError> {
    let mut scope = scope.clone();
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<(Element, usize)> = Vec::new();
    loop {
        match reader.read_event().map_err(map_err)? {
            Event::Start(start) => stack.push(open(&start, &mut scope, limits)?),
            Event::Empty(start) => {
                let (element, mark) = open(&start, &mut scope, limits)?;
                scope.bindings.truncate(mark);
                if let Some(done) = close(&mut stack, element) {
                    return Ok(done);
                }
            }
            Event::End(_) => {
                let (element, mark) = stack
                    .pop()
                    .ok_or_else(|| FramerError::NotWellFormed("unbalanced end tag".into()))?;
                scope.bindings.truncate(mark);
                if let Some(done) = close(&mut stack, element) {
                    return Ok(done);
                }
            }
            Event::Text(t) => push_text(&mut stack, t.unescape().map_err(map_err)?.into_owned())?,
            Event::CData(c) => {
                let s = std::str::from_utf8(&c).map_err(|_| FramerError::UnsupportedEncoding)?;
                push_text(&mut stack, s.to_owned())?;
            }
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) | Event::Decl(_) => {
                return Err(FramerError::RestrictedXml)
            }
            Event::Eof => return Err(FramerError::NotWellFormed("incomplete element".into())),
        }
    }
}

/// Attaches a finished element to its parent, or returns it when it is the root.
fn close(stack: &mut [(Element, usize)], element: Element) -> Option<Element> {
    match stack.last_mut() {
        Some((parent, _)) => {
            parent.push_node(Node::Element(element));
            None
        }
        None => Some(element),
    }
}

fn push_text(stack: &mut [(Element, usize)], text: String) -> Result<(), FramerError> {
    match stack.last_mut() {
        Some((parent, _)) => {
            if !text.is_empty() {
                parent.push_node(Node::Text(text));
            }
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err(FramerError::NotWellFormed(
            "text outside the element".into(),
        )),
    }
}
