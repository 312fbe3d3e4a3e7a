//! Typed, layered configuration: defaults → `--config` file (TOML) →
//! `GRIDWATCH__…` environment variables → flags. Unknown keys are rejected.

use serde::Deserialize;
use std::path::{Path, PathBuf};

use crate::error::BackendError;

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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            nats: "nats://127.0.0.1:4222".into(),
            listen: "127.0.0.1:8080".into(),
            registry: None,
            static_dir: PathBuf::from("frontend/dist"),
            state_bucket: "GW_STATE".into(),
            heartbeat_s: 5,
            resume_history: 512,
            client_queue: 256,
            pace_us_per_client: 20,
        }
    }
}

/// Loads configuration: defaults, `file`, `GRIDWATCH__…`, then `overrides`.
///
/// Fails when the file cannot be read or a key is unknown or mistyped.
pub fn load(
    file: Option<&Path>,
    overrides: &[(&str, Option<String>)],
) -> Result<Config, BackendError> {
    let mut b = config::Config::builder();
    if let Some(f) = file {
        b = b.add_source(config::File::from(f).format(config::FileFormat::Toml));
    }
    b = b.add_source(
        config::Environment::with_prefix("GRIDWATCH")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true),
    );
    for (k, v) in overrides {
        if let Some(v) = v {
            b = b
                .set_override(*k, v.clone())
                .map_err(|e| BackendError::Config(e.to_string()))?;
        }
    }
    b.build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| BackendError::Config(e.to_string()))
}
