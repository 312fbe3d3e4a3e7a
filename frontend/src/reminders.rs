//! The reminders just sent, on the wall's deadline board: the newest
//! hourly digests `gridwatch-notify` sent to DingTalk or kept in its
//! outbox for the groups under the node shown — hour, group, what it
//! listed, where it went. Asked again every few seconds and when the
//! deployment clock's hour moves.

use gridwatch_model::api::{Delivery, Reminder, RemindersList};
use leptos::prelude::*;

use crate::components::{from_row, slot_rows};
use crate::i18n::tr;
use crate::live::Live;

/// Reminders listed.
const SHOWN: usize = 4;
/// How often they are asked for (ms).
const EVERY_MS: u64 = 15_000;

fn delivery(d: Delivery) -> &'static str {
    match d {
        Delivery::Dingtalk => tr("钉钉", "DingTalk"),
        Delivery::Outbox => tr("站内", "outbox"),
        Delivery::Refused => tr("被拒", "refused"),
    }
}

/// The list, for the wall's node; `clock` is the deployment clock.
#[component]
pub fn RecentReminders(live: Live, clock: Signal<String>) -> impl IntoView {
    let list: RwSignal<Vec<Reminder>> = RwSignal::new(Vec::new());
    let ask = move || {
        let node = live.node.get_untracked();
        leptos::task::spawn_local(async move {
            let url = format!("/api/v1/reminders?node={node}&limit={SHOWN}");
            if let Some(l) = crate::live::fetch::<RemindersList>(&url).await
                && live.node.get_untracked() == node
            {
                list.set(l.reminders);
            }
        });
    };
    // "2022-10-15T14:…" → "2022-10-15T14": asked again when it moves.
    let hour = Memo::new(move |_| clock.with(|c| c.get(..13).unwrap_or_default().to_string()));
    Effect::new(move |_| {
        live.node.track();
        hour.track();
        ask();
    });
    if let Ok(h) = set_interval_with_handle(ask, std::time::Duration::from_millis(EVERY_MS)) {
        on_cleanup(move || h.clear());
    }
    let rows = Memo::new(move |_| list.get());
    view! {
        <Show when=move || list.with(|l| !l.is_empty())>
            <p class="reminders-head">{move || tr("刚发送的提醒", "reminders just sent")}</p>
        </Show>
        <ul class="reminders" data-testid="dl-reminders">
            {slot_rows(rows, |r| if r.overdue > 0 { "late".into() } else { String::new() }, move |r| {
                let when = from_row(r, |r| r.slot.get(11..16).unwrap_or_default().to_string());
                let who = from_row(r, |r| r.group_name.clone());
                let what = from_row(r, |r| {
                    let mut t = format!("{} {}", r.incidents + r.orders, tr("项", "items"));
                    if r.overdue > 0 {
                        t.push_str(&format!(" · {} {}", r.overdue, tr("超时", "overdue")));
                    }
                    t
                });
                let via = from_row(r, |r| delivery(r.delivery).to_string());
                view! {
                    <span class="rm-when">{when}</span>
                    <span class="rm-who">{who}</span>
                    <span class="rm-what">{what}</span>
                    <span class="rm-via">{via}</span>
                }
            })}
        </ul>
    }
}
