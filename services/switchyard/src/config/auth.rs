//! `[auth]`: SCRAM iterations, the login throttle, password policy, the mechanisms
//! offered, XEP-0484 FAST and the decoy secret.

use super::mask;
use serde::{Deserialize, Serialize};
use std::fmt;
use switchyard_core::sasl::Mechanism;

/// Login policy. The throttle (services/edge/src/throttle.rs) counts wrong passwords per
/// account and client network (an IPv4 address or an IPv6 /64) and per network, shared by
/// every edge; each failure delays the next attempt on its key, and refusals come only
/// well after that, for that key alone.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    /// PBKDF2 iterations for new SCRAM credentials (at least 4096).
    pub scram_iterations: u32,
    /// SASL attempts allowed on one connection.
    pub max_attempts_per_connection: u32,
    /// Failures of one account from one network after which that account's attempts
    /// from there get `temporary-auth-failure` until `failure_window_secs` pass without a
    /// failure; before that, failures only slow it down. Other networks are unaffected.
    pub max_failures: u32,
    /// Failures from one network, all accounts together, after which its attempts are
    /// refused: far above `max_failures`, since many users may share an address (NAT).
    pub max_failures_per_network: u32,
    /// How long failures are remembered after the last one.
    pub failure_window_secs: u64,
    /// The wait owed before the next attempt of an account from a network after its
    /// first failure there; it doubles with each further failure. 0 turns slowing off.
    pub failure_delay_initial_ms: u64,
    /// The longest such wait.
    pub failure_delay_max_ms: u64,
    /// Failure counts held in memory (all-in-one, or a router without Redis); when full,
    /// the oldest are evicted first. With Redis, keys expire on their own instead.
    pub failure_table_entries: usize,
    /// Shortest password accepted when an account is created or its password changed
    /// (CLI and admin API), in characters.
    pub min_password_chars: usize,
    /// The SASL mechanisms offered (RFC 6120 §6.3.3), strongest first whatever the order
    /// here; `-PLUS` ones only on TLS. Leaving out the SCRAM-SHA-256 pair is for accounts
    /// imported with SHA-1 keys only (XEP-0227 from Prosody): clients that would pick
    /// SCRAM-SHA-256 then pick SCRAM-SHA-1, until their passwords are set again.
    pub mechanisms: Vec<String>,
    /// XEP-0484 FAST: clients that logged in with a password get a token for their next
    /// logins (one round trip, no PBKDF2), inside SASL2.
    pub fast: bool,
    /// How long a FAST token is accepted after it was issued (60 s to 1 year).
    pub fast_token_secs: u64,
    /// A token used after this age is replaced by a new one in the same login (XEP-0484
    /// §3.5); less than `fast_token_secs`.
    pub fast_rotate_secs: u64,
    /// The secret the salts shown for accounts that do not exist are derived from, so
    /// they are the same on every edge and across restarts (at least 32 characters).
    /// Empty: generated once in the all-in-one mode and kept in `<data_dir>/decoy-secret`
    /// (mode 0600); required on an edge (`--roles edge`), the same value on every edge.
    pub decoy_secret: String,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("scram_iterations", &self.scram_iterations)
            .field(
                "max_attempts_per_connection",
                &self.max_attempts_per_connection,
            )
            .field("max_failures", &self.max_failures)
            .field("max_failures_per_network", &self.max_failures_per_network)
            .field("failure_window_secs", &self.failure_window_secs)
            .field("failure_delay_initial_ms", &self.failure_delay_initial_ms)
            .field("failure_delay_max_ms", &self.failure_delay_max_ms)
            .field("failure_table_entries", &self.failure_table_entries)
            .field("min_password_chars", &self.min_password_chars)
            .field("mechanisms", &self.mechanisms)
            .field("fast", &self.fast)
            .field("fast_token_secs", &self.fast_token_secs)
            .field("fast_rotate_secs", &self.fast_rotate_secs)
            .field("decoy_secret", &mask(&self.decoy_secret))
            .finish()
    }
}

/// The shortest `auth.decoy_secret` accepted.
pub const MIN_DECOY_SECRET_CHARS: usize = 32;

impl Default for Auth {
    fn default() -> Self {
        Self {
            scram_iterations: 4096,
            max_attempts_per_connection: 3,
            max_failures: 50,
            max_failures_per_network: 1000,
            failure_window_secs: 900,
            failure_delay_initial_ms: 250,
            failure_delay_max_ms: 30_000,
            failure_table_entries: 100_000,
            min_password_chars: 8,
            mechanisms: Mechanism::ALL.iter().map(|m| m.name().to_owned()).collect(),
            fast: true,
            fast_token_secs: 14 * 86_400,
            fast_rotate_secs: 86_400,
            decoy_secret: String::new(),
        }
    }
}

impl Auth {
    /// Every `[auth]` value in range.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let a = self;
        anyhow::ensure!(
            a.scram_iterations >= 4096,
            "auth.scram_iterations must be at least 4096"
        );
        anyhow::ensure!(
            a.max_attempts_per_connection >= 1,
            "auth.max_attempts_per_connection must be at least 1"
        );
        anyhow::ensure!(
            a.max_failures >= 1 && a.max_failures_per_network >= a.max_failures,
            "auth.max_failures must be at least 1, and auth.max_failures_per_network at least auth.max_failures"
        );
        anyhow::ensure!(
            (1..=86_400).contains(&a.failure_window_secs),
            "auth.failure_window_secs must be 1 to 86400"
        );
        anyhow::ensure!(
            a.failure_delay_initial_ms <= a.failure_delay_max_ms
                && a.failure_delay_max_ms <= 300_000,
            "auth.failure_delay_initial_ms must be at most auth.failure_delay_max_ms, which is at most 300000"
        );
        anyhow::ensure!(
            a.failure_table_entries >= 1000,
            "auth.failure_table_entries must be at least 1000"
        );
        anyhow::ensure!(
            (1..=1024).contains(&a.min_password_chars),
            "auth.min_password_chars must be 1 to 1024"
        );
        for name in &a.mechanisms {
            anyhow::ensure!(
                Mechanism::ALL.iter().any(|m| m.name() == name),
                "auth.mechanisms: {name:?} is not one of {}",
                Mechanism::ALL.map(Mechanism::name).join(", ")
            );
        }
        let distinct: std::collections::HashSet<&String> = a.mechanisms.iter().collect();
        anyhow::ensure!(
            !a.mechanisms.is_empty() && distinct.len() == a.mechanisms.len(),
            "auth.mechanisms must name at least one mechanism, each once"
        );
        anyhow::ensure!(
            (60..=31_536_000).contains(&a.fast_token_secs),
            "auth.fast_token_secs must be 60 to 31536000 (a year)"
        );
        anyhow::ensure!(
            a.fast_rotate_secs < a.fast_token_secs,
            "auth.fast_rotate_secs must be less than auth.fast_token_secs"
        );
        anyhow::ensure!(
            a.decoy_secret.is_empty() || a.decoy_secret.chars().count() >= MIN_DECOY_SECRET_CHARS,
            "auth.decoy_secret must be at least {MIN_DECOY_SECRET_CHARS} characters (or empty)"
        );
        Ok(())
    }
}
