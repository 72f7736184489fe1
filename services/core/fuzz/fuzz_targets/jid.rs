//! Feeds arbitrary text to `Jid::parse` (RFC 7622): it must never panic, and the printed
//! form of a parsed address must parse to the same address (normalization is stable,
//! RFC 8264 §7).
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
    assert_eq!(Jid::parse(&printed), Ok(jid), "{printed:?}");
});
