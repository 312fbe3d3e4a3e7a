//! One node's entry in the store: its state (as published, parsed on
//! demand), the version its followers know, its delta history and its
//! broadcast channel.

use axum::extract::ws::Utf8Bytes;
use gridwatch_model::merge_patch;
use gridwatch_model::ws::ServerMsg;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::broadcast;

use super::Update;
use super::frames::frame;

pub(super) struct NodeEntry {
    pub(super) seq: u64,
    /// The state as published, until someone needs it parsed.
    pub(super) raw: Option<bytes::Bytes>,
    /// The parsed state (`None` while only `raw` is current).
    pub(super) state: Option<Arc<Value>>,
    /// The version followers were last told of (the one snapshots give),
    /// when it is older than the current one.
    pub(super) sent: Option<(u64, Arc<Value>)>,
    /// When followers were last sent a delta.
    pub(super) sent_at: Option<Instant>,
    /// Last time the node had a follower.
    pub(super) followed: Option<Instant>,
    /// (from, seq, frame) of the last deltas, oldest first; each starts
    /// where the one before ends.
    pub(super) history: VecDeque<(u64, u64, Utf8Bytes)>,
    /// The snapshot frame of version `.0`, built once for every follower.
    pub(super) snap: Option<(u64, Utf8Bytes)>,
    /// Created when the node is first followed.
    pub(super) tx: Option<broadcast::Sender<Update>>,
}

impl NodeEntry {
    /// A node with no state yet.
    pub(super) fn new() -> NodeEntry {
        NodeEntry {
            seq: 0,
            raw: None,
            state: None,
            sent: None,
            sent_at: None,
            followed: None,
            history: VecDeque::new(),
            snap: None,
            tx: None,
        }
    }

    /// The parsed current state, parsing (and keeping) it if needed.
    pub(super) fn parsed(&mut self) -> Option<Arc<Value>> {
        if self.state.is_none() {
            let raw = self.raw.as_ref()?;
            match serde_json::from_slice::<Value>(raw) {
                Ok(v) => self.state = Some(Arc::new(v)),
                Err(e) => {
                    tracing::warn!(error = %e, "unreadable state");
                    return None;
                }
            }
        }
        self.state.clone()
    }

    /// The version followers know: (seq, state).
    pub(super) fn told(&mut self) -> Option<(u64, Arc<Value>)> {
        match &self.sent {
            Some(s) => Some(s.clone()),
            None => Some((self.seq, self.parsed()?)),
        }
    }

    /// The seq of the version followers know, if the node has a state.
    pub(super) fn told_seq(&self) -> Option<u64> {
        match &self.sent {
            Some((seq, _)) => Some(*seq),
            None => self.raw.as_ref().map(|_| self.seq),
        }
    }

    /// The snapshot frame of the version followers know: (seq, frame).
    pub(super) fn told_frame(&mut self, node: &str) -> Option<(u64, Utf8Bytes)> {
        let seq = self.told_seq()?;
        if let Some((s, f)) = &self.snap
            && *s == seq
        {
            return Some((seq, f.clone()));
        }
        let (seq, state) = self.told()?;
        let f = frame(&ServerMsg::Snapshot {
            node: node.to_string(),
            seq,
            state: (*state).clone(),
        });
        self.snap = Some((seq, f.clone()));
        Some((seq, f))
    }

    /// Tells the followers, if there are any.
    pub(super) fn tell(&self, u: Update) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(u);
        }
    }

    pub(super) fn followers(&self) -> usize {
        self.tx.as_ref().map_or(0, |t| t.receiver_count())
    }

    /// Tells the followers of the versions since the one they know, as one
    /// delta.
    pub(super) fn send_delta(&mut self, node: &str, now: Instant, history_len: usize) {
        let (Some((from, old)), Some(new)) = (self.sent.take(), self.state.clone()) else {
            return;
        };
        let patch =
            merge_patch::diff(&old, &new).unwrap_or_else(|| Value::Object(Default::default()));
        let seq = self.seq;
        let f = frame(&ServerMsg::Delta {
            node: node.to_string(),
            from,
            seq,
            patch,
        });
        self.history.push_back((from, seq, f.clone()));
        while self.history.len() > history_len {
            self.history.pop_front();
        }
        self.sent_at = Some(now);
        self.tell(Update::Delta {
            from,
            seq,
            frame: f,
        });
    }
}
