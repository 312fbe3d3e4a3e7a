//! The REST bodies the backend serves and the frontend reads, beyond the
//! node state ([`NodeState`](crate::NodeState)):
//!
//! - [`Hierarchy`] — `GET /api/v1/hierarchy`: the registry as a tree
//!   (streets with their polygons, communities, grids, micro-grids with
//!   population, households, zone and cell position);
//! - [`RegistryRecord`] — `GET /api/v1/registry?node=`: what the registry
//!   knows of one node, with a micro-grid's team;
//! - [`ItemsPage`] — `GET /api/v1/items?node=&kind=&offset=&limit=`: every
//!   open flag or incident of a micro-grid, a page at a time (its state
//!   carries only the most urgent few). Ingest answers [`ItemsQuery`] on
//!   [`ITEMS_SUBJECT`]; the backend passes the page on.

use serde::{Deserialize, Serialize};

use crate::state::{FlagOpen, IncidentOpen};

use crate::Level;
use crate::Zone;
use crate::registry::{CommunityKind, Registry, SourceNotice, Team};

/// The registry as a tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hierarchy {
    pub node: String,
    pub name: String,
    pub name_en: String,
    pub sources: Vec<SourceNotice>,
    pub streets: Vec<HStreet>,
}

/// A street with its polygon and communities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HStreet {
    pub node: String,
    pub name: String,
    pub name_en: String,
    pub code: String,
    /// [lon, lat] of the label point.
    pub center: [f64; 2],
    /// MultiPolygon coordinates, GeoJSON order ([lon, lat]).
    pub polygon: Vec<Vec<Vec<[f64; 2]>>>,
    pub communities: Vec<HCommunity>,
}

/// A village or community with its grids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HCommunity {
    pub node: String,
    pub name: String,
    pub name_en: String,
    pub code: String,
    pub kind: CommunityKind,
    pub grids: Vec<HGrid>,
}

/// A grid with its micro-grids.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HGrid {
    pub node: String,
    pub microgrids: Vec<HMicrogrid>,
}

/// A micro-grid's place on the map and its registered figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HMicrogrid {
    pub node: String,
    pub population: u32,
    pub households: u32,
    /// Zone designation registered at the start.
    pub zone: Zone,
    /// [lon, lat] of its cell.
    pub pos: [f64; 2],
}

impl Hierarchy {
    /// The tree of `reg`, micro-grids in registry order (so a micro-grid's
    /// position in the tree is its ordinal).
    pub fn of(reg: &Registry) -> Hierarchy {
        let f = &reg.file;
        let root = f.district.id.as_str();
        Hierarchy {
            node: root.into(),
            name: f.district.name.clone(),
            name_en: f.district.name_en.clone(),
            sources: f.sources.clone(),
            streets: f
                .streets
                .iter()
                .map(|s| {
                    let sid = format!("{root}/{}", s.id);
                    HStreet {
                        communities: s
                            .communities
                            .iter()
                            .map(|c| {
                                let cid = format!("{sid}/{}", c.id);
                                HCommunity {
                                    grids: c
                                        .grids
                                        .iter()
                                        .map(|g| {
                                            let gid = format!("{cid}/{}", g.id);
                                            HGrid {
                                                microgrids: g
                                                    .microgrids
                                                    .iter()
                                                    .map(|m| HMicrogrid {
                                                        node: format!("{gid}/{}", m.id),
                                                        population: m.population,
                                                        households: m.households,
                                                        zone: m.zone,
                                                        pos: m.pos,
                                                    })
                                                    .collect(),
                                                node: gid,
                                            }
                                        })
                                        .collect(),
                                    node: cid,
                                    name: c.name.clone(),
                                    name_en: c.name_en.clone(),
                                    code: c.code.clone(),
                                    kind: c.kind,
                                }
                            })
                            .collect(),
                        node: sid,
                        name: s.name.clone(),
                        name_en: s.name_en.clone(),
                        code: s.code.clone(),
                        center: s.center,
                        polygon: s.polygon.clone(),
                    }
                })
                .collect(),
        }
    }
}

/// One node's registry record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RegistryRecord {
    pub node: String,
    pub name: String,
    pub name_en: String,
    pub level: Level,
    pub population: u64,
    pub households: u64,
    pub microgrids: u32,
    pub parent: Option<String>,
    pub children: Vec<String>,
    /// A micro-grid's registered zone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_zone: Option<Zone>,
    /// A micro-grid's team (personal data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<Team>,
}

impl RegistryRecord {
    /// The record of registry node `i`.
    pub fn of(reg: &Registry, i: u32) -> RegistryRecord {
        let n = reg.node(i);
        RegistryRecord {
            node: n.id.to_string(),
            name: n.name.clone(),
            name_en: n.name_en.clone(),
            level: n.level,
            population: n.population,
            households: n.households,
            microgrids: n.microgrids,
            parent: n.parent.map(|p| reg.node(p).id.to_string()),
            children: n
                .children
                .iter()
                .map(|&c| reg.node(c).id.to_string())
                .collect(),
            registered_zone: n.mg.as_ref().map(|m| m.zone),
            team: n.mg.as_ref().map(|m| m.team.clone()),
        }
    }
}

/// The NATS subject ingest answers [`ItemsQuery`]s on.
pub const ITEMS_SUBJECT: &str = "gw.ingest.items";
/// The most items one page holds.
pub const ITEMS_PAGE_MAX: usize = 500;

/// Which list of a micro-grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ItemKind {
    Flags,
    Incidents,
}

/// A page of one micro-grid's open flags or incidents, asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemsQuery {
    pub node: String,
    pub kind: ItemKind,
    #[serde(default)]
    pub offset: usize,
    /// At most [`ITEMS_PAGE_MAX`].
    pub limit: usize,
    /// Only the item with this id (a flag id or an incident id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The NATS subject ingest answers [`OpenQuery`]s on.
pub const OPEN_SUBJECT: &str = "gw.ingest.open";
/// The most items of each kind an [`OpenList`] holds.
pub const OPEN_LIST_MAX: usize = 500;

/// Every open incident and order under a node, asked for (a tablet's
/// tasks, a reminder's digest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenQuery {
    pub node: String,
    /// At most [`OPEN_LIST_MAX`] of each kind.
    pub limit: usize,
}

/// An open incident and the micro-grid it belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenIncident {
    pub node: String,
    #[serde(flatten)]
    pub incident: IncidentOpen,
}

/// An open supervision order and the micro-grid it belongs to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenOrder {
    pub node: String,
    #[serde(flatten)]
    pub order: FlagOpen,
}

/// The open incidents and orders under a node, the soonest due first (so
/// the overdue lead), at most `limit` of each; the totals count them all.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenList {
    pub node: String,
    pub incidents_total: u64,
    pub orders_total: u64,
    pub incidents: Vec<OpenIncident>,
    pub orders: Vec<OpenOrder>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The NATS subject ingest answers [`OutcomeQuery`]s on: what became of an
/// action a tablet sent, by its event id.
pub const OUTCOME_SUBJECT: &str = "gw.ingest.outcome";

/// The event ids of tablets' actions begin so (the backend derives the rest
/// from the caller and the `Idempotency-Key`); ingest recalls the outcome
/// of these only.
pub const ACTION_ID_PREFIX: &str = "t-";

/// What became of one event, asked by id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutcomeQuery {
    pub id: String,
}

/// Ingest's answer to an [`OutcomeQuery`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Applied: the states it changes are on their way.
    Applied,
    /// Refused, with the dead-letter reason and why.
    Rejected { reason: String, detail: String },
    /// Not seen (yet): still in the stream, or older than ingest recalls.
    Unknown,
}

/// A tablet reports an incident on a micro-grid (`POST /api/v1/incidents`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportIncident {
    pub node: String,
    pub level: u8,
    pub category: String,
    #[serde(default)]
    pub note: String,
}

/// A step on an incident or an order from a tablet
/// (`POST /api/v1/incidents/<id>/<step>`, `POST /api/v1/orders/<flag id>/<step>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The micro-grid the item belongs to.
    pub node: String,
    #[serde(default)]
    pub note: String,
    /// A transfer's target: a node above the one that holds the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// The answer to an action: applied, or sent and not applied yet
/// (`pending`: the tablet shows it as such and the state will follow).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionAnswer {
    /// `applied` or `pending`.
    pub status: String,
    /// The event the action became (its id is derived from the
    /// `Idempotency-Key`, so a retry is the same event).
    pub event_id: String,
    /// The incident id, or the flag id of an order.
    pub item: String,
}

/// A page of open items, the most urgent first: flags by sealed-zone exits
/// first, then severity (highest first), then age (oldest first);
/// incidents by level (highest first), then age.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemsPage {
    pub node: String,
    /// Open items of the kind asked for, in all.
    pub total: u64,
    pub offset: usize,
    /// The flags of the page (when flags were asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<FlagOpen>,
    /// The incidents of the page (when incidents were asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incidents: Vec<IncidentOpen>,
    /// Set instead of the items when the query could not be answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The stream of every reminder `gridwatch-notify` sent (to a DingTalk
/// robot) or kept (no robot configured: this stream is then the local
/// outbox), one [`Reminder`] per message on `gw.reminders.<delivery>`.
pub const REMINDERS_STREAM: &str = "GW_REMINDERS";
/// The subjects of [`REMINDERS_STREAM`].
pub const REMINDERS_SUBJECTS: &str = "gw.reminders.>";

/// Where a reminder went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Posted to the group's DingTalk robot, which took it.
    Dingtalk,
    /// No robot for the group: kept in the local outbox stream.
    Outbox,
    /// The robot refused it as it was (DingTalk's code and message in
    /// `error`); not retried unchanged.
    Refused,
}

impl Delivery {
    /// Its subject token (`gw.reminders.<token>`).
    pub fn token(self) -> &'static str {
        match self {
            Delivery::Dingtalk => "dingtalk",
            Delivery::Outbox => "outbox",
            Delivery::Refused => "refused",
        }
    }
}

/// One hourly digest of one responsible group: what it listed and where
/// it went.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reminder {
    /// The group's node (a grid, community, street or the district).
    pub group: String,
    pub group_name: String,
    /// The full hour it is for (RFC 3339, +08:00).
    pub slot: String,
    /// The deployment clock when it went out (RFC 3339, +08:00).
    pub sent_at: String,
    pub delivery: Delivery,
    /// The robot's name, when it went to one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub robot: Option<String>,
    pub incidents: u32,
    pub orders: u32,
    pub overdue: u32,
    pub title: String,
    /// The markdown (empty where the reader may not see the items).
    pub text: String,
    /// Sent again after a restart inside the crash window (see
    /// `gridwatch-notify`'s ledger).
    #[serde(default)]
    pub resent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/v1/reminders?node=&limit=`: the newest reminders of the
/// groups at or under a node, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemindersList {
    pub node: String,
    pub reminders: Vec<Reminder>,
}

/// The counts of a `minutes` history row (ingest's Parquet, the query API's
/// metrics), in order.
pub const HISTORY_COUNTS: [&str; 13] = [
    "patrols",
    "persons",
    "gatherings_dispersed",
    "people_persuaded",
    "venues_closed",
    "vendors_cleared",
    "violations",
    "samples",
    "reports",
    "raised",
    "rectified",
    "reported",
    "resolved",
];

#[cfg(test)]
mod tests;
