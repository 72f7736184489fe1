//! XEP-0484 and XEP-0386 in the cluster: a token issued through one edge logs in through
//! the other (the tokens live with the routers' data, checked over the link's
//! `VerifyToken`), and carbons enabled inline on one edge copy what the account's other
//! resource receives on the other edge.

use super::harness::Cluster;
use super::online;
use super::support::sasl2::{authorized, password_login, secured, token_login, token_of, FAST, UA};

#[tokio::test]
async fn a_token_from_one_edge_logs_in_on_the_other_and_inline_carbons_cross_edges() {
    let Some(cluster) = Cluster::start(&["alice", "bob"]).await else {
        return;
    };
    let cert = cluster.cert_der.clone();
    let (mut first, _) = secured(cluster.edges[0].addr, cert.clone()).await;
    let ask = format!("<request-token xmlns='{FAST}' mechanism='HT-SHA-256-NONE'/>");
    let success = password_login(&mut first, "alice", UA, &ask).await;
    assert_eq!(success.name(), "success", "{}", success.to_xml(""));
    let token = token_of(&success).expect("a token issued through edge 0");
    drop(first);

    let (mut phone, _) = secured(cluster.edges[1].addr, cert.clone()).await;
    let inline =
        "<bind xmlns='urn:xmpp:bind:0'><tag>Phone</tag><enable xmlns='urn:xmpp:carbons:2'/></bind>";
    let login = ("HT-SHA-256-NONE", token.as_str(), &b""[..]);
    let success = token_login(&mut phone, "alice", UA, login, inline).await;
    assert_eq!(success.name(), "success", "{}", success.to_xml(""));
    assert!(authorized(&success).starts_with("alice@localhost/Phone."));
    phone.element().await; // stream features
    phone.send("<presence/>").await;
    // Available before Bob writes: received carbons go to available resources only.
    phone.until(|e| e.name() == "presence").await;

    let _desk = online(&cluster, 0, "alice", "desk").await;
    let mut bob = online(&cluster, 0, "bob", "b").await;
    bob.send("<message to='alice@localhost/desk' type='chat'><body>to the desk</body></message>")
        .await;
    let (carbon, _) = phone
        .until(|e| e.name() == "message" && e.child("received", "urn:xmpp:carbons:2").is_some())
        .await;
    assert_eq!(carbon.attr("from"), Some("alice@localhost"));

    // A wrong token is refused through either edge, and counted like a wrong password.
    let (mut wrong, _) = secured(cluster.edges[0].addr, cert).await;
    let bad = ("HT-SHA-256-NONE", "not the token", &b""[..]);
    assert_eq!(
        token_login(&mut wrong, "alice", UA, bad, "").await.name(),
        "failure"
    );
    cluster.clean_up().await;
}
