//! Pulls events from the durable consumer and hands them to the processor.
//! When the stream breaks or the connection comes back after a loss (a NATS
//! restart, say: messages delivered into the void would otherwise wait for
//! the ack timeout) it recreates the consumer from the message after the
//! last one it forwarded: the processor skips anything it has already
//! applied, so nothing is lost or doubled.

use async_nats::jetstream;
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::IngestError;
use crate::nats::consumer_from;
use crate::pipeline::{Arrived, ConsumerGauges};

/// Runs until cancelled or the processor hangs up.
pub async fn run(
    disconnects: Arc<AtomicU64>,
    js: jetstream::Context,
    cfg: Config,
    start_seq: u64,
    tx: mpsc::Sender<Arrived>,
    gauges: Arc<ConsumerGauges>,
    shutdown: CancellationToken,
) -> Result<(), IngestError> {
    let mut next_seq = start_seq;
    loop {
        let consumer = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            c = consumer_from(&js, &cfg, next_seq) => c,
        };
        let consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "creating the consumer failed; retrying");
                gauges.restarts.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                }
            }
        };
        let messages = consumer
            .stream()
            .max_messages_per_batch(cfg.batch_max_events.max(100))
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await;
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "opening the message stream failed; retrying");
                continue;
            }
        };
        tracing::info!(from_seq = next_seq, "consuming");
        let mut check = tokio::time::interval(Duration::from_millis(100));
        let seen_disconnects = disconnects.load(Ordering::SeqCst);
        loop {
            let item = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                m = messages.next() => m,
                _ = check.tick() => {
                    if disconnects.load(Ordering::SeqCst) != seen_disconnects {
                        tracing::warn!(from_seq = next_seq, "connection was lost; recreating the consumer");
                        gauges.restarts.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    continue;
                }
            };
            match item {
                Some(Ok(msg)) => {
                    if let Ok(info) = msg.info() {
                        next_seq = next_seq.max(info.stream_sequence + 1);
                        gauges.lag.store(info.pending, Ordering::Relaxed);
                    }
                    let arrived = Arrived {
                        at: Instant::now(),
                        msg,
                    };
                    if tx.send(arrived).await.is_err() {
                        return Ok(());
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "message stream error; recreating the consumer");
                    gauges.restarts.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                None => break,
            }
        }
    }
}
