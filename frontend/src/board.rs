//! Testing on the wall: samples per 10 minutes over the local day (the
//! 06:00 peak shows) and the busiest sites' queues, for the district or the
//! street on screen, live from the `beilun/_testing` node.

use gridwatch_model::state::{TESTING_NODE, TestingBoard};
use leptos::prelude::*;
use serde_json::Value;
use std::rc::Rc;

use crate::components::{AsOf, Tile, from_row, slot_rows};
use crate::fmt::thousands;
use crate::i18n::tr;
use crate::live::{Live, Socket};

/// Follows the testing board on the page's socket.
pub fn follow(socket: &Socket) -> (Live, RwSignal<Option<TestingBoard>>) {
    let board = RwSignal::new(None);
    let live = socket.follow_with(TESTING_NODE, move |_| {
        Rc::new(
            move |raw: &Value, _| match serde_json::from_value::<TestingBoard>(raw.clone()) {
                Ok(b) => board.set(Some(b)),
                Err(e) => leptos::logging::warn!("testing board not understood: {e}"),
            },
        )
    });
    (live, board)
}

/// Chart size in SVG units.
const W: f64 = 720.0;
const H: f64 = 150.0;
const AXIS: f64 = 18.0;

/// Samples per 10 minutes today for `node`.
#[component]
pub fn SamplesChart(
    board: RwSignal<Option<TestingBoard>>,
    #[prop(into)] node: Signal<String>,
    live: Live,
) -> impl IntoView {
    let series = Memo::new(move |_| {
        let node = node.get();
        board.with(|b| {
            let mut v = vec![0u64; 144];
            if let Some(s) = b.as_ref().and_then(|b| b.series.get(&node)) {
                for (&k, &n) in s {
                    if let Some(x) = v.get_mut(k as usize) {
                        *x = n;
                    }
                }
            }
            v
        })
    });
    let total = move || thousands(series.with(|s| s.iter().sum()));
    let peak = move || {
        series.with(|s| {
            s.iter()
                .enumerate()
                .max_by_key(|(_, n)| **n)
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| format!("{:02}:{:02} · {}", k / 6, k % 6 * 10, thousands(*n)))
                .unwrap_or_else(|| "–".into())
        })
    };
    let bars = move || {
        series.with(|s| {
            let max = s.iter().copied().max().unwrap_or(0).max(1) as f64;
            let bw = W / 144.0;
            s.iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(k, &n)| {
                    let h = (n as f64 / max) * (H - AXIS - 4.0);
                    view! {
                        <rect class="bar" x=format!("{:.1}", k as f64 * bw + 0.5) y=format!("{:.1}", H - AXIS - h)
                            width=format!("{:.1}", bw - 1.0) height=format!("{h:.1}")/>
                    }
                })
                .collect_view()
        })
    };
    let ticks = (0..=8)
        .map(|i| {
            let x = W * f64::from(i) / 8.0;
            let anchor = match i {
                0 => "start",
                8 => "end",
                _ => "middle",
            };
            view! {
                <line class="tick" x1=format!("{x:.0}") x2=format!("{x:.0}") y1=format!("{:.0}", H - AXIS) y2=format!("{:.0}", H - AXIS + 4.0)/>
                <text class="tick-label" x=format!("{x:.0}") y=format!("{:.0}", H - 2.0) text-anchor=anchor>{format!("{:02}", i * 3)}</text>
            }
        })
        .collect_view();
    view! {
        <section class="panel chart" data-testid="samples-chart">
            <h2>
                {move || tr("今日每10分钟采样", "Samples per 10 minutes, today")}
                <span class="chart-meta">
                    {move || tr("合计 ", "total ")}<b data-testid="chart-total">{total}</b>
                    " · "{move || tr("高峰 ", "peak ")}<b data-testid="chart-peak">{peak}</b>
                    <AsOf live=live/>
                </span>
            </h2>
            <svg viewBox=format!("0 0 {W} {H}") class="chart-svg">
                <line class="axis" x1="0" x2=format!("{W}") y1=format!("{}", H - AXIS) y2=format!("{}", H - AXIS)/>
                {bars}
                {ticks}
            </svg>
        </section>
    }
}

/// The busiest testing sites for `node`.
#[component]
pub fn BusiestSites(
    board: RwSignal<Option<TestingBoard>>,
    #[prop(into)] node: Signal<String>,
    live: Live,
) -> impl IntoView {
    let rows = Memo::new(move |_| {
        let node = node.get();
        board.with(|b| {
            b.as_ref()
                .and_then(|b| b.sites.get(&node).cloned())
                .unwrap_or_default()
        })
    });
    view! {
        <Tile class="sites" testid="busiest-sites" zh="排队最长的采样点" en="Busiest testing sites" live=live>
            <ul>
                {slot_rows(rows, |_| "site".to_string(), move |s| {
                    let site = from_row(s, |s| s.site.clone());
                    // The community, unless the site's name already says it.
                    let place = move || s.with(|s| s.as_ref().filter(|s| !s.site.contains(&s.community_name)).map(|s| s.community_name.clone()));
                    let queue = from_row(s, |s| thousands(s.queue));
                    view! {
                        <span class="site-name">
                            {site}
                            <span class="site-where" hidden=move || place().is_none()>{place}</span>
                        </span>
                        <span class="site-queue">{queue}</span>
                    }
                })}
            </ul>
            <Show when=move || rows.with(Vec::is_empty)>
                <p class="none">{move || tr("暂无排队", "no queues reported")}</p>
            </Show>
        </Tile>
    }
}
