//! XEP-0198 §5 resumption: a session taking over a new connection on the same edge
//! ([`Session::resume`]), and a session moving between edges as its state
//! ([`Session::export`] on the edge that held it, [`Session::adopt`] on the one the
//! client came back to). Either way the client gets `<resumed/>` with the number of its
//! stanzas handled, then everything it has not acknowledged, in order, once.

use super::sm::{ResumeRefused, Sm};
use super::{Output, Phase, Session};
use crate::jid::Jid;
use crate::routed::Routed;
use std::collections::VecDeque;

/// A resumable session's state, moving from the edge that held it to the one its client
/// came back to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmState {
    pub jid: Jid,
    pub id: String,
    pub max_secs: u32,
    /// The client's stanzas handled.
    pub handled: u32,
    /// Stanzas sent to the client.
    pub sent: u32,
    /// The client's last acknowledgement.
    pub acked: u32,
    /// Sent or queued, not acknowledged, in order (`sent - acked` of them).
    pub unacked: Vec<Routed>,
}

impl SmState {
    /// Whether the counts agree with the queue (a state from another process is checked).
    pub fn is_consistent(&self) -> bool {
        self.sent.wrapping_sub(self.acked) as usize == self.unacked.len()
            && self.jid.resource().is_some()
    }
}

impl Session {
    /// Resumes this detached (or still attached) session on `newer`'s transport: takes
    /// its stream state, answers `<resumed/>` and resends what `h` does not acknowledge.
    /// `newer` ends silently. Refused (and nothing changed) when `h` is impossible.
    pub fn resume(
        &mut self,
        newer: &mut Session,
        h: Option<u32>,
    ) -> Result<Vec<Output>, ResumeRefused> {
        let resumable = matches!(self.phase, Phase::Established | Phase::Detached);
        let Some(sm) = self.sm.as_ref().filter(|_| resumable) else {
            return Err(ResumeRefused::NotFound);
        };
        check(sm, h)?;
        self.framer = std::mem::replace(
            &mut newer.framer,
            crate::xml::Framer::new(self.config.limits),
        );
        self.tls = newer.tls.take();
        self.domain = newer.domain.clone();
        // The new transport's policy: its framing (a session left over WebSocket may come
        // back over TCP, and the other way round) and its limits.
        self.config = newer.config.clone();
        // Resumed inside SASL2: the new connection's request is answered here.
        self.sasl2 = newer.sasl2.take();
        newer.phase = Phase::Closed;
        newer.out.clear();
        Ok(self.resumed(h))
    }

    /// Takes this session's state away to another edge: the session ends here without
    /// a word (no unavailable presence, nothing handed back: it lives on there).
    pub fn export(&mut self) -> Option<SmState> {
        if !matches!(self.phase, Phase::Established | Phase::Detached) {
            return None;
        }
        let sm = self.sm.take()?;
        let (Some(id), Some(jid)) = (sm.id, self.jid.clone()) else {
            return None;
        };
        self.phase = Phase::Closed;
        self.out.clear();
        Some(SmState {
            jid,
            id,
            max_secs: sm.max,
            handled: sm.handled,
            sent: sm.sent,
            acked: sm.acked,
            unacked: sm.unacked.into(),
        })
    }

    /// Becomes the session `state` describes (this connection authenticated as its
    /// account and asked to resume it), answering `<resumed/>` as [`Session::resume`]
    /// does. Refused when `h` is impossible or this stream is not waiting to resume; the
    /// state comes back then, for its stanzas to be handed to the router.
    pub fn adopt(
        &mut self,
        state: SmState,
        h: Option<u32>,
    ) -> Result<Vec<Output>, (Box<SmState>, ResumeRefused)> {
        let unacked_bytes = state.unacked.iter().map(Routed::estimated_bytes).sum();
        let sm = Sm {
            id: Some(state.id.clone()),
            max: state.max_secs,
            handled: state.handled,
            sent: state.sent,
            acked: state.acked,
            unacked: VecDeque::from(state.unacked.clone()),
            unacked_bytes,
            since_request: 0,
        };
        let ours = self.account().is_some_and(|a| a == state.jid.bare());
        if !matches!(self.phase, Phase::AwaitResume) || !ours {
            return Err((Box::new(state), ResumeRefused::NotFound));
        }
        if let Err(why) = check(&sm, h) {
            return Err((Box::new(state), why));
        }
        self.jid = Some(state.jid);
        self.sm = Some(Box::new(sm));
        Ok(self.resumed(h))
    }

    /// The resumed stream's first words: `<resumed/>` (inside SASL2's `<success/>`,
    /// followed by stream features, when it was asked for inline), the resends, an ack
    /// request.
    fn resumed(&mut self, h: Option<u32>) -> Vec<Output> {
        if let Some(h) = h {
            self.acknowledge(h);
        }
        self.header_sent = true;
        self.phase = Phase::Established;
        self.out.clear();
        let Some(sm) = self.sm.as_mut() else {
            return Vec::new();
        };
        let resumed = Sm::sm_element("resumed")
            .with_attr("h", sm.handled.to_string())
            .with_attr("previd", sm.id.clone().unwrap_or_default());
        sm.since_request = 0;
        let framing = self.config.framing;
        let resend: Vec<String> = sm.unacked.iter().map(|r| framing.stanza(r)).collect();
        let ask = !resend.is_empty();
        if self.in_sasl2() {
            let jid = self.jid.as_ref().map(Jid::to_string).unwrap_or_default();
            let success = self.sasl2_success(&jid, Some(resumed));
            self.send_el(&success);
            self.send_features();
        } else {
            self.send_el(&resumed);
        }
        for xml in resend {
            self.send(xml);
        }
        // XEP-0352 §5.1: a new stream starts active.
        self.flush_held();
        self.inactive = None;
        if ask {
            self.request_ack();
        }
        self.pump();
        std::mem::take(&mut self.out)
    }
}

/// The client's `h` acknowledges no more than was sent.
fn check(sm: &Sm, h: Option<u32>) -> Result<(), ResumeRefused> {
    match h {
        Some(h) if h.wrapping_sub(sm.acked) as usize > sm.unacked.len() => {
            Err(ResumeRefused::HandledTooHigh { h, sent: sm.sent })
        }
        _ => Ok(()),
    }
}
