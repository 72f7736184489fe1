//! The throttle's policy on the in-memory counts, with tokio's clock paused.

use super::*;
use std::net::Ipv4Addr;
use switchyard_model::MemoryLoginFailures;
use tokio::time::advance;

const MS: Duration = Duration::from_millis(1);

fn policy() -> ThrottlePolicy {
    ThrottlePolicy {
        max_failures: 8,
        max_failures_per_network: 20,
        window: Duration::from_secs(600),
        delay_initial: 100 * MS,
        delay_max: 1000 * MS,
    }
}

fn throttle(policy: ThrottlePolicy) -> Throttle {
    Throttle::new(policy, Arc::new(MemoryLoginFailures::default()))
}

fn jid(user: &str) -> Jid {
    Jid::parse(&format!("{user}@localhost")).unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// One wrong password from `from`, as the driver reports it; returns the verdict the
/// attempt had.
async fn wrong_password(t: &Throttle, user: &str, from: &str) -> Verdict {
    let attempt = t.check(ip(from), jid(user)).await;
    t.failed(&attempt).await;
    attempt.verdict
}

async fn verdict(t: &Throttle, user: &str, from: &str) -> Verdict {
    t.check(ip(from), jid(user)).await.verdict
}

#[test]
fn the_delay_doubles_from_the_initial_one_up_to_the_cap() {
    let t = throttle(policy());
    let curve: Vec<u128> = (0..7).map(|n| t.delay(n).as_millis()).collect();
    assert_eq!(curve, [0, 100, 200, 400, 800, 1000, 1000]);
    assert_eq!(t.delay(u32::MAX), 1000 * MS, "no overflow");
}

#[tokio::test(start_paused = true)]
async fn each_failure_delays_the_next_attempt_counted_from_the_failure() {
    let t = throttle(policy());
    assert_eq!(wrong_password(&t, "alice", "192.0.2.1").await, Verdict::Go);
    assert_eq!(
        verdict(&t, "alice", "192.0.2.1").await,
        Verdict::Wait(100 * MS)
    );
    advance(40 * MS).await;
    assert_eq!(
        verdict(&t, "alice", "192.0.2.1").await,
        Verdict::Wait(60 * MS)
    );
    advance(60 * MS).await;
    assert_eq!(wrong_password(&t, "alice", "192.0.2.1").await, Verdict::Go);
    assert_eq!(
        verdict(&t, "alice", "192.0.2.1").await,
        Verdict::Wait(200 * MS)
    );
    for _ in 0..4 {
        wrong_password(&t, "alice", "192.0.2.1").await;
    }
    assert_eq!(
        verdict(&t, "alice", "192.0.2.1").await,
        Verdict::Wait(1000 * MS)
    );
    // A client that waits as long as it owes is not slowed at all.
    advance(1000 * MS).await;
    assert_eq!(verdict(&t, "alice", "192.0.2.1").await, Verdict::Go);
}

#[tokio::test(start_paused = true)]
async fn refusal_comes_well_after_slowing_and_only_for_that_key() {
    let t = throttle(policy());
    for n in 0..8 {
        let v = wrong_password(&t, "alice", "192.0.2.1").await;
        assert_ne!(v, Verdict::Refuse, "failure {n} is slowed, not refused");
    }
    assert_eq!(verdict(&t, "alice", "192.0.2.1").await, Verdict::Refuse);
    // The owner elsewhere, and others behind the attacker's address, go at once.
    assert_eq!(verdict(&t, "alice", "198.51.100.9").await, Verdict::Go);
    assert_eq!(verdict(&t, "bob", "192.0.2.1").await, Verdict::Go);
    // A window without failures lifts the refusal.
    advance(Duration::from_secs(600)).await;
    assert_eq!(verdict(&t, "alice", "192.0.2.1").await, Verdict::Go);
}

#[tokio::test(start_paused = true)]
async fn refused_attempts_are_not_counted_and_do_not_renew_the_window() {
    let t = throttle(policy());
    for _ in 0..8 {
        wrong_password(&t, "alice", "192.0.2.1").await;
    }
    advance(Duration::from_secs(300)).await;
    for _ in 0..100 {
        assert_eq!(
            wrong_password(&t, "alice", "192.0.2.1").await,
            Verdict::Refuse
        );
    }
    let attempt = t.check(ip("192.0.2.1"), jid("alice")).await;
    assert_eq!(attempt.prior, 8, "refused attempts left the count alone");
    assert_eq!(t.failed(&attempt).await, None);
    // The window runs from the last counted failure, not the last refused attempt.
    advance(Duration::from_secs(300)).await;
    assert_eq!(verdict(&t, "alice", "192.0.2.1").await, Verdict::Go);
}

#[tokio::test(start_paused = true)]
async fn one_network_cannot_try_many_accounts() {
    let t = throttle(policy());
    for i in 0..20 {
        wrong_password(&t, &format!("user{i}"), "192.0.2.1").await;
    }
    assert_eq!(
        verdict(&t, "someone-else", "192.0.2.1").await,
        Verdict::Refuse
    );
    assert_eq!(verdict(&t, "someone-else", "192.0.2.2").await, Verdict::Go);
}

#[tokio::test(start_paused = true)]
async fn ipv6_counts_per_64_and_ipv4_per_address() {
    let t = throttle(policy());
    wrong_password(&t, "alice", "2001:db8:1:2::1").await;
    // Another address in the same /64 is the same client.
    assert_eq!(
        verdict(&t, "alice", "2001:db8:1:2:ffff:ffff:ffff:9").await,
        Verdict::Wait(100 * MS)
    );
    assert_eq!(verdict(&t, "alice", "2001:db8:1:3::1").await, Verdict::Go);
    wrong_password(&t, "alice", "192.0.2.1").await;
    assert_eq!(
        verdict(&t, "alice", "::ffff:192.0.2.1").await,
        Verdict::Wait(100 * MS)
    );
    assert_eq!(verdict(&t, "alice", "192.0.2.2").await, Verdict::Go);
    assert_eq!(network(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
    assert_eq!(
        network(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
        "192.0.2.1"
    );
}

#[tokio::test(start_paused = true)]
async fn success_clears_the_account_from_that_network() {
    let t = throttle(policy());
    wrong_password(&t, "alice", "192.0.2.1").await;
    wrong_password(&t, "alice", "198.51.100.9").await;
    advance(100 * MS).await;
    let attempt = t.check(ip("192.0.2.1"), jid("alice")).await;
    t.succeeded(&attempt).await;
    assert_eq!(verdict(&t, "alice", "192.0.2.1").await, Verdict::Go);
    let other = t.check(ip("198.51.100.9"), jid("alice")).await;
    assert_eq!(other.prior, 1, "other networks keep their count");
}

#[tokio::test(start_paused = true)]
async fn a_full_table_drops_the_oldest_counts_and_still_counts_new_ones() {
    // Room for the counts of 50 attempts; an attacker floods it with new keys.
    let t = Throttle::new(policy(), Arc::new(MemoryLoginFailures::new(100)));
    wrong_password(&t, "old", "192.0.2.1").await;
    advance(MS).await;
    for i in 0..1000 {
        wrong_password(
            &t,
            &format!("flood{i}"),
            &format!("10.0.{}.{}", i / 250, i % 250),
        )
        .await;
    }
    // The newest failures are counted (before: a full table stopped tracking new keys).
    assert_eq!(
        verdict(&t, "flood999", "10.0.3.249").await,
        Verdict::Wait(100 * MS)
    );
    assert_eq!(
        verdict(&t, "old", "192.0.2.1").await,
        Verdict::Go,
        "the oldest went first"
    );
}
