//! `GET /api/v1/registry?node=<id>`: what the registry knows of one node —
//! names, level, population and households, its parent and children, and
//! for a micro-grid its registered zone and team (leader, members,
//! volunteers) — personal data, given only to admins and to supervisors
//! in scope; everyone else gets the record without it. Small and fixed: a
//! tablet asks for it once per node.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use gridwatch_model::api::RegistryRecord;
use std::sync::Arc;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::routes::state::StateQuery;

/// Answers one node's registry record: 400 for a malformed query, 404 for
/// an unknown node, 403 outside the caller's scope.
pub async fn get(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<StateQuery>, QueryRejection>,
) -> Result<Json<RegistryRecord>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let reg = &app.registry;
    let i = reg
        .lookup(&q.node)
        .ok_or_else(|| ApiError::NotFound(format!("no node `{}`", q.node)))?;
    caller.may_read(&q.node)?;
    let mut r = RegistryRecord::of(reg, i);
    if !caller.sees_people(&q.node) {
        r.team = None;
    }
    Ok(Json(r))
}
