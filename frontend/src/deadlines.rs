//! The wall's deadline board (the article's "every incident closed by
//! 16:00"): the countdown to 16:00 by the deployment clock, open incidents
//! by level and by street with the overdue in red, the supervision orders
//! issued, rectified and open today, the oldest open incident (not on a
//! public wall: it names a micro-grid), and the reminders just sent.

use gridwatch_model::NodeState;
use gridwatch_model::api::OpenList;
use gridwatch_model::state::ChildSummary;
use leptos::prelude::*;

use crate::components::{Tile, from_row, public, slot_rows};
use crate::fmt::thousands;
use crate::i18n::{name, tr};
use crate::live::Live;
use crate::reminders::RecentReminders;

/// Streets listed on the board.
const STREETS_SHOWN: usize = 6;
/// How often the oldest open item is asked for (ms).
const OLDEST_MS: u64 = 10_000;

/// `HH:MM:SS` of a count of seconds.
fn hms(s: i64) -> String {
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The board for the node the wall shows.
#[component]
pub fn DeadlineBoard(state: Memo<Option<NodeState>>, live: Live) -> impl IntoView {
    let clock = live.clock(state);
    let countdown = move || match gridwatch_model::deadline::seconds_to_due_hour(&clock.get()) {
        Some(s) if s > 0 => (format!("{} {}", tr("距16:00", "to 16:00"), hms(s)), false),
        Some(_) => (tr("16:00 已过", "past 16:00").to_string(), true),
        None => ("–".into(), false),
    };
    let num = move |f: fn(&NodeState) -> u64| {
        move || {
            state.with(|s| {
                s.as_ref()
                    .map(|s| thousands(f(s)))
                    .unwrap_or_else(|| "–".into())
            })
        }
    };
    let overdue = move || state.with(|s| s.as_ref().is_some_and(|s| s.incidents.overdue > 0));
    let orders_late = move || state.with(|s| s.as_ref().is_some_and(|s| s.video.overdue > 0));
    // Streets (or communities) with open incidents, the most overdue first.
    let rows = Memo::new(move |_| {
        let mut c: Vec<ChildSummary> = state.with(|s| {
            s.as_ref()
                .map(|s| {
                    s.children
                        .iter()
                        .filter(|c| c.incidents_open + c.orders_open > 0)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        });
        c.sort_by(|a, b| {
            (b.incidents_overdue + b.orders_overdue)
                .cmp(&(a.incidents_overdue + a.orders_overdue))
                .then(b.incidents_open.cmp(&a.incidents_open))
                .then(a.node.cmp(&b.node))
        });
        c.truncate(STREETS_SHOWN);
        c
    });
    // The oldest open incident: the soonest due (due follows the report).
    let oldest: RwSignal<Option<OpenList>> = RwSignal::new(None);
    let ask = move || {
        // A replay shows the figures as they were; today's open list and
        // the reminders just sent are not kept for the past.
        if public() || live.replay {
            return;
        }
        let node = live.node.get_untracked();
        leptos::task::spawn_local(async move {
            let url = format!("/api/v1/tasks?node={node}&limit=1");
            if let Some(l) = crate::live::fetch::<OpenList>(&url).await
                && live.node.get_untracked() == node
            {
                oldest.set(Some(l));
            }
        });
    };
    // Asked again when the open incidents change, and every few seconds.
    let open_now = Memo::new(move |_| state.with(|s| s.as_ref().map_or(0, |s| s.incidents.open)));
    Effect::new(move |_| {
        live.node.track();
        open_now.track();
        ask();
    });
    if let Ok(h) = set_interval_with_handle(ask, std::time::Duration::from_millis(OLDEST_MS)) {
        on_cleanup(move || h.clear());
    }
    let oldest_text = move || {
        if open_now.get() == 0 {
            return None;
        }
        oldest.with(|l| {
            let i = l.as_ref()?.incidents.first()?;
            let open = gridwatch_model::time::minutes_between(&i.incident.reported, &clock.get())?;
            let place: Vec<&str> = i.node.rsplit('/').take(2).collect();
            Some(format!(
                "L{} {} · {} · {} {} h {:02} min",
                i.incident.level,
                i.incident.category,
                place.into_iter().rev().collect::<Vec<_>>().join("/"),
                tr("已", "open"),
                open.max(0) / 60,
                open.max(0) % 60
            ))
        })
    };
    view! {
        <Tile class="deadlines" testid="deadlines" zh="处置时限" en="Deadlines" live=live>
            <div class=move || if countdown().1 { "countdown late" } else { "countdown" } data-testid="countdown">{move || countdown().0}</div>
            <div class="deadline-figs">
                <span class=move || if overdue() { "late" } else { "" }><b data-testid="dl-overdue">{num(|s| s.incidents.overdue)}</b>{move || tr("超时事件", "overdue")}</span>
                <span><b data-testid="dl-due">{num(|s| s.incidents.due_before_16)}</b>{move || tr("16:00前到期", "due by 16:00")}</span>
                <span><b data-testid="dl-open">{num(|s| s.incidents.open)}</b>{move || tr("待办", "open")}</span>
                <span><b>{num(|s| s.incidents.resolved_today)}</b>{move || tr("今日办结", "closed today")}</span>
            </div>
            <div class="deadline-levels" data-testid="dl-levels">
                {(0..4).map(|l| view! {
                    <span><b>{move || state.with(|s| s.as_ref().map(|s| thousands(s.incidents.open_by_level[l])).unwrap_or_else(|| "–".into()))}</b>{format!("L{}", l + 1)}</span>
                }).collect_view()}
                <span class=move || if state.with(|s| s.as_ref().is_some_and(|s| s.incidents.transfer_overdue > 0)) { "late" } else { "" }>
                    <b>{num(|s| s.incidents.transfer_overdue)}</b>{move || tr("超6小时未上报", "L2 not up in 6 h")}</span>
            </div>
            <div class="deadline-figs orders" data-testid="dl-orders">
                <span><b data-testid="dl-issued">{num(|s| s.video.raised_today)}</b>{move || tr("今日督办", "orders today")}</span>
                <span><b data-testid="dl-rectified">{num(|s| s.video.rectified_today)}</b>{move || tr("今日整改", "rectified")}</span>
                <span><b>{num(|s| s.video.flags_open)}</b>{move || tr("未整改", "open")}</span>
                <span class=move || if orders_late() { "late" } else { "" }><b>{num(|s| s.video.overdue)}</b>{move || tr("超时", "overdue")}</span>
            </div>
            <ul class="deadline-streets" data-testid="dl-streets">
                {slot_rows(rows, |c| if c.incidents_overdue + c.orders_overdue > 0 { "late".into() } else { String::new() }, move |c| {
                    let label = from_row(c, |c| name(&c.name, &c.name_en).to_string());
                    let open = from_row(c, |c| format!("{} {} · {} {}", c.incidents_open, tr("事件", "incidents"), c.orders_open, tr("督办", "orders")));
                    let late = from_row(c, |c| {
                        let n = c.incidents_overdue + c.orders_overdue;
                        if n > 0 { format!("{n} {}", tr("超时", "overdue")) } else { String::new() }
                    });
                    view! {
                        <span class="dl-name">{label}</span>
                        <span class="dl-open">{open}</span>
                        <span class="dl-late">{late}</span>
                    }
                })}
            </ul>
            <Show when=move || oldest_text().is_some()>
                <p class="deadline-oldest" data-testid="dl-oldest">{move || format!("{} {}", tr("最早未办结", "oldest open:"), oldest_text().unwrap_or_default())}</p>
            </Show>
            <Show when=move || !live.replay>
                <RecentReminders live=live clock=clock/>
            </Show>
        </Tile>
    }
}
