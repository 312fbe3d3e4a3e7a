//! `GET /api/v1/items?node=<micro-grid>&kind=flags|incidents&offset=&limit=`:
//! every open flag or incident of a micro-grid, the most urgent first, a
//! page at a time. A micro-grid's state lists only the few most urgent;
//! ingest holds them all and answers on `gw.ingest.items`, and this route
//! passes the page on.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use gridwatch_model::api::{ITEMS_PAGE_MAX, ITEMS_SUBJECT, ItemKind, ItemsPage, ItemsQuery};
use serde::Deserialize;
use std::sync::Arc;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;

/// The query string.
#[derive(Debug, Deserialize)]
pub struct ItemsParams {
    pub node: String,
    pub kind: ItemKind,
    #[serde(default)]
    pub offset: usize,
    /// 100 when absent; at most [`ITEMS_PAGE_MAX`].
    pub limit: Option<usize>,
}

/// Answers one page: 400 for a malformed query or a limit out of range,
/// 404 for an unknown node, 403 outside the caller's scope, 503 when
/// ingest does not answer.
pub async fn get(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<ItemsParams>, QueryRejection>,
) -> Result<Json<ItemsPage>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > ITEMS_PAGE_MAX {
        return Err(ApiError::BadRequest(format!(
            "limit must be 1–{ITEMS_PAGE_MAX}"
        )));
    }
    let i = app
        .registry
        .lookup(&q.node)
        .ok_or_else(|| ApiError::NotFound(format!("no node `{}`", q.node)))?;
    caller.may_read(&q.node)?;
    if app.registry.node(i).mg.is_none() {
        return Err(ApiError::BadRequest(format!(
            "`{}` is not a micro-grid: only micro-grids have items",
            q.node
        )));
    }
    let query = ItemsQuery {
        node: q.node,
        kind: q.kind,
        offset: q.offset,
        limit,
        id: None,
    };
    let page: ItemsPage = app.ask_ingest(ITEMS_SUBJECT, &query).await?;
    if let Some(e) = page.error {
        return Err(ApiError::BadRequest(e));
    }
    Ok(Json(page))
}
