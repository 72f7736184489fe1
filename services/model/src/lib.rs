//! The plain values and narrow contracts the edge shares with the router and storage,
//! with no database client behind them: the edge depends on this crate, never on
//! `switchyard-storage` (which re-exports everything here under the same names).
//!
//! - [`SessionRecord`] and its [`Presence`]: what the edge registers at bind;
//! - the IM data the stores hold as values ([`Roster`], [`RosterItem`], [`Subscription`]);
//! - [`LoginFailures`] and its counts, shared by every edge's login throttle, with
//!   [`MemoryLoginFailures`], the in-process table (all-in-one mode, tests);
//! - [`StorageError`], what a store or the router link answers when it cannot.

mod error;
mod im;
mod login_failures;
mod memory_failures;
mod session;

pub use error::StorageError;
pub use im::{Presence, Roster, RosterEdit, RosterItem, RosterUpdate, Subscription};
pub use login_failures::{FailureCount, LoginFailureCounts, LoginFailures};
pub use memory_failures::MemoryLoginFailures;
pub use session::SessionRecord;
