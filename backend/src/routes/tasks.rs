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

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

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
    let q = OpenQuery {
        node: q.node,
        limit,
    };
    let list: OpenList = app.ask_ingest(OPEN_SUBJECT, &q).await?;
    if let Some(e) = list.error {
        return Err(ApiError::BadRequest(e));
    }
    Ok(Json(list))
}
