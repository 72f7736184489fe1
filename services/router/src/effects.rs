//! What handling a stanza does, decided before anything is done.
//!
//! Feature modules read what they need (sessions, roster rows, block lists) and return
//! [`Effects`]: an ordered list of what must happen. They never deliver, store or call
//! another feature themselves; the executor ([`crate::execute`]) carries the list out.
//! Order is kept where it is visible: deliveries to one session arrive in the order they
//! were listed, and every effect that is not a delivery (a session edit, a stored
//! message, a hook) waits for everything listed before it.

use switchyard_core::{Element, Jid, Routed, Stanza, StanzaCondition, StanzaError, StanzaKind};
use switchyard_storage::{SessionEdit, SessionRecord};

/// Decisions of one stanza that read at once (see [`Effects::gather`]).
const READS_AT_ONCE: usize = 64;

/// One connection holding a session: where a delivery goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recipient {
    pub jid: Jid,
    pub edge: String,
    pub conn: u64,
}

impl Recipient {
    pub(crate) fn of(session: &SessionRecord) -> Self {
        Self {
            jid: session.jid.clone(),
            edge: session.edge.clone(),
            conn: session.conn,
        }
    }
}

/// What earlier attempts to deliver one message learnt.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tried {
    /// Sessions that did not take it.
    pub gone: Vec<Jid>,
    /// The registry was found rebuilt once already; what is found now is final.
    pub looked_again: bool,
}

pub(crate) enum Effect {
    /// Hands a stanza to one session's connection. A session its edge says it no longer
    /// holds is removed from the registry (with the unavailable presence its end implies).
    Deliver { to: Recipient, stanza: Routed },
    /// Hands a stanza to one session, or carries out `otherwise` if it does not take it
    /// (an IQ request's `service-unavailable`, RFC 6121 §8.5.3.2.3).
    DeliverOr {
        to: Recipient,
        stanza: Routed,
        otherwise: Effects,
    },
    /// RFC 6121 §8.5: a message for the sessions chosen for it, handed to all of them at
    /// once. If none takes it, the message is routed again without them (a stale record
    /// never swallows a message); if some did, the delivered-message hooks follow.
    /// `carbons` are the recipient's other resources owed a received copy (XEP-0280 §7),
    /// chosen from the same registry read as `to`.
    Message {
        stanza: Stanza,
        to: Vec<Recipient>,
        carbons: Vec<Recipient>,
        tried: Tried,
    },
    /// Hands a stanza to a full JID if it is connected (answers to the sender); nothing
    /// when it is not.
    DeliverTo { to: Jid, stanza: Routed },
    /// Edits a session's registry record.
    Update {
        jid: Jid,
        conn: u64,
        edit: SessionEdit,
    },
    /// Routes a stanza as if the account's session had sent it (a roster removal's
    /// `unsubscribe`, RFC 6121 §2.5.2).
    Route(Stanza),
    /// XEP-0160: stores a message for an account with no available resource, or bounces
    /// an error when it cannot be stored.
    StoreOffline { account: Jid, stanza: Stanza },
    /// XEP-0160: held messages go to a resource that just became available.
    FlushOffline(Recipient),
    /// XEP-0012: the account's last available resource went away with this presence.
    LastActivity { account: Jid, presence: Element },
    /// Ends a session's stream with a condition.
    Terminate {
        to: Recipient,
        condition: switchyard_core::StreamCondition,
    },
}

impl std::fmt::Debug for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Deliver { to, stanza } => write!(f, "Deliver({} ← {})", to.jid, stanza.name()),
            Self::DeliverTo { to, stanza } => write!(f, "DeliverTo({to} ← {})", stanza.name()),
            Self::DeliverOr { to, otherwise, .. } => {
                write!(f, "DeliverOr({}, otherwise {otherwise:?})", to.jid)
            }
            Self::Message { to, tried, .. } => write!(
                f,
                "Message(→ {:?}, tried {:?})",
                to.iter().map(|r| r.jid.to_string()).collect::<Vec<_>>(),
                tried
            ),
            Self::Update { jid, conn, .. } => write!(f, "Update({jid}, {conn})"),
            Self::Route(s) => write!(f, "Route({})", s.kind.as_str()),
            Self::StoreOffline { account, .. } => write!(f, "StoreOffline({account})"),
            Self::FlushOffline(to) => write!(f, "FlushOffline({})", to.jid),
            Self::LastActivity { account, .. } => write!(f, "LastActivity({account})"),
            Self::Terminate { to, condition } => write!(f, "Terminate({}, {condition:?})", to.jid),
        }
    }
}

/// An ordered list of effects (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Effects(Vec<Effect>);

impl Effects {
    pub(crate) fn none() -> Self {
        Self::default()
    }

    pub(crate) fn push(&mut self, effect: Effect) {
        self.0.push(effect);
    }

    pub(crate) fn append(&mut self, mut other: Effects) {
        self.0.append(&mut other.0);
    }

    pub(crate) fn deliver(&mut self, to: &SessionRecord, stanza: impl Into<Routed>) {
        self.push(Effect::Deliver {
            to: Recipient::of(to),
            stanza: stanza.into(),
        });
    }

    pub(crate) fn deliver_to(&mut self, to: &Jid, stanza: impl Into<Routed>) {
        self.push(Effect::DeliverTo {
            to: to.clone(),
            stanza: stanza.into(),
        });
    }

    pub(crate) fn update(&mut self, session: &SessionRecord, edit: SessionEdit) {
        self.push(Effect::Update {
            jid: session.jid.clone(),
            conn: session.conn,
            edit,
        });
    }

    /// Answers a stanza with an error (RFC 6120 §8.3); errors and IQ responses are never
    /// answered, so no bounce loops.
    pub(crate) fn bounce(&mut self, stanza: &Stanza, error: StanzaError) {
        if stanza.kind == StanzaKind::Iq && !stanza.is_iq_request() {
            return;
        }
        if let Some(reply) = stanza.error_reply(&error) {
            switchyard_telemetry::ROUTER_STANZA_ERRORS
                .with_label_values(&[error.condition.as_str()])
                .inc();
            self.deliver_to(&stanza.from, reply);
        }
    }

    /// The effects as one bounce (a handler that refuses the stanza).
    pub(crate) fn bounced(stanza: &Stanza, condition: StanzaCondition) -> Self {
        Self::refused(stanza, StanzaError::new(condition))
    }

    /// The effects as one bounce with a full error (a block list's `<blocked/>`).
    pub(crate) fn refused(stanza: &Stanza, error: StanzaError) -> Self {
        let mut fx = Self::none();
        fx.bounce(stanza, error);
        fx
    }

    /// The effects of several decisions, in the order given, with up to [`READS_AT_ONCE`]
    /// of them reading at once (a broadcast's per-contact reads, most of them cache hits,
    /// do not wait on each other's misses).
    pub(crate) async fn gather<F>(decisions: impl IntoIterator<Item = F>) -> Self
    where
        F: std::future::Future<Output = Effects>,
    {
        use futures_util::StreamExt;
        let all: Vec<Effects> = futures_util::stream::iter(decisions)
            .buffered(READS_AT_ONCE)
            .collect()
            .await;
        Self(all.into_iter().flat_map(|fx| fx.0).collect())
    }

    pub(crate) fn into_vec(self) -> Vec<Effect> {
        self.0
    }

    /// The effects listed, for tests that assert on decisions.
    #[cfg(test)]
    pub(crate) fn as_slice(&self) -> &[Effect] {
        &self.0
    }
}
