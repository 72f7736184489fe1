//! XEP-0054 vcard-temp.
//!
//! - §3.1: the user's own vCard (no `to`, or the own bare JID); none stored yet gives an
//!   empty `<vCard/>`, which §3.1 allows.
//! - §3.2: a set replaces the whole vCard; only the owner can set it (others reach no
//!   handler and get `service-unavailable`).
//! - §3.3: anyone may read another account's vCard at its bare JID; none stored is
//!   `item-not-found`.

use crate::handler::{storage_failed, Answer, Outcome};
use crate::router::Router;
use switchyard_core::{ns, Element, Stanza, StanzaCondition, StanzaError};

/// The account document holding the vCard (serialized `<vCard xmlns='vcard-temp'/>`).
pub const KEY: &str = "vcard";

pub(crate) async fn get(router: &Router, stanza: &Stanza) -> Outcome {
    let account = stanza.effective_to().bare();
    let stored = router
        .stores
        .documents
        .get(&account, KEY)
        .await
        .map_err(storage_failed("vCard"))?;
    match stored.map(|s| Element::parse(&s)) {
        Some(Ok(vcard)) => Ok(Answer::with(vcard)),
        _ if account == stanza.from.bare() => Ok(Answer::with(Element::new("vCard", ns::VCARD))),
        _ => Err(StanzaError::new(StanzaCondition::ItemNotFound)),
    }
}

pub(crate) async fn set(router: &Router, stanza: &Stanza) -> Outcome {
    let vcard = stanza.payload().expect("dispatched with a payload");
    if vcard.name() != "vCard" {
        return Err(StanzaError::new(StanzaCondition::BadRequest));
    }
    let xml = vcard.to_xml("");
    router
        .stores
        .documents
        .put(&stanza.from.bare(), KEY, Some(&xml))
        .await
        .map_err(storage_failed("vCard"))?;
    Ok(Answer::empty())
}
