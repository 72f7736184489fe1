//! XEP-0199 XMPP Ping §4.2–§4.3: the server answers a ping to itself, and to an account's
//! bare JID on the account's behalf, with an empty result.

use crate::dispatch::{Answer, Outcome};
use crate::router::Router;
use switchyard_core::Stanza;

pub(crate) async fn handle(_: &Router, _: &Stanza) -> Outcome {
    Ok(Answer::empty())
}
