//! Owned XML element tree. Names are stored unprefixed with their resolved namespace, which
//! is shared with the parent's rather than copied (see [`Namespace`]). Serialization lives
//! in `write.rs`.

use super::namespace::Namespace;

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
}

/// An XML element with its namespace resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Local name (never prefixed).
    name: Box<str>,
    ns: Namespace,
    attrs: Vec<Attribute>,
    children: Vec<Node>,
}

/// One attribute, by qualified name (`xml:lang`, `type`, `xmlns:foo`), value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attribute {
    name: String,
    value: String,
    /// For a prefixed attribute, the namespace its prefix was bound to where it was parsed
    /// (maybe on an ancestor or the stream header): the serializer re-declares the prefix
    /// from it when it is not in force, so the element can be written on its own.
    ns: Option<Namespace>,
}

impl Attribute {
    pub(crate) fn new(name: String, value: String, ns: Option<Namespace>) -> Self {
        Self { name, value, ns }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn value(&self) -> &str {
        &self.value
    }

    pub(crate) fn ns(&self) -> Option<&str> {
        self.ns.as_deref()
    }
}

impl Element {
    pub fn new(name: impl Into<String>, ns: impl Into<String>) -> Self {
        Self::in_namespace(name.into().into_boxed_str(), Namespace::from(ns.into()))
    }

    /// An element in a namespace already held elsewhere (shared, not copied).
    pub(crate) fn in_namespace(name: Box<str>, ns: Namespace) -> Self {
        Self {
            name,
            ns,
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// Builder-style attribute setter.
    pub fn with_attr(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder-style child appender.
    pub fn with_child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    /// Builder-style text appender.
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.children.push(Node::Text(text.into()));
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ns(&self) -> &str {
        &self.ns
    }

    pub fn is(&self, name: &str, ns: &str) -> bool {
        &*self.name == name && *self.ns == *ns
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_str())
    }

    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_str()))
    }

    /// Attributes with the namespace of each prefixed one, for the serializer.
    pub(crate) fn attributes(&self) -> &[Attribute] {
        &self.attrs
    }

    /// Appends an attribute the parser has already checked for duplicates.
    pub(crate) fn push_attr(&mut self, attr: Attribute) {
        self.attrs.push(attr);
    }

    /// Sets an attribute by qualified name. A prefixed name needs its prefix declared by
    /// an `xmlns:` attribute here or on an ancestor, or it is not written.
    pub fn set_attr(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.attrs.iter_mut().find(|a| a.name == name) {
            Some(slot) => slot.value = value,
            None => self
                .attrs
                .push(Attribute::new(name.to_owned(), value, None)),
        }
    }

    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let at = self.attrs.iter().position(|a| a.name == name)?;
        Some(self.attrs.remove(at).value)
    }

    /// The element with itself and every descendant in namespace `from` moved to `to`
    /// (a component's `jabber:component:accept` stanza as `jabber:client`, and back).
    /// Recursion follows the tree's depth, which the parser bounds.
    pub fn moved_namespace(mut self, from: &str, to: &str) -> Self {
        self.move_namespace(
            &Namespace::from(from.to_owned()),
            &Namespace::from(to.to_owned()),
        );
        self
    }

    fn move_namespace(&mut self, from: &Namespace, to: &Namespace) {
        if *self.ns == **from {
            self.ns = to.clone();
        }
        for node in &mut self.children {
            if let Node::Element(child) = node {
                child.move_namespace(from, to);
            }
        }
    }

    pub fn push_child(&mut self, child: Element) {
        self.children.push(Node::Element(child));
    }

    pub(crate) fn push_node(&mut self, node: Node) {
        self.children.push(node);
    }

    pub(crate) fn reserve_attrs(&mut self, exact: usize) {
        self.attrs.reserve_exact(exact);
    }

    pub(crate) fn shrink_to_fit(&mut self) {
        self.children.shrink_to_fit();
    }

    pub fn nodes(&self) -> &[Node] {
        &self.children
    }

    /// The child elements, taken (text between them dropped).
    pub fn into_children(self) -> impl Iterator<Item = Element> {
        self.children.into_iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    pub fn child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.children().find(|c| c.is(name, ns))
    }

    /// The serialized size, estimated from the parts without serializing: names,
    /// namespaces, attributes and text, plus the markup around them. It allocates
    /// nothing and is never below what serializing writes, so queues can bound their
    /// bytes with it; it recurses as deep as the element, which every parse path bounds
    /// (serializing and dropping the element recurse as deep anyway).
    pub fn estimated_bytes(&self) -> usize {
        let own = 2 * self.name().len() + escaped_bound(self.ns()) + 16;
        let attrs: usize = self
            .attrs()
            .map(|(k, v)| k.len() + escaped_bound(v) + 4)
            .sum();
        let content: usize = self
            .children
            .iter()
            .map(|node| match node {
                Node::Element(child) => child.estimated_bytes(),
                Node::Text(text) => escaped_bound(text),
            })
            .sum();
        own + attrs + content
    }

    /// Concatenated direct text content.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }
}

/// At least the bytes `s` takes once escaped: a byte that escaping grows (markup
/// characters, quotes, C0 controls) becomes at most six (`&quot;`).
fn escaped_bound(s: &str) -> usize {
    let grown = s
        .bytes()
        .filter(|b| *b < 0x20 || matches!(b, b'&' | b'<' | b'>' | b'\'' | b'"'))
        .count();
    s.len() + 5 * grown
}
