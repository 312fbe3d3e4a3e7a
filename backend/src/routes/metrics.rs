//! `GET /metrics`: Prometheus text. The backend's own metrics (WebSocket
//! clients, frames, state updates), the process metrics, and ingest's,
//! taken from the statistics ingest publishes every second (events
//! applied, duplicates, DLQ by reason, batch latency, consumer lag, time
//! per stage; `gridwatch_runtime::metrics` names and describes them).

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::Arc;

use crate::AppState;

/// Renders every metric.
pub async fn get(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}
