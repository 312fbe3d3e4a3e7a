//! `GET /api/v1/registry?node=<id>`: what the registry knows of one node —
//! names, level, population and households, its parent and children, and
//! for a micro-grid its registered zone and team (leader, members,
//! volunteers). Small and fixed: a tablet asks for it once per node.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde_json::{Value, json};
use std::sync::Arc;

use crate::AppState;
use crate::error::ApiError;
use crate::routes::state::StateQuery;

/// Answers one node's registry record: 400 for a malformed query, 404 for
/// an unknown node.
pub async fn get(
    State(app): State<Arc<AppState>>,
    q: Result<Query<StateQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let reg = &app.registry;
    let i = reg
        .lookup(&q.node)
        .ok_or_else(|| ApiError::NotFound(format!("no node `{}`", q.node)))?;
    let n = reg.node(i);
    let mut out = json!({
        "node": n.id.as_str(),
        "name": n.name,
        "name_en": n.name_en,
        "level": n.level,
        "population": n.population,
        "households": n.households,
        "microgrids": n.microgrids,
        "parent": n.parent.map(|p| reg.node(p).id.as_str()),
        "children": n.children.iter().map(|&c| reg.node(c).id.as_str()).collect::<Vec<_>>(),
    });
    if let (Some(mg), Some(o)) = (&n.mg, out.as_object_mut()) {
        o.insert("registered_zone".into(), json!(mg.zone));
        o.insert(
            "team".into(),
            json!({
                "leader": mg.team.leader,
                "members": mg.team.members,
                "volunteers": mg.team.volunteers,
            }),
        );
    }
    Ok(Json(out))
}
