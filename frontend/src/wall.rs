//! `/wall`: the command-center wall display, for 1920×1080 and 3840×2160,
//! read from across the room, no interaction. Header (district, Beilun
//! time, age of the data, connection), the zone panels, the live map with
//! every micro-grid, the alert ticker, testing completion by street. With
//! `?rotate=N` it shows the district, then each street in turn for N
//! seconds: the map zooms on the street and the panels show its figures
//! and its communities. With `?at=2022-10-15T14:00` it shows the wall as
//! it was at the end of that minute, from the history, under a replay
//! banner, and nothing live.

use gridwatch_model::ids::DISTRICT_ID;
use gridwatch_model::state::{ChildSummary, TestingBoard};
use gridwatch_model::{Level, NodeState, Zone};
use leptos::prelude::*;
use std::sync::Arc;
use std::time::Duration;

use crate::board::{self, BusiestSites, SamplesChart};
use crate::components::{Header, Tile, ZonePanel, from_row, slot_rows, status_class, status_name};
use crate::deadlines::DeadlineBoard;
use crate::district::RedList;
use crate::fmt::{percent, thousands};
use crate::geo::{self, Geo};
use crate::i18n::{Lang, lang, name, tr};
use crate::live::{Live, Socket};
use crate::map::{MapFeed, MapView};
use crate::route::query;

/// The wall.
#[component]
pub fn WallPage() -> impl IntoView {
    // One socket for everything the wall shows.
    // `?at=2022-10-15T14:00`: the wall as it was at that minute.
    let at = query("at").filter(|a| !a.is_empty());
    let socket = Socket::open_at(at.clone());
    let live = socket.follow(DISTRICT_ID);
    let feed = MapFeed::follow(&socket);
    let (board_live, board) = board::follow(&socket);
    let geo: RwSignal<Option<Arc<Geo>>> = RwSignal::new(None);
    // The geometry is static: fetch it once, retrying until the server
    // answers (the wall may start before the backend).
    leptos::task::spawn_local(async move {
        let mut wait = 1000;
        loop {
            if let Some(g) = geo::fetch().await {
                geo.set(Some(g));
                return;
            }
            sleep_ms(wait).await;
            wait = (wait * 2).min(30_000);
        }
    });
    // Rotation: district, then each street in turn.
    let focus: RwSignal<Option<usize>> = RwSignal::new(None);
    if let Some(secs) = query("rotate")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
    {
        set_interval(
            move || {
                let streets = geo.with_untracked(|g| g.as_ref().map_or(0, |g| g.streets.len()));
                let next = match focus.get_untracked() {
                    None if streets > 0 => Some(0),
                    Some(i) if i + 1 < streets => Some(i + 1),
                    _ => None,
                };
                focus.set(next);
                let node = next
                    .and_then(|i| {
                        geo.with_untracked(|g| g.as_ref().map(|g| g.streets[i].node.clone()))
                    })
                    .unwrap_or_else(|| DISTRICT_ID.to_string());
                live.node.set(node);
            },
            Duration::from_secs(secs),
        );
    }
    let replay_mode = live.replay;
    let state = Memo::new(move |_| live.state.get());
    let stale = move || live.stale();
    let subtitle = Signal::derive(move || {
        state.with(|s| match s {
            Some(s) if s.level == Level::Street => {
                let en = lang() == Lang::En;
                let street = geo.with(|g| {
                    g.as_ref()
                        .and_then(|g| g.streets.iter().find(|x| x.node == s.node))
                        .map(|x| {
                            if en {
                                x.name_en.clone()
                            } else {
                                x.name.clone()
                            }
                        })
                });
                street.unwrap_or_else(|| s.name.clone())
            }
            _ => tr("全区", "whole district").to_string(),
        })
    });
    let ticker_feed = feed.clone();
    let map = move || {
        geo.get()
            .map(|g| view! { <MapView geo=g feed=feed.clone() focus=focus/> })
    };
    let replay = at.map(|at| {
        let (day, time) = at.split_once('T').unwrap_or((at.as_str(), ""));
        let shown = format!("{} {}", day, time.get(..5).unwrap_or(time));
        view! {
            <div class="replay-banner" data-testid="replay-banner">
                <b>{move || format!("{} {}", tr("回放", "replay"), shown)}</b>
                <span>{move || tr("历史画面，非实时", "from history, not live")}</span>
                <a href="/wall">{move || tr("回到实时", "back to live")}</a>
            </div>
        }
    });
    let class = move || match (replay_mode, stale()) {
        (true, _) => "wall replay",
        (false, true) => "wall stale",
        (false, false) => "wall",
    };
    view! {
        <main class=class data-testid="wall">
            {replay}
            // A replay shows its own minute, not the time now.
            <Header live=live clock=!replay_mode subtitle=subtitle/>
            <div class="wall-grid">
                <div class="wall-zones">
                    <ZonePanel zone=Zone::Sealed state=state live=live/>
                    <ZonePanel zone=Zone::Control state=state live=live/>
                    <ZonePanel zone=Zone::Prevention state=state live=live/>
                </div>
                <section class="wall-map panel" data-testid="wall-map">
                    <Totals state=state/>
                    {map}
                </section>
                <div class="wall-side">
                    <Ticker feed=ticker_feed geo=geo/>
                    <BusiestSites board=board node=live.node live=board_live/>
                    <Children state=state board=board live=live/>
                    <DeadlineBoard state=state live=live/>
                </div>
                <div class="wall-bottom">
                    <SamplesChart board=board node=live.node live=board_live/>
                    <RedList state=state limit=4/>
                </div>
            </div>
        </main>
    }
}

async fn sleep_ms(ms: i32) {
    let p = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(p).await;
}

/// The headline figures of the node shown.
#[component]
fn Totals(state: Memo<Option<NodeState>>) -> impl IntoView {
    let num = move |get: fn(&NodeState) -> String| {
        move || state.with(|s| s.as_ref().map(get).unwrap_or_else(|| "–".into()))
    };
    view! {
        <section class="wall-totals" data-testid="wall-totals">
            <div><b data-testid="wall-red">{num(|s| thousands(s.red_microgrids.into()))}</b><span>{move || tr("红色微网格", "red micro-grids")}</span></div>
            <div><b data-testid="wall-amber">{num(|s| thousands(s.amber_microgrids.into()))}</b><span>{move || tr("关注微网格", "amber micro-grids")}</span></div>
            <div><b data-testid="wall-patrols">{num(|s| thousands(s.patrol.patrols_1h))}</b><span>{move || tr("1小时巡查", "patrols, last hour")}</span></div>
            <div><b data-testid="wall-samples">{num(|s| thousands(s.testing.samples_today))}</b><span>{move || tr("今日采样", "samples today")}</span></div>
            <div><b data-testid="wall-completion">{num(|s| percent(s.testing.completion_today))}</b><span>{move || tr("采样完成", "tested today")}</span></div>
            <div><b data-testid="wall-flags">{num(|s| thousands(s.video.flags_open))}</b><span>{move || tr("视频告警", "open video flags")}</span></div>
            <div><b data-testid="wall-incidents">{num(|s| thousands(s.incidents.open))}</b><span>{move || tr("待办事件", "open incidents")}</span></div>
        </section>
    }
}

/// The ticker: micro-grids that turned amber or red while the wall
/// watched, newest first, with the data's local time.
#[component]
fn Ticker(feed: MapFeed, geo: RwSignal<Option<Arc<Geo>>>) -> impl IntoView {
    let alerts = feed.alerts;
    let feed_live = feed.live;
    let shown = Memo::new(move |_| {
        alerts.with(|a| a.iter().take(TICKER_SHOWN).cloned().collect::<Vec<_>>())
    });
    view! {
        <Tile class="ticker" testid="ticker" zh="实时告警" en="Alerts" live=feed_live>
            <ul>
                {slot_rows(shown, |a| format!("alert {}", status_class(a.to)), move |a| {
                    let place = move || a.with(|a| a.as_ref().and_then(|a| geo.with(|g| g.as_ref().and_then(|g| {
                        g.cells.get(a.ordinal).map(|c| g.place(&c.node, lang() == Lang::En))
                    })))).unwrap_or_default();
                    let at = move || a.with(|a| a.as_ref().and_then(|a| a.at.get(..5)).unwrap_or_default().to_string());
                    let what = from_row(a, |a| status_name(a.to));
                    view! {
                        <span class="alert-at">{at}</span>
                        <span class="alert-what">{what}</span>
                        <span class="alert-where">{place}</span>
                    }
                })}
            </ul>
            <Show when=move || alerts.with(Vec::is_empty)>
                <p class="none">{move || tr("暂无新告警", "no new alerts")}</p>
            </Show>
        </Tile>
    }
}

/// The node's children (streets of the district, communities of a street):
/// testing completion today (samples from the testing board over the
/// child's population), red micro-grids, worst first.
#[component]
fn Children(
    state: Memo<Option<NodeState>>,
    board: RwSignal<Option<TestingBoard>>,
    live: Live,
) -> impl IntoView {
    let rows = Memo::new(move |_| {
        let mut c: Vec<(ChildSummary, f64)> = state.with(|s| {
            let children = s.as_ref().map(|s| s.children.clone()).unwrap_or_default();
            board.with(|b| {
                children
                    .into_iter()
                    .map(|c| {
                        let samples = b
                            .as_ref()
                            .and_then(|b| b.samples_today.get(&c.node).copied())
                            .unwrap_or(0);
                        let done = if c.population == 0 {
                            0.0
                        } else {
                            samples as f64 / c.population as f64
                        };
                        (c, done)
                    })
                    .collect()
            })
        });
        c.sort_by(|(a, da), (b, db)| {
            b.status
                .cmp(&a.status)
                .then(b.red.cmp(&a.red))
                .then(db.total_cmp(da))
        });
        c.truncate(CHILDREN_SHOWN);
        c
    });
    let more = move || {
        let n = state.with(|s| s.as_ref().map_or(0, |s| s.children.len()));
        (n > CHILDREN_SHOWN).then(|| format!("+{}", n - CHILDREN_SHOWN))
    };
    view! {
        <Tile class="children" testid="children" zh="采样完成与状态" en="Tested today and status" live=live>
            <ul>
                {slot_rows(rows, |(c, _)| format!("child {}", status_class(c.status)), move |row| {
                    let label = from_row(row, |(c, _)| name(&c.name, &c.name_en).to_string());
                    let width = from_row(row, |(_, done)| format!("width:{:.1}%", (done * 100.0).clamp(0.0, 100.0)));
                    let pct = from_row(row, |(_, done)| percent(*done));
                    let red = from_row(row, |(c, _)| (c.red > 0).then(|| format!("● {}", c.red)));
                    view! {
                        <span class="child-name">{label}</span>
                        <span class="child-bar"><i style=width></i></span>
                        <span class="child-pct">{pct}</span>
                        <span class="child-red">{red}</span>
                    }
                })}
            </ul>
            <p class="more">{more}</p>
        </Tile>
    }
}

/// Alerts on the wall's ticker.
const TICKER_SHOWN: usize = 8;

/// Children listed on the wall (a street may have 47 communities).
const CHILDREN_SHOWN: usize = 11;
