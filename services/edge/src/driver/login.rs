//! The driver's part of a login: STARTTLS, the credential lookup and proof check (behind
//! the login throttle, see `throttle.rs`), and binding the resource.

use super::{handshake, Conn, Transport};
use crate::throttle::Verdict;
use switchyard_core::sasl::fast::{TokenCheck, TokenRequest};
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

    pub(super) async fn bind(&mut self, jid: Jid, carbons: bool) -> Vec<Output> {
        let mut record = SessionRecord::bound(jid.clone(), &self.ctx.config.edge_id, self.id);
        record.carbons = carbons;
        self.ctx.connections.claim(self.id, jid.clone());
        let result = self.ctx.link.bind(record).await;
        if result.is_ok() {
            tracing::info!(%jid, conn = self.id, "session bound");
            self.ctx.connections.bound(self.id, jid);
        } else {
            self.ctx.connections.unclaim(self.id);
        }
        let outputs = self.session.handle(Input::Bound(result));
        // Bind 2 may have enabled resumption inline (XEP-0386 §3.2).
        self.list_resumable();
        outputs
    }

    /// The credentials of a SASL attempt, once the throttle lets it go ahead: refused
    /// at once, or looked up after the wait it owes (see `throttle.rs`).
    pub(super) async fn fetch(&mut self, account: Jid) -> Vec<Output> {
        let lookup = match self.admit(account).await {
            Some(Admitted::Refused) => Lookup::Throttled,
            None => Lookup::Unavailable,
            Some(Admitted::Go(account)) => match self.ctx.link.credentials(&account).await {
                Ok(Some(salts)) => Lookup::Found(salts),
                Ok(None) => Lookup::NotFound,
                Err(e) => {
                    tracing::warn!(error = %e, "credential lookup failed");
                    Lookup::Unavailable
                }
            },
        };
        let found = matches!(lookup, Lookup::Found(_) | Lookup::NotFound);
        let input = Input::Credentials(lookup);
        if found && self.session.hashes_credentials() {
            let _turn = HASHING.acquire().await;
            cpu_bound(|| self.session.handle(input))
        } else {
            self.session.handle(input)
        }
    }

    /// Puts an attempt for `account` before the login throttle, as every mechanism's
    /// is: refused, or let go after the wait it owes; `None` when the server starts
    /// shutting down meanwhile.
    async fn admit(&mut self, account: Jid) -> Option<Admitted> {
        let attempt = self.ctx.throttle.check(self.ip, account).await;
        let admitted = match attempt.verdict {
            Verdict::Refuse => Some(Admitted::Refused),
            Verdict::Wait(delay) if !wait_out(delay, &self.ctx.shutdown).await => None,
            Verdict::Go | Verdict::Wait(_) => Some(Admitted::Go(attempt.account.clone())),
        };
        self.attempt = Some(Box::new(attempt));
        admitted
    }

    /// XEP-0484: a FAST token checked where the account's tokens are, behind the same
    /// throttle as a password; a wrong one counts as a wrong password would.
    pub(super) async fn verify_token(&mut self, mut check: TokenCheck) -> Vec<Output> {
        let (verification, rotate) = match self.admit(check.account.clone()).await {
            Some(Admitted::Go(account)) => {
                check.account = account;
                match self.ctx.link.verify_token(&check).await {
                    Ok(verdict) => match verdict.responder {
                        Some(responder) => (Verification::Accepted(responder), verdict.rotate),
                        None => (Verification::Rejected, false),
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "token check failed");
                        (Verification::Unavailable, false)
                    }
                }
            }
            Some(Admitted::Refused) | None => (Verification::Unavailable, false),
        };
        self.session.handle(Input::TokenVerified {
            verification,
            rotate,
        })
    }

    /// XEP-0484 §3.3: a token for the client that just authenticated; none (and the
    /// login goes on) when it cannot be stored.
    pub(super) async fn issue_token(&mut self, request: TokenRequest) -> Vec<Output> {
        let issued = self.ctx.link.issue_token(&request).await;
        let token = issued
            .inspect_err(|e| tracing::warn!(error = %e, "no FAST token issued"))
            .ok();
        if token.is_some() {
            metrics::EDGE_FAST_TOKENS_ISSUED.inc();
        }
        self.session.handle(Input::TokenIssued(token))
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

/// What the login throttle made of an attempt.
enum Admitted {
    Refused,
    /// Go ahead, for the account as the throttle normalized it.
    Go(Jid),
}

/// Waits `delay` unless the server starts shutting down meanwhile (`false`).
async fn wait_out(delay: std::time::Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = shutdown.cancelled() => false,
    }
}

/// Passwords hashed at once: one per core. A PLAIN storm (up to
/// `limits.max_concurrent_handshakes` logins) waits its turn here without holding a
/// thread, instead of taking hundreds of threads from the runtime's blocking pool, which
/// the embedded database's queries share.
static HASHING: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    tokio::sync::Semaphore::new(cores)
});

/// Runs a step that takes milliseconds of CPU (a PLAIN password's PBKDF2) without holding
/// up the other connections of this worker thread: on the multi-threaded runtime the
/// worker hands its queued tasks to another thread meanwhile. On a current-thread runtime
/// (tests) there is no other thread to hand them to, and the step runs in place.
fn cpu_bound<R>(step: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(step),
        _ => step(),
    }
}
