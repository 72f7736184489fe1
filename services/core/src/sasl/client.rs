//! The client side of SCRAM (RFC 5802 §3), for the load generator and for tests that log
//! in the way a real client does.

use super::credentials::{HashAlg, SaltedPassword, ScramKeys};
use super::ct_eq;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

#[derive(Debug, Clone)]
pub struct ScramClient {
    alg: HashAlg,
    password: String,
    /// Given by the caller from an earlier login, or derived here; see [`SaltedPassword`].
    salted: Option<SaltedPassword>,
    gs2_header: String,
    cb_data: Vec<u8>,
    nonce: String,
    first_bare: String,
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// `binding` is `(type name, data)` for a `-PLUS` mechanism.
    pub fn new(
        alg: HashAlg,
        username: &str,
        password: &str,
        binding: Option<(&str, &[u8])>,
    ) -> Self {
        let nonce = crate::token::token(24);
        let user = username.replace('=', "=3D").replace(',', "=2C");
        let (gs2_header, cb_data) = match binding {
            Some((name, data)) => (format!("p={name},,"), data.to_vec()),
            None => ("n,,".to_owned(), Vec::new()),
        };
        Self {
            alg,
            password: password.to_owned(),
            salted: None,
            gs2_header,
            cb_data,
            first_bare: format!("n={user},r={nonce}"),
            nonce,
            server_signature: None,
        }
    }

    /// Reuses the SaltedPassword of an earlier login; it is used only if the server
    /// presents the same salt and iteration count, otherwise it is derived again.
    pub fn with_salted_password(mut self, cached: SaltedPassword) -> Self {
        self.salted = Some(cached);
        self
    }

    /// The SaltedPassword this login used, for the caller to keep (after `client_final`).
    pub fn salted_password(&self) -> Option<&SaltedPassword> {
        self.salted.as_ref()
    }

    pub fn client_first(&self) -> String {
        format!("{}{}", self.gs2_header, self.first_bare)
    }

    /// Answers the server-first message; `None` if it is malformed or does not extend
    /// our nonce.
    pub fn client_final(&mut self, server_first: &str) -> Option<String> {
        let mut fields = server_first.split(',');
        let nonce = fields.next()?.strip_prefix("r=")?;
        let salt = B64.decode(fields.next()?.strip_prefix("s=")?).ok()?;
        let iterations: u32 = fields.next()?.strip_prefix("i=")?.parse().ok()?;
        if !nonce.starts_with(&self.nonce) || iterations == 0 {
            return None;
        }
        let salted = match self.salted.take() {
            Some(cached) if cached.salt == salt && cached.iterations == iterations => cached,
            _ => SaltedPassword::derive(self.alg, &self.password, &salt, iterations).ok()?,
        };
        let (keys, client_key) = ScramKeys::from_salted(self.alg, &salted);
        self.salted = Some(salted);
        let mut cbind = self.gs2_header.as_bytes().to_vec();
        cbind.extend_from_slice(&self.cb_data);
        let without_proof = format!("c={},r={nonce}", B64.encode(cbind));
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = self.alg.hmac(&keys.stored_key, &[auth_message.as_bytes()]);
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(k, s)| k ^ s)
            .collect();
        self.server_signature = Some(self.alg.hmac(&keys.server_key, &[auth_message.as_bytes()]));
        Some(format!("{without_proof},p={}", B64.encode(proof)))
    }

    /// Checks the server's `v=` proof that it knows the stored keys (mutual auth).
    pub fn verify_server_final(&self, server_final: &str) -> bool {
        let Some(expected) = &self.server_signature else {
            return false;
        };
        server_final
            .strip_prefix("v=")
            .and_then(|v| B64.decode(v).ok())
            .is_some_and(|v| ct_eq(&v, expected))
    }
}
