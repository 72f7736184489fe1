//! Feeds arbitrary bytes, split at an arbitrary point, to the XML framer after a valid
//! stream header: it must never panic and never buffer past its limit plus one read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::xml::{Framer, Limits};

const HEADER: &[u8] = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_stanza_bytes: 4096, ..Limits::default() };
    let mut framer = Framer::new(limits);
    framer.push(HEADER);
    let split = data.first().map_or(0, |b| *b as usize).min(data.len());
    for piece in [&data[..split], &data[split..]] {
        framer.push(piece);
        loop {
            match framer.next_frame() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
        assert!(framer.buffered() <= limits.max_stanza_bytes + piece.len() + 1);
    }
});
