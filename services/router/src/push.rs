//! XEP-0357 Push Notifications, the user's server.
//!
//! - §5: a client enables push with `<enable jid node/>` (an app server and a node on it),
//!   optionally with a `jabber:x:data` form of publish options, and disables it with
//!   `<disable jid [node]/>`; only for its own account (anyone else gets
//!   `service-unavailable` from the table). Registrations are kept per account (at most
//!   [`MAX_REGISTRATIONS`], `resource-constraint` past it; enabling the same jid and node
//!   again replaces it) in the document store, so they outlive the session: they are for
//!   when the account has none.
//! - §6: when a message for the account cannot be delivered to any session and is stored
//!   offline, every registration gets a notification: an IQ set from the account's bare
//!   JID to the app server, publishing to the node an item with a
//!   `urn:xmpp:push:summary` form (message count, last sender; the body only with
//!   `push.include_body`), and the registration's publish options. At most one per
//!   registration per `push.min_interval_secs` (a burst wakes the device once).
//! - §7: an app server answering a notification with an error is taken to mean the
//!   device is gone: that registration is disabled. The notification's id carries a hash
//!   of its node so the answer finds it without state.
//! - A session that is detached (XEP-0198: its connection gone, resumption pending)
//!   still takes messages, queued for it: for each, its edge asks a router to notify the
//!   account's devices the same way (the edge-router link's `NotifyDetached`, accepted
//!   only for a session that edge bound), so the app can wake and resume.

use crate::effects::{Effect, Effects};
use crate::handler::{storage_failed, Answer, Outcome};
use crate::router::Router;
use sha2::{Digest, Sha256};
use switchyard_core::{ns, Element, Jid, Stanza, StanzaCondition, StanzaError};

/// Registrations one account may keep.
pub(crate) const MAX_REGISTRATIONS: usize = 16;
/// Bytes of publish options kept per registration.
const MAX_OPTIONS_BYTES: usize = 4096;
/// The document holding an account's registrations.
const KEY: &str = "push:registrations";
/// Every notification's id starts with this, then the node's hash.
const ID_PREFIX: &str = "sy-push-";
const SUMMARY: &str = "urn:xmpp:push:summary";

/// One `<enable/>` as stored: the app server, the node, the publish options.
fn registrations(doc: Option<String>) -> Vec<Element> {
    doc.and_then(|xml| Element::parse(&xml).ok())
        .map(|list| list.children().cloned().collect())
        .unwrap_or_default()
}

async fn load(router: &Router, account: &Jid) -> Result<Vec<Element>, StanzaError> {
    let doc = router.stores.documents.get(account, KEY).await;
    Ok(registrations(
        doc.map_err(storage_failed("push registrations"))?,
    ))
}

async fn save(router: &Router, account: &Jid, list: &[Element]) -> Result<(), StanzaError> {
    let doc = (!list.is_empty()).then(|| {
        let mut all = Element::new("registrations", ns::PUSH);
        for r in list {
            all.push_child(r.clone());
        }
        all.to_xml("")
    });
    let put = router
        .stores
        .documents
        .put(account, KEY, doc.as_deref())
        .await;
    put.map_err(storage_failed("push registrations"))
}

fn same(r: &Element, jid: &str, node: Option<&str>) -> bool {
    r.attr("jid") == Some(jid) && node.is_none_or(|n| r.attr("node") == Some(n))
}

/// §5: `<enable/>` or `<disable/>` for the sender's own account.
pub(crate) async fn change(router: &Router, stanza: &Stanza) -> Outcome {
    let el = stanza.payload().expect("dispatched with a payload");
    let bad = || StanzaError::new(StanzaCondition::BadRequest);
    let jid = el
        .attr("jid")
        .filter(|j| Jid::parse(j).is_ok())
        .ok_or_else(bad)?;
    let node = el.attr("node").filter(|n| !n.is_empty());
    let account = stanza.from.bare();
    let mut list = load(router, &account).await?;
    match el.name() {
        "enable" => {
            let node = node.ok_or_else(bad)?;
            let options = el.child("x", ns::DATA_FORMS);
            let mut entry = Element::new("enable", ns::PUSH)
                .with_attr("jid", jid)
                .with_attr("node", node);
            if let Some(x) = options {
                if x.to_xml("").len() > MAX_OPTIONS_BYTES {
                    return Err(StanzaError::new(StanzaCondition::NotAcceptable));
                }
                entry.push_child(x.clone());
            }
            list.retain(|r| !same(r, jid, Some(node)));
            if list.len() >= MAX_REGISTRATIONS {
                return Err(StanzaError::new(StanzaCondition::ResourceConstraint));
            }
            list.push(entry);
        }
        "disable" => list.retain(|r| !same(r, jid, node)),
        _ => return Err(bad()),
    }
    save(router, &account, &list).await?;
    Ok(Answer::empty())
}

/// A short hash of a node, for the notification's id.
fn tag(node: &str) -> String {
    Sha256::digest(node.as_bytes())[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn field(var: &str, value: &str) -> Element {
    Element::new("field", ns::DATA_FORMS)
        .with_attr("var", var)
        .with_child(Element::new("value", ns::DATA_FORMS).with_text(value))
}

/// Whether a message is worth waking a device for: one a person wrote (a body, or an
/// end-to-end encrypted payload), not a chat state or a receipt.
fn worth_waking(stanza: &Stanza) -> bool {
    stanza
        .element()
        .children()
        .any(|c| c.is("body", ns::CLIENT) || matches!(c.name(), "encrypted" | "openpgp"))
}

/// §6: a message for `account` was stored offline (or queued for a detached session):
/// notify each registration that is not within its minimum interval.
pub(crate) async fn notify(router: &Router, account: &Jid, stanza: &Stanza) -> Effects {
    if !worth_waking(stanza) {
        return Effects::none();
    }
    let Ok(list) = load(router, account).await else {
        return Effects::none();
    };
    let count = router.lookup(account).await.pending.max(1);
    let mut fx = Effects::none();
    for r in list {
        let (Some(app), Some(node)) = (r.attr("jid"), r.attr("node")) else {
            continue;
        };
        if !router.push_due(account, app, node) {
            continue;
        }
        let mut form = Element::new("x", ns::DATA_FORMS).with_attr("type", "submit");
        form.push_child(field("FORM_TYPE", SUMMARY));
        form.push_child(field("message-count", &count.to_string()));
        form.push_child(field(
            "last-message-sender",
            &stanza.from.bare().to_string(),
        ));
        let body = stanza
            .element()
            .child("body", ns::CLIENT)
            .map(Element::text);
        if let Some(body) = body.filter(|_| router.config.push_include_body) {
            form.push_child(field("last-message-body", &body));
        }
        let item = Element::new("item", ns::PUBSUB)
            .with_child(Element::new("notification", ns::PUSH).with_child(form));
        let mut pubsub = Element::new("pubsub", ns::PUBSUB).with_child(
            Element::new("publish", ns::PUBSUB)
                .with_attr("node", node)
                .with_child(item),
        );
        if let Some(options) = r.child("x", ns::DATA_FORMS) {
            pubsub.push_child(
                Element::new("publish-options", ns::PUBSUB).with_child(options.clone()),
            );
        }
        let id = format!(
            "{ID_PREFIX}{}-{}",
            tag(node),
            switchyard_core::token::token(8)
        );
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "set")
            .with_attr("id", id)
            .with_attr("from", account.to_string())
            .with_attr("to", app)
            .with_child(pubsub);
        if let Some(iq) = Stanza::from_element(iq) {
            switchyard_telemetry::ROUTER_PUSH_NOTIFICATIONS.inc();
            fx.push(Effect::Route(iq));
        }
    }
    fx
}

/// §7: an error from an app server to one of our notifications disables that
/// registration; any other IQ response to a bare JID is dropped as before.
pub(crate) async fn answered(router: &Router, stanza: &Stanza) -> Effects {
    let tagged = stanza
        .id()
        .and_then(|id| id.strip_prefix(ID_PREFIX))
        .and_then(|rest| rest.split_once('-'))
        .map(|(tag, _)| tag.to_owned());
    let Some(tagged) = tagged.filter(|_| stanza.type_attr() == Some("error")) else {
        return Effects::none();
    };
    let account = stanza.effective_to().bare();
    let app = stanza.from.to_string();
    let Ok(mut list) = load(router, &account).await else {
        return Effects::none();
    };
    let before = list.len();
    list.retain(|r| {
        !(r.attr("jid") == Some(&app) && r.attr("node").map(tag).as_ref() == Some(&tagged))
    });
    if list.len() < before {
        tracing::info!(%account, app, "push app server refused a notification; registration disabled");
        let _ = save(router, &account, &list).await;
    }
    Effects::none()
}
