//! The reminders just sent: follows `GW_REMINDERS` (what `gridwatch-notify`
//! delivered to DingTalk or kept in its outbox) and keeps the newest
//! [`KEPT`] in memory for `GET /api/v1/reminders` and the wall. Waits for
//! the stream while notify has not made it; after an error it follows
//! again from the message after the last one it holds.

use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;
use gridwatch_model::api::Reminder;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Reminders held.
pub const KEPT: usize = 200;

/// The newest reminders, oldest first.
#[derive(Clone, Default)]
pub struct Recent {
    inner: Arc<Mutex<VecDeque<Reminder>>>,
}

impl Recent {
    fn push(&self, r: Reminder) {
        let mut q = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == KEPT {
            q.pop_front();
        }
        q.push_back(r);
    }

    /// Up to `limit` of the newest that `keep` lets through, newest first.
    pub fn newest(&self, limit: usize, keep: impl Fn(&Reminder) -> bool) -> Vec<Reminder> {
        let q = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        q.iter()
            .rev()
            .filter(|r| keep(r))
            .take(limit)
            .cloned()
            .collect()
    }
}

/// Follows `stream` into `recent` until `stop`.
pub async fn follow(
    js: jetstream::Context,
    stream: String,
    recent: Recent,
    stop: CancellationToken,
) {
    let mut next: Option<u64> = None;
    loop {
        let pause = async {
            tokio::select! {
                _ = stop.cancelled() => true,
                _ = tokio::time::sleep(Duration::from_secs(2)) => false,
            }
        };
        let s = match js.get_stream(&stream).await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "no reminders stream yet");
                if pause.await {
                    return;
                }
                continue;
            }
        };
        let start = match next {
            Some(n) => n,
            None => match s.get_info().await {
                Ok(i) => i.state.last_sequence.saturating_sub(KEPT as u64 - 1).max(1),
                Err(e) => {
                    tracing::warn!(error = %e, "the reminders stream");
                    if pause.await {
                        return;
                    }
                    continue;
                }
            },
        };
        let consumer = s
            .create_consumer(consumer::pull::OrderedConfig {
                deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: start,
                },
                ..Default::default()
            })
            .await;
        let mut msgs = match consumer {
            Ok(c) => match c.messages().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "following the reminders");
                    if pause.await {
                        return;
                    }
                    continue;
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, "following the reminders");
                if pause.await {
                    return;
                }
                continue;
            }
        };
        loop {
            let m = tokio::select! {
                _ = stop.cancelled() => return,
                m = msgs.next() => m,
            };
            let m = match m {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "the reminders feed; following again");
                    break;
                }
                None => break,
            };
            if let Ok(info) = m.info() {
                next = Some(info.stream_sequence + 1);
            }
            match serde_json::from_slice::<Reminder>(&m.payload) {
                Ok(r) => recent.push(r),
                Err(e) => tracing::warn!(error = %e, "an unreadable reminder"),
            }
        }
    }
}
