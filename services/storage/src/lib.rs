//! Storage for Switchyard behind narrow per-data traits.
//!
//! Each trait has one conformance suite ([`conformance`]) that every backend must pass:
//! memory (tests, embedded registry) and SQLite (the embedded single-node default).

pub mod conformance;
mod error;
mod memory;
mod sqlite;
mod traits;

pub use error::StorageError;
pub use memory::{MemoryAccounts, MemoryRegistry};
pub use sqlite::SqliteAccounts;
pub use traits::{AccountStore, SessionRecord, SessionRegistry};
