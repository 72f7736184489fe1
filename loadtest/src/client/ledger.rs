//! Messages whose fate is known: each is numbered in its body, and every held session that
//! reads one counts it here, before and after its stream is broken and resumed. At the
//! end each number was read once (delivered), never (lost) or more than once
//! (duplicated), which is what "nothing lost, nothing twice" means for a storm.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::Relaxed};
use switchyard_core::{ns, Element};

/// What a numbered body starts with.
const MARK: &str = "ledger-";

#[derive(Debug)]
pub struct Ledger {
    /// Reads of each message, saturating at 255.
    reads: Vec<AtomicU8>,
    /// Whether each message was written to the server (a sender that failed or was
    /// stopped leaves numbers unsent, which are then neither lost nor delivered).
    sent: Vec<AtomicBool>,
}

/// The fate of every message sent.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Tally {
    pub sent: u64,
    /// Read exactly once.
    pub once: u64,
    /// Sent and never read.
    pub lost: u64,
    /// Read more than once.
    pub duplicated: u64,
}

impl Ledger {
    /// Room for `capacity` numbered messages.
    pub fn new(capacity: usize) -> Self {
        Self {
            reads: (0..capacity).map(|_| AtomicU8::new(0)).collect(),
            sent: (0..capacity).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.reads.len()
    }

    /// Message `n` to `to` (see [`Ledger::written`]).
    pub fn message(&self, n: usize, to: &str) -> String {
        Element::new("message", ns::CLIENT)
            .with_attr("to", to)
            .with_attr("type", "chat")
            .with_attr("id", format!("l{n}"))
            .with_child(Element::new("body", ns::CLIENT).with_text(format!("{MARK}{n}")))
            .to_xml(ns::CLIENT)
    }

    /// Marks `numbers` as sent, once their write succeeded.
    pub fn written(&self, numbers: &[usize]) {
        for &n in numbers {
            if let Some(sent) = self.sent.get(n) {
                sent.store(true, Relaxed);
            }
        }
    }

    /// Counts `el` when it is one of the numbered messages; `false` for anything else.
    pub fn record(&self, el: &Element) -> bool {
        if !el.is("message", ns::CLIENT) {
            return false;
        }
        let number = el
            .child("body", ns::CLIENT)
            .map(|b| b.text())
            .and_then(|t| t.strip_prefix(MARK).and_then(|n| n.parse::<usize>().ok()));
        match number.and_then(|n| self.reads.get(n)) {
            Some(reads) => {
                let _ = reads.fetch_update(Relaxed, Relaxed, |r| r.checked_add(1));
                true
            }
            None => false,
        }
    }

    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        let sent = self
            .sent
            .iter()
            .zip(&self.reads)
            .filter(|(s, _)| s.load(Relaxed));
        for (_, reads) in sent {
            t.sent += 1;
            match reads.load(Relaxed) {
                0 => t.lost += 1,
                1 => t.once += 1,
                _ => t.duplicated += 1,
            }
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_is_once_lost_or_duplicated() {
        let ledger = Ledger::new(4);
        // As a stream in `jabber:client` delivers them.
        let received = |xml: String| xml.replacen("<message", "<message xmlns='jabber:client'", 1);
        let sent: Vec<Element> = (0..3)
            .map(|n| Element::parse(&received(ledger.message(n, "a@localhost/r0"))).unwrap())
            .collect();
        ledger.written(&[0, 1, 2]); // number 3 was never written: not in the tally
        assert!(ledger.record(&sent[0]));
        assert!(ledger.record(&sent[2]));
        assert!(ledger.record(&sent[2]));
        let other = Element::parse("<message xmlns='jabber:client'><body>hi</body></message>");
        assert!(!ledger.record(&other.unwrap()), "not numbered");
        let t = ledger.tally();
        assert_eq!((t.sent, t.once, t.lost, t.duplicated), (3, 1, 1, 1));
    }
}
