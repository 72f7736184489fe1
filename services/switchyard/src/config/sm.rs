//! `[stream_management]`: XEP-0198 acks and resumption, and the server's keepalives.

use serde::{Deserialize, Serialize};
use switchyard_core::session::SmPolicy;

/// A moving session's state travels in one gRPC message of at most 4 MiB.
const MAX_UNACKED_BYTES: usize = 3 * 1024 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StreamManagement {
    /// Longest a session whose connection broke waits to be resumed (offered to clients
    /// as `max`); 0 turns resumption off (acks still work).
    pub resume_max_secs: u32,
    /// The server asks for an ack after this many unacknowledged stanzas.
    pub request_every: u32,
    /// Stanzas one session may hold unacknowledged (sent, or queued while detached);
    /// past it the stream ends and what it held goes to offline storage.
    pub max_unacked: usize,
    /// The same bound in bytes.
    pub max_unacked_bytes: usize,
    /// Quiet seconds after which a bound client is asked for a sign of life (an ack
    /// request, else an XEP-0199 ping); 0: never. Below `timeouts.idle_secs`, so a dead
    /// connection ends (or detaches) at the idle timeout.
    pub keepalive_secs: u64,
}

impl Default for StreamManagement {
    fn default() -> Self {
        let policy = SmPolicy::default();
        Self {
            resume_max_secs: policy.resume_max_secs,
            request_every: policy.request_every,
            max_unacked: policy.max_unacked,
            max_unacked_bytes: policy.max_unacked_bytes,
            keepalive_secs: 240,
        }
    }
}

impl StreamManagement {
    pub fn policy(&self) -> SmPolicy {
        SmPolicy {
            resume_max_secs: self.resume_max_secs,
            request_every: self.request_every,
            max_unacked: self.max_unacked,
            max_unacked_bytes: self.max_unacked_bytes,
        }
    }

    pub fn validate(&self, idle_secs: u64) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.resume_max_secs <= 86_400,
            "stream_management.resume_max_secs must be at most 86400"
        );
        anyhow::ensure!(
            (1..=1_000).contains(&self.request_every),
            "stream_management.request_every must be 1 to 1000"
        );
        anyhow::ensure!(
            self.max_unacked >= 16 && (64 * 1024..=MAX_UNACKED_BYTES).contains(&self.max_unacked_bytes),
            "stream_management.max_unacked must be at least 16, and stream_management.max_unacked_bytes 65536 to {MAX_UNACKED_BYTES} (a session moving between edges carries them in one message)"
        );
        anyhow::ensure!(
            self.keepalive_secs < idle_secs,
            "stream_management.keepalive_secs must be below timeouts.idle_secs ({idle_secs}), or 0"
        );
        Ok(())
    }
}
