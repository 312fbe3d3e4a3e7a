//! `GET /metrics`: Prometheus text. The backend's own metrics (WebSocket
//! clients, frames, state updates), the process metrics, and ingest's,
//! taken from the statistics ingest publishes every second (events
//! applied, duplicates, DLQ by reason, batch latency, consumer lag, time
//! per stage; `gridwatch_runtime::metrics` names and describes them).
//! Admins only: Prometheus scrapes with an admin's API token.

use axum::Extension;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::Arc;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// Renders every metric (403 for anyone but an admin).
pub async fn get(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    caller.must_be_admin()?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    ))
}
