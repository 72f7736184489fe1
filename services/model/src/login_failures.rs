//! The login throttle's shared counts: the [`LoginFailures`] contract every edge reaches
//! (through its router link) and every backend implements, and the counts it answers.

use crate::StorageError;
use async_trait::async_trait;
use std::time::Duration;
use switchyard_core::Jid;

/// Failed logins, counted per account and client network and per network alone, shared
/// by every edge so that spreading attempts over edges gains nothing. The login throttle
/// (`services/edge/src/throttle.rs`) decides what the counts mean.
///
/// A network is the client's address as text, grouped the way one party usually holds
/// addresses: an IPv4 address (`192.0.2.7`) or an IPv6 /64 (`2001:db8:1:2::/64`). Each
/// count is forgotten `window` after the last failure it counted.
#[async_trait]
pub trait LoginFailures: Send + Sync + std::fmt::Debug {
    /// The failures of `account` from `network`, and of `network` for every account.
    async fn failures(
        &self,
        account: &Jid,
        network: &str,
    ) -> Result<LoginFailureCounts, StorageError>;
    /// Counts one failure of `account` from `network` (so one of `network` too), each
    /// count then lasting `window`; returns the counts with it.
    async fn record(
        &self,
        account: &Jid,
        network: &str,
        window: Duration,
    ) -> Result<LoginFailureCounts, StorageError>;
    /// Forgets the failures of `account` from `network` (it logged in from there); the
    /// network's own count stays.
    async fn clear(&self, account: &Jid, network: &str) -> Result<(), StorageError>;
}

/// One failure count and how long it lasts unless another failure renews it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCount {
    pub failures: u32,
    /// Zero when there are no failures.
    pub expires_in: Duration,
}

/// What [`LoginFailures`] knows about one login attempt's account and network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginFailureCounts {
    /// Failures of this account from this network.
    pub account: FailureCount,
    /// Failures from this network, whatever the account.
    pub network: FailureCount,
}
