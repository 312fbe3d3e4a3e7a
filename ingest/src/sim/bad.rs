//! Bad events for testing the dead-letter path: malformed JSON, unknown
//! version, schema violations, unknown nodes, too-late and future
//! timestamps, and exact duplicates (the same bytes under a new
//! `Nats-Msg-Id`, so they get past JetStream's dedupe window and reach
//! ingest's).

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use super::Outgoing;

/// The kinds of bad event the simulator makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadKind {
    Malformed,
    Version,
    Schema,
    UnknownNode,
    TooLate,
    Future,
    Duplicate,
}

impl BadKind {
    /// Every kind, in the order they are drawn.
    pub const ALL: [BadKind; 7] = [
        BadKind::Malformed,
        BadKind::Version,
        BadKind::Schema,
        BadKind::UnknownNode,
        BadKind::TooLate,
        BadKind::Future,
        BadKind::Duplicate,
    ];
}

fn edit(payload: &[u8], f: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Bytes {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(mut m)) => {
            f(&mut m);
            Bytes::from(serde_json::to_vec(&Value::Object(m)).unwrap_or_default())
        }
        _ => Bytes::copy_from_slice(payload),
    }
}

fn shift_ts(m: &mut serde_json::Map<String, Value>, secs: i64) {
    if let Some(ts) = m
        .get("ts")
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    {
        let t = ts + chrono::Duration::seconds(secs);
        m.insert("ts".into(), Value::String(t.to_rfc3339()));
    }
}

/// Makes a bad message of `kind` from a good one; `n` makes its id unique.
pub fn make(kind: BadKind, good: &Outgoing, n: u64) -> Outgoing {
    let id = format!("bad-{n:07}");
    let set_id = |m: &mut serde_json::Map<String, Value>| {
        m.insert("id".into(), Value::String(id.clone()));
    };
    let payload = match kind {
        BadKind::Malformed => Bytes::copy_from_slice(&good.payload[..good.payload.len() / 2]),
        BadKind::Version => edit(&good.payload, |m| {
            set_id(m);
            m.insert("v".into(), Value::from(2));
        }),
        BadKind::Schema => edit(&good.payload, |m| {
            set_id(m);
            m.remove("node");
        }),
        BadKind::UnknownNode => edit(&good.payload, |m| {
            set_id(m);
            let node = m
                .get("node")
                .and_then(Value::as_str)
                .unwrap_or("beilun")
                .to_string();
            m.insert("node".into(), Value::String(format!("{node}/m99x")));
        }),
        BadKind::TooLate => edit(&good.payload, |m| {
            set_id(m);
            shift_ts(m, -25 * 3600);
        }),
        BadKind::Future => edit(&good.payload, |m| {
            set_id(m);
            shift_ts(m, 2 * 3600);
        }),
        BadKind::Duplicate => good.payload.clone(),
    };
    Outgoing {
        at: good.at,
        subject: good.subject.clone(),
        msg_id: match kind {
            BadKind::Duplicate => format!("{}#dup{n}", good.msg_id),
            _ => id,
        },
        payload,
    }
}

/// Inserts, after each message with probability `share`, a bad one.
pub fn inject(msgs: &mut Vec<Outgoing>, seed: u64, share: f64) {
    if share <= 0.0 || msgs.is_empty() {
        return;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(7));
    let mut out = Vec::with_capacity(msgs.len() + (msgs.len() as f64 * share) as usize + 1);
    let mut n = 0;
    for m in msgs.drain(..) {
        let bad = rng.random_bool(share.min(1.0));
        let kind = BadKind::ALL[rng.random_range(0..BadKind::ALL.len())];
        out.push(m);
        if bad {
            n += 1;
            let good = out.last().cloned();
            if let Some(good) = good {
                out.push(make(kind, &good, n));
            }
        }
    }
    *msgs = out;
}
