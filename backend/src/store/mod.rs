//! The backend's copy of every node state, fed from the state bucket.
//!
//! For each node it keeps the current state and version (`seq`, set by
//! ingest), the last deltas as ready-to-send frames (for clients resuming
//! after a reconnect), and a broadcast channel to the clients following it.
//! A newer state (higher `seq`) becomes a delta (RFC 7386 merge patch) from
//! the version the followers know; versions the bucket watch never
//! delivered (when it falls behind, the bucket keeps only each key's latest
//! value) fold into it, so followers are not all sent snapshots at once. A
//! state that is not newer but differs (a restarted ingest) resets the node,
//! and its clients get a fresh snapshot.
//!
//! Most nodes (the 4,477 micro-grids) have nobody following them most of
//! the time, so a state is kept as the bytes ingest published and parsed
//! only when someone asks: deltas are computed for nodes followed now or
//! within [`FOLLOW_GRACE`] (so a client that reconnects can still resume).
//!
//! Pacing: every frame costs one write per follower, so the more clients
//! are connected, the less often a node's followers are told: a node's
//! deltas go out at most every `pace_per_client × clients` (with the
//! default 20 µs: no pacing for a handful of screens, 200 ms with 10,000
//! clients). Versions in between are folded into one delta, which says the
//! version it starts `from`; [`Store::flush_due`] sends what waited.
//!
//! Per client, the backend keeps as little as it can: every frame a node's
//! followers get (deltas, the snapshot of the version they know, heartbeats)
//! is built once per node and shared, and a node's broadcast channel exists
//! only once someone has followed it (64 slots for each of ~5,400 nodes
//! were 28 MB of heap, heaptrack).
//!
//! [`entry`] holds one node's entry; [`frames`] the shared frames.

mod entry;
mod frames;

pub use frames::{error_frame, heartbeat_frame};

use entry::NodeEntry;

use axum::extract::ws::Utf8Bytes;
use gridwatch_model::stats::IngestStats;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;

/// How long after its last follower left a node still keeps deltas.
pub const FOLLOW_GRACE: Duration = Duration::from_secs(120);

/// What a node's followers are told.
#[derive(Clone, Debug)]
pub enum Update {
    /// A delta frame moving the node from version `from` to `seq`.
    Delta {
        from: u64,
        seq: u64,
        frame: Utf8Bytes,
    },
    /// The node changed in a way deltas cannot express: send a snapshot.
    Reset,
    /// Nothing changed since version `seq`; `frame` says so, with the
    /// deployment clock's time.
    Heartbeat { seq: u64, frame: Utf8Bytes },
}

/// A snapshot of one node, for the HTTP API.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub seq: u64,
    pub state: Arc<Value>,
}

/// How a subscriber catches up.
#[derive(Debug)]
pub enum CatchUp {
    /// Send these delta frames (may be empty: already current).
    Deltas(Vec<Utf8Bytes>, u64),
    /// Send this snapshot frame of version `.0`.
    Snapshot(u64, Utf8Bytes),
    /// No state yet: wait for the first.
    Nothing,
}

/// All node states.
pub struct Store {
    nodes: RwLock<HashMap<String, NodeEntry>>,
    meta: RwLock<Option<Arc<IngestStats>>>,
    history_len: usize,
    /// Pacing: the interval between a node's deltas grows by this much per
    /// connected client.
    pace_per_client: Duration,
    clients: AtomicUsize,
}

/// The longest a node's followers wait for a change.
pub const MAX_PACE: Duration = Duration::from_secs(1);

impl Store {
    /// A store for the given node ids.
    pub fn new<'a>(
        ids: impl Iterator<Item = &'a str>,
        history_len: usize,
        pace_per_client: Duration,
    ) -> Self {
        let nodes = ids.map(|id| (id.to_string(), NodeEntry::new())).collect();
        Self {
            nodes: RwLock::new(nodes),
            meta: RwLock::new(None),
            history_len,
            pace_per_client,
            clients: AtomicUsize::new(0),
        }
    }

    /// Counts a WebSocket client in (`+1`) or out (`-1`).
    pub fn client_count(&self, delta: isize) {
        if delta >= 0 {
            self.clients.fetch_add(delta as usize, Ordering::Relaxed);
        } else {
            let _ = self
                .clients
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                    Some(c.saturating_sub(delta.unsigned_abs()))
                });
        }
    }

    /// The least time between two deltas of one node now.
    pub fn pace(&self) -> Duration {
        let clients = self.clients.load(Ordering::Relaxed) as u32;
        self.pace_per_client.saturating_mul(clients).min(MAX_PACE)
    }

    /// Sends the deltas that waited for their node's pace.
    pub fn flush_due(&self) {
        let pace = self.pace();
        let now = Instant::now();
        let Ok(mut nodes) = self.nodes.write() else {
            return;
        };
        for (node, e) in nodes.iter_mut() {
            if e.sent.is_some() && e.sent_at.is_none_or(|t| now - t >= pace) {
                e.send_delta(node, now, self.history_len);
            }
        }
    }

    /// Whether `node` is a known node.
    pub fn knows(&self, node: &str) -> bool {
        self.nodes
            .read()
            .map(|n| n.contains_key(node))
            .unwrap_or(false)
    }

    /// Applies a state published by ingest (its JSON bytes). Returns
    /// whether it changed.
    pub fn apply(&self, node: &str, raw: bytes::Bytes) -> bool {
        #[derive(serde::Deserialize)]
        struct Seq {
            seq: u64,
        }
        let Ok(mut nodes) = self.nodes.write() else {
            return false;
        };
        let Some(e) = nodes.get_mut(node) else {
            tracing::debug!(node, "state for a node not in the registry ignored");
            return false;
        };
        // The same bytes again (a watch started over): nothing new.
        if e.raw.as_deref() == Some(&raw[..]) {
            return false;
        }
        let now = Instant::now();
        if e.followers() > 0 {
            e.followed = Some(now);
        }
        let followed = e.followed.is_some_and(|t| now - t < FOLLOW_GRACE);
        // Parsed once: whole when someone follows the node (to diff it),
        // else only as far as its seq.
        let parsed = if followed {
            serde_json::from_slice::<Value>(&raw)
                .map_err(|e| e.to_string())
                .and_then(|v| match v.get("seq").and_then(Value::as_u64) {
                    Some(seq) => Ok((seq, Some(v))),
                    None => Err("no seq".into()),
                })
        } else {
            serde_json::from_slice::<Seq>(&raw)
                .map(|s| (s.seq, None))
                .map_err(|e| e.to_string())
        };
        let (seq, state) = match parsed {
            Ok(p) => p,
            Err(err) => {
                tracing::warn!(node, error = %err, "unreadable state ignored");
                return false;
            }
        };
        // The bytes are a slice of the NATS client's read buffer, and a
        // slice keeps its whole buffer alive: kept for ~5,400 nodes, those
        // were 73 MB of heap (heaptrack). A copy of its own, then.
        let raw = bytes::Bytes::copy_from_slice(&raw);
        let Some(state) = state else {
            // Nobody to tell: keep the bytes; parse when asked.
            e.seq = seq;
            e.raw = Some(raw);
            e.state = None;
            e.sent = None;
            e.snap = None;
            e.history.clear();
            return true;
        };
        let newer = seq > e.seq;
        let told = if newer { e.told() } else { None };
        e.seq = seq;
        e.raw = Some(raw);
        e.state = Some(Arc::new(state));
        match told {
            Some(told) => {
                e.sent = Some(told);
                if e.sent_at.is_none_or(|t| now - t >= self.pace()) {
                    e.send_delta(node, now, self.history_len);
                }
            }
            None => {
                e.sent = None;
                e.snap = None;
                e.history.clear();
                e.tell(Update::Reset);
            }
        }
        true
    }

    /// The state of `node` its followers know (at most one pace behind the
    /// newest), if any.
    pub fn snapshot(&self, node: &str) -> Option<Snapshot> {
        let mut nodes = self.nodes.write().ok()?;
        let (seq, state) = nodes.get_mut(node)?.told()?;
        Some(Snapshot { seq, state })
    }

    /// The snapshot frame of the version `node`'s followers know, and its
    /// seq (built once per version, shared by every follower).
    pub fn snapshot_frame(&self, node: &str) -> Option<(u64, Utf8Bytes)> {
        let mut nodes = self.nodes.write().ok()?;
        nodes.get_mut(node)?.told_frame(node)
    }

    /// Tells every followed node's followers that nothing changed since
    /// the version they know, as of `as_of` (one frame per node).
    pub fn heartbeat(&self, as_of: &str) {
        let Ok(nodes) = self.nodes.read() else {
            return;
        };
        for (node, e) in nodes.iter() {
            if e.followers() == 0 {
                continue;
            }
            if let Some(seq) = e.told_seq() {
                e.tell(Update::Heartbeat {
                    seq,
                    frame: heartbeat_frame(node, seq, as_of),
                });
            }
        }
    }

    /// Subscribes to `node`'s updates and says how to catch up from
    /// `resume_from` (or from nothing). Subscribing and reading happen under
    /// one lock, so no update falls between them.
    pub fn subscribe(
        &self,
        node: &str,
        resume_from: Option<u64>,
    ) -> Option<(broadcast::Receiver<Update>, CatchUp)> {
        let mut nodes = self.nodes.write().ok()?;
        let e = nodes.get_mut(node)?;
        let rx =
            e.tx.get_or_insert_with(|| broadcast::channel(64).0)
                .subscribe();
        e.followed = Some(Instant::now());
        let Some(seq) = e.told_seq() else {
            return Some((rx, CatchUp::Nothing));
        };
        let snapshot = |e: &mut NodeEntry| match e.told_frame(node) {
            Some((seq, f)) => CatchUp::Snapshot(seq, f),
            None => CatchUp::Nothing,
        };
        let catch_up = match resume_from {
            Some(r) if r == seq => CatchUp::Deltas(Vec::new(), seq),
            Some(r) => match e.history.iter().position(|(from, _, _)| *from == r) {
                Some(i) => {
                    let frames = e.history.iter().skip(i).map(|(_, _, f)| f.clone());
                    CatchUp::Deltas(frames.collect(), seq)
                }
                None => snapshot(e),
            },
            None => snapshot(e),
        };
        Some((rx, catch_up))
    }

    /// Stores ingest's statistics.
    pub fn set_meta(&self, meta: IngestStats) {
        if let Ok(mut m) = self.meta.write() {
            *m = Some(Arc::new(meta));
        }
    }

    /// Ingest's latest statistics.
    pub fn meta(&self) -> Option<Arc<IngestStats>> {
        self.meta.read().ok().and_then(|m| m.clone())
    }

    /// How many nodes have a state.
    pub fn nodes_with_state(&self) -> usize {
        self.nodes
            .read()
            .map(|n| n.values().filter(|e| e.raw.is_some()).count())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests;
