//! One SASL exchange as a sans-IO state machine: the session feeds it the client's
//! messages and the stored credentials it asked for, and it answers with the next step.
//!
//! An account that does not exist goes through the same steps, at the same cost, as one
//! whose password is wrong: its keys come from the [`Decoy`] (see `decoy.rs`).

use super::credentials::{HashAlg, ScramKeys, StoredCredentials};
use super::decoy::Decoy;
use super::scram::{self, ClientFirst, ServerFirst};
use super::{ChannelBindings, Failure, Mechanism};
use std::borrow::Cow;

/// What the session must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Look up the stored credentials of `username` and call [`Exchange::credentials`].
    NeedCredentials {
        username: String,
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
    /// PLAIN: credentials requested for this message.
    PlainPending {
        authzid: Option<String>,
        username: String,
        password: String,
    },
    /// SCRAM: credentials requested for this client-first message.
    ScramPending(ClientFirst),
    /// SCRAM: server-first sent; `keys` are the real or (for unknown users) decoy keys.
    ScramFinal {
        client: ClientFirst,
        server: ServerFirst,
        keys: ScramKeys,
        known: bool,
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

    /// Supplies the stored credentials asked for (`None`: no such account).
    pub fn credentials(&mut self, creds: Option<&StoredCredentials>) -> Step {
        match std::mem::replace(&mut self.state, State::Done) {
            State::PlainPending {
                authzid,
                username,
                password,
            } => {
                // Hashed against decoy keys when there is no account: the same work.
                let keys = match creds {
                    Some(c) => Cow::Borrowed(&c.sha256),
                    None => Cow::Owned(self.decoy.keys(HashAlg::Sha256, &username)),
                };
                let matches = keys.verify_password(HashAlg::Sha256, &password);
                if matches && creds.is_some() {
                    Step::Success {
                        username,
                        authzid,
                        additional: None,
                    }
                } else {
                    Step::Failure(Failure::NotAuthorized)
                }
            }
            State::ScramPending(client) => {
                let alg = self.mechanism.hash().expect("SCRAM mechanisms have a hash");
                let (keys, known) = match creds {
                    Some(c) => (c.keys(alg).clone(), true),
                    None => (self.decoy.keys(alg, &client.username), false),
                };
                let nonce = crate::token::token(24);
                let server = scram::server_first(&client, &keys, &nonce);
                let challenge = server.message.clone().into_bytes();
                self.state = State::ScramFinal {
                    client,
                    server,
                    keys,
                    known,
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
                keys,
                known,
            } => {
                let alg = self.mechanism.hash().expect("SCRAM mechanisms have a hash");
                match scram::verify_client_final(msg, alg, &keys, &client, &server, &self.cb) {
                    Ok(server_final) if known => Step::Success {
                        username: client.username,
                        authzid: client.authzid,
                        additional: Some(server_final.into_bytes()),
                    },
                    Ok(_) => Step::Failure(Failure::NotAuthorized),
                    Err(f) => Step::Failure(f),
                }
            }
            _ => self.fail(Failure::MalformedRequest),
        }
    }
}
