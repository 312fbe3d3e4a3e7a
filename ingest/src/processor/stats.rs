//! Ingest's statistics: stage times, batch and recompute durations, and
//! the once-a-second [`IngestStats`] record (`meta.ingest`).

use bytes::Bytes;
use gridwatch_model::stats::{IngestStats, StageTimes};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

use super::{Processor, Stages};
use crate::error::IngestError;
use crate::pipeline::Outbound;

/// Durations kept for quantiles.
const KEPT: usize = 1024;

/// What the statistics are made of.
pub struct Stats {
    pub last_meta: Instant,
    /// Durations (ms) of the last batches, full recomputes and refreshes.
    latencies: VecDeque<f64>,
    full_ms: VecDeque<f64>,
    refresh_ms: VecDeque<f64>,
    batches: u64,
    pub stages: StageTimes,
    /// Wall time the newest event was applied (Unix ms).
    pub last_applied_wall_ms: Option<i64>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            // The first record goes out with the first turn.
            last_meta: Instant::now() - Duration::from_secs(10),
            latencies: VecDeque::new(),
            full_ms: VecDeque::new(),
            refresh_ms: VecDeque::new(),
            batches: 0,
            stages: StageTimes::default(),
            last_applied_wall_ms: None,
        }
    }
}

/// Microseconds since `since`.
pub fn us(since: Instant) -> u64 {
    since.elapsed().as_micros() as u64
}

/// Keeps the last [`KEPT`] durations (ms) for quantiles.
fn push_bounded(q: &mut VecDeque<f64>, since: Instant) {
    q.push_back(since.elapsed().as_secs_f64() * 1000.0);
    if q.len() > KEPT {
        q.pop_front();
    }
}

/// Quantile `p` of `q`; 0 when empty.
fn quantile(q: &VecDeque<f64>, p: f64) -> f64 {
    let mut v: Vec<f64> = q.iter().copied().collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else {
        v[((v.len() - 1) as f64 * p).round() as usize]
    }
}

impl Stats {
    /// A batch that started at `started` is done.
    pub fn batch_done(&mut self, started: Instant) {
        self.batches += 1;
        push_bounded(&mut self.latencies, started);
    }

    /// A full recompute that started at `started` is done.
    pub fn full_done(&mut self, started: Instant) {
        push_bounded(&mut self.full_ms, started);
    }

    /// A refresh that started at `started` is done.
    pub fn refresh_done(&mut self, started: Instant) {
        push_bounded(&mut self.refresh_ms, started);
    }
}

impl Processor {
    /// Sends the statistics record.
    pub(super) fn send_meta(
        &self,
        st: &mut Stages,
        out: &mpsc::Sender<Outbound>,
    ) -> Result<(), IngestError> {
        let fmt = |ts: i64| {
            chrono::DateTime::from_timestamp(ts, 0).map(gridwatch_model::time::to_local_rfc3339)
        };
        let c = &self.live.counters;
        let s = &st.stats;
        let meta = IngestStats {
            applied: c.applied,
            duplicates: c.duplicates,
            redelivered: c.redelivered,
            dlq: c.dlq.clone(),
            last_seq: self.live.last_seq,
            checkpoint_seq: st.durable.checkpoint_seq,
            consumer_lag: self.gauges.lag.load(Ordering::Relaxed),
            consumer_restarts: self.gauges.restarts.load(Ordering::Relaxed),
            states_refused: self.publisher.states_refused.load(Ordering::Relaxed),
            dead_truncated: self.publisher.dead_truncated.load(Ordering::Relaxed),
            dead_set_aside: self.publisher.dead_set_aside.load(Ordering::Relaxed),
            write_error: st.durable.write_error.clone(),
            checkpoints_set_aside: self.checkpoints_set_aside,
            batches: s.batches,
            batch_latency_ms_p50: quantile(&s.latencies, 0.5),
            batch_latency_ms_p99: quantile(&s.latencies, 0.99),
            full_recompute_ms_p50: quantile(&s.full_ms, 0.5),
            full_recompute_ms_p99: quantile(&s.full_ms, 0.99),
            refresh_ms_p50: quantile(&s.refresh_ms, 0.5),
            refresh_ms_p99: quantile(&s.refresh_ms, 0.99),
            clock_now: self.clock.now(self.live.replay_now).and_then(fmt),
            newest_event: self.live.watermark.and_then(fmt),
            last_applied_wall_ms: s.last_applied_wall_ms,
            wall_ms: chrono::Utc::now().timestamp_millis(),
            stages: s.stages.clone(),
            held: gridwatch_model::stats::Held {
                seen_ids: self.live.seen.len() as u64,
                open_flags: self.live.flags.len() as u64,
                incidents: self.live.incidents.len() as u64,
                buckets: self.live.mgs.iter().map(|m| m.buckets.len() as u64).sum(),
            },
        };
        let bytes = serde_json::to_vec(&meta)
            .map_err(|e| IngestError::Config(format!("serializing meta: {e}")))?;
        // The same figures on ingest's own /metrics.
        gridwatch_runtime::metrics::record_ingest(&meta);
        st.stats.last_meta = Instant::now();
        Self::send(out, Outbound::Meta(Bytes::from(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_what_is_kept() {
        let mut q = VecDeque::new();
        assert_eq!(quantile(&q, 0.5), 0.0);
        q.extend([5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(quantile(&q, 0.5), 3.0);
        assert_eq!(quantile(&q, 0.99), 5.0);
    }
}
