use super::*;

fn decoy() -> Decoy {
    Decoy::new(b"a test secret of enough bytes!!!", 4096)
}

fn creds() -> StoredCredentials {
    StoredCredentials::from_password("pencil", 4096).unwrap()
}

/// Plays the router for a [`Step::Verify`]: checks the proof against `stored` and feeds
/// the answer back; any other step is returned as it is.
fn answer(ex: &mut Exchange, step: Step, stored: Option<&StoredCredentials>) -> Step {
    match step {
        Step::Verify { proof, .. } => {
            let signature = proof.check(stored);
            ex.verified(signature.as_deref())
        }
        other => other,
    }
}

/// Runs a whole SCRAM exchange; returns the server's last step.
fn scram(
    mech: Mechanism,
    password: &str,
    client_cb: Option<(&str, &[u8])>,
    server_cb: ChannelBindings,
    known: bool,
) -> Step {
    let stored = creds();
    let mut client = ScramClient::new(mech.hash().unwrap(), "user", password, client_cb);
    let (mut ex, step) = Exchange::start(
        mech,
        Some(client.client_first().as_bytes()),
        server_cb,
        decoy(),
    );
    if let Step::Failure(_) = step {
        return step;
    }
    assert_eq!(
        step,
        Step::NeedCredentials {
            username: "user".into()
        }
    );
    let Step::Challenge(first) = ex.credentials(known.then_some(&stored.salts())) else {
        panic!("no challenge")
    };
    let fin = client
        .client_final(std::str::from_utf8(&first).unwrap())
        .unwrap();
    let step = ex.response(fin.as_bytes());
    let step = answer(&mut ex, step, known.then_some(&stored));
    if let Step::Success {
        additional: Some(v),
        ..
    } = &step
    {
        assert!(
            client.verify_server_final(std::str::from_utf8(v).unwrap()),
            "server proof must verify"
        );
    }
    step
}

fn cb13() -> ChannelBindings {
    ChannelBindings {
        tls_exporter: Some(vec![7; 32]),
        tls_server_end_point: Some(vec![9; 32]),
    }
}

#[test]
fn scram_sha1_and_sha256_succeed_with_the_right_password() {
    for mech in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
        assert!(matches!(
            scram(mech, "pencil", None, ChannelBindings::default(), true),
            Step::Success { .. }
        ));
        assert_eq!(
            scram(mech, "pen", None, ChannelBindings::default(), true),
            Step::Failure(Failure::NotAuthorized)
        );
    }
}

#[test]
fn unknown_users_fail_only_at_the_end() {
    assert_eq!(
        scram(
            Mechanism::ScramSha256,
            "pencil",
            None,
            ChannelBindings::default(),
            false
        ),
        Step::Failure(Failure::NotAuthorized)
    );
}

#[test]
fn plus_variants_bind_to_the_channel() {
    for name in ["tls-exporter", "tls-server-end-point"] {
        let data = cb13().get(name).unwrap().to_vec();
        let ok = scram(
            Mechanism::ScramSha256Plus,
            "pencil",
            Some((name, &data)),
            cb13(),
            true,
        );
        assert!(matches!(ok, Step::Success { .. }), "{name}");
        // A man in the middle sees different channel data than the client.
        let mitm = scram(
            Mechanism::ScramSha256Plus,
            "pencil",
            Some((name, &[1; 32])),
            cb13(),
            true,
        );
        assert_eq!(mitm, Step::Failure(Failure::NotAuthorized), "{name}");
    }
    // tls-unique is not supported: rustls cannot provide it.
    let unique = scram(
        Mechanism::ScramSha1Plus,
        "pencil",
        Some(("tls-unique", &[1; 12])),
        cb13(),
        true,
    );
    assert_eq!(unique, Step::Failure(Failure::NotAuthorized));
}

#[test]
fn gs2_y_flag_is_a_downgrade_when_plus_was_offered() {
    let start = |cb| {
        Exchange::start(
            Mechanism::ScramSha256,
            Some(b"y,,n=user,r=abc"),
            cb,
            decoy(),
        )
        .1
    };
    assert_eq!(start(cb13()), Step::Failure(Failure::NotAuthorized));
    assert!(matches!(
        start(ChannelBindings::default()),
        Step::NeedCredentials { .. }
    ));
}

#[test]
fn malformed_scram_messages_are_rejected() {
    for msg in [
        &b"x"[..],
        b"n,,r=abc",
        b"n,,n=user",
        b"n,,n=us=zzer,r=abc",
        b"n,x,n=user,r=abc",
        b"\xff",
    ] {
        let (_, step) = Exchange::start(
            Mechanism::ScramSha256,
            Some(msg),
            ChannelBindings::default(),
            decoy(),
        );
        assert_eq!(step, Step::Failure(Failure::MalformedRequest), "{msg:?}");
    }
}

#[test]
fn plain_checks_the_password_against_stored_keys() {
    let stored = creds();
    let (mut ex, step) = Exchange::start(
        Mechanism::Plain,
        Some(b"\0user\0pencil"),
        ChannelBindings::default(),
        decoy(),
    );
    assert_eq!(
        step,
        Step::NeedCredentials {
            username: "user".into()
        }
    );
    let step = ex.credentials(Some(&stored.salts()));
    assert!(matches!(
        answer(&mut ex, step, Some(&stored)),
        Step::Success {
            additional: None,
            ..
        }
    ));
    let (mut ex, _) = Exchange::start(
        Mechanism::Plain,
        Some(b"\0user\0wrong"),
        ChannelBindings::default(),
        decoy(),
    );
    let step = ex.credentials(Some(&stored.salts()));
    assert_eq!(
        answer(&mut ex, step, Some(&stored)),
        Step::Failure(Failure::NotAuthorized)
    );
    let (mut ex, step) =
        Exchange::start(Mechanism::Plain, None, ChannelBindings::default(), decoy());
    assert_eq!(step, Step::Challenge(Vec::new()));
    assert!(matches!(
        ex.response(b"\0user\0pencil"),
        Step::NeedCredentials { .. }
    ));
    let step = ex.credentials(Some(&stored.salts()));
    assert!(matches!(
        answer(&mut ex, step, Some(&stored)),
        Step::Success { .. }
    ));
}

#[test]
fn credentials_never_hold_the_password_and_need_4096_iterations() {
    let c = creds();
    assert_eq!(c.sha256.iterations, 4096);
    assert_ne!(c.sha1.salt, c.sha256.salt);
    assert!(StoredCredentials::from_password("pencil", 1000).is_err());
    assert!(StoredCredentials::from_password("", 4096).is_err());
}

/// RFC 7677 §3 test vector: user "user", password "pencil".
#[test]
fn rfc7677_test_vector() {
    let salt = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        "W22ZaJ0SNY7soEsUEjb6gQ==",
    )
    .unwrap();
    let keys = ScramKeys::derive(HashAlg::Sha256, "pencil", &salt, 4096).unwrap();
    let client = scram::parse_client_first(
        b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
        false,
        false,
        &ChannelBindings::default(),
    )
    .unwrap();
    let server = scram::ServerFirst {
        message:
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
                .into(),
        nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into(),
    };
    let fin = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    let proof = scram::client_final(
        fin,
        HashAlg::Sha256,
        &client,
        &server,
        &ChannelBindings::default(),
    )
    .unwrap();
    let stored = StoredCredentials {
        sha1: keys.clone(),
        sha256: keys,
    };
    let v = proof
        .check(Some(&stored))
        .expect("the RFC's proof is right");
    assert_eq!(
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, v),
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    );
}

/// One SCRAM-SHA-1 login of `client` against `stored`; returns whether it succeeded.
fn login_with(client: &mut ScramClient, stored: &StoredCredentials) -> bool {
    let (mut ex, _) = Exchange::start(
        Mechanism::ScramSha1,
        Some(client.client_first().as_bytes()),
        ChannelBindings::default(),
        decoy(),
    );
    let Step::Challenge(first) = ex.credentials(Some(&stored.salts())) else {
        panic!("no challenge")
    };
    let fin = client
        .client_final(std::str::from_utf8(&first).unwrap())
        .unwrap();
    let step = ex.response(fin.as_bytes());
    matches!(answer(&mut ex, step, Some(stored)), Step::Success { .. })
}

/// RFC 5802 §5.1: a client may keep SaltedPassword. A kept one is used while the salt and
/// iteration count match (the wrong password below proves it was not derived again), and
/// ignored when they do not.
#[test]
fn a_cached_salted_password_is_used_only_for_the_same_salt_and_count() {
    let stored = creds();
    let mut first = ScramClient::new(HashAlg::Sha1, "user", "pencil", None);
    assert!(login_with(&mut first, &stored));
    let cached = first.salted_password().unwrap().clone();
    assert_eq!(cached.salt, stored.sha1.salt);

    let mut reuse =
        ScramClient::new(HashAlg::Sha1, "user", "wrong", None).with_salted_password(cached.clone());
    assert!(login_with(&mut reuse, &stored), "the cached key logs in");

    let other_salt = SaltedPassword {
        salt: b"another salt".to_vec(),
        ..cached
    };
    let mut stale =
        ScramClient::new(HashAlg::Sha1, "user", "wrong", None).with_salted_password(other_salt);
    assert!(
        !login_with(&mut stale, &stored),
        "a stale cache is derived again"
    );
}

/// The salt and iteration count an exchange presents for `user`, who has no account.
fn decoy_first(decoy: Decoy, mech: Mechanism, user: &str) -> String {
    let first = format!("n,,n={user},r=abc");
    let (mut ex, _) = Exchange::start(
        mech,
        Some(first.as_bytes()),
        ChannelBindings::default(),
        decoy,
    );
    let Step::Challenge(server_first) = ex.credentials(None) else {
        panic!("no challenge")
    };
    let server_first = String::from_utf8(server_first).unwrap();
    server_first.split_once(",s=").unwrap().1.to_owned()
}

#[test]
fn the_decoy_salt_is_stable_per_account_and_differs_between_accounts() {
    let sha256 = Mechanism::ScramSha256;
    // Two exchanges (two edges, or before and after a restart) with the same secret.
    let first = decoy_first(decoy().in_domain("localhost"), sha256, "ghost");
    let again = decoy_first(decoy().in_domain("localhost"), sha256, "ghost");
    assert_eq!(first, again);
    assert!(first.ends_with(",i=4096"), "{first}");
    for other in [
        decoy_first(decoy().in_domain("localhost"), sha256, "phantom"),
        decoy_first(decoy().in_domain("example.org"), sha256, "ghost"),
        decoy_first(
            decoy().in_domain("localhost"),
            Mechanism::ScramSha1,
            "ghost",
        ),
        decoy_first(
            Decoy::new(b"another secret, another server", 4096).in_domain("localhost"),
            sha256,
            "ghost",
        ),
    ] {
        assert_ne!(first, other);
    }
    // A real account's iteration count is presented for unknown ones too.
    let slow = decoy_first(
        Decoy::new(b"a test secret of enough bytes!!!", 10_000),
        sha256,
        "ghost",
    );
    assert!(slow.ends_with(",i=10000"), "{slow}");
}

/// Median time of `f` over interleaved runs.
fn median_of(runs: usize, mut f: impl FnMut()) -> std::time::Duration {
    let mut times: Vec<std::time::Duration> = (0..runs)
        .map(|_| {
            let started = std::time::Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

/// A wrong PLAIN password for an account that exists, or one that does not.
fn plain_wrong(stored: Option<&StoredCredentials>) {
    let (mut ex, _) = Exchange::start(
        Mechanism::Plain,
        Some(b"\0user\0wrong"),
        ChannelBindings::default(),
        decoy(),
    );
    let step = ex.credentials(stored.map(StoredCredentials::salts).as_ref());
    assert_eq!(
        answer(&mut ex, step, stored),
        Step::Failure(Failure::NotAuthorized)
    );
}

#[test]
fn plain_takes_as_long_for_an_unknown_account() {
    let stored = creds();
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        known.push(median_of(5, || plain_wrong(Some(&stored))));
        unknown.push(median_of(5, || plain_wrong(None)));
    }
    known.sort();
    unknown.sort();
    let (known, unknown) = (known[2], unknown[2]);
    // Both hash the password (PBKDF2, 4096 rounds); skipping it is 1000 times faster.
    assert!(
        unknown * 2 > known && known * 2 > unknown,
        "known {known:?}, unknown {unknown:?}"
    );
}

/// PLAIN's server-side cost for a real account and an unknown one (median of many runs).
/// `cargo test -p switchyard-core --release --lib plain_timing -- --ignored --nocapture`
#[test]
#[ignore = "a measurement, not a check"]
fn plain_timing_known_vs_unknown() {
    let stored = creds();
    let known = median_of(2001, || plain_wrong(Some(&stored)));
    let unknown = median_of(2001, || plain_wrong(None));
    eprintln!("PLAIN wrong password, median of 2001: known account {known:?}, unknown account {unknown:?}");
}

/// A proof that is right for `stored` (the client side of RFC 5802 §3).
fn right_proof(stored_password: &str, salt: &ScramSalt, alg: HashAlg) -> ScramProof {
    let salted = SaltedPassword::derive(alg, stored_password, &salt.salt, salt.iterations).unwrap();
    let client_key = alg.hmac(&salted.salted, &[b"Client Key"]);
    ScramProof::sign(
        alg,
        &client_key,
        b"n=user,r=a,r=ab,s=c2FsdA==,i=4096,c=biws,r=ab".to_vec(),
    )
}

#[test]
fn the_proof_check_answers_only_a_right_proof_for_that_account() {
    let alice = creds();
    let bob = StoredCredentials::from_password("pencil", 4096).unwrap();
    for alg in [HashAlg::Sha1, HashAlg::Sha256] {
        let proof = right_proof("pencil", alice.salts().get(alg), alg);
        let keys = alice.keys(alg);
        assert_eq!(
            proof.check(Some(&alice)),
            Some(alg.hmac(&keys.server_key, &[&proof.auth_message])),
            "{alg:?}: right proof, ServerSignature"
        );
        let wrong = right_proof("pen", alice.salts().get(alg), alg);
        assert_eq!(wrong.check(Some(&alice)), None, "{alg:?}: wrong password");
        // Bob has the same password but his own salt: Alice's proof is not his.
        assert_eq!(proof.check(Some(&bob)), None, "{alg:?}: another account");
        assert_eq!(proof.check(None), None, "{alg:?}: no such account");
        let mut tampered = proof.clone();
        tampered.auth_message.push(b'x');
        assert_eq!(
            tampered.check(Some(&alice)),
            None,
            "{alg:?}: another message"
        );
    }
    // A proof made with one hash is not checked against the other's keys.
    let sha1 = right_proof("pencil", &alice.sha1.salt(), HashAlg::Sha1);
    let as_sha256 = ScramProof {
        alg: HashAlg::Sha256,
        ..sha1
    };
    assert_eq!(as_sha256.check(Some(&alice)), None);
}

#[test]
fn proofs_of_sizes_no_exchange_makes_are_refused() {
    let alice = creds();
    let right = right_proof("pencil", &alice.sha256.salt(), HashAlg::Sha256);
    assert_eq!(right.validate(), Ok(()));
    let cases = [
        (
            ScramProof {
                auth_message: Vec::new(),
                ..right.clone()
            },
            ProofError::AuthMessageSize,
        ),
        (
            ScramProof {
                auth_message: vec![b'a'; MAX_AUTH_MESSAGE_BYTES + 1],
                ..right.clone()
            },
            ProofError::AuthMessageSize,
        ),
        (
            ScramProof {
                client_proof: vec![0; 33],
                ..right.clone()
            },
            ProofError::ProofSize,
        ),
        (
            ScramProof {
                client_proof: right.client_proof[..20].to_vec(),
                ..right.clone()
            },
            ProofError::ProofSize,
        ),
    ];
    for (proof, error) in cases {
        assert_eq!(proof.validate(), Err(error));
        assert_eq!(proof.check(Some(&alice)), None);
    }
}

/// The exchange asks for a proof check for unknown accounts too, and only ever gets salts.
#[test]
fn unknown_accounts_are_verified_like_known_ones() {
    for mech in [
        Mechanism::ScramSha1,
        Mechanism::ScramSha256,
        Mechanism::Plain,
    ] {
        let mut client = ScramClient::new(
            mech.hash().unwrap_or(HashAlg::Sha256),
            "ghost",
            "pencil",
            None,
        );
        let initial = match mech {
            Mechanism::Plain => b"\0ghost\0pencil".to_vec(),
            _ => client.client_first().into_bytes(),
        };
        let (mut ex, _) =
            Exchange::start(mech, Some(&initial), ChannelBindings::default(), decoy());
        let mut step = ex.credentials(None);
        if let Step::Challenge(first) = step {
            let fin = client
                .client_final(std::str::from_utf8(&first).unwrap())
                .unwrap();
            step = ex.response(fin.as_bytes());
        }
        let Step::Verify { username, proof } = step else {
            panic!("{mech:?}: {step:?}")
        };
        assert_eq!(username, "ghost");
        assert_eq!(proof.validate(), Ok(()), "{mech:?}");
        // Even a "yes" (the account was created meanwhile) does not log in with the
        // decoy's salt.
        assert_eq!(
            ex.verified(Some(b"sig")),
            Step::Failure(Failure::NotAuthorized)
        );
    }
}

#[test]
fn an_auth_message_past_the_bound_is_malformed() {
    let nonce = "n".repeat(MAX_AUTH_MESSAGE_BYTES / 2);
    let first = format!("n,,n=user,r={nonce}");
    let stored = creds();
    let (mut ex, _) = Exchange::start(
        Mechanism::ScramSha256,
        Some(first.as_bytes()),
        ChannelBindings::default(),
        decoy(),
    );
    let Step::Challenge(server_first) = ex.credentials(Some(&stored.salts())) else {
        panic!("no challenge")
    };
    let server_first = String::from_utf8(server_first).unwrap();
    let combined = server_first.split(',').next().unwrap();
    let proof = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0u8; 32]);
    let fin = format!("c=biws,{combined},p={proof}");
    assert_eq!(
        ex.response(fin.as_bytes()),
        Step::Failure(Failure::MalformedRequest)
    );
}

/// A verification answer the exchange did not ask for ends it.
#[test]
fn an_unasked_verification_is_malformed() {
    let (mut ex, _) = Exchange::start(
        Mechanism::ScramSha256,
        Some(b"n,,n=user,r=abc"),
        ChannelBindings::default(),
        decoy(),
    );
    assert_eq!(
        ex.verified(Some(b"sig")),
        Step::Failure(Failure::MalformedRequest)
    );
}

/// An account imported with SHA-1 keys only (XEP-0227 from Prosody): SCRAM-SHA-1 and
/// PLAIN (checked against the SHA-1 keys) succeed; SCRAM-SHA-256 fails as for an unknown
/// account, after the same exchange (the decoy salt, not an early refusal).
#[test]
fn an_account_with_sha1_keys_only_logs_in_with_sha1_and_plain() {
    let full = creds();
    let stored = StoredCredentials {
        sha1: full.sha1.clone(),
        sha256: ScramKeys::absent(),
    };
    let mut sha1 = ScramClient::new(HashAlg::Sha1, "user", "pencil", None);
    assert!(login_with(&mut sha1, &stored));

    let mut sha256 = ScramClient::new(HashAlg::Sha256, "user", "pencil", None);
    let (mut ex, _) = Exchange::start(
        Mechanism::ScramSha256,
        Some(sha256.client_first().as_bytes()),
        ChannelBindings::default(),
        decoy(),
    );
    let Step::Challenge(first) = ex.credentials(Some(&stored.salts())) else {
        panic!("no challenge")
    };
    let first = std::str::from_utf8(&first).unwrap();
    let decoy_salt = decoy_first(decoy(), Mechanism::ScramSha256, "user");
    assert!(
        first.ends_with(&format!(",s={decoy_salt}")),
        "the decoy salt: {first}"
    );
    let fin = sha256.client_final(first).unwrap();
    let step = ex.response(fin.as_bytes());
    assert_eq!(
        answer(&mut ex, step, Some(&stored)),
        Step::Failure(Failure::NotAuthorized)
    );

    for (password, right) in [("pencil", true), ("wrong", false)] {
        let message = format!("\0user\0{password}");
        let (mut ex, _) = Exchange::start(
            Mechanism::Plain,
            Some(message.as_bytes()),
            ChannelBindings::default(),
            decoy(),
        );
        let step = ex.credentials(Some(&stored.salts()));
        let step = answer(&mut ex, step, Some(&stored));
        assert_eq!(matches!(step, Step::Success { .. }), right, "{password}");
    }
}
