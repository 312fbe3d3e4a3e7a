//! `GET /api/v1/reminders?node=<id>&limit=`: the newest reminders
//! `gridwatch-notify` sent or kept for the groups at or under a node,
//! newest first (the wall's "reminders just sent"). A public wall gets
//! each one's group, hour and counts, not the items it listed.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use gridwatch_model::api::RemindersList;
use gridwatch_model::auth::in_scope;
use serde::Deserialize;
use std::sync::Arc;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::reminders::KEPT;

/// The query string.
#[derive(Debug, Deserialize)]
pub struct RemindersParams {
    pub node: String,
    /// 20 when absent; at most [`KEPT`].
    pub limit: Option<usize>,
}

/// 400 for a malformed query or a limit out of range, 404 for an unknown
/// node, 403 outside the caller's scope.
pub async fn get(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<RemindersParams>, QueryRejection>,
) -> Result<Json<RemindersList>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(20);
    if limit == 0 || limit > KEPT {
        return Err(ApiError::BadRequest(format!("limit must be 1–{KEPT}")));
    }
    if app.registry.lookup(&q.node).is_none() {
        return Err(ApiError::NotFound(format!("no node `{}`", q.node)));
    }
    caller.may_read(&q.node)?;
    let mut reminders = app.reminders.newest(limit, |r| in_scope(&q.node, &r.group));
    if caller.public {
        for r in &mut reminders {
            r.text.clear();
        }
    }
    Ok(Json(RemindersList {
        node: q.node,
        reminders,
    }))
}
