//! Regenerates `data/beilun-registry.json` from the public source data in
//! `data/source/` (see `data/source/NOTICE.md`).
//!
//! Real: the 11 streets (names, pinyin, NBS codes, polygons) and the 235
//! villages and communities under them (the three units of the bonded zone,
//! 保税区, which lies inside Xinqi, are placed under Xinqi). Generated,
//! deterministically: 672 grids and 4,477 micro-grids (Daqi: 272 and 1,010
//! with 217,000 people, as the article says; the rest of the district's
//! 829,448 residents spread in proportion to community counts), households,
//! "1+3+2" teams, the starting zones and each micro-grid's cell position
//! inside its street polygon.
//!
//! Usage: `cargo run -p gridwatch-registry-gen -- [SOURCE_DIR] [OUT_FILE]`.

use anyhow::{Context, Result, bail};
use gridwatch_model::Zone;
use gridwatch_model::registry::{
    CommunityKind, CommunityRec, DistrictRec, GridRec, MicrogridRec, Registry, RegistryFile,
    SourceNotice, StreetRec, Team,
};
use pinyin::ToPinyin;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::PathBuf;

const SEED: u64 = 20221015;
const DISTRICT_POPULATION: u64 = 829_448;
const DISTRICT_GRIDS: usize = 672;
const DISTRICT_MICROGRIDS: usize = 4_477;
const DAQI_CODE: &str = "330206004";
const DAQI_GRIDS: usize = 272;
const DAQI_MICROGRIDS: usize = 1_010;
const DAQI_POPULATION: u64 = 217_000;
const BONDED_ZONE_CODE: &str = "330206401";
const XINQI_CODE: &str = "330206002";

#[derive(Deserialize)]
struct Geo {
    features: Vec<Feature>,
}
#[derive(Deserialize)]
struct Feature {
    properties: Props,
    geometry: Geometry,
}
#[derive(Deserialize)]
struct Props {
    name: String,
    name_pinyin: String,
    town_code: String,
    center: [f64; 2],
}
#[derive(Deserialize)]
struct Geometry {
    coordinates: Vec<Vec<Vec<[f64; 2]>>>,
}
#[derive(Deserialize)]
struct Nbs {
    towns: Vec<Town>,
}
#[derive(Deserialize)]
struct Town {
    code: String,
    units: Vec<Unit>,
}
#[derive(Deserialize)]
struct Unit {
    code: String,
    name: String,
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let src = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("data/source"));
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("data/beilun-registry.json"));
    let geo: Geo = serde_json::from_str(
        &std::fs::read_to_string(src.join("beilun-streets.geojson"))
            .context("reading beilun-streets.geojson")?,
    )
    .context("parsing beilun-streets.geojson")?;
    let nbs: Nbs = serde_json::from_str(
        &std::fs::read_to_string(src.join("beilun-communities-nbs2021.json"))
            .context("reading beilun-communities-nbs2021.json")?,
    )
    .context("parsing beilun-communities-nbs2021.json")?;
    let file = generate(geo, nbs)?;
    let reg = Registry::from_file(file.clone()).context("the generated registry is invalid")?;
    let root_node = reg.node(reg.root());
    println!(
        "streets {} communities {} grids {} micro-grids {} population {}",
        file.streets.len(),
        file.streets
            .iter()
            .map(|s| s.communities.len())
            .sum::<usize>(),
        reg.nodes
            .iter()
            .filter(|n| n.level == gridwatch_model::Level::Grid)
            .count(),
        root_node.microgrids,
        root_node.population
    );
    std::fs::write(&out, serde_json::to_string(&file)? + "\n")
        .with_context(|| format!("writing {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}

fn slug_pinyin(name: &str) -> String {
    let mut s = String::new();
    for (ch, p) in name.chars().zip(name.to_pinyin()) {
        match p {
            Some(p) => s.push_str(&p.plain().replace('ü', "v")),
            None if ch.is_ascii_alphanumeric() => s.push(ch.to_ascii_lowercase()),
            None => {}
        }
    }
    s
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Splits `total` into parts proportional to `weights`, each at least
/// `min`, summing exactly to `total` (largest remainder).
fn apportion(total: u64, weights: &[f64], min: u64) -> Vec<u64> {
    let n = weights.len() as u64;
    let rest = total - min * n;
    let sum: f64 = weights.iter().sum();
    let raw: Vec<f64> = weights.iter().map(|w| w / sum * rest as f64).collect();
    let mut parts: Vec<u64> = raw.iter().map(|r| r.floor() as u64).collect();
    let mut left = rest - parts.iter().sum::<u64>();
    let mut order: Vec<usize> = (0..raw.len()).collect();
    order.sort_by(|&a, &b| {
        let fa = raw[a] - raw[a].floor();
        let fb = raw[b] - raw[b].floor();
        fb.total_cmp(&fa).then(a.cmp(&b))
    });
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        parts[i] += 1;
        left -= 1;
    }
    parts.iter().map(|p| p + min).collect()
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "胡", "朱", "高", "林",
    "何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "萧", "程", "曹",
    "袁", "邓", "许", "傅", "沈", "曾", "彭", "吕", "苏", "卢", "蒋", "蔡", "贾", "丁", "魏", "薛",
    "叶", "阎", "余", "潘", "杜", "戴", "夏", "钟", "汪", "田", "任", "姜", "范", "方", "石", "姚",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "英", "华", "建", "国", "红", "文", "辉", "玲", "海", "波",
    "宁", "浩", "雪", "琴", "斌", "鹏", "飞", "萍", "晨", "宇", "欣", "佳", "婷", "俊", "峰", "慧",
];

fn person(rng: &mut ChaCha8Rng) -> String {
    let mut s = SURNAMES[rng.random_range(0..SURNAMES.len())].to_string();
    for _ in 0..rng.random_range(1..=2) {
        s.push_str(GIVEN[rng.random_range(0..GIVEN.len())]);
    }
    s
}

fn point_in_ring(p: [f64; 2], ring: &[[f64; 2]]) -> bool {
    let mut inside = false;
    let mut j = ring.len().wrapping_sub(1);
    for i in 0..ring.len() {
        let (a, b) = (ring[i], ring[j]);
        if (a[1] > p[1]) != (b[1] > p[1])
            && p[0] < (b[0] - a[0]) * (p[1] - a[1]) / (b[1] - a[1]) + a[0]
        {
            inside = !inside;
        }
        j = i;
    }
    inside
}

fn in_multipolygon(p: [f64; 2], mp: &[Vec<Vec<[f64; 2]>>]) -> bool {
    mp.iter().any(|poly| {
        poly.first().is_some_and(|outer| point_in_ring(p, outer))
            && !poly[1..].iter().any(|hole| point_in_ring(p, hole))
    })
}

/// `n` cell centres on a lattice inside the polygon, in serpentine row order
/// so that consecutive micro-grids (one community's) sit together.
fn cells(mp: &[Vec<Vec<[f64; 2]>>], n: usize) -> Result<Vec<[f64; 2]>> {
    let pts = mp.iter().flatten().flatten();
    let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
    for p in pts {
        x0 = x0.min(p[0]);
        y0 = y0.min(p[1]);
        x1 = x1.max(p[0]);
        y1 = y1.max(p[1]);
    }
    let mut step = ((x1 - x0) * (y1 - y0) / n as f64).sqrt();
    for _ in 0..200 {
        let mut out = Vec::new();
        let mut row = 0;
        let mut y = y1 - step / 2.0;
        while y > y0 {
            let mut line = Vec::new();
            let mut x = x0 + step / 2.0;
            while x < x1 {
                if in_multipolygon([x, y], mp) {
                    line.push([x, y]);
                }
                x += step;
            }
            if row % 2 == 1 {
                line.reverse();
            }
            out.extend(line);
            row += 1;
            y -= step;
        }
        if out.len() >= n {
            // Spread the surplus evenly instead of leaving the end empty.
            let picked = (0..n).map(|i| out[i * out.len() / n]).collect();
            return Ok(picked);
        }
        step *= 0.97;
    }
    bail!("could not place {n} cells inside the polygon")
}

fn generate(geo: Geo, nbs: Nbs) -> Result<RegistryFile> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut features = geo.features;
    features.sort_by(|a, b| a.properties.town_code.cmp(&b.properties.town_code));
    if features.len() != 11 {
        bail!("expected 11 streets, found {}", features.len());
    }
    // Units per street; the bonded zone's go to Xinqi.
    let units_of = |code: &str| -> Vec<&Unit> {
        let mut v: Vec<&Unit> = nbs
            .towns
            .iter()
            .filter(|t| t.code == code || (code == XINQI_CODE && t.code == BONDED_ZONE_CODE))
            .flat_map(|t| t.units.iter())
            .collect();
        v.sort_by(|a, b| a.code.cmp(&b.code));
        v
    };
    let street_units: Vec<Vec<&Unit>> = features
        .iter()
        .map(|f| units_of(&f.properties.town_code))
        .collect();
    let total_units: usize = street_units.iter().map(|u| u.len()).sum();
    if total_units != 235 {
        bail!("expected 235 villages and communities, found {total_units}");
    }
    // Community weights: urban communities are denser than villages.
    let mut weights: Vec<Vec<f64>> = Vec::new();
    for units in &street_units {
        weights.push(
            units
                .iter()
                .map(|u| {
                    let urban = !is_village(u);
                    (if urban { 1.5 } else { 1.0 }) * rng.random_range(0.7..1.3)
                })
                .collect(),
        );
    }
    let daqi = features
        .iter()
        .position(|f| f.properties.town_code == DAQI_CODE)
        .context("Daqi street is missing from the polygons")?;
    // Grids and micro-grids per community: Daqi from the article, the rest
    // of the district's totals in proportion to community weights.
    let flat_other: Vec<f64> = weights
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != daqi)
        .flat_map(|(_, w)| w.iter().copied())
        .collect();
    let other_grids = apportion((DISTRICT_GRIDS - DAQI_GRIDS) as u64, &flat_other, 1);
    let daqi_grids = apportion(DAQI_GRIDS as u64, &weights[daqi], 1);
    let mut grids_per: Vec<Vec<u64>> = Vec::new();
    let mut k = 0;
    for (i, w) in weights.iter().enumerate() {
        if i == daqi {
            grids_per.push(daqi_grids.clone());
        } else {
            grids_per.push(other_grids[k..k + w.len()].to_vec());
            k += w.len();
        }
    }
    let gw_all: Vec<Vec<f64>> = grids_per
        .iter()
        .map(|g| {
            (0..g.iter().sum::<u64>())
                .map(|_| rng.random_range(0.6..1.4))
                .collect()
        })
        .collect();
    let other_gw: Vec<f64> = gw_all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != daqi)
        .flat_map(|(_, w)| w.iter().copied())
        .collect();
    let other_mg = apportion((DISTRICT_MICROGRIDS - DAQI_MICROGRIDS) as u64, &other_gw, 1);
    let daqi_mg = apportion(DAQI_MICROGRIDS as u64, &gw_all[daqi], 1);
    let mut mg_per_grid: Vec<Vec<u64>> = Vec::new();
    let mut k = 0;
    for (i, w) in gw_all.iter().enumerate() {
        if i == daqi {
            mg_per_grid.push(daqi_mg.clone());
        } else {
            mg_per_grid.push(other_mg[k..k + w.len()].to_vec());
            k += w.len();
        }
    }
    let mg_counts: Vec<usize> = mg_per_grid
        .iter()
        .map(|v| v.iter().sum::<u64>() as usize)
        .collect();
    let other_mw: Vec<f64> = (0..DISTRICT_MICROGRIDS - DAQI_MICROGRIDS)
        .map(|_| rng.random_range(0.75..1.25))
        .collect();
    let daqi_mw: Vec<f64> = (0..DAQI_MICROGRIDS)
        .map(|_| rng.random_range(0.75..1.25))
        .collect();
    let other_pop = apportion(DISTRICT_POPULATION - DAQI_POPULATION, &other_mw, 60);
    let daqi_pop = apportion(DAQI_POPULATION, &daqi_mw, 60);

    let mut streets = Vec::new();
    let mut other_pop_k = 0;
    for (si, f) in features.into_iter().enumerate() {
        let p = f.properties;
        let sid = p
            .name_pinyin
            .split_whitespace()
            .next()
            .context("a street has no pinyin")?
            .to_lowercase();
        let positions = cells(&f.geometry.coordinates, mg_counts[si])
            .with_context(|| format!("placing cells in {}", p.name))?;
        let mut pos_k = 0;
        let mut grid_k = 0;
        let mut seen = HashSet::new();
        let mut communities = Vec::new();
        for (ci, u) in street_units[si].iter().enumerate() {
            let short = u
                .name
                .trim_end_matches("居委会")
                .trim_end_matches("村委会")
                .trim_end_matches("社区");
            let mut cid = slug_pinyin(short);
            if !seen.insert(cid.clone()) {
                cid = format!("{cid}-{}", &u.code[u.code.len() - 3..]);
                seen.insert(cid.clone());
            }
            let kind = if is_village(u) {
                CommunityKind::Village
            } else {
                CommunityKind::Community
            };
            let name_en = format!(
                "{} {}",
                title(&slug_pinyin(short)),
                if kind == CommunityKind::Village {
                    "Village"
                } else {
                    "Community"
                }
            );
            let mut grids = Vec::new();
            for g in 0..grids_per[si][ci] {
                let n_mg = mg_per_grid[si][grid_k];
                grid_k += 1;
                let mut microgrids = Vec::new();
                for m in 0..n_mg {
                    let population = if si == daqi {
                        daqi_pop[pos_k]
                    } else {
                        let v = other_pop[other_pop_k];
                        other_pop_k += 1;
                        v
                    };
                    let per_household = rng.random_range(2.5..3.3);
                    let households = ((population as f64 / per_household).round() as u32).max(1);
                    microgrids.push(MicrogridRec {
                        id: format!("m{:02}", m + 1),
                        population: population as u32,
                        households,
                        zone: Zone::Prevention,
                        pos: positions[pos_k],
                        team: Team {
                            leader: person(&mut rng),
                            members: (0..3).map(|_| person(&mut rng)).collect(),
                            volunteers: (0..2).map(|_| person(&mut rng)).collect(),
                        },
                    });
                    pos_k += 1;
                }
                grids.push(GridRec {
                    id: format!("g{:02}", g + 1),
                    microgrids,
                });
            }
            communities.push(CommunityRec {
                id: cid,
                name: u.name.clone(),
                name_en,
                code: u.code.clone(),
                kind,
                grids,
            });
        }
        streets.push(StreetRec {
            id: sid,
            name: p.name,
            name_en: p.name_pinyin.replace(" Jiedao", ""),
            code: p.town_code,
            center: p.center,
            polygon: f.geometry.coordinates,
            communities,
        });
    }
    designate_zones(&mut streets, &mut rng);
    Ok(RegistryFile {
        format: 1,
        generated_by: "tools/registry-gen (cargo run -p gridwatch-registry-gen)".into(),
        sources: vec![
            SourceNotice {
                what: "street polygons (names, pinyin and NBS codes added)".into(),
                source: "ViriousCode/learn-three-demo, src/components/北仑区.json".into(),
                license: "MIT, Copyright (c) 2026 ViriousCode".into(),
            },
            SourceNotice {
                what: "villages and communities with NBS 2021 codes".into(),
                source: "liyanjie2048/AdministrativeDivisionCn, json/2021/345/345-3302.json".into(),
                license: "MIT, Copyright (c) liyanjie2048".into(),
            },
            SourceNotice {
                what: "grids, micro-grids, populations, households, teams, zones, cell positions"
                    .into(),
                source: "generated by tools/registry-gen (seed 20221015) to the article's totals"
                    .into(),
                license: "MIT (this project)".into(),
            },
        ],
        district: DistrictRec {
            id: "beilun".into(),
            name: "北仑区".into(),
            name_en: "Beilun District".into(),
            code: "330206".into(),
        },
        streets,
    })
}

fn is_village(u: &Unit) -> bool {
    u.code.as_bytes().get(9) == Some(&b'2')
}

/// Starting designations: a sealed cluster with a control ring in a Daqi
/// community (12 sealed, 40 control micro-grids as in DESIGN's example) and
/// a smaller one in Xiaogang; everything else is a prevention zone, as all
/// of Beilun was in October 2022.
fn designate_zones(streets: &mut [StreetRec], rng: &mut ChaCha8Rng) {
    let clusters = [("daqi", 12usize, 40usize), ("xiaogang", 6, 18)];
    for (sid, sealed, control) in clusters {
        let Some(s) = streets.iter_mut().find(|s| s.id == sid) else {
            continue;
        };
        let start = rng.random_range(0..s.communities.len() / 2);
        let mut left_sealed = sealed;
        let mut left_control = control;
        for c in s.communities.iter_mut().skip(start) {
            for g in &mut c.grids {
                for m in &mut g.microgrids {
                    if left_sealed > 0 {
                        m.zone = Zone::Sealed;
                        left_sealed -= 1;
                    } else if left_control > 0 {
                        m.zone = Zone::Control;
                        left_control -= 1;
                    }
                }
            }
            if left_sealed == 0 && left_control == 0 {
                break;
            }
        }
    }
}
