//! `gridwatch-notify`'s configuration: defaults → `--config` file (TOML) →
//! `GRIDWATCH__…` environment variables → flags, unknown keys rejected
//! (loaded by `gridwatch_runtime::config::load`).
//!
//! The groups a digest goes to are every node at `group_levels` of the
//! registry, plus each robot's groups. A group without a robot gets its
//! digests in the local outbox stream (`GW_REMINDERS`, on the wall):
//!
//! ```toml
//! group_levels = [0, 1]          # the district and its streets
//!
//! [[robots]]
//! name = "大碶街道防控群"
//! groups = ["beilun/daqi"]
//! webhook = "https://oapi.dingtalk.com/robot/send?access_token=…"
//! secret = "SEC…"
//! at_mobiles = ["138xxxxxxxx"]
//! ```

use serde::Deserialize;
use std::path::PathBuf;

use crate::schedule::Hours;

/// One DingTalk custom robot ("自定义机器人", signed with "加签").
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Robot {
    /// Shown on the wall and in the logs (never the webhook or secret).
    pub name: String,
    /// The groups (node ids) whose digests go to this robot.
    pub groups: Vec<String>,
    /// The webhook, with its access token.
    pub webhook: String,
    /// The signing secret (`SEC…`).
    pub secret: String,
    /// Mobiles each message mentions.
    #[serde(default)]
    pub at_mobiles: Vec<String>,
}

/// Notify configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// NATS server URL.
    pub nats: String,
    /// The NKey seed file of this service's NATS user.
    pub nats_nkey_file: Option<PathBuf>,
    /// The CA file that signed the NATS server's certificate (TLS).
    pub nats_ca_file: Option<PathBuf>,
    /// Registry file; the committed Beilun registry when unset.
    pub registry: Option<PathBuf>,
    /// The state bucket (its `meta.ingest` carries the deployment clock).
    pub state_bucket: String,
    /// The ledger: one key per (group, hour) sent.
    pub ledger_bucket: String,
    /// Days the ledger keeps its keys.
    pub ledger_days: u64,
    /// The stream of reminders sent and kept (the outbox).
    pub reminders_stream: String,
    /// Days the reminders stream keeps them.
    pub reminders_days: u64,
    /// Replicas of the ledger and the reminders stream (3 on a cluster).
    pub replicas: usize,
    /// The first and last full hour digests go out at (local).
    pub first_hour: u32,
    pub last_hour: u32,
    /// Registry levels (0 district, 1 street, 2 community, 3 grid) whose
    /// every node is a group.
    pub group_levels: Vec<u8>,
    pub robots: Vec<Robot>,
    /// How often the clock is looked at, ms.
    pub tick_ms: u64,
    /// The first retry after a failed send waits this long, doubling up
    /// to `retry_max_ms`.
    pub retry_ms: u64,
    pub retry_max_ms: u64,
    /// A POST to a robot may take this long, seconds.
    pub http_timeout_s: u64,
    /// After SIGINT or SIGTERM, the process exits within this many seconds.
    pub shutdown_s: u64,
    /// Serve Prometheus `/metrics` here (none: not served).
    pub metrics_listen: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        let h = Hours::default();
        Self {
            nats: "nats://127.0.0.1:4222".into(),
            nats_nkey_file: None,
            nats_ca_file: None,
            registry: None,
            state_bucket: gridwatch_model::kv::DEFAULT_BUCKET.into(),
            ledger_bucket: "GW_NOTIFY".into(),
            ledger_days: 3,
            reminders_stream: gridwatch_model::api::REMINDERS_STREAM.into(),
            reminders_days: 30,
            replicas: 1,
            first_hour: h.first,
            last_hour: h.last,
            group_levels: vec![0, 1, 2, 3],
            robots: Vec::new(),
            tick_ms: 1000,
            retry_ms: 2000,
            retry_max_ms: 60_000,
            http_timeout_s: 10,
            shutdown_s: gridwatch_runtime::shutdown::DEFAULT_SHUTDOWN_S,
            metrics_listen: None,
        }
    }
}

impl Config {
    /// The hours digests go out at.
    pub fn hours(&self) -> Hours {
        Hours {
            first: self.first_hour,
            last: self.last_hour,
        }
    }

    /// Checks what serde cannot: hours within a day, robots' webhooks
    /// and secrets present, no group given two robots.
    pub fn check(&self) -> Result<(), String> {
        if self.first_hour > self.last_hour || self.last_hour > 23 {
            return Err(format!(
                "first_hour {} and last_hour {} must be 0 ≤ first ≤ last ≤ 23",
                self.first_hour, self.last_hour
            ));
        }
        if let Some(l) = self.group_levels.iter().find(|l| **l > 3) {
            return Err(format!(
                "group_levels: {l} is not a group level (0 district … 3 grid)"
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for r in &self.robots {
            if !(r.webhook.starts_with("https://") || r.webhook.starts_with("http://")) {
                return Err(format!(
                    "robot `{}`: webhook must be an http(s) URL",
                    r.name
                ));
            }
            if r.secret.is_empty() {
                return Err(format!(
                    "robot `{}`: a secret is needed (DingTalk's 加签)",
                    r.name
                ));
            }
            for g in &r.groups {
                if !seen.insert(g.clone()) {
                    return Err(format!("group `{g}` has two robots"));
                }
            }
        }
        if self.tick_ms == 0 || self.retry_ms == 0 || self.retry_max_ms < self.retry_ms {
            return Err("tick_ms and retry_ms must be > 0, retry_max_ms ≥ retry_ms".into());
        }
        Ok(())
    }
}
