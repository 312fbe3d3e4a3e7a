//! Merging a closed day's parts into one, and removing days past the
//! retention.

use chrono::NaiveDate;
use polars::prelude::*;
use std::fs;
use std::path::Path;

use super::{day_dirs, io_err, parts, read_table, sum_minutes, write_part};
use crate::error::IngestError;

/// Merges the parts of every day before `before` (local dates, closed:
/// nothing of them is accepted any more) into one part each. Returns the
/// days merged.
pub fn compact(data_dir: &Path, before: NaiveDate) -> Result<usize, IngestError> {
    let mut merged = 0;
    for (table, date, day) in day_dirs(data_dir) {
        let closed = NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_ok_and(|d| d < before);
        let ps = parts(&day);
        if !closed || ps.len() < 2 {
            continue;
        }
        let from = ps.iter().map(|((f, _), _)| *f).min().unwrap_or(0);
        let to = ps.iter().map(|((_, t), _)| *t).max().unwrap_or(0);
        let all = read_table(data_dir, table, &date)?.lazy();
        let mut df = if table == "minutes" {
            sum_minutes(all)
                .sort(["node", "minute", "zone"], SortMultipleOptions::default())
                .collect()?
        } else {
            all.sort(
                ["ts"],
                SortMultipleOptions::default().with_maintain_order(true),
            )
            .collect()?
        };
        write_part(&day, &format!("part-{from:012}-{to:012}.parquet"), &mut df)?;
        for (_, p) in &ps {
            fs::remove_file(p).map_err(|e| io_err(p, e))?;
        }
        fs::File::open(&day)
            .and_then(|f| f.sync_all())
            .map_err(|e| io_err(&day, e))?;
        merged += 1;
    }
    Ok(merged)
}

/// Removes every day before `keep_from`. Returns the days removed.
pub fn retain(data_dir: &Path, keep_from: NaiveDate) -> Result<usize, IngestError> {
    let mut removed = 0;
    for (_, date, day) in day_dirs(data_dir) {
        if NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_ok_and(|d| d < keep_from) {
            fs::remove_dir_all(&day).map_err(|e| io_err(&day, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}
