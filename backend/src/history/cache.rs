//! The columns a query worker has already decoded, kept for the next
//! query. A part's file never changes once written (ingest writes a new
//! part, or replaces a day's parts with one merged file, and deletes the
//! old ones), so a decoded column stays right as long as its file is there
//! with the same length. Node ids are kept as polars categoricals (one
//! global dictionary: joins and group-bys on them run on integers); the
//! answers turn them back into plain strings ([`super::plain_strings`]).
//!
//! Only the columns a query names are decoded ([`wanted`]); the cache
//! holds at most its byte budget, least recently used out first; a part
//! that does not fit is scanned from its file as before.

use polars::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{node_type, scan_all};

/// One decoded column of one part.
struct Entry {
    column: Column,
    bytes: usize,
    /// The cache's clock when it was last used.
    used: u64,
}

/// What is known of one part.
struct Part {
    /// Its length when its columns were decoded.
    len: u64,
    rows: usize,
    columns: HashMap<PlSmallStr, Entry>,
}

#[derive(Default)]
struct Inner {
    parts: HashMap<PathBuf, Part>,
    bytes: usize,
    clock: u64,
}

/// Decoded columns of history parts, within a byte budget.
pub struct Cache {
    budget: usize,
    inner: Mutex<Inner>,
}

/// The columns of `table` a query may need: every column whose name
/// appears as a word in `sql`, or all of them (`None`) when the query has
/// a `*` other than `count(*)` (a superset: a word in a string literal
/// or an alias only costs a column decoded for nothing).
pub fn wanted(sql: &str, columns: &[&str]) -> Option<Vec<String>> {
    let lower = sql.to_ascii_lowercase();
    let compact: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.replace("count(*)", "").contains('*') {
        return None;
    }
    let words: std::collections::HashSet<&str> = lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    Some(
        columns
            .iter()
            .filter(|c| words.contains(*c))
            .map(|c| (*c).to_string())
            .collect(),
    )
}

/// A part's scan with its `node` a categorical, as the cache keeps it.
fn scan(files: &[PathBuf], columns: &[PlSmallStr]) -> PolarsResult<LazyFrame> {
    let lf = scan_all(files)?.select(columns.iter().map(|c| col(c.clone())).collect::<Vec<_>>());
    Ok(if columns.iter().any(|c| c == "node") {
        lf.with_column(col("node").cast(node_type()))
    } else {
        lf
    })
}

impl Cache {
    /// A cache of at most `budget` bytes (0: nothing kept, every query
    /// reads the files).
    pub fn new(budget: usize) -> Cache {
        Cache {
            budget,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The bytes it holds now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `columns` of every part in `files` (not empty) as one frame: the
    /// parts held (or now decoded, if they fit) from memory, the others
    /// scanned from their files.
    pub fn frame(&self, files: &[PathBuf], columns: &[PlSmallStr]) -> PolarsResult<LazyFrame> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        // Parts gone (merged, or past retention) leave the cache.
        let gone: Vec<PathBuf> = inner
            .parts
            .keys()
            .filter(|p| !p.exists())
            .cloned()
            .collect();
        for p in gone {
            inner.forget(&p);
        }
        let mut held: Option<DataFrame> = None;
        let mut scanned = Vec::new();
        for f in files {
            match self.part(&mut inner, f, columns, now)? {
                Some(df) => match held.as_mut() {
                    Some(h) => {
                        h.vstack_mut_owned(df)?;
                    }
                    None => held = Some(df),
                },
                None => scanned.push(f.clone()),
            }
        }
        drop(inner);
        let held = held.map(|df| df.lazy());
        let scanned = if scanned.is_empty() {
            None
        } else {
            Some(scan(&scanned, columns)?)
        };
        match (held, scanned) {
            (Some(h), Some(s)) => concat([h, s], UnionArgs::default()),
            (Some(h), None) => Ok(h),
            (None, Some(s)) => Ok(s),
            (None, None) => polars_bail!(ComputeError: "no parts"),
        }
    }

    /// `columns` of the part `f` from memory (decoding those not held
    /// yet), or `None` when they do not fit the budget.
    fn part(
        &self,
        inner: &mut Inner,
        f: &Path,
        columns: &[PlSmallStr],
        now: u64,
    ) -> PolarsResult<Option<DataFrame>> {
        let len = std::fs::metadata(f)?.len();
        if inner.parts.get(f).is_some_and(|p| p.len != len) {
            inner.forget(f);
        }
        let missing: Vec<PlSmallStr> = columns
            .iter()
            .filter(|c| {
                inner
                    .parts
                    .get(f)
                    .is_none_or(|p| !p.columns.contains_key(*c))
            })
            .cloned()
            .collect();
        if !missing.is_empty() {
            if self.budget == 0 {
                return Ok(None);
            }
            let df = scan(&[f.to_path_buf()], &missing)?.collect()?;
            let bytes: usize = df
                .columns()
                .iter()
                .map(|c| c.as_materialized_series().estimated_size())
                .sum();
            if !inner.make_room(bytes, self.budget) {
                return Ok(None);
            }
            let rows = df.height();
            let part = inner.parts.entry(f.to_path_buf()).or_insert(Part {
                len,
                rows,
                columns: HashMap::new(),
            });
            for c in df.into_columns() {
                let bytes = c.as_materialized_series().estimated_size();
                part.columns.insert(
                    c.name().clone(),
                    Entry {
                        column: c,
                        bytes,
                        used: now,
                    },
                );
            }
            inner.bytes += bytes;
        }
        let Some(part) = inner.parts.get_mut(f) else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(columns.len());
        for c in columns {
            let Some(e) = part.columns.get_mut(c) else {
                return Ok(None);
            };
            e.used = now;
            out.push(e.column.clone());
        }
        DataFrame::new(part.rows, out).map(Some)
    }
}

impl Inner {
    /// Drops every column of part `f`.
    fn forget(&mut self, f: &Path) {
        if let Some(p) = self.parts.remove(f) {
            self.bytes -= p.columns.values().map(|e| e.bytes).sum::<usize>();
        }
    }

    /// Frees the least recently used columns until `bytes` more fit in
    /// `budget` (never those used by the query running now); false if
    /// they cannot.
    fn make_room(&mut self, bytes: usize, budget: usize) -> bool {
        if bytes > budget {
            return false;
        }
        while self.bytes + bytes > budget {
            let oldest = self
                .parts
                .iter()
                .flat_map(|(p, part)| part.columns.iter().map(move |(c, e)| (e.used, p, c)))
                .filter(|(used, ..)| *used < self.clock)
                .min_by_key(|(used, ..)| *used)
                .map(|(_, p, c)| (p.clone(), c.clone()));
            let Some((p, c)) = oldest else { return false };
            if let Some(part) = self.parts.get_mut(&p) {
                if let Some(e) = part.columns.remove(&c) {
                    self.bytes -= e.bytes;
                }
                if part.columns.is_empty() {
                    self.parts.remove(&p);
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part of `rows` (node, minute, samples) at `path`.
    fn part(path: &Path, rows: &[(&str, i64, u64)]) {
        let mut df = DataFrame::new(
            rows.len(),
            vec![
                Column::new("node".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
                Column::new(
                    "minute".into(),
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                ),
                Column::new(
                    "samples".into(),
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                ),
            ],
        )
        .expect("frame");
        let f = std::fs::File::create(path).expect("file");
        ParquetWriter::new(f).finish(&mut df).expect("write");
    }

    /// Samples per node, through `cache`, as plain strings.
    fn sums(cache: &Cache, files: &[PathBuf]) -> Vec<(String, u64)> {
        let cols = ["node".into(), "samples".into()];
        let df = cache
            .frame(files, &cols)
            .expect("frame")
            .group_by([col("node")])
            .agg([col("samples").sum()])
            .collect()
            .expect("collect");
        let df = super::super::plain_strings(df);
        let nodes = df.column("node").and_then(|c| c.str()).expect("str");
        let samples = df.column("samples").and_then(|c| c.u64()).expect("u64");
        let mut out: Vec<(String, u64)> = nodes
            .iter()
            .zip(samples.iter())
            .map(|(n, s)| (n.unwrap_or("").to_string(), s.unwrap_or(0)))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn the_columns_a_query_names() {
        let cols = ["node", "minute", "zone", "samples", "patrols"];
        assert_eq!(
            wanted(
                "SELECT node, sum(samples) FROM history GROUP BY node",
                &cols
            ),
            Some(vec!["node".to_string(), "samples".to_string()])
        );
        assert_eq!(
            wanted("select COUNT( * ) from history", &cols),
            Some(vec![])
        );
        assert_eq!(wanted("SELECT * FROM history", &cols), None);
        assert_eq!(wanted("SELECT h.* FROM history h", &cols), None);
        assert_eq!(wanted("SELECT patrols * 2 FROM history", &cols), None);
        // `zoned` is not `zone`; `minute_x` is not `minute`.
        assert_eq!(
            wanted("SELECT 1 AS zoned, 2 AS minute_x FROM history", &cols),
            Some(vec![])
        );
    }

    #[test]
    fn kept_columns_answer_as_the_files_do_until_the_files_change() {
        let dir = tempfile::tempdir().expect("dir");
        let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
        part(&a, &[("beilun/x/m1", 1, 5), ("beilun/x/m2", 1, 7)]);
        part(&b, &[("beilun/x/m1", 2, 11)]);
        let files = vec![a.clone(), b.clone()];
        let want = vec![
            ("beilun/x/m1".to_string(), 16),
            ("beilun/x/m2".to_string(), 7),
        ];
        // No budget: read from the files, nothing kept.
        let none = Cache::new(0);
        assert_eq!(sums(&none, &files), want);
        assert_eq!(none.bytes(), 0);
        let cache = Cache::new(1 << 20);
        assert_eq!(sums(&cache, &files), want);
        let kept = cache.bytes();
        assert!(kept > 0);
        // Asked again: from memory, the same.
        assert_eq!(sums(&cache, &files), want);
        assert_eq!(cache.bytes(), kept);
        // A part replaced (another length): read again.
        part(&b, &[("beilun/x/m1", 2, 11), ("beilun/x/m3", 2, 1)]);
        let now = sums(&cache, &files);
        assert_eq!(now.len(), 3, "{now:?}");
        assert_eq!(now[2], ("beilun/x/m3".to_string(), 1));
        // A part gone (merged away): it leaves the cache.
        std::fs::remove_file(&a).expect("rm");
        assert_eq!(sums(&cache, std::slice::from_ref(&b)).len(), 2);
        assert!(cache.bytes() < kept + 100, "{} {kept}", cache.bytes());
        assert!(!cache.lock().parts.contains_key(&a));
    }

    #[test]
    fn the_budget_holds_and_the_least_recently_used_go_first() {
        let dir = tempfile::tempdir().expect("dir");
        let rows: Vec<(String, i64, u64)> = (0..2000)
            .map(|i| (format!("beilun/x/m{}", i % 50), i, 1))
            .collect();
        let rows: Vec<(&str, i64, u64)> = rows.iter().map(|r| (r.0.as_str(), r.1, r.2)).collect();
        let paths: Vec<PathBuf> = (0..3)
            .map(|k| dir.path().join(format!("p{k}.parquet")))
            .collect();
        for p in &paths {
            part(p, &rows);
        }
        let one = {
            let c = Cache::new(1 << 30);
            sums(&c, &paths[..1]);
            c.bytes()
        };
        // Room for two parts' columns, not three.
        let cache = Cache::new(one * 2 + one / 2);
        let all = sums(&cache, &paths);
        assert_eq!(all.iter().map(|r| r.1).sum::<u64>(), 6000);
        assert!(cache.bytes() <= one * 2 + one / 2);
        assert_eq!(cache.lock().parts.len(), 2);
        // Part 0 then part 1 asked: the third pushes out (columns of)
        // part 0, the least recently used.
        sums(&cache, &paths[..1]);
        sums(&cache, &paths[1..2]);
        sums(&cache, &paths[2..]);
        let inner = cache.lock();
        assert!(inner.parts.contains_key(&paths[1]) && inner.parts.contains_key(&paths[2]));
        assert!(
            inner
                .parts
                .get(&paths[0])
                .is_none_or(|p| p.columns.len() < 2)
        );
        drop(inner);
        // Smaller than one part: nothing kept, the answer still whole.
        let tiny = Cache::new(one / 2);
        assert_eq!(sums(&tiny, &paths), all);
        assert_eq!(tiny.bytes(), 0);
    }
}
