//! `GET /api/v1/tasks?node=<id>&limit=`: every open incident and
//! supervision order under a node, the soonest due first (the overdue
//! lead) — a supervisor's "my tasks". Ingest holds them and answers on
//! `gw.ingest.open`; this route checks the scope and passes the list on.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use gridwatch_model::api::{OPEN_LIST_MAX, OPEN_SUBJECT, OpenList, OpenQuery};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// How long ingest has to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// The query string.
#[derive(Debug, Deserialize)]
pub struct TasksParams {
    pub node: String,
    /// 100 when absent; at most [`OPEN_LIST_MAX`].
    pub limit: Option<usize>,
}

/// 400 for a malformed query or a limit out of range, 404 for an unknown
/// node, 403 outside the caller's scope, 503 when ingest does not answer.
pub async fn get(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<TasksParams>, QueryRejection>,
) -> Result<Json<OpenList>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > OPEN_LIST_MAX {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1–{OPEN_LIST_MAX}"
        )));
    }
    if app.registry.lookup(&q.node).is_none() {
        return Err(ApiError::NotFound(format!("no node `{}`", q.node)));
    }
    caller.may_read(&q.node)?;
    if caller.public {
        return Err(ApiError::Forbidden(
            "a public wall shows no lists of incidents and orders".into(),
        ));
    }
    let body = serde_json::to_vec(&OpenQuery {
        node: q.node,
        limit,
    })
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let reply = tokio::time::timeout(ANSWER_WITHIN, app.nats.request(OPEN_SUBJECT, body.into()))
        .await
        .map_err(|_| ApiError::Unavailable("ingest did not answer".into()))?
        .map_err(|e| {
            tracing::warn!(error = %e, "tasks request");
            ApiError::Unavailable("ingest is not answering".into())
        })?;
    let list: OpenList = serde_json::from_slice(&reply.payload)
        .map_err(|e| ApiError::Internal(format!("ingest's open list: {e}")))?;
    if let Some(e) = list.error {
        return Err(ApiError::BadRequest(e));
    }
    Ok(Json(list))
}
