//! The router: where each stanza goes (RFC 6120 §10, RFC 6121 §8) and the session
//! lifecycle events that drive presence (RFC 6121 §4).
//!
//! A stanza from a session is handled in two steps, as RFC 6121 describes them for two
//! servers: the sender's side (outbound: stamping, the sender's block list, subscription
//! state) and the recipient's side (inbound: existence, block list, delivery rules). Both
//! run here because every served domain is local; stanzas for other domains get
//! `remote-server-not-found` (there is no server-to-server link).
//!
//! Handling a stanza is two steps: the table ([`crate::table`]) picks the feature
//! handler, which reads what it needs and returns effects; the executor
//! ([`crate::execute`]) carries them out.
//!
//! The router holds no state of its own: sessions live in the [`SessionRegistry`], data in
//! the [`Stores`], so any router can handle any stanza.

use crate::config::RouterConfig;
use crate::delivery::EdgeDelivery;
use crate::effects::{Effect, Effects, Recipient};
use crate::handler::Target;
use std::sync::Arc;
use switchyard_core::{Element, Jid, Stanza, StanzaCondition, StreamCondition};
use switchyard_storage::{Lookup, SessionRecord, SessionRegistry, Sessions, StorageError, Stores};
use switchyard_telemetry as metrics;

/// Registrations whose last notification time a router keeps (XEP-0357 rate limit).
const PUSH_REGISTRATIONS_REMEMBERED: usize = 100_000;

#[derive(Debug)]
pub struct Router {
    pub(crate) config: RouterConfig,
    pub(crate) registry: Arc<dyn SessionRegistry>,
    pub(crate) stores: Stores,
    pub(crate) edges: Arc<dyn EdgeDelivery>,
    pub(crate) started: std::time::Instant,
    pub(crate) epoch: crate::rebuild::Epoch,
    /// XEP-0357: when each registration (account, app server, node) was last notified;
    /// bounded, the least recently used forgotten first.
    push_sent: quick_cache::sync::Cache<String, std::time::Instant>,
}

impl Router {
    /// The account's XEP-0484 tokens.
    pub fn fast_tokens(&self) -> crate::fast::FastTokens<'_> {
        crate::fast::FastTokens {
            documents: &*self.stores.documents,
            policy: self.config.fast,
        }
    }

    pub fn new(
        config: RouterConfig,
        registry: Arc<dyn SessionRegistry>,
        stores: Stores,
        edges: Arc<dyn EdgeDelivery>,
    ) -> Self {
        Self {
            config,
            registry,
            stores,
            edges,
            started: std::time::Instant::now(),
            epoch: crate::rebuild::Epoch::default(),
            push_sent: quick_cache::sync::Cache::new(PUSH_REGISTRATIONS_REMEMBERED),
        }
    }

    /// XEP-0357: whether a registration may be notified now (and, if so, it counts as
    /// notified from now on).
    pub(crate) fn push_due(&self, account: &Jid, app: &str, node: &str) -> bool {
        let key = format!("{account}\0{app}\0{node}");
        let now = std::time::Instant::now();
        let due = self
            .push_sent
            .get(&key)
            .is_none_or(|last| now.duration_since(last) >= self.config.push_min_interval);
        if due {
            self.push_sent.insert(key, now);
        }
        due
    }

    /// Registers a bound resource (not for a banned account: `not-allowed`, see
    /// [`crate::admin`]); a previous session with the same full JID is closed
    /// with `conflict` (RFC 6120 §7.7.2.2: the new session wins) and goes unavailable.
    pub async fn bind(&self, record: SessionRecord) -> Result<(), StanzaCondition> {
        match self.ban_of(&record.jid.bare()).await {
            Ok(None) => {}
            Ok(Some(ban)) => {
                tracing::info!(jid = %record.jid, reason = ban.reason, "bind refused: the account is banned");
                return Err(StanzaCondition::NotAllowed);
            }
            Err(e) => {
                tracing::warn!(error = %e, "ban lookup failed; bind refused");
                return Err(StanzaCondition::InternalServerError);
            }
        }
        match self.registry.bind(record).await {
            Ok(Some(old)) => {
                tracing::info!(jid = %old.jid, conn = old.conn, "session replaced by a new bind");
                let mut fx = Effects::none();
                fx.push(Effect::Terminate {
                    to: Recipient::of(&old),
                    condition: StreamCondition::Conflict,
                });
                if old.presence.is_some() {
                    fx.append(crate::presence::unavailable(self, old, None).await);
                }
                self.apply(fx).await;
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "session registry bind failed");
                Err(StanzaCondition::InternalServerError)
            }
        }
    }

    /// XEP-0198: a resumed session moves to connection `conn` of `edge`, everything but
    /// the connection kept, and nobody is told (the session goes on). Only from where
    /// `old` says it is: of two resumptions racing for it, the second gets `None`.
    pub async fn move_session(
        &self,
        old: &SessionRecord,
        edge: &str,
        conn: u64,
    ) -> Result<Option<SessionRecord>, StorageError> {
        let from = (old.edge.as_str(), old.conn);
        self.registry.relocate(&old.jid, from, (edge, conn)).await
    }

    /// A session that went on without a new initial presence gets what was stored for
    /// it meanwhile, if it is available: one bound again after the registry lost its
    /// data, or (XEP-0198) one whose edge died, resumed on another edge (a delivery to a
    /// dead edge fails, and a message is stored then).
    pub async fn catch_up_session(&self, record: &SessionRecord) {
        if record.priority().is_some_and(|p| p >= 0) {
            self.flush_offline(&Recipient::of(record)).await;
        }
    }

    /// Binds a session again after the registry lost its data, with the presence it had
    /// broadcast, if any: it is available again without a word to its contacts (they
    /// were never told it left), and gets what was stored for it meanwhile. A presence
    /// that is not an available one from this session is not restored.
    pub async fn rebind(
        &self,
        mut record: SessionRecord,
        presence: Element,
    ) -> Result<(), StanzaCondition> {
        record.presence = crate::presence::restored(&record.jid, presence);
        self.bind(record.clone()).await?;
        self.catch_up_session(&record).await;
        Ok(())
    }

    /// The session's connection ended (gracefully or not).
    pub async fn unbind(&self, jid: &Jid, conn: u64) {
        match self.registry.unbind(jid, conn).await {
            Ok(Some(record)) => self.session_ended(record).await,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, %jid, "session registry unbind failed"),
        }
    }

    /// Removes the sessions of `edge` that it does not hold (see
    /// [`SessionRegistry::reconcile`]), with the unavailable presence each one's end
    /// implies; returns how many.
    pub async fn reconcile(&self, edge: &str, held: &[(Jid, u64)]) -> Result<usize, StorageError> {
        let removed = self.registry.reconcile(edge, held).await?;
        let count = removed.len();
        if count > 0 {
            tracing::warn!(
                edge,
                sessions = count,
                "removed sessions an edge no longer holds (lost unbinds)"
            );
            metrics::ROUTER_SESSIONS_RECONCILED.inc_by(count as u64);
        }
        for record in removed {
            self.session_ended(record).await;
        }
        Ok(count)
    }

    /// A session is gone from the registry (unbound, replaced, or reaped with its dead
    /// edge): RFC 6121 §4.5.2, the server never relies on the client's unavailable.
    pub async fn session_ended(&self, record: SessionRecord) {
        if record.presence.is_some() {
            let effects = crate::presence::unavailable(self, record, None).await;
            self.apply(effects).await;
        }
    }

    /// Routes one stanza from a session (its `from` already stamped by the edge): the
    /// table's handler decides, the executor acts; returns once every effect is done.
    pub async fn route(&self, stanza: Stanza) {
        let _timer = metrics::ROUTER_ROUTE_DURATION.start_timer();
        metrics::ROUTER_STANZAS_BY_KIND.inc(stanza.kind.as_str());
        let target = self.target(&stanza);
        let effects = crate::table::decide(self, &stanza, target).await;
        self.apply(effects).await;
    }

    /// XEP-0357: a message reached `jid`'s session while it was detached (XEP-0198): the
    /// account's push registrations are notified as for a stored message.
    pub async fn notify_detached(&self, jid: &Jid, message: &Stanza) {
        let addressed = message.effective_to().bare() == jid.bare();
        if message.kind == switchyard_core::StanzaKind::Message && addressed {
            let effects = crate::hooks::message_stored(self, &jid.bare(), message).await;
            self.apply(effects).await;
        }
    }

    /// Sessions of an account (the admin API's view).
    pub async fn sessions_of(&self, bare: &Jid) -> Result<Sessions, StorageError> {
        self.registry.sessions(bare).await
    }

    /// Ends one session's stream with `policy-violation` (an administrator's kick);
    /// `false` when no such session is bound.
    pub async fn kick(&self, full: &Jid) -> Result<bool, StorageError> {
        let sessions = self.registry.sessions(&full.bare()).await?;
        let Some(s) = sessions.iter().find(|s| s.jid == *full) else {
            return Ok(false);
        };
        tracing::info!(jid = %full, conn = s.conn, "session kicked by an administrator");
        self.edges
            .terminate(&s.edge, s.conn, StreamCondition::PolicyViolation)
            .await;
        Ok(true)
    }

    /// Whether `jid` is in a domain this server serves.
    pub fn is_local(&self, jid: &Jid) -> bool {
        self.config.domains.iter().any(|d| d == jid.domain())
    }

    /// The server itself: a bare domain JID that is served here.
    pub(crate) fn is_server(&self, jid: &Jid) -> bool {
        jid.local().is_none() && jid.is_bare() && self.is_local(jid)
    }

    /// Sessions of a local account; a registry failure is logged and reads as none.
    pub(crate) async fn sessions(&self, bare: &Jid) -> Sessions {
        self.registry.sessions(bare).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "session registry lookup failed");
            Sessions::default()
        })
    }

    /// An account's sessions read from the registry itself, not from this router's cache:
    /// for a decision that races another router's write (a presence recorded there
    /// reaches this cache a little later). Either this read sees that write, or the other
    /// router's read after its write sees what this router wrote before reading.
    pub async fn fresh_sessions(&self, bare: &Jid) -> Sessions {
        self.registry.forget(bare);
        self.sessions(bare).await
    }

    /// Sessions and offline-pending count of a local account, for routing a message; a
    /// registry failure is logged and reads as none.
    pub(crate) async fn lookup(&self, bare: &Jid) -> Lookup {
        self.registry.lookup(bare).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "session registry lookup failed");
            Lookup::default()
        })
    }

    /// Whether a local account exists; storage trouble is reported to the caller.
    pub(crate) async fn account_exists(&self, bare: &Jid) -> Result<bool, StorageError> {
        Ok(self.stores.accounts.credentials(bare).await?.is_some())
    }

    /// The session of a full JID, if it is connected.
    pub(crate) async fn session(&self, jid: &Jid) -> Option<SessionRecord> {
        self.sessions(&jid.bare())
            .await
            .iter()
            .find(|s| s.jid == *jid)
            .cloned()
    }

    /// Whether `jid` is at an XEP-0114 component's domain.
    pub fn is_component(&self, jid: &Jid) -> bool {
        self.config.components.iter().any(|d| d == jid.domain())
    }

    /// Who a stanza is addressed to, as the table keys it.
    fn target(&self, stanza: &Stanza) -> Target {
        let to = stanza.effective_to();
        if self.is_component(&to) {
            Target::Component
        } else if !self.is_local(&to) {
            Target::Remote
        } else if self.is_server(&to) {
            Target::Server
        } else if to == stanza.from.bare() {
            Target::Own
        } else if to.is_bare() {
            Target::Other
        } else {
            Target::Resource
        }
    }
}
