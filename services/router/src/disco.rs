//! XEP-0030 Service Discovery.
//!
//! - The server (§3.1): identity `server/im` and the features of every handler serving
//!   the server in the dispatch table, plus stanza features that have no IQ.
//! - An account's bare JID, answered by the server on the account's behalf: identity
//!   `account/registered` and the features served at account JIDs, for the owner and
//!   contacts with a `from` or `both` subscription; others get `service-unavailable`
//!   (§8), the same answer as for an account that does not exist (RFC 6121 §8.5.1).
//! - No items yet (§4): an empty list from the server and, for the owner and the same
//!   contacts, from an account; others get `service-unavailable` as for info. A `node`
//!   that does not exist is `item-not-found`, asked only once the asker may know the
//!   account, so it tells a stranger nothing either.

use crate::handler::{Answer, Outcome};
use crate::router::Router;
use switchyard_core::{ns, Element, Stanza, StanzaCondition, StanzaError};

/// Advertised by the server for behaviour that is not an IQ handler.
const SERVER_EXTRA: &[&str] = &[ns::OFFLINE, ns::BLOCKING, ns::VCARD, ns::PRIVATE];

fn no_node(stanza: &Stanza) -> Result<(), StanzaError> {
    match stanza.payload().and_then(|p| p.attr("node")) {
        Some(_) => Err(StanzaError::new(StanzaCondition::ItemNotFound)),
        None => Ok(()),
    }
}

fn info(category: &str, kind: &str, name: Option<&str>, mut vars: Vec<&str>) -> Element {
    let mut identity = Element::new("identity", ns::DISCO_INFO)
        .with_attr("category", category)
        .with_attr("type", kind);
    if let Some(name) = name {
        identity.set_attr("name", name);
    }
    let mut query = Element::new("query", ns::DISCO_INFO).with_child(identity);
    vars.sort_unstable();
    vars.dedup();
    for var in vars {
        query.push_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", var));
    }
    query
}

/// `features`: what the table serves at the server.
pub(crate) async fn server_info(
    router: &Router,
    stanza: &Stanza,
    mut vars: Vec<&'static str>,
) -> Outcome {
    no_node(stanza)?;
    let server = &router.config.info;
    vars.extend_from_slice(SERVER_EXTRA);
    Ok(Answer::with(info("server", "im", Some(server.name), vars)))
}

/// §8: an account's information is for the account and those it shares presence with.
async fn may_know(router: &Router, stanza: &Stanza) -> Result<(), StanzaError> {
    let to = stanza.effective_to();
    if router.is_server(&to) || router.shares_presence_with(&to, &stanza.from).await {
        return Ok(());
    }
    Err(StanzaError::new(StanzaCondition::ServiceUnavailable))
}

/// `vars`: what the table serves at accounts.
pub(crate) async fn account_info(
    router: &Router,
    stanza: &Stanza,
    vars: Vec<&'static str>,
) -> Outcome {
    may_know(router, stanza).await?;
    no_node(stanza)?;
    Ok(Answer::with(info("account", "registered", None, vars)))
}

pub(crate) async fn items(router: &Router, stanza: &Stanza) -> Outcome {
    may_know(router, stanza).await?;
    no_node(stanza)?;
    Ok(Answer::with(Element::new("query", ns::DISCO_ITEMS)))
}
