//! Writing one part of every table and day the pending rows touch.

use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{day_of, table_dir, write_part};
use crate::aggregate::{COUNT_COLS, bucket_values};
use crate::error::IngestError;
use crate::state::{Bucket, LiveState, Topology};
use gridwatch_model::Registry;

pub(super) fn write_all(
    data_dir: &Path,
    reg: &Registry,
    topo: &Topology,
    live: &LiveState,
    to_seq: u64,
    written: &mut Vec<PathBuf>,
) -> Result<usize, IngestError> {
    let name = format!("part-{:012}-{:012}.parquet", live.pending_from_seq, to_seq);
    let id = |i: u32| reg.node(i).id.as_str();
    let mg_id = |mg: u32| id(topo.mg_node[mg as usize]);
    let mut rows = 0;
    let mut put = |table: &str, day: &str, mut df: DataFrame| -> Result<(), IngestError> {
        rows += df.height();
        let d = table_dir(data_dir, table).join(format!("date={day}"));
        written.push(write_part(&d, &name, &mut df)?);
        Ok(())
    };

    let mut minutes: BTreeMap<String, Vec<(u32, i64, Bucket)>> = BTreeMap::new();
    for (&(mg, minute), b) in &live.pending_history {
        minutes
            .entry(day_of(minute * 60))
            .or_default()
            .push((mg, minute, *b));
    }
    for (day, entries) in minutes {
        // The zone the micro-grid was in at the minute's start.
        let zone: Vec<&str> = entries
            .iter()
            .map(|(mg, m, _)| {
                live.zone_at(reg, topo.mg_node[*mg as usize], m * 60)
                    .as_str()
            })
            .collect();
        let mut cols = vec![
            Column::new(
                "node".into(),
                entries
                    .iter()
                    .map(|(mg, _, _)| mg_id(*mg))
                    .collect::<Vec<&str>>(),
            ),
            Column::new(
                "minute".into(),
                entries.iter().map(|(_, m, _)| *m).collect::<Vec<i64>>(),
            ),
            Column::new("zone".into(), zone),
        ];
        let values: Vec<[u64; 13]> = entries.iter().map(|(_, _, b)| bucket_values(b)).collect();
        for (i, c) in COUNT_COLS.iter().enumerate() {
            cols.push(Column::new(
                (*c).into(),
                values.iter().map(|v| v[i]).collect::<Vec<u64>>(),
            ));
        }
        put("minutes", &day, DataFrame::new(entries.len(), cols)?)?;
    }

    let ev = &live.pending_events;
    for (day, rs) in by_day(&ev.incidents, |r| r.ts) {
        let df = DataFrame::new(
            rs.len(),
            vec![
                col("ts", &rs, |r| r.ts),
                col("node", &rs, |r| mg_id(r.mg)),
                col("incident_id", &rs, |r| r.incident_id.as_str()),
                col("action", &rs, |r| r.action.as_str()),
                col("level", &rs, |r| u32::from(r.level)),
                col("category", &rs, |r| r.category.as_str()),
                col("label", &rs, |r| r.label.as_deref()),
                col("owner", &rs, |r| id(r.owner)),
                col("due", &rs, |r| r.due),
            ],
        )?;
        put("incidents", &day, df)?;
    }
    for (day, rs) in by_day(&ev.orders, |r| r.ts) {
        let df = DataFrame::new(
            rs.len(),
            vec![
                col("ts", &rs, |r| r.ts),
                col("node", &rs, |r| mg_id(r.mg)),
                col("flag_id", &rs, |r| r.flag_id.as_str()),
                col("number", &rs, |r| r.number.as_str()),
                col("kind", &rs, |r| r.kind.as_str()),
                col("severity", &rs, |r| u32::from(r.severity)),
                col("action", &rs, |r| r.action.as_str()),
                col("due", &rs, |r| r.due),
            ],
        )?;
        put("orders", &day, df)?;
    }
    for (day, rs) in by_day(&ev.zones, |r| r.ts) {
        let df = DataFrame::new(
            rs.len(),
            vec![
                col("ts", &rs, |r| r.ts),
                col("node", &rs, |r| id(r.node)),
                col("zone", &rs, |r| r.zone.as_str()),
                col("reason", &rs, |r| r.reason.as_str()),
                col("event_id", &rs, |r| r.event_id.as_str()),
            ],
        )?;
        put("zones", &day, df)?;
    }
    Ok(rows)
}

/// `rows` by the local date of their time.
fn by_day<R>(rows: &[R], ts: impl Fn(&R) -> i64) -> BTreeMap<String, Vec<&R>> {
    let mut out: BTreeMap<String, Vec<&R>> = BTreeMap::new();
    for r in rows {
        out.entry(day_of(ts(r))).or_default().push(r);
    }
    out
}

/// The column `name` of `f` of each row.
fn col<'a, R, T>(name: &str, rs: &[&'a R], f: impl Fn(&'a R) -> T) -> Column
where
    Series: NamedFrom<Vec<T>, [T]>,
{
    Column::new(name.into(), rs.iter().map(|r| f(r)).collect::<Vec<T>>())
}
