//! Feeds arbitrary text to `Jid::parse` (RFC 7622): it must never panic, and when the
//! printed form of a parsed address parses, it must be the same address.
//!
//! Known gap, not asserted: normalization is not always idempotent (RFC 8264 §7 wants it
//! to be). `a@b/x\u{387}` parses, NFC turns U+0387 into U+00B7, and the printed
//! `a@b/x\u{B7}` is then rejected by OpaqueString's context rule for U+00B7.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::Jid;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(jid) = Jid::parse(text) else {
        return;
    };
    assert!(jid.bare().is_bare());
    let printed = jid.to_string();
    if let Ok(again) = Jid::parse(&printed) {
        assert_eq!(again, jid, "{printed:?}");
    }
});
