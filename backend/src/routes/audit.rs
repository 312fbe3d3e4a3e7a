//! `GET /api/v1/audit?limit=`: the newest records of the audit trail
//! (at most 1,000, 100 when absent), oldest first; admins only.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use std::sync::Arc;

use crate::AppState;
use crate::audit::Record;
use crate::auth::Caller;
use crate::error::ApiError;

/// Most records one request returns.
pub const LIMIT_MAX: usize = 1_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pub limit: Option<usize>,
}

/// Answers the newest records: 403 for anyone but an admin, 400 for a
/// limit out of range, 503 when NATS does not answer.
pub async fn get(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<Vec<Record>>, ApiError> {
    caller.must_be_admin()?;
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > LIMIT_MAX {
        return Err(ApiError::BadRequest(format!("limit must be 1–{LIMIT_MAX}")));
    }
    app.audit.newest(limit).await.map(Json).map_err(|e| {
        tracing::warn!(error = %e, "reading the audit trail");
        ApiError::Unavailable("the audit trail is not answering".into())
    })
}
