//! Publishes what the processor produced, in order: dead letters to
//! `gw.dlq.<reason>` (with the original payload, the reason and the detail in
//! headers), changed node states to the state bucket, ingest statistics,
//! and acks — an ack goes out only after every dead letter before it is
//! stored by JetStream.
//!
//! On shutdown a publish being retried is abandoned: node states are all
//! published again at start, and a dead letter not yet stored is still in
//! the journal (the processor takes no snapshot while one is unstored), so
//! it is sent again at start.

use async_nats::HeaderMap;
use async_nats::jetstream;
use gridwatch_model::kv::{META_KEY, put_subject};
use gridwatch_runtime::RuntimeError;
use gridwatch_runtime::publish::{Pipelined, Publish};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::IngestError;
use crate::pipeline::{DeadLetters, Outbound};

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

/// Runs until the processor hangs up, or `stop` is cancelled while a
/// publish is being retried.
pub async fn run(
    js: jetstream::Context,
    bucket: String,
    mut rx: mpsc::Receiver<Outbound>,
    dead: Arc<DeadLetters>,
    stop: CancellationToken,
) -> Result<(), IngestError> {
    let mut dead_pending = Pipelined::new(MAX_PENDING);
    let mut state_pending = Pipelined::new(MAX_PENDING);
    let kv_subject = |key: &str| put_subject(&bucket, key);
    let result: Result<(), RuntimeError> = async {
        while let Some(o) = rx.recv().await {
            match o {
                Outbound::Dead(d) => {
                    let mut h = HeaderMap::new();
                    h.insert(headers::REASON, d.reason);
                    h.insert(headers::DETAIL, header_safe(&d.detail).as_str());
                    h.insert(headers::SUBJECT, header_safe(&d.subject).as_str());
                    h.insert(headers::STREAM_SEQ, d.seq.to_string().as_str());
                    h.insert("Nats-Msg-Id", format!("dlq-{}", d.seq).as_str());
                    let p = Publish {
                        subject: format!("gw.dlq.{}", d.reason),
                        headers: Some(h),
                        payload: d.payload,
                    };
                    let n = dead_pending.push(&js, p, &stop).await?;
                    dead.stored(n);
                }
                Outbound::States(states) => {
                    for (key, value) in states {
                        let p = Publish {
                            subject: kv_subject(&key),
                            headers: None,
                            payload: value,
                        };
                        state_pending.push(&js, p, &stop).await?;
                    }
                }
                Outbound::Meta(bytes) => {
                    state_pending.confirm(&js, &stop).await?;
                    let p = Publish {
                        subject: kv_subject(META_KEY),
                        headers: None,
                        payload: bytes,
                    };
                    // Statistics are refreshed every second: one lost is harmless.
                    if let Ok(f) = p.send(&js).await {
                        let _ = f.await;
                    }
                }
                Outbound::Ack(msg) => {
                    let n = dead_pending.confirm(&js, &stop).await?;
                    dead.stored(n);
                    if let Err(e) = msg.ack().await {
                        // Not fatal: the checkpoint is the source of truth, and
                        // a redelivered message is skipped by its sequence.
                        tracing::warn!(error = %e, "ack failed");
                    }
                }
            }
        }
        let n = dead_pending.confirm(&js, &stop).await?;
        dead.stored(n);
        state_pending.confirm(&js, &stop).await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(RuntimeError::Cancelled) => {
            tracing::warn!(
                unstored_dead_letters = dead.unstored.load(Ordering::SeqCst),
                "shutdown while publishing: states go out again at start, dead letters from the journal"
            );
            Ok(())
        }
        Err(e) => Err(IngestError::nats(e)),
    }
}
