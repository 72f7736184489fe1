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

/// What a sender learns from a message that reaches no one: to an account that does not
/// exist (RFC 6121 §8.5.1 allows silence or `service-unavailable`), refused by the
/// recipient's block list (XEP-0191 §3.5: SHOULD `service-unavailable`), or of type
/// `normal` to a resource that is not connected (§8.5.3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownAccountMessages {
    /// Silence, so messages never tell whether an account exists or a resource is
    /// connected: a message an existing account would have stored offline gets no answer
    /// either. Unknown accounts and blocks are silently ignored (the sender's carbons see
    /// the message as sent), and a `normal` message to a resource that is not connected is
    /// handled as if sent to the bare JID, as `chat` is (Prosody does this for every type).
    Ignore,
    /// `service-unavailable` for each, as RFC 6121 Table 1's "error" option: friendlier for
    /// a closed deployment where senders are trusted, but it tells any sender which
    /// accounts exist.
    ServiceUnavailable,
}

#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Domains served; stanzas to other domains are answered `remote-server-not-found`.
    pub domains: Vec<String>,
    pub info: ServerInfo,
    pub bare_delivery: BareDelivery,
    pub unknown_account_messages: UnknownAccountMessages,
    /// XEP-0160: messages held per offline account before senders get an error.
    pub offline_quota: usize,
    /// XEP-0160: bytes of messages held per offline account (the stored stanzas, delay
    /// stamp included) before senders get the same error: what any sender can make the
    /// server keep for someone else.
    pub offline_quota_bytes: usize,
    /// XEP-0049: namespaces one account may keep private XML under.
    pub private_quota_namespaces: usize,
    /// XEP-0049: bytes of private XML one account may keep (namespaces and elements).
    pub private_quota_bytes: usize,
    /// Roster rows per account (RFC 6121 §2.3.3 permits refusing more).
    pub max_roster_items: usize,
    /// RFC 6121 §2.3.3: bytes of an item's `name`; longer is `not-acceptable`.
    pub max_roster_name_bytes: usize,
    /// RFC 6121 §2.3.3: bytes of one `<group/>` name; longer is `not-acceptable`.
    pub max_roster_group_bytes: usize,
    /// Groups of one roster item; more is `not-acceptable`.
    pub max_roster_groups: usize,
    /// XEP-0114 component domains: stanzas to any JID at one go to the component
    /// connected for it.
    pub components: Vec<String>,
    /// XEP-0357: notifications carry the message body (else only count and sender).
    pub push_include_body: bool,
    /// XEP-0357: at most one notification per registration in this time.
    pub push_min_interval: std::time::Duration,
    /// XEP-0484: how long FAST tokens live and when they are rotated.
    pub fast: crate::fast::FastPolicy,
}

impl RouterConfig {
    /// Defaults for the given domains and identity.
    pub fn new(domains: Vec<String>, info: ServerInfo) -> Self {
        Self {
            domains,
            info,
            bare_delivery: BareDelivery::HighestPriority,
            unknown_account_messages: UnknownAccountMessages::Ignore,
            offline_quota: 1000,
            offline_quota_bytes: 2 * 1024 * 1024,
            private_quota_namespaces: 64,
            private_quota_bytes: 256 * 1024,
            max_roster_items: 2000,
            max_roster_name_bytes: 256,
            max_roster_group_bytes: 256,
            max_roster_groups: 16,
            components: Vec::new(),
            push_include_body: false,
            push_min_interval: std::time::Duration::from_secs(10),
            fast: crate::fast::FastPolicy::default(),
        }
    }
}
