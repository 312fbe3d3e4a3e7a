//! `GET /api/v1/hierarchy`: the registry as a tree (streets with their
//! polygons, communities, grids, micro-grids with population, households,
//! zone and cell position): a [`gridwatch_model::api::Hierarchy`],
//! serialized once at start.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::sync::Arc;

use crate::AppState;

/// Serves the prebuilt tree.
pub async fn get(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        app.hierarchy.clone(),
    )
}
