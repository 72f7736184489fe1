//! Link batching: what is ready goes in one gRPC message.
//!
//! Both ends of a link write through a bounded queue of messages. The stream that feeds
//! the gRPC call takes the first message waiting and merges into it every further one
//! that is already waiting and of the same kind (stanzas, acknowledgements, deliveries,
//! delivery results), up to [`MAX_ITEMS`] items and about [`MAX_BYTES`] bytes. It never
//! waits to fill a batch: under light load a message goes alone at once, under heavy load
//! batches grow by themselves. Order is kept: a message that cannot be merged (another
//! kind, or no room) is held and starts the next batch.

use std::pin::Pin;
use std::task::{Context, Poll};
use switchyard_rpc::pb;
use tokio::sync::mpsc;
use tokio_stream::Stream;

/// Most items (stanzas, acknowledgements, deliveries, results) in one message.
pub const MAX_ITEMS: usize = 512;
/// Bytes of stanza content in one message, beyond which the batch is closed (a single
/// stanza larger than this still goes, alone).
pub const MAX_BYTES: usize = 1024 * 1024;

/// A message that can take others of its kind.
pub trait Mergeable: Sized {
    /// Items and content bytes the message holds.
    fn size(&self) -> (usize, usize);
    /// Appends `next` if it is of the same kind; hands it back otherwise.
    fn merge(&mut self, next: Self) -> Result<(), Self>;
}

/// Whether a message of `next` size fits beside one of `held` size.
fn fits(held: (usize, usize), next: (usize, usize)) -> bool {
    held.0 + next.0 <= MAX_ITEMS && held.1 + next.1 <= MAX_BYTES
}

/// The receiving end of a link's queue, merging what is ready (see the module doc).
#[derive(Debug)]
pub struct Coalesced<T> {
    rx: mpsc::Receiver<T>,
    /// Taken from the queue but not merged: the start of the next batch.
    held: Option<T>,
}

impl<T> Coalesced<T> {
    pub fn new(rx: mpsc::Receiver<T>) -> Self {
        Self { rx, held: None }
    }
}

impl<T: Mergeable + Unpin> Stream for Coalesced<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = &mut *self;
        let mut batch = match this.held.take() {
            Some(held) => held,
            None => match this.rx.poll_recv(cx) {
                Poll::Ready(Some(first)) => first,
                other => return other,
            },
        };
        let mut size = batch.size();
        while let Ok(next) = this.rx.try_recv() {
            let adds = next.size();
            let merged = match fits(size, adds) {
                true => batch.merge(next),
                false => Err(next),
            };
            match merged {
                Ok(()) => size = (size.0 + adds.0, size.1 + adds.1),
                Err(next) => {
                    this.held = Some(next);
                    break;
                }
            }
        }
        Poll::Ready(Some(batch))
    }
}

/// Edge→router: stanzas merge with stanzas, delivery results with results.
impl Mergeable for pb::EdgeMessage {
    fn size(&self) -> (usize, usize) {
        use pb::edge_message::Body;
        match &self.body {
            Some(Body::Stanzas(b)) => {
                (b.stanzas.len(), b.stanzas.iter().map(|s| s.xml.len()).sum())
            }
            Some(Body::Results(r)) => (r.results.len(), 0),
            _ => (1, 0),
        }
    }

    fn merge(&mut self, next: Self) -> Result<(), Self> {
        use pb::edge_message::Body;
        match (&mut self.body, next.body) {
            (Some(Body::Stanzas(a)), Some(Body::Stanzas(b))) => a.stanzas.extend(b.stanzas),
            (Some(Body::Results(a)), Some(Body::Results(b))) => a.results.extend(b.results),
            (_, body) => return Err(Self { body }),
        }
        Ok(())
    }
}

/// Router→edge: acknowledgements merge with acknowledgements, deliveries with
/// deliveries; an error ends the stream and merges with nothing.
impl Mergeable for Result<pb::RouterMessage, tonic::Status> {
    fn size(&self) -> (usize, usize) {
        use pb::router_message::Body;
        match self.as_ref().map(|m| &m.body) {
            Ok(Some(Body::Acks(a))) => (a.seqs.len(), 0),
            Ok(Some(Body::Deliveries(d))) => (
                d.deliveries.len(),
                d.deliveries.iter().map(|d| d.xml.len()).sum(),
            ),
            _ => (1, 0),
        }
    }

    fn merge(&mut self, next: Self) -> Result<(), Self> {
        use pb::router_message::Body;
        let Ok(held) = self.as_mut() else {
            return Err(next);
        };
        let next = match next {
            Ok(next) => next,
            Err(status) => return Err(Err(status)),
        };
        match (&mut held.body, next.body) {
            (Some(Body::Acks(a)), Some(Body::Acks(b))) => a.seqs.extend(b.seqs),
            (Some(Body::Deliveries(a)), Some(Body::Deliveries(b))) => {
                a.deliveries.extend(b.deliveries)
            }
            (_, body) => return Err(Ok(pb::RouterMessage { body })),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_stream::StreamExt;

    /// Items of one kind (`true`/`false`) with a byte size each.
    #[derive(Debug, PartialEq)]
    struct Msg(bool, Vec<usize>);

    impl Mergeable for Msg {
        fn size(&self) -> (usize, usize) {
            (self.1.len(), self.1.iter().sum())
        }
        fn merge(&mut self, next: Self) -> Result<(), Self> {
            if next.0 != self.0 {
                return Err(next);
            }
            self.1.extend(next.1);
            Ok(())
        }
    }

    async fn batches(items: Vec<Msg>) -> Vec<Msg> {
        let (tx, rx) = mpsc::channel(items.len().max(1));
        for m in items {
            tx.send(m).await.unwrap();
        }
        drop(tx);
        Coalesced::new(rx).collect().await
    }

    #[tokio::test]
    async fn what_is_ready_goes_in_one_message_up_to_the_count_and_one_past_starts_the_next() {
        let exactly: Vec<Msg> = (0..MAX_ITEMS).map(|i| Msg(true, vec![i % 7])).collect();
        let got = batches(exactly).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.len(), MAX_ITEMS);
        let one_more: Vec<Msg> = (0..=MAX_ITEMS).map(|i| Msg(true, vec![i])).collect();
        let got = batches(one_more).await;
        assert_eq!(
            got.iter().map(|m| m.1.len()).collect::<Vec<_>>(),
            [MAX_ITEMS, 1]
        );
        assert_eq!(
            got[1].1,
            [MAX_ITEMS],
            "the one that did not fit is next, not lost"
        );
        let many: Vec<Msg> = (0..10_000).map(|i| Msg(true, vec![i])).collect();
        let got = batches(many).await;
        let flat: Vec<usize> = got.iter().flat_map(|m| m.1.clone()).collect();
        assert_eq!(flat, (0..10_000).collect::<Vec<_>>(), "all, in order");
        assert!(got.iter().all(|m| m.1.len() <= MAX_ITEMS));
    }

    #[tokio::test]
    async fn bytes_bound_a_batch_but_never_hold_back_one_large_item() {
        let half = MAX_BYTES / 2;
        let got = batches(vec![
            Msg(true, vec![half]),
            Msg(true, vec![half]),
            Msg(true, vec![1]),
        ])
        .await;
        assert_eq!(got, [Msg(true, vec![half, half]), Msg(true, vec![1])]);
        let got = batches(vec![Msg(true, vec![3 * MAX_BYTES]), Msg(true, vec![1])]).await;
        assert_eq!(got, [Msg(true, vec![3 * MAX_BYTES]), Msg(true, vec![1])]);
    }

    #[tokio::test]
    async fn another_kind_closes_the_batch_and_order_is_kept() {
        let got = batches(vec![
            Msg(true, vec![1]),
            Msg(true, vec![2]),
            Msg(false, vec![3]),
            Msg(true, vec![4]),
        ])
        .await;
        assert_eq!(
            got,
            [
                Msg(true, vec![1, 2]),
                Msg(false, vec![3]),
                Msg(true, vec![4])
            ]
        );
    }
}
