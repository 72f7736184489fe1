//! What the router is told by configuration.

/// Server identity for XEP-0030 and XEP-0092.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub name: &'static str,
    pub version: &'static str,
    /// XEP-0092 §4: an administrator may hide the version.
    pub expose_version: bool,
}

/// RFC 6121 §8.5.2.1.1 leaves a choice for messages of type `normal` and `chat` sent to a
/// bare JID with several non-negative available resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareDelivery {
    /// Only the resources with the highest priority (all of them when tied): the RFC's
    /// "most available" option and its recommendation for `chat`.
    HighestPriority,
    /// Every resource with a non-negative priority.
    AllNonNegative,
}

#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Domains served; stanzas to other domains are answered `remote-server-not-found`.
    pub domains: Vec<String>,
    pub info: ServerInfo,
    pub bare_delivery: BareDelivery,
    /// XEP-0160: messages held per offline account before senders get an error.
    pub offline_quota: usize,
    /// Roster rows per account (RFC 6121 §2.3.3 permits refusing more).
    pub max_roster_items: usize,
}

impl RouterConfig {
    /// Defaults for the given domains and identity.
    pub fn new(domains: Vec<String>, info: ServerInfo) -> Self {
        Self {
            domains,
            info,
            bare_delivery: BareDelivery::HighestPriority,
            offline_quota: 1000,
            max_roster_items: 2000,
        }
    }
}
