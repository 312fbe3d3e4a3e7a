//! The district's geometry for the map, from `GET /api/v1/hierarchy`
//! (fetched once): the real street polygons and every micro-grid's cell
//! position, projected to SVG coordinates, plus the names of streets and
//! communities for labels.

use gridwatch_model::api::Hierarchy;
use std::collections::HashMap;
use std::sync::Arc;

/// SVG width of the map; the height follows the district's shape.
const WIDTH: f64 = 1000.0;

/// One street.
#[derive(Clone, Debug, PartialEq)]
pub struct StreetGeo {
    pub node: String,
    pub name: String,
    pub name_en: String,
    /// SVG path of its polygons.
    pub path: String,
    /// Where its label goes.
    pub label: (f64, f64),
    /// Its micro-grids' ordinals.
    pub cells: std::ops::Range<usize>,
    /// Its bounding box (x, y, w, h), to zoom on it.
    pub bbox: (f64, f64, f64, f64),
}

/// One micro-grid's cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    pub node: String,
    pub x: f64,
    pub y: f64,
    pub street: usize,
}

/// The map's geometry.
#[derive(Clone, Debug, PartialEq)]
pub struct Geo {
    pub width: f64,
    pub height: f64,
    /// Side of a cell.
    pub cell: f64,
    pub streets: Vec<StreetGeo>,
    /// By micro-grid ordinal (registry order).
    pub cells: Vec<Cell>,
    /// Community node → (name, English name).
    pub names: HashMap<String, (String, String)>,
}

impl Geo {
    /// Builds the geometry from the hierarchy. Micro-grids are listed in
    /// registry order, so their position is their ordinal. `None` when it
    /// has no area to draw.
    pub fn from_hierarchy(h: &Hierarchy) -> Option<Geo> {
        let points = || {
            h.streets
                .iter()
                .flat_map(|s| &s.polygon)
                .flatten()
                .flatten()
        };
        // Bounding box over every polygon point.
        let (mut lon0, mut lon1, mut lat0, mut lat1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &[x, y] in points() {
            lon0 = lon0.min(x);
            lon1 = lon1.max(x);
            lat0 = lat0.min(y);
            lat1 = lat1.max(y);
        }
        if lon0 >= lon1 || lat0 >= lat1 {
            return None;
        }
        // Equirectangular, shrunk by cos(latitude) so shapes keep their look.
        let k = (((lat0 + lat1) / 2.0).to_radians()).cos();
        let scale = WIDTH / ((lon1 - lon0) * k);
        let height = (lat1 - lat0) * scale;
        let proj = move |[lon, lat]: [f64; 2]| ((lon - lon0) * k * scale, (lat1 - lat) * scale);

        let mut out = Geo {
            width: WIDTH,
            height,
            cell: 0.0,
            streets: Vec::new(),
            cells: Vec::new(),
            names: HashMap::new(),
        };
        for (si, s) in h.streets.iter().enumerate() {
            let mut path = String::new();
            let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
            for ring in s.polygon.iter().flatten() {
                for (i, &p) in ring.iter().enumerate() {
                    let (x, y) = proj(p);
                    (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
                    path.push_str(&format!("{}{x:.1} {y:.1}", if i == 0 { "M" } else { "L" }));
                }
                path.push('Z');
            }
            let first = out.cells.len();
            for c in &s.communities {
                out.names
                    .insert(c.node.clone(), (c.name.clone(), c.name_en.clone()));
                for m in c.grids.iter().flat_map(|g| &g.microgrids) {
                    let (x, y) = proj(m.pos);
                    out.cells.push(Cell {
                        node: m.node.clone(),
                        x,
                        y,
                        street: si,
                    });
                }
            }
            out.streets.push(StreetGeo {
                node: s.node.clone(),
                name: s.name.clone(),
                name_en: s.name_en.clone(),
                path,
                label: proj(s.center),
                cells: first..out.cells.len(),
                bbox: (x0, y0, (x1 - x0).max(1.0), (y1 - y0).max(1.0)),
            });
        }
        // Cells a little smaller than their spacing if spread evenly.
        let n = out.cells.len().max(1) as f64;
        out.cell = ((WIDTH * height * 0.45) / n).sqrt() * 0.55;
        Some(out)
    }

    /// The street a node belongs to.
    pub fn street_of(&self, node: &str) -> Option<&StreetGeo> {
        let street: String = node.split('/').take(2).collect::<Vec<_>>().join("/");
        self.streets.iter().find(|s| s.node == street)
    }

    /// "Street · community g05/m03" for a micro-grid id, in the language
    /// asked for.
    pub fn place(&self, node: &str, en: bool) -> String {
        let parts: Vec<&str> = node.split('/').collect();
        let street = self
            .street_of(node)
            .map(|s| if en { &s.name_en } else { &s.name })
            .cloned()
            .unwrap_or_default();
        let community = parts.get(..3).map(|p| p.join("/")).unwrap_or_default();
        let community = self
            .names
            .get(&community)
            .map(|(zh, e)| {
                if en && !e.is_empty() {
                    e.clone()
                } else {
                    zh.clone()
                }
            })
            .unwrap_or_default();
        let rest = parts.get(3..).map(|p| p.join("/")).unwrap_or_default();
        format!("{street} · {community} {rest}")
    }
}

/// Fetches the hierarchy and builds the geometry; `None` when the server
/// cannot be reached or answers something else (the caller retries).
pub async fn fetch() -> Option<Arc<Geo>> {
    let h: Hierarchy = crate::live::fetch("/api/v1/hierarchy").await?;
    Geo::from_hierarchy(&h).map(Arc::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn projects_streets_and_cells_in_order() {
        let h = json!({"node": "beilun", "name": "北仑区", "name_en": "Beilun", "sources": [],
            "streets": [
            {"node": "beilun/a", "name": "甲", "name_en": "A", "code": "1", "center": [121.5, 29.9],
             "polygon": [[[[121.0, 29.8], [122.0, 29.8], [122.0, 30.0], [121.0, 30.0]]]],
             "communities": [{"node": "beilun/a/c", "name": "丙", "name_en": "C", "code": "2",
                "kind": "community", "grids": [
                {"node": "beilun/a/c/g01", "microgrids": [
                    {"node": "beilun/a/c/g01/m01", "pos": [121.0, 30.0], "population": 1,
                     "households": 1, "zone": "sealed"},
                    {"node": "beilun/a/c/g01/m02", "pos": [122.0, 29.8], "population": 1,
                     "households": 1, "zone": "sealed"}]}]}]}
        ]});
        let h: Hierarchy = serde_json::from_value(h).expect("a hierarchy");
        let g = Geo::from_hierarchy(&h).expect("geometry");
        assert_eq!(g.cells.len(), 2);
        assert_eq!(g.streets[0].cells, 0..2);
        let (a, b) = (&g.cells[0], &g.cells[1]);
        assert!(
            (a.x - 0.0).abs() < 1e-6 && (a.y - 0.0).abs() < 1e-6,
            "north-west corner"
        );
        assert!((b.x - WIDTH).abs() < 1e-6 && (b.y - g.height).abs() < 1e-6);
        assert!(g.height > 0.0 && g.height < WIDTH);
        assert_eq!(g.place("beilun/a/c/g01/m02", false), "甲 · 丙 g01/m02");
        assert_eq!(g.place("beilun/a/c/g01/m02", true), "A · C g01/m02");
    }
}
