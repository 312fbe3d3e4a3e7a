//! Per-micro-grid per-minute history as Parquet, partitioned by local date:
//! `<data-dir>/history/date=YYYY-MM-DD/part-<from_seq>-<to_seq>.parquet`.
//!
//! Each part holds the deltas of the events in its sequence range, so a late
//! event adds a row rather than rewriting one; queries sum by (node,
//! minute). Parts are written before the checkpoint that clears them from
//! the pending state, and parts beyond the checkpoint are removed at start,
//! so a crash between the two never counts a row twice.

use chrono::DateTime;
use gridwatch_model::Registry;
use gridwatch_model::time::local_date;
use polars::prelude::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::aggregate::{COUNT_COLS, bucket_values};
use crate::error::IngestError;
use crate::state::{Bucket, LiveState, Topology};

/// The history directory under a data dir.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join("history")
}

fn io_err(p: &Path, e: std::io::Error) -> IngestError {
    IngestError::Io {
        path: p.display().to_string(),
        source: e,
    }
}

/// Removes parts that cover sequences after `last_seq` (written before a
/// crash, never checkpointed), and any `.tmp` left by a crash mid-write.
pub fn remove_uncommitted(data_dir: &Path, last_seq: u64) -> Result<usize, IngestError> {
    let root = dir(data_dir);
    let Ok(days) = fs::read_dir(&root) else {
        return Ok(0);
    };
    let mut removed = 0;
    for day in days.flatten() {
        let Ok(parts) = fs::read_dir(day.path()) else {
            continue;
        };
        for part in parts.flatten() {
            let name = part.file_name().to_string_lossy().to_string();
            let to_seq = name
                .strip_suffix(".parquet")
                .and_then(|s| s.rsplit('-').next())
                .and_then(|s| s.parse::<u64>().ok());
            if to_seq.is_some_and(|t| t > last_seq) || name.ends_with(".tmp") {
                fs::remove_file(part.path()).map_err(|e| io_err(&part.path(), e))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Writes the pending history (if any) as parts covering
/// `pending_from_seq..=to_seq` and clears it.
pub fn flush(
    data_dir: &Path,
    reg: &Registry,
    topo: &Topology,
    live: &mut LiveState,
    to_seq: u64,
) -> Result<usize, IngestError> {
    if live.pending_history.is_empty() {
        live.pending_from_seq = to_seq + 1;
        return Ok(0);
    }
    let mut by_day: BTreeMap<String, Vec<(u32, i64, Bucket)>> = BTreeMap::new();
    for (&(mg, minute), b) in &live.pending_history {
        let day = DateTime::from_timestamp(minute * 60, 0)
            .map(|t| local_date(t).to_string())
            .unwrap_or_else(|| "invalid".into());
        by_day.entry(day).or_default().push((mg, minute, *b));
    }
    // A part per day; if one fails, the ones written before it go too, so
    // the next try (with more pending) does not write their rows twice.
    let mut written: Vec<std::path::PathBuf> = Vec::new();
    let result = write_days(data_dir, reg, topo, live, to_seq, by_day, &mut written);
    if result.is_err() {
        for p in &written {
            let _ = fs::remove_file(p);
        }
        return result;
    }
    live.pending_history.clear();
    live.pending_from_seq = to_seq + 1;
    result
}

type DayRows = BTreeMap<String, Vec<(u32, i64, Bucket)>>;

fn write_days(
    data_dir: &Path,
    reg: &Registry,
    topo: &Topology,
    live: &LiveState,
    to_seq: u64,
    by_day: DayRows,
    written: &mut Vec<std::path::PathBuf>,
) -> Result<usize, IngestError> {
    let mut rows = 0;
    for (day, entries) in by_day {
        let d = dir(data_dir).join(format!("date={day}"));
        fs::create_dir_all(&d).map_err(|e| io_err(&d, e))?;
        let mut cols: Vec<Column> = vec![
            Column::new(
                "node".into(),
                entries
                    .iter()
                    .map(|(mg, _, _)| reg.node(topo.mg_node[*mg as usize]).id.as_str())
                    .collect::<Vec<&str>>(),
            ),
            Column::new(
                "minute".into(),
                entries.iter().map(|(_, m, _)| *m).collect::<Vec<i64>>(),
            ),
        ];
        let values: Vec<[u64; 13]> = entries.iter().map(|(_, _, b)| bucket_values(b)).collect();
        for (i, name) in COUNT_COLS.iter().enumerate() {
            cols.push(Column::new(
                (*name).into(),
                values.iter().map(|v| v[i]).collect::<Vec<u64>>(),
            ));
        }
        let mut df = DataFrame::new(entries.len(), cols)?;
        let name = format!("part-{:012}-{:012}.parquet", live.pending_from_seq, to_seq);
        let tmp = d.join(format!("{name}.tmp"));
        let file = fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        let done = ParquetWriter::new(&file)
            .finish(&mut df)
            .map_err(IngestError::from)
            .and_then(|_| file.sync_all().map_err(|e| io_err(&tmp, e)));
        if let Err(e) = done {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        fs::rename(&tmp, d.join(&name)).map_err(|e| io_err(&tmp, e))?;
        written.push(d.join(&name));
        // The rename is durable only once the directory is.
        fs::File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_err(&d, e))?;
        rows += entries.len();
    }
    Ok(rows)
}

/// Reads every part of one local date and sums by (node, minute).
pub fn read_day(data_dir: &Path, day: &str) -> Result<DataFrame, IngestError> {
    let d = dir(data_dir).join(format!("date={day}"));
    let mut frames = Vec::new();
    if let Ok(parts) = fs::read_dir(&d) {
        for part in parts.flatten() {
            if part.path().extension().is_some_and(|e| e == "parquet") {
                let f = fs::File::open(part.path()).map_err(|e| io_err(&part.path(), e))?;
                frames.push(ParquetReader::new(f).finish()?.lazy());
            }
        }
    }
    if frames.is_empty() {
        return Ok(DataFrame::empty());
    }
    let df = concat(frames, UnionArgs::default())?
        .group_by([col("node"), col("minute")])
        .agg(COUNT_COLS.map(|c| col(c).sum()))
        .sort(["node", "minute"], SortMultipleOptions::default())
        .collect()?;
    Ok(df)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::fold_batch;
    use crate::state::Row;

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
        let samples = df
            .column("samples")
            .and_then(|c| c.u64().cloned())
            .expect("u64");
        assert_eq!(df.height(), 2);
        assert_eq!(samples.sum(), Some(23));
        // A part beyond the checkpointed sequence goes away, and so does a
        // part a crash left half-written.
        let torn = dir
            .path()
            .join("history/date=2022-10-15/part-000000000004-000000000005.parquet.tmp");
        fs::write(&torn, b"half a part").expect("torn part");
        assert_eq!(remove_uncommitted(dir.path(), 3).expect("remove"), 2);
        assert!(!torn.exists());
        let df = read_day(dir.path(), "2022-10-15").expect("read");
        let samples = df
            .column("samples")
            .and_then(|c| c.u64().cloned())
            .expect("u64");
        assert_eq!(samples.sum(), Some(13));
    }
}
