//! The registry: reference data for every node (name, population,
//! households, team, zone, geometry), loaded from a JSON file at start.
//!
//! The file is nested (district → streets → communities → grids →
//! micro-grids, see [`RegistryFile`]); [`Registry`] flattens it into an
//! indexed arena where every node knows its parent, children and totals.

/// The committed Beilun registry (`data/beilun-registry.json`), built into
/// the binaries so they run from any directory without the checkout.
pub const BEILUN_REGISTRY_JSON: &str = include_str!("../../data/beilun-registry.json");

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::ids::{DISTRICT_ID, Level, NodeId, Zone};

/// Why a registry cannot be loaded; names the place and the field.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The JSON does not have the registry's shape.
    #[error("registry: at `{path}`: {message}")]
    Shape { path: String, message: String },
    /// A value is out of range or inconsistent.
    #[error("registry: node `{node}`: field `{field}`: {message}")]
    Invalid {
        node: String,
        field: &'static str,
        message: String,
    },
}

/// Where the data came from, with its notice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceNotice {
    pub what: String,
    pub source: String,
    pub license: String,
}

/// The registry file.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    pub format: u32,
    pub generated_by: String,
    pub sources: Vec<SourceNotice>,
    pub district: DistrictRec,
    pub streets: Vec<StreetRec>,
}

/// The district.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistrictRec {
    pub id: String,
    pub name: String,
    pub name_en: String,
    pub code: String,
}

/// A street (街道) with its polygon.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreetRec {
    pub id: String,
    pub name: String,
    pub name_en: String,
    pub code: String,
    /// [lon, lat] of the label point.
    pub center: [f64; 2],
    /// MultiPolygon coordinates, GeoJSON order ([lon, lat]).
    pub polygon: Vec<Vec<Vec<[f64; 2]>>>,
    pub communities: Vec<CommunityRec>,
}

/// A village (村) or community (社区).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommunityRec {
    pub id: String,
    pub name: String,
    pub name_en: String,
    pub code: String,
    pub kind: CommunityKind,
    pub grids: Vec<GridRec>,
}

/// Village or urban community.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CommunityKind {
    Village,
    Community,
}

/// A grid.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GridRec {
    pub id: String,
    pub microgrids: Vec<MicrogridRec>,
}

/// A micro-grid of 50–100 households.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicrogridRec {
    pub id: String,
    pub population: u32,
    pub households: u32,
    /// Zone designation in force at the start (before any zone event).
    pub zone: Zone,
    /// [lon, lat] of the cell, inside the street polygon.
    pub pos: [f64; 2],
    pub team: Team,
}

/// The "1+3+2" team: one leader, three members, two volunteers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Team {
    pub leader: String,
    pub members: Vec<String>,
    pub volunteers: Vec<String>,
}

impl Team {
    /// Team size.
    pub fn size(&self) -> u32 {
        1 + self.members.len() as u32 + self.volunteers.len() as u32
    }
}

/// Micro-grid details kept on its node.
#[derive(Clone, Debug, PartialEq)]
pub struct MicrogridInfo {
    pub zone: Zone,
    pub pos: [f64; 2],
    pub team: Team,
    /// Node indices of the district, street, community, grid and itself.
    pub path: [u32; 5],
}

/// One node of the flattened registry.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeInfo {
    pub id: NodeId,
    pub name: String,
    pub name_en: String,
    pub level: Level,
    pub parent: Option<u32>,
    pub children: Vec<u32>,
    pub population: u64,
    pub households: u64,
    pub microgrids: u32,
    /// Set on micro-grids only.
    pub mg: Option<MicrogridInfo>,
}

/// The loaded registry: every node in an arena, indexed by id.
#[derive(Clone, Debug)]
pub struct Registry {
    pub file: RegistryFile,
    pub nodes: Vec<NodeInfo>,
    /// Node indices of the micro-grids, in file order.
    pub microgrids: Vec<u32>,
    index: HashMap<String, u32>,
}

fn check_segment(node: &str, id: &str) -> Result<(), RegistryError> {
    let ok = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RegistryError::Invalid {
            node: node.to_string(),
            field: "id",
            message: format!("`{id}` must be non-empty lower-case ASCII letters, digits, - or _"),
        })
    }
}

impl Registry {
    /// Parses and checks a registry file.
    ///
    /// Fails with [`RegistryError::Shape`] naming the JSON path of a bad or
    /// missing field, or [`RegistryError::Invalid`] naming the node id.
    pub fn from_json(text: &str) -> Result<Registry, RegistryError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let file: RegistryFile =
            serde_path_to_error::deserialize(de).map_err(|e| RegistryError::Shape {
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        Registry::from_file(file)
    }

    /// Flattens and checks a parsed registry file.
    pub fn from_file(file: RegistryFile) -> Result<Registry, RegistryError> {
        if file.district.id != DISTRICT_ID {
            return Err(RegistryError::Invalid {
                node: file.district.id.clone(),
                field: "id",
                message: format!("the district id must be `{DISTRICT_ID}`"),
            });
        }
        let mut nodes: Vec<NodeInfo> = Vec::new();
        let mut microgrids = Vec::new();
        let mut index = HashMap::new();
        let district_id = NodeId::new(DISTRICT_ID);
        let push = |nodes: &mut Vec<NodeInfo>,
                    index: &mut HashMap<String, u32>,
                    info: NodeInfo|
         -> Result<u32, RegistryError> {
            let i = nodes.len() as u32;
            if index.insert(info.id.as_str().to_string(), i).is_some() {
                return Err(RegistryError::Invalid {
                    node: info.id.to_string(),
                    field: "id",
                    message: "appears twice".into(),
                });
            }
            if let Some(p) = info.parent {
                nodes[p as usize].children.push(i);
            }
            nodes.push(info);
            Ok(i)
        };
        let blank = |id: NodeId, name: &str, name_en: &str, level, parent| NodeInfo {
            id,
            name: name.to_string(),
            name_en: name_en.to_string(),
            level,
            parent,
            children: Vec::new(),
            population: 0,
            households: 0,
            microgrids: 0,
            mg: None,
        };
        let d = push(
            &mut nodes,
            &mut index,
            blank(
                district_id.clone(),
                &file.district.name,
                &file.district.name_en,
                Level::District,
                None,
            ),
        )?;
        for s in &file.streets {
            let sid = district_id.child(&s.id);
            check_segment(sid.as_str(), &s.id)?;
            let si = push(
                &mut nodes,
                &mut index,
                blank(sid.clone(), &s.name, &s.name_en, Level::Street, Some(d)),
            )?;
            for c in &s.communities {
                let cid = sid.child(&c.id);
                check_segment(cid.as_str(), &c.id)?;
                let ci = push(
                    &mut nodes,
                    &mut index,
                    blank(cid.clone(), &c.name, &c.name_en, Level::Community, Some(si)),
                )?;
                for (gn, g) in c.grids.iter().enumerate() {
                    let gid = cid.child(&g.id);
                    check_segment(gid.as_str(), &g.id)?;
                    let gname = format!("{}第{}网格", c.name, gn + 1);
                    let gname_en = format!("{} grid {}", c.name_en, gn + 1);
                    let gi = push(
                        &mut nodes,
                        &mut index,
                        blank(gid.clone(), &gname, &gname_en, Level::Grid, Some(ci)),
                    )?;
                    for (mn, m) in g.microgrids.iter().enumerate() {
                        let mid = gid.child(&m.id);
                        check_segment(mid.as_str(), &m.id)?;
                        let invalid = |field, message: &str| RegistryError::Invalid {
                            node: mid.to_string(),
                            field,
                            message: message.to_string(),
                        };
                        if m.population == 0 {
                            return Err(invalid("population", "must be > 0"));
                        }
                        if m.households == 0 || m.households > m.population {
                            return Err(invalid(
                                "households",
                                "must be > 0 and at most the population",
                            ));
                        }
                        if m.team.leader.is_empty() {
                            return Err(invalid("team.leader", "must not be empty"));
                        }
                        if !m.pos.iter().all(|x| x.is_finite()) {
                            return Err(invalid("pos", "must be finite coordinates"));
                        }
                        let mi = nodes.len() as u32;
                        let mut info = blank(
                            mid.clone(),
                            &format!("{}微网格{}", gname, mn + 1),
                            &format!("{} micro-grid {}", gname_en, mn + 1),
                            Level::Microgrid,
                            Some(gi),
                        );
                        info.population = u64::from(m.population);
                        info.households = u64::from(m.households);
                        info.microgrids = 1;
                        info.mg = Some(MicrogridInfo {
                            zone: m.zone,
                            pos: m.pos,
                            team: m.team.clone(),
                            path: [d, si, ci, gi, mi],
                        });
                        push(&mut nodes, &mut index, info)?;
                        microgrids.push(mi);
                    }
                }
            }
        }
        for &mi in &microgrids {
            let m = &nodes[mi as usize];
            let (pop, hh) = (m.population, m.households);
            let path = m.mg.as_ref().map(|g| g.path).unwrap_or_default();
            for &a in &path[..4] {
                let node = &mut nodes[a as usize];
                node.population += pop;
                node.households += hh;
                node.microgrids += 1;
            }
        }
        for n in &nodes {
            if n.microgrids == 0 {
                return Err(RegistryError::Invalid {
                    node: n.id.to_string(),
                    field: "children",
                    message: "has no micro-grids below it".into(),
                });
            }
        }
        Ok(Registry {
            file,
            nodes,
            microgrids,
            index,
        })
    }

    /// The index of a node id.
    pub fn lookup(&self, id: &str) -> Option<u32> {
        self.index.get(id).copied()
    }

    /// The node at an index.
    pub fn node(&self, i: u32) -> &NodeInfo {
        &self.nodes[i as usize]
    }

    /// The district node's index (always 0).
    pub fn root(&self) -> u32 {
        0
    }

    /// The micro-grid indices below (or equal to) node `i`.
    pub fn microgrids_under(&self, i: u32) -> impl Iterator<Item = u32> + '_ {
        let depth = self.node(i).level.depth();
        self.microgrids.iter().copied().filter(move |&m| {
            self.node(m)
                .mg
                .as_ref()
                .is_some_and(|mg| mg.path[depth] == i)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(population: &str) -> String {
        format!(
            r#"{{"format":1,"generated_by":"t","sources":[],
            "district":{{"id":"beilun","name":"北仑区","name_en":"Beilun","code":"330206"}},
            "streets":[{{"id":"daqi","name":"大碶街道","name_en":"Daqi","code":"330206004","center":[0,0],"polygon":[],
              "communities":[{{"id":"c1","name":"c","name_en":"C","code":"1","kind":"village",
                "grids":[{{"id":"g01","microgrids":[{{"id":"m01","population":{population},"households":10,
                  "zone":"sealed","pos":[0,0],"team":{{"leader":"a","members":["b","c","d"],"volunteers":["e","f"]}}}}]}}]}}]}}]}}"#
        )
    }

    #[test]
    fn loads_and_rolls_up() {
        let r = Registry::from_json(&tiny("230")).expect("valid registry");
        assert_eq!(r.nodes.len(), 5);
        let m = r.lookup("beilun/daqi/c1/g01/m01").expect("micro-grid");
        assert_eq!(r.node(m).level, Level::Microgrid);
        assert_eq!(r.node(r.root()).population, 230);
        assert_eq!(r.microgrids_under(r.root()).count(), 1);
    }

    #[test]
    fn errors_name_the_place_and_the_field() {
        let e = Registry::from_json(&tiny("\"many\"")).expect_err("a string population");
        let msg = e.to_string();
        assert!(
            msg.contains("streets[0].communities[0].grids[0].microgrids[0].population"),
            "{msg}"
        );
        let e = Registry::from_json(&tiny("0")).expect_err("zero population");
        let msg = e.to_string();
        assert!(
            msg.contains("beilun/daqi/c1/g01/m01") && msg.contains("population"),
            "{msg}"
        );
    }
}
