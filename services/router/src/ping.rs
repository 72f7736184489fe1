//! XEP-0199 XMPP Ping §4.2–§4.3: the server answers a ping to itself, and to an account's
//! bare JID on the account's behalf, with an empty result. A ping for another account
//! answers only a contact the account shares presence with; anyone else gets
//! `service-unavailable`, the answer for an account that does not exist (RFC 6121 §8.5.1),
//! so a ping never tells a stranger that an account exists (§10 asks the same of pings
//! to full JIDs).

use crate::handler::{Answer, Outcome};
use crate::router::Router;
use switchyard_core::{Stanza, StanzaCondition, StanzaError};

pub(crate) async fn handle(router: &Router, stanza: &Stanza) -> Outcome {
    let to = stanza.effective_to();
    if router.is_server(&to) || router.shares_presence_with(&to, &stanza.from).await {
        return Ok(Answer::empty());
    }
    Err(StanzaError::new(StanzaCondition::ServiceUnavailable))
}
