//! The data the IM traits store, as plain values (RFC 6121 §2.1 roster items, §3
//! subscription states, §4 presence).

use switchyard_core::Jid;

/// RFC 6121 §2.1.2.5: the `subscription` attribute of a roster item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Subscription {
    #[default]
    None,
    /// The user receives the contact's presence.
    To,
    /// The contact receives the user's presence.
    From,
    Both,
}

impl Subscription {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::To => "to",
            Self::From => "from",
            Self::Both => "both",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Self::None,
            "to" => Self::To,
            "from" => Self::From,
            "both" => Self::Both,
            _ => return None,
        })
    }

    pub fn has_to(self) -> bool {
        matches!(self, Self::To | Self::Both)
    }

    pub fn has_from(self) -> bool {
        matches!(self, Self::From | Self::Both)
    }

    pub fn with(to: bool, from: bool) -> Self {
        match (to, from) {
            (false, false) => Self::None,
            (true, false) => Self::To,
            (false, true) => Self::From,
            (true, true) => Self::Both,
        }
    }
}

/// One row of an account's roster: a roster item (when `listed`), and the subscription
/// bookkeeping RFC 6121 keeps even for contacts that are not (yet) roster items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterItem {
    /// The contact's bare JID.
    pub jid: Jid,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub subscription: Subscription,
    /// Pending out: the user asked for the contact's presence (§3.1.2, `ask='subscribe'`).
    pub ask: bool,
    /// Pre-approved: a future request from the contact is approved at once (§3.4).
    pub approved: bool,
    /// Pending in: the contact's unanswered `subscribe` stanza, redelivered at each login
    /// until answered (§3.1.3).
    pub pending_in: Option<String>,
    /// Shown to the user's clients. A row that is not listed is either pending-in
    /// bookkeeping or a tombstone kept so roster versioning can push the removal (§2.6).
    pub listed: bool,
    /// The roster version at which this row last changed (set by the store).
    pub version: u64,
}

impl RosterItem {
    /// A fresh, unlisted row with no subscription.
    pub fn new(jid: Jid) -> Self {
        Self {
            jid,
            name: None,
            groups: Vec::new(),
            subscription: Subscription::None,
            ask: false,
            approved: false,
            pending_in: None,
            listed: false,
            version: 0,
        }
    }
}

/// A whole roster: every row and the current version (§2.6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    pub version: u64,
    pub items: Vec<RosterItem>,
}

/// The outcome of a [`RosterEdit`]: the row before, and the stored row if it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterUpdate {
    pub before: Option<RosterItem>,
    pub after: Option<RosterItem>,
}

/// A read-modify-write of one roster row: given the current row (if any), the new row, or
/// `None` to leave it unchanged. Stores run it atomically with respect to other edits of
/// the same account.
pub type RosterEdit = Box<dyn FnOnce(Option<RosterItem>) -> Option<RosterItem> + Send>;

/// The presence a resource last broadcast (RFC 6121 §4.4.2: servers keep it to answer
/// probes and to inform the user's other resources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presence {
    /// RFC 6121 §4.7.2.3, -128..=127.
    pub priority: i8,
    /// The stanza as broadcast, serialized.
    pub stanza: String,
}
