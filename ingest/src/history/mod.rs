//! History as Parquet, one directory per table, partitioned by local date:
//! `<data-dir>/history/<table>/date=YYYY-MM-DD/part-<from_seq>-<to_seq>.parquet`.
//!
//! - `minutes`: per micro-grid per minute, the counts of its events and
//!   the zone it was in at that minute (`node, minute, zone, …counts`);
//! - `incidents`: every incident step applied (`ts, node, incident_id,
//!   action, level, category, label, owner, due`);
//! - `orders`: every supervision-order step (`ts, node, flag_id, number,
//!   kind, severity, action, due`);
//! - `zones`: every designation (`ts, node, zone, reason, event_id`);
//! - `states`: the node states as published, the last of each minute
//!   (see [`states`]: not tied to the stream's sequence, so kept apart).
//!
//! Times are Unix seconds (`minute`: Unix minutes). No user names or
//! notes: analysts read these tables.
//!
//! Each part holds the rows of the events in its sequence range, so a
//! late event adds a row rather than rewriting one; queries sum `minutes`
//! by (node, minute, zone). Parts are written before the checkpoint that
//! clears them from the pending state, and parts beyond the checkpoint are
//! removed at start, so a crash between the two never counts a row twice.
//!
//! **Compaction**: once a local day is closed (no event of it is accepted
//! any more), its parts are merged into one (`part-<first>-<last>`),
//! written and renamed into place before the small ones are removed; a
//! crash in between leaves parts the merged one covers, and those are
//! removed at start too. **Retention**: days older than `history_days`
//! are removed.

mod compact;
mod rows;
pub mod states;
mod write;

use chrono::DateTime;
use gridwatch_model::Registry;
use gridwatch_model::time::local_date;
use polars::prelude::*;
use std::fs;
use std::path::{Path, PathBuf};

pub use compact::{compact, retain};
pub use rows::{EventRows, IncidentRow, OrderRow, ZoneRow};
pub use states::StateLog;

use crate::aggregate::COUNT_COLS;
use crate::error::IngestError;
use crate::state::{LiveState, Topology};

/// The tables, each a directory under `history/`.
pub const TABLES: [&str; 4] = ["minutes", "incidents", "orders", "zones"];

/// The history directory under a data dir.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("history")
}

/// A table's directory.
pub fn table_dir(data_dir: &Path, table: &str) -> PathBuf {
    dir(data_dir).join(table)
}

fn io_err(p: &Path, e: std::io::Error) -> IngestError {
    IngestError::Io {
        path: p.display().to_string(),
        source: e,
    }
}

/// The sequence range of a part's file name.
fn range_of(name: &str) -> Option<(u64, u64)> {
    let stem = name.strip_suffix(".parquet")?.strip_prefix("part-")?;
    let (a, b) = stem.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Every `date=` directory of every table: (table, date, path).
fn day_dirs(data_dir: &Path) -> Vec<(&'static str, String, PathBuf)> {
    day_dirs_of(data_dir, &TABLES)
}

/// Every `date=` directory of `tables`: (table, date, path).
fn day_dirs_of(data_dir: &Path, tables: &[&'static str]) -> Vec<(&'static str, String, PathBuf)> {
    let mut out = Vec::new();
    for &table in tables {
        let Ok(days) = fs::read_dir(table_dir(data_dir, table)) else {
            continue;
        };
        for day in days.flatten() {
            let name = day.file_name().to_string_lossy().to_string();
            if let Some(date) = name.strip_prefix("date=") {
                out.push((table, date.to_string(), day.path()));
            }
        }
    }
    out.sort();
    out
}

/// The parts of one day directory: (range, path).
fn parts(day: &Path) -> Vec<((u64, u64), PathBuf)> {
    let Ok(entries) = fs::read_dir(day) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            range_of(&name).map(|r| (r, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Removes parts that cover sequences after `last_seq` (written before a
/// crash, never checkpointed), parts a merged part covers (a compaction
/// cut short), and any `.tmp` left by a crash mid-write.
pub fn remove_uncommitted(data_dir: &Path, last_seq: u64) -> Result<usize, IngestError> {
    let mut removed = 0;
    for (_, _, day) in day_dirs(data_dir) {
        let Ok(entries) = fs::read_dir(&day) else {
            continue;
        };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                fs::remove_file(e.path()).map_err(|err| io_err(&e.path(), err))?;
                removed += 1;
            }
        }
        let ps = parts(&day);
        for ((from, to), path) in &ps {
            let covered = ps
                .iter()
                .any(|((f, t), p)| p != path && f <= from && to <= t && (f, t) != (from, to));
            if *to > last_seq || covered {
                fs::remove_file(path).map_err(|e| io_err(path, e))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// The local date of Unix second `ts`.
fn day_of(ts: i64) -> String {
    DateTime::from_timestamp(ts, 0)
        .map(|t| local_date(t).to_string())
        .unwrap_or_else(|| "invalid".into())
}

/// Puts `df` in place of the parts `old` of day directory `day`: written
/// as `name` (atomically) before any of them is removed.
fn replace_parts(
    day: &Path,
    name: &str,
    df: &mut DataFrame,
    old: &[PathBuf],
) -> Result<(), IngestError> {
    let new = write_part(day, name, df)?;
    for p in old.iter().filter(|p| **p != new) {
        fs::remove_file(p).map_err(|e| io_err(p, e))?;
    }
    fs::File::open(day)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(day, e))
}

/// Writes `df` as `<dir>/<name>` atomically (temp file, fsync, rename,
/// fsync of the directory).
fn write_part(d: &Path, name: &str, df: &mut DataFrame) -> Result<PathBuf, IngestError> {
    fs::create_dir_all(d).map_err(|e| io_err(d, e))?;
    let tmp = d.join(format!("{name}.tmp"));
    let file = fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    let done = ParquetWriter::new(&file)
        .finish(df)
        .map_err(IngestError::from)
        .and_then(|_| file.sync_all().map_err(|e| io_err(&tmp, e)));
    if let Err(e) = done {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let path = d.join(name);
    fs::rename(&tmp, &path).map_err(|e| io_err(&tmp, e))?;
    // The rename is durable only once the directory is.
    fs::File::open(d)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(d, e))?;
    Ok(path)
}

/// Writes the pending history (if any) as parts covering
/// `pending_from_seq..=to_seq` and clears it. Returns the rows written.
pub fn flush(
    data_dir: &Path,
    reg: &Registry,
    topo: &Topology,
    live: &mut LiveState,
    to_seq: u64,
) -> Result<usize, IngestError> {
    if live.pending_history.is_empty() && live.pending_events.is_empty() {
        live.pending_from_seq = to_seq + 1;
        return Ok(0);
    }
    // A part per table and day; if one fails, the ones written before it
    // go too, so the next try (with more pending) does not write their
    // rows twice.
    let mut written: Vec<PathBuf> = Vec::new();
    let result = write::write_all(data_dir, reg, topo, live, to_seq, &mut written);
    if result.is_err() {
        for p in &written {
            let _ = fs::remove_file(p);
        }
        return result;
    }
    live.pending_history.clear();
    live.pending_events = EventRows::default();
    live.pending_from_seq = to_seq + 1;
    result
}

/// Every row of `table` on local date `day`, its parts concatenated.
pub fn read_table(data_dir: &Path, table: &str, day: &str) -> Result<DataFrame, IngestError> {
    let d = table_dir(data_dir, table).join(format!("date={day}"));
    let mut frames = Vec::new();
    for (_, path) in parts(&d) {
        let f = fs::File::open(&path).map_err(|e| io_err(&path, e))?;
        frames.push(ParquetReader::new(f).finish()?.lazy());
    }
    if frames.is_empty() {
        return Ok(DataFrame::empty());
    }
    Ok(concat(frames, UnionArgs::default())?.collect()?)
}

/// The `minutes` of one local date summed by (node, minute, zone).
pub fn read_day(data_dir: &Path, day: &str) -> Result<DataFrame, IngestError> {
    let df = read_table(data_dir, "minutes", day)?;
    if df.height() == 0 {
        return Ok(df);
    }
    Ok(sum_minutes(df.lazy())
        .sort(["node", "minute", "zone"], SortMultipleOptions::default())
        .collect()?)
}

fn sum_minutes(df: LazyFrame) -> LazyFrame {
    df.group_by([col("node"), col("minute"), col("zone")])
        .agg(COUNT_COLS.map(|c| col(c).sum()))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::aggregate::fold_batch;
    use crate::state::{Bucket, Row};
    use chrono::NaiveDate;
    use gridwatch_model::Zone;
    use gridwatch_model::tables::ColKind;

    fn samples(df: &DataFrame) -> Option<u64> {
        df.column("samples").ok()?.u64().ok()?.sum()
    }

    /// `df`'s columns are `cols` (the model's list for its table), in order.
    pub(crate) fn assert_columns(df: &DataFrame, cols: &[(&str, ColKind)]) {
        let want: Vec<(String, DataType)> = cols
            .iter()
            .map(|(n, k)| {
                let t = match k {
                    ColKind::Str => DataType::String,
                    ColKind::I64 => DataType::Int64,
                    ColKind::U32 => DataType::UInt32,
                    ColKind::U64 => DataType::UInt64,
                };
                (n.to_string(), t)
            })
            .collect();
        let got: Vec<(String, DataType)> = df
            .schema()
            .iter()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn parts_sum_to_the_buckets_and_uncommitted_parts_are_removed() {
        let reg = gridwatch_runtime::registry::load(None).expect("the committed registry");
        let topo = Topology::new(&reg);
        let mut live = LiveState::new(reg.microgrids.len());
        let dir = tempfile::tempdir().expect("temp dir");
        // 2022-10-15 09:00 local = 01:00 UTC.
        let minute = 1_665_795_600 / 60;
        let row = |mg, samples| Row {
            mg,
            minute,
            counts: Bucket {
                samples,
                reports: 1,
                ..Default::default()
            },
        };
        fold_batch(&mut live, &[row(0, 5), row(0, 7), row(1, 1)]).expect("fold");
        live.pending_from_seq = 1;
        flush(dir.path(), &reg, &topo, &mut live, 3).expect("flush");
        fold_batch(&mut live, &[row(0, 10)]).expect("fold");
        flush(dir.path(), &reg, &topo, &mut live, 4).expect("flush");
        let df = read_day(dir.path(), "2022-10-15").expect("read");
        assert_columns(&df, &gridwatch_model::tables::minutes());
        assert_eq!(df.height(), 2);
        assert_eq!(samples(&df), Some(23));
        // A part beyond the checkpointed sequence goes away, and so does a
        // part a crash left half-written.
        let torn = table_dir(dir.path(), "minutes")
            .join("date=2022-10-15/part-000000000004-000000000005.parquet.tmp");
        fs::write(&torn, b"half a part").expect("torn part");
        assert_eq!(remove_uncommitted(dir.path(), 3).expect("remove"), 2);
        assert!(!torn.exists());
        let df = read_day(dir.path(), "2022-10-15").expect("read");
        assert_eq!(samples(&df), Some(13));
    }

    #[test]
    fn a_row_carries_the_zone_of_its_minute_and_closed_days_compact_once() {
        let reg = gridwatch_runtime::registry::load(None).expect("the committed registry");
        let topo = Topology::new(&reg);
        let mut live = LiveState::new(reg.microgrids.len());
        let dir = tempfile::tempdir().expect("temp dir");
        let node = topo.mg_node[0];
        let registered = reg.node(node).mg.as_ref().map(|m| m.zone).expect("mg");
        let nine = 1_665_795_600; // 2022-10-15 09:00 local
        let sealed = crate::state::Designation {
            ts: nine + 1800,
            zone: Zone::Sealed,
            event_id: "z1".into(),
            reason: "test".into(),
        };
        live.zone_log.insert(node, vec![sealed]);
        assert_eq!(live.zone_at(&reg, node, nine), registered);
        assert_eq!(live.zone_at(&reg, node, nine + 1800), Zone::Sealed);
        let row = |minute: i64| Row {
            mg: 0,
            minute,
            counts: Bucket {
                samples: 2,
                ..Default::default()
            },
        };
        // 09:00 and 09:45 on the 15th; 09:00 on the 16th.
        live.pending_from_seq = 1;
        fold_batch(&mut live, &[row(nine / 60), row((nine + 2700) / 60)]).expect("fold");
        flush(dir.path(), &reg, &topo, &mut live, 5).expect("flush");
        fold_batch(&mut live, &[row(nine / 60)]).expect("fold");
        flush(dir.path(), &reg, &topo, &mut live, 9).expect("flush");
        fold_batch(&mut live, &[row((nine + 86_400) / 60)]).expect("fold");
        flush(dir.path(), &reg, &topo, &mut live, 12).expect("flush");
        let df = read_day(dir.path(), "2022-10-15").expect("read");
        let zones: Vec<Option<&str>> = df
            .column("zone")
            .and_then(|c| c.str())
            .expect("zone")
            .iter()
            .collect();
        assert_eq!(zones, [Some(registered.as_str()), Some("sealed")]);
        let day15 = table_dir(dir.path(), "minutes").join("date=2022-10-15");
        assert_eq!(parts(&day15).len(), 2);
        // The 16th is not closed yet: only the 15th merges.
        let d16 = NaiveDate::from_ymd_opt(2022, 10, 16).expect("date");
        assert_eq!(compact(dir.path(), d16).expect("compact"), 1);
        let merged = parts(&day15);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].0, (1, 9));
        assert_eq!(
            samples(&read_day(dir.path(), "2022-10-15").expect("read")),
            Some(6)
        );
        assert_eq!(compact(dir.path(), d16).expect("again"), 0);
        // A compaction cut short (merged part in place, small ones not yet
        // removed) counts nothing twice after a start.
        fs::copy(
            &merged[0].1,
            day15.join("part-000000000001-000000000005.parquet"),
        )
        .expect("a leftover");
        assert_eq!(remove_uncommitted(dir.path(), 12).expect("remove"), 1);
        assert_eq!(
            samples(&read_day(dir.path(), "2022-10-15").expect("read")),
            Some(6)
        );
        // Retention: the 15th goes, the 16th stays.
        assert_eq!(retain(dir.path(), d16).expect("retain"), 1);
        assert!(!day15.exists());
        assert_eq!(
            samples(&read_day(dir.path(), "2022-10-16").expect("read")),
            Some(2)
        );
    }
}
