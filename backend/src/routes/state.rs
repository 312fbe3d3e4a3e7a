//! `GET /api/v1/state?node=<id>`: the aggregate state of any node.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use std::sync::Arc;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// The query string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    pub node: String,
}

/// Answers the state of one node: 400 for a malformed query, 404 for an
/// unknown node, 403 outside the caller's scope, 503 while ingest has not
/// published it yet.
pub async fn get(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<StateQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if q.node.is_empty() || q.node.len() > 200 {
        return Err(ApiError::BadRequest(
            "`node` must be 1–200 characters".into(),
        ));
    }
    if !app.store.knows(&q.node) {
        return Err(ApiError::NotFound(format!("no node `{}`", q.node)));
    }
    caller.may_read(&q.node)?;
    let snap = app
        .store
        .snapshot(&q.node)
        .ok_or_else(|| ApiError::Unavailable(format!("no state for `{}` yet", q.node)))?;
    Ok(Json((*snap.state).clone()))
}
