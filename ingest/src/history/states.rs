//! The `states` table: the node states as ingest published them, so the
//! wall can be shown as it was at any past minute (`GET /api/v1/state?at=`,
//! `/wall?at=`).
//!
//! Rows: `node` (a registry id, or the map's and the testing board's
//! pseudo ids), `ts` (Unix seconds: the state's `as_of`, or the local
//! midnight of a day's first rows), `seq` (the state's version) and
//! `state` (its JSON, byte for byte as published).
//!
//! - **One row per node and minute**: of the states a node published
//!   within one minute (by `as_of`) only the last is kept — what the wall
//!   showed at the minute's end.
//! - **A day starts whole**: at the first state of a new local day every
//!   node's newest state is written again at midnight, so a lookup never
//!   reads further back than the day it asks for.
//! - **Not tied to the stream's sequence**: these rows are what was
//!   published, not counts; a row twice (a crash mid-compaction) changes
//!   no lookup, which takes a node's newest row at or before the minute.
//!   A crash loses at most the rows of the last `snapshot_s`; after a start
//!   every state is published, and recorded, afresh.
//!
//! Parts are `states-<wall ms>-<k>.parquet`, sorted by node then time;
//! a closed day merges into `states-merged.parquet`.

use bytes::Bytes;
use chrono::{DateTime, NaiveDate};
use gridwatch_model::time::{local_date, start_of_local_day};
use polars::prelude::*;
use std::collections::HashMap;
use std::fs;
use std::path::Path;

use super::{day_dirs_of, io_err, replace_parts, table_dir, write_part};
use crate::error::IngestError;

/// The table's directory name under `history/`.
pub const TABLE: &str = "states";
/// The merged part of a closed day.
const MERGED: &str = "states-merged.parquet";

/// One published state.
#[derive(Clone, Debug)]
struct Entry {
    ts: i64,
    seq: u64,
    state: Bytes,
}

/// A row of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct StateRow {
    pub node: String,
    pub ts: i64,
    pub seq: u64,
    pub state: Bytes,
}

/// The states published and not yet written.
#[derive(Debug, Default)]
pub struct StateLog {
    /// Each node's last state of its newest minute (still open).
    pending: HashMap<String, Entry>,
    /// Rows whose minute has closed.
    ready: Vec<StateRow>,
    /// Each node's newest state, for the next day's first rows.
    last: HashMap<String, Entry>,
    /// Local midnight (Unix s) of the day the newest state belongs to.
    day: Option<i64>,
    /// Parts written since start (part names' second number).
    written: u64,
}

/// Local midnight (Unix s) of the day of `ts`.
fn midnight(ts: i64) -> i64 {
    DateTime::from_timestamp(ts, 0)
        .map(|t| start_of_local_day(local_date(t)).timestamp())
        .unwrap_or(ts)
}

impl StateLog {
    /// Books the state of `node` (version `seq`, as of Unix second `ts`)
    /// as published.
    pub fn record(&mut self, node: &str, ts: i64, seq: u64, state: Bytes) {
        let day = midnight(ts);
        if self.day.is_some_and(|d| day > d) {
            // A new day: every node's newest state again at its midnight.
            self.close_minutes_before(day);
            for (node, e) in &self.last {
                self.ready.push(StateRow {
                    node: node.clone(),
                    ts: day,
                    seq: e.seq,
                    state: e.state.clone(),
                });
            }
        }
        // Forward, or far back (a replay's clock after the wall clock's
        // first states); a held state of the day before changes nothing.
        if self.day.is_none_or(|d| day > d || day < d - 86_400) {
            self.day = Some(day);
        }
        let e = Entry { ts, seq, state };
        if let Some(p) = self.pending.insert(node.to_string(), e.clone())
            && p.ts.div_euclid(60) < ts.div_euclid(60)
        {
            self.ready.push(StateRow {
                node: node.to_string(),
                ts: p.ts,
                seq: p.seq,
                state: p.state,
            });
        }
        self.last.insert(node.to_string(), e);
    }

    /// Moves each node's pending state whose minute ended by `ts` to the
    /// rows to write.
    fn close_minutes_before(&mut self, ts: i64) {
        let minute = ts.div_euclid(60);
        let ready = &mut self.ready;
        self.pending.retain(|node, e| {
            let open = e.ts.div_euclid(60) >= minute;
            if !open {
                ready.push(StateRow {
                    node: node.clone(),
                    ts: e.ts,
                    seq: e.seq,
                    state: e.state.clone(),
                });
            }
            open
        });
    }

    /// Whether rows wait to be written once the clock is at `now`.
    pub fn waiting(&self, now: Option<i64>) -> bool {
        !self.ready.is_empty()
            || now.is_some_and(|n| {
                let m = n.div_euclid(60);
                self.pending.values().any(|e| e.ts.div_euclid(60) < m)
            })
    }

    /// Writes the rows of every minute closed by `now` (all of them when
    /// `now` is `None`: at shutdown), a part per local day. Returns the
    /// rows written; on a failure they stay to be written next time.
    pub fn flush(&mut self, data_dir: &Path, now: Option<i64>) -> Result<usize, IngestError> {
        match now {
            Some(n) => self.close_minutes_before(n),
            None => self.close_minutes_before(i64::MAX),
        }
        if self.ready.is_empty() {
            return Ok(0);
        }
        let mut by_day: HashMap<i64, Vec<&StateRow>> = HashMap::new();
        for r in &self.ready {
            by_day.entry(midnight(r.ts)).or_default().push(r);
        }
        let stamp = chrono::Utc::now().timestamp_millis();
        let name = format!("states-{stamp:013}-{:06}.parquet", self.written);
        let mut paths = Vec::new();
        for (day, mut rows) in by_day {
            rows.sort_by(|a, b| (&a.node, a.ts, a.seq).cmp(&(&b.node, b.ts, b.seq)));
            let date = DateTime::from_timestamp(day, 0)
                .map(local_date)
                .unwrap_or_default();
            let d = day_dir(data_dir, date);
            match write_part(&d, &name, &mut frame(&rows)?) {
                Ok(p) => paths.push(p),
                Err(e) => {
                    for p in &paths {
                        let _ = fs::remove_file(p);
                    }
                    return Err(e);
                }
            }
        }
        self.written += 1;
        let n = self.ready.len();
        self.ready.clear();
        Ok(n)
    }
}

fn day_dir(data_dir: &Path, date: NaiveDate) -> std::path::PathBuf {
    table_dir(data_dir, TABLE).join(format!("date={date}"))
}

/// The rows as a frame (`node, ts, seq, state`).
fn frame(rows: &[&StateRow]) -> Result<DataFrame, IngestError> {
    let state: Vec<&str> = rows
        .iter()
        .map(|r| std::str::from_utf8(&r.state).unwrap_or("{}"))
        .collect();
    Ok(DataFrame::new(
        rows.len(),
        vec![
            Column::new(
                "node".into(),
                rows.iter().map(|r| r.node.as_str()).collect::<Vec<_>>(),
            ),
            Column::new("ts".into(), rows.iter().map(|r| r.ts).collect::<Vec<_>>()),
            Column::new("seq".into(), rows.iter().map(|r| r.seq).collect::<Vec<_>>()),
            Column::new("state".into(), state),
        ],
    )?)
}

/// The parts of one day: (file name, path).
fn parts(day: &Path) -> Vec<(String, std::path::PathBuf)> {
    let Ok(rd) = fs::read_dir(day) else {
        return Vec::new();
    };
    let mut out: Vec<_> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            (name.starts_with("states-") && name.ends_with(".parquet")).then(|| (name, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Every `date=` of the table: (date, path).
fn days(data_dir: &Path) -> Vec<(NaiveDate, std::path::PathBuf)> {
    day_dirs_of(data_dir, &[TABLE])
        .into_iter()
        .filter_map(|(_, d, p)| Some((NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok()?, p)))
        .collect()
}

/// Merges the parts of every day before `before` into one (rows twice —
/// from a merge cut short — once), sorted by node then time. Returns the
/// days merged.
pub fn compact(data_dir: &Path, before: NaiveDate) -> Result<usize, IngestError> {
    let mut merged = 0;
    for (date, day) in days(data_dir) {
        let ps = parts(&day);
        if date >= before || ps.len() < 2 {
            continue;
        }
        let scans = ps
            .iter()
            .map(|(_, p)| {
                let f = fs::File::open(p).map_err(|e| io_err(p, e))?;
                Ok(ParquetReader::new(f).finish()?.lazy())
            })
            .collect::<Result<Vec<_>, IngestError>>()?;
        let mut df = concat(scans, UnionArgs::default())?
            .unique_stable(Some(cols(["node", "ts", "seq"])), UniqueKeepStrategy::First)
            .sort(["node", "ts", "seq"], SortMultipleOptions::default())
            .collect()?;
        let old: Vec<_> = ps.into_iter().map(|(_, p)| p).collect();
        replace_parts(&day, MERGED, &mut df, &old)?;
        merged += 1;
    }
    Ok(merged)
}

/// Removes `.tmp` files a crash left mid-write.
pub fn remove_torn(data_dir: &Path) -> Result<usize, IngestError> {
    let mut removed = 0;
    for (_, day) in days(data_dir) {
        let Ok(rd) = fs::read_dir(&day) else { continue };
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                fs::remove_file(e.path()).map_err(|err| io_err(&e.path(), err))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(dir: &Path, date: &str) -> Vec<(String, i64, u64, String)> {
        let d = table_dir(dir, TABLE).join(format!("date={date}"));
        let mut out = Vec::new();
        for (_, p) in parts(&d) {
            let f = fs::File::open(&p).expect("part");
            let df = ParquetReader::new(f).finish().expect("read");
            let col = |n: &str| df.column(n).expect("column").clone();
            let (node, ts, seq, state) = (col("node"), col("ts"), col("seq"), col("state"));
            for i in 0..df.height() {
                out.push((
                    node.str()
                        .expect("str")
                        .get(i)
                        .unwrap_or_default()
                        .to_string(),
                    ts.i64().expect("i64").get(i).unwrap_or_default(),
                    seq.u64().expect("u64").get(i).unwrap_or_default(),
                    state
                        .str()
                        .expect("str")
                        .get(i)
                        .unwrap_or_default()
                        .to_string(),
                ));
            }
        }
        out.sort();
        out
    }

    /// The last state of each minute, a day's first rows at its midnight,
    /// nothing of an open minute until it closes, and a closed day merged
    /// once with nothing twice.
    #[test]
    fn last_of_each_minute_and_each_day_starts_whole() {
        let dir = tempfile::tempdir().expect("dir");
        let nine = 1_665_795_600; // 2022-10-15 09:00 local
        let mut log = StateLog::default();
        let b = |s: &str| Bytes::from(s.to_string());
        log.record("beilun", nine + 5, 1, b("a"));
        log.record("beilun", nine + 50, 2, b("b"));
        log.record("beilun/daqi", nine + 10, 7, b("d"));
        log.record("beilun", nine + 61, 3, b("c"));
        // 09:01 is still open: only 09:00's rows go.
        assert!(log.waiting(Some(nine + 65)));
        assert_eq!(log.flush(dir.path(), Some(nine + 65)).expect("flush"), 2);
        assert!(!log.waiting(Some(nine + 65)));
        assert_eq!(
            rows(dir.path(), "2022-10-15"),
            [
                ("beilun".into(), nine + 50, 2, "b".into()),
                ("beilun/daqi".into(), nine + 10, 7, "d".into()),
            ]
        );
        // The next day: its first state brings every node's newest at
        // midnight.
        let midnight16 = nine + 15 * 3600;
        log.record("beilun", midnight16 + 120, 4, b("e"));
        assert_eq!(
            log.flush(dir.path(), Some(midnight16 + 300))
                .expect("flush"),
            4
        );
        assert_eq!(
            rows(dir.path(), "2022-10-16"),
            [
                ("beilun".into(), midnight16, 3, "c".into()),
                ("beilun".into(), midnight16 + 120, 4, "e".into()),
                ("beilun/daqi".into(), midnight16, 7, "d".into()),
            ]
        );
        assert_eq!(rows(dir.path(), "2022-10-15").len(), 3);
        // The 15th merges once; a leftover of a merge cut short counts once.
        let d15 = day_dir(
            dir.path(),
            NaiveDate::from_ymd_opt(2022, 10, 15).expect("date"),
        );
        let first = parts(&d15)[0].1.clone();
        let d16 = NaiveDate::from_ymd_opt(2022, 10, 16).expect("date");
        assert_eq!(compact(dir.path(), d16).expect("compact"), 1);
        assert_eq!(parts(&d15).len(), 1);
        assert_eq!(compact(dir.path(), d16).expect("again"), 0);
        fs::copy(d15.join(MERGED), &first).expect("a leftover");
        assert_eq!(compact(dir.path(), d16).expect("compact"), 1);
        assert_eq!(
            rows(dir.path(), "2022-10-15"),
            [
                ("beilun".into(), nine + 50, 2, "b".into()),
                ("beilun".into(), nine + 61, 3, "c".into()),
                ("beilun/daqi".into(), nine + 10, 7, "d".into()),
            ]
        );
        assert_eq!(super::super::retain(dir.path(), d16).expect("retain"), 1);
        assert!(!d15.exists());
    }
}
