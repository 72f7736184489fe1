//! The token store at its edges: the slots, the bounds, every reason to refuse.

use super::*;
use switchyard_core::sasl::StoredCredentials;
use switchyard_storage::{AccountStore, MemoryStore};

const UA: &str = "d4565fa7-4d72-4749-b3d3-740edbf87770";
const OTHER_UA: &str = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";

async fn store() -> (MemoryStore, Jid) {
    let store = MemoryStore::default();
    let account = Jid::parse("juliet@localhost").unwrap();
    let creds = StoredCredentials::from_password("pw", 4096).unwrap();
    store.create(&account, &creds).await.unwrap();
    (store, account)
}

fn tokens(documents: &MemoryStore, policy: FastPolicy) -> FastTokens<'_> {
    FastTokens { documents, policy }
}

/// What a client presents: HMAC(token, "Initiator" || cb-data).
fn check(account: &Jid, token: &str, ua: &str, mechanism: Mechanism, cb: &[u8]) -> TokenCheck {
    TokenCheck {
        account: account.clone(),
        user_agent: ua.into(),
        mechanism,
        hashed: TokenKey::of(token).initiator(cb),
        cb_data: cb.to_vec(),
        invalidate: false,
    }
}

const NONE: Mechanism = Mechanism::HtSha256None;

fn ask(account: &Jid, ua: &str, mechanism: Mechanism) -> TokenRequest {
    TokenRequest {
        account: account.clone(),
        user_agent: ua.into(),
        label: "Test on a bench".into(),
        mechanism,
    }
}

#[tokio::test]
async fn a_token_is_accepted_only_as_issued() {
    let (docs, account) = store().await;
    let fast = tokens(&docs, FastPolicy::default());
    let issued = fast.issue(&ask(&account, UA, NONE)).await.unwrap();
    let stored = docs.family(&account, "fast:").await.unwrap();
    assert!(
        !stored[0].1.contains(&issued.token),
        "the token itself is never stored"
    );
    let good = check(&account, &issued.token, UA, NONE, b"");
    let verdict = fast.verify(&good).await.unwrap();
    assert_eq!(
        verdict.responder,
        Some(TokenKey::of(&issued.token).responder(b"")),
        "HT §3.3 responder message"
    );
    assert!(!verdict.rotate, "a fresh token is not due");
    let mut other_binding = check(&account, &issued.token, UA, NONE, b"");
    other_binding.cb_data = b"this connection's binding".to_vec();
    let refused = [
        check(&account, &issued.token, OTHER_UA, NONE, b""),
        check(&account, &issued.token, UA, Mechanism::HtSha256Endp, b""),
        other_binding,
        check(&account, "not the token", UA, NONE, b""),
        check(
            &Jid::parse("romeo@localhost").unwrap(),
            &issued.token,
            UA,
            NONE,
            b"",
        ),
    ];
    for bad in refused {
        assert_eq!(fast.verify(&bad).await.unwrap().responder, None, "{bad:?}");
    }
    assert!(
        fast.verify(&good).await.unwrap().responder.is_some(),
        "still valid"
    );
}

#[tokio::test]
async fn rotation_keeps_the_old_token_until_the_new_one_is_used() {
    let (docs, account) = store().await;
    let due_at_once = FastPolicy {
        rotate_after: Duration::ZERO,
        ..FastPolicy::default()
    };
    let fast = tokens(&docs, due_at_once);
    let first = fast.issue(&ask(&account, UA, NONE)).await.unwrap();
    let verdict = fast
        .verify(&check(&account, &first.token, UA, NONE, b""))
        .await
        .unwrap();
    assert!(verdict.rotate, "§3.5 due");
    let second = fast.issue(&ask(&account, UA, NONE)).await.unwrap();
    let old = check(&account, &first.token, UA, NONE, b"");
    assert!(
        fast.verify(&old).await.unwrap().responder.is_some(),
        "§3.5: old valid until the new is used"
    );
    // An unused new token is replaced by a newer one (§5.1 "SHOULD invalidate").
    let third = fast.issue(&ask(&account, UA, NONE)).await.unwrap();
    let unused = check(&account, &second.token, UA, NONE, b"");
    assert_eq!(fast.verify(&unused).await.unwrap().responder, None);
    let newest = check(&account, &third.token, UA, NONE, b"");
    assert!(fast.verify(&newest).await.unwrap().responder.is_some());
    assert_eq!(
        fast.verify(&old).await.unwrap().responder,
        None,
        "older token gone once the new is used"
    );
    assert!(fast.verify(&newest).await.unwrap().responder.is_some());
}

#[tokio::test]
async fn expired_and_invalidated_tokens_are_refused() {
    let (docs, account) = store().await;
    let instant = FastPolicy {
        ttl: Duration::ZERO,
        ..FastPolicy::default()
    };
    let expired = tokens(&docs, instant)
        .issue(&ask(&account, UA, NONE))
        .await
        .unwrap();
    let fast = tokens(&docs, FastPolicy::default());
    let stale = check(&account, &expired.token, UA, NONE, b"");
    assert_eq!(
        fast.verify(&stale).await.unwrap().responder,
        None,
        "expired"
    );
    assert!(
        fast.list(&account).await.unwrap().is_empty(),
        "expired clients are not listed"
    );
    let issued = fast.issue(&ask(&account, UA, NONE)).await.unwrap();
    let mut sign_out = check(&account, &issued.token, UA, NONE, b"");
    sign_out.invalidate = true;
    let verdict = fast.verify(&sign_out).await.unwrap();
    assert!(verdict.responder.is_some(), "§3.6 authenticates as normal");
    assert!(!verdict.rotate, "§3.6 no new token");
    sign_out.invalidate = false;
    assert_eq!(
        fast.verify(&sign_out).await.unwrap().responder,
        None,
        "then gone"
    );
    assert!(fast.list(&account).await.unwrap().is_empty());
}

#[tokio::test]
async fn clients_are_listed_revoked_and_bounded() {
    let (docs, account) = store().await;
    let fast = tokens(&docs, FastPolicy::default());
    let a = fast.issue(&ask(&account, UA, NONE)).await.unwrap();
    fast.issue(&ask(&account, OTHER_UA, Mechanism::HtSha256Expr))
        .await
        .unwrap();
    let listed = fast.list(&account).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|c| c.user_agent == UA
        && c.mechanism == "HT-SHA-256-NONE"
        && c.label == "Test on a bench"));
    assert_eq!(fast.revoke(&account, Some(OTHER_UA)).await.unwrap(), 1);
    assert_eq!(fast.list(&account).await.unwrap().len(), 1);
    // Exactly the bound fits; one more client drops the one expiring soonest (`UA`'s,
    // issued first), never fails.
    for i in 1..MAX_CLIENTS {
        let ua = format!("00000000-0000-4000-8000-{i:012}");
        fast.issue(&ask(&account, &ua, NONE)).await.unwrap();
    }
    assert_eq!(fast.list(&account).await.unwrap().len(), MAX_CLIENTS);
    let a_check = check(&account, &a.token, UA, NONE, b"");
    assert!(fast.verify(&a_check).await.unwrap().responder.is_some());
    fast.issue(&ask(&account, OTHER_UA, NONE)).await.unwrap();
    let after = fast.list(&account).await.unwrap();
    assert_eq!(after.len(), MAX_CLIENTS);
    assert!(after.iter().any(|c| c.user_agent == OTHER_UA));
    assert_eq!(fast.revoke(&account, None).await.unwrap(), MAX_CLIENTS);
    assert!(fast.list(&account).await.unwrap().is_empty());
}

#[test]
fn documents_that_do_not_parse_hold_no_token() {
    let slot = Slot {
        mechanism: NONE,
        key: [0xab; 32],
        expires: 10,
        issued: 5,
    };
    let client = Client {
        new: Some(slot.clone()),
        current: Some(slot),
        label: "Dino on a laptop".into(),
    };
    assert_eq!(parse(&format(&client)), Some(client));
    let good = format!("new HT-SHA-256-NONE {} 10 5", "ab".repeat(32));
    assert!(parse(&good).is_some());
    for bad in [
        format!("new SCRAM-SHA-1 {} 10 5", "ab".repeat(32)),
        format!("old HT-SHA-256-NONE {} 10 5", "ab".repeat(32)),
        format!("new HT-SHA-256-NONE {} 10 5", "ab".repeat(31)),
        format!("new HT-SHA-256-NONE {} 10 5", "ab".repeat(33)),
        format!("new HT-SHA-256-NONE {} 10", "ab".repeat(32)),
        format!("new HT-SHA-256-NONE {} x 5", "zz".repeat(32)),
    ] {
        assert_eq!(parse(&bad), None, "{bad}");
    }
}

/// At the bound, logins of one account at once each get their token: the room one makes
/// may be taken by another, and is made again.
#[tokio::test]
async fn concurrent_requests_at_the_bound_all_get_a_token() {
    let (docs, account) = store().await;
    let fast = tokens(&docs, FastPolicy::default());
    for i in 0..MAX_CLIENTS {
        let ua = format!("00000000-0000-4000-8000-{i:012}");
        fast.issue(&ask(&account, &ua, NONE)).await.unwrap();
    }
    let uas: Vec<String> = (0..16)
        .map(|i| format!("11111111-0000-4000-8000-{i:012}"))
        .collect();
    let issued = futures_util::future::join_all(
        uas.iter()
            .map(|ua| async { fast.issue(&ask(&account, ua, NONE)).await }),
    )
    .await;
    assert!(issued.iter().all(Result::is_ok), "{issued:?}");
    assert_eq!(fast.list(&account).await.unwrap().len(), MAX_CLIENTS);
}
