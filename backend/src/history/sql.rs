//! The SQL side of the history: the tables polars SQL sees (`history`,
//! `nodes`, `zones`, `incidents`, `orders`) and [`check`], which lets
//! through one read-only query without table functions — for
//! `POST /api/v1/sql` and the Postgres wire protocol alike.

use gridwatch_model::tables::{self, ColKind};
use gridwatch_model::{Level, Registry};
use polars::prelude::*;
use sqlparser::ast::{Statement, TableFactor, Visit, Visitor};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;
use std::path::PathBuf;

use super::{History, cache, is_part, level_column, node_type};

/// The longest statement taken, bytes.
pub const SQL_MAX: usize = 16 * 1024;

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

/// Checks `sql` is one read-only query without table functions (polars
/// SQL reads files only through those); the parser's words when it is
/// not SQL.
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

/// A table with no part yet: its columns, no rows.
fn empty(cols: &[(&str, ColKind)]) -> PolarsResult<DataFrame> {
    let columns = cols
        .iter()
        .map(|(n, k)| match k {
            ColKind::Str => Column::new((*n).into(), Vec::<&str>::new()),
            ColKind::I64 => Column::new((*n).into(), Vec::<i64>::new()),
            ColKind::U32 => Column::new((*n).into(), Vec::<u32>::new()),
            ColKind::U64 => Column::new((*n).into(), Vec::<u64>::new()),
        })
        .collect();
    let df = DataFrame::new(0, columns)?;
    if df.schema().contains("node") {
        df.lazy()
            .with_column(col("node").cast(node_type()))
            .collect()
    } else {
        Ok(df)
    }
}

impl History {
    /// Every part of `table`, every day kept.
    fn all_files(&self, table: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let Ok(days) = std::fs::read_dir(self.dir.join(table)) else {
            return out;
        };
        for day in days.flatten() {
            if let Ok(parts) = std::fs::read_dir(day.path()) {
                out.extend(parts.flatten().map(|e| e.path()).filter(|p| is_part(p)));
            }
        }
        out.sort();
        out
    }

    /// `table`'s parts as one lazy frame, with the columns `sql` may need
    /// (empty with `cols` when there is no part).
    fn table(
        &self,
        table: &str,
        cols: &[(&str, ColKind)],
        sql: &str,
        ids: Ids,
    ) -> PolarsResult<LazyFrame> {
        let files = self.all_files(table);
        let lf = if files.is_empty() {
            empty(cols)?.lazy()
        } else {
            self.table_parts(&files, cols, sql)?
        };
        Ok(ids.apply(lf, &["node"]))
    }

    fn table_parts(
        &self,
        files: &[PathBuf],
        cols: &[(&str, ColKind)],
        sql: &str,
    ) -> PolarsResult<LazyFrame> {
        let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
        let columns: Vec<PlSmallStr> = match cache::wanted(sql, &names) {
            // A query naming none of its columns (`count(*)`) still needs
            // its rows: the smallest column carries them.
            Some(w) if w.is_empty() => vec![names.get(1).copied().unwrap_or("node").into()],
            Some(w) => w.into_iter().map(PlSmallStr::from).collect(),
            None => names.into_iter().map(PlSmallStr::from).collect(),
        };
        self.cache.frame(files, &columns)
    }

    /// The SQL tables for `sql`: `history` (the `minutes` rows), `nodes`
    /// (the registry without people), `zones`, `incidents`, `orders`.
    fn sql_context(&self, sql: &str, ids: Ids) -> PolarsResult<polars::sql::SQLContext> {
        let ctx = polars::sql::SQLContext::new();
        ctx.register(
            "history",
            self.table("minutes", &tables::minutes(), sql, ids)?,
        );
        ctx.register(
            "nodes",
            ids.apply(self.registry_table.clone().lazy(), &NODE_ID_COLUMNS),
        );
        ctx.register("zones", self.table("zones", &tables::ZONES, sql, ids)?);
        ctx.register(
            "incidents",
            self.table("incidents", &tables::INCIDENTS, sql, ids)?,
        );
        ctx.register("orders", self.table("orders", &tables::ORDERS, sql, ids)?);
        Ok(ctx)
    }

    /// Runs `sql` through `run` (collect it, or ask its schema) over the
    /// SQL tables with node ids as categoricals (joins and group-bys on
    /// integers); a query that fails so (polars' string functions, `LIKE`
    /// or `upper(node)`, take no categoricals) runs again over plain
    /// strings, whose answer or error is the one told.
    pub fn sql<T>(&self, sql: &str, run: impl Fn(LazyFrame) -> PolarsResult<T>) -> PolarsResult<T> {
        let over = |ids| {
            self.sql_context(sql, ids)
                .and_then(|mut ctx| ctx.execute(sql))
                .map(super::plan::one_reduction_sums)
                .and_then(&run)
        };
        over(Ids::Dictionary).or_else(|_| over(Ids::Plain))
    }
}

/// The registry table's columns holding node ids.
const NODE_ID_COLUMNS: [&str; 5] = ["node", "parent", "street", "community", "grid"];

/// How the SQL tables carry node ids.
#[derive(Clone, Copy)]
enum Ids {
    /// As kept: categoricals.
    Dictionary,
    /// As plain strings.
    Plain,
}

impl Ids {
    /// `lf` with those of `columns` it has carrying ids this way.
    fn apply(self, mut lf: LazyFrame, columns: &[&str]) -> LazyFrame {
        let Ids::Plain = self else { return lf };
        let Ok(schema) = lf.collect_schema() else {
            return lf;
        };
        let casts: Vec<Expr> = columns
            .iter()
            .filter(|c| schema.contains(c))
            .map(|c| col(*c).cast(DataType::String))
            .collect();
        lf.with_columns(casts)
    }
}

/// The registry as the SQL table `nodes`: every node's id, level, names,
/// parent, street, community, grid, population, households and registered
/// zone (micro-grids) — no team members.
pub(super) fn registry_table(reg: &Registry) -> PolarsResult<DataFrame> {
    let level = |d: usize| Level::from_depth(d).map(level_column).unwrap_or("");
    let at = |i: u32, depth: usize| -> Option<&str> {
        let mut k = Some(i);
        while let Some(x) = k {
            let n = reg.node(x);
            if n.level.depth() == depth {
                return Some(n.id.as_str());
            }
            k = n.parent;
        }
        None
    };
    let idx: Vec<u32> = (0..reg.nodes.len() as u32).collect();
    let n = |i: &u32| reg.node(*i);
    let df = DataFrame::new(
        idx.len(),
        vec![
            Column::new(
                "node".into(),
                idx.iter().map(|i| n(i).id.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "level".into(),
                idx.iter()
                    .map(|i| level(n(i).level.depth()))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "name".into(),
                idx.iter().map(|i| n(i).name.as_str()).collect::<Vec<_>>(),
            ),
            Column::new(
                "name_en".into(),
                idx.iter()
                    .map(|i| n(i).name_en.as_str())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "parent".into(),
                idx.iter()
                    .map(|i| n(i).parent.map(|p| reg.node(p).id.as_str()))
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                "street".into(),
                idx.iter().map(|i| at(*i, 1)).collect::<Vec<_>>(),
            ),
            Column::new(
                "community".into(),
                idx.iter().map(|i| at(*i, 2)).collect::<Vec<_>>(),
            ),
            Column::new(
                "grid".into(),
                idx.iter().map(|i| at(*i, 3)).collect::<Vec<_>>(),
            ),
            Column::new(
                "population".into(),
                idx.iter().map(|i| n(i).population).collect::<Vec<_>>(),
            ),
            Column::new(
                "households".into(),
                idx.iter().map(|i| n(i).households).collect::<Vec<_>>(),
            ),
            Column::new(
                "zone".into(),
                idx.iter()
                    .map(|i| n(i).mg.as_ref().map(|m| m.zone.as_str()))
                    .collect::<Vec<_>>(),
            ),
        ],
    )?;
    // Node ids as the history tables have them (joins on integers).
    df.lazy()
        .with_columns(NODE_ID_COLUMNS.map(|c| col(c).cast(node_type())))
        .collect()
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
