//! Bucket folding: the counting rows of one micro-batch, grouped by
//! (micro-grid, minute) with polars and summed, then added to the
//! per-minute buckets and the pending Parquet history.

use polars::prelude::*;

use crate::state::{Bucket, LiveState, Row};

/// Names of the count columns of a [`Bucket`], in [`bucket_values`] order.
pub const COUNT_COLS: [&str; 13] = gridwatch_model::api::HISTORY_COUNTS;

/// A bucket's counts in [`COUNT_COLS`] order.
pub fn bucket_values(b: &Bucket) -> [u64; 13] {
    [
        b.patrols,
        b.persons,
        b.findings.gatherings_dispersed,
        b.findings.people_persuaded,
        b.findings.venues_closed,
        b.findings.vendors_cleared,
        b.findings.violations,
        b.samples,
        b.reports,
        b.raised,
        b.rectified,
        b.reported,
        b.resolved,
    ]
}

fn bucket_from(v: &[u64]) -> Bucket {
    let c = |i: usize| v[i];
    let mut b = Bucket {
        patrols: c(0),
        persons: c(1),
        samples: c(7),
        reports: c(8),
        raised: c(9),
        rectified: c(10),
        reported: c(11),
        resolved: c(12),
        ..Default::default()
    };
    b.findings.gatherings_dispersed = c(2);
    b.findings.people_persuaded = c(3);
    b.findings.venues_closed = c(4);
    b.findings.vendors_cleared = c(5);
    b.findings.violations = c(6);
    b
}

/// A frame of (mg, minute, counts…) rows.
pub fn rows_frame(rows: &[Row]) -> PolarsResult<DataFrame> {
    let mut cols: Vec<Column> = Vec::with_capacity(2 + COUNT_COLS.len());
    cols.push(Column::new(
        "mg".into(),
        rows.iter().map(|r| r.mg).collect::<Vec<u32>>(),
    ));
    cols.push(Column::new(
        "minute".into(),
        rows.iter().map(|r| r.minute).collect::<Vec<i64>>(),
    ));
    let values: Vec<[u64; 13]> = rows.iter().map(|r| bucket_values(&r.counts)).collect();
    for (i, name) in COUNT_COLS.iter().enumerate() {
        cols.push(Column::new(
            (*name).into(),
            values.iter().map(|v| v[i]).collect::<Vec<u64>>(),
        ));
    }
    DataFrame::new(rows.len(), cols)
}

/// Groups a batch's rows by (micro-grid, minute) and sums them.
pub fn group_rows(rows: &[Row]) -> PolarsResult<Vec<Row>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let df = rows_frame(rows)?
        .lazy()
        .group_by([col("mg"), col("minute")])
        .agg(COUNT_COLS.map(|c| col(c).sum()))
        .collect()?;
    let mg = df.column("mg")?.u32()?;
    let minute = df.column("minute")?.i64()?;
    let counts: Vec<&UInt64Chunked> = COUNT_COLS
        .iter()
        .map(|c| df.column(c).and_then(|s| s.u64()))
        .collect::<PolarsResult<_>>()?;
    let mut out = Vec::with_capacity(df.height());
    let mut v = [0u64; 13];
    for i in 0..df.height() {
        for (j, c) in counts.iter().enumerate() {
            v[j] = c.get(i).unwrap_or(0);
        }
        if let (Some(mg), Some(minute)) = (mg.get(i), minute.get(i)) {
            out.push(Row {
                mg,
                minute,
                counts: bucket_from(&v),
            });
        }
    }
    Ok(out)
}

/// Aggregates a batch's rows and adds them to the live state's buckets and
/// pending history. Returns how many (micro-grid, minute) groups changed.
pub fn fold_batch(live: &mut LiveState, rows: &[Row]) -> PolarsResult<usize> {
    let grouped = group_rows(rows)?;
    for r in &grouped {
        live.mgs[r.mg as usize]
            .buckets
            .entry(r.minute)
            .or_default()
            .add(&r.counts);
        live.pending_history
            .entry((r.mg, r.minute))
            .or_default()
            .add(&r.counts);
    }
    Ok(grouped.len())
}
