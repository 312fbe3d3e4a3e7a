//! Gridwatch's shared vocabulary: the wire format (v1) of field events, the
//! registry of the Beilun grid, the state API's shape and the WebSocket
//! messages. Serde only, no I/O: it builds for `wasm32-unknown-unknown` so the
//! frontend shares these types with the services.
//!
//! Modules:
//! - [`auth`]: roles, scopes down the tree, who is signed in.
//! - [`deadline`]: when incidents and supervision orders are due.
//! - [`ids`]: node ids, levels and zone classes.
//! - [`event`]: the v1 event envelope and its kind-specific bodies, parsed once
//!   at the edge into typed values.
//! - [`limits`]: the range of every number and the length of every text an
//!   event carries.
//! - [`registry`]: the reference data (streets → communities → grids →
//!   micro-grids) and its flattened, indexed form.
//! - [`state`]: the aggregate state of one node, as the state API returns it.
//! - [`ws`]: WebSocket messages between backend and clients.
//! - [`api`]: the REST bodies of the hierarchy and the registry records.
//! - [`merge_patch`]: RFC 7386 JSON Merge Patch, to diff and apply states.
//! - [`time`]: local (Asia/Shanghai, UTC+8) calendar helpers.
//! - [`fmt`]: numbers as the screens show them.
//! - [`kv`]: the state bucket and its keys (`node.<id>`, `meta.ingest`).
//! - [`stats`]: ingest's statistics record (`meta.ingest`).
//! - [`tables`]: the history tables' columns (Parquet and SQL).

pub mod api;
pub mod auth;
pub mod deadline;
pub mod event;
pub mod fmt;
pub mod ids;
pub mod kv;
pub mod limits;
pub mod merge_patch;
pub mod registry;
pub mod state;
pub mod stats;
pub mod tables;
pub mod time;
pub mod ws;

pub use event::{Event, EventBody, ParseError};
pub use ids::{Level, NodeId, Zone};
pub use registry::Registry;
pub use state::NodeState;
