//! `GET /metrics`: Prometheus text. The backend's own metrics (WebSocket
//! clients, frames, state updates) and ingest's, taken from the statistics
//! ingest publishes every second (events applied, duplicates, DLQ by reason,
//! batch latency, consumer lag, time per stage).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use gridwatch_model::stats::IngestStats;
use std::sync::Arc;

use crate::AppState;

/// Records ingest's statistics as metrics.
pub fn record_ingest(m: &IngestStats) {
    metrics::counter!("gridwatch_ingest_events_applied_total").absolute(m.applied);
    metrics::counter!("gridwatch_ingest_duplicates_total").absolute(m.duplicates);
    metrics::counter!("gridwatch_ingest_redelivered_total").absolute(m.redelivered);
    metrics::counter!("gridwatch_ingest_batches_total").absolute(m.batches);
    for (reason, n) in &m.dlq {
        metrics::counter!("gridwatch_ingest_dlq_total", "reason" => reason.clone()).absolute(*n);
    }
    metrics::counter!("gridwatch_ingest_states_refused_total").absolute(m.states_refused);
    metrics::counter!("gridwatch_ingest_dead_letters_truncated_total").absolute(m.dead_truncated);
    metrics::counter!("gridwatch_ingest_dead_letters_set_aside_total").absolute(m.dead_set_aside);
    metrics::gauge!("gridwatch_ingest_write_failing")
        .set(f64::from(u8::from(m.write_error.is_some())));
    metrics::gauge!("gridwatch_ingest_checkpoints_set_aside").set(m.checkpoints_set_aside as f64);
    metrics::gauge!("gridwatch_ingest_consumer_lag").set(m.consumer_lag as f64);
    metrics::gauge!("gridwatch_ingest_last_seq").set(m.last_seq as f64);
    metrics::gauge!("gridwatch_ingest_checkpoint_seq").set(m.checkpoint_seq as f64);
    metrics::gauge!("gridwatch_ingest_batch_latency_seconds", "quantile" => "0.5")
        .set(m.batch_latency_ms_p50 / 1000.0);
    metrics::gauge!("gridwatch_ingest_batch_latency_seconds", "quantile" => "0.99")
        .set(m.batch_latency_ms_p99 / 1000.0);
    for (stage, us) in m.stages.stages() {
        metrics::counter!("gridwatch_ingest_stage_microseconds_total", "stage" => stage)
            .absolute(us);
    }
}

/// Renders every metric.
pub async fn get(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.prometheus.render(),
    )
}
