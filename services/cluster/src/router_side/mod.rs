//! The router's end of the link: the `Router` gRPC service ([`RouterService`]), and
//! [`EdgeLinks`], the router's [`switchyard_router::EdgeDelivery`] over the Link streams
//! edges keep open to it.
//!
//! Everything an edge sends is untrusted input (DESIGN.md, trust boundaries):
//! - a link is the edge's identity here: the first message names the edge, a second
//!   link for a name already linked is refused (it would capture that edge's
//!   deliveries), and the router answers with a secret token that the edge's unary calls
//!   must carry;
//! - Bind and Unbind act only on the calling link's own sessions, and only on full JIDs
//!   of served domains;
//! - a stanza on a link is routed only if its `from` is a session that edge bound;
//! - an account's keys never leave: Credentials answers with its salts only, and
//!   VerifyScram checks a proof here (a bare JID of a served domain, a known hash, an
//!   AuthMessage and ClientProof of the sizes an exchange makes) and answers with the
//!   ServerSignature or nothing;
//! - every message is parsed with limits (element depth, size, count) and the gRPC
//!   decoder refuses messages past [`MAX_MESSAGE_BYTES`].

mod handover;
mod kept;
mod links;
mod orphans;
mod service;

pub(crate) use kept::{after, later};
pub use links::EdgeLinks;
pub(crate) use orphans::{dead_edge, DeadEdge};
pub use service::RouterService;

/// The largest gRPC message a router or edge accepts: a stanza is at most
/// `limits.max_stanza_bytes` (256 KiB by default) from a client, and a delivery the
/// router built (a roster result, say) stays well under this.
pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Longest SM-ID accepted (this server's are 24 characters).
const MAX_SM_ID: usize = 128;

/// The metadata key carrying a link's token on unary calls.
pub(crate) const LINK_TOKEN: &str = "x-switchyard-link";

#[cfg(test)]
mod tests;
