//! The `tls-exporter` channel binding (RFC 9266) of a connection driven through rustls'
//! unbuffered API, which has no keying-material exporter of its own.
//!
//! rustls hands the TLS 1.3 exporter secret (RFC 8446 §7.1, `exporter_master_secret`) to
//! the configuration's `KeyLog` during the handshake, inside the call that processes the
//! client's records. [`capture`] wraps each such call and takes the secret from a
//! thread-local slot [`ExporterLog`] fills, so the secret reaches only the connection whose
//! call produced it and is never kept beyond the handshake. [`binding`] then derives
//! RFC 8446 §7.5's exporter from it, with the connection's own hash and HKDF.

use rustls::crypto::tls13::OkmBlock;
use rustls::server::UnbufferedServerConnection;
use rustls::SupportedCipherSuite;
use std::cell::RefCell;

/// RFC 9266 §2: the exporter label of the binding, with no context, 32 bytes.
const LABEL: &[u8] = b"EXPORTER-Channel-Binding";
const LENGTH: usize = 32;

thread_local! {
    static SLOT: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// The `KeyLog` of the client-facing configuration: it keeps the exporter secret for the
/// [`capture`] around the call that produced it, and nothing else.
#[derive(Debug)]
pub(crate) struct ExporterLog;

impl rustls::KeyLog for ExporterLog {
    fn log(&self, label: &str, _client_random: &[u8], secret: &[u8]) {
        if label == "EXPORTER_SECRET" {
            SLOT.with(|slot| *slot.borrow_mut() = Some(secret.to_vec()));
        }
    }

    fn will_log(&self, label: &str) -> bool {
        label == "EXPORTER_SECRET"
    }
}

/// Runs `f` (one synchronous call into rustls) and takes the exporter secret it logged.
pub(crate) fn capture<T>(f: impl FnOnce() -> T) -> (T, Option<Vec<u8>>) {
    SLOT.with(|slot| slot.borrow_mut().take());
    let result = f();
    (result, SLOT.with(|slot| slot.borrow_mut().take()))
}

/// TLS-Exporter("EXPORTER-Channel-Binding", "", 32) from the exporter secret (RFC 8446
/// §7.5): HKDF-Expand-Label(Derive-Secret(secret, label, ""), "exporter", Hash(""), 32).
/// None unless the connection negotiated TLS 1.3 (RFC 9266 §3 needs TLS 1.3, or 1.2
/// with extended master secret, which this server does not offer the binding for).
pub(crate) fn binding(tls: &UnbufferedServerConnection, secret: &[u8]) -> Option<Vec<u8>> {
    let Some(SupportedCipherSuite::Tls13(suite)) = tls.negotiated_cipher_suite() else {
        return None;
    };
    let hash = suite.common.hash_provider;
    let empty = hash.hash(&[]);
    let mut derived = vec![0u8; hash.output_len()];
    let mut out = vec![0u8; LENGTH];
    let expand = |key: &[u8], label: &[u8], out: &mut [u8]| {
        let length = (out.len() as u16).to_be_bytes();
        let label_length = [(b"tls13 ".len() + label.len()) as u8];
        let context_length = [empty.as_ref().len() as u8];
        let info: [&[u8]; 6] = [
            &length,
            &label_length,
            b"tls13 ",
            label,
            &context_length,
            empty.as_ref(),
        ];
        suite
            .hkdf_provider
            .expander_for_okm(&OkmBlock::new(key))
            .expand_slice(&info, out)
            .ok()
    };
    expand(secret, LABEL, &mut derived)?;
    expand(&derived, b"exporter", &mut out)?;
    wipe(&mut derived);
    Some(out)
}

/// Overwrites a secret before its memory is freed.
pub(crate) fn wipe(secret: &mut [u8]) {
    secret.fill(0);
    std::hint::black_box(secret);
}
