//! XEP-0198 in the cluster: a resumable session writes a router's stanza only once that
//! router has read the number the session gave it.
//!
//! Why: a client that resumes after its edge was killed gets back, from the routers'
//! copies, every stanza numbered above its `h` (README, "Design: resuming a session whose
//! edge died"). A router keeps a copy only once it reads the edge's answer carrying the
//! number. An answer still in this process, or in a socket the kill resets, never reaches
//! it: the router then counts the delivery as failed and stores the stanza offline. Had
//! the client read it, the resumed session would get it twice. So such a stanza waits
//! here, unwritten, until the router confirms (`Confirmed` on the link): whatever the
//! moment of the kill, the router read the number of every stanza the client read (and
//! kept a copy, within its bounds), and a stanza it stored offline was never written.
//!
//! What waits: the stanza's own output and everything written after it (writes stay in
//! order; the client counts stanzas in the order it reads them). Routing the client's
//! stanzas, the handshake and the rest do not wait. A router that never confirms (its link
//! lost, an older router) holds a stanza at most [`PATIENCE`]; it is then written without
//! the guarantee, and counted (`switchyard_edge_sm_unconfirmed_writes_total`). A close
//! that ends the session writes what waits first: the process is not dying, so the
//! routers will read the answers. A close that detaches it (the connection lost, or idle
//! past its timeout) writes none of it: it is all in the queue a resumption resends.
//!
//! A session that loses its stream keeps the numbers still waiting (not the writes: they
//! are in the queue a resumption resends), and numbers those it is delivered while
//! detached; a resumption's first words (`<resumed/>` and the resends) wait until all
//! of them are confirmed, so what it resends has a copy too.
//!
//! Cost: one link message per batch of answers a router reads, and a stanza's write waits
//! one round trip over the link. An idle session holds nothing here (the gate exists only
//! while something waits).

use std::collections::{HashSet, VecDeque};
use std::time::Duration;
use switchyard_core::session::Output;
use switchyard_telemetry as metrics;
use tokio::time::Instant;

/// Longest a stanza waits for its confirmation before it is written anyway. A link's
/// round trip takes well under a millisecond; seconds mean the link is gone.
pub(super) const PATIENCE: Duration = Duration::from_secs(2);

/// What a session holds unwritten, in order.
#[derive(Debug, Default)]
pub(super) struct Gate {
    queue: VecDeque<Held>,
    /// Numbers confirmed while one queued ahead of them still waits; only numbers within
    /// the span of those waiting are taken, so this never outgrows that span (bounded by
    /// the session's unacknowledged queue).
    confirmed: HashSet<u32>,
    /// Where, in the outputs [`Gate::pass`] gets next, each stanza that is to wait
    /// begins, with its number.
    marks: Vec<(usize, u32)>,
    /// The number of the last stanza set to wait: numbers wait in increasing (wrapping)
    /// order, so those waiting lie between the front's and this.
    last: u32,
}

#[derive(Debug)]
enum Held {
    /// A stanza numbered this waits from this instant; what follows waits behind it.
    Wait(u32, Instant),
    Out(Output),
}

impl Gate {
    /// The stanza numbered `seq`, whose outputs begin at `at` in the next outputs
    /// passed, waits for its confirmation.
    pub(super) fn mark(&mut self, at: usize, seq: u32) {
        self.marks.push((at, seq));
        self.last = seq;
    }

    /// A router read the answer for `seq`. A number outside those waiting (written after
    /// the patience, or never held here, or made up) is ignored; so the confirmed
    /// numbers never outnumber the span of those waiting.
    pub(super) fn confirm(&mut self, seq: u32) {
        let first = match self.queue.front() {
            Some(Held::Wait(first, _)) => *first,
            _ => {
                // Nothing queued (a detached session, or marks not passed yet): a mark
                // confirmed no longer needs to wait at all.
                if let Some(at) = self.marks.iter().position(|(_, s)| *s == seq) {
                    self.marks.remove(at);
                }
                return;
            }
        };
        if seq.wrapping_sub(first) <= self.last.wrapping_sub(first) {
            self.confirmed.insert(seq);
        }
    }

    /// Takes the session's next outputs (with the stanzas marked in them) and gives back
    /// what may be carried out now, in order. `detached`: the session lost its stream
    /// (see the module's doc for what its close does).
    pub(super) fn pass(
        &mut self,
        outputs: Vec<Output>,
        now: Instant,
        detached: bool,
    ) -> Vec<Output> {
        let mut marks = std::mem::take(&mut self.marks).into_iter().peekable();
        let mut out = Vec::with_capacity(outputs.len());
        for (i, output) in outputs.into_iter().enumerate() {
            while let Some((_, seq)) = marks.next_if(|(at, _)| *at <= i) {
                self.queue.push_back(Held::Wait(seq, now));
            }
            match output {
                Output::Send(_) if !self.queue.is_empty() => {
                    self.queue.push_back(Held::Out(output))
                }
                Output::Close if detached => {
                    for (_, seq) in marks.by_ref() {
                        self.queue.push_back(Held::Wait(seq, now));
                    }
                    self.detach();
                    out.push(output);
                }
                Output::Close => {
                    out.extend(self.release(|_| true));
                    out.push(output);
                }
                other => out.push(other),
            }
        }
        for (_, seq) in marks {
            self.queue.push_back(Held::Wait(seq, now));
        }
        out.extend(self.release(|since| now >= since + PATIENCE));
        out
    }

    /// The writes at the front that may go: up to the first stanza that still waits and
    /// is not `overdue`.
    fn release(&mut self, overdue: impl Fn(Instant) -> bool) -> Vec<Output> {
        let mut out = Vec::new();
        while let Some(front) = self.queue.front() {
            match front {
                Held::Out(_) => {}
                Held::Wait(seq, _) if self.confirmed.remove(seq) => {}
                Held::Wait(_, since) if overdue(*since) => metrics::EDGE_SM_UNCONFIRMED.inc(),
                Held::Wait(..) => break,
            }
            if let Some(Held::Out(output)) = self.queue.pop_front() {
                out.push(output);
            }
        }
        if self.queue.is_empty() {
            self.confirmed = HashSet::new();
        }
        out
    }

    /// When the stanza waiting at the front is written even without its confirmation.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self.queue.front() {
            Some(Held::Wait(_, since)) => Some(*since + PATIENCE),
            _ => None,
        }
    }

    /// The session lost its stream: what waited is dropped unwritten (the queue a
    /// resumption resends holds it), and the numbers still unconfirmed are marked to
    /// hold back whatever the next stream is sent first, until each is confirmed.
    pub(super) fn detach(&mut self) {
        let waits = self.queue.drain(..).filter_map(|held| match held {
            Held::Wait(seq, _) => Some(seq),
            Held::Out(_) => None,
        });
        let marked = std::mem::take(&mut self.marks)
            .into_iter()
            .map(|(_, seq)| seq);
        let confirmed = std::mem::take(&mut self.confirmed);
        self.marks = waits
            .chain(marked)
            .filter(|seq| !confirmed.contains(seq))
            .map(|seq| (0, seq))
            .collect();
    }

    /// Nothing waits and nothing is marked: the gate can go.
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.marks.is_empty()
    }
}

#[cfg(test)]
mod tests;
