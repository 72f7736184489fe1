//! In-memory backends: the embedded session registry and a test account store.

use crate::{AccountStore, SessionRecord, SessionRegistry, StorageError};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use switchyard_core::sasl::StoredCredentials;
use switchyard_core::Jid;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Default)]
pub struct MemoryAccounts {
    accounts: Mutex<BTreeMap<Jid, StoredCredentials>>,
}

#[async_trait]
impl AccountStore for MemoryAccounts {
    async fn create(&self, account: &Jid, creds: &StoredCredentials) -> Result<(), StorageError> {
        let mut map = lock(&self.accounts);
        if map.contains_key(account) {
            return Err(StorageError::AlreadyExists);
        }
        map.insert(account.clone(), creds.clone());
        Ok(())
    }

    async fn set_credentials(
        &self,
        account: &Jid,
        creds: &StoredCredentials,
    ) -> Result<(), StorageError> {
        let mut map = lock(&self.accounts);
        let slot = map.get_mut(account).ok_or(StorageError::NotFound)?;
        *slot = creds.clone();
        Ok(())
    }

    async fn credentials(&self, account: &Jid) -> Result<Option<StoredCredentials>, StorageError> {
        Ok(lock(&self.accounts).get(account).cloned())
    }

    async fn remove(&self, account: &Jid) -> Result<bool, StorageError> {
        Ok(lock(&self.accounts).remove(account).is_some())
    }

    async fn list(&self) -> Result<Vec<Jid>, StorageError> {
        Ok(lock(&self.accounts).keys().cloned().collect())
    }
}

/// Sessions by bare JID, then by resource.
#[derive(Debug, Default)]
pub struct MemoryRegistry {
    sessions: Mutex<HashMap<Jid, Vec<SessionRecord>>>,
}

#[async_trait]
impl SessionRegistry for MemoryRegistry {
    async fn bind(&self, record: SessionRecord) -> Result<Option<SessionRecord>, StorageError> {
        let mut map = lock(&self.sessions);
        let list = map.entry(record.jid.bare()).or_default();
        let replaced = list
            .iter()
            .position(|r| r.jid == record.jid)
            .map(|at| list.swap_remove(at));
        list.push(record);
        Ok(replaced)
    }

    async fn unbind(&self, jid: &Jid, conn: u64) -> Result<bool, StorageError> {
        let mut map = lock(&self.sessions);
        let bare = jid.bare();
        let Some(list) = map.get_mut(&bare) else {
            return Ok(false);
        };
        let before = list.len();
        list.retain(|r| !(r.jid == *jid && r.conn == conn));
        let removed = list.len() != before;
        if list.is_empty() {
            map.remove(&bare);
        }
        Ok(removed)
    }

    async fn sessions(&self, bare: &Jid) -> Result<Vec<SessionRecord>, StorageError> {
        Ok(lock(&self.sessions).get(bare).cloned().unwrap_or_default())
    }
}
