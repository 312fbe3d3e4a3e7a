//! `GET /api/v1/query`: history as asked — metric(s) × level × filters ×
//! time range × bucket, from ingest's Parquet (see [`crate::history`]).
//!
//! `metric=samples,patrols` (of the `minutes` counts), `level=district|
//! street|community|grid|microgrid`, `node=<id>` (only under it; default
//! the district), `street=<street id>` (the same, by street), `zone=
//! sealed|control|prevention|normal` (the zone the micro-grid was in at
//! the minute), `from`, `to` (RFC 3339, or local `YYYY-MM-DDTHH:MM` or
//! `YYYY-MM-DD`; `to` not included), `bucket=1m|10m|1h|1d` (local), and
//! `format=json|csv|parquet|arrow`. Rows: `time` (the bucket's start,
//! local RFC 3339), the group's node id, the metrics summed.
//!
//! Analysts, admins and supervisors within their scope; walls get 403. A
//! bad parameter is a 400 naming it; a range over 400 days or an answer
//! over 200,000 rows is refused before it runs; a query still running
//! after `query_timeout_s` gets 503 (it is left to finish on its thread,
//! its answer dropped; at most two run at once).

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use gridwatch_model::auth::Role;
use gridwatch_model::{Level, Zone};
use polars::prelude::*;
use serde::Deserialize;
use std::sync::Arc;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::history::{self, Bucket, ROWS_MAX, SPAN_DAYS_MAX};

/// The query string, as given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub metric: String,
    pub level: String,
    pub node: Option<String>,
    pub street: Option<String>,
    pub zone: Option<String>,
    pub from: String,
    pub to: String,
    pub bucket: String,
    pub format: Option<String>,
}

/// An answer's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Parquet,
    Arrow,
}

/// A time parameter as Unix minutes: RFC 3339, or local `YYYY-MM-DDTHH:MM`
/// (`:SS` too) or `YYYY-MM-DD` (its midnight).
pub fn parse_time(name: &str, s: &str) -> Result<i64, ApiError> {
    let local = gridwatch_model::time::local_offset();
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp())
        .or_else(|| {
            ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
                .or_else(|| {
                    NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .ok()
                        .and_then(|d| d.and_hms_opt(0, 0, 0))
                })
                .and_then(|n| local.from_local_datetime(&n).single())
                .map(|t| t.timestamp())
        })
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`{name}`: `{s}` is not a time (RFC 3339, YYYY-MM-DDTHH:MM or YYYY-MM-DD, local)"
            ))
        })?;
    Ok(t.div_euclid(60))
}

/// Checks the parameters: the query, and the format.
pub fn parse(
    p: Params,
    reg: &gridwatch_model::Registry,
) -> Result<(history::Query, Format), ApiError> {
    let bad = |m: String| ApiError::BadRequest(m);
    let mut metrics = Vec::new();
    for m in p.metric.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let Some(known) = history::metric(m) else {
            return Err(bad(format!(
                "`metric`: no metric `{m}` (one or more of {})",
                gridwatch_model::api::HISTORY_COUNTS.join(", ")
            )));
        };
        if !metrics.iter().any(|x: &String| x == known) {
            metrics.push(known.to_string());
        }
    }
    if metrics.is_empty() {
        return Err(bad("`metric`: name at least one".into()));
    }
    let level = match p.level.as_str() {
        "district" => Level::District,
        "street" => Level::Street,
        "community" => Level::Community,
        "grid" => Level::Grid,
        "microgrid" => Level::Microgrid,
        other => {
            return Err(bad(format!(
                "`level`: `{other}` is not district, street, community, grid or microgrid"
            )));
        }
    };
    let root = reg.node(reg.root()).id.to_string();
    let mut node = p.node.unwrap_or_else(|| root.clone());
    if reg.lookup(&node).is_none() {
        return Err(ApiError::NotFound(format!("no node `{node}`")));
    }
    if let Some(s) = p.street {
        let id = format!("{root}/{s}");
        let street_ok = reg
            .lookup(&id)
            .is_some_and(|i| reg.node(i).level == Level::Street);
        if !street_ok {
            return Err(bad(format!("`street`: no street `{s}`")));
        }
        if gridwatch_model::auth::in_scope(&id, &node) {
            // The node is in the street already.
        } else if gridwatch_model::auth::in_scope(&node, &id) {
            node = id;
        } else {
            return Err(bad(format!("`street` {s} is not under `node` {node}")));
        }
    }
    let zone = match p.zone.as_deref() {
        None | Some("") => None,
        Some(z) => Some(
            Zone::ALL
                .into_iter()
                .find(|x| x.as_str() == z)
                .ok_or_else(|| {
                    bad(format!(
                        "`zone`: `{z}` is not sealed, control, prevention or normal"
                    ))
                })?,
        ),
    };
    let from = parse_time("from", &p.from)?;
    let to = parse_time("to", &p.to)?;
    if to <= from {
        return Err(bad("`to` must be after `from`".into()));
    }
    if to - from > SPAN_DAYS_MAX * 1440 {
        return Err(bad(format!(
            "the range is over {SPAN_DAYS_MAX} days: ask for less"
        )));
    }
    let bucket = Bucket::parse(&p.bucket)
        .ok_or_else(|| bad(format!("`bucket`: `{}` is not 1m, 10m, 1h or 1d", p.bucket)))?;
    let format = match p.format.as_deref().unwrap_or("json") {
        "json" => Format::Json,
        "csv" => Format::Csv,
        "parquet" => Format::Parquet,
        "arrow" => Format::Arrow,
        other => {
            return Err(bad(format!(
                "`format`: `{other}` is not json, csv, parquet or arrow"
            )));
        }
    };
    let q = history::Query {
        metrics,
        level,
        node,
        zone,
        from,
        to,
        bucket,
    };
    let bound = q.rows_bound(reg);
    if bound > ROWS_MAX {
        return Err(bad(format!(
            "the answer could have {bound} rows, over {ROWS_MAX}: a coarser bucket or level, or a shorter range"
        )));
    }
    Ok((q, format))
}

/// Adds `time` (the bucket's start, local RFC 3339) in front and drops
/// `bucket`.
pub fn with_time(df: DataFrame) -> PolarsResult<DataFrame> {
    let times: Vec<String> = df
        .column("bucket")?
        .i64()?
        .iter()
        .map(|m| {
            m.and_then(|m| chrono::DateTime::from_timestamp(m * 60, 0))
                .map(gridwatch_model::time::to_local_rfc3339)
                .unwrap_or_default()
        })
        .collect();
    let mut out = df.drop("bucket")?;
    out.insert_column(0, Column::new("time".into(), times))?;
    Ok(out)
}

/// The frame as JSON: `{"columns": [...], "rows": [[...], ...]}`.
fn to_json(df: &DataFrame) -> serde_json::Value {
    let columns: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|c| c.to_string())
        .collect();
    let mut rows = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let row: Vec<serde_json::Value> = df
            .columns()
            .iter()
            .map(|c| match c.get(i) {
                Ok(AnyValue::String(s)) => serde_json::Value::from(s),
                Ok(AnyValue::StringOwned(s)) => serde_json::Value::from(s.as_str()),
                Ok(AnyValue::UInt64(v)) => serde_json::Value::from(v),
                Ok(AnyValue::UInt32(v)) => serde_json::Value::from(v),
                Ok(AnyValue::Int64(v)) => serde_json::Value::from(v),
                Ok(AnyValue::Int32(v)) => serde_json::Value::from(v),
                Ok(AnyValue::Float64(v)) => serde_json::Value::from(v),
                Ok(AnyValue::Boolean(v)) => serde_json::Value::from(v),
                Ok(AnyValue::Null) | Err(_) => serde_json::Value::Null,
                Ok(other) => serde_json::Value::from(other.to_string()),
            })
            .collect();
        rows.push(serde_json::Value::Array(row));
    }
    serde_json::json!({ "columns": columns, "rows": rows })
}

/// The frame in `format`, with its content type and (for a download) a
/// file name.
fn render(mut df: DataFrame, format: Format, name: &str) -> Result<Response, ApiError> {
    let internal = |e: PolarsError| ApiError::Internal(format!("writing the answer: {e}"));
    let (body, ctype, ext) = match format {
        Format::Json => return Ok(Json(to_json(&df)).into_response()),
        Format::Csv => {
            // A list or struct column has no CSV form: the asker's to fix.
            if let Some(c) = df.columns().iter().find(|c| c.dtype().is_nested()) {
                return Err(ApiError::BadRequest(format!(
                    "column `{}` is {}: CSV cannot carry it; ask for format json, arrow or parquet, or flatten it",
                    c.name(),
                    c.dtype()
                )));
            }
            let mut buf = Vec::new();
            CsvWriter::new(&mut buf).finish(&mut df).map_err(internal)?;
            (buf, "text/csv; charset=utf-8", "csv")
        }
        Format::Parquet => {
            let mut buf = Vec::new();
            ParquetWriter::new(&mut buf)
                .finish(&mut df)
                .map_err(internal)?;
            (buf, "application/vnd.apache.parquet", "parquet")
        }
        Format::Arrow => {
            let mut buf = Vec::new();
            IpcWriter::new(&mut buf).finish(&mut df).map_err(internal)?;
            (buf, ARROW.0, ARROW.1)
        }
    };
    Ok(download(body, (ctype, ext), name))
}

/// Who may query history: analysts, admins, supervisors (in scope).
pub fn may_query(caller: &Caller, node: &str) -> Result<(), ApiError> {
    if matches!(caller.role, Role::Wall) {
        return Err(ApiError::Forbidden(
            "a wall shows the live state; history is for analysts".into(),
        ));
    }
    caller.may_read(node)
}

/// The query workers of this backend; 503 when it reads no history.
pub fn queries_of(app: &AppState) -> Result<&history::worker::Pool, ApiError> {
    app.queries.as_deref().ok_or_else(|| {
        ApiError::Unavailable(
            "this backend reads no history (set `history_dir` to ingest's <data-dir>/history)"
                .into(),
        )
    })
}

/// `GET /api/v1/query`.
pub async fn get(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    q: Result<Query<Params>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = q.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let (q, format) = parse(p, &app.registry)?;
    may_query(&caller, &q.node)?;
    answer(
        &app,
        &history::worker::Job::Query(q),
        format,
        "gridwatch-query",
    )
    .await
}

/// Runs `job` and answers in `format`: an Arrow answer is the worker's
/// own IPC file, passed on without decoding it.
pub async fn answer(
    app: &AppState,
    job: &history::worker::Job,
    format: Format,
    name: &str,
) -> Result<Response, ApiError> {
    let pool = queries_of(app)?;
    if let Format::Arrow = format {
        return Ok(download(pool.run_ipc(job).await?, ARROW, name));
    }
    render(pool.run(job).await?, format, name)
}

/// The content type and extension of an Arrow IPC file.
const ARROW: (&str, &str) = ("application/vnd.apache.arrow.file", "arrow");

/// `body` as a download of `name`.
fn download(body: Vec<u8>, (ctype, ext): (&'static str, &str), name: &str) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}.{ext}\"")) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}
