//! Merging a closed day's parts into one, and removing days past the
//! retention.

use chrono::NaiveDate;
use polars::prelude::*;
use std::fs;
use std::path::Path;

use super::{TABLES, day_dirs, day_dirs_of, io_err, parts, read_table, replace_parts, sum_minutes};
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
        let old: Vec<_> = ps.into_iter().map(|(_, p)| p).collect();
        let name = format!("part-{from:012}-{to:012}.parquet");
        replace_parts(&day, &name, &mut df, &old)?;
        merged += 1;
    }
    Ok(merged)
}

/// Removes every day before `keep_from`, of every table (`states` too).
/// Returns the day directories removed.
pub fn retain(data_dir: &Path, keep_from: NaiveDate) -> Result<usize, IngestError> {
    let mut removed = 0;
    let mut tables = TABLES.to_vec();
    tables.push(super::states::TABLE);
    for (_, date, day) in day_dirs_of(data_dir, &tables) {
        if NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_ok_and(|d| d < keep_from) {
            fs::remove_dir_all(&day).map_err(|e| io_err(&day, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}
