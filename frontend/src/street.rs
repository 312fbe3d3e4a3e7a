//! `/street/<id>`: the street supervisor's tablet (1024×768, 1280×800,
//! touch). The street's communities → grids → micro-grids, worst first,
//! each with its status and why; tap to drill down, breadcrumbs back up; a
//! micro-grid's own figures at the bottom level. One socket follows only
//! the node on screen (its snapshot, then its deltas); a banner says when
//! the tablet is offline, and it catches up by itself.

use gridwatch_model::state::{ChildSummary, Status};
use gridwatch_model::{Level, NodeState};
use leptos::prelude::*;

use crate::components::{AsOf, Header, red_reasons, status_class, status_name, zone_title};
use crate::fmt::{percent, thousands};
use crate::i18n::{name, tr};
use crate::live::{Conn, follow};

/// Rows shown per page of children (no scrolling on a tablet).
const PER_PAGE: usize = 6;

/// The tablet.
#[component]
pub fn StreetPage(node: String) -> impl IntoView {
    let live = follow(&node);
    let state = Memo::new(move |_| live.state.get());
    // The trail from the street down to the node on screen: (id, name).
    let trail: RwSignal<Vec<(String, String)>> = RwSignal::new(vec![(node.clone(), String::new())]);
    let page = RwSignal::new(0usize);
    // Names arrive with the states: fill in the trail's last entry.
    Effect::new(move |_| {
        if let Some(s) = state.get() {
            trail.update(|t| {
                if let Some(last) = t.last_mut()
                    && last.0 == s.node
                    && last.1.is_empty()
                {
                    last.1 = s.name.clone();
                }
            });
        }
    });
    let go = move |to: String, label: String| {
        trail.update(|t| {
            if let Some(i) = t.iter().position(|(id, _)| *id == to) {
                t.truncate(i + 1);
            } else {
                t.push((to.clone(), label));
            }
        });
        page.set(0);
        crate::route::set_path(&format!("/street/{to}"));
        live.node.set(to);
    };
    let offline = move || live.conn.get() != Conn::Open;
    let children = move || {
        state.with(|s| {
            let mut c: Vec<ChildSummary> =
                s.as_ref().map(|s| s.children.clone()).unwrap_or_default();
            c.sort_by(|a, b| {
                b.status
                    .cmp(&a.status)
                    .then(b.red.cmp(&a.red))
                    .then(b.amber.cmp(&a.amber))
                    .then(a.node.cmp(&b.node))
            });
            c
        })
    };
    let pages = move || children().len().div_ceil(PER_PAGE).max(1);
    let shown = move || {
        let p = page.get().min(pages() - 1);
        children()
            .into_iter()
            .skip(p * PER_PAGE)
            .take(PER_PAGE)
            .collect::<Vec<_>>()
    };
    // Why a child is red or amber: the reasons of the red micro-grids under
    // it that the node lists.
    let why = move |child: &str| {
        let prefix = format!("{child}/");
        state.with(|s| {
            red_reasons(s.as_ref(), |r| {
                r.node == child || r.node.starts_with(&prefix)
            })
        })
    };
    let at_start = move || page.get() == 0;
    let at_end = move || page.get() + 1 >= pages();
    let crumbs = move || {
        let t: Vec<(usize, (String, String))> = trail.get().into_iter().enumerate().collect();
        t
    };
    let is_mg = move || state.with(|s| s.as_ref().is_some_and(|s| s.level == Level::Microgrid));
    view! {
        <main class="tablet" data-testid="tablet">
            <Header live=live/>
            <Show when=offline>
                <div class="offline-banner" data-testid="offline">
                    {move || tr("离线：正在重新连接，恢复后自动更新", "Offline: reconnecting — the screen catches up by itself")}
                </div>
            </Show>
            <nav class="crumbs" data-testid="crumbs">
                <For
                    each=crumbs
                    key=|(i, (id, label))| (*i, id.clone(), label.clone())
                    children=move |(_, (id, label))| {
                        let shown = if label.is_empty() { id.rsplit('/').next().unwrap_or_default().to_string() } else { label.clone() };
                        let to = id.clone();
                        view! {
                            <button class="crumb" on:click=move |_| go(to.clone(), label.clone())>{shown}</button>
                        }
                    }
                />
            </nav>
            <NodeHead state=state live=live/>
            <Show when=move || !is_mg() fallback=move || view! { <MicrogridDetail state=state/> }>
                <ul class="rows" data-testid="children">
                    <For
                        each=shown
                        key=|c| (c.node.clone(), c.status, c.red, c.amber)
                        children=move |c| {
                            let (zh, en) = (c.name.clone(), c.name_en.clone());
                            let label = move || name(&zh, &en).to_string();
                            let to = c.node.clone();
                            let title = c.name.clone();
                            let reasons = why(&c.node);
                            let status = c.status;
                            view! {
                                <li>
                                    <button class=format!("row {}", status_class(status)) data-testid="child"
                                        on:click=move |_| go(to.clone(), title.clone())>
                                        <span class="row-dot"></span>
                                        <span class="row-name">{label}</span>
                                        <span class="row-status">{move || status_name(status)}</span>
                                        <span class="row-counts">
                                            {(c.red > 0).then(|| format!("{} {}", c.red, tr("红", "red")))}
                                            " "
                                            {(c.amber > 0).then(|| format!("{} {}", c.amber, tr("黄", "amber")))}
                                        </span>
                                        <span class="row-why">{reasons}</span>
                                    </button>
                                </li>
                            }
                        }
                    />
                </ul>
                <div class="pager">
                    <button class="page-btn" data-testid="prev" disabled=at_start on:click=move |_| page.update(|p| *p = p.saturating_sub(1))>"‹"</button>
                    <span>{move || format!("{} / {}", page.get().min(pages() - 1) + 1, pages())}</span>
                    <button class="page-btn" data-testid="next" disabled=at_end on:click=move |_| page.update(|p| *p += 1)>"›"</button>
                </div>
            </Show>
        </main>
    }
}

/// The node on screen: name, status and why, headline figures.
#[component]
fn NodeHead(state: Memo<Option<NodeState>>, live: crate::live::Live) -> impl IntoView {
    let s = move |f: fn(&NodeState) -> String| {
        move || state.with(|s| s.as_ref().map(f).unwrap_or_else(|| "–".into()))
    };
    let status = move || state.with(|s| s.as_ref().map_or(Status::Green, |s| s.status));
    view! {
        <section class=move || format!("node-head {}", status_class(status())) data-testid="node-head">
            <h1><span data-testid="node-name">{s(|s| s.name.clone())}</span><AsOf live=live/></h1>
            <p class="node-why" data-testid="node-why">{s(|s| s.reasons.join(" · "))}</p>
            <div class="node-figs">
                <span><b data-testid="node-red">{s(|s| thousands(s.red_microgrids.into()))}</b>{move || tr("红色微网格", "red micro-grids")}</span>
                <span><b>{s(|s| thousands(s.population))}</b>{move || tr("人口", "population")}</span>
                <span><b>{s(|s| percent(s.testing.completion_today))}</b>{move || tr("今日采样", "tested today")}</span>
                <span><b>{s(|s| thousands(s.video.flags_open))}</b>{move || tr("视频告警", "open flags")}</span>
                <span><b>{s(|s| thousands(s.incidents.open))}</b>{move || tr("待办事件", "open incidents")}</span>
            </div>
        </section>
    }
}

/// A micro-grid's own figures.
#[component]
fn MicrogridDetail(state: Memo<Option<NodeState>>) -> impl IntoView {
    let s = move |f: fn(&NodeState) -> String| {
        move || state.with(|s| s.as_ref().map(f).unwrap_or_else(|| "–".into()))
    };
    let zone = move || {
        state.with(|s| {
            s.as_ref()
                .and_then(|s| s.zone)
                .map(zone_title)
                .unwrap_or("–")
        })
    };
    view! {
        <section class="mg-detail" data-testid="mg-detail">
            <dl>
                <dt>{move || tr("分区", "zone")}</dt><dd data-testid="mg-zone">{zone}</dd>
                <dt>{move || tr("人口 / 户数", "people / households")}</dt><dd>{s(|s| format!("{} / {}", thousands(s.population), thousands(s.households)))}</dd>
                <dt>{move || tr("在岗人员", "staff on duty")}</dt><dd>{s(|s| thousands(s.staff))}</dd>
                <dt>{move || tr("距上次巡查", "since last patrol")}</dt><dd>{s(|s| s.patrol.oldest_last_patrol_min.map(|m| format!("{m} min")).unwrap_or_else(|| "–".into()))}</dd>
                <dt>{move || tr("今日巡查 / 劝导", "patrols today / persuaded")}</dt><dd>{s(|s| format!("{} / {}", s.patrol.patrols_today, s.patrol.findings_today.people_persuaded))}</dd>
                <dt>{move || tr("今日采样 / 人口", "tested today / people")}</dt><dd data-testid="mg-tested">{s(|s| format!("{} / {} ({})", thousands(s.testing.samples_today), thousands(s.population), percent(s.testing.completion_today)))}</dd>
                <dt>{move || tr("排队", "queue")}</dt><dd>{s(|s| thousands(s.testing.queue))}</dd>
                <dt>{move || tr("视频告警 / 今日整改", "open flags / rectified today")}</dt><dd>{s(|s| format!("{} / {}", s.video.flags_open, s.video.rectified_today))}</dd>
                <dt>{move || tr("待办事件", "open incidents")}</dt><dd>{s(|s| thousands(s.incidents.open))}</dd>
            </dl>
        </section>
    }
}
