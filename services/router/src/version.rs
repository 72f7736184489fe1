//! XEP-0092 Software Version §2: name and version of the server; when the administrator
//! hides it (§4), the request is refused with `service-unavailable`.

use crate::handler::{Answer, Outcome};
use crate::router::Router;
use switchyard_core::{ns, Element, Stanza, StanzaCondition, StanzaError};

pub(crate) async fn handle(router: &Router, _: &Stanza) -> Outcome {
    let info = &router.config.info;
    if !info.expose_version {
        return Err(StanzaError::new(StanzaCondition::ServiceUnavailable));
    }
    Ok(Answer::with(
        Element::new("query", ns::VERSION)
            .with_child(Element::new("name", ns::VERSION).with_text(info.name))
            .with_child(Element::new("version", ns::VERSION).with_text(info.version)),
    ))
}
