//! The past as the wall showed it: every state ingest puts in the bucket
//! during a replay is recorded as it goes; afterwards
//! `GET /api/v1/state?node=…&at=T` gives, for each screen's node (the
//! district, a street, a community, a micro-grid, the map, the testing
//! board), exactly the last one it showed in minute T — every figure, byte
//! for byte — and `/wall?at=T` draws it under a replay banner.

use anyhow::{Context, Result, ensure};
use futures::StreamExt;
use gridwatch_model::state::{MAP_NODE, TESTING_NODE};
use gridwatch_tests::events::{self, at, msg, publish_all, tick};
use gridwatch_tests::{Http, people, wait_for};
use serde_json::Value;
use std::sync::{Arc, Mutex};

use crate::system::*;

/// Every node state put to the bucket: (node, as_of in Unix s, state).
type Seen = Arc<Mutex<Vec<(String, i64, Value)>>>;

fn as_of(v: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v["as_of"].as_str()?)
        .ok()
        .map(|t| t.timestamp())
}

/// The last state of `node` recorded with `as_of` before `before`.
fn shown(seen: &Seen, node: &str, before: i64) -> Option<Value> {
    let seen = seen.lock().ok()?;
    seen.iter()
        .filter(|(n, t, _)| n == node && *t < before)
        .max_by_key(|(_, t, v)| (*t, v["seq"].as_u64()))
        .map(|(_, _, v)| v.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_at_a_past_minute_is_what_it_showed_then() -> Result<()> {
    let sys = System::start().await?;
    let reg = gridwatch_tests::registry()?;
    let daqi = mgs_under(&reg, "beilun/daqi");
    let (a, b) = (daqi[0].clone(), daqi[1].clone());
    let community = a.rsplitn(3, '/').nth(2).unwrap_or_default().to_string();

    // Record every put from now on, as the screens got them.
    let kv = sys.admin.get_key_value("GW_STATE").await?;
    let mut watch = kv.watch_all().await?;
    let seen: Seen = Arc::default();
    let recorder = {
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(Ok(e)) = watch.next().await {
                let Some(node) = e.key.strip_prefix("node.") else {
                    continue;
                };
                if let Ok(v) = serde_json::from_slice::<Value>(&e.value)
                    && let Some(t) = as_of(&v)
                    && let Ok(mut s) = seen.lock()
                {
                    s.push((node.to_string(), t, v));
                }
            }
        })
    };

    // Three phases on the replay clock, each processed before the next:
    // the morning to 09:58, a minute at 10:00, then on to 10:31.
    let phases: [(Vec<Value>, _); 3] = [
        (
            (0..6u32)
                .flat_map(|k| {
                    let t = at(9, 8 * k, 0);
                    [
                        events::testing(&format!("t1-{k}"), t, &a, 20 + k, 5),
                        events::patrol(&format!("p1-{k}"), t, &b, 2, [0; 5]),
                    ]
                })
                .chain([
                    // Sealed: its cell on the map changes.
                    events::zone("z1", at(9, 10, 0), &a, "sealed"),
                    events::video("v1", at(9, 30, 0), &a, "f1", "gathering", "raised"),
                ])
                .collect(),
            at(9, 58, 0),
        ),
        (
            vec![
                events::testing("t2-0", at(10, 0, 10), &a, 40, 9),
                events::testing("t2-1", at(10, 0, 20), &b, 31, 2),
                events::incident("i1", at(10, 0, 25), &b, "inc1", "reported", 2),
            ],
            at(10, 0, 40),
        ),
        (
            (0..5u32)
                .map(|k| events::testing(&format!("t3-{k}"), at(10, 5 + 5 * k, 0), &a, 50, 1))
                .chain([events::video(
                    "v2",
                    at(10, 20, 0),
                    &a,
                    "f1",
                    "gathering",
                    "rectified",
                )])
                .collect(),
            at(10, 31, 0),
        ),
    ];
    for (evs, clock) in phases {
        let mut msgs: Vec<_> = evs.iter().map(msg).collect();
        msgs.push(tick(clock));
        publish_all(&sys.js, &msgs).await?;
        sys.wait_all_processed().await?;
        let want = clock.timestamp();
        wait_for("the states to reach the phase's end", WAIT, || async {
            let seen = seen.lock().ok()?;
            let district = seen.iter().any(|(n, t, _)| n == "beilun" && *t >= want);
            let street = seen
                .iter()
                .any(|(n, t, _)| n == "beilun/daqi" && *t >= want);
            (district && street).then_some(())
        })
        .await
        .with_context(|| format!("ingest log:\n{}", sys.ingest.log_tail()))?;
    }

    // T = 10:00: each node's last state before 10:01, from the history.
    let ten = at(10, 0, 0).timestamp();
    let nodes = [
        "beilun",
        "beilun/daqi",
        community.as_str(),
        a.as_str(),
        b.as_str(),
        MAP_NODE,
        TESTING_NODE,
    ];
    for (t, label) in [(ten, "2022-10-15T10:00"), (ten - 60, "2022-10-15T09:59")] {
        for node in nodes {
            let want = shown(&seen, node, t + 60)
                .with_context(|| format!("{node} showed nothing before {label}"))?;
            let path = format!("/api/v1/state?node={node}&at={label}");
            let found = wait_for(
                &format!("{node} at {label} from the history"),
                WAIT,
                || async {
                    let (s, v) = sys.http.get(&path).await.ok()?;
                    (s == 200 && v == want).then_some(())
                },
            )
            .await;
            if let Err(e) = found {
                let got = sys.http.get(&path).await;
                return Err(e.context(format!("expected {want}\ngot {got:?}")));
            }
        }
    }
    // It is the past, not now: the district's figures moved on since.
    let (_, then) = sys
        .http
        .get("/api/v1/state?node=beilun&at=2022-10-15T10:00")
        .await?;
    let now = sys.http.state("beilun").await?;
    ensure!(
        then["testing"]["samples_today"] != now["testing"]["samples_today"],
        "10:00 {} = now {}",
        then["testing"],
        now["testing"]
    );
    ensure!(then["incidents"]["open"] == 1, "{}", then["incidents"]);
    ensure!(
        then["testing"]["samples_today"] == (0..6).map(|k| 20 + k).sum::<u64>() + 40 + 31,
        "{}",
        then["testing"]
    );

    // What is asked wrongly is answered so.
    for (q, status) in [
        ("node=beilun&at=yesterday", 400),
        ("node=beilun&at=2022-10-15T25:00", 400),
        ("node=beilun/nowhere&at=2022-10-15T10:00", 404),
        ("node=beilun&at=2022-09-01T10:00", 404),
        ("node=beilun&at=2022-10-15T10:00&x=1", 400),
    ] {
        let (s, v) = sys.http.get(&format!("/api/v1/state?{q}")).await?;
        ensure!(
            s == status && v["error"]["message"].is_string(),
            "{q}: {s} {v}"
        );
    }
    // A street's supervisor: their street's past, not another's.
    let acc = sys.nats.accounts()?;
    let sup = Http::with_token(sys.port, &acc.supervisor.token);
    let (s, _) = sup
        .get("/api/v1/state?node=beilun/daqi&at=2022-10-15T10:00")
        .await?;
    ensure!(s == 200, "own street: {s}");
    let (s, _) = sup
        .get("/api/v1/state?node=beilun/xinqi&at=2022-10-15T10:00")
        .await?;
    ensure!(s == 403, "another street: {s}");
    recorder.abort();

    // The wall as it was at 10:00, under its banner.
    crate::browser::require_frontend()?;
    let (_driver, c) = crate::browser::chromium(&sys, (1920, 1080)).await?;
    let drawn = async {
        let base = format!("http://127.0.0.1:{}", sys.port);
        people::open_device_link(&c, &base, &acc.wall_link).await?;
        c.goto(&format!("{base}/wall?at=2022-10-15T10:00")).await?;
        wait_for("the replay banner", WAIT, || async {
            let t = crate::browser::text_of(&c, "replay-banner").await?;
            t.contains("2022-10-15 10:00").then_some(())
        })
        .await?;
        let samples = then["testing"]["samples_today"]
            .as_u64()
            .unwrap_or_default();
        crate::browser::wait_text(&c, "wall-samples", &samples.to_string()).await?;
        crate::browser::wait_text(&c, "wall-incidents", "1").await?;
        let conn = crate::browser::text_of(&c, "conn")
            .await
            .unwrap_or_default();
        ensure!(conn == "历史数据", "the header: {conn}");
        crate::browser::screenshot(&c, "wall-replay").await?;
        // A minute with no history says so.
        c.goto(&format!("{base}/wall?at=2022-09-01T10:00")).await?;
        crate::browser::wait_text(&c, "conn", "无此时刻的历史").await
    }
    .await;
    let _ = c.close().await;
    drawn
}
