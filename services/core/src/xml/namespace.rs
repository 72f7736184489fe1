//! Namespace names shared, not copied.
//!
//! Every element holds its resolved namespace, and nearly every element inherits it from
//! its parent. Copying the string per element let a peer multiply its input: one 4 KiB
//! `xmlns` around 64,000 `<a/>` (256 KiB) cost 268 MB. A [`Namespace`] is a static string
//! for the protocol's well-known names and a reference-counted one otherwise, so an
//! inherited namespace costs one pointer copy (and, when shared, one reference count).

use crate::ns;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A namespace name: compares, hashes and prints as the string it holds.
#[derive(Clone)]
pub(crate) enum Namespace {
    /// A well-known name (no allocation, no shared counter on the hot path).
    Static(&'static str),
    /// Any other name, declared once by the peer and shared by the elements in it.
    Shared(Arc<str>),
}

/// Names every stream uses; looked up when a namespace enters the tree so that these never
/// allocate and never touch a counter shared between connections.
const WELL_KNOWN: &[&str] = &[
    "",
    ns::CLIENT,
    ns::STREAMS,
    ns::STREAM_ERRORS,
    ns::STANZA_ERRORS,
    ns::TLS,
    ns::SASL,
    ns::BIND,
    ns::SESSION,
    ns::SASL_CB,
    ns::XML,
    ns::PING,
    ns::DISCO_INFO,
    ns::DISCO_ITEMS,
    ns::VERSION,
    ns::ROSTER,
    ns::BLOCKING,
    ns::CARBONS,
    ns::FORWARD,
    ns::DELAY,
    ns::VCARD,
    ns::PRIVATE,
    ns::CSI,
];

fn well_known(name: &str) -> Option<&'static str> {
    WELL_KNOWN.iter().copied().find(|known| *known == name)
}

impl Namespace {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Static(s) => s,
            Self::Shared(s) => s,
        }
    }
}

impl From<&str> for Namespace {
    fn from(name: &str) -> Self {
        match well_known(name) {
            Some(known) => Self::Static(known),
            None => Self::Shared(Arc::from(name)),
        }
    }
}

impl From<String> for Namespace {
    fn from(name: String) -> Self {
        match well_known(&name) {
            Some(known) => Self::Static(known),
            None => Self::Shared(Arc::from(name)),
        }
    }
}

impl Deref for Namespace {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Namespace {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Shared(a), Self::Shared(b)) if Arc::ptr_eq(a, b) => true,
            _ => self.as_str() == other.as_str(),
        }
    }
}

impl Eq for Namespace {}

impl PartialEq<str> for Namespace {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_names_are_static_and_others_shared() {
        assert!(matches!(Namespace::from(ns::CLIENT), Namespace::Static(_)));
        assert!(matches!(
            Namespace::from(String::from("urn:x")),
            Namespace::Shared(_)
        ));
        let a = Namespace::from("urn:x");
        let b = a.clone();
        let (Namespace::Shared(pa), Namespace::Shared(pb)) = (&a, &b) else {
            panic!("not shared")
        };
        assert!(Arc::ptr_eq(pa, pb));
        assert_eq!(a, Namespace::from("urn:x"));
        assert_ne!(a, Namespace::from(ns::CLIENT));
        assert_eq!(format!("{a:?}"), "\"urn:x\"");
    }
}
