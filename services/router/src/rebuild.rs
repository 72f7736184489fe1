//! Registry rebuilds (DESIGN, failure semantics: "Redis restarts: edges re-register their
//! live sessions; nothing meant for a live session is parked offline meanwhile").
//!
//! The registry is rebuildable state: when Redis restarts empty (or cannot be reached),
//! a lookup finds no session for users who are online throughout. Edges hold the truth,
//! so the router asks them to register their sessions again, and until they have, "no
//! session" is not an answer it acts on:
//!
//! - The registry's epoch (a token that vanishes with its data) tells a rebuild apart
//!   from an account that is really offline. The first epoch a router sees is its
//!   baseline; a different one later means the data was lost.
//! - Before a message is stored offline, [`Router::registry_settled`] reads the epoch.
//!   While the registry cannot be read, it waits (bounded by [`PATIENCE`]); on a new
//!   epoch, it asks every edge to bind its sessions again, with their availability, and
//!   waits for all to answer (bounded inside [`EdgeDelivery::reregister`]). Either way it
//!   tells the caller to look again. The sender is held back meanwhile, as by any slow
//!   delivery; after the bound, the message is stored, and the flush that follows a
//!   restored binding delivers it.
//! - One rebuild runs at a time per router; callers that arrive during it wait for it
//!   rather than starting another. The liveness beat calls the same check, so the edges
//!   re-register promptly even when no message is waiting.
//!
//! Cost: one epoch read per message about to be stored offline (which costs a database
//! write anyway); nothing on live delivery.

use crate::router::Router;
use std::sync::Mutex;
use std::time::Duration;

/// How long a message waits for an unreadable registry before it is stored offline.
const PATIENCE: Duration = Duration::from_secs(15);
const RETRY: Duration = Duration::from_millis(200);

/// What this router knows of the registry's epoch.
#[derive(Debug, Default)]
pub(crate) struct Epoch {
    /// The epoch whose contents the edges are known to have registered into.
    settled: Mutex<Option<String>>,
    /// Held while the edges re-register, so a rebuild runs once.
    rebuilding: tokio::sync::Mutex<()>,
}

impl Epoch {
    fn settled(&self) -> Option<String> {
        self.settled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn settle(&self, epoch: String) {
        *self
            .settled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(epoch);
    }
}

impl Router {
    /// Waits until the registry can be trusted to hold every live session; `true` when
    /// it could not be before (unreadable, or rebuilt since this router last looked), so
    /// any lookup made earlier must be made again.
    pub async fn registry_settled(&self) -> bool {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut waited = false;
        let now = loop {
            match self.registry.epoch().await {
                Ok(now) => break now,
                Err(e) if tokio::time::Instant::now() + RETRY < deadline => {
                    if !waited {
                        tracing::warn!(error = %e, "session registry unreadable; holding messages for it");
                    }
                    waited = true;
                    tokio::time::sleep(RETRY).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "session registry still unreadable; going on without it");
                    return true;
                }
            }
        };
        if self.epoch.settled().as_ref() == Some(&now) {
            return waited;
        }
        let _one = self.epoch.rebuilding.lock().await;
        match self.epoch.settled() {
            Some(settled) if settled == now => return true,
            None => {
                self.epoch.settle(now);
                return waited;
            }
            Some(_) => {}
        }
        tracing::warn!("the session registry lost its data; edges re-register their sessions");
        switchyard_telemetry::ROUTER_REGISTRY_REBUILDS.inc();
        self.edges.reregister().await;
        self.epoch.settle(now);
        true
    }
}
