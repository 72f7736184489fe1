//! Storage for Switchyard behind narrow per-data traits.
//!
//! Each trait has one conformance suite ([`conformance`]) that every backend must pass:
//! memory (tests, embedded registry), SQLite (the embedded single-node default) and
//! PostgreSQL (the cluster).
//! A durable backend implements every data trait on one type, so removing an account
//! removes everything stored for it in one place.

mod backend_error;
mod cache;
pub mod conformance;
mod instrumented;
mod memory;
mod postgres;
mod redis;
mod registry_cache;
mod sqlite;
#[cfg(test)]
mod test_tls;
mod traits;
mod ttl_cache;

use std::sync::Arc;

pub use cache::CachedBlocks;
pub use instrumented::Instrumented;
pub use memory::{MemoryRegistry, MemoryStore};
pub use postgres::{PgStore, PgTarget};
pub use redis::RedisRegistry;
pub use redis::{RedisLoginFailures, RedisServers};
pub use registry_cache::CachedRegistry;
pub use sqlite::SqliteStore;
pub use traits::{
    AccountStore, BlockStore, Change, DocumentQuota, DocumentStore, Lookup, OfflineQuota,
    OfflineStore, Online, OnlinePage, RosterStore, SessionEdit, SessionRegistry, Sessions,
};
// The I/O-free values and contracts, defined in `switchyard-model` so the edge can use
// them without a backend; re-exported here under the same names.
pub use switchyard_model::{
    FailureCount, LoginFailureCounts, LoginFailures, MemoryLoginFailures, Presence, Roster,
    RosterEdit, RosterItem, RosterUpdate, SessionRecord, StorageError, Subscription,
};

/// Every durable data trait, as implemented by one backend.
pub trait Backend: AccountStore + RosterStore + OfflineStore + BlockStore + DocumentStore {}
impl<T: AccountStore + RosterStore + OfflineStore + BlockStore + DocumentStore> Backend for T {}

/// The durable stores the router uses, each behind its own trait.
#[derive(Debug, Clone)]
pub struct Stores {
    pub accounts: Arc<dyn AccountStore>,
    pub rosters: Arc<dyn RosterStore>,
    pub offline: Arc<dyn OfflineStore>,
    pub blocks: Arc<dyn BlockStore>,
    pub documents: Arc<dyn DocumentStore>,
}

impl Stores {
    /// All stores served by one backend.
    pub fn of<B: Backend + 'static>(backend: Arc<B>) -> Self {
        Self {
            accounts: backend.clone(),
            rosters: backend.clone(),
            offline: backend.clone(),
            blocks: backend.clone(),
            documents: backend,
        }
    }
}
