//! Drives the whole c2s session state machine with arbitrary bytes: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use switchyard_core::session::{Input, Session, SessionConfig};

fuzz_target!(|data: &[u8]| {
    let mut session = Session::new(Arc::new(SessionConfig { tls_required: false, ..SessionConfig::default() }), None);
    for chunk in data.chunks(64) {
        session.handle(Input::Bytes(chunk));
    }
});
