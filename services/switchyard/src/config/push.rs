//! XEP-0357 push notifications (`[push]`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Push {
    /// Notifications carry the message body. Off: only the count and the sender go to
    /// the app server (and through it to Apple's or Google's push service).
    pub include_body: bool,
    /// At most one notification per device in this time (a burst wakes it once).
    pub min_interval_secs: u64,
}

impl Default for Push {
    fn default() -> Self {
        Self {
            include_body: false,
            min_interval_secs: 10,
        }
    }
}
