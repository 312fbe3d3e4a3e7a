//! `/street/<id>`: the street supervisor's tablet (1024×768, 1280×800,
//! touch). The street's communities → grids → micro-grids, worst first,
//! each with its status and why; tap to drill down, breadcrumbs back up; a
//! micro-grid's own figures at the bottom level. One socket follows only
//! the node on screen (its snapshot, then its deltas); a banner says when
//! the tablet is offline, and it catches up by itself.

use gridwatch_model::api::RegistryRecord;
use gridwatch_model::registry::Team;
use gridwatch_model::state::{ChildSummary, Status, Why};
use gridwatch_model::{Level, NodeState, Zone};
use leptos::prelude::*;

use crate::components::{
    AsOf, Header, from_row, hms, red_reasons, slot_rows, status_class, status_name, whys_text,
    zone_title,
};
use crate::fmt::{percent, thousands};
use crate::i18n::{name, tr};
use crate::live::{Conn, Socket};
use crate::outbox::Outbox;
use crate::tasks::{ReportForm, TaskList};

/// Rows shown per page of children (no scrolling on a tablet).
const PER_PAGE: usize = 6;

/// The two views under the node's head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tab {
    /// The children worst first, or the micro-grid's own page.
    Areas,
    /// Open incidents and orders, soonest due first, with the actions.
    Tasks,
}

/// The tablet.
#[component]
pub fn StreetPage(node: String) -> impl IntoView {
    let live = Socket::open().follow(&node);
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
    // The supervisor's actions, kept on the device until the server has
    // them; sent again as soon as the socket is back.
    let outbox = Outbox::open();
    Effect::new(move |_| {
        if live.conn.get() == Conn::Open {
            outbox.flush();
        }
    });
    let tab = RwSignal::new(Tab::Areas);
    let clock = live.clock(state);
    let on_screen = Signal::derive(move || live.node.get());
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
    let shown = Memo::new(move |_| {
        let p = page.get().min(pages() - 1);
        children()
            .into_iter()
            .skip(p * PER_PAGE)
            .take(PER_PAGE)
            .collect::<Vec<_>>()
    });
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
            <nav class="tabs">
                <button class=move || if tab.get() == Tab::Areas { "tab on" } else { "tab" } data-testid="tab-areas"
                    on:click=move |_| tab.set(Tab::Areas)>{move || if is_mg() { tr("本网格", "this micro-grid") } else { tr("区域", "areas") }}</button>
                <button class=move || if tab.get() == Tab::Tasks { "tab on" } else { "tab" } data-testid="tab-tasks"
                    on:click=move |_| tab.set(Tab::Tasks)>
                    {move || format!("{} ({})", tr("我的任务", "my tasks"), state.with(|s| s.as_ref().map_or(0, |s| s.incidents.open + s.video.flags_open)))}
                    <Show when=move || outbox.items.with(|i| !i.is_empty())><span class="badge" data-testid="tab-pending">{move || outbox.items.with(Vec::len)}</span></Show>
                </button>
            </nav>
            <Show when=move || tab.get() == Tab::Tasks>
                <TaskList node=on_screen clock=clock seq=Signal::derive(move || live.seq.get()) outbox=outbox/>
            </Show>
            <Show when=move || tab.get() == Tab::Areas>
            <Show when=move || !is_mg() fallback=move || view! { <MicrogridDetail state=state live=live outbox=outbox/> }>
                <ul class="rows" data-testid="children">
                    {slot_rows(shown, |_| String::new(), move |c| {
                        let label = from_row(c, |c| name(&c.name, &c.name_en).to_string());
                        let status = move || c.with(|c| c.as_ref().map_or(Status::Green, |c| c.status));
                        // A child whose red micro-grids the node's list
                        // does not reach still says how many.
                        let reasons = move || {
                            let Some((node, red, amber)) = c.with(|c| c.as_ref().map(|c| (c.node.clone(), c.red, c.amber))) else {
                                return String::new();
                            };
                            let listed = why(&node);
                            if !listed.is_empty() {
                                listed
                            } else if red > 0 {
                                whys_text(&[Why::RedInAll { count: u64::from(red) }])
                            } else if amber > 0 {
                                whys_text(&[Why::AmberBelow { count: u64::from(amber) }])
                            } else {
                                String::new()
                            }
                        };
                        let counts = move || c.with(|c| c.as_ref().map(|c| {
                            let red = (c.red > 0).then(|| format!("{} {}", c.red, tr("红", "red")));
                            let amber = (c.amber > 0).then(|| format!("{} {}", c.amber, tr("黄", "amber")));
                            [red, amber].into_iter().flatten().collect::<Vec<_>>().join(" ")
                        })).unwrap_or_default();
                        let open = move |_| {
                            if let Some((to, title)) = c.get_untracked().map(|c| (c.node, c.name)) {
                                go(to, title);
                            }
                        };
                        view! {
                            <button class=move || format!("row {}", status_class(status())) data-testid="child"
                                data-node=from_row(c, |c| c.node.clone()) on:click=open>
                                <span class="row-dot"></span>
                                <span class="row-name">{label}</span>
                                <span class="row-status">{move || status_name(status())}</span>
                                <span class="row-counts">{counts}</span>
                                <span class="row-why">{reasons}</span>
                            </button>
                        }
                    })}
                </ul>
                <div class="pager">
                    <button class="page-btn" data-testid="prev" disabled=at_start on:click=move |_| page.update(|p| *p = p.saturating_sub(1))>"‹"</button>
                    <span>{move || format!("{} / {}", page.get().min(pages() - 1) + 1, pages())}</span>
                    <button class="page-btn" data-testid="next" disabled=at_end on:click=move |_| page.update(|p| *p += 1)>"›"</button>
                </div>
            </Show>
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
            <p class="node-why" data-testid="node-why">{move || state.with(|s| s.as_ref().map(|s| whys_text(&s.why)).unwrap_or_default())}</p>
            <div class="node-figs">
                <span><b data-testid="node-red">{s(|s| thousands(s.red_microgrids.into()))}</b>{move || tr("红色微网格", "red micro-grids")}</span>
                <span><b>{s(|s| thousands(s.population))}</b>{move || tr("人口", "population")}</span>
                <span><b>{s(|s| percent(s.testing.completion_today))}</b>{move || tr("今日采样", "tested today")}</span>
                <span><b>{s(|s| thousands(s.video.flags_open))}</b>{move || tr("视频告警", "open flags")}</span>
                <span><b>{s(|s| thousands(s.incidents.open))}</b>{move || tr("待办事件", "open incidents")}</span>
                <span class=move || if state.with(|s| s.as_ref().is_some_and(|s| s.incidents.overdue > 0)) { "overdue" } else { "" }>
                    <b data-testid="node-overdue">{s(|s| thousands(s.incidents.overdue + s.video.overdue))}</b>{move || tr("超时", "overdue")}</span>
            </div>
            <Show when=move || state.with(|s| s.as_ref().is_some_and(|s| s.level != Level::Microgrid))>
                <table class="makeup" data-testid="makeup">
                    <thead><tr>
                        <th></th><th>{move || tr("微网格", "micro-grids")}</th><th>{move || tr("人口", "people")}</th>
                        <th>{move || tr("2小时巡查", "patrolled 2 h")}</th><th>{move || tr("今日采样", "tested today")}</th><th>{move || tr("待办", "open items")}</th>
                    </tr></thead>
                    <tbody>
                        {[Zone::Sealed, Zone::Control, Zone::Prevention].into_iter().map(|z| {
                            let f = move |g: fn(&gridwatch_model::state::ZoneAgg) -> String| move || state.with(|s| s.as_ref().map(|s| g(s.zones.get(z))).unwrap_or_else(|| "–".into()));
                            view! {
                                <tr class=format!("zone-{}", z.as_str()) data-testid=format!("makeup-{}", z.as_str())>
                                    <th>{zone_title(z)}</th>
                                    <td>{f(|a| thousands(a.microgrids.into()))}</td>
                                    <td>{f(|a| thousands(a.population))}</td>
                                    <td>{f(|a| percent(a.coverage_2h))}</td>
                                    <td>{f(|a| percent(a.completion_today))}</td>
                                    <td>{f(|a| thousands(a.flags_open + a.incidents_open))}</td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            </Show>
        </section>
    }
}

/// A micro-grid's own page: its figures, its team (from the registry,
/// fetched once per micro-grid), since when its zone holds, the day's
/// findings in full, and its open flags and incidents with how long each
/// has been open by the deployment clock.
#[component]
fn MicrogridDetail(
    state: Memo<Option<NodeState>>,
    live: crate::live::Live,
    outbox: Outbox,
) -> impl IntoView {
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
    // The registry record (team) of the micro-grid on screen.
    let record: RwSignal<Option<RegistryRecord>> = RwSignal::new(None);
    Effect::new(move |_| {
        let node = live.node.get();
        record.set(None);
        leptos::task::spawn_local(async move {
            let url = format!("/api/v1/registry?node={node}");
            if let Some(v) = crate::live::fetch::<RegistryRecord>(&url).await
                && live.node.get_untracked() == node
            {
                record.set(Some(v));
            }
        });
    });
    let team = move |part: fn(&Team) -> String| {
        move || {
            record.with(|r| {
                r.as_ref()
                    .and_then(|r| r.team.as_ref())
                    .map(part)
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "–".into())
            })
        }
    };
    let clock = live.clock(state);
    let open_for = move |since: &str| {
        gridwatch_model::time::minutes_between(since, &clock.get())
            .map(|m| format!("{} min", m.max(0)))
            .unwrap_or_else(|| "–".into())
    };
    let since = move || {
        state.with(|s| {
            let d = s.as_ref().and_then(|s| s.detail.as_ref());
            match d.and_then(|d| d.zone_since.as_deref()) {
                Some(t) => {
                    let why = d.and_then(|d| d.zone_reason.clone()).unwrap_or_default();
                    format!(
                        "{} {} {}",
                        t.get(5..16).unwrap_or(t).replace('T', " "),
                        tr("起", "since"),
                        why
                    )
                }
                None => tr("登记分区", "as registered").to_string(),
            }
        })
    };
    let last_patrol = move || {
        state.with(|s| {
            let d = s.as_ref().and_then(|s| s.detail.as_ref());
            match d.and_then(|d| d.last_patrol.clone()) {
                Some(t) => format!("{} ({} {})", hms(&t), open_for(&t), tr("前", "ago")),
                None => tr("今日未巡查", "none yet").to_string(),
            }
        })
    };
    // The micro-grid's own part of its state.
    let detail = move || {
        state.with(|s| {
            s.as_ref()
                .and_then(|s| s.detail.clone())
                .unwrap_or_default()
        })
    };
    let flags = move || detail().open_flags;
    let incidents = move || detail().open_incidents;
    // The first three of each, and how long each has been open.
    let shown_flags = Memo::new(move |_| flags().into_iter().take(3).collect::<Vec<_>>());
    let shown_incidents = Memo::new(move |_| incidents().into_iter().take(3).collect::<Vec<_>>());
    let open_since = move |t: &str| format!("{} {} · {}", tr("已", "open"), open_for(t), hms(t));
    let no_flags = move || flags().is_empty();
    let no_incidents = move || incidents().is_empty();
    // More than the three shown: how many more (the counts have every open
    // one; the state lists only the most urgent few).
    let more_flags = move || {
        let all = state.with(|s| s.as_ref().map_or(0, |s| s.video.flags_open)) as usize;
        all.max(flags().len()).saturating_sub(3)
    };
    let more_incidents = move || {
        let all = state.with(|s| s.as_ref().map_or(0, |s| s.incidents.open)) as usize;
        all.max(incidents().len()).saturating_sub(3)
    };
    let many_flags = move || more_flags() != 0;
    let many_incidents = move || more_incidents() != 0;
    view! {
        <section class="mg-detail" data-testid="mg-detail">
            <dl>
                <dt>{move || tr("分区", "zone")}</dt><dd data-testid="mg-zone">{zone}</dd>
                <dt>{move || tr("分区时间", "zone since")}</dt><dd data-testid="mg-zone-since">{since}</dd>
                <dt>{move || tr("人口 / 户数", "people / households")}</dt><dd>{s(|s| format!("{} / {}", thousands(s.population), thousands(s.households)))}</dd>
                <dt>{move || tr("在岗人员", "staff on duty")}</dt><dd>{s(|s| thousands(s.staff))}</dd>
                <dt>{move || tr("上次巡查", "last patrol")}</dt><dd data-testid="mg-last-patrol">{last_patrol}</dd>
                <dt>{move || tr("今日巡查", "patrols today")}</dt><dd>{s(|s| thousands(s.patrol.patrols_today))}</dd>
                <dt>{move || tr("今日发现", "findings today")}</dt><dd data-testid="mg-findings">{move || state.with(|s| s.as_ref().map(|s| findings_text(&s.patrol.findings_today)).unwrap_or_default())}</dd>
                <dt>{move || tr("今日采样 / 人口", "tested today / people")}</dt><dd data-testid="mg-tested">{s(|s| format!("{} / {} ({})", thousands(s.testing.samples_today), thousands(s.population), percent(s.testing.completion_today)))}</dd>
                <dt>{move || tr("排队", "queue")}</dt><dd>{s(|s| thousands(s.testing.queue))}</dd>
            </dl>
            <div class="mg-side">
                <ReportForm node=Signal::derive(move || live.node.get()) outbox=outbox/>
                <h3>{move || tr("网格团队", "team")}</h3>
                <dl class="team" data-testid="mg-team">
                    <dt>{move || tr("网格长", "leader")}</dt><dd data-testid="mg-leader">{team(|t| t.leader.clone())}</dd>
                    <dt>{move || tr("网格员", "members")}</dt><dd>{team(|t| t.members.join("、"))}</dd>
                    <dt>{move || tr("志愿者", "volunteers")}</dt><dd>{team(|t| t.volunteers.join("、"))}</dd>
                </dl>
                <h3>{move || tr("未处置视频告警", "open video flags")}</h3>
                <ul class="open-list" data-testid="mg-flags">
                    {slot_rows(shown_flags, |_| String::new(), move |f| {
                        let kind = from_row(f, |f| flag_kind_text(f.kind));
                        let open = from_row(f, move |f| open_since(&f.raised));
                        view! {
                            <span>{kind}</span>
                            <span class="open-for">{open}</span>
                        }
                    })}
                    <Show when=no_flags><li class="none">{move || tr("无", "none")}</li></Show>
                    <Show when=many_flags><li class="more">{move || format!("+{}", more_flags())}</li></Show>
                </ul>
                <h3>{move || tr("待办事件", "open incidents")}</h3>
                <ul class="open-list" data-testid="mg-incidents">
                    {slot_rows(shown_incidents, |_| String::new(), move |i| {
                        let what = from_row(i, |i| format!("L{} {}", i.level, i.category));
                        let open = from_row(i, move |i| open_since(&i.reported));
                        view! {
                            <span>{what}</span>
                            <span class="open-for">{open}</span>
                        }
                    })}
                    <Show when=no_incidents><li class="none">{move || tr("无", "none")}</li></Show>
                    <Show when=many_incidents><li class="more">{move || format!("+{}", more_incidents())}</li></Show>
                </ul>
            </div>
        </section>
    }
}

/// The day's findings, every kind.
fn findings_text(f: &gridwatch_model::event::Findings) -> String {
    format!(
        "{} {} · {} {} · {} {} · {} {} · {} {}",
        tr("驱散聚集", "gatherings dispersed"),
        f.gatherings_dispersed,
        tr("劝导", "persuaded"),
        f.people_persuaded,
        tr("关停场所", "venues closed"),
        f.venues_closed,
        tr("清理摊贩", "vendors cleared"),
        f.vendors_cleared,
        tr("违规", "violations"),
        f.violations
    )
}

/// A video flag's kind in the page's language.
pub fn flag_kind_text(k: gridwatch_model::event::FlagKind) -> &'static str {
    use gridwatch_model::event::FlagKind as F;
    match k {
        F::Gathering => tr("聚集", "gathering"),
        F::DoorBreach => tr("门磁告警", "door breach"),
        F::SealedExit => tr("封控区外出", "sealed-zone exit"),
        F::Vendor => tr("流动摊贩", "vendor"),
        F::NoMask => tr("未戴口罩", "no mask"),
        F::Other => tr("其他", "other"),
    }
}
