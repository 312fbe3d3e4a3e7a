//! Pieces every screen shares: the header, labelled figures, the zone-class
//! panel, status colours.

use gridwatch_model::state::{RedNode, Status, Why, ZoneAgg};
use gridwatch_model::{NodeState, Zone};
use leptos::prelude::*;

use crate::fmt::{age, percent, thousands};
use crate::i18n::{Lang, LangSwitch, lang, tr};
use crate::live::{Conn, Live};

/// A zone class's name.
pub fn zone_title(z: Zone) -> &'static str {
    match z {
        Zone::Sealed => tr("封控区", "Sealed"),
        Zone::Control => tr("管控区", "Control"),
        Zone::Prevention => tr("防范区", "Prevention"),
        Zone::Normal => tr("常态", "Normal"),
    }
}

/// CSS class of a status.
pub fn status_class(s: Status) -> &'static str {
    match s {
        Status::Green => "status-green",
        Status::Amber => "status-amber",
        Status::Red => "status-red",
    }
}

/// A status's name.
pub fn status_name(s: Status) -> &'static str {
    match s {
        Status::Green => tr("正常", "green"),
        Status::Amber => tr("关注", "amber"),
        Status::Red => tr("红色", "red"),
    }
}

/// `2022-10-15T07:48:33+08:00` → `2022-10-15 07:48:33` (already local).
pub fn clock_text(as_of: &str) -> String {
    as_of.get(..19).unwrap_or(as_of).replace('T', " ")
}

/// `HH:MM:SS` of an RFC 3339 local time.
pub fn hms(as_of: &str) -> String {
    as_of.get(11..19).unwrap_or_default().to_string()
}

/// The local time in Beilun (UTC+8, no daylight saving) of a Unix ms
/// instant, as `HH:MM:SS`.
pub fn shanghai_hms(ms: f64) -> String {
    let s = ((ms / 1000.0).floor() as i64 + 8 * 3600).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Whether the page is a public wall (its micro-grid counts 1–4 read
/// "<5"), from the session; provided by the root.
#[derive(Clone, Copy, Debug, Default)]
pub struct PublicWall(pub bool);

pub fn public() -> bool {
    use_context::<PublicWall>().is_some_and(|p| p.0)
}

/// A reason in the page's language (on a public wall, a micro-grid's
/// counts below 5 as "<5").
pub fn why_text(w: &Why) -> String {
    why_text_as(w, lang(), public())
}

/// [`why_text`] in `lang`, public or not.
pub fn why_text_as(w: &Why, lang: Lang, public: bool) -> String {
    let n = |c: &u64| gridwatch_model::fmt::small_count(*c, public);
    if lang == Lang::En {
        return match w {
            Why::FlagsOpen { count } => format!("{} video flag(s) open", n(count)),
            Why::SeriousIncidents { count } => format!("{} level-3+ incident(s) open", n(count)),
            Why::At { node, why, .. } => format!("{} at {node}", why_text_as(why, lang, public)),
            other => other.to_string(),
        };
    }
    match w {
        Why::ExitFlagOpen { since } => format!("封控区出口告警 {since} 起未处置"),
        Why::Unpatrolled { zone, minutes } => {
            format!("{}微网格 {minutes} 分钟未巡查", zone_title(*zone))
        }
        Why::FlagsOpen { count } => format!("{} 条视频告警未处置", n(count)),
        Why::SeriousIncidents { count } => format!("{} 起三级以上事件未办结", n(count)),
        Why::At { name, why, .. } => format!("{name}：{}", why_text_as(why, lang, public)),
        Why::RedInAll { count } => format!("共 {count} 个红色微网格"),
        Why::AmberBelow { count } => format!("{count} 个黄色微网格"),
        Why::IncidentOverdue {
            incident_id, due, ..
        } => format!("事件 {incident_id} 超时未办结（应于 {due} 前）"),
        Why::TransferOverdue { incident_id } => {
            format!("二级事件 {incident_id} 超 6 小时未上报")
        }
        Why::OrderOverdue { number, due } => format!("督办单 {number} 超时未整改（应于 {due} 前）"),
        Why::MoreOverdue { count } => format!("另有 {} 项超时", n(count)),
    }
}

/// Reasons in the page's language, joined for one line.
pub fn whys_text(ws: &[Why]) -> String {
    ws.iter().map(why_text).collect::<Vec<_>>().join(" · ")
}

/// The first two distinct reasons of the red micro-grids a state lists
/// that `keep` picks, in the page's language, joined for one line.
pub fn red_reasons(state: Option<&NodeState>, keep: impl Fn(&RedNode) -> bool) -> String {
    let mut out: Vec<&Why> = Vec::new();
    for r in state.iter().flat_map(|s| &s.red_nodes).filter(|r| keep(r)) {
        for w in &r.why {
            if !out.contains(&w) {
                out.push(w);
            }
        }
    }
    out.truncate(2);
    out.into_iter()
        .map(why_text)
        .collect::<Vec<_>>()
        .join(" · ")
}

/// A wall tile: a titled panel with its feed's age; it greys out with
/// the feed.
#[component]
pub fn Tile(
    class: &'static str,
    testid: &'static str,
    zh: &'static str,
    en: &'static str,
    live: Live,
    children: Children,
) -> impl IntoView {
    view! {
        <section class=format!("panel {class}") data-testid=testid>
            <h2>{move || tr(zh, en)}<AsOf live=live/></h2>
            {children()}
        </section>
    }
}

/// One labelled figure.
#[component]
pub fn Figure(
    #[prop(into)] label: Signal<&'static str>,
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

/// A zone-class panel: micro-grids, population, staff on duty, patrol
/// coverage in the last 2 h, testing completion today, open video flags,
/// red micro-grids and why.
#[component]
pub fn ZonePanel(
    zone: Zone,
    state: Memo<Option<NodeState>>,
    #[prop(optional)] live: Option<Live>,
) -> impl IntoView {
    let agg = Memo::new(move |_| {
        state.with(|s| {
            s.as_ref()
                .map(|s| s.zones.get(zone).clone())
                .unwrap_or_default()
        })
    });
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
    // The reasons of this class's red micro-grids in the node's red list.
    let why = move || state.with(|s| red_reasons(s.as_ref(), |r| r.zone == zone));
    view! {
        <section class=move || format!("zone zone-{key} {}", panel_status()) data-testid=format!("zone-{key}")>
            <h2>{move || zone_title(zone)}{live.map(|l| view! { <AsOf live=l/> })}</h2>
            <div class="figures">
                <Figure label=Signal::derive(|| tr("微网格", "micro-grids")) testid=format!("zone-{key}-microgrids") value=f(|a| thousands(a.microgrids.into()))/>
                <Figure label=Signal::derive(|| tr("人口", "population")) testid=format!("zone-{key}-population") value=f(|a| thousands(a.population))/>
                <Figure label=Signal::derive(|| tr("在岗人员", "staff on duty")) testid=format!("zone-{key}-staff") value=f(|a| thousands(a.staff))/>
                <Figure label=Signal::derive(|| tr("2小时巡查覆盖", "patrolled in 2 h")) testid=format!("zone-{key}-coverage") value=f(|a| percent(a.coverage_2h))/>
                <Figure label=Signal::derive(|| tr("今日采样完成", "tested today")) testid=format!("zone-{key}-completion") value=f(|a| percent(a.completion_today))/>
                <Figure label=Signal::derive(|| tr("视频告警", "open video flags")) testid=format!("zone-{key}-flags") value=f(|a| thousands(a.flags_open))/>
                <Figure label=Signal::derive(|| tr("红色微网格", "red micro-grids")) testid=format!("zone-{key}-red") value=f(|a| thousands(a.red.into()))/>
            </div>
            <p class="zone-why" data-testid=format!("zone-{key}-why")>{why}</p>
        </section>
    }
}

/// The header: title, the data's time, the connection, how old the newest
/// frame is, the language switch; `clock` adds the local time in Beilun.
#[component]
pub fn Header(
    live: Live,
    #[prop(optional)] clock: bool,
    #[prop(optional, into)] subtitle: Option<Signal<String>>,
) -> impl IntoView {
    let conn_text = move || match (live.conn.get(), live.replay) {
        (Conn::Open, false) => tr("已连接", "live"),
        (Conn::Open, true) => tr("历史数据", "from history"),
        (Conn::Connecting, _) => tr("连接中", "connecting"),
        (Conn::Closed, false) => tr("已断开", "offline"),
        (Conn::Closed, true) => tr("无此时刻的历史", "no history then"),
    };
    let data_age = move || {
        let last = live.last_frame_ms.get();
        if last == 0.0 {
            "–".to_string()
        } else {
            age((live.now_ms.get() - last) / 1000.0)
        }
    };
    let stale = move || live.stale();
    view! {
        <header class="top">
            <div class="title">
                <span class="title-main">{move || tr("北仑区 网格化防控指挥中心", "Beilun District · grid command center")}</span>
                {subtitle.map(|s| view! { <span class="title-sub" data-testid="subtitle">{s}</span> })}
            </div>
            <div class="meta">
                {clock.then(|| view! {
                    <span class="clock" data-testid="clock">{move || shanghai_hms(live.now_ms.get())}" CST"</span>
                })}
                <span class="as-of" data-testid="as-of">{move || clock_text(&live.as_of.get())}</span>
                <span data-testid="data-age">{move || tr("数据 ", "data ")}{data_age}</span>
                <span class=move || format!("conn conn-{:?}", live.conn.get()).to_lowercase() data-testid="conn">{conn_text}</span>
                <Show when=stale>
                    <span class="stale-marker" data-testid="stale">{move || tr("数据过期", "STALE")}</span>
                </Show>
                <LangSwitch/>
            </div>
        </header>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beilun_time() {
        // 2022-10-15T00:00:00Z is 08:00 in Beilun.
        assert_eq!(shanghai_hms(1_665_792_000_000.0), "08:00:00");
        assert_eq!(
            shanghai_hms(1_665_792_000_000.0 + 16.0 * 3_600_000.0 + 61_000.0),
            "00:01:01"
        );
        assert_eq!(hms("2022-10-15T07:48:33+08:00"), "07:48:33");
    }

    #[test]
    fn a_public_wall_reads_small_micro_grid_counts_as_below_five() {
        let w = Why::At {
            node: "beilun/daqi/x/g01/m01".into(),
            name: "m01".into(),
            why: Box::new(Why::FlagsOpen { count: 2 }),
        };
        assert_eq!(why_text_as(&w, Lang::Zh, true), "m01：<5 条视频告警未处置");
        assert_eq!(why_text_as(&w, Lang::Zh, false), "m01：2 条视频告警未处置");
        assert_eq!(
            why_text_as(&Why::SeriousIncidents { count: 1 }, Lang::En, true),
            "<5 level-3+ incident(s) open"
        );
        assert_eq!(
            why_text_as(&Why::FlagsOpen { count: 7 }, Lang::En, true),
            "7 video flag(s) open"
        );
    }
}

/// A tile's own freshness: the time of its data and how long since its
/// feed was last heard; the tile greys out (`stale`) with its feed.
#[component]
pub fn AsOf(live: Live) -> impl IntoView {
    let text = move || {
        let last = live.last_frame_ms.get();
        let ago = if last == 0.0 {
            "–".to_string()
        } else {
            age((live.now_ms.get() - last) / 1000.0)
        };
        let at = hms(&live.as_of.get());
        if at.is_empty() {
            ago
        } else {
            format!("{at} · {ago}")
        }
    };
    view! {
        <span class=move || if live.stale() { "tile-age stale" } else { "tile-age" } data-testid="tile-age">{text}</span>
    }
}

/// A list drawn in slots that are made once and then only refilled: slot
/// `i` shows `rows[i]` (its figures from a memo of its own, so only slots
/// whose row changed update), and a slot past the end of the list is
/// hidden. Slots grow to the longest list seen and are never removed.
///
/// Why not rows made per item (`<For>` keyed by item): every row made
/// under a component that lives as long as the page leaves a little behind
/// in reactive_graph 0.2 when it goes — its owner stays listed (weakly) in
/// the parent's children until the parent is cleaned up, and its effects
/// stay in the subscriber lists of signals that rarely change (the language,
/// the geometry) until those change. On a wall whose ticker gains a row per
/// alert that grew the wasm heap all day (bench/ANALYSIS.md, "The wall over
/// days"); with slots nothing is made once the lists are full.
pub fn slot_rows<T, V, R>(rows: Memo<Vec<T>>, class: fn(&T) -> String, row: R) -> impl IntoView
where
    T: Clone + PartialEq + Send + Sync + 'static,
    R: Fn(Memo<Option<T>>) -> V + Clone + Send + 'static,
    V: IntoView + 'static,
{
    let slots =
        Memo::new(move |seen: Option<&usize>| rows.with(Vec::len).max(seen.copied().unwrap_or(0)));
    view! {
        <For
            each=move || 0..slots.get()
            key=|i: &usize| *i
            children=move |i: usize| {
                let item = Memo::new(move |_| rows.with(|r| r.get(i).cloned()));
                view! {
                    <li class=from_row(item, class) hidden=move || item.with(Option::is_none)>{row(item)}</li>
                }
            }
        />
    }
}

/// What a slot row shows of its item: `f` of it, or the default (empty)
/// while the slot is past the end of its list.
pub fn from_row<T, R>(
    item: Memo<Option<T>>,
    f: impl Fn(&T) -> R + Send + Sync + 'static,
) -> impl Fn() -> R + Copy + Send + Sync + 'static
where
    T: Send + Sync + 'static,
    R: Default,
{
    let f = StoredValue::new(f);
    move || {
        item.with(|t| {
            t.as_ref()
                .map(|t| f.with_value(|f| f(t)))
                .unwrap_or_default()
        })
    }
}
