//! `POST /api/v1/sql` `{"sql": "SELECT …", "format": "json"}`: read-only
//! SQL over the history tables, run by polars SQL: `history` (the
//! `minutes` rows of every day kept), `nodes` (the registry without
//! people), `zones`, `incidents`, `orders`.
//!
//! One statement, a SELECT (a query: `WITH`, `UNION` … included); no
//! table function (`read_parquet('…')` and friends would reach the file
//! system) — checked on the parsed statement before polars sees it. At
//! most [`ROWS_MAX`] rows (ask for fewer with `LIMIT`), `query_timeout_s`,
//! two at once. Bad SQL gets the parser's message as a 400.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::response::Response;
use axum::{Extension, Json};
use polars::prelude::*;
use serde::Deserialize;
use sqlparser::ast::{Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;
use std::sync::Arc;

use crate::AppState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::history::ROWS_MAX;
use crate::routes::query::{Format, bounded, history_of, may_query, render};

/// The longest statement taken, bytes.
pub const SQL_MAX: usize = 16 * 1024;

/// The body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Body {
    pub sql: String,
    #[serde(default)]
    pub format: Option<String>,
}

/// Finds what a read-only query may not have.
struct Refuse(Option<String>);

impl Visitor for Refuse {
    type Break = ();

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
        let why = match t {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => Some(format!("`{name}(…)`: table functions are not allowed")),
            TableFactor::TableFunction { .. } | TableFactor::Function { .. } => {
                Some("table functions are not allowed".to_string())
            }
            _ => None,
        };
        match why {
            Some(w) => {
                self.0 = Some(w);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    }
}

/// Checks `sql` is one read-only query without table functions.
pub fn check(sql: &str) -> Result<(), String> {
    if sql.len() > SQL_MAX {
        return Err(format!("the statement is over {SQL_MAX} bytes"));
    }
    let stmts = Parser::parse_sql(&GenericDialect, sql).map_err(|e| e.to_string())?;
    let [stmt] = stmts.as_slice() else {
        return Err(format!("one statement, not {}", stmts.len()));
    };
    if !matches!(stmt, Statement::Query(_)) {
        return Err("only SELECT statements run here".into());
    }
    let mut r = Refuse(None);
    let _ = stmt.visit(&mut r);
    match r.0 {
        Some(why) => Err(why),
        None => Ok(()),
    }
}

/// `POST /api/v1/sql`.
pub async fn post(
    State(app): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<Body>, JsonRejection>,
) -> Result<Response, ApiError> {
    // SQL reads every street: the district's readers only.
    may_query(&caller, gridwatch_model::ids::DISTRICT_ID)?;
    let Json(b) = body?;
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
    let h = history_of(&app)?;
    let hh = h.clone();
    let sql = b.sql;
    let df = bounded(&app, &h, move || {
        let mut ctx = hh.sql_context()?;
        let df = ctx
            .execute(&sql)?
            .limit(ROWS_MAX as IdxSize + 1)
            .collect()?;
        polars_ensure!(
            df.height() <= ROWS_MAX,
            ComputeError: "more than {} rows: add a LIMIT or aggregate", ROWS_MAX
        );
        Ok(df)
    })
    .await?;
    render(df, format, "gridwatch-sql")
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn only_one_select_without_table_functions_passes() {
        assert!(
            check(
                "SELECT street, sum(samples) FROM history JOIN nodes USING (node) GROUP BY street"
            )
            .is_ok()
        );
        assert!(check("WITH t AS (SELECT * FROM zones) SELECT count(*) FROM t").is_ok());
        for bad in [
            "DROP TABLE history",
            "CREATE TABLE x AS SELECT 1",
            "DELETE FROM history",
            "SELECT 1; SELECT 2",
            "SELECT * FROM read_parquet('/etc/passwd')",
            "SELECT * FROM history WHERE node IN (SELECT node FROM read_csv('/x'))",
            "SELEC 1",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(check(&format!("SELECT '{}'", "x".repeat(20_000))).is_err());
    }
}
