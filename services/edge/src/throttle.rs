//! Login throttling (RFC 6120 §6.4.5 leaves the policy to the server): slow down first,
//! refuse only well past that, and only for the key that failed, so an attacker can
//! neither guess quickly nor lock an account's owner out.
//!
//! # Keys
//!
//! - **Account and network**: the account an attempt names, together with the client's
//!   network: its IPv4 address (/32), or its IPv6 /64 (what one subscriber or host
//!   usually holds: counting per /128 would let one machine rotate through 2^64
//!   addresses). IPv4-mapped IPv6 addresses count as IPv4.
//! - **Network**: every account's failures from one network, with a much higher cap, so
//!   one address cannot try millions of accounts.
//!
//! # Policy
//!
//! - After `n` failures on an account-and-network key, the next attempt on that key is
//!   answered no sooner than `delay_initial × 2^(n-1)` (at most `delay_max`) after the
//!   last failure: the driver waits out the rest before looking up credentials.
//! - Past `max_failures` the key's attempts are refused with `temporary-auth-failure`
//!   until `window` passes without a failure. Only that key: the owner logging in from
//!   another network is neither slowed nor refused, and neither is anyone else behind
//!   the attacker's address (a NAT).
//! - Past `max_failures_per_network` failures from a network, whatever the accounts, its
//!   attempts are refused the same way.
//! - What counts is a wrong password: `not-authorized` after the credentials were looked
//!   up. Attempts the throttle refused are never counted (a refused client neither
//!   renews its window nor fills the table); malformed exchanges, aborts and storage
//!   failures are not guesses and are not counted either. A success clears the
//!   account-and-network count.
//!
//! # Shared state
//!
//! The counts live behind the storage trait [`LoginFailures`], which the edge reaches
//! through its [`crate::RouterLink`] like everything else it needs stored: in the
//! all-in-one mode that is memory in the process (bounded, oldest counts evicted first);
//! in the cluster each call is a small RPC to a router, which keeps the counts in Redis,
//! so every edge sees the failures made through every other edge and spreading attempts
//! over edges behind the load balancer gains nothing. The policy stays here, in one
//! place; the router only stores counts for the calling link and validates what it is
//! given. This costs the cluster one RPC (two Redis reads) per attempt before the
//! credentials are fetched, one per failure and one per success that follows failures;
//! it was chosen over folding the check into the credentials call because the delay
//! must come before the lookup, and the rules should not be split between edge and
//! router. If the counts cannot be read or written (no router, Redis down) the attempt
//! goes ahead unthrottled, with a warning: the credential lookup fails then anyway.
//!
//! # Log line
//!
//! Every failed attempt is logged at `info` with target `switchyard::auth`, in one fixed
//! format that fail2ban and the like can match (README, Operations):
//!
//! ```text
//! login failed: address=203.0.113.7 account=alice@example.org mechanism=PLAIN reason=not-authorized failures=3
//! ```
//!
//! `account` is `-` when the attempt named none (a malformed exchange) and `failures`
//! (the account-and-network count after this failure) is `-` when the failure was not
//! counted. `reason` is the RFC 6120 condition, or `throttled` for a refusal. Both the
//! address and the account are validated (a JID passed RFC 7622 checks) and hold no
//! spaces, so a client cannot forge a second line.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;
use switchyard_core::Jid;
use switchyard_model::{LoginFailureCounts, LoginFailures};

/// The throttle's settings: the `auth.*` keys (defaults and checks in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures of one account from one network before its attempts are refused.
    pub max_failures: u32,
    /// Failures from one network, all accounts together, before its attempts are refused.
    pub max_failures_per_network: u32,
    /// How long a count lasts after its last failure.
    pub window: Duration,
    /// The wait after the first failure; it doubles with each further one.
    pub delay_initial: Duration,
    /// The longest wait.
    pub delay_max: Duration,
}

/// What the throttle says about one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Go,
    /// Go after this long.
    Wait(Duration),
    /// Answer `temporary-auth-failure` without looking anything up.
    Refuse,
}

/// An attempt the throttle has seen, kept until its outcome is known.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub account: Jid,
    network: String,
    pub verdict: Verdict,
    /// Failures of the account from the network before this attempt.
    prior: u32,
}

/// The client's network as the counts know it: an IPv4 address or an IPv6 /64.
pub(crate) fn network(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{}/64", Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[derive(Debug)]
pub(crate) struct Throttle {
    policy: ThrottlePolicy,
    store: Arc<dyn LoginFailures>,
}

impl Throttle {
    pub(crate) fn new(policy: ThrottlePolicy, store: Arc<dyn LoginFailures>) -> Self {
        Self { policy, store }
    }

    /// The wait owed after `n` failures, counted from the last one.
    pub(crate) fn delay(&self, n: u32) -> Duration {
        let Some(doublings) = n.checked_sub(1) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(doublings.min(31)).unwrap_or(u32::MAX);
        self.policy
            .delay_initial
            .saturating_mul(factor)
            .min(self.policy.delay_max)
    }

    /// The verdict for counts read just now.
    pub(crate) fn verdict(&self, counts: &LoginFailureCounts) -> Verdict {
        let (pair, net) = (&counts.account, &counts.network);
        if pair.failures >= self.policy.max_failures
            || net.failures >= self.policy.max_failures_per_network
        {
            return Verdict::Refuse;
        }
        let since_last = self.policy.window.saturating_sub(pair.expires_in);
        match self.delay(pair.failures).saturating_sub(since_last) {
            Duration::ZERO => Verdict::Go,
            rest => Verdict::Wait(rest),
        }
    }

    /// Looks at an attempt on `account` from `ip` before its credentials are fetched.
    pub(crate) async fn check(&self, ip: IpAddr, account: Jid) -> Attempt {
        let network = network(ip);
        let counts = match self.store.failures(&account, &network).await {
            Ok(counts) => counts,
            Err(e) => {
                tracing::warn!(error = %e, "login failures unreadable: attempt not throttled");
                LoginFailureCounts::default()
            }
        };
        Attempt {
            verdict: self.verdict(&counts),
            prior: counts.account.failures,
            account,
            network,
        }
    }

    /// Counts a wrong password; returns the account-and-network count with it. An
    /// attempt the throttle refused is not counted.
    pub(crate) async fn failed(&self, attempt: &Attempt) -> Option<u32> {
        if attempt.verdict == Verdict::Refuse {
            return None;
        }
        let recorded = self
            .store
            .record(&attempt.account, &attempt.network, self.policy.window)
            .await;
        match recorded {
            Ok(counts) => Some(counts.account.failures),
            Err(e) => {
                tracing::warn!(error = %e, "login failure not recorded");
                None
            }
        }
    }

    /// A success from the network clears the account's count there (when it had one).
    pub(crate) async fn succeeded(&self, attempt: &Attempt) {
        if attempt.prior == 0 {
            return;
        }
        if let Err(e) = self.store.clear(&attempt.account, &attempt.network).await {
            tracing::warn!(error = %e, "login failures not cleared");
        }
    }
}

#[cfg(test)]
mod tests;
