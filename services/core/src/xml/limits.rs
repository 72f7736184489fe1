//! Hard limits on parsed XML: every parse path checks bytes, depth, element count and
//! attributes before (or while) it builds a tree, so no input takes memory or stack out of
//! proportion to what the limits allow.

/// Hard limits on what a peer may send (documented defaults in the README). The framer
/// enforces them on client streams; [`Element::parse_with`](super::Element::parse_with)
/// on serialized stanzas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest top-level stanza (or stream header) in bytes.
    pub max_stanza_bytes: usize,
    /// Largest stanza in bytes before the peer has authenticated (RFC 6120 §13.12: a server
    /// may keep this small, since anyone can send it). Applies while a
    /// [`Framer`](super::Framer) is unauthenticated; never above `max_stanza_bytes`.
    pub max_stanza_bytes_before_auth: usize,
    /// Deepest element nesting inside a stanza (the stanza itself is depth 1). It also
    /// bounds the recursion of everything that walks a tree (drop, clone, compare, write).
    pub max_depth: usize,
    /// Most elements in one stanza, the stanza itself included: with the byte limit it
    /// bounds the memory one stanza's tree takes.
    pub max_elements: usize,
    /// Most attributes on one element.
    pub max_attributes: usize,
    /// Longest attribute value in bytes, once entity and character references are replaced.
    pub max_attribute_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_stanza_bytes: 256 * 1024,
            max_stanza_bytes_before_auth: 16 * 1024,
            max_depth: 32,
            max_elements: 4096,
            max_attributes: 64,
            max_attribute_bytes: 4096,
        }
    }
}

impl Limits {
    /// What [`Element::parse`](super::Element::parse) applies to stanzas from inside the
    /// service (the cluster link, storage). It accepts anything a client could have sent
    /// under [`Limits::default`] plus what the server builds around or instead of it:
    ///
    /// - bytes: 4 MiB. Re-serializing a 256 KiB client stanza can grow it up to six-fold
    ///   (`"` in an attribute value is written `&quot;`, `&` from CDATA `&amp;`), wrappers
    ///   add a little more; server-built results (a 2,000-item roster) stay well under it.
    /// - depth: twice the client limit, for wrappers that nest a whole client stanza
    ///   (carbons, forwarded, archive results; each adds up to three levels).
    /// - elements: one per 64 bytes of the byte limit (65,536), far above a client's 4,096
    ///   and a large roster's few thousand.
    /// - attributes: twice the client limit, since the serializer may add an `xmlns:`
    ///   declaration for each prefixed attribute whose prefix was declared further out.
    ///   Value lengths are counted unescaped, so the client limit holds as it is.
    pub const INTERNAL: Limits = Limits {
        max_stanza_bytes: 4 * 1024 * 1024,
        max_stanza_bytes_before_auth: 4 * 1024 * 1024,
        max_depth: 64,
        max_elements: 4 * 1024 * 1024 / 64,
        max_attributes: 128,
        max_attribute_bytes: 4096,
    };

    /// The stanza byte limit in force before (`false`) or after (`true`) authentication.
    pub fn stanza_bytes(&self, authenticated: bool) -> usize {
        if authenticated {
            self.max_stanza_bytes
        } else {
            self.max_stanza_bytes.min(self.max_stanza_bytes_before_auth)
        }
    }
}
