//! The router: resolves where a stanza goes (RFC 6120 §10, the delivery subset of RFC 6121
//! §8 needed for one node) and answers stanzas addressed to the server itself through a
//! dispatch table of small, spec-labelled handler modules.

mod delivery;
mod disco;
mod dispatch;
mod ping;
mod router;
mod version;

pub use delivery::{EdgeDelivery, Undeliverable};
pub use dispatch::ServerInfo;
pub use router::Router;
