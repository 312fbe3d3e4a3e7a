//! Publishes what the processor produced, in order: dead letters to
//! `gw.dlq.<reason>` (with the original payload, the reason and the detail in
//! headers), changed node states to the state bucket, ingest statistics,
//! and acks — an ack goes out only after every dead letter before it is
//! stored by JetStream.

use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture};
use bytes::Bytes;
use std::time::Duration;
use tokio::sync::mpsc;

use crate::error::IngestError;
use crate::nats::META_KEY;
use crate::processor::Outbound;

/// Publishes awaiting their ack before we wait for them; well under the
/// client's in-flight limit (5,000 by default), which would otherwise block.
const MAX_PENDING: usize = 1024;

/// Header names on dead letters.
pub mod headers {
    pub const REASON: &str = "Gw-Reason";
    pub const DETAIL: &str = "Gw-Detail";
    pub const SUBJECT: &str = "Gw-Subject";
    pub const STREAM_SEQ: &str = "Gw-Stream-Seq";
}

fn header_safe(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.chars().take(1000).collect()
}

/// One publish, kept so it can be sent again.
struct Item {
    subject: String,
    headers: Option<HeaderMap>,
    payload: Bytes,
}

async fn send(js: &jetstream::Context, it: &Item) -> Result<PublishAckFuture, IngestError> {
    match &it.headers {
        Some(h) => {
            js.publish_with_headers(it.subject.clone(), h.clone(), it.payload.clone())
                .await
        }
        None => js.publish(it.subject.clone(), it.payload.clone()).await,
    }
    .map_err(IngestError::nats)
}

/// Waits for every pending publish. If any failed (NATS restarting, say),
/// sends the whole group again in its original order, each until it is
/// stored: state puts are last-value-wins and dead letters carry a
/// `Nats-Msg-Id`, so repeating them changes nothing.
async fn settle(
    js: &jetstream::Context,
    pending: &mut Vec<(PublishAckFuture, Item)>,
) -> Result<(), IngestError> {
    // Wait for all at once: each ack times out on its own clock, so waiting
    // in turn after an outage would take the timeout times the group.
    let (futures, items): (Vec<_>, Vec<_>) = pending.drain(..).unzip();
    let results = futures::future::join_all(
        futures
            .into_iter()
            .map(std::future::IntoFuture::into_future),
    )
    .await;
    let failed = results.iter().any(Result::is_err);
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        tracing::warn!(error = %e, "publish failed; sending the group again");
    }
    if !failed {
        return Ok(());
    }
    for it in &items {
        retry_one(js, it).await;
    }
    Ok(())
}

async fn publish(
    js: &jetstream::Context,
    pending: &mut Vec<(PublishAckFuture, Item)>,
    it: Item,
) -> Result<(), IngestError> {
    match send(js, &it).await {
        Ok(f) => pending.push((f, it)),
        Err(e) => {
            // Could not even send: settle what is pending, then this one,
            // keeping the order.
            tracing::warn!(error = %e, "publish could not be sent");
            settle(js, pending).await?;
            retry_one(js, &it).await;
        }
    }
    Ok(())
}

async fn retry_one(js: &jetstream::Context, it: &Item) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let r = match send(js, it).await {
            Ok(f) => f.await.map(|_| ()).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match r {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, subject = %it.subject, "publish failed; retrying"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Runs until the processor hangs up.
pub async fn run(
    js: jetstream::Context,
    bucket: String,
    mut rx: mpsc::Receiver<Outbound>,
) -> Result<(), IngestError> {
    let mut dead_pending: Vec<(PublishAckFuture, Item)> = Vec::new();
    let mut state_pending: Vec<(PublishAckFuture, Item)> = Vec::new();
    let kv_subject = |key: &str| format!("$KV.{bucket}.{key}");
    while let Some(o) = rx.recv().await {
        match o {
            Outbound::Dead(d) => {
                let mut h = HeaderMap::new();
                h.insert(headers::REASON, d.reason);
                h.insert(headers::DETAIL, header_safe(&d.detail).as_str());
                h.insert(headers::SUBJECT, header_safe(&d.subject).as_str());
                h.insert(headers::STREAM_SEQ, d.seq.to_string().as_str());
                h.insert("Nats-Msg-Id", format!("dlq-{}", d.seq).as_str());
                let it = Item {
                    subject: format!("gw.dlq.{}", d.reason),
                    headers: Some(h),
                    payload: d.payload,
                };
                publish(&js, &mut dead_pending, it).await?;
                if dead_pending.len() >= MAX_PENDING {
                    settle(&js, &mut dead_pending).await?;
                }
            }
            Outbound::States(states) => {
                for (key, value) in states {
                    let it = Item {
                        subject: kv_subject(&key),
                        headers: None,
                        payload: value,
                    };
                    publish(&js, &mut state_pending, it).await?;
                    if state_pending.len() >= MAX_PENDING {
                        settle(&js, &mut state_pending).await?;
                    }
                }
            }
            Outbound::Meta(bytes) => {
                settle(&js, &mut state_pending).await?;
                let it = Item {
                    subject: kv_subject(META_KEY),
                    headers: None,
                    payload: bytes,
                };
                // Statistics are refreshed every second: one lost is harmless.
                if let Ok(f) = send(&js, &it).await {
                    let _ = f.await;
                }
            }
            Outbound::Ack(msg) => {
                settle(&js, &mut dead_pending).await?;
                if let Err(e) = msg.ack().await {
                    // Not fatal: the checkpoint is the source of truth, and
                    // a redelivered message is skipped by its sequence.
                    tracing::warn!(error = %e, "ack failed");
                }
            }
        }
    }
    settle(&js, &mut dead_pending).await?;
    settle(&js, &mut state_pending).await?;
    Ok(())
}
