//! The history tables' columns, as ingest writes them to Parquet and the
//! backend reads them (the SQL tables of the same names, and their empty
//! form before a part exists). One list per table, here, for both sides.

use crate::api::HISTORY_COUNTS;

/// A column's type in Parquet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColKind {
    Str,
    I64,
    U32,
    U64,
}

use ColKind::*;

/// `minutes` (SQL `history`): these, then [`HISTORY_COUNTS`] as `U64`.
pub const MINUTES_KEYS: [(&str, ColKind); 3] = [("node", Str), ("minute", I64), ("zone", Str)];

/// Zone designations.
pub const ZONES: [(&str, ColKind); 5] = [
    ("ts", I64),
    ("node", Str),
    ("zone", Str),
    ("reason", Str),
    ("event_id", Str),
];

/// Incident events, with the deadline they set.
pub const INCIDENTS: [(&str, ColKind); 9] = [
    ("ts", I64),
    ("node", Str),
    ("incident_id", Str),
    ("action", Str),
    ("level", U32),
    ("category", Str),
    ("label", Str),
    ("owner", Str),
    ("due", I64),
];

/// Supervision orders (video flags), with the deadline they set.
pub const ORDERS: [(&str, ColKind); 8] = [
    ("ts", I64),
    ("node", Str),
    ("flag_id", Str),
    ("number", Str),
    ("kind", Str),
    ("severity", U32),
    ("action", Str),
    ("due", I64),
];

/// Every column of `minutes`, in the order written.
pub fn minutes() -> Vec<(&'static str, ColKind)> {
    let mut cols = MINUTES_KEYS.to_vec();
    cols.extend(HISTORY_COUNTS.iter().map(|c| (*c, U64)));
    cols
}
