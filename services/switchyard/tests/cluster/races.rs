//! A message racing its recipient's logout, across the cluster: each one is delivered in
//! the session that is ending, or stored and delivered at the next login, or bounced to
//! its sender; never lost, never twice, and in order (issue: delivery guarantees).

use super::harness::Cluster;
use super::support::Client;
use super::{body, numbered, online};
use switchyard_core::xml::{Element, Frame};

const MESSAGES: usize = 2_000;
/// Read live before the recipient logs out: some were written, more are queued or
/// still being routed.
const READ_LIVE: usize = 300;

fn number(m: &Element) -> usize {
    let text = body(m).expect("a body");
    text.rsplit_once(' ').expect("'tag n'").1.parse().unwrap()
}

/// How long a client here may hear nothing: storing a thousand messages offline sends
/// the sender nothing for seconds (two database writes and three registry calls each:
/// ~10 s in a debug build beside other cluster tests on two cores).
const QUIET: std::time::Duration = std::time::Duration::from_secs(60);

/// Pings the server and returns the numbers of the messages (those `pick` keeps) that
/// arrive before the answer: the server handles a client's stanzas in order.
async fn numbers_until_pong(
    out: &mut Client,
    inbound: &mut Client,
    pick: impl Fn(&Element) -> bool,
) -> Vec<usize> {
    out.send("<iq type='get' id='pong'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let mut numbers = Vec::new();
    loop {
        let e = inbound.element_within(QUIET).await;
        if e.attr("id") == Some("pong") {
            return numbers;
        }
        if e.name() == "message" && pick(&e) {
            numbers.push(number(&e));
        }
    }
}

#[tokio::test]
async fn messages_racing_a_logout_are_delivered_stored_or_bounced_once_in_order() {
    let Some(cluster) = Cluster::start(&["alice", "bob"]).await else {
        return;
    };
    let mut bob = online(&cluster, 1, "bob", "phone").await;
    let alice = online(&cluster, 0, "alice", "desk").await;
    let (mut alice_in, mut alice_out) = alice.split();
    alice_out
        .send(&numbered("bob@localhost/phone", "r", 0..MESSAGES))
        .await;

    // Bob reads some, then closes his stream and reads on until the server closes its
    // own: everything written to him before that is read, nothing after it is written.
    let mut live = Vec::new();
    while live.len() < READ_LIVE {
        let (m, _) = bob.until(|e| e.name() == "message").await;
        live.push(number(&m));
    }
    bob.send("</stream:stream>").await;
    while let Some(frame) = bob.frame().await {
        match frame {
            Frame::Stanza(e, _) if e.name() == "message" => live.push(number(&e)),
            Frame::Close => break,
            _ => {}
        }
    }
    drop(bob);

    // Every message of Alice's has been routed once her ping is answered (her stanzas
    // are routed in order); then Bob logs in again and gets what was stored.
    let bounced = numbers_until_pong(&mut alice_out, &mut alice_in, |e| {
        e.attr("type") == Some("error")
    })
    .await;
    let bob = online(&cluster, 0, "bob", "phone").await;
    let (mut bob_in, mut bob_out) = bob.split();
    let stored = numbers_until_pong(&mut bob_out, &mut bob_in, |_| true).await;
    println!(
        "live {}, stored {}, bounced {}",
        live.len(),
        stored.len(),
        bounced.len()
    );
    assert!(
        !stored.is_empty(),
        "the logout raced nothing: the test proves nothing"
    );
    for (what, got) in [("live", &live), ("stored", &stored)] {
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "{what} in order: {got:?}"
        );
    }
    let mut all: Vec<usize> = live
        .iter()
        .chain(&stored)
        .chain(&bounced)
        .copied()
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..MESSAGES).collect::<Vec<_>>(), "each once");
    assert!(
        live.last() < stored.first(),
        "live ones come before stored ones"
    );
    cluster.clean_up().await;
}
