//! Writing one part of every table and day the pending rows touch.

use polars::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{IncidentRow, OrderRow, ZoneRow, day_of, table_dir, write_part};
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
    let mut by_day: BTreeMap<String, Vec<&IncidentRow>> = BTreeMap::new();
    for r in &ev.incidents {
        by_day.entry(day_of(r.ts)).or_default().push(r);
    }
    for (day, rs) in by_day {
        let df = DataFrame::new(
            rs.len(),
            vec![
                Column::new("ts".into(), rs.iter().map(|r| r.ts).collect::<Vec<_>>()),
                Column::new(
                    "node".into(),
                    rs.iter().map(|r| mg_id(r.mg)).collect::<Vec<_>>(),
                ),
                Column::new(
                    "incident_id".into(),
                    rs.iter()
                        .map(|r| r.incident_id.as_str())
                        .collect::<Vec<_>>(),
                ),
                Column::new(
                    "action".into(),
                    rs.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
                ),
                Column::new(
                    "level".into(),
                    rs.iter().map(|r| u32::from(r.level)).collect::<Vec<_>>(),
                ),
                Column::new(
                    "category".into(),
                    rs.iter().map(|r| r.category.as_str()).collect::<Vec<_>>(),
                ),
                Column::new(
                    "label".into(),
                    rs.iter().map(|r| r.label.as_deref()).collect::<Vec<_>>(),
                ),
                Column::new(
                    "owner".into(),
                    rs.iter().map(|r| id(r.owner)).collect::<Vec<_>>(),
                ),
                Column::new("due".into(), rs.iter().map(|r| r.due).collect::<Vec<_>>()),
            ],
        )?;
        put("incidents", &day, df)?;
    }
    let mut by_day: BTreeMap<String, Vec<&OrderRow>> = BTreeMap::new();
    for r in &ev.orders {
        by_day.entry(day_of(r.ts)).or_default().push(r);
    }
    for (day, rs) in by_day {
        let df = DataFrame::new(
            rs.len(),
            vec![
                Column::new("ts".into(), rs.iter().map(|r| r.ts).collect::<Vec<_>>()),
                Column::new(
                    "node".into(),
                    rs.iter().map(|r| mg_id(r.mg)).collect::<Vec<_>>(),
                ),
                Column::new(
                    "flag_id".into(),
                    rs.iter().map(|r| r.flag_id.as_str()).collect::<Vec<_>>(),
                ),
                Column::new(
                    "number".into(),
                    rs.iter().map(|r| r.number.as_str()).collect::<Vec<_>>(),
                ),
                Column::new(
                    "kind".into(),
                    rs.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
                ),
                Column::new(
                    "severity".into(),
                    rs.iter().map(|r| u32::from(r.severity)).collect::<Vec<_>>(),
                ),
                Column::new(
                    "action".into(),
                    rs.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
                ),
                Column::new("due".into(), rs.iter().map(|r| r.due).collect::<Vec<_>>()),
            ],
        )?;
        put("orders", &day, df)?;
    }
    let mut by_day: BTreeMap<String, Vec<&ZoneRow>> = BTreeMap::new();
    for r in &ev.zones {
        by_day.entry(day_of(r.ts)).or_default().push(r);
    }
    for (day, rs) in by_day {
        let df = DataFrame::new(
            rs.len(),
            vec![
                Column::new("ts".into(), rs.iter().map(|r| r.ts).collect::<Vec<_>>()),
                Column::new(
                    "node".into(),
                    rs.iter().map(|r| id(r.node)).collect::<Vec<_>>(),
                ),
                Column::new(
                    "zone".into(),
                    rs.iter().map(|r| r.zone.as_str()).collect::<Vec<_>>(),
                ),
                Column::new(
                    "reason".into(),
                    rs.iter().map(|r| r.reason.as_str()).collect::<Vec<_>>(),
                ),
                Column::new(
                    "event_id".into(),
                    rs.iter().map(|r| r.event_id.as_str()).collect::<Vec<_>>(),
                ),
            ],
        )?;
        put("zones", &day, df)?;
    }
    Ok(rows)
}
