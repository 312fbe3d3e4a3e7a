//! The disposal loop from a tablet: a supervisor reports, acknowledges,
//! transfers and resolves incidents and rectifies and reopens orders
//! through the backend; ingest applies them as events; a retry counts
//! once, a step that does not fit is a 409 with ingest's reason, one out
//! of scope a 403; the 16:00 rule turns the micro-grid red on the replay
//! clock; the trail has every action; `gridwatch-recount` agrees.

use anyhow::{Result, ensure};
use gridwatch_tests::{Http, procs};

use reqwest::Method;
use serde_json::{Value, json};

use crate::system::*;

/// Publishes a replay-clock tick at `t` (local RFC 3339) and waits until
/// ingest has taken it.
async fn tick(sys: &System, t: &str) -> Result<()> {
    let body = serde_json::to_vec(&json!({ "now": t }))?;
    sys.js.publish("gw.clock", body.into()).await?.await?;
    sys.wait_all_processed().await
}

/// POSTs an action with `key` (none: no header): status and body.
async fn act(h: &Http, path: &str, key: Option<&str>, body: Value) -> Result<(u16, Value)> {
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    let (s, _, v) = h.send(Method::POST, path, Some(&body), &headers).await?;
    Ok((s, v))
}

/// POSTs until ingest has applied it (the first answer may be `pending`;
/// the same key again is the same event): the answer. Any other answer
/// fails at once.
async fn applied(h: &Http, path: &str, key: &str, body: Value) -> Result<Value> {
    let start = std::time::Instant::now();
    loop {
        let (s, v) = act(h, path, Some(key), body.clone()).await?;
        match s {
            200 if v["status"] == "applied" => return Ok(v),
            202 if start.elapsed() < WAIT => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            _ => anyhow::bail!("{path} ({key}): {s} {v}"),
        }
    }
}

/// The error message of a refused action, after checking its status.
async fn refused(
    h: &Http,
    path: &str,
    key: Option<&str>,
    body: Value,
    status: u16,
) -> Result<String> {
    let (s, v) = act(h, path, key, body).await?;
    ensure!(s == status, "{path}: expected {status}, got {s} {v}");
    ensure!(v["error"]["code"].is_string(), "no JSON error body: {v}");
    Ok(v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_works_the_loop_from_a_tablet() -> Result<()> {
    let sys = System::start().await?;
    let acc = sys.nats.accounts()?.clone();
    let reg = gridwatch_tests::registry()?;
    let tablet = Http::with_token(sys.port, &acc.supervisor.token);
    let admin = Http::with_token(sys.port, &acc.admin.token);
    let mg = mgs_under(&reg, "beilun/daqi")[0].clone();
    let elsewhere = mgs_under(&reg, "beilun/xinqi")[0].clone();
    tick(&sys, "2022-10-15T09:00:00+08:00").await?;
    sys.state_until("beilun", "the replay clock", |s| {
        s["as_of"] == "2022-10-15T09:00:00+08:00"
    })
    .await?;

    // Report a level-2 incident; the retry (same key) is the same event.
    let report =
        json!({"node": mg, "level": 2, "category": "生活物资 supplies", "note": "独居老人缺米"});
    let first = applied(&tablet, "/api/v1/incidents", "r-1", report.clone()).await?;
    let again = applied(&tablet, "/api/v1/incidents", "r-1", report.clone()).await?;
    ensure!(
        first == again,
        "a retry answered otherwise: {first} vs {again}"
    );
    let inc = first["item"].as_str().unwrap_or_default().to_string();
    ensure!(inc.starts_with("I-20221015-"), "{first}");
    let s = sys
        .state_until(&mg, "the report", |s| s["incidents"]["open"] == 1)
        .await?;
    ensure!(
        s["incidents"]["reported_today"] == 1,
        "counted twice: {}",
        s["incidents"]
    );
    let open = &s["detail"]["open_incidents"][0];
    ensure!(
        open["owner"] == mg.rsplit_once('/').map(|g| g.0).unwrap_or_default()
            && open["due"] == "2022-10-15T16:00:00+08:00"
            && open["transfer_due"] == "2022-10-15T15:00:00+08:00",
        "{open}"
    );

    // Who may not act: out of scope, a wall, an analyst; without a key, a
    // level that is none, a key too long.
    let elsewhere_report = json!({"node": elsewhere, "level": 1, "category": "c"});
    let wall = Http::with_cookie(
        sys.port,
        &Http::device_cookie(sys.port, &acc.wall_link).await?,
    );
    let analyst = Http::with_token(sys.port, &acc.analyst.token);
    let bad_level = json!({"node": mg, "level": 5, "category": "c"});
    let long_key = "k".repeat(65);
    let refusals = [
        (
            &tablet,
            Some("r-2"),
            elsewhere_report,
            403,
            "outside your scope",
        ),
        (
            &wall,
            Some("r-3"),
            report.clone(),
            403,
            "only supervisors and admins act",
        ),
        (
            &analyst,
            Some("r-4"),
            report.clone(),
            403,
            "only supervisors and admins act",
        ),
        (&tablet, None, report.clone(), 400, "Idempotency-Key"),
        (&tablet, Some("r-5"), bad_level, 400, "level"),
        (
            &tablet,
            Some(long_key.as_str()),
            report.clone(),
            400,
            "Idempotency-Key",
        ),
    ];
    for (h, key, body, status, says) in refusals {
        let why = refused(h, "/api/v1/incidents", key, body, status).await?;
        ensure!(why.contains(says), "{key:?}: {why}");
    }

    // Acknowledge, once; transfer up, not sideways; resolve with a note.
    let step = |s: &str| format!("/api/v1/incidents/{inc}/{s}");
    let body = |extra: Value| {
        let mut b = json!({"node": mg, "note": ""});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            b[k] = v;
        }
        b
    };
    applied(&tablet, &step("acknowledge"), "a-1", body(json!({}))).await?;
    let why = refused(
        &tablet,
        &step("acknowledge"),
        Some("a-2"),
        body(json!({})),
        409,
    )
    .await?;
    ensure!(why.contains("already acknowledged"), "{why}");
    let sideways = body(json!({"to": "beilun/xinqi"}));
    let why = refused(&tablet, &step("transfer"), Some("t-1"), sideways, 409).await?;
    ensure!(why.contains("can only go up"), "{why}");
    refused(
        &tablet,
        &step("transfer"),
        Some("t-2"),
        body(json!({})),
        400,
    )
    .await?;
    applied(
        &tablet,
        &step("transfer"),
        "t-3",
        body(json!({"to": "beilun/daqi"})),
    )
    .await?;
    let s = sys
        .state_until(&mg, "the transfer", |s| {
            s["detail"]["open_incidents"][0]["owner"] == "beilun/daqi"
        })
        .await?;
    ensure!(
        s["detail"]["open_incidents"][0]["last_action"] == "transferred",
        "{s}"
    );
    let why = refused(&tablet, &step("resolve"), Some("x-1"), body(json!({})), 400).await?;
    ensure!(why.contains("note"), "{why}");
    applied(
        &tablet,
        &step("resolve"),
        "x-2",
        body(json!({"note": "已送米上门"})),
    )
    .await?;
    let why = refused(
        &tablet,
        &step("resolve"),
        Some("x-3"),
        body(json!({"note": "again"})),
        409,
    )
    .await?;
    ensure!(why.contains("already resolved"), "{why}");
    let s = sys
        .state_until(&mg, "the resolution", |s| s["incidents"]["open"] == 0)
        .await?;
    ensure!(s["incidents"]["resolved_today"] == 1, "{}", s["incidents"]);

    // Level 3 is the district's: the street supervisor cannot close it.
    let l3 = json!({"node": mg, "level": 3, "category": "就医需求 medical", "note": "发热就医"});
    let l3 = applied(&tablet, "/api/v1/incidents", "r-6", l3).await?;
    let l3 = l3["item"].as_str().unwrap_or_default().to_string();
    let s = sys
        .state_until(&mg, "the level-3 report", |s| s["incidents"]["open"] == 1)
        .await?;
    let open = &s["detail"]["open_incidents"][0];
    ensure!(
        open["owner"] == "beilun" && open["label"] == "medical",
        "{open}"
    );
    let l3_step = format!("/api/v1/incidents/{l3}/acknowledge");
    let why = refused(&tablet, &l3_step, Some("a-3"), body(json!({})), 403).await?;
    ensure!(why.contains("held by `beilun`"), "{why}");
    applied(&admin, &l3_step, "a-4", body(json!({}))).await?;

    // A flag raised by video patrol is an order: rectified, reopened.
    let flag = json!({"v":1,"kind":"video","id":"v-1","ts":"2022-10-15T09:03:00+08:00","node":mg,
        "camera":"CAM-1","flag_id":"F-1","flag":"vendor","action":"raised","severity":3});
    let street = mg.split('/').nth(1).unwrap_or_default();
    sys.js
        .publish(
            format!("gw.ev.video.{street}"),
            serde_json::to_vec(&flag)?.into(),
        )
        .await?
        .await?;
    tick(&sys, "2022-10-15T09:05:00+08:00").await?;
    let s = sys
        .state_until(&mg, "the order", |s| s["video"]["flags_open"] == 1)
        .await?;
    let order = &s["detail"]["open_flags"][0];
    ensure!(
        order["number"] == "督-20221015-0001" && order["due"] == "2022-10-15T10:03:00+08:00",
        "{order}"
    );
    let order_step = |s: &str| format!("/api/v1/orders/F-1/{s}");
    refused(
        &tablet,
        &order_step("rectify"),
        Some("o-1"),
        body(json!({})),
        400,
    )
    .await?;
    applied(
        &tablet,
        &order_step("rectify"),
        "o-2",
        body(json!({"note": "摊贩已劝离"})),
    )
    .await?;
    sys.state_until(&mg, "the rectification", |s| s["video"]["flags_open"] == 0)
        .await?;
    applied(
        &tablet,
        &order_step("reopen"),
        "o-3",
        body(json!({"note": "复查又见摊贩"})),
    )
    .await?;
    let s = sys
        .state_until(&mg, "the reopening", |s| s["video"]["flags_open"] == 1)
        .await?;
    ensure!(s["detail"]["open_flags"][0]["reopened"] == true, "{s}");
    ensure!(s["video"]["rectified_today"] == 1, "{}", s["video"]);

    // The supervisor's tasks: what is open in the street, soonest due first.
    let (s, tasks) = tablet.get("/api/v1/tasks?node=beilun/daqi").await?;
    ensure!(
        s == 200 && tasks["incidents_total"] == 1 && tasks["orders_total"] == 1,
        "{s} {tasks}"
    );
    ensure!(
        tasks["incidents"][0]["incident_id"] == l3.as_str()
            && tasks["incidents"][0]["node"] == mg.as_str()
            && tasks["orders"][0]["number"] == "督-20221015-0001",
        "{tasks}"
    );
    ensure!(tablet.get("/api/v1/tasks?node=beilun/xinqi").await?.0 == 403);
    ensure!(
        tablet
            .get("/api/v1/tasks?node=beilun/daqi&limit=0")
            .await?
            .0
            == 400
    );

    // 16:00 passes with the level-3 incident open: overdue, and red.
    tick(&sys, "2022-10-15T16:00:01+08:00").await?;
    let s = sys
        .state_until(&mg, "the incident overdue", |s| {
            s["incidents"]["overdue"] == 1
        })
        .await?;
    ensure!(s["status"] == "red", "{s}");
    let whys = s["why"].as_array().cloned().unwrap_or_default();
    ensure!(
        whys.iter()
            .any(|w| w["kind"] == "incident_overdue" && w["incident_id"] == l3.as_str()),
        "{whys:?}"
    );
    let street_state = sys.http.state("beilun/daqi").await?;
    ensure!(
        street_state["incidents"]["overdue"] == 1,
        "{}",
        street_state["incidents"]
    );

    // The trail has each action, who took it and what became of it.
    let (_, trail) = admin.get("/api/v1/audit?limit=200").await?;
    let trail = trail.as_array().cloned().unwrap_or_default();
    let has = |action: &str, outcome: &str| {
        trail.iter().any(|r| {
            r["action"] == action
                && r["who"] == acc.supervisor.user.as_str()
                && r["outcome"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with(outcome)
        })
    };
    for (action, outcome) in [
        ("incident_report", "applied"),
        ("incident_acknowledge", "rejected: conflict"),
        ("incident_transfer", "applied"),
        ("incident_resolve", "applied"),
        ("order_rectify", "applied"),
        ("order_reopen", "applied"),
    ] {
        ensure!(
            has(action, outcome),
            "no {action} {outcome} in the trail: {trail:?}"
        );
    }

    // An independent recount of the raw events agrees.
    let (code, out) = procs::recount(&sys.nats, &["--node", &mg, "--node", "beilun/daqi"])?;
    ensure!(code == 0, "recount exited {code}:\n{out}");
    Ok(())
}
