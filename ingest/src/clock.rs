//! The clock that decides "now": the wall clock, or on a replay the time the
//! simulator announces with ticks on `gw.clock` (in stream order, so the
//! result does not depend on how fast the replay ran), so a sped-up or
//! past-day replay never trips the too-late or future rules.

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

/// The clock. In replay mode its time is the newest tick (whole seconds),
/// which is part of the checkpointed state.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub mode: ClockMode,
}

impl Clock {
    /// "Now" in Unix seconds; `None` in replay mode before the first tick.
    pub fn now(&self, replay_now: Option<i64>) -> Option<i64> {
        match self.mode {
            ClockMode::Wall => Some(Utc::now().timestamp()),
            ClockMode::Replay => replay_now,
        }
    }
}
