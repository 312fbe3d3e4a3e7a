//! `GET /api/v1/hierarchy`: the registry as a tree (streets with their
//! polygons, communities, grids, micro-grids with population, households,
//! zone and cell position), serialized once at start.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use gridwatch_model::Registry;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::AppState;

/// Builds the tree.
pub fn build(reg: &Registry) -> Value {
    let streets: Vec<Value> = reg
        .file
        .streets
        .iter()
        .map(|s| {
            let sid = format!("beilun/{}", s.id);
            json!({
                "node": sid, "name": s.name, "name_en": s.name_en, "code": s.code,
                "center": s.center, "polygon": s.polygon,
                "communities": s.communities.iter().map(|c| {
                    let cid = format!("{sid}/{}", c.id);
                    json!({
                        "node": cid, "name": c.name, "name_en": c.name_en, "code": c.code, "kind": c.kind,
                        "grids": c.grids.iter().map(|g| {
                            let gid = format!("{cid}/{}", g.id);
                            json!({
                                "node": gid,
                                "microgrids": g.microgrids.iter().map(|m| json!({
                                    "node": format!("{gid}/{}", m.id),
                                    "population": m.population, "households": m.households,
                                    "zone": m.zone, "pos": m.pos,
                                })).collect::<Vec<_>>(),
                            })
                        }).collect::<Vec<_>>(),
                    })
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "node": "beilun",
        "name": reg.file.district.name,
        "name_en": reg.file.district.name_en,
        "sources": reg.file.sources,
        "streets": streets,
    })
}

/// Serves the prebuilt tree.
pub async fn get(State(app): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        app.hierarchy.clone(),
    )
}
