//! Node ids, hierarchy levels and zone classes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The id of the district, the root of every node id.
pub const DISTRICT_ID: &str = "beilun";

/// A node id: a `/`-separated path under the district, e.g.
/// `beilun/daqi/chengwan/g02/m03`. Only constructed from the registry, so a
/// `NodeId` always names a known node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    /// Wraps an id string; callers check it against the registry.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }
    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The street token of the id (`daqi` in `beilun/daqi/...`), if any.
    pub fn street_token(&self) -> Option<&str> {
        self.0.split('/').nth(1)
    }
    /// The id of the child named `segment`.
    pub fn child(&self, segment: &str) -> NodeId {
        NodeId(format!("{}/{}", self.0, segment))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The five levels of the grid hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    District,
    Street,
    Community,
    Grid,
    Microgrid,
}

impl Level {
    /// Depth below the district (district = 0, micro-grid = 4).
    pub fn depth(self) -> usize {
        match self {
            Level::District => 0,
            Level::Street => 1,
            Level::Community => 2,
            Level::Grid => 3,
            Level::Microgrid => 4,
        }
    }
    /// The level at a given depth.
    pub fn from_depth(depth: usize) -> Option<Level> {
        [
            Level::District,
            Level::Street,
            Level::Community,
            Level::Grid,
            Level::Microgrid,
        ]
        .get(depth)
        .copied()
    }
    /// Lower-case name as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::District => "district",
            Level::Street => "street",
            Level::Community => "community",
            Level::Grid => "grid",
            Level::Microgrid => "microgrid",
        }
    }
}

/// A zone class. Designations are inherited by the micro-grids below a node.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Zone {
    Sealed,
    Control,
    Prevention,
    #[default]
    Normal,
}

impl Zone {
    /// All zone classes, strictest first.
    pub const ALL: [Zone; 4] = [Zone::Sealed, Zone::Control, Zone::Prevention, Zone::Normal];

    /// Index into [`Zone::ALL`].
    pub fn index(self) -> usize {
        match self {
            Zone::Sealed => 0,
            Zone::Control => 1,
            Zone::Prevention => 2,
            Zone::Normal => 3,
        }
    }
    /// Lower-case name as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Sealed => "sealed",
            Zone::Control => "control",
            Zone::Prevention => "prevention",
            Zone::Normal => "normal",
        }
    }
    /// Sealed and control zones are patrolled closely.
    pub fn is_closed(self) -> bool {
        matches!(self, Zone::Sealed | Zone::Control)
    }
    /// The usual staff of one micro-grid in this zone (DESIGN §2).
    pub fn staff_per_microgrid(self) -> u32 {
        match self {
            Zone::Sealed => 8,
            Zone::Control => 6,
            Zone::Prevention => 3,
            Zone::Normal => 0,
        }
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
