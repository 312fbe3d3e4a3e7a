//! Follows the state bucket that ingest publishes to: every node state and
//! ingest's statistics, from the latest value of each key onwards. Survives
//! NATS restarts by watching again (re-applied states are ignored).

use async_nats::jetstream::{self, kv::Operation};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

use crate::AppState;
use gridwatch_model::kv::Key;
use gridwatch_model::stats::IngestStats;

/// Runs until cancelled.
pub async fn run(client: async_nats::Client, app: Arc<AppState>, shutdown: CancellationToken) {
    let js = jetstream::new(client);
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let store = match js.get_key_value(&app.cfg.state_bucket).await {
            Ok(s) => s,
            Err(e) => {
                tracing::info!(error = %e, "state bucket not there yet; waiting for ingest");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let mut watch = match store.watch_with_history(">").await {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "watching the state bucket failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        tracing::info!("following node states");
        loop {
            let entry = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = watch.next() => e,
            };
            let entry = match entry {
                Some(Ok(e)) => e,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "state watch error; watching again");
                    break;
                }
                None => break,
            };
            if entry.operation != Operation::Put {
                continue;
            }
            match Key::parse(&entry.key) {
                Some(Key::Node(node)) => {
                    let applied = app.store.apply(node, entry.value);
                    if applied {
                        metrics::counter!("gridwatch_state_updates_total").increment(1);
                    }
                }
                Some(Key::Meta) => {
                    let stats: IngestStats = match serde_json::from_slice(&entry.value) {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::warn!(error = %e, "unreadable ingest statistics ignored");
                            continue;
                        }
                    };
                    gridwatch_runtime::metrics::record_ingest(&stats);
                    app.store.set_meta(stats);
                }
                None => {}
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}
