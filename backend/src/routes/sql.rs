//! `POST /api/v1/sql` `{"sql": "SELECT …", "format": "json"}` (or `GET
//! /api/v1/sql?sql=…&format=…`, for links): read-only
//! SQL over the history tables, run by polars SQL: `history` (the
//! `minutes` rows of every day kept), `nodes` (the registry without
//! people), `zones`, `incidents`, `orders`.
//!
//! One statement, a SELECT (a query: `WITH`, `UNION` … included); no
//! table function (`read_parquet('…')` and friends would reach the file
//! system) — checked on the parsed statement before polars sees it. At
//! most `ROWS_MAX` rows (ask for fewer with `LIMIT`), `query_timeout_s`,
//! `query_memory_mb`, two at once, each in a query worker (see
//! `history::worker`). Bad SQL gets the parser's message as a 400.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::response::Response;
use axum::{Extension, Json};
use serde::Deserialize;
use std::sync::Arc;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::history::sql::check;
use crate::history::worker::Job;
use crate::routes::query::{self, Format, may_query};

/// The body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    pub sql: String,
    #[serde(default)]
    pub format: Option<String>,
}

/// `POST /api/v1/sql`.
pub async fn post(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<Body>, JsonRejection>,
) -> Result<Response, ApiError> {
    // SQL reads every street: the district's readers only (before the
    // body is read).
    may_query(&caller, gridwatch_model::ids::DISTRICT_ID)?;
    let Json(b) = body?;
    answer(&app, b).await
}

/// `GET /api/v1/sql?sql=…&format=…`: the same, as a link (the analyst
/// page's downloads).
pub async fn get(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<Body>, QueryRejection>,
) -> Result<Response, ApiError> {
    may_query(&caller, gridwatch_model::ids::DISTRICT_ID)?;
    let Query(b) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    answer(&app, b).await
}

async fn answer(app: &AppState, b: Body) -> Result<Response, ApiError> {
    check(&b.sql).map_err(|e| ApiError::BadRequest(format!("SQL: {e}")))?;
    let format = match b.format.as_deref().unwrap_or("json") {
        "json" => Format::Json,
        "csv" => Format::Csv,
        "parquet" => Format::Parquet,
        "arrow" => Format::Arrow,
        other => {
            return Err(ApiError::BadRequest(format!(
                "`format`: `{other}` is not json, csv, parquet or arrow"
            )));
        }
    };
    query::answer(app, &Job::Sql { sql: b.sql }, format, "gridwatch-sql").await
}
