//! XEP-0484 FAST tokens, the holder's side: issued, checked, rotated, listed and revoked
//! where the account's data is, so every edge sees the same tokens.
//!
//! - §5.1 storage: one document per client of an account (`fast:` + the XEP-0388
//!   user-agent id) with two slots, `new` (issued, not yet used) and `current` (used).
//!   A slot keeps the mechanism, the token's hash (never the token, see
//!   `switchyard_core::sasl::fast`), its expiry and when it was issued.
//! - §3.4 a token is accepted only for the mechanism and client it was issued to, before
//!   its expiry; the HMAC is compared in constant time (§6). `new` is tried first: used,
//!   it becomes `current` and the older token is gone (§3.5 "invalidate all tokens issued
//!   to the same client with an earlier expiry").
//! - §3.5 rotation: a token older than `fast_rotate_after` is reported due, and the
//!   session asks for a new one in the same `<success/>`; the old one stays valid until
//!   the new one is used. Issuing replaces a `new` token never used.
//! - §3.6 a token used with `invalidate` is deleted with its client's document.
//! - Bounds: at most [`MAX_CLIENTS`] clients per account; issuing past it first drops
//!   expired clients, then the one whose token expires soonest.
//! - Changing the password or deleting the account revokes every token (callers use
//!   [`FastTokens::revoke`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use switchyard_core::sasl::fast::{IssuedToken, TokenCheck, TokenKey, TokenRequest, TokenVerdict};
use switchyard_core::sasl::Mechanism;
use switchyard_core::Jid;
use switchyard_storage::{DocumentQuota, DocumentStore, StorageError};

/// Clients (user-agent ids) holding tokens, per account.
pub const MAX_CLIENTS: usize = 64;
/// The documents' family.
const FAMILY: &str = "fast:";
/// Bytes of one client's document at most: two slots of about 130 bytes, a label of up
/// to 64 characters (256 bytes), and its key.
const CLIENT_BYTES: usize = 600;

/// How long tokens live and when they are rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastPolicy {
    pub ttl: Duration,
    pub rotate_after: Duration,
}

impl Default for FastPolicy {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(14 * 86_400),
            rotate_after: Duration::from_secs(86_400),
        }
    }
}

/// A client's tokens as an operator sees them (no secret in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTokens {
    pub user_agent: String,
    /// What the client calls itself (XEP-0388 software and device).
    pub label: String,
    pub mechanism: String,
    /// Unix seconds of the latest expiry among its tokens.
    pub expires: u64,
    /// Unix seconds the newest token was issued.
    pub issued: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Slot {
    mechanism: Mechanism,
    key: [u8; 32],
    expires: u64,
    issued: u64,
}

/// `new` then `current`, as stored, and the client's label.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Client {
    new: Option<Slot>,
    current: Option<Slot>,
    label: String,
}

/// The token store over an account's documents.
#[derive(Debug, Clone)]
pub struct FastTokens<'a> {
    pub documents: &'a dyn DocumentStore,
    pub policy: FastPolicy,
}

impl FastTokens<'_> {
    /// Checks a token presented (see the module doc); a wrong, unknown, expired or
    /// foreign token is `responder: None`, whatever the reason.
    pub async fn verify(&self, check: &TokenCheck) -> Result<TokenVerdict, StorageError> {
        let key = doc_key(&check.user_agent);
        let Some(mut client) = self.load(&check.account, &key).await? else {
            return Ok(TokenVerdict::default());
        };
        let now = unix(SystemTime::now());
        let fits = |s: &Slot| {
            s.mechanism == check.mechanism
                && s.expires > now
                && TokenKey(s.key).matches(&check.hashed, &check.cb_data)
        };
        let new = client.new.clone().filter(fits);
        let current = client.current.clone().filter(fits);
        let (slot, promoted) = match (new, current) {
            (Some(s), _) => (s, true),
            (None, Some(s)) => (s, false),
            (None, None) => return Ok(TokenVerdict::default()),
        };
        if check.invalidate {
            self.documents.put(&check.account, &key, None).await?;
        } else if promoted {
            client.new = None;
            client.current = Some(slot.clone());
            self.save(&check.account, &key, &client).await?;
        }
        let rotate = now.saturating_sub(slot.issued) >= self.policy.rotate_after.as_secs();
        Ok(TokenVerdict {
            responder: Some(TokenKey(slot.key).responder(&check.cb_data)),
            rotate: rotate && !check.invalidate,
        })
    }

    /// Issues the token asked for (§3.3); the token in use stays valid until this one
    /// is used.
    pub async fn issue(&self, request: &TokenRequest) -> Result<IssuedToken, StorageError> {
        let (account, mechanism) = (&request.account, request.mechanism);
        // A banned account gets none (a SASL2 login without Bind 2 succeeds before the
        // bind that would be refused).
        if self
            .documents
            .get(account, crate::admin::BAN_KEY)
            .await?
            .is_some()
        {
            return Err(StorageError::Invalid("the account is banned".into()));
        }
        let key = doc_key(&request.user_agent);
        let now = SystemTime::now();
        let expiry = now + self.policy.ttl;
        let (token, token_key) = TokenKey::generate();
        let mut client = self.load(account, &key).await?.unwrap_or_default();
        client.current = client.current.filter(|s| s.expires > unix(now));
        client.label.clone_from(&request.label);
        client.new = Some(Slot {
            mechanism,
            key: token_key.0,
            expires: unix(expiry),
            issued: unix(now),
        });
        // Logins of the same account at once may take the room made for this one: each
        // retry makes room again (bounded).
        let mut tries = 0;
        loop {
            match self.save(account, &key, &client).await {
                Err(StorageError::QuotaExceeded) if tries < MAX_CLIENTS => {
                    tries += 1;
                    self.make_room(account).await?;
                }
                other => break other?,
            }
        }
        Ok(IssuedToken { token, expiry })
    }

    /// The clients holding tokens that have not expired, soonest expiry first.
    pub async fn list(&self, account: &Jid) -> Result<Vec<ClientTokens>, StorageError> {
        let now = unix(SystemTime::now());
        let mut clients = self.all_clients(account).await?;
        clients.retain(|c| c.expires > now);
        Ok(clients)
    }

    /// Every client document, expired ones too, soonest expiry first.
    async fn all_clients(&self, account: &Jid) -> Result<Vec<ClientTokens>, StorageError> {
        let docs = self.documents.family(account, FAMILY).await?;
        let mut clients: Vec<ClientTokens> = docs
            .iter()
            .filter_map(|(k, v)| {
                let client = parse(v)?;
                let newest = client.new.as_ref().or(client.current.as_ref())?;
                let slots = [&client.new, &client.current];
                Some(ClientTokens {
                    user_agent: k.strip_prefix(FAMILY)?.to_owned(),
                    label: client.label.clone(),
                    mechanism: newest.mechanism.name().to_owned(),
                    expires: slots
                        .iter()
                        .flat_map(|s| s.as_ref())
                        .map(|s| s.expires)
                        .max()?,
                    issued: newest.issued,
                })
            })
            .collect();
        clients.sort_by_key(|c| c.expires);
        Ok(clients)
    }

    /// Revokes one client's tokens, or all of the account's; how many clients lost some.
    pub async fn revoke(
        &self,
        account: &Jid,
        user_agent: Option<&str>,
    ) -> Result<usize, StorageError> {
        let docs = self.documents.family(account, FAMILY).await?;
        let mut revoked = 0;
        for (key, _) in docs {
            if user_agent.is_none_or(|ua| key == doc_key(ua)) {
                self.documents.put(account, &key, None).await?;
                revoked += 1;
            }
        }
        Ok(revoked)
    }

    /// Drops expired clients, or else the one expiring soonest.
    async fn make_room(&self, account: &Jid) -> Result<(), StorageError> {
        let now = unix(SystemTime::now());
        let clients = self.all_clients(account).await?;
        let expired: Vec<&ClientTokens> = clients.iter().filter(|c| c.expires <= now).collect();
        let drop = if expired.is_empty() {
            clients.first().into_iter().collect()
        } else {
            expired
        };
        for client in drop {
            let key = doc_key(&client.user_agent);
            self.documents.put(account, &key, None).await?;
        }
        Ok(())
    }

    async fn load(&self, account: &Jid, key: &str) -> Result<Option<Client>, StorageError> {
        let doc = self.documents.get(account, key).await?;
        Ok(doc.as_deref().and_then(parse))
    }

    async fn save(&self, account: &Jid, key: &str, client: &Client) -> Result<(), StorageError> {
        let quota = DocumentQuota {
            keys: MAX_CLIENTS,
            bytes: MAX_CLIENTS * CLIENT_BYTES,
        };
        let doc = format(client);
        self.documents
            .put_within(account, FAMILY, key, &doc, quota)
            .await
    }
}

fn doc_key(user_agent: &str) -> String {
    format!("{FAMILY}{user_agent}")
}

fn unix(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// One line per slot, `new|current mechanism key-hex expires issued`, then `label TEXT`
/// (a label has no control characters, so no line break).
fn format(client: &Client) -> String {
    let slots = [("new", &client.new), ("current", &client.current)];
    let lines = slots.iter().filter_map(|(name, slot)| {
        let s = slot.as_ref()?;
        let hex: String = s.key.iter().map(|b| format!("{b:02x}")).collect();
        Some(format!(
            "{name} {} {hex} {} {}",
            s.mechanism.name(),
            s.expires,
            s.issued
        ))
    });
    let label = std::iter::once(format!("label {}", client.label));
    lines.chain(label).collect::<Vec<_>>().join("\n")
}

/// What `format` wrote; a document that does not parse holds no token.
fn parse(doc: &str) -> Option<Client> {
    let mut client = Client::default();
    for line in doc.lines() {
        if let Some(label) = line.strip_prefix("label ") {
            client.label = label.to_owned();
            continue;
        }
        let mut parts = line.split(' ');
        let (Some(name), Some(mech), Some(hex), Some(expires), Some(issued), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if hex.len() != 64 {
            return None;
        }
        let key = (0..32)
            .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let slot = Slot {
            mechanism: Mechanism::from_name(mech).filter(|m| m.is_token())?,
            key: key.try_into().ok()?,
            expires: expires.parse().ok()?,
            issued: issued.parse().ok()?,
        };
        match name {
            "new" => client.new = Some(slot),
            "current" => client.current = Some(slot),
            _ => return None,
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests;
