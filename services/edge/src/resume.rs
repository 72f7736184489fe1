//! XEP-0198 resumption on this edge: which connection holds each resumable session, and
//! what a resuming connection hands to it.
//!
//! A session stays with the connection task that bound it for its whole life; its
//! registry record (edge, connection id) therefore never changes when it is resumed, so
//! contacts see no presence flap and deliveries keep finding it. A resuming connection,
//! once its client has authenticated, looks the SM-ID up here and hands its transport and
//! stream state to that task through the task's mailbox ([`crate::connections::Command`]),
//! whether the old connection is detached or still looks alive (XEP-0198 §5: the old
//! stream is then ended). The task checks the client's `h`, takes the transport and
//! carries on; a refused hand-over comes back whole, and the new connection answers
//! `<failed/>` and may bind afresh.
//!
//! An SM-ID only resumes a session of the account that authenticated on the new
//! connection: a leaked SM-ID is useless without that account's credentials.

use crate::driver::Transport;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use switchyard_core::session::{ResumeRefused, Session};
use switchyard_core::Jid;
use tokio::sync::oneshot;

/// A resuming connection's transport and stream state, on its way to the session.
pub(crate) struct Resuming {
    pub transport: Transport,
    pub session: Session,
    /// The client's `h` from `<resume/>`.
    pub h: Option<u32>,
    /// The new connection's address, which the session's connection now counts as.
    pub ip: IpAddr,
    /// The new connection's count among open connections, which goes with its socket.
    pub open: Option<crate::listener::Open>,
}

impl std::fmt::Debug for Resuming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resuming")
            .field("h", &self.h)
            .finish_non_exhaustive()
    }
}

/// Answered `None` once the session took the connection over, or with the connection
/// back and why when it refused.
pub(crate) type Answer = oneshot::Sender<Option<(Box<Resuming>, ResumeRefused)>>;

/// Resumable sessions by SM-ID: `(account, connection id)`.
#[derive(Debug, Default)]
pub(crate) struct Resumables(Mutex<HashMap<String, (Jid, u64)>>);

impl Resumables {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Jid, u64)>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn insert(&self, id: String, account: Jid, conn: u64) {
        self.lock().insert(id, (account, conn));
    }

    pub(crate) fn remove(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The connection holding session `id`, if it is `account`'s.
    pub(crate) fn find(&self, id: &str, account: &Jid) -> Option<u64> {
        match self.lock().get(id) {
            Some((owner, conn)) if owner == account => Some(*conn),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sm_id_resumes_only_its_own_accounts_session() {
        let table = Resumables::default();
        let juliet: Jid = "juliet@localhost".parse().expect("jid");
        let romeo: Jid = "romeo@localhost".parse().expect("jid");
        table.insert("abc".into(), juliet.clone(), 7);
        assert_eq!(table.find("abc", &juliet), Some(7));
        assert_eq!(table.find("abc", &romeo), None);
        assert_eq!(table.find("abd", &juliet), None);
        table.remove("abc");
        assert_eq!(table.find("abc", &juliet), None);
    }
}
