//! Typed, layered configuration: defaults → `--config` file (TOML) →
//! `GRIDWATCH__…` environment variables → command-line flags. Unknown keys
//! are rejected (loaded by `gridwatch_runtime::config::load`).

use serde::Deserialize;
use std::path::PathBuf;

use crate::clock::ClockMode;

/// Status thresholds (DESIGN §4).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// A sealed or control micro-grid unpatrolled this long is red.
    pub unpatrolled_red_min: i64,
    /// ... and amber from this long.
    pub unpatrolled_amber_min: i64,
    /// Open flags, and open incidents, a micro-grid's state lists (the most
    /// urgent; the counts have them all, `/api/v1/items` the rest). It
    /// bounds a state's size however many are open.
    pub detail_items: usize,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            unpatrolled_red_min: 120,
            unpatrolled_amber_min: 60,
            detail_items: 10,
        }
    }
}

/// Ingest configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// NATS server URL.
    pub nats: String,
    /// The NKey seed file of this service's NATS user (see
    /// `gridwatch_runtime::nats_auth`); none for a server without users.
    pub nats_nkey_file: Option<PathBuf>,
    /// The CA file that signed the NATS server's certificate (TLS).
    pub nats_ca_file: Option<PathBuf>,
    /// Where checkpoints and Parquet history live.
    pub data_dir: PathBuf,
    /// Registry file; the committed Beilun registry when unset.
    pub registry: Option<PathBuf>,
    /// JetStream stream holding `gw.ev.>`.
    pub stream: String,
    /// Dead-letter stream holding `gw.dlq.>`.
    pub dlq_stream: String,
    /// Key-value bucket the node states are published to.
    pub state_bucket: String,
    /// Durable consumer name.
    pub consumer: String,
    /// Subject filter (a worker may own a subset of streets).
    pub filter_subject: String,
    /// Replicas of the streams and the state bucket (3 on a cluster).
    pub replicas: usize,
    /// Dedupe window of the event stream, seconds.
    pub dedupe_window_s: u64,
    /// A batch closes at this many events...
    pub batch_max_events: usize,
    /// ...or this many milliseconds after its first event.
    pub batch_max_ms: u64,
    /// Checkpoint (journal append + fsync, then ack) at most this often.
    pub checkpoint_ms: u64,
    /// Take a full snapshot (and write a Parquet history part) this often...
    pub snapshot_s: u64,
    /// ...or as soon as the journal since the last one exceeds this size.
    pub snapshot_journal_mb: u64,
    /// Move time-dependent aggregates (windows, ages) on this often.
    pub tick_ms: u64,
    /// Recompute every node with polars this often (also at start and on a
    /// zone designation); in between, only what events or time moved.
    pub full_recompute_s: u64,
    /// A community, grid or micro-grid state is published at most this
    /// often (ms); changes in between fold into the next one. District and
    /// street states, which walls follow, go out with every batch.
    pub detail_publish_ms: u64,
    /// Events older than this (relative to the clock) are `too_late`.
    pub lateness_s: i64,
    /// Days of Parquet history kept (older days are removed); 0 keeps
    /// everything.
    pub history_days: u32,
    /// Events further ahead of the clock than this are `future`.
    pub future_s: i64,
    /// `wall` (default) or `replay` (now = newest applied event time).
    pub clock: ClockMode,
    pub status: StatusConfig,
    /// The disposal loop's rules: orders' due times, incident labels.
    pub disposal: crate::disposal::DisposalConfig,
    /// After SIGINT or SIGTERM, the process exits within this many seconds
    /// even when its work is stuck (NATS gone, a publish failing).
    pub shutdown_s: u64,
    /// JetStream redelivers what ingest has not acked this long after
    /// delivery (ingest skips a redelivered message by its sequence).
    pub ack_wait_s: u64,
    /// Where ingest serves its own Prometheus `/metrics` (`:0`: any free
    /// port, logged).
    pub metrics_listen: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            nats: "nats://127.0.0.1:4222".into(),
            nats_nkey_file: None,
            nats_ca_file: None,
            data_dir: PathBuf::from("gridwatch-data"),
            registry: None,
            stream: "GW_EVENTS".into(),
            dlq_stream: "GW_DLQ".into(),
            state_bucket: gridwatch_model::kv::DEFAULT_BUCKET.into(),
            consumer: "gridwatch-ingest".into(),
            filter_subject: "gw.ev.>".into(),
            replicas: 1,
            dedupe_window_s: 120,
            batch_max_events: 20_000,
            batch_max_ms: 20,
            checkpoint_ms: 1000,
            snapshot_s: 60,
            snapshot_journal_mb: 256,
            tick_ms: 1000,
            full_recompute_s: 60,
            detail_publish_ms: 250,
            lateness_s: 24 * 3600,
            history_days: 400,
            future_s: 300,
            clock: ClockMode::Wall,
            metrics_listen: "127.0.0.1:9190".into(),
            ack_wait_s: 30,
            status: StatusConfig::default(),
            disposal: Default::default(),
            shutdown_s: gridwatch_runtime::shutdown::DEFAULT_SHUTDOWN_S,
        }
    }
}

impl Config {
    /// The NATS credentials.
    pub fn nats_creds(&self) -> gridwatch_runtime::nats::Creds {
        gridwatch_runtime::nats::Creds {
            nkey_file: self.nats_nkey_file.clone(),
            ca_file: self.nats_ca_file.clone(),
        }
    }
}
