//! The live district page: the three zone classes with their micro-grids,
//! population, staff, patrol coverage, testing completion, open video flags
//! and red counts; district totals; the red micro-grids with their reasons.
//! Every number carries a `data-testid` so browser tests can read it.

use gridwatch_model::{NodeState, Zone};
use leptos::prelude::*;

use crate::components::{
    Figure, Header, ZonePanel, from_row, slot_rows, status_class, whys_text, zone_title,
};
use crate::fmt::{percent, thousands};
use crate::i18n::tr;
use crate::live::Live;

/// The red micro-grids under a node, with their reasons (the first `limit`
/// when given: the wall has room for a few).
#[component]
pub fn RedList(
    state: Memo<Option<NodeState>>,
    #[prop(optional)] limit: Option<usize>,
) -> impl IntoView {
    let limit = limit.unwrap_or(usize::MAX);
    let shown = Memo::new(move |_| {
        state.with(|s| {
            let mut r = s.as_ref().map(|s| s.red_nodes.clone()).unwrap_or_default();
            r.truncate(limit);
            r
        })
    });
    view! {
        <section class="red-list" data-testid="red-list">
            <h2>{move || tr("红色微网格及原因", "Red micro-grids and why")}</h2>
            <ul>
                {slot_rows(shown, |_| "red-item".to_string(), move |r| {
                    let zone = from_row(r, |r| zone_title(r.zone).to_string());
                    let why = from_row(r, |r| whys_text(&r.why));
                    view! {
                        <span class="red-node">{from_row(r, |r| r.name.clone())}</span>
                        <span class="red-zone">{zone}</span>
                        <span class="red-id">{from_row(r, |r| r.node.clone())}</span>
                        <span class="red-why">{why}</span>
                    }
                })}
            </ul>
            <Show when=move || state.with(|s| s.as_ref().is_some_and(|s| s.red_nodes.is_empty()))>
                <p class="none">{move || tr("无", "none")}</p>
            </Show>
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
    let label = |zh: &'static str, en: &'static str| Signal::derive(move || tr(zh, en));
    let stale = move || live.stale();
    let overall = move || state.with(|s| s.as_ref().map(|s| status_class(s.status)).unwrap_or(""));
    view! {
        <main class=move || if stale() { "page stale" } else { "page" }>
            <Header live=live/>
            <section class=move || format!("totals {}", overall()) data-testid="totals">
                <Figure label=label("微网格", "micro-grids") testid="microgrids".into() value=num(|s| thousands(s.microgrids.into()))/>
                <Figure label=label("人口", "population") testid="population".into() value=num(|s| thousands(s.population))/>
                <Figure label=label("1小时巡查", "patrols, 1 h") testid="patrols-1h".into() value=num(|s| thousands(s.patrol.patrols_1h))/>
                <Figure label=label("今日采样", "samples today") testid="samples-today".into() value=num(|s| thousands(s.testing.samples_today))/>
                <Figure label=label("采样完成", "tested") testid="completion".into() value=num(|s| percent(s.testing.completion_today))/>
                <Figure label=label("排队", "queue") testid="queue".into() value=num(|s| thousands(s.testing.queue))/>
                <Figure label=label("视频告警", "open flags") testid="flags-open".into() value=num(|s| thousands(s.video.flags_open))/>
                <Figure label=label("待办事件", "open incidents") testid="incidents-open".into() value=num(|s| thousands(s.incidents.open))/>
                <Figure label=label("红色微网格", "red micro-grids") testid="red-microgrids".into() value=num(|s| thousands(s.red_microgrids.into()))/>
            </section>
            <div class="zones">
                <ZonePanel zone=Zone::Sealed state=state/>
                <ZonePanel zone=Zone::Control state=state/>
                <ZonePanel zone=Zone::Prevention state=state/>
            </div>
            <RedList state=state/>
        </main>
    }
}
