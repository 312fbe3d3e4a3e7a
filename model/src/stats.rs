//! Ingest's statistics, published every second as `meta.ingest` in the
//! state bucket; the backend's `/metrics` and `/healthz` read them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Time spent per stage, summed since start (for metrics and benches), µs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StageTimes {
    pub decode_validate_apply_us: u64,
    pub polars_batch_us: u64,
    pub rollup_us: u64,
    pub diff_serialize_us: u64,
    /// Journal appends and fsyncs.
    pub checkpoint_us: u64,
    /// Full snapshots (with pruning).
    pub snapshot_us: u64,
    pub history_us: u64,
}

impl StageTimes {
    /// (stage name, µs) of every stage, for metrics labels.
    pub fn stages(&self) -> [(&'static str, u64); 7] {
        [
            ("decode_validate_apply", self.decode_validate_apply_us),
            ("polars_batch", self.polars_batch_us),
            ("rollup", self.rollup_us),
            ("diff_serialize", self.diff_serialize_us),
            ("checkpoint", self.checkpoint_us),
            ("snapshot", self.snapshot_us),
            ("history", self.history_us),
        ]
    }
}

/// What ingest's live state holds, for watching that it stays bounded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Held {
    /// Event ids kept for dedupe (two days plus the allowed lateness).
    pub seen_ids: u64,
    /// Open video flags.
    pub open_flags: u64,
    /// Incidents kept: open ones, and resolved ones within the lateness.
    pub incidents: u64,
    /// Per-minute buckets over every micro-grid (two local days).
    pub buckets: u64,
}

/// Ingest statistics (`meta.ingest`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestStats {
    pub applied: u64,
    pub duplicates: u64,
    pub redelivered: u64,
    /// Dead letters by reason.
    pub dlq: BTreeMap<String, u64>,
    /// Every state in the bucket reflects the events up to this stream
    /// sequence (held states are published before this record).
    pub last_seq: u64,
    pub checkpoint_seq: u64,
    pub consumer_lag: u64,
    pub consumer_restarts: u64,
    /// Node states the server refused (too large, not permitted).
    pub states_refused: u64,
    /// Dead letters cut to fit the server's max_payload.
    pub dead_truncated: u64,
    /// Dead letters the server refused, kept in the data dir instead.
    pub dead_set_aside: u64,
    /// While writes under the data dir fail (a full disk): the error.
    /// Nothing is acked until a write succeeds again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_error: Option<String>,
    /// Unusable checkpoints moved aside at start (then rebuilt from the
    /// stream).
    pub checkpoints_set_aside: u64,
    pub batches: u64,
    pub batch_latency_ms_p50: f64,
    pub batch_latency_ms_p99: f64,
    /// Time of a recompute of every node with polars (compute, diff,
    /// serialize), and of a refresh (every micro-grid's metrics, the nodes
    /// they moved).
    pub full_recompute_ms_p50: f64,
    pub full_recompute_ms_p99: f64,
    pub refresh_ms_p50: f64,
    pub refresh_ms_p99: f64,
    /// The clock's now (RFC 3339, +08:00).
    pub clock_now: Option<String>,
    /// Newest applied event time (RFC 3339, +08:00).
    pub newest_event: Option<String>,
    /// Wall time the newest event was applied (Unix ms).
    pub last_applied_wall_ms: Option<i64>,
    /// Wall time of this record (Unix ms).
    pub wall_ms: i64,
    pub stages: StageTimes,
    pub held: Held,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes_and_tolerates_missing_fields() {
        let s = IngestStats {
            applied: 3,
            last_seq: 9,
            clock_now: Some("2022-10-15T06:00:00+08:00".into()),
            ..Default::default()
        };
        let text = serde_json::to_string(&s).expect("serializes");
        assert_eq!(serde_json::from_str::<IngestStats>(&text).ok(), Some(s));
        let old: IngestStats = serde_json::from_str(r#"{"applied":1}"#).expect("partial");
        assert_eq!(old.applied, 1);
    }
}
