//! XEP-0280 Message Carbons (namespace `urn:xmpp:carbons:2`).
//!
//! - §4–§5: a resource enables or disables carbons with an IQ set; the flag lives in its
//!   session record so every router sees it.
//! - §6 eligibility: `chat` messages, `normal` messages with a body, and messages carrying
//!   receipts (XEP-0184), chat states (XEP-0085) or markers (XEP-0333); never
//!   `groupchat`, `headline` or `error`, never a carbon itself, never messages marked
//!   `<private/>` (§9) or with the XEP-0334 `<no-copy/>` hint.
//! - §7 sent copies go to the sender's other carbons-enabled resources; received copies
//!   go to the recipient's carbons-enabled available resources that did not get the
//!   message itself. Both are wrapped in `<forwarded/>` (XEP-0297) and sent from the
//!   account's bare JID.

use crate::effects::{Effect, Effects, Recipient};
use crate::handler::{Answer, Outcome};
use crate::message::MessageType;
use crate::router::Router;
use switchyard_core::{ns, Element, Jid, Stanza, StanzaCondition, StanzaError};
use switchyard_storage::SessionRecord;

pub(crate) async fn toggle(router: &Router, stanza: &Stanza) -> Outcome {
    let enable = match stanza.payload().map(Element::name) {
        Some("enable") => true,
        Some("disable") => false,
        _ => return Err(StanzaError::new(StanzaCondition::BadRequest)),
    };
    let Some(own) = router.session(&stanza.from).await else {
        return Err(StanzaError::new(StanzaCondition::InternalServerError));
    };
    let mut fx = Effects::none();
    fx.update(&own, Box::new(move |r| r.carbons = enable));
    Ok(Answer::after(fx))
}

/// Payloads that make a `normal` message without a body worth copying (§6).
const IM_PAYLOADS: &[&str] = &[
    "urn:xmpp:receipts",
    "http://jabber.org/protocol/chatstates",
    "urn:xmpp:chat-markers:0",
];

fn eligible(stanza: &Stanza) -> bool {
    let el = stanza.element();
    let kind_ok = match MessageType::of(stanza) {
        MessageType::Chat => true,
        MessageType::Normal => {
            el.child("body", ns::CLIENT).is_some()
                || el.children().any(|c| IM_PAYLOADS.contains(&c.ns()))
        }
        _ => false,
    };
    let opted_out = el.child("private", ns::CARBONS).is_some()
        || el.child("no-copy", ns::HINTS).is_some()
        || el.children().any(|c| c.ns() == ns::CARBONS);
    kind_ok && !opted_out
}

fn wrap(direction: &str, account: &Jid, to: &Jid, original: &Element) -> Element {
    let forwarded = Element::new("forwarded", ns::FORWARD).with_child(original.clone());
    Element::new("message", ns::CLIENT)
        .with_attr("from", account.to_string())
        .with_attr("to", to.to_string())
        .with_attr("type", original.attr("type").unwrap_or("normal"))
        .with_child(Element::new(direction, ns::CARBONS).with_child(forwarded))
}

/// The recipient's resources owed a received copy of a message handed to `to`: those
/// with carbons enabled, available, that do not get the message itself (§7); none for a
/// message that is not eligible.
pub(crate) fn received_by(
    stanza: &Stanza,
    sessions: &[SessionRecord],
    to: &[Recipient],
) -> Vec<Recipient> {
    if !eligible(stanza) {
        return Vec::new();
    }
    sessions
        .iter()
        .filter(|s| s.carbons && s.presence.is_some() && s.jid != stanza.from)
        .filter(|s| !to.iter().any(|r| r.jid == s.jid))
        .map(Recipient::of)
        .collect()
}

/// Copies after a message was delivered (a hook of the executor, see [`crate::hooks`]):
/// sent copies to the sender's other resources, received copies to `received`
/// ([`received_by`]).
pub(crate) async fn copies(router: &Router, stanza: &Stanza, received: Vec<Recipient>) -> Effects {
    if !eligible(stanza) {
        return Effects::none();
    }
    let mut fx = sent_copies(router, stanza).await;
    let recipient = stanza.effective_to().bare();
    for to in received {
        let copy = wrap("received", &recipient, &to.jid, stanza.element());
        fx.push(Effect::Deliver {
            to,
            stanza: copy.into(),
        });
    }
    fx
}

/// Sent copies to the sender's other resources.
pub(crate) async fn sent_copies(router: &Router, stanza: &Stanza) -> Effects {
    let mut fx = Effects::none();
    if !eligible(stanza) {
        return fx;
    }
    let account = stanza.from.bare();
    for s in router.sessions(&account).await.iter() {
        if s.carbons && s.jid != stanza.from && stanza.to.as_ref() != Some(&s.jid) {
            fx.deliver(s, wrap("sent", &account, &s.jid, stanza.element()));
        }
    }
    fx
}
