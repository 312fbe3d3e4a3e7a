//! Publishes what the processor produced, in order: dead letters to
//! `gw.dlq.<reason>` (with the original payload, the reason and the detail in
//! headers), changed node states to the state bucket, ingest statistics,
//! and acks — an ack goes out only after every dead letter before it is
//! stored by JetStream.
//!
//! On shutdown a publish being retried is abandoned: node states are all
//! published again at start, and a dead letter not yet stored is still in
//! the journal or, past a snapshot, in the snapshot's list of unsettled
//! dead letters, so it is sent again at start.
//!
//! Nothing one message does can stop the others: a node state the server
//! refuses (over max_payload, not permitted: no ack after
//! [`STATE_ATTEMPTS`] tries while connected) is counted, logged and left
//! out, the node's next change tried again. A dead letter too large beside
//! its headers is cut to fit (`Gw-Payload-Bytes` says how long it was);
//! one the server refuses all the same, or that has no ack after
//! [`DEAD_ATTEMPTS`] tries while connected (not permitted), is appended to
//! `dead-letters-set-aside.jsonl` in the data dir, so nothing is lost.

use async_nats::HeaderMap;
use async_nats::jetstream;
use gridwatch_model::kv::{META_KEY, put_subject};
use gridwatch_runtime::RuntimeError;
use gridwatch_runtime::publish::{Pipelined, Publish};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::IngestError;
use crate::pipeline::{DeadLetter, DeadLetters, Outbound, PublisherGauges};

/// Publishes awaiting their ack before we wait for them; well under the
/// client's in-flight limit (5,000 by default), which would otherwise block.
const MAX_PENDING: usize = 1024;

/// Tries of a node state while connected before it is left out (with the
/// backoff, about 15 s).
pub const STATE_ATTEMPTS: u32 = 10;

/// Tries of a dead letter while connected before it is set aside in the
/// data dir (about a minute: a stream failing over has time to recover).
pub const DEAD_ATTEMPTS: u32 = 30;

/// The file dead letters the server refused are kept in.
pub const SET_ASIDE_FILE: &str = "dead-letters-set-aside.jsonl";

/// Room left for the protocol line beside a message's headers and payload.
const PROTOCOL_SLACK: usize = 512;

/// Header names on dead letters.
pub mod headers {
    pub const REASON: &str = "Gw-Reason";
    pub const DETAIL: &str = "Gw-Detail";
    pub const SUBJECT: &str = "Gw-Subject";
    pub const STREAM_SEQ: &str = "Gw-Stream-Seq";
    /// Set when the payload was cut to fit: its length before.
    pub const PAYLOAD_BYTES: &str = "Gw-Payload-Bytes";
}

fn header_safe(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned.chars().take(1000).collect()
}

/// Where the publisher writes.
pub struct Targets {
    pub js: jetstream::Context,
    /// The state bucket.
    pub bucket: String,
    /// For dead letters the server refuses.
    pub data_dir: PathBuf,
}

/// The dead letter as a publish: headers, and the payload cut to fit
/// `max_payload` when it must be (counted in `gauges`).
fn dead_publish(d: DeadLetter, max_payload: usize, gauges: &PublisherGauges) -> Publish {
    let pairs = [
        (headers::REASON, d.reason.to_string()),
        (headers::DETAIL, header_safe(&d.detail)),
        (headers::SUBJECT, header_safe(&d.subject)),
        (headers::STREAM_SEQ, d.seq.to_string()),
        ("Nats-Msg-Id", format!("dlq-{}", d.seq)),
    ];
    let mut h = HeaderMap::new();
    // `NATS/1.0\r\n`, each `name: value\r\n`, the closing `\r\n`, and
    // the length header added when cutting.
    let mut head = 12 + 64;
    for (k, v) in &pairs {
        head += k.len() + v.len() + 4;
        h.insert(*k, v.as_str());
    }
    let room = max_payload.saturating_sub(head + PROTOCOL_SLACK);
    let mut payload = d.payload;
    if payload.len() > room {
        h.insert(headers::PAYLOAD_BYTES, payload.len().to_string().as_str());
        payload.truncate(room);
        gauges.dead_truncated.fetch_add(1, Ordering::Relaxed);
    }
    Publish {
        subject: format!("gw.dlq.{}", d.reason),
        headers: Some(h),
        payload,
    }
}

/// Appends refused dead letters to [`SET_ASIDE_FILE`], fsynced.
fn set_aside(
    dir: &std::path::Path,
    refused: &[gridwatch_runtime::publish::Refused],
) -> Result<(), IngestError> {
    let path = dir.join(SET_ASIDE_FILE);
    let io = |e| IngestError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(io)?;
    for r in refused {
        let h = |k: &str| {
            r.publish
                .headers
                .as_ref()
                .and_then(|h| h.get(k))
                .map(|v| v.as_str().to_string())
        };
        let line = serde_json::json!({
            "subject": r.publish.subject,
            "refused": r.why,
            "stream_seq": h(headers::STREAM_SEQ),
            "original_subject": h(headers::SUBJECT),
            "detail": h(headers::DETAIL),
            "payload_hex": hex(&r.publish.payload),
        });
        writeln!(f, "{line}").map_err(io)?;
    }
    f.sync_all().map_err(io)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs until the processor hangs up, or `stop` is cancelled while a
/// publish is being retried.
pub async fn run(
    to: Targets,
    mut rx: mpsc::Receiver<Outbound>,
    dead: Arc<DeadLetters>,
    gauges: Arc<PublisherGauges>,
    stop: CancellationToken,
) -> Result<(), IngestError> {
    let js = &to.js;
    let mut dead_pending = Pipelined::new(MAX_PENDING).giving_up_after(DEAD_ATTEMPTS);
    let mut state_pending = Pipelined::new(MAX_PENDING).giving_up_after(STATE_ATTEMPTS);
    let kv_subject = |key: &str| put_subject(&to.bucket, key);
    // Dead letters settled (stored or set aside): set aside first, then
    // counted, so none is lost between the two.
    let settle_dead = |n: usize, p: &mut Pipelined| -> Result<(), IngestError> {
        let refused = p.take_refused();
        if !refused.is_empty() {
            set_aside(&to.data_dir, &refused)?;
            gauges
                .dead_set_aside
                .fetch_add(refused.len() as u64, Ordering::Relaxed);
        }
        dead.stored(n);
        Ok(())
    };
    let count_states = |p: &mut Pipelined| {
        let n = p.take_refused().len() as u64;
        gauges.states_refused.fetch_add(n, Ordering::Relaxed);
    };
    let result: Result<(), IngestError> = async {
        while let Some(o) = rx.recv().await {
            match o {
                Outbound::Dead(d) => {
                    let max = js.client().server_info().max_payload;
                    let p = dead_publish(d, max, &gauges);
                    let n = dead_pending.push(js, p, &stop).await?;
                    settle_dead(n, &mut dead_pending)?;
                }
                Outbound::States(states) => {
                    for (key, value) in states {
                        let p = Publish {
                            subject: kv_subject(&key),
                            headers: None,
                            payload: value,
                        };
                        state_pending.push(js, p, &stop).await?;
                        count_states(&mut state_pending);
                    }
                }
                Outbound::Meta(bytes) => {
                    state_pending.confirm(js, &stop).await?;
                    count_states(&mut state_pending);
                    let p = Publish {
                        subject: kv_subject(META_KEY),
                        headers: None,
                        payload: bytes,
                    };
                    // Statistics are refreshed every second: one lost is harmless.
                    if let Ok(f) = p.send(js).await {
                        let _ = f.await;
                    }
                }
                Outbound::Ack(msg) => {
                    let n = dead_pending.confirm(js, &stop).await?;
                    settle_dead(n, &mut dead_pending)?;
                    if let Err(e) = msg.ack().await {
                        // Not fatal: the checkpoint is the source of truth, and
                        // a redelivered message is skipped by its sequence.
                        tracing::warn!(error = %e, "ack failed");
                    }
                }
            }
        }
        let n = dead_pending.confirm(js, &stop).await?;
        settle_dead(n, &mut dead_pending)?;
        state_pending.confirm(js, &stop).await?;
        count_states(&mut state_pending);
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(IngestError::Runtime(RuntimeError::Cancelled)) => {
            tracing::warn!(
                unstored_dead_letters = dead.unstored(),
                "shutdown while publishing: states go out again at start, dead letters from the journal"
            );
            Ok(())
        }
        Err(e) => Err(e),
    }
}
