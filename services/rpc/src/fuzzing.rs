//! Entry points for the fuzz targets in `services/rpc/fuzz` (feature `fuzzing`): what a
//! router does with the bytes of one message from an edge, and an edge with one from a
//! router, up to the domain types, without sockets. Both sides are untrusted input to
//! each other (DESIGN: trust boundaries).

use crate::{convert, pb};
use prost::Message;

/// One `EdgeMessage` as a router's link reader takes it. A stanza it accepts must be
/// written out again in a form that parses to the same element (what the recipient edge
/// will read).
pub fn edge_message(bytes: &[u8]) {
    let Ok(message) = pb::EdgeMessage::decode(bytes) else {
        return;
    };
    if let Some(pb::edge_message::Body::Stanzas(batch)) = message.body {
        for s in batch.stanzas {
            if let Some(stanza) = convert::stanza(s.xml) {
                let again = convert::element(stanza.routed().to_wire_xml().as_bytes());
                assert_eq!(again.ok().as_ref(), Some(stanza.element()));
            }
        }
    }
}

/// One `RouterMessage` as an edge's link reader takes it.
pub fn router_message(bytes: &[u8]) {
    let Ok(message) = pb::RouterMessage::decode(bytes) else {
        return;
    };
    match message.body {
        Some(pb::router_message::Body::Deliveries(batch)) => {
            for d in batch.deliveries {
                let _ = convert::routed(d.xml);
            }
        }
        Some(pb::router_message::Body::Terminate(t)) => {
            convert::stream_condition(&t.condition);
        }
        _ => {}
    }
}

/// A `BindRequest` as the router's Bind call checks it.
pub fn bind_request(bytes: &[u8]) {
    let Ok(r) = pb::BindRequest::decode(bytes) else {
        return;
    };
    if let Ok(jid) = convert::jid(&r.jid) {
        assert!(jid.bare().is_bare());
    }
    let _ = convert::element(r.presence.as_bytes());
}
