//! XEP-0198 §4: the server's `h` counts the stanzas it sent in the order it numbered
//! them, and a resumption resends the unacknowledged ones in that order; so the client
//! must read them in that order too, or its `h` names different stanzas than the
//! server's. In the cluster a resumable client's stanza waits for a router's
//! acknowledgement, and what the session answers itself meanwhile (an error, here) must
//! not be overtaken by deliveries written while it waits.

use super::harness::Cluster;
use super::online;
use super::sm::{bob_on_edge_0, send};
use super::support::sm::Counted;
use super::support::TIMEOUT;
use switchyard_core::xml::Element;

fn key(e: &Element) -> String {
    format!("{}/{}", e.name(), e.attr("id").unwrap_or("-"))
}

#[tokio::test]
async fn xep0198_stanzas_reach_the_client_in_the_order_they_were_numbered() {
    let Some(cluster) = Cluster::start(&["alice", "bob"]).await else {
        return;
    };
    let mut alice = online(&cluster, 0, "alice", "desk").await;
    let (mut bob, id) = bob_on_edge_0(&cluster, &mut alice).await;
    // From here Bob acknowledges nothing: the server keeps all it sends him, numbered.
    bob.answer_requests = false;
    let h = bob.h;
    const FLOOD: usize = 200;
    const PAIRS: usize = 40;
    let flood = tokio::spawn(async move {
        for n in 1..=FLOOD {
            send(&mut alice, n).await;
        }
        alice
    });
    // Each pair: a message the routers take (its edge waits for their acknowledgement)
    // and one the session answers itself at once (a malformed address), with an ack
    // request between them (the `<a/>` waits for the routing it counts; the error after
    // it does not).
    for i in 1..=PAIRS {
        bob.client
            .send(&format!(
                "<message to='alice@localhost/desk' type='chat' id='b{i}'><body>b</body></message>\
                 <r xmlns='urn:xmpp:sm:3'/>\
                 <message to='x@@' type='chat' id='e{i}'><body>e</body></message>"
            ))
            .await;
    }
    let mut read = Vec::with_capacity(FLOOD + PAIRS);
    while read.len() < FLOOD + PAIRS {
        let e = bob.stanza().await;
        read.push(key(&e));
    }
    let _alice = flood.await.expect("the flood");
    // Bob's connection breaks; he resumes on the same edge with the count he had before
    // all this, and the server resends everything since, in its order.
    drop(bob);
    let at = (cluster.edges[0].addr, cluster.cert_der.clone());
    let (mut bob, _) = Counted::resumed_within(at, "bob", &id, h, TIMEOUT).await;
    let mut resent = Vec::with_capacity(read.len());
    while resent.len() < read.len() {
        resent.push(key(&bob.stanza().await));
    }
    let errors = read.iter().filter(|k| k.starts_with("message/e")).count();
    assert_eq!(errors, PAIRS, "each malformed address answered: {read:?}");
    let first_difference = read.iter().zip(&resent).position(|(a, b)| a != b);
    assert_eq!(
        first_difference, None,
        "read in an order other than numbered:\nread   {read:?}\nresent {resent:?}"
    );
    cluster.clean_up().await;
}
