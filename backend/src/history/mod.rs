//! Reading ingest's Parquet history (see ingest's `history` module for the
//! layout) with polars, lazily: only the `date=` directories a query's
//! range touches are scanned, the micro-grids are joined with the registry
//! for their street, community and grid, filtered, bucketed and summed.
//! At most [`RUNNING`] queries run at once, each in a [`worker`] process,
//! each bounded in its range, its answer's rows, its time and its memory;
//! [`sql`] holds the tables SQL sees and what it may not do.

use gridwatch_model::api::HISTORY_COUNTS;
use gridwatch_model::{Level, Registry, Zone};
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// Queries that may run at once; more wait.
pub const RUNNING: usize = 2;
/// The most rows an answer may have.
pub const ROWS_MAX: usize = 200_000;
/// The longest range a query may span, days.
pub const SPAN_DAYS_MAX: i64 = 400;
/// Beilun's offset from UTC, minutes (local buckets start at local
/// midnight).
const LOCAL_OFFSET_MIN: i64 = 8 * 60;
/// Ranges longer than this many days run on polars' streaming engine.
pub const STREAMING_FROM_DAYS: i64 = 2;

pub mod cache;
pub mod past;
mod plan;
pub mod sql;
pub mod worker;

/// A time bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Bucket {
    M1,
    M10,
    H1,
    D1,
}

impl Bucket {
    /// `1m`, `10m`, `1h`, `1d`.
    pub fn parse(s: &str) -> Option<Bucket> {
        Some(match s {
            "1m" => Bucket::M1,
            "10m" => Bucket::M10,
            "1h" => Bucket::H1,
            "1d" => Bucket::D1,
            _ => return None,
        })
    }

    /// Its length in minutes.
    pub fn minutes(self) -> i64 {
        match self {
            Bucket::M1 => 1,
            Bucket::M10 => 10,
            Bucket::H1 => 60,
            Bucket::D1 => 1440,
        }
    }
}

/// One history query (it goes to a [`worker`] as JSON).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Query {
    /// Of [`HISTORY_COUNTS`].
    pub metrics: Vec<String>,
    /// The level rows are grouped at.
    pub level: Level,
    /// Only micro-grids under this node.
    pub node: String,
    /// Only rows whose micro-grid was in this zone at their minute.
    pub zone: Option<Zone>,
    /// Unix minutes, `from` included, `to` not.
    pub from: i64,
    pub to: i64,
    pub bucket: Bucket,
}

impl Query {
    /// An upper bound of its answer's rows.
    pub fn rows_bound(&self, reg: &Registry) -> usize {
        let groups = reg
            .lookup(&self.node)
            .map(|i| {
                let depth = self.level.depth();
                let n = reg.node(i);
                if depth <= n.level.depth() {
                    1
                } else {
                    reg.nodes
                        .iter()
                        .filter(|x| {
                            x.level.depth() == depth
                                && gridwatch_model::auth::in_scope(&self.node, x.id.as_str())
                        })
                        .count()
                }
            })
            .unwrap_or(0);
        let buckets = ((self.to - self.from) / self.bucket.minutes()).max(0) as usize + 1;
        groups.saturating_mul(buckets)
    }
}

/// The history of one data dir, and the registry's micro-grid → ancestors.
pub struct History {
    pub dir: PathBuf,
    /// node (micro-grid id), district, street, community, grid, microgrid.
    nodes: DataFrame,
    /// The SQL table `nodes`.
    registry_table: DataFrame,
    /// The columns already decoded.
    cache: cache::Cache,
}

/// The local date (YYYY-MM-DD) of Unix minute `m`.
fn local_day(m: i64) -> Option<chrono::NaiveDate> {
    chrono::DateTime::from_timestamp((m + LOCAL_OFFSET_MIN) * 60, 0).map(|t| t.date_naive())
}

impl History {
    /// The history under `dir` (ingest's `<data-dir>/history`).
    ///
    /// Fails only if the registry's table cannot be built.
    pub fn new(dir: PathBuf, reg: &Registry) -> PolarsResult<History> {
        let mut cols: [Vec<&str>; 6] = Default::default();
        for &m in &reg.microgrids {
            let Some(mg) = &reg.node(m).mg else { continue };
            cols[0].push(reg.node(m).id.as_str());
            for (k, &a) in mg.path.iter().enumerate() {
                cols[k + 1].push(reg.node(a).id.as_str());
            }
        }
        let names = [
            "node",
            "district",
            "street",
            "community",
            "grid",
            "microgrid",
        ];
        let n = cols[0].len();
        let columns = names
            .iter()
            .zip(cols)
            .map(|(name, c)| Column::new((*name).into(), c))
            .collect();
        let nodes = DataFrame::new(n, columns)?
            .lazy()
            .with_columns(
                names
                    .iter()
                    .map(|c| col(*c).cast(node_type()))
                    .collect::<Vec<_>>(),
            )
            .collect()?;
        Ok(History {
            dir,
            nodes,
            registry_table: sql::registry_table(reg)?,
            cache: cache::Cache::new(0),
        })
    }

    /// Keeps up to `bytes` of decoded columns for the next queries (a
    /// query worker: half its memory bound).
    pub fn keep_decoded(mut self, bytes: usize) -> History {
        self.cache = cache::Cache::new(bytes);
        self
    }

    /// The bytes of decoded columns kept.
    pub fn kept_bytes(&self) -> usize {
        self.cache.bytes()
    }

    /// The parts of `table` on the local days `from..=to`.
    pub fn files(&self, table: &str, from: i64, to: i64) -> Vec<PathBuf> {
        let (Some(a), Some(b)) = (local_day(from), local_day(to)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut d = a;
        while d <= b {
            let day = self.dir.join(table).join(format!("date={d}"));
            if let Ok(rd) = std::fs::read_dir(&day) {
                let mut ps: Vec<PathBuf> = rd
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| is_part(p))
                    .collect();
                ps.sort();
                out.extend(ps);
            }
            let Some(next) = d.succ_opt() else { break };
            d = next;
        }
        out
    }

    /// Runs `q` (blocking: call it on a blocking thread).
    pub fn run(&self, q: &Query) -> PolarsResult<DataFrame> {
        let files = self.files("minutes", q.from, q.to - 1);
        let mut names: Vec<&str> = vec!["bucket", level_column(q.level)];
        names.extend(q.metrics.iter().map(String::as_str));
        if files.is_empty() {
            let cols = names
                .iter()
                .enumerate()
                .map(|(k, n)| match k {
                    0 => Column::new((*n).into(), Vec::<i64>::new()),
                    1 => Column::new((*n).into(), Vec::<&str>::new()),
                    _ => Column::new((*n).into(), Vec::<u64>::new()),
                })
                .collect();
            return DataFrame::new(0, cols);
        }
        let k = q.bucket.minutes();
        let group = level_column(q.level);
        let mut columns: Vec<PlSmallStr> = vec!["node".into(), "minute".into()];
        if q.zone.is_some() {
            columns.push("zone".into());
        }
        columns.extend(q.metrics.iter().map(|m| PlSmallStr::from(m.as_str())));
        let mut lf = self.cache.frame(&files, &columns)?.filter(
            col("minute")
                .gt_eq(lit(q.from))
                .and(col("minute").lt(lit(q.to))),
        );
        if let Some(z) = q.zone {
            lf = lf.filter(col("zone").eq(lit(z.as_str())));
        }
        let bucket =
            (col("minute") - ((col("minute") + lit(LOCAL_OFFSET_MIN)) % lit(k))).alias("bucket");
        // Each row gets its node at the level (null outside the node asked:
        // dropped) by `level_of`'s gather; then the few groups of (bucket,
        // level) sum.
        let mut reg = self.nodes.clone().lazy();
        if let Some(l) = Level::from_depth(node_depth(&q.node)).filter(|l| l.depth() > 0) {
            reg = reg.filter(col(level_column(l)).eq(lit(q.node.clone())));
        }
        let sums: Vec<Expr> = q.metrics.iter().map(|m| col(m.as_str()).sum()).collect();
        let lf = lf
            .with_column(level_of(reg, group)?)
            .filter(col(group).is_not_null())
            .with_column(bucket)
            .group_by([col("bucket"), col(group)])
            .agg(sums)
            .sort(["bucket", group], SortMultipleOptions::default());
        if (q.to - q.from) > STREAMING_FROM_DAYS * 1440 {
            collect_streaming(lf)
        } else {
            lf.collect()
        }
    }
}

/// How a part is scanned: by its own columns (the `date=` directory is
/// not read as a column: its day is in the rows' times).
fn scan_args() -> ScanArgsParquet {
    ScanArgsParquet {
        hive_options: HiveOptions {
            enabled: Some(false),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Every file in `files` as one lazy scan (one plan node, read in
/// parallel; `files` not empty).
pub(super) fn scan_all(files: &[PathBuf]) -> PolarsResult<LazyFrame> {
    let paths = files
        .iter()
        .map(|f| PlRefPath::try_from_path(f))
        .collect::<PolarsResult<Vec<_>>>()?;
    LazyFrame::scan_parquet_files(paths.into(), scan_args())
}

/// Runs `lf` on polars' streaming engine (on these group-bys and joins
/// over many days about twice as fast as in memory: bench/ANALYSIS.md);
/// a plan the streaming engine cannot take (it panics) runs in memory.
pub(super) fn collect_streaming(lf: LazyFrame) -> PolarsResult<DataFrame> {
    let streamed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lf.clone().collect_with_engine(Engine::Streaming)
    }));
    match streamed {
        Ok(Ok(polars_core::query_result::QueryResult::Single(df))) => Ok(df),
        Ok(Ok(_)) => polars_bail!(ComputeError: "one answer expected"),
        Ok(Err(e)) => Err(e),
        Err(_) => lf.collect(),
    }
}

/// The node of level column `group` each history row falls under, from
/// the micro-grids of `reg` (null for a micro-grid not in it): what a join
/// with `reg` gives, as one gather by the micro-grid id's code in the
/// global dictionary (the join's hash probes were a third of the query).
fn level_of(reg: LazyFrame, group: &str) -> PolarsResult<Expr> {
    let reg = reg.select([col("node"), col(group)]).collect()?;
    let codes = reg.column("node")?.to_physical_repr();
    let codes = codes.u32()?;
    // At least one entry (null), so that an empty registry gathers nulls.
    let mut row: Vec<Option<IdxSize>> = vec![None; codes.max().map_or(1, |m| m as usize + 1)];
    for (i, c) in codes.iter().enumerate() {
        if let Some(slot) = c.and_then(|c| row.get_mut(c as usize)) {
            *slot = Some(i as IdxSize);
        }
    }
    let by_code = reg
        .column(group)?
        .take(&IdxCa::from_iter_options("row".into(), row.into_iter()))?;
    Ok(lit(by_code.as_materialized_series().clone())
        .gather(col("node").to_physical(), true)
        .alias(group))
}

/// The type node ids are kept and joined as: a categorical (one global
/// dictionary).
pub(super) fn node_type() -> DataType {
    DataType::from_categories(Categories::global())
}

/// `df` with its dictionary (categorical) columns as plain strings.
pub(super) fn plain_strings(df: DataFrame) -> DataFrame {
    let cols = df
        .columns()
        .iter()
        .map(|c| match c.dtype() {
            DataType::Categorical(..) | DataType::Enum(..) => {
                c.cast(&DataType::String).unwrap_or_else(|_| c.clone())
            }
            _ => c.clone(),
        })
        .collect();
    DataFrame::new(df.height(), cols).unwrap_or(df)
}

/// Whether `p` names a finished part (not a `.tmp`).
pub(super) fn is_part(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("part-") && n.ends_with(".parquet"))
}

/// The registry table's column of a level.
pub fn level_column(l: Level) -> &'static str {
    match l {
        Level::District => "district",
        Level::Street => "street",
        Level::Community => "community",
        Level::Grid => "grid",
        Level::Microgrid => "microgrid",
    }
}

/// The depth of a node id (`beilun` 0 … a micro-grid 4).
fn node_depth(node: &str) -> usize {
    node.matches('/').count()
}

/// Every metric a query may name.
pub fn metric(name: &str) -> Option<&'static str> {
    HISTORY_COUNTS.iter().copied().find(|m| *m == name)
}

#[cfg(test)]
mod tests;
