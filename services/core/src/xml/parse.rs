//! Parses one complete piece of markup with quick-xml into an [`Element`], resolving
//! namespaces (Namespaces in XML 1.0) against the scope declared on the stream header.
//!
//! Limits are checked as the tree is built: bytes before anything else, then depth and
//! element count at each start tag and attribute count and size at each attribute, so a
//! rejected stanza never costs more than the limits allow. Characters outside XML 1.0 §2.2,
//! raw or referenced, are not well-formed (`chars.rs`).

use super::chars;
use super::element::{Attribute, Element, Node};
use super::framer::FramerError;
use super::limits::Limits;
use super::namespace::Namespace;
use crate::ns;
use quick_xml::escape::EscapeError;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use std::borrow::Cow;

/// Namespace bindings in force: `(prefix, namespace)`, innermost last; `""` is the default.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    bindings: Vec<(Cow<'static, str>, Namespace)>,
}

/// Prefixes every stream header declares, shared instead of copied.
const WELL_KNOWN_PREFIXES: [&str; 3] = ["", "xml", "stream"];

fn intern_prefix(s: &str) -> Cow<'static, str> {
    match WELL_KNOWN_PREFIXES.iter().find(|known| **known == s) {
        Some(known) => Cow::Borrowed(known),
        None => Cow::Owned(s.to_owned()),
    }
}

impl Scope {
    pub(crate) fn new(default_ns: &str) -> Self {
        let mut scope = Self::default();
        scope.bind("xml", Namespace::from(ns::XML));
        scope.bind("", Namespace::from(default_ns));
        scope
    }

    fn bind(&mut self, prefix: &str, ns: Namespace) {
        self.bindings.push((intern_prefix(prefix), ns));
    }

    fn resolve(&self, prefix: &str) -> Option<&Namespace> {
        self.bindings
            .iter()
            .rev()
            .find(|(p, _)| p == prefix)
            .map(|(_, ns)| ns)
    }
}

fn map_err(e: quick_xml::Error) -> FramerError {
    match e {
        quick_xml::Error::Escape(e) => map_escape_err(e),
        other => FramerError::NotWellFormed(other.to_string()),
    }
}

fn map_escape_err(e: EscapeError) -> FramerError {
    match e {
        EscapeError::UnrecognizedEntity(..) => FramerError::RestrictedXml,
        other => FramerError::NotWellFormed(other.to_string()),
    }
}

fn unbound(prefix: &str) -> FramerError {
    FramerError::NotWellFormed(format!("unbound prefix {prefix}"))
}

/// Splits a qualified name (Namespaces in XML 1.0 §4, `QName`): `None` when unprefixed.
fn split_qname(qname: &str) -> Result<Option<(&str, &str)>, FramerError> {
    let bad = || FramerError::NotWellFormed(format!("bad name {qname:?}"));
    match qname.split_once(':') {
        None if chars::is_ncname(qname) => Ok(None),
        Some((p, l)) if chars::is_ncname(p) && chars::is_ncname(l) => Ok(Some((p, l))),
        _ => Err(bad()),
    }
}

/// Namespaces in XML 1.0 §3: `xml` only for its own namespace, `xmlns` never, no
/// prefix bound to the empty name, and neither reserved namespace as the default one
/// (`prefix` empty).
fn check_declaration(prefix: &str, value: &str) -> Result<(), FramerError> {
    let ok = match prefix {
        "xmlns" => false,
        "xml" => value == ns::XML,
        "" => value != ns::XML && value != ns::XMLNS,
        _ => !value.is_empty() && value != ns::XML && value != ns::XMLNS,
    };
    if !ok {
        return Err(FramerError::NotWellFormed(format!(
            "bad declaration of prefix {prefix}"
        )));
    }
    Ok(())
}

/// Opens an element from a start tag: binds its namespace declarations in `scope` and
/// resolves its name and prefixed attributes. The caller pops the scope (via the returned
/// mark) when it closes.
pub(crate) fn open(
    start: &BytesStart<'_>,
    scope: &mut Scope,
    limits: &Limits,
) -> Result<(Element, usize), FramerError> {
    let mark = scope.bindings.len();
    let mut attrs: Vec<(String, String)> = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| FramerError::NotWellFormed(e.to_string()))?;
        if attrs.len() >= limits.max_attributes {
            return Err(FramerError::PolicyViolation("too many attributes"));
        }
        let key =
            std::str::from_utf8(attr.key.as_ref()).map_err(|_| FramerError::UnsupportedEncoding)?;
        // The value as the peer meant it: its escaped length depends on who wrote it.
        let value = chars::owned_checked(attr.unescape_value().map_err(map_err)?)?;
        if value.len() > limits.max_attribute_bytes {
            return Err(FramerError::PolicyViolation("attribute value too long"));
        }
        match key.strip_prefix("xmlns") {
            Some("") => {
                check_declaration("", &value)?;
                scope.bind("", Namespace::from(value));
            }
            Some(rest) if rest.starts_with(':') => {
                check_declaration(&rest[1..], &value)?;
                scope.bind(&rest[1..], Namespace::from(value.as_str()));
                attrs.push((key.to_owned(), value));
            }
            _ => attrs.push((key.to_owned(), value)),
        }
    }
    let qname = start.name();
    let qname =
        std::str::from_utf8(qname.as_ref()).map_err(|_| FramerError::UnsupportedEncoding)?;
    let (prefix, local) = split_qname(qname)?.unwrap_or(("", qname));
    let ns = scope
        .resolve(prefix)
        .ok_or_else(|| unbound(prefix))?
        .clone();
    let mut element = Element::in_namespace(local.into(), ns);
    element.reserve_attrs(attrs.len());
    let mut expanded: Vec<(&str, &str)> = Vec::new();
    for (key, value) in attrs.iter() {
        let ns = match split_qname(key)? {
            Some(("xmlns", _)) | None => None,
            Some((prefix, local)) => {
                let ns = scope.resolve(prefix).ok_or_else(|| unbound(prefix))?;
                // Namespaces in XML 1.0 §6.3: no two attributes with one expanded name.
                if expanded.contains(&(ns.as_str(), local)) {
                    return Err(FramerError::NotWellFormed(format!(
                        "duplicate attribute {key}"
                    )));
                }
                expanded.push((ns.as_str(), local));
                (prefix != "xml").then(|| ns.clone())
            }
        };
        element.push_attr(Attribute::new(key.clone(), value.clone(), ns));
    }
    Ok((element, mark))
}

/// Parses a complete element (a whole stanza) from `text`, checking every limit.
pub(crate) fn element(text: &str, scope: &Scope, limits: &Limits) -> Result<Element, FramerError> {
    if text.len() > limits.max_stanza_bytes {
        return Err(FramerError::PolicyViolation("stanza too large"));
    }
    chars::check_raw(text)?;
    element_checked(text, scope, limits)
}

/// [`element`] for text whose size and raw characters the caller has already checked.
pub(crate) fn element_checked(
    text: &str,
    scope: &Scope,
    limits: &Limits,
) -> Result<Element, FramerError> {
    let mut scope = scope.clone();
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    let mut stack: Vec<(Element, usize)> = Vec::new();
    let mut count = 0usize;
    // Bytes of namespace declarations the serializer will write for this stanza: every
    // element whose namespace differs from its parent's, and every namespaced attribute,
    // carries one. Bounded like the stanza itself, so that a small stanza (thousands of
    // children under a prefix bound once to a long namespace) cannot be written out, and
    // buffered, hundreds of times larger than it came in.
    let mut declarations = 0usize;
    loop {
        let event = reader.read_event().map_err(map_err)?;
        let done = match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                count += 1;
                if count > limits.max_elements {
                    return Err(FramerError::PolicyViolation("too many elements"));
                }
                if stack.len() >= limits.max_depth {
                    return Err(FramerError::PolicyViolation("elements nested too deeply"));
                }
                let (element, mark) = open(start, &mut scope, limits)?;
                let parent_ns = stack.last().map(|(parent, _)| parent.ns());
                if parent_ns != Some(element.ns()) {
                    declarations += element.ns().len() + DECLARATION_OVERHEAD;
                }
                declarations += element
                    .attributes()
                    .iter()
                    .filter_map(|a| a.ns())
                    .map(|ns| ns.len() + DECLARATION_OVERHEAD)
                    .sum::<usize>();
                if declarations > limits.max_stanza_bytes {
                    return Err(FramerError::PolicyViolation(
                        "namespace declarations would expand the stanza past its limit",
                    ));
                }
                if matches!(event, Event::Start(_)) {
                    stack.push((element, mark));
                    continue;
                }
                scope.bindings.truncate(mark);
                close(&mut stack, element)
            }
            Event::End(_) => {
                let (element, mark) = stack
                    .pop()
                    .ok_or_else(|| FramerError::NotWellFormed("unbalanced end tag".into()))?;
                scope.bindings.truncate(mark);
                close(&mut stack, element)
            }
            Event::Text(t) => {
                let text = chars::owned_checked(t.unescape().map_err(map_err)?)?;
                push_text(&mut stack, text)?;
                None
            }
            Event::CData(c) => {
                let s = std::str::from_utf8(&c).map_err(|_| FramerError::UnsupportedEncoding)?;
                push_text(&mut stack, s.to_owned())?;
                None
            }
            Event::Comment(_) | Event::PI(_) | Event::DocType(_) | Event::Decl(_) => {
                return Err(FramerError::RestrictedXml)
            }
            Event::Eof => return Err(FramerError::NotWellFormed("incomplete element".into())),
        };
        if let Some(root) = done {
            return only_whitespace_after(&mut reader).map(|()| root);
        }
    }
}

/// ` xmlns:p=''` around a declared namespace, counted generously.
const DECLARATION_OVERHEAD: usize = 16;

/// One element, one document: after the root only whitespace may follow.
fn only_whitespace_after(reader: &mut Reader<&[u8]>) -> Result<(), FramerError> {
    loop {
        match reader.read_event().map_err(map_err)? {
            Event::Eof => return Ok(()),
            Event::Text(t) if t.iter().all(u8::is_ascii_whitespace) => {}
            _ => {
                return Err(FramerError::NotWellFormed(
                    "content after the element".into(),
                ))
            }
        }
    }
}

/// Attaches a finished element to its parent, or returns it when it is the root.
/// A parsed element holds no spare capacity, so its heap is what its input needs.
fn close(stack: &mut [(Element, usize)], mut element: Element) -> Option<Element> {
    element.shrink_to_fit();
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
