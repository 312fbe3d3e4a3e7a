//! `GET /metrics`: Prometheus text. The backend's own metrics (WebSocket
//! clients, frames, state updates) and ingest's, taken from the statistics
//! ingest publishes every second (events applied, duplicates, DLQ by reason,
//! batch latency, consumer lag, time per stage).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::Value;
use std::sync::Arc;

use crate::AppState;

fn u(v: &Value, k: &str) -> u64 {
    v.get(k).and_then(Value::as_u64).unwrap_or(0)
}
fn f(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Records ingest's statistics as metrics.
pub fn record_ingest(m: &Value) {
    metrics::counter!("gridwatch_ingest_events_applied_total").absolute(u(m, "applied"));
    metrics::counter!("gridwatch_ingest_duplicates_total").absolute(u(m, "duplicates"));
    metrics::counter!("gridwatch_ingest_redelivered_total").absolute(u(m, "redelivered"));
    metrics::counter!("gridwatch_ingest_batches_total").absolute(u(m, "batches"));
    if let Some(dlq) = m.get("dlq").and_then(Value::as_object) {
        for (reason, n) in dlq {
            metrics::counter!("gridwatch_ingest_dlq_total", "reason" => reason.clone())
                .absolute(n.as_u64().unwrap_or(0));
        }
    }
    metrics::gauge!("gridwatch_ingest_consumer_lag").set(u(m, "consumer_lag") as f64);
    metrics::gauge!("gridwatch_ingest_last_seq").set(u(m, "last_seq") as f64);
    metrics::gauge!("gridwatch_ingest_checkpoint_seq").set(u(m, "checkpoint_seq") as f64);
    metrics::gauge!("gridwatch_ingest_batch_latency_seconds", "quantile" => "0.5")
        .set(f(m, "batch_latency_ms_p50") / 1000.0);
    metrics::gauge!("gridwatch_ingest_batch_latency_seconds", "quantile" => "0.99")
        .set(f(m, "batch_latency_ms_p99") / 1000.0);
    if let Some(stages) = m.get("stages").and_then(Value::as_object) {
        for (stage, us) in stages {
            let name = stage.trim_end_matches("_us").to_string();
            metrics::counter!("gridwatch_ingest_stage_microseconds_total", "stage" => name)
                .absolute(us.as_u64().unwrap_or(0));
        }
    }
}

/// Renders every metric.
pub async fn get(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.prometheus.render(),
    )
}
