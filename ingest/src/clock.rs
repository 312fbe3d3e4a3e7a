//! The clock that decides "now": the wall clock, or on a replay the event
//! time of the newest applied event, so a sped-up or past-day replay never
//! trips the too-late or future rules and its results do not depend on how
//! fast it ran.

use chrono::Utc;
use serde::{Deserialize, Serialize};

/// Which clock the deployment runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    #[default]
    Wall,
    Replay,
}

/// The clock. In replay mode its time is the watermark (newest applied event
/// time, whole seconds), which is part of the checkpointed state.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub mode: ClockMode,
}

impl Clock {
    /// "Now" in Unix seconds; `None` in replay mode before any event.
    pub fn now(&self, watermark: Option<i64>) -> Option<i64> {
        match self.mode {
            ClockMode::Wall => Some(Utc::now().timestamp()),
            ClockMode::Replay => watermark,
        }
    }
}
