//! The status map: the real street polygons with every micro-grid as a
//! cell inside its street, coloured by status and outlined by zone class,
//! live from the `beilun/_map` node (one code per micro-grid; a delta
//! carries only the cells that changed, and only those cells' signals fire).

use gridwatch_model::Zone;
use gridwatch_model::state::{MAP_NODE, Status, parse_cell_code};
use leptos::prelude::*;
use serde_json::Value;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::components::{AsOf, hms};
use crate::geo::Geo;
use crate::i18n::{name, tr};
use crate::live::{Live, Socket};

/// Alerts kept on the ticker.
pub const ALERTS_KEPT: usize = 40;

/// A micro-grid whose status changed while the page watched.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// Local time of the change (the data's clock), `HH:MM:SS`.
    pub at: String,
    pub ordinal: usize,
    pub zone: Zone,
    pub from: Status,
    pub to: Status,
}

/// One signal per cell, created as cells are first seen (the map and the
/// geometry may arrive in either order).
type Cells = Arc<Mutex<Vec<ArcRwSignal<Option<(Zone, Status)>>>>>;

/// Every cell's code, live.
#[derive(Clone)]
pub struct MapFeed {
    cells: Cells,
    pub live: Live,
    /// Newest first.
    pub alerts: RwSignal<Vec<Alert>>,
    /// Red cells now.
    pub red: RwSignal<u32>,
}

impl MapFeed {
    /// Follows the map node on the page's socket.
    pub fn follow(socket: &Socket) -> MapFeed {
        let cells: Cells = Arc::default();
        let alerts = RwSignal::new(Vec::new());
        let red = RwSignal::new(0u32);
        let c = cells.clone();
        let live = socket.follow_with(MAP_NODE, move |_| {
            Rc::new(move |raw: &Value, patch: Option<&Value>| {
                apply(&c, raw, patch, alerts, red);
            })
        });
        MapFeed {
            cells,
            live,
            alerts,
            red,
        }
    }

    /// The signal of cell `i`.
    pub fn cell(&self, i: usize) -> ArcRwSignal<Option<(Zone, Status)>> {
        cell_of(&self.cells, i)
    }
}

fn cell_of(cells: &Cells, i: usize) -> ArcRwSignal<Option<(Zone, Status)>> {
    let mut v = match cells.lock() {
        Ok(v) => v,
        Err(poisoned) => poisoned.into_inner(),
    };
    while v.len() <= i {
        v.push(ArcRwSignal::new(None));
    }
    v[i].clone()
}

fn apply(
    cells: &Cells,
    raw: &Value,
    patch: Option<&Value>,
    alerts: RwSignal<Vec<Alert>>,
    red: RwSignal<u32>,
) {
    let src = patch.unwrap_or(raw);
    let Some(changed) = src.get("cells").and_then(Value::as_object) else {
        return;
    };
    let at = hms(raw.get("as_of").and_then(Value::as_str).unwrap_or_default());
    let mut new_alerts = Vec::new();
    // Red cells gained (+) or lost (−) by a delta.
    let mut red_moved: i32 = 0;
    let is_red = |c: Option<(Zone, Status)>| i32::from(c.is_some_and(|(_, s)| s == Status::Red));
    for (k, v) in changed {
        let Ok(i) = k.parse::<usize>() else { continue };
        let code = v.as_str().and_then(parse_cell_code);
        let sig = cell_of(cells, i);
        let old = sig.get_untracked();
        if old == code {
            continue;
        }
        sig.set(code);
        red_moved += is_red(code) - is_red(old);
        // Worse than before, while watching: an alert.
        if let (Some(_), Some((zone, to)), Some(_)) = (patch, code, old) {
            let from = old.map_or(Status::Green, |o| o.1);
            if to > from {
                new_alerts.push(Alert {
                    at: at.clone(),
                    ordinal: i,
                    zone,
                    from,
                    to,
                });
            }
        }
    }
    if patch.is_some() {
        red.update(|r| *r = r.saturating_add_signed(red_moved));
    } else {
        let count = match cells.lock() {
            Ok(v) => v
                .iter()
                .filter(|c| c.get_untracked().is_some_and(|(_, s)| s == Status::Red))
                .count() as u32,
            Err(_) => 0,
        };
        red.set(count);
    }
    if !new_alerts.is_empty() {
        alerts.update(|a| {
            for n in new_alerts {
                a.insert(0, n);
            }
            a.truncate(ALERTS_KEPT);
        });
    }
}

fn cell_class(c: Option<(Zone, Status)>) -> &'static str {
    match c {
        None => "cell c-none",
        Some((Zone::Sealed, Status::Red)) => "cell z-s c-r",
        Some((Zone::Sealed, Status::Amber)) => "cell z-s c-a",
        Some((Zone::Sealed, Status::Green)) => "cell z-s c-g",
        Some((Zone::Control, Status::Red)) => "cell z-c c-r",
        Some((Zone::Control, Status::Amber)) => "cell z-c c-a",
        Some((Zone::Control, Status::Green)) => "cell z-c c-g",
        Some((_, Status::Red)) => "cell c-r",
        Some((_, Status::Amber)) => "cell c-a",
        Some((_, Status::Green)) => "cell c-g",
    }
}

/// The map; `focus` zooms on one street (index into `geo.streets`).
#[component]
pub fn MapView(
    geo: Arc<Geo>,
    feed: MapFeed,
    #[prop(into)] focus: Signal<Option<usize>>,
) -> impl IntoView {
    let (w, h, size) = (geo.width, geo.height, geo.cell);
    let feed_live = feed.live;
    let g = geo.clone();
    let view_box = move || match focus.get().and_then(|i| g.streets.get(i)) {
        Some(s) => {
            let (x, y, bw, bh) = s.bbox;
            let pad = bw.max(bh) * 0.08;
            format!(
                "{:.0} {:.0} {:.0} {:.0}",
                x - pad,
                y - pad,
                bw + 2.0 * pad,
                bh + 2.0 * pad
            )
        }
        None => format!("0 0 {w:.0} {h:.0}"),
    };
    let streets = geo
        .streets
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let cls = move || {
                if focus.get() == Some(i) {
                    "street focus"
                } else {
                    "street"
                }
            };
            view! { <path d=s.path.clone() class=cls data-node=s.node.clone()/> }
        })
        .collect_view();
    let cells = geo
        .cells
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let sig = feed.cell(i);
            view! {
                <rect x=format!("{:.1}", c.x - size / 2.0) y=format!("{:.1}", c.y - size / 2.0)
                    width=format!("{size:.1}") height=format!("{size:.1}")
                    class=move || cell_class(sig.get())/>
            }
        })
        .collect_view();
    // Labels keep their size on screen when the map zooms on a street.
    let g = geo.clone();
    let label_size = move || {
        let zoom = focus
            .get()
            .and_then(|i| g.streets.get(i))
            .map_or(1.0, |s| (s.bbox.2.max(s.bbox.3) * 1.16 / w).min(1.0));
        format!("{:.1}px", 18.0 * zoom)
    };
    let labels = geo
        .streets
        .iter()
        .map(|s| {
            let (zh, en) = (s.name.clone(), s.name_en.clone());
            let short = move || name(&zh, &en).trim_end_matches("街道").trim_end_matches('镇').to_string();
            view! { <text x=format!("{:.0}", s.label.0) y=format!("{:.0}", s.label.1) class="street-label">{short}</text> }
        })
        .collect_view();
    view! {
        <div class="map-wrap">
            <svg class="map" data-testid="map" viewBox=view_box preserveAspectRatio="xMidYMid meet">
                <g class="streets">{streets}</g>
                <g class="cells">{cells}</g>
                <g class="labels" font-size=label_size>{labels}</g>
            </svg>
            <div class="legend">
                <span><i class="sw c-g"></i>{move || tr("正常", "green")}</span>
                <span><i class="sw c-a"></i>{move || tr("关注", "amber")}</span>
                <span><i class="sw c-r"></i>{move || tr("红色", "red")}</span>
                <span><i class="sw z-s"></i>{move || tr("封控区", "sealed")}</span>
                <span><i class="sw z-c"></i>{move || tr("管控区", "control")}</span>
                <AsOf live=feed_live/>
                <span class="legend-count" data-testid="map-red">{move || feed.red.get()}" "{move || tr("红色", "red")}</span>
            </div>
        </div>
    }
}
