//! XEP-0198 sessions that outlive their edge, the edge's part (the routers' part, and the
//! design, are in `router_side::kept`):
//!
//! - every link tells its router, about once a second, what changed among this edge's
//!   resumable sessions ([`switchyard_edge::Progress`]); a link that (re)opens sends
//!   them all, in chunks, the last one marked complete;
//! - a client resuming here a session whose edge died: `TakeSession` answers with the
//!   session's description (the router moved its record here), and every router is
//!   asked for its share (`TakeCopies`); the shares are merged into the state the
//!   session is resumed from ([`merge`]).

use super::{lock, RemoteRouters};
use crate::router_side::LINK_TOKEN;
use futures_util::future::join_all;
use switchyard_core::session::SmState;
use switchyard_core::Jid;
use switchyard_edge::{Report, Reported};
use switchyard_rpc::{convert, pb};
use tokio::sync::mpsc;

/// Sessions per progress message: well under the link's message size limit.
const CHUNK: usize = 10_000;

impl RemoteRouters {
    /// Sends the link what it has not heard of the resumable sessions since version
    /// `seen` (0: everything), and moves `seen` on; `false` when the link is gone.
    pub(super) async fn report_progress(
        &self,
        tx: &mpsc::Sender<pb::EdgeMessage>,
        seen: &mut u64,
    ) -> bool {
        let (report, version) = self.connections.sm_progress.since(*seen);
        if report.is_empty() {
            *seen = version;
            return true;
        }
        for progress in messages(report) {
            let message = pb::EdgeMessage {
                body: Some(pb::edge_message::Body::Progress(progress)),
            };
            if tx.send(message).await.is_err() {
                return false;
            }
        }
        *seen = version;
        true
    }

    /// Every router's share of a dead edge's session moved here (see the module doc),
    /// merged against the client's `h`.
    pub(super) async fn gather(
        &self,
        orphan: pb::Orphan,
        conn: u64,
        h: Option<u32>,
    ) -> Option<SmState> {
        let request = pb::TakeCopiesRequest {
            edge: orphan.edge.clone(),
            old_conn: orphan.conn,
            conn,
        };
        let routers: Vec<_> = lock(&self.routers)
            .values()
            .filter_map(|r| {
                let token = lock(&r.up).as_ref()?.token.clone();
                Some((r.client.clone(), token))
            })
            .collect();
        let calls = routers.into_iter().map(|(mut client, token)| {
            let mut call = tonic::Request::new(request.clone());
            call.metadata_mut().insert(LINK_TOKEN, token);
            async move { client.take_copies(call).await }
        });
        let mut shares = Vec::new();
        for answer in join_all(calls).await {
            match answer {
                Ok(reply) => shares.push(reply.into_inner()),
                Err(e) => {
                    tracing::warn!(error = %e, "a router's share of a resumed session is lost")
                }
            }
        }
        match merge(&orphan, shares, h) {
            Ok(state) => Some(state),
            Err(e) => {
                tracing::warn!(error = %e, jid = orphan.jid, "a dead edge's session could not be rebuilt");
                None
            }
        }
    }
}

/// A report as link messages of at most [`CHUNK`] sessions; the ends go in the first,
/// and the last of a full report says it is complete (an empty full report is one
/// message, to say there is nothing).
fn messages(report: Report) -> Vec<pb::SmProgress> {
    let full = report.full;
    let mut sessions: Vec<pb::SmSession> = report.sessions.into_iter().map(session_pb).collect();
    let mut ended = report.ended;
    let mut out = Vec::new();
    loop {
        let rest = sessions.split_off(sessions.len().min(CHUNK));
        let chunk = std::mem::replace(&mut sessions, rest);
        let last = sessions.is_empty();
        out.push(pb::SmProgress {
            sessions: chunk,
            ended: std::mem::take(&mut ended),
            complete: full && last,
            full,
        });
        if last {
            return out;
        }
    }
}

fn session_pb(s: Reported) -> pb::SmSession {
    pb::SmSession {
        conn: s.conn,
        id: s.id,
        jid: s.jid,
        max_secs: s.max_secs,
        acked: s.acked,
        handled: s.handled,
    }
}

/// The state a session of a dead edge resumes from: the copies the client's `h` does not
/// acknowledge, in order of their numbers, each once; the highest count of the client's
/// stanzas handled any router heard of.
pub(super) fn merge(
    orphan: &pb::Orphan,
    shares: Vec<pb::TakeCopiesReply>,
    h: Option<u32>,
) -> Result<SmState, tonic::Status> {
    let jid: Jid = convert::jid(&orphan.jid)?;
    let acked = h.unwrap_or(orphan.acked);
    let handled = shares
        .iter()
        .filter_map(|s| s.handled)
        .reduce(crate::router_side::later)
        .unwrap_or(0);
    let mut copies: Vec<pb::SmCopy> = shares
        .into_iter()
        .flat_map(|s| s.copies)
        .filter(|c| crate::router_side::after(c.seq, acked))
        .collect();
    copies.sort_by_key(|c| c.seq.wrapping_sub(acked));
    copies.dedup_by_key(|c| c.seq);
    let unacked: Vec<_> = copies
        .into_iter()
        .filter_map(|c| match convert::routed(c.xml) {
            Ok(stanza) => Some(stanza),
            Err(e) => {
                tracing::warn!(error = %e, seq = c.seq, "a router kept an unreadable copy");
                None
            }
        })
        .collect();
    Ok(SmState {
        jid,
        id: orphan.id.clone(),
        max_secs: orphan.max_secs,
        handled,
        sent: acked.wrapping_add(unacked.len() as u32),
        acked,
        unacked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orphan() -> pb::Orphan {
        pb::Orphan {
            edge: "edge-b".into(),
            conn: 7,
            jid: "bob@example.com/phone".into(),
            id: "sm-1".into(),
            max_secs: 300,
            acked: 2,
        }
    }

    fn copy(seq: u32) -> pb::SmCopy {
        pb::SmCopy {
            seq,
            xml: format!("<message xmlns='jabber:client' id='m{seq}'/>").into_bytes(),
        }
    }

    fn reported(count: usize) -> Vec<Reported> {
        (0..count as u64)
            .map(|conn| Reported {
                conn,
                id: format!("sm-{conn}"),
                jid: "bob@example.com/phone".into(),
                max_secs: 300,
                acked: 0,
                handled: 0,
            })
            .collect()
    }

    /// (sessions, ends, complete) of each message.
    fn shape(messages: &[pb::SmProgress]) -> Vec<(usize, usize, bool)> {
        messages
            .iter()
            .map(|m| (m.sessions.len(), m.ended.len(), m.complete))
            .collect()
    }

    /// The edges of the chunking: exactly [`CHUNK`] sessions are one message, one more
    /// starts a second, which carries the completion; nothing is lost or repeated.
    #[test]
    fn a_report_of_exactly_a_chunk_is_one_message_and_one_more_is_two() {
        for (count, want) in [
            (CHUNK, vec![(CHUNK, 2, true)]),
            (CHUNK + 1, vec![(CHUNK, 2, false), (1, 0, true)]),
            (
                2 * CHUNK + 1,
                vec![(CHUNK, 2, false), (CHUNK, 0, false), (1, 0, true)],
            ),
        ] {
            let report = Report {
                sessions: reported(count),
                ended: vec![7, 8],
                full: true,
            };
            let messages = messages(report);
            assert_eq!(shape(&messages), want, "{count} sessions");
            assert!(messages.iter().all(|m| m.full));
            let mut conns: Vec<u64> = messages
                .iter()
                .flat_map(|m| m.sessions.iter().map(|s| s.conn))
                .collect();
            conns.dedup();
            assert_eq!(
                conns,
                (0..count as u64).collect::<Vec<_>>(),
                "each once, in order"
            );
        }
    }

    #[test]
    fn an_empty_full_report_is_one_message_and_changes_are_never_complete() {
        let empty = Report {
            full: true,
            ..Report::default()
        };
        assert_eq!(shape(&messages(empty)), [(0, 0, true)]);
        let changes = Report {
            sessions: reported(CHUNK + 1),
            ended: vec![1],
            full: false,
        };
        let messages = messages(changes);
        assert_eq!(shape(&messages), [(CHUNK, 1, false), (1, 0, false)]);
        assert!(messages.iter().all(|m| !m.full));
    }

    fn ids(state: &SmState) -> Vec<String> {
        state
            .unacked
            .iter()
            .map(|r| r.to_element().unwrap().attr("id").unwrap().to_owned())
            .collect()
    }

    /// Two routers' shares interleave by number; what the client's `h` acknowledges
    /// goes, a copy two routers hold goes once, and the counts agree with the queue.
    #[test]
    fn shares_merge_in_order_above_the_clients_h() {
        let a = pb::TakeCopiesReply {
            copies: vec![copy(3), copy(5), copy(8)],
            handled: Some(10),
        };
        let b = pb::TakeCopiesReply {
            copies: vec![copy(4), copy(5), copy(6)],
            handled: Some(12),
        };
        let state = merge(&orphan(), vec![a, b], Some(4)).unwrap();
        assert_eq!(ids(&state), ["m5", "m6", "m8"]);
        assert_eq!((state.acked, state.sent, state.handled), (4, 7, 12));
        assert!(state.is_consistent());
    }

    /// Numbers wrap at 2^32: copies on both sides of the wrap keep their order.
    #[test]
    fn numbers_wrapping_past_u32_max_keep_their_order() {
        let share = pb::TakeCopiesReply {
            copies: vec![copy(1), copy(u32::MAX), copy(0), copy(u32::MAX - 1)],
            handled: Some(u32::MAX),
        };
        let other = pb::TakeCopiesReply {
            copies: vec![],
            handled: Some(3),
        };
        let state = merge(&orphan(), vec![share, other], Some(u32::MAX - 1)).unwrap();
        assert_eq!(
            ids(&state),
            [format!("m{}", u32::MAX), "m0".into(), "m1".into()]
        );
        assert_eq!(state.sent, 1);
        assert_eq!(state.handled, 3, "3 comes after u32::MAX");
    }

    #[test]
    fn without_h_the_last_acknowledgement_heard_counts_and_a_bad_copy_is_skipped() {
        let share = pb::TakeCopiesReply {
            copies: vec![copy(2), copy(3)],
            handled: None,
        };
        let state = merge(&orphan(), vec![share], None).unwrap();
        assert_eq!(ids(&state), ["m3"]);
        assert_eq!(state.handled, 0, "no router heard a count");
        let bad = pb::TakeCopiesReply {
            copies: vec![
                pb::SmCopy {
                    seq: 3,
                    xml: b"<message><unclosed>".to_vec(),
                },
                copy(4),
            ],
            handled: None,
        };
        let state = merge(&orphan(), vec![bad], None).unwrap();
        assert_eq!(ids(&state), ["m4"]);
        assert!(state.is_consistent());
    }
}
