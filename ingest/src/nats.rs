//! JetStream set-up: the event and DLQ streams, the state bucket and the
//! durable pull consumer (the connection is `gridwatch_runtime::nats`).

use async_nats::jetstream::{self, consumer, kv, stream};
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;

use gridwatch_model::event::CLOCK_SUBJECT;
use gridwatch_model::kv::{Key, NODE_PREFIX};

use crate::config::Config;
use crate::error::IngestError;

/// The event stream's configuration (file storage, dedupe window).
pub fn events_stream(cfg: &Config) -> stream::Config {
    stream::Config {
        name: cfg.stream.clone(),
        subjects: vec!["gw.ev.>".into(), CLOCK_SUBJECT.into()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(cfg.dedupe_window_s),
        num_replicas: cfg.replicas,
        ..Default::default()
    }
}

/// Creates the event stream, the DLQ stream and the state bucket if absent.
pub async fn ensure_streams(
    js: &jetstream::Context,
    cfg: &Config,
) -> Result<kv::Store, IngestError> {
    js.get_or_create_stream(events_stream(cfg))
        .await
        .map_err(IngestError::nats)?;
    js.get_or_create_stream(stream::Config {
        name: cfg.dlq_stream.clone(),
        subjects: vec!["gw.dlq.>".into()],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(600),
        num_replicas: cfg.replicas,
        ..Default::default()
    })
    .await
    .map_err(IngestError::nats)?;
    let store = match js.get_key_value(&cfg.state_bucket).await {
        Ok(s) => s,
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: cfg.state_bucket.clone(),
                history: 1,
                storage: stream::StorageType::File,
                num_replicas: cfg.replicas,
                ..Default::default()
            })
            .await
            .map_err(IngestError::nats)?,
    };
    Ok(store)
}

/// The event stream's identity: its creation time (Unix ns). A stream
/// deleted and created again under the same name has another.
pub async fn stream_created_ns(js: &jetstream::Context, cfg: &Config) -> Result<i128, IngestError> {
    let mut s = js
        .get_stream(&cfg.stream)
        .await
        .map_err(IngestError::nats)?;
    let info = s.info().await.map_err(IngestError::nats)?;
    Ok(info.created.unix_timestamp_nanos())
}

/// (Re)creates the durable pull consumer so it delivers from `start_seq`.
/// The checkpoint, not the consumer's ack floor, is the source of truth.
pub async fn consumer_from(
    js: &jetstream::Context,
    cfg: &Config,
    start_seq: u64,
) -> Result<consumer::PullConsumer, IngestError> {
    let stream = js
        .get_stream(&cfg.stream)
        .await
        .map_err(IngestError::nats)?;
    let _ = stream.delete_consumer(&cfg.consumer).await;
    stream
        .create_consumer(consumer::pull::Config {
            durable_name: Some(cfg.consumer.clone()),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: start_seq.max(1),
            },
            ack_policy: consumer::AckPolicy::All,
            ack_wait: Duration::from_secs(cfg.ack_wait_s.max(1)),
            max_ack_pending: 1_000_000,
            filter_subjects: vec![cfg.filter_subject.clone(), CLOCK_SUBJECT.into()],
            ..Default::default()
        })
        .await
        .map_err(IngestError::nats)
}

/// Reads the `seq` of every node state in the bucket, so versions keep
/// rising across restarts even when states were published after the last
/// checkpoint.
pub async fn published_seqs(store: &kv::Store) -> Result<HashMap<String, u64>, IngestError> {
    let mut out = HashMap::new();
    let info = store.status().await.map_err(IngestError::nats)?;
    if info.values() == 0 {
        return Ok(out);
    }
    let mut watch = store
        .watch_with_history(format!("{NODE_PREFIX}>"))
        .await
        .map_err(IngestError::nats)?;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), watch.next()).await;
        let Ok(Some(entry)) = next else { break };
        let entry = entry.map_err(IngestError::nats)?;
        #[derive(serde::Deserialize)]
        struct Seq {
            seq: u64,
        }
        if let Ok(s) = serde_json::from_slice::<Seq>(&entry.value)
            && let Some(Key::Node(node)) = Key::parse(&entry.key)
        {
            out.insert(node.to_string(), s.seq);
        }
        if entry.delta == 0 {
            break;
        }
    }
    Ok(out)
}
