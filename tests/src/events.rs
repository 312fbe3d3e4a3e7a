//! Building events as JSON (independently of the services' code) and
//! publishing them to JetStream.

use anyhow::{Context, Result};
use async_nats::HeaderMap;
use async_nats::jetstream;
use bytes::Bytes;
use chrono::{DateTime, FixedOffset, TimeZone};
use serde_json::{Value, json};

/// An event to publish: its subject and exact bytes.
#[derive(Clone, Debug)]
pub struct Msg {
    pub subject: String,
    pub payload: Bytes,
    /// `Nats-Msg-Id`, when set.
    pub msg_id: Option<String>,
}

/// 2022-10-15 (local) at `h:m:s`, +08:00.
pub fn at(h: u32, m: u32, s: u32) -> DateTime<FixedOffset> {
    FixedOffset::east_opt(8 * 3600)
        .and_then(|o| o.with_ymd_and_hms(2022, 10, 15, h, m, s).single())
        .expect("a valid local time")
}

fn street(node: &str) -> &str {
    node.split('/').nth(1).unwrap_or("beilun")
}

/// A message for a JSON event, with `Nats-Msg-Id` = its id.
pub fn msg(ev: &Value) -> Msg {
    let kind = ev["kind"].as_str().unwrap_or("x");
    let node = ev["node"].as_str().unwrap_or("beilun");
    Msg {
        subject: format!("gw.ev.{kind}.{}", street(node)),
        payload: Bytes::from(ev.to_string()),
        msg_id: ev["id"].as_str().map(String::from),
    }
}

/// Raw bytes on a subject, without a message id.
pub fn raw(subject: &str, payload: &[u8]) -> Msg {
    Msg {
        subject: subject.to_string(),
        payload: Bytes::copy_from_slice(payload),
        msg_id: None,
    }
}

fn base(kind: &str, id: &str, ts: DateTime<FixedOffset>, node: &str) -> Value {
    json!({"v": 1, "kind": kind, "id": id, "ts": ts.to_rfc3339(), "node": node})
}

fn merge(mut a: Value, b: Value) -> Value {
    if let (Some(a), Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// A patrol round.
pub fn patrol(
    id: &str,
    ts: DateTime<FixedOffset>,
    node: &str,
    persons: u32,
    findings: [u32; 5],
) -> Value {
    merge(
        base("patrol", id, ts, node),
        json!({"team": "t1", "persons": persons, "checkpoints": 4, "findings": {
            "gatherings_dispersed": findings[0], "people_persuaded": findings[1],
            "venues_closed": findings[2], "vendors_cleared": findings[3], "violations": findings[4]}}),
    )
}

/// A testing-site report.
pub fn testing(id: &str, ts: DateTime<FixedOffset>, node: &str, samples: u32, queue: u32) -> Value {
    merge(
        base("testing", id, ts, node),
        json!({"site": "s1", "interval_s": 600, "samples": samples, "queue": queue, "staff": 4}),
    )
}

/// A video flag raised or rectified.
pub fn video(
    id: &str,
    ts: DateTime<FixedOffset>,
    node: &str,
    flag_id: &str,
    flag: &str,
    action: &str,
) -> Value {
    merge(
        base("video", id, ts, node),
        json!({"camera": "c1", "flag_id": flag_id, "flag": flag, "action": action, "severity": 3}),
    )
}

/// An incident step (a resolution with its note, as the wire requires).
pub fn incident(
    id: &str,
    ts: DateTime<FixedOffset>,
    node: &str,
    incident_id: &str,
    action: &str,
    level: u8,
) -> Value {
    merge(
        base("incident", id, ts, node),
        json!({"incident_id": incident_id, "action": action, "level": level, "category": "medical", "note": "已处置 handled"}),
    )
}

/// A zone designation.
pub fn zone(id: &str, ts: DateTime<FixedOffset>, node: &str, zone: &str) -> Value {
    merge(
        base("zone", id, ts, node),
        json!({"zone": zone, "reason": "test"}),
    )
}

/// A replay-clock tick announcing `now`.
pub fn tick(now: DateTime<FixedOffset>) -> Msg {
    Msg {
        subject: "gw.clock".into(),
        payload: Bytes::from(json!({"now": now.to_rfc3339()}).to_string()),
        msg_id: Some(format!("tick-{}", now.timestamp())),
    }
}

/// Publishes messages in order and waits for every ack; returns the
/// stream sequence of the last one.
pub async fn publish_all(js: &jetstream::Context, msgs: &[Msg]) -> Result<u64> {
    let mut acks: Vec<jetstream::context::PublishAckFuture> = Vec::with_capacity(msgs.len());
    let mut last = 0;
    for m in msgs {
        // Stay under the client's in-flight ack limit.
        if acks.len() >= 1000 {
            for ack in
                futures::future::join_all(acks.drain(..).map(std::future::IntoFuture::into_future))
                    .await
            {
                last = last.max(ack.context("waiting for a publish ack")?.sequence);
            }
        }
        let f = match &m.msg_id {
            Some(id) => {
                let mut h = HeaderMap::new();
                h.insert("Nats-Msg-Id", id.as_str());
                js.publish_with_headers(m.subject.clone(), h, m.payload.clone())
                    .await
            }
            None => js.publish(m.subject.clone(), m.payload.clone()).await,
        }
        .with_context(|| format!("publishing to {}", m.subject))?;
        acks.push(f);
    }
    for ack in
        futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future)).await
    {
        last = last.max(ack.context("waiting for a publish ack")?.sequence);
    }
    Ok(last)
}

/// Ensures the event stream exists (as ingest would create it).
pub async fn ensure_stream(js: &jetstream::Context) -> Result<()> {
    js.get_or_create_stream(jetstream::stream::Config {
        name: "GW_EVENTS".into(),
        subjects: vec!["gw.ev.>".into(), "gw.clock".into()],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: std::time::Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .context("creating the event stream")?;
    Ok(())
}
