//! Typed, layered configuration: defaults → `--config` file (TOML) →
//! `GRIDWATCH__…` environment variables → flags. Unknown keys are rejected
//! (loaded by `gridwatch_runtime::config::load`).

use serde::Deserialize;
use std::path::PathBuf;

/// Backend configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// NATS server URL.
    pub nats: String,
    /// Address to listen on.
    pub listen: String,
    /// Registry file; the committed Beilun registry when unset.
    pub registry: Option<PathBuf>,
    /// Directory of the built frontend (index.html, wasm, js).
    pub static_dir: PathBuf,
    /// Key-value bucket ingest publishes node states to.
    pub state_bucket: String,
    /// Seconds between heartbeats to WebSocket clients.
    pub heartbeat_s: u64,
    /// Deltas kept per node for clients that resume.
    pub resume_history: usize,
    /// Frames queued per WebSocket client before it gets coalesced updates.
    pub client_queue: usize,
    /// Pacing: a node's deltas go out at most every this many microseconds
    /// times the number of connected clients (at most once a second);
    /// versions in between are folded into one delta.
    pub pace_us_per_client: u64,
    /// After SIGINT or SIGTERM, the process exits within this many seconds
    /// even when connections or NATS do not let go.
    pub shutdown_s: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            nats: "nats://127.0.0.1:4222".into(),
            listen: "127.0.0.1:8080".into(),
            registry: None,
            static_dir: PathBuf::from("frontend/dist"),
            state_bucket: gridwatch_model::kv::DEFAULT_BUCKET.into(),
            heartbeat_s: 5,
            resume_history: 512,
            client_queue: 256,
            pace_us_per_client: 20,
            shutdown_s: gridwatch_runtime::shutdown::DEFAULT_SHUTDOWN_S,
        }
    }
}
