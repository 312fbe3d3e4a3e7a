//! The event tables' rows, as ingest keeps them until a part is written.

use gridwatch_model::Zone;
use gridwatch_model::event::{FlagKind, IncidentAction, VideoAction};
use serde::{Deserialize, Serialize};

/// An incident step, as the `incidents` table keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentRow {
    pub ts: i64,
    /// Micro-grid ordinal.
    pub mg: u32,
    pub incident_id: String,
    pub action: IncidentAction,
    pub level: u8,
    pub category: String,
    pub label: Option<String>,
    /// Registry index of the node holding it after the step.
    pub owner: u32,
    pub due: i64,
}

/// A supervision-order step, as the `orders` table keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRow {
    pub ts: i64,
    pub mg: u32,
    pub flag_id: String,
    pub number: String,
    pub kind: FlagKind,
    pub severity: u8,
    pub action: VideoAction,
    pub due: i64,
}

/// A designation, as the `zones` table keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneRow {
    pub ts: i64,
    /// Registry index of the node designated (any level).
    pub node: u32,
    pub zone: Zone,
    pub reason: String,
    pub event_id: String,
}

/// Event rows not yet written.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRows {
    pub incidents: Vec<IncidentRow>,
    pub orders: Vec<OrderRow>,
    pub zones: Vec<ZoneRow>,
}

impl EventRows {
    pub fn is_empty(&self) -> bool {
        self.incidents.is_empty() && self.orders.is_empty() && self.zones.is_empty()
    }
}
