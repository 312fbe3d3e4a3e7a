//! History as asked then: testing and patrol events over a morning, a
//! micro-grid sealed at 09:30, duplicates sent again; `GET /api/v1/query`
//! answers per hour and street exactly what the raw events add up to, the
//! sealed-zone filter counts only what happened while it was sealed, the
//! formats are what they say, and a bad parameter is a 400 naming it.

use anyhow::{Result, ensure};
use gridwatch_tests::events::{self, at, msg, publish_all, tick};
use gridwatch_tests::{Http, wait_for};
use serde_json::Value;
use std::collections::BTreeMap;

use crate::system::*;

/// `rows` of a JSON answer as (time, node) → the metric columns.
fn table(v: &Value) -> BTreeMap<(String, String), Vec<u64>> {
    let mut out = BTreeMap::new();
    for r in v["rows"].as_array().cloned().unwrap_or_default() {
        let r = r.as_array().cloned().unwrap_or_default();
        let key = (
            r.first()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            r.get(1)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        );
        out.insert(key, r[2..].iter().filter_map(Value::as_u64).collect());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_answers_as_asked_then_exactly() -> Result<()> {
    let sys = System::start().await?;
    let reg = gridwatch_tests::registry()?;
    let daqi = mgs_under(&reg, "beilun/daqi");
    let xinqi = mgs_under(&reg, "beilun/xinqi");
    let (a, b) = (daqi[0].clone(), daqi[1].clone());
    publish_all(&sys.js, &[tick(at(12, 0, 0))]).await?;
    // Every 20 minutes from 07:00 to 11:40: a testing report on a and b
    // (Daqi) and on Xinqi's first; a patrol on a. a is sealed at 09:30.
    // The designation first: what follows it in the stream is counted
    // under it.
    let mut evs = vec![events::zone("z1", at(9, 30, 0), &a, "sealed")];
    let registered = |node: &str| {
        reg.lookup(node)
            .and_then(|i| reg.node(i).mg.as_ref())
            .map(|m| m.zone)
    };
    let mut want: BTreeMap<(u32, &str), (u64, u64)> = BTreeMap::new();
    let mut sealed_samples = 0u64;
    for k in 0..15u32 {
        let (h, m) = (7 + k / 3, (k % 3) * 20);
        for (n, node) in [(0u32, &a), (1, &b), (2, &xinqi[0])] {
            let samples = 10 + k + n;
            evs.push(events::testing(
                &format!("t{k}-{n}"),
                at(h, m, 0),
                node,
                samples,
                3,
            ));
            let street = if n == 2 {
                "beilun/xinqi"
            } else {
                "beilun/daqi"
            };
            want.entry((h, street)).or_default().0 += u64::from(samples);
            let sealed_then = (n == 0 && (h, m) >= (9, 30))
                || registered(node) == Some(gridwatch_model::Zone::Sealed);
            if sealed_then {
                sealed_samples += u64::from(samples);
            }
        }
        evs.push(events::patrol(&format!("p{k}"), at(h, m, 0), &a, 2, [0; 5]));
        want.entry((h, "beilun/daqi")).or_default().1 += 1;
    }
    let msgs: Vec<_> = evs.iter().map(msg).collect();
    publish_all(&sys.js, &msgs).await?;
    // The same events again, without message ids: ingest counts them once.
    let again: Vec<_> = msgs
        .iter()
        .map(|m| events::raw(&m.subject, &m.payload))
        .collect();
    publish_all(&sys.js, &again).await?;
    sys.wait_all_processed().await?;

    let q = "/api/v1/query?metric=samples,patrols&level=street&from=2022-10-15T06:00&to=2022-10-15T12:00&bucket=1h";
    let expected: BTreeMap<(String, String), Vec<u64>> = want
        .iter()
        .map(|((h, s), (samples, patrols))| {
            (
                (format!("2022-10-15T{h:02}:00:00+08:00"), s.to_string()),
                vec![*samples, *patrols],
            )
        })
        .collect();
    // The history is written with the next snapshot.
    let got = wait_for("the history to hold the morning", WAIT, || async {
        let (s, v) = sys.http.get(q).await.ok()?;
        (s == 200 && table(&v) == expected).then_some(v)
    })
    .await;
    if got.is_err() {
        let (s, v) = sys.http.get(q).await?;
        anyhow::bail!("expected {expected:?}\ngot {s} {v}");
    }
    let v = got?;
    ensure!(
        v["columns"] == serde_json::json!(["time", "street", "samples", "patrols"]),
        "{}",
        v["columns"]
    );

    // Only while sealed: a's reports from 09:30 on, in one day bucket.
    let sealed = "/api/v1/query?metric=samples&level=district&zone=sealed&from=2022-10-15&to=2022-10-16&bucket=1d";
    let (s, v) = sys.http.get(sealed).await?;
    let rows = table(&v);
    ensure!(
        s == 200
            && rows.get(&("2022-10-15T00:00:00+08:00".into(), "beilun".into()))
                == Some(&vec![sealed_samples]),
        "sealed: {s} {v} (want {sealed_samples})"
    );
    // A micro-grid level under one street, 10-minute buckets.
    let (s, v) = sys
        .http
        .get("/api/v1/query?metric=samples&level=microgrid&street=daqi&from=2022-10-15T07:00&to=2022-10-15T07:30&bucket=10m")
        .await?;
    let rows = table(&v);
    ensure!(
        s == 200 && rows.len() == 4 && rows.keys().all(|(_, n)| *n == a || *n == b),
        "{s} {v}"
    );

    // The formats.
    let base = "/api/v1/query?metric=samples&level=street&from=2022-10-15&to=2022-10-16&bucket=1d";
    let raw = |fmt: &str| {
        let url = format!("http://127.0.0.1:{}{base}&format={fmt}", sys.port);
        let token = sys.token();
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await?;
            let ctype = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            anyhow::Ok((r.status().as_u16(), ctype, r.bytes().await?))
        }
    };
    let (s, ctype, body) = raw("csv").await?;
    let text = String::from_utf8_lossy(&body).to_string();
    ensure!(
        s == 200 && ctype.starts_with("text/csv") && text.starts_with("time,street,samples\n"),
        "{s} {ctype} {text}"
    );
    ensure!(text.lines().count() == 3, "{text}");
    let (s, _, body) = raw("parquet").await?;
    ensure!(s == 200 && body.starts_with(b"PAR1") && body.ends_with(b"PAR1"));
    let (s, _, body) = raw("arrow").await?;
    ensure!(s == 200 && body.starts_with(b"ARROW1"), "{s}");

    // Bad parameters: a 400 naming what is wrong.
    for (bad, says) in [
        (
            "metric=nope&level=street&from=2022-10-15&to=2022-10-16&bucket=1h",
            "metric",
        ),
        (
            "metric=samples&level=city&from=2022-10-15&to=2022-10-16&bucket=1h",
            "level",
        ),
        (
            "metric=samples&level=street&from=2022-10-15&to=2022-10-16&bucket=5m",
            "bucket",
        ),
        (
            "metric=samples&level=street&from=2022-10-16&to=2022-10-15&bucket=1h",
            "after",
        ),
        (
            "metric=samples&level=street&from=yesterday&to=2022-10-15&bucket=1h",
            "from",
        ),
        (
            "metric=samples&level=street&from=2021-01-01&to=2022-10-15&bucket=1d",
            "400 days",
        ),
        (
            "metric=samples&level=microgrid&from=2022-09-01&to=2022-10-15&bucket=1m",
            "rows",
        ),
        (
            "metric=samples&level=street&from=2022-10-15&to=2022-10-16&bucket=1h&format=xml",
            "format",
        ),
        (
            "metric=samples&level=street&from=2022-10-15&to=2022-10-16&bucket=1h&zone=red",
            "zone",
        ),
        (
            "metric=samples&level=street&street=nowhere&from=2022-10-15&to=2022-10-16&bucket=1h",
            "street",
        ),
        (
            "metric=samples&level=street&from=2022-10-15&to=2022-10-16&bucket=1h&colour=blue",
            "colour",
        ),
        (
            "level=street&from=2022-10-15&to=2022-10-16&bucket=1h",
            "metric",
        ),
    ] {
        let (s, v) = sys.http.get(&format!("/api/v1/query?{bad}")).await?;
        let m = v["error"]["message"].as_str().unwrap_or_default();
        ensure!(s == 400 && m.contains(says), "{bad}: {s} {v}");
    }

    // Who may ask: a supervisor in scope, not outside it; a wall not.
    let acc = sys.nats.accounts()?.clone();
    let sup = Http::with_token(sys.port, &acc.supervisor.token);
    let street_q = "metric=samples&level=grid&from=2022-10-15&to=2022-10-16&bucket=1d";
    ensure!(
        sup.get(&format!("/api/v1/query?node=beilun/daqi&{street_q}"))
            .await?
            .0
            == 200
    );
    ensure!(sup.get(&format!("/api/v1/query?{street_q}")).await?.0 == 403);
    let wall = Http::with_cookie(
        sys.port,
        &Http::device_cookie(sys.port, &acc.wall_link).await?,
    );
    ensure!(wall.get(&format!("/api/v1/query?{street_q}")).await?.0 == 403);

    // SQL over the same tables: each street's samples, as the raw events
    // add up; the designation; what may not run.
    let analyst = Http::with_token(sys.port, &acc.analyst.token);
    let sql = |q: &str| serde_json::json!({ "sql": q });
    let per_street = "SELECT n.street, sum(h.samples) AS samples FROM history h JOIN nodes n ON h.node = n.node GROUP BY n.street ORDER BY n.street";
    let (s, v) = analyst.post("/api/v1/sql", &sql(per_street)).await?;
    let total = |street: &str| -> u64 {
        want.iter()
            .filter(|((_, st), _)| *st == street)
            .map(|(_, (samples, _))| *samples)
            .sum()
    };
    ensure!(
        s == 200
            && v["rows"]
                == serde_json::json!([
                    ["beilun/daqi", total("beilun/daqi")],
                    ["beilun/xinqi", total("beilun/xinqi")]
                ]),
        "{s} {v}"
    );
    let (s, v) = analyst
        .post(
            "/api/v1/sql",
            &sql("SELECT zone, count(*) AS n FROM zones GROUP BY zone"),
        )
        .await?;
    ensure!(
        s == 200 && v["rows"] == serde_json::json!([["sealed", 1]]),
        "{s} {v}"
    );
    // A plain count over the many parts the ingest wrote (polars' count
    // over a union of scans failed on it once).
    let (s, v) = analyst
        .post(
            "/api/v1/sql",
            &sql("SELECT count(*) AS n, count(node) AS m FROM history"),
        )
        .await?;
    let (n, m) = (&v["rows"][0][0], &v["rows"][0][1]);
    ensure!(
        s == 200 && n == m && n.as_u64().is_some_and(|n| n > 0),
        "{s} {v}"
    );
    // A nested answer has no CSV form: 400, saying which column.
    let (s, v) = analyst.post("/api/v1/sql", &serde_json::json!({
                "sql": "SELECT zone, sum(sum(samples)) OVER (PARTITION BY zone) AS x FROM history GROUP BY zone",
                "format": "csv"
            })).await?;
    ensure!(
        s == 400
            && v["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("CSV cannot carry")),
        "{s} {v}"
    );
    for (bad, says) in [
        ("DROP TABLE history", "only SELECT"),
        (
            "SELECT * FROM read_parquet('/etc/passwd')",
            "table functions",
        ),
        ("SELEC 1", "Expected"),
        ("SELECT * FROM nowhere", "nowhere"),
        ("SELECT 1; SELECT 2", "one statement"),
    ] {
        let (s, v) = analyst.post("/api/v1/sql", &sql(bad)).await?;
        let m = v["error"]["message"].as_str().unwrap_or_default();
        ensure!(s == 400 && m.contains(says), "{bad}: {s} {v}");
    }
    let (s, _) = sup.post("/api/v1/sql", &sql("SELECT 1")).await?;
    ensure!(s == 403, "a street's supervisor: {s}");

    // From outside: DuckDB and pyarrow on the export, psql and psycopg
    // over the wire; and the bounds.
    let per_street: BTreeMap<String, u64> = ["beilun/daqi", "beilun/xinqi"]
        .into_iter()
        .map(|s| (s.to_string(), total(s)))
        .collect();
    crate::sqlwire::outside_and_bounds(&sys, &per_street).await?;

    // The analyst's page: the shared URL runs the query; chart and table.
    crate::browser::require_frontend()?;
    let (_driver, c) = crate::browser::chromium(&sys, (1440, 900)).await?;
    let seen = async {
        let base = format!("http://127.0.0.1:{}", sys.port);
        let path = "/analyst?metric=samples&level=street&from=2022-10-15T06:00&to=2022-10-15T12:00&bucket=1h";
        gridwatch_tests::people::sign_in(&c, &base, path, &acc.analyst).await?;
        wait_for("the analyst's answer", WAIT, || async {
            let t = crate::browser::text_of(&c, "q-rows").await?;
            t.starts_with("10 ").then_some(())
        })
        .await?;
        let lines = c
            .execute(
                "return document.querySelectorAll('[data-testid=analyst-chart] polyline').length;",
                vec![],
            )
            .await?;
        ensure!(lines == serde_json::json!(2), "two streets, two lines: {lines}");
        let table = crate::browser::text_of(&c, "q-table").await.unwrap_or_default();
        ensure!(table.contains("beilun/daqi") && table.contains("69"), "{table}");
        let csv = c
            .execute(
                "return document.querySelector('[data-testid=q-csv]').getAttribute('href');",
                vec![],
            )
            .await?;
        ensure!(
            csv.as_str().is_some_and(|h| h.ends_with("&format=csv") && h.contains("bucket=1h")),
            "{csv}"
        );
        // The CSV link downloads, with the page's session, what the
        // table shows.
        let got = c
            .execute_async(
                "const done = arguments[arguments.length - 1]; fetch(document.querySelector('[data-testid=q-csv]').href).then(r => r.text()).then(done, e => done('failed: ' + e));",
                vec![],
            )
            .await?;
        let csv_text = got.as_str().unwrap_or_default().to_string();
        ensure!(
            csv_text.starts_with("time,street,samples\n") && csv_text.lines().count() == 11,
            "the CSV download: {csv_text}"
        );
        crate::browser::screenshot(&c, "analyst").await?;
        // Two metrics: a line per street and metric.
        c.goto(&format!("{base}/analyst?metric=samples,patrols&level=street&from=2022-10-15T06:00&to=2022-10-15T12:00&bucket=1h"))
            .await?;
        wait_for("two metrics drawn", WAIT, || async {
            let n = c
                .execute(
                    "return document.querySelectorAll('[data-testid=analyst-chart] polyline').length;",
                    vec![],
                )
                .await
                .ok()?;
            (n == serde_json::json!(4)).then_some(())
        })
        .await?;
        // The SQL box, from a shared URL: the table and the bars.
        let per_street_sql = "SELECT n.street, sum(h.samples) AS samples FROM history h JOIN nodes n ON h.node = n.node GROUP BY n.street ORDER BY n.street";
        c.goto(&format!(
            "{base}/analyst?sql={}",
            per_street_sql.replace(' ', "%20").replace('=', "%3D")
        ))
        .await?;
        wait_for("the SQL answer", WAIT, || async {
            let t = crate::browser::text_of(&c, "q-rows").await?;
            t.starts_with("2 ").then_some(())
        })
        .await?;
        let table = crate::browser::text_of(&c, "q-table").await.unwrap_or_default();
        ensure!(
            table.contains(&total("beilun/daqi").to_string()) && table.contains("beilun/xinqi"),
            "{table}"
        );
        let bars = c
            .execute(
                "return document.querySelectorAll('[data-testid=analyst-chart] rect').length;",
                vec![],
            )
            .await?;
        ensure!(bars == serde_json::json!(2), "a bar per street: {bars}");
        let sql_csv = c
            .execute(
                "return document.querySelector('[data-testid=q-sql-csv]').getAttribute('href');",
                vec![],
            )
            .await?;
        ensure!(
            sql_csv.as_str().is_some_and(|h| h.starts_with("/api/v1/sql?sql=SELECT%20") && h.ends_with("&format=csv")),
            "{sql_csv}"
        );
        crate::browser::screenshot(&c, "analyst-sql").await?;
        // A bad range says why.
        c.goto(&format!("{base}/analyst?metric=samples&level=street&from=2022-10-16&to=2022-10-15&bucket=1h"))
            .await?;
        wait_for("the error", WAIT, || async {
            let t = crate::browser::text_of(&c, "q-error").await?;
            t.contains("after").then_some(())
        })
        .await
    }
    .await;
    let _ = c.close().await;
    seen
}
