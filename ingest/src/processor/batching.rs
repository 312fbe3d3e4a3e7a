//! Forming micro-batches: up to `batch_max_events` messages, closing
//! `batch_max_ms` after the first one *arrived* (not after it was taken):
//! when the previous batch took longer than that, the backlog is taken at
//! once and the batch closes without waiting again.

use async_nats::jetstream::Message;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use crate::pipeline::Arrived;

/// Waits up to `wait` for a first message, then fills the batch. Returns
/// `None` once the consumer has hung up; an empty batch when `wait` passed
/// with nothing.
pub fn take(
    rt: &Runtime,
    rx: &mut mpsc::Receiver<Arrived>,
    wait: Duration,
    batch_wait: Duration,
    max_events: usize,
) -> Option<Vec<Message>> {
    let first = rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await });
    let mut batch = Vec::new();
    match first {
        Ok(Some(Arrived { at, msg })) => {
            batch.push(msg);
            let deadline = tokio::time::Instant::from_std(at + batch_wait);
            while batch.len() < max_events {
                let next = match rx.try_recv() {
                    Ok(a) => Some(a),
                    Err(_) => rt
                        .block_on(async { tokio::time::timeout_at(deadline, rx.recv()).await })
                        .ok()
                        .flatten(),
                };
                match next {
                    Some(a) => batch.push(a.msg),
                    None => break,
                }
            }
        }
        Ok(None) => return None,
        Err(_) => {}
    }
    Some(batch)
}
