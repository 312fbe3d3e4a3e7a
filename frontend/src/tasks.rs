//! The supervisor's tools on the tablet: "my tasks" (every open incident
//! and order under the node on screen, the soonest due first, with the
//! time left by the deployment clock, overdue in red), the action buttons
//! (≥ 44 px) with a note, the report form of a micro-grid's page, and what
//! the outbox holds. Every action goes through the [`Outbox`].

use gridwatch_model::api::{OpenIncident, OpenList, OpenOrder};
use gridwatch_model::event::IncidentAction;
use leptos::prelude::*;
use serde_json::json;

use crate::components::{from_row, slot_rows};
use crate::i18n::tr;
use crate::outbox::Outbox;

/// How often the task list is fetched again (ms).
const REFRESH_MS: u64 = 5_000;
/// Task rows shown of each kind (no scrolling on a tablet).
const SHOWN: usize = 6;

/// Time left until `due` at `clock`: "2 h 05 min" or "overdue 25 min".
pub fn time_left(due: &str, clock: &str) -> (String, bool) {
    match gridwatch_model::time::minutes_between(clock, due) {
        Some(m) if m < 0 => (format!("{} {} min", tr("超时", "overdue"), -m), true),
        Some(m) if m >= 60 => (
            format!("{} {} h {:02} min", tr("剩", "left"), m / 60, m % 60),
            false,
        ),
        Some(m) => (format!("{} {m} min", tr("剩", "left")), false),
        None => ("–".into(), false),
    }
}

/// The last two parts of a node id (`g02/m03`).
fn short(node: &str) -> String {
    let parts: Vec<&str> = node.rsplit('/').take(2).collect();
    parts.into_iter().rev().collect::<Vec<_>>().join("/")
}

/// The action a form is open for.
#[derive(Clone, Debug, PartialEq)]
struct Asked {
    title: String,
    path: String,
    node: String,
    item: String,
    /// A transfer's target.
    to: Option<String>,
    note_required: bool,
}

/// The list, its buttons and the note form.
#[component]
pub fn TaskList(
    /// The node whose open items are listed.
    node: Signal<String>,
    /// The deployment clock (RFC 3339).
    clock: Signal<String>,
    /// The version of the node's state: a change may open or close items.
    seq: Signal<u64>,
    outbox: Outbox,
) -> impl IntoView {
    let list: RwSignal<Option<OpenList>> = RwSignal::new(None);
    let load = move || {
        let n = node.get_untracked();
        leptos::task::spawn_local(async move {
            let url = format!("/api/v1/tasks?node={n}&limit={SHOWN}");
            if let Some(l) = crate::live::fetch::<OpenList>(&url).await
                && node.get_untracked() == n
            {
                list.set(Some(l));
            }
        });
    };
    Effect::new(move |_| {
        node.track();
        // Refetch when the state moves or the outbox settles something.
        seq.track();
        outbox.items.with(Vec::len);
        load();
    });
    if let Ok(h) = set_interval_with_handle(load, std::time::Duration::from_millis(REFRESH_MS)) {
        on_cleanup(move || h.clear());
    }
    let asked: RwSignal<Option<Asked>> = RwSignal::new(None);
    let incidents = Memo::new(move |_| {
        list.with(|l| l.as_ref().map(|l| l.incidents.clone()).unwrap_or_default())
    });
    let orders =
        Memo::new(move |_| list.with(|l| l.as_ref().map(|l| l.orders.clone()).unwrap_or_default()));
    let totals = move || {
        list.with(|l| {
            l.as_ref()
                .map_or((0, 0), |l| (l.incidents_total, l.orders_total))
        })
    };
    let incident_row = move |i: Memo<Option<OpenIncident>>| {
        let what = from_row(i, |i| {
            format!("L{} {}", i.incident.level, i.incident.category)
        });
        let place = from_row(i, |i| short(&i.node));
        let left = move || {
            i.with(|i| {
                // A level-2 incident still at its grid: the 6 h to go up
                // come first.
                i.as_ref()
                    .map(|i| match &i.incident.transfer_due {
                        Some(t) if *t < i.incident.due => {
                            let (text, late) = time_left(t, &clock.get());
                            (format!("{} {text}", tr("上报", "up:")), late)
                        }
                        _ => time_left(&i.incident.due, &clock.get()),
                    })
                    .unwrap_or_default()
            })
        };
        let waiting = move || {
            i.with(|i| {
                i.as_ref()
                    .is_some_and(|i| outbox.waiting_on(&i.incident.incident_id))
            })
        };
        let ask = move |step: &'static str, title: &'static str, required: bool| {
            move |_| {
                let Some(i) = i.get_untracked() else { return };
                let id = i.incident.incident_id.clone();
                // A transfer goes one level up from the node holding it.
                let to = (step == "transfer")
                    .then(|| {
                        i.incident
                            .owner
                            .rsplit_once('/')
                            .map(|(up, _)| up.to_string())
                    })
                    .flatten();
                asked.set(Some(Asked {
                    title: format!("{title} · {id}"),
                    path: format!("/api/v1/incidents/{id}/{step}"),
                    node: i.node.clone(),
                    item: id,
                    to,
                    note_required: required,
                }));
            }
        };
        let can_ack = move || {
            i.with(|i| {
                i.as_ref()
                    .is_some_and(|i| i.incident.last_action != IncidentAction::Acknowledged)
            })
        };
        let can_up = move || i.with(|i| i.as_ref().is_some_and(|i| i.incident.owner.contains('/')));
        view! {
            <span class="task-what">{what}</span>
            <span class="task-where">{place}</span>
            <span class=move || if left().1 { "task-left overdue" } else { "task-left" } data-testid="task-left">{move || left().0}</span>
            <Show when=waiting fallback=move || view! {
                <span class="task-acts">
                    <Show when=can_ack><button class="act" data-testid="act-acknowledge" on:click=ask("acknowledge", "接单 acknowledge", false)>{move || tr("接单", "Acknowledge")}</button></Show>
                    <Show when=can_up><button class="act" data-testid="act-transfer" on:click=ask("transfer", "上报 transfer", false)>{move || tr("上报", "Transfer")}</button></Show>
                    <button class="act act-main" data-testid="act-resolve" on:click=ask("resolve", "办结 resolve", true)>{move || tr("办结", "Resolve")}</button>
                </span>
            }>
                <span class="task-pending" data-testid="task-pending">{move || tr("待发送", "pending")}</span>
            </Show>
        }
    };
    let order_row = move |o: Memo<Option<OpenOrder>>| {
        let what = from_row(o, |o| {
            format!(
                "{} {}",
                o.order.number,
                crate::street::flag_kind_text(o.order.kind)
            )
        });
        let place = from_row(o, |o| short(&o.node));
        let left = move || {
            o.with(|o| {
                o.as_ref()
                    .map(|o| time_left(&o.order.due, &clock.get()))
                    .unwrap_or_default()
            })
        };
        let waiting = move || {
            o.with(|o| {
                o.as_ref()
                    .is_some_and(|o| outbox.waiting_on(&o.order.flag_id))
            })
        };
        let rectify = move |_| {
            let Some(o) = o.get_untracked() else { return };
            asked.set(Some(Asked {
                title: format!("{} · {}", tr("整改", "rectify"), o.order.number),
                path: format!("/api/v1/orders/{}/rectify", o.order.flag_id),
                node: o.node.clone(),
                item: o.order.flag_id.clone(),
                to: None,
                note_required: true,
            }));
        };
        view! {
            <span class="task-what">{what}</span>
            <span class="task-where">{place}</span>
            <span class=move || if left().1 { "task-left overdue" } else { "task-left" }>{move || left().0}</span>
            <Show when=waiting fallback=move || view! {
                <span class="task-acts"><button class="act act-main" data-testid="act-rectify" on:click=rectify>{move || tr("整改", "Rectify")}</button></span>
            }>
                <span class="task-pending">{move || tr("待发送", "pending")}</span>
            </Show>
        }
    };
    let none = move || totals() == (0, 0) && list.with(Option::is_some);
    view! {
        <section class="tasks" data-testid="tasks">
            <h3>{move || { let (i, o) = totals(); format!("{} {i} · {} {o}", tr("待办事件", "open incidents"), tr("督办单", "orders")) }}</h3>
            <Notices outbox=outbox/>
            <ul class="task-rows" data-testid="task-incidents">
                {slot_rows(incidents, |_| String::new(), incident_row)}
            </ul>
            <ul class="task-rows" data-testid="task-orders">
                {slot_rows(orders, |_| String::new(), order_row)}
            </ul>
            <Show when=none><p class="none">{move || tr("无待办", "nothing open")}</p></Show>
            <NoteForm asked=asked outbox=outbox/>
        </section>
    }
}

/// The note form of the action asked for; sends it through the outbox.
#[component]
fn NoteForm(asked: RwSignal<Option<Asked>>, outbox: Outbox) -> impl IntoView {
    let note = RwSignal::new(String::new());
    let missing = move || {
        asked.with(|a| a.as_ref().is_some_and(|a| a.note_required))
            && note.with(|n| n.trim().is_empty())
    };
    let send = move |_| {
        let Some(a) = asked.get_untracked() else {
            return;
        };
        if missing() {
            return;
        }
        let mut body = json!({"node": a.node, "note": note.get_untracked().trim()});
        if let Some(to) = &a.to {
            body["to"] = json!(to);
        }
        outbox.push(a.path, body, a.title, a.item);
        note.set(String::new());
        asked.set(None);
    };
    let cancel = move |_| {
        note.set(String::new());
        asked.set(None);
    };
    view! {
        <Show when=move || asked.with(Option::is_some)>
            <div class="note-form" data-testid="note-form">
                <h4>{move || asked.with(|a| a.as_ref().map(|a| a.title.clone()).unwrap_or_default())}</h4>
                <Show when=move || asked.with(|a| a.as_ref().is_some_and(|a| a.to.is_some()))>
                    <p>{move || format!("{} {}", tr("上报至", "to"), asked.with(|a| a.as_ref().and_then(|a| a.to.clone()).unwrap_or_default()))}</p>
                </Show>
                <textarea data-testid="note" rows="3" placeholder=move || tr("处置说明", "what was done")
                    prop:value=move || note.get() on:input=move |ev| note.set(event_target_value(&ev))></textarea>
                <div class="note-acts">
                    <button class="act" on:click=cancel>{move || tr("取消", "Cancel")}</button>
                    <button class="act act-main" data-testid="note-send" disabled=missing on:click=send>{move || tr("提交", "Send")}</button>
                </div>
            </div>
        </Show>
    }
}

/// What the outbox holds and the last outcomes.
#[component]
pub fn Notices(outbox: Outbox) -> impl IntoView {
    let queued = move || outbox.items.with(Vec::len);
    let notices = move || -> Vec<(usize, crate::outbox::Notice)> {
        outbox.notices.get().into_iter().enumerate().collect()
    };
    view! {
        <div class="notices" data-testid="outbox">
            <Show when=move || queued() != 0>
                <p class="notice pending" data-testid="outbox-waiting">
                    {move || format!("{} {} {}", tr("离线待发送", "waiting to send:"), queued(), tr("项", "action(s)"))}
                </p>
            </Show>
            <For each=notices key=|(i, n)| (*i, n.label.clone(), n.message.clone()) children=move |(_, n)| {
                let class = if n.ok { "notice ok" } else { "notice refused" };
                view! { <p class=class data-testid="notice">{format!("{} — {}", n.label, n.message)}</p> }
            }/>
        </div>
    }
}

/// The report form on a micro-grid's page.
#[component]
pub fn ReportForm(node: Signal<String>, outbox: Outbox) -> impl IntoView {
    let open = RwSignal::new(false);
    let level = RwSignal::new(1u8);
    let category = RwSignal::new(String::new());
    let note = RwSignal::new(String::new());
    let send = move |_| {
        let c = category.get_untracked().trim().to_string();
        if c.is_empty() {
            return;
        }
        let body = json!({"node": node.get_untracked(), "level": level.get_untracked(), "category": c, "note": note.get_untracked().trim()});
        outbox.push(
            "/api/v1/incidents".into(),
            body,
            format!("{} L{} {c}", tr("上报", "report"), level.get_untracked()),
            String::new(),
        );
        category.set(String::new());
        note.set(String::new());
        open.set(false);
    };
    const PRESETS: [&str; 5] = [
        "生活物资 supplies",
        "就医需求 medical",
        "独居老人 elderly care",
        "人员聚集 gathering",
        "设施维修 repairs",
    ];
    view! {
        <button class="act act-main" data-testid="report-open" on:click=move |_| open.set(true)>{move || tr("上报事件", "Report an incident")}</button>
        <Show when=move || open.get()>
            <div class="note-form" data-testid="report-form">
                <h4>{move || tr("上报事件", "Report an incident")}</h4>
                <div class="levels">
                    {(1u8..=4).map(|l| view! {
                        <button class=move || if level.get() == l { "act act-main" } else { "act" } data-testid=format!("level-{l}") on:click=move |_| level.set(l)>{format!("L{l}")}</button>
                    }).collect_view()}
                </div>
                <div class="levels">
                    {PRESETS.iter().map(|p| view! {
                        <button class="act" on:click=move |_| category.set(p.to_string())>{p.split(' ').next().unwrap_or(p)}</button>
                    }).collect_view()}
                </div>
                <input type="text" data-testid="report-category" placeholder=move || tr("类别", "category")
                    prop:value=move || category.get() on:input=move |ev| category.set(event_target_value(&ev))/>
                <textarea rows="2" data-testid="report-note" placeholder=move || tr("说明", "note")
                    prop:value=move || note.get() on:input=move |ev| note.set(event_target_value(&ev))></textarea>
                <div class="note-acts">
                    <button class="act" on:click=move |_| open.set(false)>{move || tr("取消", "Cancel")}</button>
                    <button class="act act-main" data-testid="report-send" disabled=move || category.with(|c| c.trim().is_empty()) on:click=send>{move || tr("提交", "Send")}</button>
                </div>
            </div>
        </Show>
    }
}
