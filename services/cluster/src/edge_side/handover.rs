//! XEP-0198 resumption across edges, the edge's part: answering a router's `Handover`
//! for a session this edge holds, and asking a router to move one held elsewhere here
//! (`TakeSession`). The router's part, and the order that keeps every stanza, is in
//! `router_side::handover`.

use super::RemoteRouters;
use std::sync::Arc;
use switchyard_core::session::SmState;
use switchyard_core::Jid;
use switchyard_rpc::{convert, pb};
use tokio::sync::mpsc;

impl RemoteRouters {
    /// Answers a router's Handover: where the session is, and with `export` its state
    /// (the session ends here).
    pub(super) async fn handover(
        self: Arc<Self>,
        h: pb::Handover,
        tx: mpsc::Sender<pb::EdgeMessage>,
    ) {
        let conn = match convert::jid(&h.account) {
            Ok(account) => self.connections.locate(&h.previd, &account),
            Err(_) => None,
        };
        let state = match conn {
            Some(conn) if h.export => self.connections.export(conn, &h.previd).await,
            _ => None,
        };
        let answer = pb::HandedOver {
            id: h.id,
            conn: conn.unwrap_or(0),
            state: state.as_ref().map(convert::sm_state_pb),
        };
        let message = pb::EdgeMessage {
            body: Some(pb::edge_message::Body::HandedOver(answer)),
        };
        let _ = tx.send(message).await;
    }

    /// Moves session `previd` of `account`, held by another edge (or by the routers,
    /// that edge being dead: see `orphans`), to connection `conn` here: its state, or
    /// `None` when no edge holds it (or no router answered).
    pub(super) async fn take_session_from(
        &self,
        previd: &str,
        account: &Jid,
        conn: u64,
        h: Option<u32>,
    ) -> Option<SmState> {
        let request = pb::TakeSessionRequest {
            previd: previd.to_owned(),
            account: account.to_string(),
            conn,
        };
        let reply = self
            .call(account, request, |mut c, r| async move {
                c.take_session(r).await
            })
            .await;
        let reply = match reply {
            Ok(pb::TakeSessionReply {
                orphan: Some(orphan),
                ..
            }) => return self.gather(orphan, conn, h).await,
            other => other,
        };
        match reply.map(|r| r.state.map(convert::sm_state)) {
            Ok(Some(Ok(state))) => Some(state),
            Ok(Some(Err(e))) => {
                tracing::warn!(error = %e, %account, "a moved session's state was unreadable");
                None
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, %account, "resumption through a router failed");
                None
            }
        }
    }
}
