//! A node's state as the screens had it at a past minute, from ingest's
//! `states` table (see ingest's `history::states`): the node's newest row
//! before the minute's end, in the minute's local day — every day's first
//! rows carry every node's state at midnight, so one day is enough while
//! ingest ran; for a day it did not, earlier days are read, up to
//! [`LOOKBACK_DAYS`].

use polars::prelude::*;

use super::{History, local_day, scan_all};

/// How many days before the asked one a lookup reads at most.
pub const LOOKBACK_DAYS: u64 = 31;

impl History {
    /// The JSON of `node`'s newest state before Unix second `before`, or
    /// `None` when the history has none (blocking: on a worker).
    pub fn state_at(&self, node: &str, before: i64) -> PolarsResult<Option<String>> {
        let Some(mut day) = local_day((before - 1).div_euclid(60)) else {
            return Ok(None);
        };
        for _ in 0..=LOOKBACK_DAYS {
            let dir = self.dir.join("states").join(format!("date={day}"));
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| {
                            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                                n.starts_with("states-") && n.ends_with(".parquet")
                            })
                        })
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            if !files.is_empty() {
                let df = scan_all(&files)?
                    .filter(
                        col("node")
                            .eq(lit(node.to_string()))
                            .and(col("ts").lt(lit(before))),
                    )
                    .sort(["ts", "seq"], SortMultipleOptions::default())
                    .select([col("state")])
                    .tail(1)
                    .collect()?;
                // `get` on an empty column panics: ask for a row first.
                if df.height() > 0
                    && let Some(s) = df.column("state")?.str()?.get(0)
                {
                    return Ok(Some(s.to_string()));
                }
            }
            let Some(prev) = day.pred_opt() else { break };
            day = prev;
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn part(dir: &Path, day: &str, name: &str, rows: &[(&str, i64, u64, &str)]) {
        let d = dir.join("states").join(format!("date={day}"));
        std::fs::create_dir_all(&d).expect("dir");
        let mut df = DataFrame::new(
            rows.len(),
            vec![
                Column::new("node".into(), rows.iter().map(|r| r.0).collect::<Vec<_>>()),
                Column::new("ts".into(), rows.iter().map(|r| r.1).collect::<Vec<_>>()),
                Column::new("seq".into(), rows.iter().map(|r| r.2).collect::<Vec<_>>()),
                Column::new("state".into(), rows.iter().map(|r| r.3).collect::<Vec<_>>()),
            ],
        )
        .expect("frame");
        let f = std::fs::File::create(d.join(name)).expect("file");
        ParquetWriter::new(f).finish(&mut df).expect("write");
    }

    /// The newest row before the minute's end, across parts; the day's
    /// midnight row when nothing changed since; earlier days when a day
    /// has no rows; nothing before the history starts.
    #[test]
    fn the_newest_state_before_the_minute_ends() {
        let reg = gridwatch_runtime::registry::load(None).expect("registry");
        let dir = tempfile::tempdir().expect("dir");
        let nine = 1_665_795_600; // 2022-10-15 09:00 local
        let midnight = nine - 9 * 3600;
        part(
            dir.path(),
            "2022-10-15",
            "states-0000000000001-000000.parquet",
            &[
                ("beilun", midnight, 4, "m"),
                ("beilun", nine + 10, 5, "a"),
                ("beilun/daqi", nine + 20, 9, "d"),
            ],
        );
        part(
            dir.path(),
            "2022-10-15",
            "states-0000000000002-000001.parquet",
            &[("beilun", nine + 59, 6, "b"), ("beilun", nine + 60, 7, "c")],
        );
        let h = History::new(dir.path().to_path_buf(), &reg).expect("history");
        let at = |node: &str, t: i64| h.state_at(node, t).expect("lookup");
        assert_eq!(at("beilun", nine + 60).as_deref(), Some("b"));
        assert_eq!(at("beilun", nine + 120).as_deref(), Some("c"));
        assert_eq!(at("beilun", nine).as_deref(), Some("m"));
        assert_eq!(at("beilun/daqi", nine + 60).as_deref(), Some("d"));
        assert_eq!(at("beilun/xinqi", nine + 60), None);
        // Two days on, nothing written since: the 15th's newest.
        assert_eq!(at("beilun", nine + 2 * 86_400).as_deref(), Some("c"));
        assert_eq!(at("beilun", midnight), None);
    }
}
