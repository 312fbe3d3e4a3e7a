//! The aggregate state of one node, as `GET /api/v1/state?node=<id>` returns
//! it and as WebSocket snapshots carry it (DESIGN §4, §5).

use serde::{Deserialize, Serialize};

use crate::event::{Findings, FlagKind, IncidentAction};
use crate::ids::{Level, Zone};

/// Traffic-light status of a node.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Green,
    Amber,
    Red,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Green => "green",
            Status::Amber => "amber",
            Status::Red => "red",
        }
    }
}

/// Aggregates of the micro-grids of one zone class under a node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ZoneAgg {
    pub microgrids: u32,
    pub population: u64,
    pub households: u64,
    pub staff: u64,
    /// Micro-grids of this class patrolled in the last 2 h.
    pub patrolled_2h: u32,
    /// `patrolled_2h / microgrids` (0 when empty).
    pub coverage_2h: f64,
    pub samples_today: u64,
    pub completion_today: f64,
    pub flags_open: u64,
    /// Incidents open in micro-grids of this class.
    #[serde(default)]
    pub incidents_open: u64,
    pub red: u32,
    pub amber: u32,
}

/// One [`ZoneAgg`] per zone class.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Zones {
    pub sealed: ZoneAgg,
    pub control: ZoneAgg,
    pub prevention: ZoneAgg,
    pub normal: ZoneAgg,
}

impl Zones {
    /// The aggregate of one class.
    pub fn get(&self, z: Zone) -> &ZoneAgg {
        match z {
            Zone::Sealed => &self.sealed,
            Zone::Control => &self.control,
            Zone::Prevention => &self.prevention,
            Zone::Normal => &self.normal,
        }
    }
    /// The aggregate of one class, mutably.
    pub fn get_mut(&mut self, z: Zone) -> &mut ZoneAgg {
        match z {
            Zone::Sealed => &mut self.sealed,
            Zone::Control => &mut self.control,
            Zone::Prevention => &mut self.prevention,
            Zone::Normal => &mut self.normal,
        }
    }
}

/// Patrol aggregates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PatrolAgg {
    /// Patrol events with event time in the hour before `as_of`.
    pub patrols_1h: u64,
    pub persons_1h: u64,
    pub patrols_today: u64,
    /// Share of sealed and control micro-grids patrolled in the last 2 h.
    pub coverage_2h: f64,
    /// Minutes since the oldest last patrol among sealed and control
    /// micro-grids (absent when there are none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_last_patrol_min: Option<i64>,
    pub findings_today: Findings,
}

/// Testing aggregates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TestingAgg {
    pub samples_today: u64,
    /// `samples_today / population`.
    pub completion_today: f64,
    /// Samples with event time in the 10 minutes before `as_of`.
    pub samples_10min: u64,
    /// Sum of the latest reported queue of each micro-grid today.
    pub queue: u64,
    /// Minutes to sample the rest of the population at the last 10 minutes'
    /// pace (absent when nothing was sampled in them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta_min: Option<u64>,
}

/// Video-patrol aggregates. Every raised flag is a supervision order
/// (督办单): `flags_open` are the orders open, `raised_today` the orders
/// issued today, `rectified_today` the rectifications today.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VideoAgg {
    pub flags_open: u64,
    pub raised_today: u64,
    pub rectified_today: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_rectify_min: Option<f64>,
    /// Orders open past their due time (by severity).
    #[serde(default)]
    pub overdue: u64,
}

/// Incident aggregates.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentAgg {
    pub open: u64,
    /// Open incidents by level 1..=4.
    pub open_by_level: [u64; 4],
    pub reported_today: u64,
    pub resolved_today: u64,
    /// Open past their due time (16:00 local of the report day, or the
    /// next day's for a report at 16:00 or later).
    #[serde(default)]
    pub overdue: u64,
    /// Open level-2 incidents not transferred up within 6 h of the report.
    #[serde(default)]
    pub transfer_overdue: u64,
    /// Open, not overdue, and due at or before the coming 16:00.
    #[serde(default)]
    pub due_before_16: u64,
    /// Median minutes from report to resolution of those resolved today.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_resolve_min: Option<f64>,
}

/// Summary of a child node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChildSummary {
    pub node: String,
    pub name: String,
    #[serde(default)]
    pub name_en: String,
    pub status: Status,
    pub population: u64,
    pub microgrids: u32,
    pub red: u32,
    #[serde(default)]
    pub amber: u32,
    /// Incidents open under it, and how many of them are overdue.
    #[serde(default)]
    pub incidents_open: u64,
    #[serde(default)]
    pub incidents_overdue: u64,
    /// Supervision orders open under it, and overdue.
    #[serde(default)]
    pub orders_open: u64,
    #[serde(default)]
    pub orders_overdue: u64,
}

/// Why a node is red or amber, as data: screens word it in their language;
/// its `Display` is the English sentence the state's `reasons` carry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Why {
    /// A sealed-zone exit flag open since `since` (local `HH:MM`).
    ExitFlagOpen { since: String },
    /// A sealed or control micro-grid not patrolled for `minutes`.
    Unpatrolled { zone: Zone, minutes: i64 },
    /// Other video flags open.
    FlagsOpen { count: u64 },
    /// Level-3 and level-4 incidents open.
    SeriousIncidents { count: u64 },
    /// A red micro-grid's reason, for a node above it.
    At {
        node: String,
        name: String,
        why: Box<Why>,
    },
    /// Red micro-grids below a node, in all.
    RedInAll { count: u64 },
    /// Amber micro-grids below a node.
    AmberBelow { count: u64 },
    /// An incident open past its due time (`due`: local `HH:MM`), held
    /// by `owner` (a node id).
    IncidentOverdue {
        incident_id: String,
        owner: String,
        due: String,
    },
    /// A level-2 incident not transferred up within 6 h of its report.
    TransferOverdue { incident_id: String },
    /// A supervision order open past its due time.
    OrderOverdue { number: String, due: String },
    /// More late items of the same kind than are named.
    MoreOverdue { count: u64 },
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::ExitFlagOpen { since } => write!(f, "sealed-zone exit flag open since {since}"),
            Why::Unpatrolled { zone, minutes } => {
                write!(f, "{zone} micro-grid unpatrolled for {minutes} min")
            }
            Why::FlagsOpen { count } => write!(f, "{count} video flag(s) open"),
            Why::SeriousIncidents { count } => write!(f, "{count} level-3+ incident(s) open"),
            Why::At { node, why, .. } => write!(f, "{why} at {node}"),
            Why::RedInAll { count } => write!(f, "{count} red micro-grids in all"),
            Why::AmberBelow { count } => write!(f, "{count} amber micro-grid(s)"),
            Why::IncidentOverdue {
                incident_id,
                owner,
                due,
            } => write!(f, "incident {incident_id} overdue since {due} at {owner}"),
            Why::TransferOverdue { incident_id } => {
                write!(
                    f,
                    "level-2 incident {incident_id} not transferred within 6 h"
                )
            }
            Why::OrderOverdue { number, due } => {
                write!(f, "supervision order {number} overdue since {due}")
            }
            Why::MoreOverdue { count } => write!(f, "{count} more overdue"),
        }
    }
}

/// A red micro-grid and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RedNode {
    pub node: String,
    pub name: String,
    pub zone: Zone,
    pub why: Vec<Why>,
}

/// An open video flag of a micro-grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FlagOpen {
    pub flag_id: String,
    pub kind: FlagKind,
    pub severity: u8,
    /// When it was raised (RFC 3339, +08:00).
    pub raised: String,
    /// Its supervision order's number, e.g. `督-20221015-0001`.
    #[serde(default)]
    pub number: String,
    /// When the order is due (RFC 3339, +08:00).
    #[serde(default)]
    pub due: String,
    /// Reopened after a re-inspection.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reopened: bool,
}

/// An open incident of a micro-grid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentOpen {
    pub incident_id: String,
    pub level: u8,
    pub category: String,
    /// When it was reported (RFC 3339, +08:00).
    pub reported: String,
    pub last_action: IncidentAction,
    /// The node that holds it now: its grid, the district centre for
    /// level 3 and above, or where it was transferred to.
    #[serde(default)]
    pub owner: String,
    /// When it is due (RFC 3339, +08:00).
    #[serde(default)]
    pub due: String,
    /// For a level-2 incident not transferred yet: when it must be.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer_due: Option<String>,
    /// The category rules' label (level 3 and above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// What only a micro-grid's own state carries: since when its zone holds,
/// its last patrol, and its open flags and incidents (oldest first), so a
/// tablet can show how long each has been open.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MgDetail {
    /// When the zone in force was designated (RFC 3339; absent: the zone
    /// it was registered with).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_since: Option<String>,
    /// Why it was designated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_reason: Option<String>,
    /// The node the designation was made on (the micro-grid or above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_by: Option<String>,
    /// The last patrol (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_patrol: Option<String>,
    pub open_flags: Vec<FlagOpen>,
    pub open_incidents: Vec<IncidentOpen>,
}

/// The state of one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    pub node: String,
    pub name: String,
    pub level: Level,
    /// The clock time this state was computed for (RFC 3339, +08:00).
    pub as_of: String,
    /// Version of this node's state; moves up by one at each change.
    pub seq: u64,
    pub microgrids: u32,
    pub population: u64,
    pub households: u64,
    pub staff: u64,
    /// The node's effective zone (micro-grids only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<Zone>,
    pub zones: Zones,
    pub patrol: PatrolAgg,
    pub testing: TestingAgg,
    pub video: VideoAgg,
    pub incidents: IncidentAgg,
    pub status: Status,
    /// Why the status is red or amber, in English (one sentence each).
    pub reasons: Vec<String>,
    /// The same reasons as data, for screens to word in their language.
    #[serde(default)]
    pub why: Vec<Why>,
    /// Red micro-grids below (or at) this node.
    pub red_microgrids: u32,
    pub amber_microgrids: u32,
    /// Up to [`RED_LIST_LIMIT`] red micro-grids with their reasons, most
    /// urgent first (open sealed-zone exits, then the longest unpatrolled).
    pub red_nodes: Vec<RedNode>,
    pub children: Vec<ChildSummary>,
    /// Micro-grids only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<MgDetail>,
}

/// Declares [`NodeState::set_field`] over the listed fields.
macro_rules! node_state_fields {
    ($($field:ident),* $(,)?) => {
        impl NodeState {
            /// The serialized names of every field.
            pub const FIELDS: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Sets the field serialized as `key` from `v`; an unknown key
            /// (from a newer server) is ignored.
            ///
            /// Fails when `v` is not of the field's type.
            pub fn set_field(&mut self, key: &str, v: &serde_json::Value) -> Result<(), serde_json::Error> {
                match key {
                    // From an owned value, as a whole state is read: the
                    // same deserializers, no second copy of them in the wasm.
                    $(stringify!($field) => self.$field = serde_json::from_value(v.clone())?,)*
                    _ => {}
                }
                Ok(())
            }
        }
    };
}

node_state_fields!(
    node,
    name,
    level,
    as_of,
    seq,
    microgrids,
    population,
    households,
    staff,
    zone,
    zones,
    patrol,
    testing,
    video,
    incidents,
    status,
    reasons,
    why,
    red_microgrids,
    amber_microgrids,
    red_nodes,
    children,
    detail,
);

impl NodeState {
    /// Brings this state up to `merged` — its JSON after the merge patch
    /// `patch` was applied — re-reading only the top-level fields the patch
    /// touched, not the whole state.
    ///
    /// Fails when a touched field cannot be read (the caller then reads
    /// `merged` whole).
    pub fn apply_fields(
        &mut self,
        merged: &serde_json::Value,
        patch: &serde_json::Value,
    ) -> Result<(), serde_json::Error> {
        let Some(keys) = patch.as_object() else {
            *self = Deserialize::deserialize(merged)?;
            return Ok(());
        };
        for k in keys.keys() {
            let v = merged.get(k).unwrap_or(&serde_json::Value::Null);
            self.set_field(k, v)?;
        }
        Ok(())
    }
}

/// How many red micro-grids a state lists by name: more than a wall or a
/// tablet shows at once (the count, `red_microgrids`, is always exact). It
/// bounds the district snapshot, which every WebSocket client's send buffer
/// keeps the size of.
pub const RED_LIST_LIMIT: usize = 20;

/// The id the status map is published and followed under (a pseudo node:
/// `_` never starts a registry id).
pub const MAP_NODE: &str = "beilun/_map";

/// The status of every micro-grid at once, for the wall's map: one short
/// code per micro-grid ordinal (registry order), so a change costs a few
/// bytes in a merge-patch delta.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MapState {
    pub node: String,
    pub seq: u64,
    pub as_of: String,
    /// Micro-grid ordinal → [`cell_code`].
    pub cells: std::collections::BTreeMap<u32, String>,
}

/// The id the testing board is published and followed under.
pub const TESTING_NODE: &str = "beilun/_testing";

/// Testing across the district today, for the wall: samples per 10 minutes
/// over the local day and the busiest sites' queues, for the district and
/// each street. Keyed objects, so a delta carries only the slots and lists
/// that changed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TestingBoard {
    pub node: String,
    pub seq: u64,
    pub as_of: String,
    /// The local day (`YYYY-MM-DD`) the series covers.
    pub day: String,
    /// `beilun` and each street → 10-minute slot of the day (0 = 00:00,
    /// 36 = 06:00, … 143) → samples; slots without samples are absent.
    pub series: std::collections::BTreeMap<String, std::collections::BTreeMap<u32, u64>>,
    /// Samples taken today under the district, each street and each
    /// community (node id → samples): completion by child for the wall
    /// without widening every parent's delta (a merge patch replaces a
    /// `children` array whole, but changes one key of an object).
    #[serde(default)]
    pub samples_today: std::collections::BTreeMap<String, u64>,
    /// `beilun` and each street → the busiest testing sites now (reports in
    /// the last 30 minutes), longest queue first.
    pub sites: std::collections::BTreeMap<String, Vec<SiteQueue>>,
}

/// One testing site's queue: the newest reports of the micro-grids it
/// serves, summed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SiteQueue {
    pub site: String,
    /// The community the site serves (id and name).
    pub community: String,
    #[serde(default)]
    pub community_name: String,
    pub queue: u64,
    pub microgrids: u32,
}

/// A micro-grid's map code: zone letter (`s`ealed, `c`ontrol,
/// `p`revention, `n`ormal) then status letter (`g`reen, `a`mber, `r`ed).
pub fn cell_code(zone: Zone, status: Status) -> String {
    let z = match zone {
        Zone::Sealed => 's',
        Zone::Control => 'c',
        Zone::Prevention => 'p',
        Zone::Normal => 'n',
    };
    let s = match status {
        Status::Green => 'g',
        Status::Amber => 'a',
        Status::Red => 'r',
    };
    format!("{z}{s}")
}

/// The zone and status a [`cell_code`] stands for.
pub fn parse_cell_code(code: &str) -> Option<(Zone, Status)> {
    let mut c = code.chars();
    let zone = match c.next()? {
        's' => Zone::Sealed,
        'c' => Zone::Control,
        'p' => Zone::Prevention,
        'n' => Zone::Normal,
        _ => return None,
    };
    let status = match c.next()? {
        'g' => Status::Green,
        'a' => Status::Amber,
        'r' => Status::Red,
        _ => return None,
    };
    Some((zone, status))
}

#[cfg(test)]
mod tests;
