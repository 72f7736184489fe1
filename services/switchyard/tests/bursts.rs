//! Delivery guarantees in the all-in-one mode, at the edges of every queue and batch:
//! every message a client sent is delivered exactly once and in order, stored, or
//! bounced to its sender; a healthy consumer is never closed as slow (DESIGN.md,
//! "Failure semantics"). The connection writes deliveries in batches of 64 and a
//! mailbox holds 1,024 stanzas, so bursts of 1, 64, 65, 1,000 and 10,000 cross each
//! bound exactly, one past it and far past it.

mod support;
use std::collections::HashMap;
use support::*;
use switchyard_core::xml::Element;

fn body(e: &Element) -> Option<String> {
    e.child("body", "jabber:client").map(|b| b.text())
}

/// Writes `count` chat messages numbered `0..count` in as few writes as possible.
async fn burst(sender: &mut Client, to: &str, tag: &str, count: usize) {
    let mut chunk = String::new();
    for i in 0..count {
        chunk.push_str(&format!(
            "<message to='{to}' type='chat' id='{tag}-{i}'><body>{tag} {i}</body></message>"
        ));
        if chunk.len() > 64 * 1024 {
            sender.send(&chunk).await;
            chunk.clear();
        }
    }
    sender.send(&chunk).await;
}

/// Reads `count` messages and checks that each sender's numbers arrive once, in order.
async fn receive(recipient: &mut Client, count: usize) -> HashMap<String, usize> {
    let mut next: HashMap<String, usize> = HashMap::new();
    for _ in 0..count {
        let e = recipient.element().await;
        let text = body(&e).unwrap_or_else(|| panic!("a message with a body, got {e:?}"));
        let (tag, n) = text.split_once(' ').expect("'tag n'");
        let n: usize = n.parse().unwrap();
        let expected = next.entry(tag.to_owned()).or_default();
        assert_eq!(n, *expected, "{tag}: exactly once and in order");
        *expected += 1;
    }
    next
}

async fn pair(server: &Server) -> (Client, Client) {
    let alice = Client::login(server, "alice", "PLAIN", "a").await;
    let bob = Client::login(server, "bob", "PLAIN", "b").await;
    (alice, bob)
}

#[tokio::test]
async fn bursts_at_and_past_every_bound_arrive_exactly_once_in_order() {
    let server = Server::start().await;
    let (mut alice, mut bob) = pair(&server).await;
    for count in [1, 64, 65, 1_000, 1_024, 1_025, 10_000] {
        let tag = format!("b{count}");
        let (_, got) = tokio::join!(
            burst(&mut alice, "bob@localhost/b", &tag, count),
            receive(&mut bob, count)
        );
        assert_eq!(got[&tag], count);
    }
    assert_still_chatting(&server).await;
}

#[tokio::test]
async fn a_burst_written_before_the_recipient_reads_at_all_is_not_lost() {
    let server = Server::start().await;
    let (mut alice, mut bob) = pair(&server).await;
    // All of it is written before bob reads anything: the router waits for room in
    // bob's mailbox, alice's connection stops reading, and TCP holds alice back.
    let writer = tokio::spawn(async move {
        burst(&mut alice, "bob@localhost/b", "late", 3_000).await;
        alice
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(receive(&mut bob, 3_000).await["late"], 3_000);
    writer.await.unwrap();
}

#[tokio::test]
async fn two_clients_flooding_each_other_both_get_everything() {
    let server = Server::start().await;
    let (alice, bob) = pair(&server).await;
    let n = 5_000;
    // Each one writes everything before reading anything.
    let (mut alice_rx, mut alice_tx) = alice.split();
    let (mut bob_rx, mut bob_tx) = bob.split();
    let (_, _, at_alice, at_bob) = tokio::join!(
        burst(&mut alice_tx, "bob@localhost/b", "ab", n),
        burst(&mut bob_tx, "alice@localhost/a", "ba", n),
        receive(&mut alice_rx, n),
        receive(&mut bob_rx, n)
    );
    assert_eq!((at_alice["ba"], at_bob["ab"]), (n, n));
}

#[tokio::test]
async fn a_hundred_senders_to_one_recipient() {
    let server = Server::start().await;
    let senders = 100;
    let each = 50;
    for i in 0..senders {
        server.add_user(&format!("s{i}"), "secret").await;
    }
    let mut bob = Client::login(&server, "bob", "PLAIN", "b").await;
    let mut clients = Vec::new();
    for i in 0..senders {
        clients.push(Client::login(&server, &format!("s{i}"), "PLAIN", "r").await);
    }
    let writers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            tokio::spawn(async move {
                burst(&mut c, "bob@localhost/b", &format!("s{i}"), each).await;
                c
            })
        })
        .collect();
    let got = receive(&mut bob, senders * each).await;
    assert_eq!(got.len(), senders);
    assert!(got.values().all(|n| *n == each), "{got:?}");
    for w in writers {
        w.await.unwrap();
    }
}

#[tokio::test]
async fn an_offline_flush_of_the_whole_quota_and_the_one_past_it_bounced() {
    let quota = 1_000;
    let server = Server::start_with(|c| c.im.offline_quota = quota).await;
    let mut alice = Client::login(&server, "alice", "PLAIN", "a").await;
    burst(&mut alice, "bob@localhost", "off", quota + 1).await;
    let (bounced, _) = alice.until(|e| e.attr("type") == Some("error")).await;
    assert_eq!(bounced.attr("id"), Some(format!("off-{quota}").as_str()));
    assert!(bounced
        .child("error", "jabber:client")
        .and_then(|e| e.child("service-unavailable", "urn:ietf:params:xml:ns:xmpp-stanzas"))
        .is_some());
    let mut bob = Client::login(&server, "bob", "PLAIN", "b").await;
    bob.send("<presence/>").await;
    let mut next = 0;
    while next < quota {
        let e = bob.element().await;
        if e.name() != "message" {
            continue; // bob's own presence
        }
        assert_eq!(
            body(&e),
            Some(format!("off {next}")),
            "stored in order, once each"
        );
        next += 1;
    }
    // Nothing more is waiting: a fresh message is the next thing bob reads.
    alice
        .send("<message to='bob@localhost/b' type='chat'><body>after</body></message>")
        .await;
    let (e, skipped) = bob.until(|e| e.name() == "message").await;
    assert_eq!(body(&e).as_deref(), Some("after"));
    assert!(
        skipped.iter().all(|e| e.name() == "presence"),
        "{skipped:?}"
    );
}

/// A consumer that stops reading altogether: its connection is closed within a bounded
/// time (the write timeout, 1 s here, and the delivery patience, twice that), and every
/// message is accounted for: read from what reached its socket before the close, stored
/// offline and delivered at its next login, or bounced to the sender. Only the one write
/// batch that failed part-way can arrive twice (nothing acknowledges what a client read
/// without XEP-0198), and nothing is lost.
#[tokio::test]
async fn a_consumer_that_stops_reading_is_closed_and_nothing_is_lost() {
    let server = Server::start_with(|c| c.timeouts.write_secs = 1).await;
    let alice = Client::login(&server, "alice", "PLAIN", "a").await;
    let (mut alice_rx, mut alice_tx) = alice.split();
    // Alice reads all along: the bounces she gets are counted.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let bounced = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = bounced.clone();
    let bounces = tokio::spawn(async move {
        loop {
            tokio::select! {
                // Silence is no failure here: the test stops this reader when done.
                e = alice_rx.element_within(std::time::Duration::from_secs(300)) => if e.attr("type") == Some("error") {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                },
                _ = &mut stopped => return,
            }
        }
    });
    let mut bob = Client::login(&server, "bob", "PLAIN", "b").await;
    const COUNT: usize = 640;
    let filler = "x".repeat(16 * 1024);
    let mut chunk = String::new();
    for i in 0..COUNT {
        chunk.push_str(&format!(
            "<message to='bob@localhost/b' type='chat' id='s{i}'><body>s {i} {filler}</body></message>"
        ));
        if chunk.len() > 256 * 1024 {
            alice_tx.send(&chunk).await;
            chunk.clear();
        }
    }
    alice_tx.send(&chunk).await;
    // Bob reads nothing while that is written; then he reads what reached his socket.
    let started = std::time::Instant::now();
    let mut seen: HashMap<usize, usize> = HashMap::new();
    let number = |seen: &mut HashMap<usize, usize>, e: &Element| {
        let text = body(e)?;
        let n: usize = text.split(' ').nth(1)?.parse().ok()?;
        *seen.entry(n).or_default() += 1;
        Some(n)
    };
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    while let Some(frame) = bob.frame().await {
        if let switchyard_core::Frame::Stanza(e, _) = frame {
            number(&mut seen, &e);
        }
    }
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "closed in bounded time"
    );
    // The rest was stored offline (or bounced when the quota was reached).
    let mut bob = Client::login(&server, "bob", "PLAIN", "b").await;
    bob.send("<presence/>").await;
    // Until every message is accounted for, or 15 s pass with nothing new (a loaded
    // machine can pause for seconds between two; the count decides, not the pause).
    let accounted = |seen: &HashMap<usize, usize>| {
        seen.len() + bounced.load(std::sync::atomic::Ordering::SeqCst) >= COUNT
    };
    while !accounted(&seen) {
        tokio::select! {
            e = bob.element() => { number(&mut seen, &e); }
            () = tokio::time::sleep(std::time::Duration::from_secs(15)) => break,
        }
    }
    stop.send(()).unwrap();
    bounces.await.unwrap();
    let bounced = bounced.load(std::sync::atomic::Ordering::SeqCst);
    let delivered = seen.len();
    let twice = seen.values().filter(|n| **n > 1).count();
    println!("{delivered} delivered ({twice} twice), {bounced} bounced of {COUNT}");
    assert_eq!(
        delivered + bounced,
        COUNT,
        "every message delivered or bounced, none lost"
    );
    assert!(
        twice <= 64,
        "{twice} delivered twice: more than one write batch"
    );
}
