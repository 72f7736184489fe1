//! Change notifications: the scripts PUBLISH the bare JID whose sessions changed on
//! `{prefix}changes`, and every router's cache follows that channel.
//!
//! Classic (not sharded) pub/sub: on a Redis Cluster a PUBLISH on any node is broadcast
//! to every node, so one subscription on any node hears every change. The subscriber is
//! a plain connection to one seed node; when it breaks, the next seed is tried.

use super::conn::RedisServers;
use crate::traits::Change;
use std::time::Duration;
use switchyard_core::Jid;
use tokio::sync::mpsc;

/// Forwards change notifications until the receiver is dropped, resubscribing with
/// backoff (to the seeds in turn); after any gap it reports [`Change::Unknown`] so caches
/// start over.
pub(super) async fn follow(servers: RedisServers, channel: String, tx: mpsc::Sender<Change>) {
    use tokio_stream::StreamExt;
    let mut backoff = Duration::from_millis(100);
    for url in servers.urls.iter().cycle() {
        if tx.is_closed() {
            return;
        }
        let subscribed = async {
            let client = servers.client(url)?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        };
        match subscribed.await {
            Ok(mut messages) => {
                backoff = Duration::from_millis(100);
                if tx.send(Change::Unknown).await.is_err() {
                    return;
                }
                while let Some(message) = messages.next().await {
                    let change = message
                        .get_payload::<String>()
                        .ok()
                        .and_then(|s| Jid::parse(&s).ok())
                        .map_or(Change::Unknown, Change::Account);
                    if tx.send(change).await.is_err() {
                        return;
                    }
                }
                tracing::warn!("registry change notifications interrupted; resubscribing");
            }
            Err(e) => tracing::warn!(error = %e, "cannot subscribe to registry changes"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
