//! Aggregation with polars, one module per noun:
//!
//! - [`buckets`]: [`fold_batch`] — the counting rows of one micro-batch,
//!   grouped by (micro-grid, minute) and summed, then added to the
//!   per-minute buckets and the pending Parquet history.
//! - [`sums`]: [`Sums`](sums::Sums), the additive figures a micro-grid
//!   contributes to every node above it, one polars column per field.
//! - [`metrics`]: per-micro-grid metrics at the clock's "now" (windows,
//!   today, open flags and incidents, zone).
//! - [`status`]: the status rules, with reasons, for micro-grids and the
//!   nodes above them.
//! - [`rollup`]: [`RollupCache`] — polars group-bys to grid, community,
//!   street and district and per zone class at every level, kept current
//!   between full roll-ups by moving sums.
//! - [`node_state`]: [`compute_states`] — which nodes a recompute covers
//!   ([`Scope`]) and the [`NodeState`](gridwatch_model::NodeState) of each.

pub mod buckets;
#[cfg(test)]
pub(crate) mod fixture;
pub mod metrics;
pub mod node_state;
#[cfg(test)]
mod properties;
pub mod rollup;
pub mod status;
pub mod sums;

pub use buckets::{COUNT_COLS, bucket_values, fold_batch, group_rows, rows_frame};
pub use node_state::{Scope, compute_states};
pub use rollup::RollupCache;
