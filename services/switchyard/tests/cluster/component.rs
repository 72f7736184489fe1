//! XEP-0114 in the cluster: a component on one edge, a user on the other; stanzas cross
//! the routers both ways, the routers accept the component's `from` only from the edge
//! that bound its domain, and a component that leaves is answered for.

use super::harness::Cluster;
use super::online;
use super::support::component::{component, ACCEPT};

const EXTRA: &str = r#"
[[components]]
domain = "push.localhost"
secret = "a-component-secret"
"#;

#[tokio::test]
async fn a_component_on_one_edge_and_a_user_on_the_other_exchange_stanzas() {
    let Some(cluster) = Cluster::start_with(&["alice"], super::harness::REDIS, EXTRA).await else {
        return;
    };
    let addr = cluster.edges[0]
        .component
        .expect("edge 0's component listener");
    let (mut push, proved) = component(addr, "push.localhost", "a-component-secret").await;
    assert_eq!(proved, Ok(()));
    let mut alice = online(&cluster, 1, "alice", "desk").await;
    alice
        .send("<message to='bot@push.localhost' type='chat' id='c1'><body>across</body></message>")
        .await;
    let (got, _) = push.until(|e| e.name() == "message").await;
    assert_eq!(
        got.child("body", ACCEPT).map(|b| b.text()).as_deref(),
        Some("across")
    );
    assert_eq!(got.attr("from"), Some("alice@localhost/desk"));
    push.send("<message from='bot@push.localhost' to='alice@localhost/desk' type='chat'><body>back</body></message>").await;
    let (got, _) = alice.until(|e| e.name() == "message").await;
    assert_eq!(got.attr("from"), Some("bot@push.localhost"));

    drop(push);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    alice
        .send("<message to='bot@push.localhost' type='chat' id='c2'><body>gone</body></message>")
        .await;
    let (error, _) = alice.until(|e| e.attr("id") == Some("c2")).await;
    assert_eq!(error.attr("type"), Some("error"), "{error:?}");
    cluster.clean_up().await;
}

#[tokio::test]
async fn xep0357_a_detached_session_on_one_edge_notifies_an_app_server_on_the_other() {
    let Some(cluster) = Cluster::start_with(&["alice", "bob"], super::harness::REDIS, EXTRA).await
    else {
        return;
    };
    let addr = cluster.edges[0]
        .component
        .expect("edge 0's component listener");
    let (mut app, _) = component(addr, "push.localhost", "a-component-secret").await;
    let mut alice = online(&cluster, 1, "alice", "phone").await;
    alice.send("<iq type='set' id='en'><enable xmlns='urn:xmpp:push:0' jid='push.localhost' node='ios'/></iq><enable xmlns='urn:xmpp:sm:3' resume='true'/>").await;
    // The edge answers <enable/> itself; the push IQ is routed: either may come first.
    alice
        .until_each(&[&|e| e.name() == "enabled", &|e| e.attr("id") == Some("en")])
        .await;
    drop(alice);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let mut bob = online(&cluster, 0, "bob", "desk").await;
    bob.send("<message to='alice@localhost/phone' type='chat'><body>wake</body></message>")
        .await;
    let (iq, _) = app.until(|e| e.name() == "iq").await;
    assert_eq!(iq.attr("from"), Some("alice@localhost"));
    assert!(
        iq.child("pubsub", "http://jabber.org/protocol/pubsub")
            .is_some(),
        "{iq:?}"
    );
    cluster.clean_up().await;
}
