//! In-memory backends: the embedded session registry and a test store for every data trait.

use crate::traits::{
    fits, AccountStore, BlockStore, DocumentQuota, DocumentStore, Lookup, OfflineQuota,
    OfflineStore, Online, OnlinePage, RosterStore, SessionEdit, SessionRecord, SessionRegistry,
    Sessions,
};
use crate::{Roster, RosterEdit, RosterItem, RosterUpdate, StorageError};
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::Jid;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Everything stored for one account.
#[derive(Debug)]
struct Account {
    creds: StoredCredentials,
    roster_version: u64,
    roster: BTreeMap<Jid, RosterItem>,
    offline: VecDeque<String>,
    /// The bytes of `offline`, kept so the byte quota costs nothing to check.
    offline_bytes: usize,
    blocked: BTreeSet<Jid>,
    documents: HashMap<String, String>,
}

/// Every data trait in one map. As with every backend, reads of an account that does not
/// exist find nothing and writes fail with [`StorageError::NotFound`].
#[derive(Debug, Default)]
pub struct MemoryStore {
    accounts: Mutex<BTreeMap<Jid, Account>>,
}

impl MemoryStore {
    fn with<T>(&self, account: &Jid, f: impl FnOnce(&mut Account) -> T) -> Result<T, StorageError> {
        let mut map = lock(&self.accounts);
        map.get_mut(account).map(f).ok_or(StorageError::NotFound)
    }

    fn read<T: Default>(
        &self,
        account: &Jid,
        f: impl FnOnce(&Account) -> T,
    ) -> Result<T, StorageError> {
        Ok(lock(&self.accounts).get(account).map(f).unwrap_or_default())
    }
}

#[async_trait]
impl AccountStore for MemoryStore {
    async fn create(&self, account: &Jid, creds: &StoredCredentials) -> Result<(), StorageError> {
        let mut map = lock(&self.accounts);
        if map.contains_key(account) {
            return Err(StorageError::AlreadyExists);
        }
        let fresh = Account {
            creds: creds.clone(),
            roster_version: 0,
            roster: BTreeMap::new(),
            offline: VecDeque::new(),
            offline_bytes: 0,
            blocked: BTreeSet::new(),
            documents: HashMap::new(),
        };
        map.insert(account.clone(), fresh);
        Ok(())
    }

    async fn set_credentials(
        &self,
        account: &Jid,
        creds: &StoredCredentials,
    ) -> Result<(), StorageError> {
        self.with(account, |a| a.creds = creds.clone())
    }

    async fn credentials(&self, account: &Jid) -> Result<Option<StoredCredentials>, StorageError> {
        Ok(lock(&self.accounts).get(account).map(|a| a.creds.clone()))
    }

    async fn remove(&self, account: &Jid) -> Result<bool, StorageError> {
        Ok(lock(&self.accounts).remove(account).is_some())
    }

    async fn list(&self) -> Result<Vec<Jid>, StorageError> {
        Ok(lock(&self.accounts).keys().cloned().collect())
    }
}

#[async_trait]
impl RosterStore for MemoryStore {
    async fn roster(&self, account: &Jid) -> Result<Roster, StorageError> {
        self.read(account, |a| Roster {
            version: a.roster_version,
            items: a.roster.values().cloned().collect(),
        })
    }

    async fn item(&self, account: &Jid, contact: &Jid) -> Result<Option<RosterItem>, StorageError> {
        self.read(account, |a| a.roster.get(contact).cloned())
    }

    async fn update(
        &self,
        account: &Jid,
        contact: &Jid,
        edit: RosterEdit,
    ) -> Result<RosterUpdate, StorageError> {
        self.with(account, |a| {
            let before = a.roster.get(contact).cloned();
            let after = edit(before.clone()).map(|mut row| {
                a.roster_version += 1;
                row.jid = contact.clone();
                row.version = a.roster_version;
                a.roster.insert(contact.clone(), row.clone());
                row
            });
            RosterUpdate { before, after }
        })
    }
}

#[async_trait]
impl OfflineStore for MemoryStore {
    async fn push_within(
        &self,
        account: &Jid,
        stanza: &str,
        quota: OfflineQuota,
    ) -> Result<(), StorageError> {
        self.with(account, |a| {
            let held = (a.offline.len(), a.offline_bytes);
            if !fits(held, stanza.len(), (quota.messages, quota.bytes)) {
                return Err(StorageError::QuotaExceeded);
            }
            a.offline.push_back(stanza.to_owned());
            a.offline_bytes += stanza.len();
            Ok(())
        })?
    }

    async fn take(&self, account: &Jid) -> Result<Vec<String>, StorageError> {
        let mut map = lock(&self.accounts);
        Ok(map
            .get_mut(account)
            .map(|a| {
                a.offline_bytes = 0;
                a.offline.drain(..).collect()
            })
            .unwrap_or_default())
    }

    async fn held(&self, account: &Jid) -> Result<Vec<String>, StorageError> {
        self.read(account, |a| a.offline.iter().cloned().collect())
    }
}

#[async_trait]
impl BlockStore for MemoryStore {
    async fn blocked(&self, account: &Jid) -> Result<Vec<Jid>, StorageError> {
        self.read(account, |a| a.blocked.iter().cloned().collect())
    }

    async fn block(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError> {
        self.with(account, |a| a.blocked.extend(jids.iter().cloned()))
    }

    async fn unblock(&self, account: &Jid, jids: &[Jid]) -> Result<(), StorageError> {
        self.with(account, |a| {
            if jids.is_empty() {
                a.blocked.clear();
            }
            for j in jids {
                a.blocked.remove(j);
            }
        })
    }
}

#[async_trait]
impl DocumentStore for MemoryStore {
    async fn get(&self, account: &Jid, key: &str) -> Result<Option<String>, StorageError> {
        self.read(account, |a| a.documents.get(key).cloned())
    }

    async fn family(
        &self,
        account: &Jid,
        family: &str,
    ) -> Result<Vec<(String, String)>, StorageError> {
        self.read(account, |a| {
            let mut found: Vec<(String, String)> = a
                .documents
                .iter()
                .filter(|(k, _)| k.starts_with(family))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            found.sort();
            found
        })
    }

    async fn put(&self, account: &Jid, key: &str, value: Option<&str>) -> Result<(), StorageError> {
        self.with(account, |a| match value {
            Some(v) => {
                a.documents.insert(key.to_owned(), v.to_owned());
            }
            None => {
                a.documents.remove(key);
            }
        })
    }

    async fn put_within(
        &self,
        account: &Jid,
        family: &str,
        key: &str,
        value: &str,
        quota: DocumentQuota,
    ) -> Result<(), StorageError> {
        self.with(account, |a| {
            let others = a
                .documents
                .iter()
                .filter(|(k, _)| k.starts_with(family) && k.as_str() != key);
            let held = others.fold((0, 0), |(n, b), (k, v)| (n + 1, b + k.len() + v.len()));
            if !fits(held, key.len() + value.len(), (quota.keys, quota.bytes)) {
                return Err(StorageError::QuotaExceeded);
            }
            a.documents.insert(key.to_owned(), value.to_owned());
            Ok(())
        })?
    }
}

/// Sessions by bare JID, edge liveness deadlines, offline-pending counts and flush locks.
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    sessions: Mutex<HashMap<Jid, Sessions>>,
    alive: Mutex<HashMap<String, Instant>>,
    /// Non-zero counts only: a cleared count is removed.
    pending: Mutex<HashMap<Jid, u64>>,
    /// Holder and deadline of each account's flush lock.
    flushers: Mutex<HashMap<Jid, (String, Instant)>>,
}

#[async_trait]
impl SessionRegistry for MemoryRegistry {
    async fn bind(&self, record: SessionRecord) -> Result<Option<SessionRecord>, StorageError> {
        let mut map = lock(&self.sessions);
        let list = Arc::make_mut(map.entry(record.jid.bare()).or_default());
        let replaced = list
            .iter()
            .position(|r| r.jid == record.jid)
            .map(|at| list.swap_remove(at))
            .filter(|old| !old.same_connection(&record));
        list.push(record);
        Ok(replaced)
    }

    async fn unbind(&self, jid: &Jid, conn: u64) -> Result<Option<SessionRecord>, StorageError> {
        let mut map = lock(&self.sessions);
        let bare = jid.bare();
        let Some(list) = map.get_mut(&bare) else {
            return Ok(None);
        };
        // Found first: a list a reader still holds is copied only when it changes.
        let Some(at) = list.iter().position(|r| r.jid == *jid && r.conn == conn) else {
            return Ok(None);
        };
        let removed = Arc::make_mut(list).swap_remove(at);
        if list.is_empty() {
            map.remove(&bare);
        }
        Ok(Some(removed))
    }

    async fn update(
        &self,
        jid: &Jid,
        conn: u64,
        edit: SessionEdit,
    ) -> Result<Option<SessionRecord>, StorageError> {
        let mut map = lock(&self.sessions);
        let Some(list) = map.get_mut(&jid.bare()) else {
            return Ok(None);
        };
        let Some(at) = list.iter().position(|r| r.jid == *jid && r.conn == conn) else {
            return Ok(None);
        };
        let record = &mut Arc::make_mut(list)[at];
        edit(record);
        Ok(Some(record.clone()))
    }

    async fn relocate(
        &self,
        jid: &Jid,
        from: (&str, u64),
        to: (&str, u64),
    ) -> Result<Option<SessionRecord>, StorageError> {
        let mut map = lock(&self.sessions);
        let Some(list) = map.get_mut(&jid.bare()) else {
            return Ok(None);
        };
        let Some(at) = list
            .iter()
            .position(|r| r.jid == *jid && (r.edge.as_str(), r.conn) == from)
        else {
            return Ok(None);
        };
        let record = &mut Arc::make_mut(list)[at];
        (record.edge, record.conn) = (to.0.to_owned(), to.1);
        Ok(Some(record.clone()))
    }

    async fn sessions(&self, bare: &Jid) -> Result<Sessions, StorageError> {
        Ok(lock(&self.sessions).get(bare).cloned().unwrap_or_default())
    }

    async fn lookup(&self, bare: &Jid) -> Result<Lookup, StorageError> {
        let sessions = self.sessions(bare).await?;
        let pending = self.pending(bare).await?;
        Ok(Lookup { sessions, pending })
    }

    async fn pending(&self, bare: &Jid) -> Result<u64, StorageError> {
        Ok(lock(&self.pending).get(bare).copied().unwrap_or(0))
    }

    async fn add_pending(&self, bare: &Jid) -> Result<u64, StorageError> {
        let mut pending = lock(&self.pending);
        let count = pending.entry(bare.clone()).or_default();
        *count += 1;
        Ok(*count)
    }

    async fn clear_pending(&self, bare: &Jid, seen: u64) -> Result<bool, StorageError> {
        let mut pending = lock(&self.pending);
        if pending.get(bare).copied().unwrap_or(0) != seen {
            return Ok(false);
        }
        pending.remove(bare);
        Ok(true)
    }

    async fn lock_flush(
        &self,
        bare: &Jid,
        holder: &str,
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        let mut flushers = lock(&self.flushers);
        let now = Instant::now();
        let free = flushers
            .get(bare)
            .is_none_or(|(by, until)| by == holder || *until <= now);
        if free {
            flushers.insert(bare.clone(), (holder.to_owned(), now + ttl));
        }
        Ok(free)
    }

    async fn unlock_flush(&self, bare: &Jid, holder: &str) -> Result<(), StorageError> {
        let mut flushers = lock(&self.flushers);
        if flushers.get(bare).is_some_and(|(by, _)| by == holder) {
            flushers.remove(bare);
        }
        Ok(())
    }

    async fn epoch(&self) -> Result<String, StorageError> {
        Ok("memory".into()) // lives and dies with the process
    }

    async fn heartbeat(&self, edge: &str, ttl: Duration) -> Result<(), StorageError> {
        lock(&self.alive).insert(edge.to_owned(), Instant::now() + ttl);
        Ok(())
    }

    async fn dead_edges(&self) -> Result<Vec<String>, StorageError> {
        let alive = lock(&self.alive);
        let live = |edge: &str| alive.get(edge).is_some_and(|until| *until > Instant::now());
        let mut dead: Vec<String> = lock(&self.sessions)
            .values()
            .flat_map(|list| list.iter())
            .filter(|r| !live(&r.edge))
            .map(|r| r.edge.clone())
            .collect();
        dead.sort();
        dead.dedup();
        Ok(dead)
    }

    async fn reap(&self, edge: &str) -> Result<Vec<SessionRecord>, StorageError> {
        Ok(remove_where(&mut lock(&self.sessions), |r| r.edge == edge))
    }

    /// Pages in full-JID order; the cursor is `m:` and the last full JID listed.
    async fn online(
        &self,
        domain: Option<&str>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<OnlinePage, StorageError> {
        let after = match cursor {
            None => "",
            Some(c) => c
                .strip_prefix("m:")
                .ok_or_else(|| StorageError::Invalid("not a session cursor".into()))?,
        };
        let map = lock(&self.sessions);
        let mut found: Vec<(String, &SessionRecord)> = map
            .iter()
            .filter(|(bare, _)| domain.is_none_or(|d| bare.domain() == d))
            .flat_map(|(_, list)| list.iter())
            .map(|r| (r.jid.to_string(), r))
            .filter(|(jid, _)| jid.as_str() > after)
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        let more = found.len() > limit;
        found.truncate(limit);
        let next = more
            .then(|| found.last().map(|(jid, _)| format!("m:{jid}")))
            .flatten();
        let sessions = found
            .into_iter()
            .map(|(_, r)| Online {
                jid: r.jid.clone(),
                edge: r.edge.clone(),
                conn: r.conn,
            })
            .collect();
        Ok(OnlinePage { sessions, next })
    }

    async fn online_count(&self) -> Result<u64, StorageError> {
        Ok(lock(&self.sessions).values().map(|l| l.len() as u64).sum())
    }

    async fn reconcile(
        &self,
        edge: &str,
        held: &[(Jid, u64)],
    ) -> Result<Vec<SessionRecord>, StorageError> {
        let held: HashSet<(&Jid, u64)> = held.iter().map(|(jid, conn)| (jid, *conn)).collect();
        Ok(remove_where(&mut lock(&self.sessions), |r| {
            r.edge == edge && !held.contains(&(&r.jid, r.conn))
        }))
    }
}

/// Removes the records `gone` picks from every account and returns them; an account's
/// list with none of them is left as it is (not copied).
fn remove_where(
    map: &mut HashMap<Jid, Sessions>,
    gone: impl Fn(&SessionRecord) -> bool,
) -> Vec<SessionRecord> {
    let mut removed = Vec::new();
    for list in map.values_mut() {
        if !list.iter().any(&gone) {
            continue;
        }
        let (out, kept): (Vec<_>, Vec<_>) = Arc::unwrap_or_clone(std::mem::take(list))
            .into_iter()
            .partition(&gone);
        *list = Arc::new(kept);
        removed.extend(out);
    }
    map.retain(|_, list| !list.is_empty());
    removed
}
