//! What an administrator does to accounts and sessions (the admin API and CLI call these;
//! ejabberd's API is the reference for the list): bans, kicking every session of an
//! account, roster edits on a user's behalf, the offline store's count and purge, a
//! message from the server to one user, and an announcement to everyone online.
//!
//! - A ban is a document (`ban`) beside the account: [`Router::bind`] refuses a banned
//!   account's resources (`not-allowed`, RFC 6120 §7.6.2.2), so every way in (SASL,
//!   SASL2, FAST) ends there, and banning ends the sessions it has and revokes its FAST
//!   tokens. Unbanning removes the document; the password is unchanged.
//! - Roster edits go through the same limits as a client's roster set (RFC 6121 §2.3.3)
//!   and are pushed to the user's interested resources (§2.1.6). An administrator may
//!   also set the subscription state directly (provisioning, as ejabberd's
//!   `add_rosteritem` does); no presence stanza is exchanged for it.
//! - Messages come from the served domain's JID. One to a user is routed like any other
//!   (delivered, or stored offline); an announcement is a `headline` to each online
//!   session, which is never stored (RFC 6121 §5.2.2).

use crate::roster::{check_item, pushes};
use crate::router::Router;
use futures_util::StreamExt;
use switchyard_core::{ns, Element, Jid, Stanza, StanzaCondition, StanzaError, StreamCondition};
use switchyard_storage::{OnlinePage, RosterItem, StorageError, Subscription};

/// The account document that holds a ban (a [`Ban`] as JSON).
pub const BAN_KEY: &str = "ban";

/// Sessions an announcement is sent to at once.
const ANNOUNCE_CONCURRENCY: usize = 64;

/// Sessions read from the registry per page while announcing.
const ANNOUNCE_PAGE: usize = 500;

/// Why and since when an account is banned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Ban {
    pub reason: String,
    /// Seconds since the Unix epoch.
    pub since: u64,
}

/// A roster row as an administrator sets it.
#[derive(Debug, Clone)]
pub struct RosterEntry {
    pub contact: Jid,
    pub name: Option<String>,
    pub groups: Vec<String>,
    /// `None` keeps the row's state (none for a new row).
    pub subscription: Option<Subscription>,
}

impl Router {
    /// The account's ban, if it is banned.
    pub async fn ban_of(&self, account: &Jid) -> Result<Option<Ban>, StorageError> {
        let Some(text) = self.stores.documents.get(account, BAN_KEY).await? else {
            return Ok(None);
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StorageError::Unavailable(format!("unreadable ban record: {e}")))
    }

    /// Bans the account: no new session binds, its sessions end with `policy-violation`,
    /// its FAST tokens are revoked. Returns how many sessions ended.
    pub async fn ban(&self, account: &Jid, reason: &str) -> Result<usize, StorageError> {
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let ban = Ban {
            reason: reason.to_owned(),
            since,
        };
        let text = serde_json::to_string(&ban).expect("plain data serializes");
        self.stores
            .documents
            .put(account, BAN_KEY, Some(&text))
            .await?;
        self.fast_tokens().revoke(account, None).await?;
        let ended = self.kick_account(account).await?;
        tracing::info!(%account, reason, ended, "account banned");
        Ok(ended)
    }

    /// Lifts a ban; `false` when the account was not banned.
    pub async fn unban(&self, account: &Jid) -> Result<bool, StorageError> {
        if self.ban_of(account).await?.is_none() {
            return Ok(false);
        }
        self.stores.documents.put(account, BAN_KEY, None).await?;
        tracing::info!(%account, "account unbanned");
        Ok(true)
    }

    /// Ends every session of the account with `policy-violation`; returns how many.
    pub async fn kick_account(&self, account: &Jid) -> Result<usize, StorageError> {
        let sessions = self.registry.sessions(account).await?;
        for s in sessions.iter() {
            self.edges
                .terminate(&s.edge, s.conn, StreamCondition::PolicyViolation)
                .await;
        }
        Ok(sessions.len())
    }

    /// One page of the sessions bound anywhere in the cluster.
    pub async fn online(
        &self,
        domain: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<OnlinePage, StorageError> {
        self.registry.online(domain, cursor, limit).await
    }

    /// How many sessions are bound anywhere in the cluster.
    pub async fn online_count(&self) -> Result<u64, StorageError> {
        self.registry.online_count().await
    }

    /// The account's roster rows as its clients see them (listed rows only).
    pub async fn roster_of(&self, account: &Jid) -> Result<Vec<RosterItem>, StorageError> {
        let mut roster = self.stores.rosters.roster(account).await?;
        roster.items.retain(|i| i.listed);
        Ok(roster.items)
    }

    /// Adds or changes a row of the account's roster and pushes it to the account's
    /// interested resources.
    pub async fn roster_set(&self, account: &Jid, entry: RosterEntry) -> Result<(), StanzaError> {
        let refuse = |c, text: &str| StanzaError::new(c).with_text(text);
        check_item(entry.name.as_deref(), &entry.groups, &self.config)?;
        if entry.contact.bare() == *account || !entry.contact.is_bare() {
            return Err(refuse(
                StanzaCondition::NotAllowed,
                "a contact is another bare JID",
            ));
        }
        let failed = crate::handler::storage_failed("roster");
        let roster = self.stores.rosters.roster(account).await.map_err(&failed)?;
        let exists = roster.items.iter().any(|i| i.jid == entry.contact);
        if !exists && roster.items.len() >= self.config.max_roster_items {
            return Err(refuse(StanzaCondition::NotAllowed, "the roster is full"));
        }
        let contact = entry.contact.clone();
        let edit = Box::new(move |row: Option<RosterItem>| {
            let mut row = row.unwrap_or_else(|| RosterItem::new(entry.contact));
            row.name = entry.name;
            row.groups = entry.groups;
            if let Some(subscription) = entry.subscription {
                row.subscription = subscription;
            }
            row.listed = true;
            Some(row)
        });
        let update = self
            .stores
            .rosters
            .update(account, &contact, edit)
            .await
            .map_err(&failed)?;
        if let Some(after) = &update.after {
            self.apply(pushes(self, account, after).await).await;
        }
        Ok(())
    }

    /// Removes a row as the user's own roster remove does (RFC 6121 §2.5: subscriptions
    /// cancelled both ways, the removal pushed); `item-not-found` when it is not there.
    pub async fn roster_remove(&self, account: &Jid, contact: &Jid) -> Result<(), StanzaError> {
        let fx = crate::roster::remove(self, account, account, contact).await?;
        self.apply(fx.before).await;
        Ok(())
    }

    /// How many messages the account has stored offline, and their bytes.
    pub async fn offline_held(&self, account: &Jid) -> Result<(usize, usize), StorageError> {
        let held = self.stores.offline.held(account).await?;
        Ok((held.len(), held.iter().map(String::len).sum()))
    }

    /// Deletes the account's offline messages undelivered; returns how many.
    pub async fn offline_purge(&self, account: &Jid) -> Result<usize, StorageError> {
        let seen = self.registry.pending(account).await?;
        let purged = self.stores.offline.take(account).await?.len();
        // A message counted meanwhile keeps the count up; the next flush clears it.
        self.registry.clear_pending(account, seen).await?;
        tracing::info!(%account, purged, "offline messages purged by an administrator");
        Ok(purged)
    }

    /// Routes a message from the server (`from` must be a served domain) to `to`.
    pub async fn send_from_server(&self, message: Element) -> Result<(), StanzaError> {
        let stanza = Stanza::from_element(message)
            .ok_or_else(|| StanzaError::new(StanzaCondition::BadRequest))?;
        if !self.is_server(&stanza.from) {
            return Err(StanzaError::new(StanzaCondition::Forbidden));
        }
        self.route(stanza).await;
        Ok(())
    }

    /// Sends a `headline` from `domain`'s JID to every session online in `domain` (every
    /// served domain when `None`); returns how many sessions it was sent to.
    pub async fn announce(
        &self,
        domain: Option<&str>,
        subject: Option<&str>,
        body: &str,
    ) -> Result<usize, StorageError> {
        let mut cursor: Option<String> = None;
        let mut sent = 0;
        loop {
            let page = self
                .registry
                .online(domain, cursor.as_deref(), ANNOUNCE_PAGE)
                .await?;
            let to = page
                .sessions
                .iter()
                .filter(|s| s.jid.local().is_some() && self.is_local(&s.jid));
            let messages: Vec<Stanza> = to
                .map(|s| headline(&s.jid, subject, body))
                .collect::<Result<_, _>>()?;
            sent += messages.len();
            futures_util::stream::iter(messages)
                .for_each_concurrent(ANNOUNCE_CONCURRENCY, |m| self.route(m))
                .await;
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        tracing::info!(?domain, sent, "announcement sent");
        Ok(sent)
    }
}

/// A headline from the session's domain to one session.
fn headline(to: &Jid, subject: Option<&str>, body: &str) -> Result<Stanza, StorageError> {
    let mut el = Element::new("message", ns::CLIENT)
        .with_attr("type", "headline")
        .with_attr("from", to.domain())
        .with_attr("to", to.to_string());
    if let Some(subject) = subject {
        el.push_child(Element::new("subject", ns::CLIENT).with_text(subject));
    }
    el.push_child(Element::new("body", ns::CLIENT).with_text(body));
    Stanza::from_element(el).ok_or_else(|| StorageError::Invalid(format!("cannot address {to}")))
}
