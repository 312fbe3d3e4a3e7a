//! The hourly reminders over an accelerated day, against a strict fake of
//! DingTalk (it checks every signature and at most 20 a minute per
//! robot): exactly one digest per (group, hour) with open items, 07:00
//! through 16:00; more digests for one robot than a minute carries are
//! merged; DingTalk's errors are retried; a group without a robot gets
//! its digests in the outbox stream, which the wall's reminders route
//! shows; notify killed mid-day and started again neither resends nor
//! skips an hour.

use anyhow::{Context, Result, ensure};
use gridwatch_model::api::{Delivery, Reminder};
use gridwatch_tests::dingtalk::FakeDingTalk;
use gridwatch_tests::events::{self, at, publish_all};
use gridwatch_tests::{Http, procs, wait_for};
use std::collections::BTreeMap;
use std::time::Duration;

use crate::system::*;

const A: &str = "district-robot";
const B: &str = "daqi-grids-robot";

/// Moves the replay clock to `h:m` and waits until ingest has taken it.
async fn clock(sys: &System, h: u32, m: u32) -> Result<()> {
    publish_all(&sys.js, &[events::tick(at(h, m, 0))]).await?;
    sys.wait_all_processed().await
}

/// Waits until notify has worked hour `h` through (its ledger's marker).
async fn worked(sys: &System, h: u32, notify: &mut procs::Proc) -> Result<()> {
    let kv = sys.admin.get_key_value("GW_NOTIFY").await?;
    let key = format!("20221015.{h:02}");
    wait_for(&format!("notify to work {key} through"), WAIT, || async {
        kv.get(key.clone()).await.ok().flatten()
    })
    .await
    .with_context(|| format!("notify log:\n{}", notify.log_tail()))?;
    Ok(())
}

/// Waits until robot `token` has delivered `n` messages.
async fn delivered(fake: &FakeDingTalk, token: &str, n: usize, notify: &procs::Proc) -> Result<()> {
    wait_for(&format!("{n} messages to {token}"), WAIT, || async {
        (fake.delivered(token).len() >= n).then_some(())
    })
    .await
    .with_context(|| {
        format!(
            "requests: {:?}\nnotify log:\n{}",
            fake.received(),
            notify.log_tail()
        )
    })
}

/// Every reminder in the reminders stream, in order.
async fn reminders(sys: &System) -> Result<Vec<Reminder>> {
    let s = sys.admin.get_stream("GW_REMINDERS").await?;
    let last = s.get_info().await?.state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let m = s.get_raw_message(seq).await?;
        out.push(serde_json::from_slice(&m.payload)?);
    }
    Ok(out)
}

fn digests_in(texts: &[String]) -> usize {
    texts
        .iter()
        .map(|t| t.matches("### 事件处置提醒").count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hourly_digests_over_an_accelerated_day_once_each_through_a_restart() -> Result<()> {
    let sys = System::start().await?;
    let reg = gridwatch_tests::registry()?;
    let fake = FakeDingTalk::start(&[(A, "SECdistrict0001"), (B, "SECdaqigrids0002")]).await?;
    // 25 of Daqi's grids share one robot: their 07:00 digests are more
    // than a minute carries.
    let daqi = reg.lookup("beilun/daqi").context("daqi")?;
    let grids: Vec<String> = reg
        .nodes
        .iter()
        .filter(|n| n.level.depth() == 3 && n.id.as_str().starts_with("beilun/daqi/"))
        .take(25)
        .map(|n| n.id.to_string())
        .collect();
    ensure!(grids.len() == 25 && reg.node(daqi).children.len() > 1);
    let mg_of = |grid: &str| mgs_under(&reg, grid)[0].clone();
    let xinqi = mgs_under(&reg, "beilun/xinqi");
    let conf = sys.work.dir.path().join("notify.toml");
    let grid_list: Vec<String> = grids.iter().map(|g| format!("\"{g}\"")).collect();
    std::fs::write(
        &conf,
        format!(
            r#"group_levels = [1]
tick_ms = 100
retry_ms = 200
retry_max_ms = 1000

[[robots]]
name = "北仑区指挥中心"
groups = ["beilun"]
webhook = "{}"
secret = "SECdistrict0001"
at_mobiles = ["13800000000"]

[[robots]]
name = "大碶网格群"
groups = [{}]
webhook = "{}"
secret = "SECdaqigrids0002"
"#,
            fake.webhook(A),
            grid_list.join(", "),
            fake.webhook(B)
        ),
    )?;

    // 06:30: a level-1 incident on each of the 25 grids (theirs), a
    // level-3 one in Xinqi (the district's at once) and a level-2 one in
    // Xinqi (its grid's; the grid is no group, so Xinqi street's, which
    // has no robot: the outbox). 06:40: a flag on grid 0 → an order.
    clock(&sys, 6, 40).await?;
    let mut evs: Vec<_> = grids
        .iter()
        .enumerate()
        .map(|(k, g)| {
            events::incident(
                &format!("g{k}"),
                at(6, 30, 0),
                &mg_of(g),
                &format!("G-{k}"),
                "reported",
                1,
            )
        })
        .collect();
    evs.push(events::incident(
        "d1",
        at(6, 30, 0),
        &xinqi[0],
        "D-1",
        "reported",
        3,
    ));
    evs.push(events::incident(
        "x1",
        at(6, 30, 0),
        &xinqi[1],
        "X-1",
        "reported",
        2,
    ));
    evs.push(events::video(
        "v1",
        at(6, 40, 0),
        &mg_of(&grids[0]),
        "F-1",
        "vendor",
        "raised",
    ));
    publish_all(&sys.js, &evs.iter().map(events::msg).collect::<Vec<_>>()).await?;
    sys.wait_all_processed().await?;

    // The district's robot first answers "busy", then "too fast": retried.
    fake.fail_next(A, &[-1, 130101]);
    let mut notify = procs::notify(&sys.nats, &conf, &sys.work.logs(), &[])?;
    clock(&sys, 7, 0).await?;
    worked(&sys, 7, &mut notify).await?;
    delivered(&fake, A, 1, &notify).await?;
    wait_for("25 digests to the grids' robot", WAIT, || async {
        let texts: Vec<String> = fake.delivered(B).into_iter().map(|r| r.text).collect();
        (digests_in(&texts) >= 25).then_some(())
    })
    .await?;
    let b = fake.delivered(B);
    ensure!(
        b.len() == 20,
        "{} messages to one robot in a minute",
        b.len()
    );
    ensure!(
        b.iter().any(|r| r.title.contains("合并 6 条")),
        "no merged message: {:?}",
        b.iter().map(|r| &r.title).collect::<Vec<_>>()
    );
    ensure!(
        b.iter()
            .any(|r| r.text.contains("督-20221015-0001") && r.text.contains("G-0")),
        "grid 0's digest lacks its order"
    );
    let a = fake.delivered(A);
    ensure!(
        a[0].text.contains("事件 D-1 · 3级") && a[0].text.contains("剩 9 小时 00 分"),
        "{}",
        a[0].text
    );
    ensure!(
        a[0].text.contains("@13800000000") && a[0].at_mobiles == ["13800000000"],
        "no mention: {:?}",
        a[0]
    );

    // 07:20 the order is rectified, 07:30 the grids' incidents resolved.
    clock(&sys, 7, 30).await?;
    let mut evs = vec![events::video(
        "v2",
        at(7, 20, 0),
        &mg_of(&grids[0]),
        "F-1",
        "vendor",
        "rectified",
    )];
    for (k, g) in grids.iter().enumerate() {
        evs.push(events::incident(
            &format!("g{k}r"),
            at(7, 30, 0),
            &mg_of(g),
            &format!("G-{k}"),
            "resolved",
            1,
        ));
    }
    publish_all(&sys.js, &evs.iter().map(events::msg).collect::<Vec<_>>()).await?;
    for h in 8..=11 {
        if h == 10 {
            // 09:30: Xinqi's level-2 resolved.
            clock(&sys, 9, 30).await?;
            let ev = events::incident("x1r", at(9, 30, 0), &xinqi[1], "X-1", "resolved", 2);
            publish_all(&sys.js, &[events::msg(&ev)]).await?;
        }
        clock(&sys, h, 0).await?;
        worked(&sys, h, &mut notify).await?;
        delivered(&fake, A, (h - 6) as usize, &notify).await?;
    }

    // Killed after 11:00; the clock passes 12:00 while it is down.
    notify.kill_hard();
    clock(&sys, 12, 0).await?;
    let mut notify = procs::notify(&sys.nats, &conf, &sys.work.logs(), &[])?;
    worked(&sys, 12, &mut notify).await?;
    delivered(&fake, A, 6, &notify).await?;
    // Stopped and started again within the hour: nothing new.
    clock(&sys, 12, 30).await?;
    notify.terminate();
    let mut notify = procs::notify(&sys.nats, &conf, &sys.work.logs(), &[])?;
    for h in 13..=17 {
        if h == 15 {
            clock(&sys, 14, 30).await?;
            let ev = events::incident("d1r", at(14, 30, 0), &xinqi[0], "D-1", "resolved", 3);
            publish_all(&sys.js, &[events::msg(&ev)]).await?;
        }
        clock(&sys, h, 0).await?;
        if h <= 16 {
            worked(&sys, h, &mut notify).await?;
        }
    }
    delivered(&fake, A, 8, &notify).await?;
    // Let anything extra show itself.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let violations = fake.violations();
    ensure!(
        violations.is_empty(),
        "DingTalk would refuse: {violations:?}"
    );
    ensure!(fake.busiest_minute(B) <= 20 && fake.busiest_minute(A) <= 20);
    let a = fake.delivered(A);
    let b = fake.delivered(B);
    let a_requests = fake.received().iter().filter(|r| r.token == A).count();
    ensure!(
        (a.len(), a_requests) == (8, 10),
        "the district's robot: {} delivered of {a_requests} requests",
        a.len()
    );
    let titles: Vec<&str> = a.iter().map(|r| r.title.as_str()).collect();
    let want: Vec<String> = (7..=14)
        .map(|h| format!("事件处置提醒 {h:02}:00"))
        .collect();
    ensure!(titles == want, "hours sent: {titles:?}");
    let texts: Vec<String> = b.iter().map(|r| r.text.clone()).collect();
    ensure!(
        (b.len(), digests_in(&texts)) == (20, 25),
        "the grids' robot"
    );

    // The record: one reminder per (group, hour), exactly as expected.
    let all = reminders(&sys).await?;
    let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &all {
        *per.entry((r.group.clone(), r.slot.clone())).or_default() += 1;
        ensure!(!r.resent, "resent: {r:?}");
    }
    ensure!(
        per.values().all(|n| *n == 1),
        "a (group, hour) twice: {per:?}"
    );
    let outbox: Vec<&Reminder> = all
        .iter()
        .filter(|r| r.delivery == Delivery::Outbox)
        .collect();
    ensure!(
        outbox.len() == 3 && outbox.iter().all(|r| r.group == "beilun/xinqi"),
        "outbox: {outbox:?}"
    );
    let by_group = |g: &str| all.iter().filter(|r| r.group == g).count();
    ensure!(
        (all.len(), by_group("beilun")) == (36, 8),
        "{} reminders, {} the district's",
        all.len(),
        by_group("beilun")
    );

    // The wall's list, newest first; a street supervisor sees their own.
    let acc = sys.nats.accounts()?.clone();
    let (_, wall) = sys
        .http
        .get("/api/v1/reminders?node=beilun&limit=200")
        .await?;
    let list = wall["reminders"].as_array().cloned().unwrap_or_default();
    ensure!(list.len() == 36, "the wall shows {}", list.len());
    ensure!(
        list[0]["slot"] == "2022-10-15T14:00:00+08:00",
        "{}",
        list[0]
    );
    let sup = Http::with_token(sys.port, &acc.supervisor.token);
    let (_, mine) = sup.get("/api/v1/reminders?node=beilun/daqi").await?;
    let mine = mine["reminders"].as_array().cloned().unwrap_or_default();
    ensure!(
        !mine.is_empty()
            && mine.iter().all(|r| r["group"]
                .as_str()
                .is_some_and(|g| g.starts_with("beilun/daqi/"))),
        "{mine:?}"
    );
    let (s, _, _) = sup
        .send(
            reqwest::Method::GET,
            "/api/v1/reminders?node=beilun/xinqi",
            None,
            &[],
        )
        .await?;
    ensure!(s == 403, "out of scope: {s}");
    // The limit at its edges: 200 is the most (above), 0 and 201 are not.
    for bad in ["limit=0", "limit=201", "limit=x"] {
        let (s, body) = sys
            .http
            .get(&format!("/api/v1/reminders?node=beilun&{bad}"))
            .await?;
        ensure!(
            s == 400 && body["error"]["code"].is_string(),
            "{bad}: {s} {body}"
        );
    }
    let (s, _) = sys
        .http
        .get("/api/v1/reminders?node=beilun/nowhere")
        .await?;
    ensure!(s == 404, "an unknown node: {s}");
    // The wall's deadline board lists the newest.
    crate::browser::require_frontend()?;
    let (_driver, c) = crate::browser::chromium(&sys, (1920, 1080)).await?;
    let seen = async {
        let base = format!("http://127.0.0.1:{}", sys.port);
        gridwatch_tests::people::open_device_link(&c, &base, &acc.wall_link).await?;
        wait_for("the reminders on the wall", WAIT, || async {
            let t = crate::browser::text_of(&c, "dl-reminders").await?;
            (t.contains("14:00") && t.contains("北仑区") && t.contains("钉钉")).then_some(t)
        })
        .await?;
        crate::browser::fit_viewport(&c, 1920, 1080).await?;
        crate::browser::screenshot(&c, "wall-reminders").await
    }
    .await;
    let _ = c.close().await;
    seen?;
    drop(notify);
    Ok(())
}
