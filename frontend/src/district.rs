//! The live district page: the three zone classes with their micro-grids,
//! population, staff, patrol coverage, testing completion, open video flags
//! and red counts; district totals; the red micro-grids with their reasons.
//! Every number carries a `data-testid` so browser tests can read it.

use gridwatch_model::state::{Status, ZoneAgg};
use gridwatch_model::{NodeState, Zone};
use leptos::prelude::*;

use crate::fmt::{age, percent, thousands};
use crate::live::{Conn, Live};

fn zone_title(z: Zone) -> (&'static str, &'static str) {
    match z {
        Zone::Sealed => ("封控区", "Sealed"),
        Zone::Control => ("管控区", "Control"),
        Zone::Prevention => ("防范区", "Prevention"),
        Zone::Normal => ("常态", "Normal"),
    }
}

fn status_class(s: Status) -> &'static str {
    match s {
        Status::Green => "status-green",
        Status::Amber => "status-amber",
        Status::Red => "status-red",
    }
}

/// `2022-10-15T07:48:33+08:00` → `2022-10-15 07:48:33` (already local).
fn clock_text(as_of: &str) -> String {
    as_of.get(..19).unwrap_or(as_of).replace('T', " ")
}

/// One labelled figure.
#[component]
fn Figure(
    label: &'static str,
    testid: String,
    #[prop(into)] value: Signal<String>,
) -> impl IntoView {
    view! {
        <div class="figure">
            <div class="figure-value" data-testid=testid>{value}</div>
            <div class="figure-label">{label}</div>
        </div>
    }
}

/// A zone-class panel.
#[component]
fn ZonePanel(zone: Zone, state: Memo<Option<NodeState>>) -> impl IntoView {
    let agg = Memo::new(move |_| {
        state.with(|s| {
            s.as_ref()
                .map(|s| s.zones.get(zone).clone())
                .unwrap_or_default()
        })
    });
    let (zh, en) = zone_title(zone);
    let key = zone.as_str();
    let f = move |get: fn(&ZoneAgg) -> String| Signal::derive(move || agg.with(get));
    let panel_status = move || {
        agg.with(|a| {
            if a.red > 0 {
                "status-red"
            } else if a.amber > 0 {
                "status-amber"
            } else {
                "status-green"
            }
        })
    };
    view! {
        <section class=move || format!("zone zone-{key} {}", panel_status()) data-testid=format!("zone-{key}")>
            <h2><span class="zh">{zh}</span>" "<span class="en">{en}</span></h2>
            <div class="figures">
                <Figure label="微网格 micro-grids" testid=format!("zone-{key}-microgrids") value=f(|a| thousands(a.microgrids.into()))/>
                <Figure label="人口 population" testid=format!("zone-{key}-population") value=f(|a| thousands(a.population))/>
                <Figure label="在岗 staff" testid=format!("zone-{key}-staff") value=f(|a| thousands(a.staff))/>
                <Figure label="2h 巡查覆盖 patrolled" testid=format!("zone-{key}-coverage") value=f(|a| percent(a.coverage_2h))/>
                <Figure label="今日采样 tested today" testid=format!("zone-{key}-completion") value=f(|a| percent(a.completion_today))/>
                <Figure label="视频告警 open flags" testid=format!("zone-{key}-flags") value=f(|a| thousands(a.flags_open))/>
                <Figure label="红色 red" testid=format!("zone-{key}-red") value=f(|a| thousands(a.red.into()))/>
            </div>
        </section>
    }
}

/// The page.
#[component]
pub fn DistrictPage(live: Live) -> impl IntoView {
    let state = Memo::new(move |_| live.state.get());
    let num = move |get: fn(&NodeState) -> String| {
        Signal::derive(move || state.with(|s| s.as_ref().map(get).unwrap_or_else(|| "–".into())))
    };
    let conn_text = move || match live.conn.get() {
        Conn::Open => "已连接 live",
        Conn::Connecting => "连接中 connecting",
        Conn::Closed => "已断开 offline",
    };
    let stale = move || live.stale();
    let data_age = move || {
        let last = live.last_frame_ms.get();
        if last == 0.0 {
            "–".to_string()
        } else {
            age((live.now_ms.get() - last) / 1000.0)
        }
    };
    let overall = move || state.with(|s| s.as_ref().map(|s| status_class(s.status)).unwrap_or(""));
    view! {
        <main class=move || if stale() { "page stale" } else { "page" }>
            <header class="top">
                <div class="title">
                    <span class="zh">"北仑区 网格化防控指挥中心"</span>
                    <span class="en">"Beilun District · Gridwatch command center"</span>
                </div>
                <div class="meta">
                    <span data-testid="as-of">{move || clock_text(&live.as_of.get())}</span>
                    <span class=move || format!("conn conn-{:?}", live.conn.get()).to_lowercase() data-testid="conn">{conn_text}</span>
                    <span data-testid="data-age">"数据 data: "{data_age}</span>
                    <Show when=stale>
                        <span class="stale-marker" data-testid="stale">"数据过期 STALE"</span>
                    </Show>
                </div>
            </header>
            <section class=move || format!("totals {}", overall()) data-testid="totals">
                <Figure label="微网格 micro-grids" testid="microgrids".into() value=num(|s| thousands(s.microgrids.into()))/>
                <Figure label="人口 population" testid="population".into() value=num(|s| thousands(s.population))/>
                <Figure label="1h 巡查 patrols" testid="patrols-1h".into() value=num(|s| thousands(s.patrol.patrols_1h))/>
                <Figure label="今日采样 samples today" testid="samples-today".into() value=num(|s| thousands(s.testing.samples_today))/>
                <Figure label="采样完成 tested" testid="completion".into() value=num(|s| percent(s.testing.completion_today))/>
                <Figure label="排队 queue" testid="queue".into() value=num(|s| thousands(s.testing.queue))/>
                <Figure label="视频告警 open flags" testid="flags-open".into() value=num(|s| thousands(s.video.flags_open))/>
                <Figure label="待办事件 open incidents" testid="incidents-open".into() value=num(|s| thousands(s.incidents.open))/>
                <Figure label="红色微网格 red" testid="red-microgrids".into() value=num(|s| thousands(s.red_microgrids.into()))/>
            </section>
            <div class="zones">
                <ZonePanel zone=Zone::Sealed state=state/>
                <ZonePanel zone=Zone::Control state=state/>
                <ZonePanel zone=Zone::Prevention state=state/>
            </div>
            <section class="red-list" data-testid="red-list">
                <h2>"红色微网格及原因 Red micro-grids and why"</h2>
                <ul>
                    <For
                        each=move || state.with(|s| s.as_ref().map(|s| s.red_nodes.clone()).unwrap_or_default())
                        key=|r| (r.node.clone(), r.reasons.clone())
                        children=move |r| {
                            let (zh, _) = zone_title(r.zone);
                            view! {
                                <li class="red-item">
                                    <span class="red-node">{r.name.clone()}</span>
                                    <span class="red-zone">{zh}</span>
                                    <span class="red-id">{r.node.clone()}</span>
                                    <span class="red-why">{r.reasons.join(" · ")}</span>
                                </li>
                            }
                        }
                    />
                </ul>
                <Show when=move || state.with(|s| s.as_ref().is_some_and(|s| s.red_nodes.is_empty()))>
                    <p class="none">"无 none"</p>
                </Show>
            </section>
        </main>
    }
}
