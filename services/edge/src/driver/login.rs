//! The driver's part of a login: STARTTLS, the credential lookup and proof check (behind
//! the login throttle, see `throttle.rs`), and binding the resource.

use super::{handshake, Conn, Transport};
use crate::throttle::Verdict;
use switchyard_core::sasl::{Failure, Mechanism, ScramProof};
use switchyard_core::session::{Input, Lookup, Output, Verification};
use switchyard_core::Jid;
use switchyard_model::SessionRecord;
use switchyard_telemetry as metrics;
use tokio_util::sync::CancellationToken;

impl Conn {
    pub(super) async fn start_tls(&mut self) -> Vec<Output> {
        let Transport::Plain(tcp) = std::mem::replace(&mut self.transport, Transport::Upgrading)
        else {
            return self.session.handle(Input::PeerClosed);
        };
        match handshake(&self.ctx, tcp).await {
            Some((stream, cb)) => {
                self.transport = Transport::Tls(stream);
                self.session.handle(Input::TlsEstablished(cb))
            }
            None => self.session.handle(Input::PeerClosed),
        }
    }

    pub(super) async fn bind(&mut self, jid: Jid) -> Vec<Output> {
        let record = SessionRecord::bound(jid.clone(), &self.ctx.config.edge_id, self.id);
        self.ctx.connections.claim(self.id, jid.clone());
        let result = self.ctx.link.bind(record).await;
        if result.is_ok() {
            tracing::info!(%jid, conn = self.id, "session bound");
            self.ctx.connections.bound(self.id, jid);
        } else {
            self.ctx.connections.unclaim(self.id);
        }
        self.session.handle(Input::Bound(result))
    }

    /// The credentials of a SASL attempt, once the throttle lets it go ahead: refused
    /// at once, or looked up after the wait it owes (see `throttle.rs`).
    pub(super) async fn fetch(&mut self, account: Jid) -> Vec<Output> {
        let attempt = self.ctx.throttle.check(self.ip, account).await;
        let lookup = match attempt.verdict {
            Verdict::Refuse => Lookup::Throttled,
            // Shutting down: the session is about to end anyway.
            Verdict::Wait(delay) if !wait_out(delay, &self.ctx.shutdown).await => {
                Lookup::Unavailable
            }
            Verdict::Go | Verdict::Wait(_) => {
                match self.ctx.link.credentials(&attempt.account).await {
                    Ok(Some(salts)) => Lookup::Found(salts),
                    Ok(None) => Lookup::NotFound,
                    Err(e) => {
                        tracing::warn!(error = %e, "credential lookup failed");
                        Lookup::Unavailable
                    }
                }
            }
        };
        self.attempt = Some(Box::new(attempt));
        self.session.handle(Input::Credentials(lookup))
    }

    /// The proof of a SASL attempt, checked where the account's keys are. A wrong one
    /// comes back to the session as `not-authorized` and is counted in `auth_failed`.
    pub(super) async fn verify(&mut self, account: Jid, proof: ScramProof) -> Vec<Output> {
        let verification = match self.ctx.link.verify(&account, &proof).await {
            Ok(Some(signature)) => Verification::Accepted(signature),
            Ok(None) => Verification::Rejected,
            Err(e) => {
                tracing::warn!(error = %e, "proof check failed");
                Verification::Unavailable
            }
        };
        self.session.handle(Input::Verified(verification))
    }

    /// A failed SASL attempt: a wrong password is counted by the throttle, and every
    /// failure is logged in the fixed format documented in `throttle.rs`.
    pub(super) async fn auth_failed(&mut self, mechanism: Mechanism, failure: Failure) {
        let attempt = self.attempt.take();
        let refused = attempt
            .as_ref()
            .is_some_and(|a| a.verdict == Verdict::Refuse);
        let reason = if refused {
            "throttled"
        } else {
            failure.as_str()
        };
        metrics::EDGE_LOGINS
            .with_label_values(&[mechanism.name(), "failure", reason])
            .inc();
        let counted = match &attempt {
            Some(a) if failure == Failure::NotAuthorized => self.ctx.throttle.failed(a).await,
            _ => None,
        };
        let account = attempt.map_or_else(|| "-".to_owned(), |a| a.account.to_string());
        let failures = counted.map_or_else(|| "-".to_owned(), |n| n.to_string());
        tracing::info!(
            target: "switchyard::auth",
            "login failed: address={} account={account} mechanism={} reason={reason} failures={failures} conn={}",
            self.ip.to_canonical(),
            mechanism.name(),
            self.id,
        );
    }
}

/// Waits `delay` unless the server starts shutting down meanwhile (`false`).
async fn wait_out(delay: std::time::Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = shutdown.cancelled() => false,
    }
}
