//! The router: resolves where a stanza goes (RFC 6120 §10, RFC 6121 §8) and answers what
//! the server handles itself, one module per RFC section or XEP:
//!
//! | module          | specification                                   |
//! |-----------------|-------------------------------------------------|
//! | `message`       | RFC 6121 §8.5 message delivery                  |
//! | `presence`      | RFC 6121 §4 presence, probes, directed presence |
//! | `subscription`  | RFC 6121 §3 and Appendix A                      |
//! | `roster`        | RFC 6121 §2 with versioning (§2.6)              |
//! | `iq`            | RFC 6120 §8.2.3 / RFC 6121 §8.5 IQ routing      |
//! | `offline`       | XEP-0160 with XEP-0203 delay                    |
//! | `lapsed`        | XEP-0198 stanzas a session ended unacknowledged |
//! | `rebuild`       | registry rebuilds after Redis lost its data     |
//! | `blocking`      | XEP-0191                                        |
//! | `carbons`       | XEP-0280 (+ XEP-0334 hints)                     |
//! | `vcard`         | XEP-0054                                        |
//! | `private`       | XEP-0049                                        |
//! | `last`          | XEP-0012                                        |
//! | `disco`         | XEP-0030                                        |
//! | `ping`          | XEP-0199                                        |
//! | `version`       | XEP-0092                                        |
//! | `admin`         | administrators' tasks (bans, rosters, announcements) |

pub mod admin;
mod blocking;
mod carbons;
mod component;
mod config;
#[cfg(test)]
mod decisions;
mod delivery;
mod disco;
mod effects;
mod execute;
pub mod fast;
mod handler;
mod hooks;
mod iq;
mod lapsed;
mod last;
mod message;
mod offline;
mod ping;
mod presence;
mod private;
mod push;
mod rebuild;
mod roster;
mod router;
mod subscription;
mod table;
mod vcard;
mod version;

pub use config::{BareDelivery, RouterConfig, ServerInfo, UnknownAccountMessages};
pub use delivery::{per_connection, Batch, BatchResults, EdgeDelivery, Undeliverable};
pub use router::Router;

/// Where account data lives and how a roster row is written, for tools that move it
/// (XEP-0227 import and export) without going through stanzas.
pub mod data {
    pub use crate::admin::{Ban, BAN_KEY};
    pub use crate::private::FAMILY as PRIVATE_FAMILY;
    pub use crate::private::{key as private_key, storable as private_storable};
    pub use crate::roster::{check_item as check_roster_item, item_element as roster_item};
    pub use crate::vcard::KEY as VCARD_KEY;
}
