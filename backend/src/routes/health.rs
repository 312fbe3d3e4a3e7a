//! `GET /healthz`: the NATS connection, the age of the newest applied
//! event and whether ingest can write its data dir; 200 when connected and
//! ingest writes, 503 otherwise (`problems` says why).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::AppState;

/// Answers the health.
pub async fn get(State(app): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let nats = format!("{:?}", app.nats.connection_state()).to_lowercase();
    let connected = nats == "connected";
    let now_ms = chrono::Utc::now().timestamp_millis();
    let meta = app.store.meta();
    let age = |t: Option<i64>| t.map(|t| (now_ms - t) as f64 / 1000.0);
    let m = meta.as_deref();
    let write_error = m.and_then(|m| m.write_error.clone());
    let mut problems = Vec::new();
    if !connected {
        problems.push(format!("NATS is {nats}"));
    }
    if let Some(e) = &write_error {
        problems.push(format!(
            "ingest cannot write its data dir, so it acks nothing: {e}"
        ));
    }
    let healthy = problems.is_empty();
    let body = json!({
        "status": if healthy { "ok" } else { "degraded" },
        "problems": problems,
        "ingest_write_error": write_error,
        "checkpoints_set_aside": m.map(|m| m.checkpoints_set_aside),
        "nats": nats,
        "nodes_with_state": app.store.nodes_with_state(),
        "newest_applied_event_age_s": age(m.and_then(|m| m.last_applied_wall_ms)),
        "ingest_report_age_s": age(m.map(|m| m.wall_ms)),
        "last_seq": m.map(|m| m.last_seq),
        "newest_event": m.and_then(|m| m.newest_event.clone()),
        "clock_now": m.and_then(|m| m.clock_now.clone()),
    });
    let code = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
