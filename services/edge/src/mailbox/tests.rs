use super::*;
use std::future::Future;
use switchyard_core::{ns, Element, StreamCondition};
use tokio::sync::oneshot;

fn limits(stanzas: usize, bytes: usize) -> MailboxLimits {
    MailboxLimits {
        stanzas,
        bytes,
        process_bytes: usize::MAX,
        patience: Duration::from_secs(60),
    }
}

fn message(body: &str) -> Element {
    Element::new("message", ns::CLIENT)
        .with_child(Element::new("body", ns::CLIENT).with_text(body.to_owned()))
}

/// A delivery and the receiver that hears when it is written.
fn delivery(
    body: &str,
) -> (
    Box<Delivery>,
    oneshot::Receiver<crate::connections::Written>,
) {
    let (written, heard) = oneshot::channel();
    let stanza = message(body).into();
    (
        Box::new(Delivery {
            stanza,
            written,
            confirmed: false,
        }),
        heard,
    )
}

fn body_of(command: Option<Command>) -> String {
    match command {
        Some(Command::Deliver(d)) => {
            let stanza = d.stanza.to_element().unwrap();
            stanza.child("body", ns::CLIENT).unwrap().text()
        }
        other => panic!("expected a delivery, got {other:?}"),
    }
}

/// Whether a delivery is queued without waiting.
fn queued(mailbox: &Mailbox, body: &str) -> bool {
    let (d, _heard) = delivery(body);
    let push = mailbox.deliver(d);
    tokio::pin!(push);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    matches!(push.as_mut().poll(&mut cx), std::task::Poll::Ready(Ok(())))
}

#[tokio::test]
async fn exactly_the_stanza_bound_fits_and_one_more_waits_for_room() {
    let mailbox = Arc::new(Mailbox::new(limits(3, usize::MAX), Arc::default()));
    for i in 0..3 {
        assert!(queued(&mailbox, &i.to_string()), "stanza {i} fits");
    }
    let (fourth, _heard) = delivery("3");
    let waiting = tokio::spawn({
        let mailbox = mailbox.clone();
        async move { mailbox.deliver(fourth).await }
    });
    tokio::task::yield_now().await;
    assert!(
        !waiting.is_finished(),
        "the fourth waits: pushback, not refusal"
    );
    assert_eq!(body_of(mailbox.try_recv()), "0");
    assert_eq!(waiting.await.unwrap(), Ok(()), "queued once room was made");
    for expected in ["1", "2", "3"] {
        assert_eq!(body_of(mailbox.try_recv()), expected, "in order");
    }
    assert!(mailbox.try_recv().is_none());
}

#[tokio::test]
async fn bytes_bound_the_queue_but_an_empty_mailbox_takes_any_stanza() {
    let big = "x".repeat(10_000);
    let mailbox = Mailbox::new(limits(1024, 4_000), Arc::default());
    assert!(
        queued(&mailbox, &big),
        "larger than the bound, into an empty mailbox"
    );
    assert!(
        !queued(&mailbox, "small"),
        "nothing more while over the byte bound"
    );
    assert_eq!(body_of(mailbox.try_recv()), big);
    assert!(queued(&mailbox, "a") && queued(&mailbox, "b"));
}

#[tokio::test]
async fn the_process_budget_is_shared_and_given_back() {
    let budget: Arc<ProcessBudget> = Arc::default();
    let bounded = MailboxLimits {
        process_bytes: 300,
        ..limits(1024, usize::MAX)
    };
    let one = Mailbox::new(bounded, budget.clone());
    let two = Mailbox::new(bounded, budget.clone());
    let body = "y".repeat(100);
    assert!(queued(&one, &body), "first into an empty mailbox");
    assert!(queued(&two, &body), "first into an empty mailbox");
    assert!(!queued(&one, &body), "the process budget is spent");
    assert!(budget.0.load(Ordering::Relaxed) > 200);
    one.try_recv();
    two.close_and_clear();
    assert_eq!(budget.0.load(Ordering::Relaxed), 0, "every byte given back");
}

#[tokio::test]
async fn closing_wakes_waiting_producers_and_drops_what_is_queued_unwritten() {
    let mailbox = Arc::new(Mailbox::new(limits(1, usize::MAX), Arc::default()));
    let (first, first_heard) = delivery("first");
    mailbox.deliver(first).await.unwrap();
    let (second, _) = delivery("second");
    let waiting = tokio::spawn({
        let mailbox = mailbox.clone();
        async move { mailbox.deliver(second).await }
    });
    tokio::task::yield_now().await;
    mailbox.close_and_clear();
    assert_eq!(waiting.await.unwrap(), Err(Closed));
    assert!(
        first_heard.await.is_err(),
        "a queued delivery's producer hears it was never written"
    );
    assert!(mailbox.recv().await.is_none(), "closed and empty");
}

#[tokio::test]
async fn force_passes_the_bounds_and_close_still_drains() {
    let mailbox = Mailbox::new(limits(1, usize::MAX), Arc::default());
    assert!(queued(&mailbox, "m"));
    mailbox.force(Command::Terminate(StreamCondition::SystemShutdown));
    mailbox.close();
    assert!(!queued(&mailbox, "late"), "closed");
    mailbox.force(Command::Terminate(StreamCondition::Conflict));
    assert_eq!(body_of(mailbox.recv().await), "m");
    assert!(matches!(
        mailbox.recv().await,
        Some(Command::Terminate(StreamCondition::SystemShutdown))
    ));
    assert!(mailbox.recv().await.is_none(), "nothing forced after close");
}

#[tokio::test]
async fn a_waiting_consumer_wakes_for_each_delivery_and_for_close() {
    let mailbox = Arc::new(Mailbox::new(limits(8, usize::MAX), Arc::default()));
    let consumer = tokio::spawn({
        let mailbox = mailbox.clone();
        async move {
            let mut received = 0;
            while mailbox.recv().await.is_some() {
                received += 1;
            }
            received
        }
    });
    for i in 0..100 {
        let (d, _) = delivery(&i.to_string());
        mailbox.deliver(d).await.unwrap();
    }
    mailbox.close();
    let received = tokio::time::timeout(Duration::from_secs(5), consumer)
        .await
        .expect("the consumer woke for every delivery and for close")
        .unwrap();
    assert_eq!(received, 100);
}

#[test]
fn the_estimate_covers_the_serialized_size_at_any_depth() {
    let flat = message(&"z".repeat(5000));
    let written = flat.to_xml(ns::CLIENT).len();
    assert!(flat.estimated_bytes() >= written);
    let mut deep = message("text");
    for _ in 0..1_000 {
        deep = Element::new("x", "urn:deep").with_child(deep);
    }
    assert!(deep.estimated_bytes() >= deep.to_xml(ns::CLIENT).len());
}
