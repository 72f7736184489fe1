//! Serializer: every element it writes is well-formed XML 1.0 and namespace-well-formed on
//! its own, whatever the tree holds.
//!
//! - A default namespace is declared only where it changes from the parent's, so a stanza
//!   written inside a `jabber:client` stream carries no redundant `xmlns`; an element the
//!   parser saw under a prefix (`<foo:x>`) is written with a default-namespace declaration.
//! - A prefixed attribute (`foo:bar`) is written with its prefix declared (Namespaces in
//!   XML 1.0 §5, "Namespace constraint: Prefix Declared"): the element carries the
//!   `xmlns:foo` declaration, which is written unless an ancestor in the same output
//!   already declared the same binding. An attribute whose prefix no declaration binds
//!   (only a tree built in code can hold one) is left out rather than written unbound.
//! - Text and attribute values are escaped, and characters XML 1.0 §2.2 does not allow are
//!   written as U+FFFD (see `chars.rs`).
//!
//! Recursion follows the tree's depth, which the parser bounds (`Limits::max_depth`).

use super::chars::{is_xml_char, REPLACEMENT};
use super::element::{Element, Node};
use std::borrow::Cow;

/// Prefix bindings declared by the elements written so far on the way down: `(prefix, ns)`,
/// innermost last.
type Declared<'a> = Vec<(&'a str, &'a str)>;

impl Element {
    /// Serializes as a child of an element in `parent_ns`.
    pub fn write_to(&self, out: &mut String, parent_ns: &str) {
        write_element(self, out, parent_ns, &mut Vec::new());
    }

    /// Serializes as a top-level child of a stream whose default namespace is `stream_ns`.
    pub fn to_xml(&self, stream_ns: &str) -> String {
        let mut out = String::with_capacity(128);
        self.write_to(&mut out, stream_ns);
        out
    }
}

fn write_element<'a>(
    el: &'a Element,
    out: &mut String,
    parent_ns: &str,
    declared: &mut Declared<'a>,
) {
    let mark = declared.len();
    out.push('<');
    out.push_str(el.name());
    if el.ns() != parent_ns {
        write_attr(out, "xmlns", el.ns());
    }
    // The element's own declarations, unless an ancestor already wrote the same binding.
    for attr in el.attributes() {
        let Some(prefix) = attr.name().strip_prefix("xmlns:") else {
            continue;
        };
        let value = attr.value();
        let reserved = matches!(prefix, "" | "xml" | "xmlns") || value.is_empty();
        if reserved || resolve(declared, prefix) == Some(value) {
            continue;
        }
        write_attr(out, attr.name(), value);
        declared.push((prefix, value));
    }
    for attr in el.attributes() {
        let key = attr.name();
        let written = match key.split_once(':') {
            None => key != "xmlns",
            Some(("" | "xmlns", _)) => false,
            Some((_, local)) if local.is_empty() || local.contains(':') => false,
            Some(("xml", _)) => true,
            Some((prefix, _)) => declare(el, prefix, attr.ns(), declared, mark, out),
        };
        if written {
            write_attr(out, key, attr.value());
        }
    }
    if el.nodes().is_empty() {
        out.push_str("/>");
    } else {
        out.push('>');
        for child in el.nodes() {
            match child {
                Node::Element(e) => write_element(e, out, el.ns(), declared),
                Node::Text(t) => out.push_str(&escape_text(t)),
            }
        }
        out.push_str("</");
        out.push_str(el.name());
        out.push('>');
    }
    declared.truncate(mark);
}

/// Makes sure `prefix` is bound for an attribute of `el` that was parsed in namespace `ns`,
/// writing a declaration when needed; `false` when the attribute cannot be written bound.
fn declare<'a>(
    el: &Element,
    prefix: &'a str,
    ns: Option<&'a str>,
    declared: &mut Declared<'a>,
    mark: usize,
    out: &mut String,
) -> bool {
    let in_force = resolve(declared, prefix);
    let Some(ns) = ns else {
        return in_force.is_some();
    };
    if in_force == Some(ns) {
        return true;
    }
    // A binding this element declares or already re-declared wins (a tree built in code
    // may disagree with it); declaring the prefix twice would not be well-formed.
    let own = el
        .attributes()
        .iter()
        .any(|a| a.name().strip_prefix("xmlns:") == Some(prefix));
    if own || declared[mark..].iter().any(|(p, _)| *p == prefix) {
        return in_force.is_some();
    }
    out.push_str(" xmlns:");
    out.push_str(prefix);
    out.push_str("='");
    out.push_str(&escape_attr(ns));
    out.push('\'');
    declared.push((prefix, ns));
    true
}

fn resolve<'a>(declared: &Declared<'a>, prefix: &str) -> Option<&'a str> {
    declared
        .iter()
        .rev()
        .find(|(p, _)| *p == prefix)
        .map(|(_, ns)| *ns)
}

fn write_attr(out: &mut String, key: &str, value: &str) {
    out.push(' ');
    out.push_str(key);
    out.push_str("='");
    out.push_str(&escape_attr(value));
    out.push('\'');
}

/// Besides markup: a carriage return anywhere, and tab and line feed in attribute values,
/// are written as character references, since a parser normalizes them when raw (XML 1.0
/// §2.11 end-of-line handling, §3.3.3 attribute-value normalization) and the recipient
/// would read something else than was sent.
fn escape(s: &str, attr: bool) -> Cow<'_, str> {
    let needs = |c: char| {
        matches!(c, '&' | '<' | '>' | '\r')
            || (attr && matches!(c, '\'' | '"' | '\t' | '\n'))
            || !is_xml_char(c)
    };
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' if attr => out.push_str("&apos;"),
            '"' if attr => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\t' if attr => out.push_str("&#9;"),
            '\n' if attr => out.push_str("&#10;"),
            c if !is_xml_char(c) => out.push(REPLACEMENT),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Escapes character data; characters XML 1.0 does not allow become U+FFFD.
pub fn escape_text(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// Escapes an attribute value for single- or double-quoted output; characters XML 1.0 does
/// not allow become U+FFFD.
pub fn escape_attr(s: &str) -> Cow<'_, str> {
    escape(s, true)
}
