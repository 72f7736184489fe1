//! The executor: carries out what handlers decided ([`Effects`]), in order.
//!
//! - Consecutive deliveries are one step: grouped by edge, one batch per edge
//!   ([`EdgeDelivery::deliver_batch`]), every edge at once. Deliveries to one session
//!   keep their listed order; a presence broadcast to a thousand contacts on two edges
//!   is two batches in flight together, not a thousand round trips in turn.
//! - Every other effect is a step of its own and waits for the ones before it: a session
//!   edit made before a flush is seen by the flush, a roster push listed after a presence
//!   arrives after it.
//! - A session its edge says it no longer holds is removed from the registry, with the
//!   unavailable presence its end implies (a stale record would otherwise swallow every
//!   later stanza for that full JID); one the edge did not answer for stays, and the
//!   cached view of the account is dropped either way.
//! - [`Router::route`] returns once every effect of the stanza is done, which is when a
//!   cluster link acknowledges it: delivered, stored or bounced, as before.

use crate::delivery::{Batch, Undeliverable};
use crate::effects::{Effect, Effects, Recipient, Tried};
use crate::router::Router;
use futures_util::future::join_all;
use switchyard_core::{Jid, Routed, Stanza};
use switchyard_telemetry as metrics;

/// One edge's share of a run: its name, who each of its stanzas is for (with the
/// stanza's place in the run), and the batch itself.
type EdgeShare = (String, Vec<(usize, Recipient)>, Batch);

/// Deliveries waiting to be sent together.
pub(crate) type Run = Vec<(Recipient, Routed)>;

impl Router {
    /// Carries out `effects` in order (see the module doc).
    pub(crate) async fn apply(&self, effects: Effects) {
        let mut run: Run = Vec::new();
        for effect in effects.into_vec() {
            match effect {
                Effect::Deliver { to, stanza } => run.push((to, stanza)),
                Effect::DeliverTo { to, stanza } => {
                    if let Some(s) = self.session(&to).await {
                        run.push((Recipient::of(&s), stanza));
                    }
                }
                other => {
                    self.send_run(std::mem::take(&mut run)).await;
                    Box::pin(self.act(other)).await;
                }
            }
        }
        self.send_run(run).await;
    }

    async fn act(&self, effect: Effect) {
        match effect {
            Effect::Deliver { .. } | Effect::DeliverTo { .. } => unreachable!("sent in runs"),
            Effect::DeliverOr {
                to,
                stanza,
                otherwise,
            } => {
                if !self.send_run(vec![(to, stanza)]).await.is_empty() {
                    self.apply(otherwise).await;
                }
            }
            Effect::Message {
                stanza,
                to,
                carbons,
                tried,
            } => self.deliver_message(stanza, to, carbons, tried).await,
            Effect::Update { jid, conn, edit } => {
                if let Err(e) = self.registry.update(&jid, conn, edit).await {
                    tracing::warn!(error = %e, %jid, "session registry update failed");
                }
            }
            Effect::Route(stanza) => self.route(stanza).await,
            Effect::StoreOffline { account, stanza } => self.store_offline(&account, stanza).await,
            Effect::FlushOffline(to) => self.flush_offline(&to).await,
            Effect::LastActivity { account, presence } => {
                self.record_last_activity(&account, &presence).await
            }
            Effect::Terminate { to, condition } => {
                self.edges.terminate(&to.edge, to.conn, condition).await
            }
        }
    }

    /// A message to the sessions chosen for it; see [`Effect::Message`].
    async fn deliver_message(
        &self,
        stanza: Stanza,
        to: Vec<Recipient>,
        carbons: Vec<Recipient>,
        mut tried: Tried,
    ) {
        // One tree (or the bytes it came in) for every recipient, never a copy.
        let routed = stanza.routed();
        let run = to.iter().map(|r| (r.clone(), routed.clone())).collect();
        let gone = self.send_run(run).await;
        let next = if to.iter().all(|r| gone.contains(&r.jid)) {
            tried.gone.extend(gone);
            crate::message::undelivered(self, &stanza, tried).await
        } else {
            crate::hooks::message_delivered(self, &stanza, carbons).await
        };
        self.apply(next).await;
    }

    /// Sends deliveries as one batch per edge, all edges at once; returns the sessions
    /// that did not take theirs.
    async fn send_run(&self, run: Run) -> Vec<Jid> {
        let recipients: Vec<Jid> = run.iter().map(|(to, _)| to.jid.clone()).collect();
        let taken = self.deliver_all(run).await;
        let mut gone: Vec<Jid> = Vec::new();
        for (jid, taken) in recipients.into_iter().zip(taken) {
            if !taken && !gone.contains(&jid) {
                gone.push(jid);
            }
        }
        gone
    }

    /// Sends deliveries as one batch per edge, all edges at once, and deals with sessions
    /// found gone (see the module doc); whether each was taken, in the run's order.
    pub(crate) async fn deliver_all(&self, run: Run) -> Vec<bool> {
        if run.is_empty() {
            return Vec::new();
        }
        metrics::ROUTER_DELIVERIES.inc_by(run.len() as u64);
        let mut taken = vec![false; run.len()];
        let mut stale: Vec<Recipient> = Vec::new();
        for ((at, to), result) in self.send_per_edge(run).await {
            let Err(why) = result else {
                taken[at] = true;
                continue;
            };
            self.registry.forget(&to.jid.bare());
            if why == Undeliverable::NoSession && !stale.contains(&to) {
                stale.push(to);
            }
        }
        for to in stale {
            tracing::info!(jid = %to.jid, conn = to.conn, "removing a session its edge no longer holds");
            metrics::ROUTER_SESSIONS_GONE.inc();
            Box::pin(self.unbind(&to.jid, to.conn)).await;
        }
        taken
    }

    /// One batch per edge, all edges at once; each delivery's place in the run, recipient
    /// and result. A run of one (most messages) is one plain delivery.
    async fn send_per_edge(
        &self,
        mut run: Run,
    ) -> Vec<((usize, Recipient), Result<(), Undeliverable>)> {
        if run.len() == 1 {
            let (to, stanza) = run.pop().expect("one");
            metrics::ROUTER_DELIVERY_BATCHES.inc();
            let result = self.edges.deliver(&to.edge, to.conn, stanza).await;
            return vec![((0, to), result)];
        }
        let mut per_edge: Vec<EdgeShare> = Vec::new();
        for (at, (to, stanza)) in run.into_iter().enumerate() {
            let slot = match per_edge.iter().position(|(edge, ..)| *edge == to.edge) {
                Some(slot) => slot,
                None => {
                    per_edge.push((to.edge.clone(), Vec::new(), Vec::new()));
                    per_edge.len() - 1
                }
            };
            per_edge[slot].2.push((to.conn, stanza));
            per_edge[slot].1.push((at, to));
        }
        metrics::ROUTER_DELIVERY_BATCHES.inc_by(per_edge.len() as u64);
        let sends = per_edge
            .into_iter()
            .map(|(edge, recipients, batch)| async move {
                let results = self.edges.deliver_batch(&edge, batch).await;
                recipients.into_iter().zip(results)
            });
        join_all(sends).await.into_iter().flatten().collect()
    }
}
