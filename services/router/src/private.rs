//! XEP-0049 Private XML Storage.
//!
//! - §2: one child element in its own namespace is stored, keyed by that namespace; a
//!   get returns what is stored, or echoes the empty child when nothing is. Storing an
//!   empty element (no attributes, children or text) therefore reads back exactly like
//!   nothing stored, so it removes the namespace and frees its share of the quota.
//! - §2.3: no child, or several on a get, is `not-acceptable`; namespaces reserved by
//!   the protocol (`jabber:*`, `http://jabber.org/*`, `vcard-temp`) are refused the same
//!   way. Only the owner reaches this handler (others get `service-unavailable`, which
//!   §3 allows alongside `forbidden`).
//! - Quota (the XEP sets none): an account keeps at most `private_quota_namespaces`
//!   namespaces and `private_quota_bytes` bytes (namespace keys and serialized
//!   elements). A set that would pass either is `resource-constraint` (RFC 6120
//!   §8.3.3.18: the server lacks the resources to serve the request; the block list
//!   answers a full list the same way), and may succeed once the account frees room. One
//!   element larger than the whole byte quota can never be stored and is
//!   `not-acceptable` (RFC 6120 §8.3.3.12: the request does not meet the server's
//!   criteria; XEP-0060 §7.1.3.4 refuses an oversized payload with the same condition).
//!   The storage checks and writes in one step, so concurrent sets cannot overshoot.

use crate::handler::{storage_failed, Answer, Outcome};
use crate::router::Router;
use switchyard_core::{ns, Element, Stanza, StanzaCondition, StanzaError};
use switchyard_storage::{DocumentQuota, StorageError};

/// Every private XML key starts with this (the document store holds other kinds too).
pub const FAMILY: &str = "private:";

/// Whether `el` may be kept as private XML: not in a namespace the protocol itself uses
/// (XEP-0049 §3: `jabber:*`, `http://jabber.org/*`, the vCard's).
pub fn storable(el: &Element) -> bool {
    let ns = el.ns();
    !(ns.starts_with("jabber:") || ns.starts_with("http://jabber.org/") || ns == ns::VCARD)
}

fn child(stanza: &Stanza) -> Result<&Element, StanzaError> {
    let query = stanza.payload().expect("dispatched with a payload");
    let mut children = query.children();
    let (Some(child), None) = (children.next(), children.next()) else {
        return Err(StanzaError::new(StanzaCondition::NotAcceptable));
    };
    if !storable(child) || query.name() != "query" {
        return Err(StanzaError::new(StanzaCondition::NotAcceptable));
    }
    Ok(child)
}

/// The account document holding one namespace's private XML: `private:` + namespace.
pub fn key(child: &Element) -> String {
    format!("{FAMILY}{}", child.ns())
}

/// What a get would echo when nothing is stored: an element with nothing in it.
fn is_empty(el: &Element) -> bool {
    let declaration = |name: &str| name == "xmlns" || name.starts_with("xmlns:");
    el.nodes().is_empty() && el.attrs().all(|(name, _)| declaration(name))
}

pub(crate) async fn get(router: &Router, stanza: &Stanza) -> Outcome {
    let child = child(stanza)?;
    let stored = router
        .stores
        .documents
        .get(&stanza.from.bare(), &key(child))
        .await
        .map_err(storage_failed("private XML"))?;
    let data = stored
        .and_then(|s| Element::parse(&s).ok())
        .unwrap_or_else(|| child.clone());
    Ok(Answer::with(
        Element::new("query", ns::PRIVATE).with_child(data),
    ))
}

pub(crate) async fn set(router: &Router, stanza: &Stanza) -> Outcome {
    let child = child(stanza)?;
    let (account, key) = (stanza.from.bare(), key(child));
    let documents = &router.stores.documents;
    if is_empty(child) {
        documents
            .put(&account, &key, None)
            .await
            .map_err(storage_failed("private XML"))?;
        return Ok(Answer::empty());
    }
    let xml = child.to_xml("");
    let quota = DocumentQuota {
        keys: router.config.private_quota_namespaces,
        bytes: router.config.private_quota_bytes,
    };
    if key.len() + xml.len() > quota.bytes {
        let too_big = StanzaError::new(StanzaCondition::NotAcceptable)
            .with_text("the element is larger than private storage allows");
        return Err(too_big);
    }
    match documents
        .put_within(&account, FAMILY, &key, &xml, quota)
        .await
    {
        Ok(()) => Ok(Answer::empty()),
        Err(StorageError::QuotaExceeded) => {
            Err(StanzaError::new(StanzaCondition::ResourceConstraint)
                .with_text("private storage is full: remove a namespace by storing it empty"))
        }
        Err(e) => Err(storage_failed("private XML")(e)),
    }
}
