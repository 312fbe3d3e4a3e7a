//! The supervisor's tasks in headless Chromium: Daqi's supervisor signs in
//! on the tablet, acknowledges and resolves an incident with a note, and
//! rectifies an order while the backend is down — queued on the device,
//! shown as waiting, sent when the connection returns, counted once. The
//! wall's deadline board follows.

use anyhow::{Context, Result, ensure};
use fantoccini::Locator;
use gridwatch_tests::events::{self, at, msg, publish_all, tick};
use gridwatch_tests::{people, procs, registry, wait_for};

use crate::browser::{chromium, fit_viewport, require_frontend, screenshot, text_of, wait_text};
use crate::system::*;

async fn click(c: &fantoccini::Client, id: &str) -> Result<()> {
    let css = format!("[data-testid='{id}']");
    let el = wait_for(&format!("`{id}` on the page"), WAIT, || async {
        c.find(Locator::Css(&css)).await.ok()
    })
    .await?;
    el.click().await.with_context(|| format!("clicking {id}"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_supervisor_acts_on_tasks_and_offline_actions_follow() -> Result<()> {
    require_frontend()?;
    let mut sys = System::start().await?;
    let reg = registry()?;
    let mg = mgs_under(&reg, "beilun/daqi")[0].clone();
    publish_all(
        &sys.js,
        &[
            tick(at(9, 0, 0)),
            msg(&events::incident(
                "i-1",
                at(8, 40, 0),
                &mg,
                "I-1",
                "reported",
                2,
            )),
            msg(&events::video(
                "v-1",
                at(9, 1, 0),
                &mg,
                "F-1",
                "vendor",
                "raised",
            )),
            tick(at(9, 2, 0)),
        ],
    )
    .await?;
    sys.wait_all_processed().await?;
    sys.state_until(&mg, "the incident and the order", |s| {
        s["incidents"]["open"] == 1 && s["video"]["flags_open"] == 1
    })
    .await?;
    let (_driver, c) = chromium(&sys, (1024, 768)).await?;
    // The command centre's wall, watching the same day.
    let (_wall_driver, wall) = chromium(&sys, (1920, 1080)).await?;
    let result = async {
        let base = format!("http://127.0.0.1:{}", sys.port);
        people::open_device_link(&wall, &base, &sys.nats.accounts()?.wall_link).await?;
        wait_text(&wall, "dl-open", "1").await?;
        wait_text(&wall, "dl-issued", "1").await?;
        people::sign_in(&c, &base, "/street/daqi", &sys.nats.accounts()?.supervisor).await?;
        fit_viewport(&c, 1024, 768).await?;
        screenshot(&c, "tablet-street-makeup").await?;
        ensure!(
            text_of(&c, "makeup-sealed").await.is_some(),
            "no zone make-up on the street page"
        );
        click(&c, "tab-tasks").await?;
        wait_for("the task list", WAIT, || async {
            text_of(&c, "task-incidents")
                .await
                .filter(|t| t.contains("L2"))
        })
        .await?;
        screenshot(&c, "tablet-tasks").await?;
        // Touch targets: every action button at least 44 px high and wide.
        for b in c.find_all(Locator::Css("button.act, button.tab")).await? {
            let (_, _, w, h) = b.rectangle().await?;
            ensure!(w >= 44.0 && h >= 44.0, "a {w}×{h} button");
        }
        // Acknowledge (no note needed), then resolve with a note.
        click(&c, "act-acknowledge").await?;
        click(&c, "note-send").await?;
        sys.state_until(&mg, "acknowledged", |s| {
            s["detail"]["open_incidents"][0]["last_action"] == "acknowledged"
        })
        .await?;
        click(&c, "act-resolve").await?;
        let send = c.find(Locator::Css("[data-testid='note-send']")).await?;
        ensure!(
            send.attr("disabled").await?.is_some(),
            "resolving without a note is offered"
        );
        c.find(Locator::Css("[data-testid='note']"))
            .await?
            .send_keys("已送物资上门")
            .await?;
        click(&c, "note-send").await?;
        let s = sys
            .state_until(&mg, "resolved", |s| s["incidents"]["open"] == 0)
            .await?;
        ensure!(s["incidents"]["resolved_today"] == 1, "{}", s["incidents"]);
        // The wall's board has it.
        wait_text(&wall, "dl-open", "0").await?;
        screenshot(&wall, "wall-deadlines-after-resolve").await?;
        // The tablet has had its answers (the outbox is empty)...
        wait_for("the resolution answered", WAIT, || async {
            text_of(&c, "outbox-waiting").await.is_none().then_some(())
        })
        .await?;
        // ...then the backend goes away; the order is rectified on the tablet
        // anyway: it waits on the device, and says so.
        sys.backend.kill_hard();
        click(&c, "act-rectify").await?;
        c.find(Locator::Css("[data-testid='note']"))
            .await?
            .send_keys("摊贩已劝离")
            .await?;
        click(&c, "note-send").await?;
        wait_for("the action shown waiting", WAIT, || async {
            text_of(&c, "outbox-waiting")
                .await
                .filter(|t| t.contains('1'))
        })
        .await?;
        screenshot(&c, "tablet-offline-waiting").await?;
        // Back: the outbox sends it by itself, once.
        sys.backend = procs::backend(&sys.nats, sys.port, &sys.work.logs())?;
        let s = match sys
            .state_until(&mg, "the offline rectification", |s| {
                s["video"]["flags_open"] == 0
            })
            .await
        {
            Ok(s) => s,
            Err(e) => {
                screenshot(&c, "tablet-offline-not-sent").await?;
                let said = text_of(&c, "outbox").await.unwrap_or_default();
                anyhow::bail!("{e}; the tablet says: {said}");
            }
        };
        ensure!(s["video"]["rectified_today"] == 1, "{}", s["video"]);
        wait_text(&wall, "dl-rectified", "1").await?;
        wait_for("the outbox empty", WAIT, || async {
            text_of(&c, "outbox-waiting").await.is_none().then_some(())
        })
        .await?;
        screenshot(&c, "tablet-tasks-done").await?;
        // A micro-grid's page reports an incident.
        c.goto(&format!("{base}/street/{mg}")).await?;
        click(&c, "report-open").await?;
        click(&c, "level-2").await?;
        c.find(Locator::Css("[data-testid='report-category']"))
            .await?
            .send_keys("独居老人 elderly care")
            .await?;
        c.find(Locator::Css("[data-testid='report-note']"))
            .await?
            .send_keys("老人独居，需代购药品")
            .await?;
        screenshot(&c, "tablet-report-form").await?;
        click(&c, "report-send").await?;
        let s = sys
            .state_until(&mg, "the tablet's report", |s| s["incidents"]["open"] == 1)
            .await?;
        let open = &s["detail"]["open_incidents"][0];
        ensure!(
            open["level"] == 2 && open["category"] == "独居老人 elderly care",
            "{open}"
        );
        ensure!(s["incidents"]["reported_today"] == 2, "{}", s["incidents"]);
        Ok::<_, anyhow::Error>(())
    }
    .await;
    let _ = c.close().await;
    let _ = wall.close().await;
    result
}
