//! `gridwatch-notify report --date YYYY-MM-DD`: what went out on a local
//! day, from the reminders stream — digests by hour, by group level and
//! by where they went, and the groups reminded most.

use anyhow::Context as _;
use async_nats::jetstream::{self, consumer};
use futures::StreamExt as _;
use gridwatch_model::Registry;
use gridwatch_model::api::{Delivery, Reminder};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Every reminder in `stream` whose hour is on `date` (YYYY-MM-DD).
pub async fn read_day(
    js: &jetstream::Context,
    stream: &str,
    date: &str,
) -> anyhow::Result<Vec<Reminder>> {
    let s = js
        .get_stream(stream)
        .await
        .with_context(|| format!("the reminders stream {stream}"))?;
    let info = s.get_info().await?;
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut out = Vec::new();
    if info.state.messages == 0 {
        return Ok(out);
    }
    let c = s
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: first,
            },
            ..Default::default()
        })
        .await?;
    let mut msgs = c.messages().await?;
    while let Some(m) = msgs.next().await {
        let m = m?;
        let seq = m.info().map(|i| i.stream_sequence).unwrap_or(last);
        if let Ok(r) = serde_json::from_slice::<Reminder>(&m.payload)
            && r.slot.starts_with(date)
        {
            out.push(r);
        }
        if seq >= last {
            break;
        }
    }
    Ok(out)
}

/// The day's figures as text.
pub fn summary(reg: &Registry, date: &str, day: &[Reminder]) -> String {
    let mut t = String::new();
    let count = |d: Delivery| day.iter().filter(|r| r.delivery == d).count();
    let mut groups: BTreeMap<&str, Vec<&Reminder>> = BTreeMap::new();
    for r in day {
        groups.entry(r.group.as_str()).or_default().push(r);
    }
    let _ = writeln!(
        t,
        "reminders on {date}: {} digests to {} groups (DingTalk {}, outbox {}, refused {}), resent after a crash {}",
        day.len(),
        groups.len(),
        count(Delivery::Dingtalk),
        count(Delivery::Outbox),
        count(Delivery::Refused),
        day.iter().filter(|r| r.resent).count()
    );
    let mut hours: BTreeMap<&str, (usize, u32, u32)> = BTreeMap::new();
    for r in day {
        let h = hours.entry(r.slot.get(11..16).unwrap_or("?")).or_default();
        h.0 += 1;
        h.1 += r.incidents + r.orders;
        h.2 += r.overdue;
    }
    let _ = writeln!(t, "| hour | digests | items listed | overdue listed |");
    let _ = writeln!(t, "|---|---|---|---|");
    for (h, (n, items, late)) in &hours {
        let _ = writeln!(t, "| {h} | {n} | {items} | {late} |");
    }
    let level_name = ["district", "street", "community", "grid"];
    let mut levels = [0usize; 4];
    for r in day {
        if let Some(i) = reg.lookup(&r.group) {
            levels[reg.node(i).level.depth().min(3)] += 1;
        }
    }
    let by_level: Vec<String> = level_name
        .iter()
        .zip(levels)
        .map(|(n, c)| format!("{n} {c}"))
        .collect();
    let _ = writeln!(t, "digests by group level: {}", by_level.join(", "));
    let mut spread: BTreeMap<usize, usize> = BTreeMap::new();
    for v in groups.values() {
        *spread.entry(v.len()).or_default() += 1;
    }
    let spread: Vec<String> = spread
        .iter()
        .map(|(n, g)| format!("{n} digest{} {g}", if *n == 1 { "" } else { "s" }))
        .collect();
    let _ = writeln!(t, "groups by digests received: {}", spread.join(", "));
    let mut top: Vec<(&str, &Vec<&Reminder>)> = groups.iter().map(|(g, v)| (*g, v)).collect();
    top.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(b.0)));
    let _ = writeln!(
        t,
        "| group | digests | most items in one | most overdue in one |"
    );
    let _ = writeln!(t, "|---|---|---|---|");
    for (g, v) in top.iter().take(15) {
        let name = v.first().map(|r| r.group_name.as_str()).unwrap_or(g);
        let most = v.iter().map(|r| r.incidents + r.orders).max().unwrap_or(0);
        let late = v.iter().map(|r| r.overdue).max().unwrap_or(0);
        let _ = writeln!(t, "| {name} | {} | {most} | {late} |", v.len());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(group: &str, hour: u32, overdue: u32, delivery: Delivery) -> Reminder {
        Reminder {
            group: group.into(),
            group_name: group.into(),
            slot: format!("2022-10-15T{hour:02}:00:00+08:00"),
            sent_at: String::new(),
            delivery,
            robot: None,
            incidents: 2,
            orders: 1,
            overdue,
            title: String::new(),
            text: String::new(),
            resent: false,
            error: None,
        }
    }

    #[test]
    fn the_day_is_counted_by_hour_level_and_group() {
        let reg = gridwatch_runtime::registry::load(None).expect("the committed registry");
        let day = [
            r("beilun", 7, 0, Delivery::Dingtalk),
            r("beilun", 8, 1, Delivery::Dingtalk),
            r("beilun/daqi", 8, 0, Delivery::Outbox),
        ];
        let t = summary(&reg, "2022-10-15", &day);
        assert!(
            t.contains("3 digests to 2 groups (DingTalk 2, outbox 1, refused 0)"),
            "{t}"
        );
        assert!(t.contains("| 08:00 | 2 | 6 | 1 |"), "{t}");
        assert!(
            t.contains("district 2, street 1, community 0, grid 0"),
            "{t}"
        );
        assert!(t.contains("1 digest 1, 2 digests 1"), "{t}");
        assert!(t.contains("| beilun | 2 | 3 | 1 |"), "{t}");
    }
}
