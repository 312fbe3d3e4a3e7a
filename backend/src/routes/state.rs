//! `GET /api/v1/state?node=<id>`: the aggregate state of any node (and of
//! the map's and the testing board's pseudo nodes). With `&at=<time>`
//! (RFC 3339, or local `YYYY-MM-DDTHH:MM`): the state the screens showed at
//! the end of that minute, from ingest's `states` history — the wall's
//! replay (`/wall?at=`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use serde::Deserialize;
use std::sync::Arc;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::history::worker::Job;
use crate::routes::query::{parse_time, queries_of};

/// The query string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    pub node: String,
    /// A past minute.
    pub at: Option<String>,
}

/// Answers the state of one node: 400 for a malformed query, 404 for an
/// unknown node (or, with `at`, none in the history then), 403 outside the
/// caller's scope, 503 while ingest has not published it yet.
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
    if let Some(at) = &q.at {
        return past(&app, &q.node, at).await.map(Json);
    }
    let snap = app
        .store
        .snapshot(&q.node)
        .ok_or_else(|| ApiError::Unavailable(format!("no state for `{}` yet", q.node)))?;
    Ok(Json((*snap.state).clone()))
}

/// The state of `node` at the end of the minute `at`, from the history.
async fn past(app: &AppState, node: &str, at: &str) -> Result<serde_json::Value, ApiError> {
    if at.len() > 40 {
        return Err(ApiError::BadRequest("`at` is longer than a time".into()));
    }
    let minute = parse_time("at", at)?;
    let job = Job::StateAt {
        node: node.to_string(),
        before: (minute + 1) * 60,
    };
    let df = queries_of(app)?.run(&job).await?;
    let state = (df.height() > 0)
        .then(|| df.column("state").ok())
        .flatten()
        .and_then(|c| c.str().ok())
        .and_then(|c| c.get(0))
        .ok_or_else(|| {
            ApiError::NotFound(format!("no state of `{node}` at {at} in the history"))
        })?;
    serde_json::from_str(state)
        .map_err(|e| ApiError::Internal(format!("a state in the history is not JSON: {e}")))
}
