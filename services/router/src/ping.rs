//! XEP-0199 XMPP Ping §4.2: the server answers a ping addressed to it with an empty result.

use crate::dispatch::ServerInfo;
use switchyard_core::{Element, Stanza, StanzaError};

pub(crate) fn handle(_: &Stanza, _: &ServerInfo) -> Result<Option<Element>, StanzaError> {
    Ok(None)
}
