//! One SASL exchange as a sans-IO state machine: the session feeds it the client's
//! messages, the account's salts it asked for, and the answer to the proof it asked to
//! have checked; it answers with the next step. It never holds an account's keys: the
//! proof is checked where they are (see `proof.rs`).
//!
//! An account that does not exist goes through the same steps, at the same cost, as one
//! whose password is wrong: its salt comes from the [`Decoy`] (see `decoy.rs`), and its
//! proof is sent to be checked like any other.

use super::credentials::{AccountSalts, HashAlg, SaltedPassword};
use super::decoy::Decoy;
use super::proof::ScramProof;
use super::scram::{self, ClientFirst, ServerFirst};
use super::{ChannelBindings, Failure, Mechanism};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

/// What the session must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Look up the salts of `username` and call [`Exchange::credentials`].
    NeedCredentials {
        username: String,
    },
    /// Have the proof checked against `username`'s stored keys (also when the lookup found
    /// no account) and call [`Exchange::verified`] with the answer.
    Verify {
        username: String,
        proof: ScramProof,
    },
    /// XEP-0484: have the hashed token checked against `username`'s tokens for this
    /// mechanism (and the client's user agent) and call [`Exchange::verified`] with the
    /// HT responder message, or `None`.
    VerifyToken {
        username: String,
        hashed: Vec<u8>,
        cb_data: Vec<u8>,
    },
    /// Send a `<challenge/>` with this data and wait for a `<response/>`.
    Challenge(Vec<u8>),
    /// Authenticated; send `<success/>` with the additional data, if any.
    Success {
        username: String,
        authzid: Option<String>,
        additional: Option<Vec<u8>>,
    },
    Failure(Failure),
}

#[derive(Debug)]
enum State {
    /// PLAIN without an initial response: waiting for the credentials message.
    AwaitPlain,
    /// PLAIN: salts requested for this message.
    PlainPending {
        authzid: Option<String>,
        username: String,
        password: String,
    },
    /// PLAIN: the proof made from the password is being checked.
    PlainVerify {
        authzid: Option<String>,
        username: String,
        known: bool,
    },
    /// SCRAM: salts requested for this client-first message.
    ScramPending(ClientFirst),
    /// SCRAM: server-first sent with the real or (for unknown users) decoy salt.
    ScramFinal {
        client: ClientFirst,
        server: ServerFirst,
        known: bool,
    },
    /// SCRAM: the client's proof is being checked.
    ScramVerify {
        client: ClientFirst,
        known: bool,
    },
    /// HT: the hashed token is being checked.
    TokenVerify {
        username: String,
    },
    Done,
}

/// A running SASL exchange.
#[derive(Debug)]
pub struct Exchange {
    mechanism: Mechanism,
    cb: ChannelBindings,
    /// Whether `-PLUS` variants were offered on this connection (for the GS2 `y` check).
    offered_plus: bool,
    /// Keys for unknown users, so they look (and take as long) as known ones.
    decoy: Decoy,
    state: State,
}

impl Exchange {
    /// Starts an exchange with the client's `<auth/>` initial response, if any.
    pub fn start(
        mechanism: Mechanism,
        initial: Option<&[u8]>,
        cb: ChannelBindings,
        decoy: Decoy,
    ) -> (Self, Step) {
        let mut exchange = Self {
            mechanism,
            offered_plus: cb.any(),
            cb,
            decoy,
            state: State::AwaitPlain,
        };
        let step = match (mechanism, initial) {
            (Mechanism::Plain, None) => Step::Challenge(Vec::new()),
            (Mechanism::Plain, Some(msg)) => exchange.plain(msg),
            (_, None) => exchange.fail(Failure::MalformedRequest),
            (m, Some(msg)) if m.is_token() => exchange.token(msg),
            (_, Some(msg)) => exchange.scram_first(msg),
        };
        (exchange, step)
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    fn fail(&mut self, failure: Failure) -> Step {
        self.state = State::Done;
        Step::Failure(failure)
    }

    fn plain(&mut self, msg: &[u8]) -> Step {
        let Ok(text) = std::str::from_utf8(msg) else {
            return self.fail(Failure::MalformedRequest);
        };
        let mut parts = text.split('\0');
        let (Some(authzid), Some(username), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.fail(Failure::MalformedRequest);
        };
        let username = username.to_owned();
        self.state = State::PlainPending {
            authzid: (!authzid.is_empty()).then(|| authzid.to_owned()),
            username: username.clone(),
            password: password.to_owned(),
        };
        Step::NeedCredentials { username }
    }

    /// HT §3.1: single round trip, client first.
    fn token(&mut self, msg: &[u8]) -> Step {
        let Some(cb_data) = super::fast::cb_data(self.mechanism, &self.cb) else {
            return self.fail(Failure::InvalidMechanism);
        };
        match super::fast::Initiator::parse(msg) {
            Ok(initiator) => {
                self.state = State::TokenVerify {
                    username: initiator.username.clone(),
                };
                Step::VerifyToken {
                    username: initiator.username,
                    hashed: initiator.hashed,
                    cb_data,
                }
            }
            Err(f) => self.fail(f),
        }
    }

    fn scram_first(&mut self, msg: &[u8]) -> Step {
        match scram::parse_client_first(msg, self.mechanism.is_plus(), self.offered_plus, &self.cb)
        {
            Ok(client) => {
                let username = client.username.clone();
                self.state = State::ScramPending(client);
                Step::NeedCredentials { username }
            }
            Err(f) => self.fail(f),
        }
    }

    /// Supplies the salts asked for (`None`: no such account).
    pub fn credentials(&mut self, salts: Option<&AccountSalts>) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::PlainPending {
                authzid,
                username,
                password,
            } => {
                // SHA-256 keys unless the account has only SHA-1 ones (imported); hashed
                // with the decoy salt when there is no account: the same work.
                let alg = match salts {
                    Some(s) if !s.sha256.is_usable() => HashAlg::Sha1,
                    _ => HashAlg::Sha256,
                };
                let salts = salts.filter(|s| s.get(alg).is_usable());
                let salt = match salts {
                    Some(s) => s.get(alg).clone(),
                    None => self.decoy.salt(alg, &username),
                };
                let Ok(salted) =
                    SaltedPassword::derive(alg, &password, &salt.salt, salt.iterations)
                else {
                    return self.fail(Failure::NotAuthorized);
                };
                let client_key = alg.hmac(&salted.salted, &[b"Client Key"]);
                let nonce = crate::token::token(24);
                let proof = ScramProof::sign(alg, &client_key, nonce.into_bytes());
                self.state = State::PlainVerify {
                    authzid,
                    username: username.clone(),
                    known: salts.is_some(),
                };
                Step::Verify { username, proof }
            }
            State::ScramPending(client) => {
                let alg = self.mechanism.hash().expect("SCRAM mechanisms have a hash");
                // An account without keys for this hash (imported with SHA-1 keys only)
                // looks like no account: decoy salt, and the proof fails.
                let salts = salts.filter(|s| s.get(alg).is_usable());
                let salt = match salts {
                    Some(s) => s.get(alg).clone(),
                    None => self.decoy.salt(alg, &client.username),
                };
                let nonce = crate::token::token(24);
                let server = scram::server_first(&client, &salt, &nonce);
                let challenge = server.message.clone().into_bytes();
                self.state = State::ScramFinal {
                    client,
                    server,
                    known: salts.is_some(),
                };
                Step::Challenge(challenge)
            }
            _ => self.fail(Failure::MalformedRequest),
        }
    }

    /// Handles a `<response/>` from the client.
    pub fn response(&mut self, msg: &[u8]) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::AwaitPlain => self.plain(msg),
            State::ScramFinal {
                client,
                server,
                known,
            } => {
                let alg = self.mechanism.hash().expect("SCRAM mechanisms have a hash");
                match scram::client_final(msg, alg, &client, &server, &self.cb) {
                    Ok(proof) => {
                        let username = client.username.clone();
                        self.state = State::ScramVerify { client, known };
                        Step::Verify { username, proof }
                    }
                    Err(f) => Step::Failure(f),
                }
            }
            _ => self.fail(Failure::MalformedRequest),
        }
    }

    /// Supplies the answer to [`Step::Verify`]: the ServerSignature if the proof was
    /// right, `None` if it was wrong or there is no such account.
    pub fn verified(&mut self, server_signature: Option<&[u8]>) -> Step {
        match (
            std::mem::replace(&mut self.state, State::Done),
            server_signature,
        ) {
            (
                State::PlainVerify {
                    authzid,
                    username,
                    known: true,
                },
                Some(_),
            ) => Step::Success {
                username,
                authzid,
                additional: None,
            },
            (
                State::ScramVerify {
                    client,
                    known: true,
                },
                Some(signature),
            ) => Step::Success {
                username: client.username,
                authzid: client.authzid,
                additional: Some(format!("v={}", B64.encode(signature)).into_bytes()),
            },
            (State::TokenVerify { username }, Some(responder)) => Step::Success {
                username,
                authzid: None,
                additional: Some(responder.to_vec()),
            },
            (
                State::PlainVerify { .. } | State::ScramVerify { .. } | State::TokenVerify { .. },
                _,
            ) => Step::Failure(Failure::NotAuthorized),
            _ => self.fail(Failure::MalformedRequest),
        }
    }
}
