//! The admin API of a router sees the whole cluster: sessions on every edge are listed
//! and counted from the registry, an announcement reaches them all, and a ban made
//! through one router ends a session that another edge holds.

use super::harness::Cluster;
use super::{body, online};
use serde_json::{json, Value};
use switchyard::admin_client::request;

async fn api(
    cluster: &Cluster,
    router: usize,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let base = format!(
        "http://{}",
        cluster.routers[router]
            .admin
            .expect("router admin listener")
    );
    let (status, text) = request(&base, method, path, "test-admin-token", body.as_ref())
        .await
        .unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn a_routers_admin_api_sees_and_reaches_every_edge() {
    let Some(cluster) = Cluster::start(&["alice", "bob"]).await else {
        return;
    };
    let mut alice = online(&cluster, 0, "alice", "desk").await;
    let mut bob = online(&cluster, 1, "bob", "phone").await;

    let (status, page) = api(&cluster, 0, "GET", "/api/v1/sessions?limit=1", None).await;
    assert_eq!(status, 200, "{page}");
    let mut listed = Vec::new();
    let mut page = page;
    for _ in 0..10 {
        for s in page["sessions"].as_array().unwrap() {
            listed.push((
                s["jid"].as_str().unwrap().to_owned(),
                s["edge"].as_str().unwrap().to_owned(),
            ));
        }
        let Some(next) = page["next"].as_str() else {
            break;
        };
        let path = format!(
            "/api/v1/sessions?limit=1&cursor={}",
            switchyard::admin_client::segment(next)
        );
        page = api(&cluster, 0, "GET", &path, None).await.1;
    }
    listed.sort();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert_eq!(listed[0].0, "alice@localhost/desk");
    assert_eq!(listed[1].0, "bob@localhost/phone");
    assert_ne!(listed[0].1, listed[1].1, "two edges");
    let (_, stats) = api(&cluster, 1, "GET", "/api/v1/stats", None).await;
    assert_eq!(stats["sessions_online"], 2, "{stats}");

    let (status, sent) = api(
        &cluster,
        1,
        "POST",
        "/api/v1/announcements",
        Some(json!({"body": "all hands"})),
    )
    .await;
    assert_eq!((status, sent["sent"].clone()), (200, json!(2)));
    for c in [&mut alice, &mut bob] {
        let (m, _) = c.until(|e| body(e).as_deref() == Some("all hands")).await;
        assert_eq!(m.attr("type"), Some("headline"));
    }

    // A ban through router 0 ends bob's session on edge 1.
    let (status, ended) = api(
        &cluster,
        0,
        "PUT",
        "/api/v1/users/bob@localhost/ban",
        Some(json!({"reason": "test"})),
    )
    .await;
    assert_eq!((status, ended["sessions_ended"].clone()), (200, json!(1)));
    assert_eq!(
        bob.stream_error().await.as_deref(),
        Some("policy-violation")
    );

    // Every edge's gauges return to rest once its clients are gone; the in-flight limit
    // is the window of the two router links each edge has up.
    alice.send("</stream:stream>").await;
    while alice.frame().await.is_some() {}
    let resting = [
        "switchyard_edge_sessions 0",
        "switchyard_edge_connections{listener=\"starttls\"} 0",
        "switchyard_edge_link_in_flight 0",
        "switchyard_edge_mailbox_queued_bytes 0",
        "switchyard_edge_link_in_flight_limit 8192",
    ];
    for edge in &cluster.edges {
        super::harness::metrics_show(edge, &resting).await;
    }
    cluster.clean_up().await;
}
