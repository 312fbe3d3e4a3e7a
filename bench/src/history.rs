//! Analyst queries over 30 simulated days of history: through Gridwatch
//! (HTTP: `GET /api/v1/query` or `POST /api/v1/sql`, Arrow IPC answers,
//! each in a query worker) and through DuckDB (Python `duckdb`, the same
//! Parquet files, in process, `to_arrow_table`), in the same run,
//! median of 5 after a warm-up. The history is the product's own: the
//! simulator's days through gridwatch-ingest.

use anyhow::{Context, Result, bail, ensure};
use gridwatch_model::kv::META_KEY;
use gridwatch_model::stats::IngestStats;
use gridwatch_tests::procs::{self, Nats};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

/// Unix minute of 2022-10-15 00:00 in Beilun (UTC+8).
const D0: i64 = 1_665_763_200 / 60;

/// One query, as each side runs it.
struct Q {
    what: String,
    /// Gridwatch: a GET path, or SQL for POST /api/v1/sql.
    gridwatch: Ask,
    /// DuckDB's SQL (`{m}`: the minutes files, `{o}`: the orders files,
    /// `{day}`: one day's minutes files; `nodes` is a table).
    duckdb: String,
}

enum Ask {
    Get(String),
    Sql(String),
}

/// The one day of the one-day query: the sixth (2022-10-20), or the last
/// of a shorter run: its offset from the first day, its date, the next.
fn one_day(days: i64) -> (i64, String, String) {
    let k = (days - 1).clamp(0, 5);
    let date = |k: i64| {
        chrono::NaiveDate::from_ymd_opt(2022, 10, 15)
            .and_then(|d| d.checked_add_days(chrono::Days::new(k as u64)))
            .map(|d| d.to_string())
            .unwrap_or_default()
    };
    (k, date(k), date(k + 1))
}

fn queries(days: i64) -> Vec<Q> {
    let (k, day, next) = one_day(days);
    let end = D0 + days * 1440;
    let last = chrono::NaiveDate::from_ymd_opt(2022, 10, 15)
        .and_then(|d| d.checked_add_days(chrono::Days::new(days as u64)))
        .map(|d| d.to_string())
        .unwrap_or_default();
    let end_ms = end * 60_000;
    let top20 = |history: &str, orders: &str| {
        let _ = history;
        format!(
            "WITH r AS (SELECT flag_id, min(ts) AS raised FROM {orders} WHERE action = 'raised' GROUP BY flag_id), \
             c AS (SELECT flag_id, max(ts) AS closed FROM {orders} WHERE action = 'rectified' GROUP BY flag_id), \
             f AS (SELECT flag_id, min(node) AS node FROM {orders} GROUP BY flag_id) \
             SELECT f.node, sum((coalesce(c.closed, {end_ms}) - r.raised) / 60000.0) AS open_minutes \
             FROM r JOIN f ON r.flag_id = f.flag_id LEFT JOIN c ON r.flag_id = c.flag_id \
             GROUP BY f.node ORDER BY open_minutes DESC, f.node LIMIT 20"
        )
    };
    let curve = |history: &str| {
        format!(
            "SELECT street, day, t, samples, \
             sum(samples) OVER (PARTITION BY street, day ORDER BY t) AS cumulative \
             FROM (SELECT n.street, h.minute - (h.minute + 480) % 1440 AS day, h.minute - (h.minute + 480) % 10 AS t, \
                   sum(h.samples) AS samples \
                   FROM {history} h JOIN nodes n ON h.node = n.node \
                   WHERE (h.minute + 480) % 1440 >= 360 AND (h.minute + 480) % 1440 < 600 \
                   GROUP BY 1, 2, 3) \
             ORDER BY street, day, t"
        )
    };
    let grid_hour = |history: &str| {
        format!(
            "SELECT node, hour, sum(samples) AS samples, sum(patrols) AS patrols \
             FROM (SELECT node, (minute + 480) % 1440 - (minute + 480) % 60 AS hour, samples, patrols FROM {history}) \
             GROUP BY node, hour ORDER BY node, hour"
        )
    };
    vec![
        Q {
            what: format!("daily samples per street, {days} days"),
            gridwatch: Ask::Get(format!(
                "/api/v1/query?metric=samples&level=street&from=2022-10-15&to={last}&bucket=1d&format=arrow"
            )),
            duckdb: format!(
                "SELECT h.minute - (h.minute + 480) % 1440 AS bucket, n.street, sum(h.samples) AS samples \
                 FROM read_parquet({{m}}) h JOIN nodes n ON h.node = n.node \
                 WHERE h.minute >= {D0} AND h.minute < {end} GROUP BY ALL ORDER BY bucket, n.street"
            ),
        },
        Q {
            what: "patrols per 10 min in sealed micro-grids, one day".into(),
            gridwatch: Ask::Get(format!(
                "/api/v1/query?metric=patrols&level=district&zone=sealed&from={day}&to={next}&bucket=10m&format=arrow"
            )),
            duckdb: format!(
                "SELECT minute - (minute + 480) % 10 AS bucket, sum(patrols) AS patrols \
                 FROM read_parquet({{day}}) WHERE zone = 'sealed' AND minute >= {a} AND minute < {b} \
                 GROUP BY ALL ORDER BY bucket",
                a = D0 + k * 1440,
                b = D0 + (k + 1) * 1440
            ),
        },
        Q {
            what: "top 20 micro-grids by flag-open minutes".into(),
            gridwatch: Ask::Sql(top20("history", "orders")),
            duckdb: top20("", "read_parquet({o})"),
        },
        Q {
            what: "06:00–10:00 testing curve per street, each day".into(),
            gridwatch: Ask::Sql(curve("history")),
            duckdb: curve("read_parquet({m})"),
        },
        Q {
            what: format!("micro-grid × hour of day, {days} days"),
            gridwatch: Ask::Sql(grid_hour("history")),
            duckdb: grid_hour("read_parquet({m})"),
        },
    ]
}

/// DuckDB's side: each query once to warm (a JSON line per query: its
/// rows and the sum of its last column, to check that both sides answer
/// the same), then, for each line `i` on stdin, query `i` once: a JSON
/// line with its time (s).
const DUCKDB: &str = r#"
import duckdb, json, sys, time
import pyarrow.compute as pc
spec = json.load(open(sys.argv[1]))
print(json.dumps({"version": duckdb.__version__}), flush=True)
con = duckdb.connect()
con.execute("SET threads = 2")
con.execute(f"CREATE TABLE nodes AS SELECT * FROM read_parquet('{spec['nodes']}')")
sqls = [q.replace('{m}', repr(spec['minutes'])).replace('{o}', repr(spec['orders'])).replace('{day}', repr(spec['day'])) for q in spec['queries']]
for sql in sqls:
    last = con.sql(sql).to_arrow_table()
    total = pc.sum(last.column(last.num_columns - 1)).as_py() or 0
    print(json.dumps({"rows": last.num_rows, "sum": float(total)}), flush=True)
for line in sys.stdin:
    t = time.perf_counter()
    con.sql(sqls[int(line)]).to_arrow_table()
    print(json.dumps({"t": time.perf_counter() - t}), flush=True)
"#;

/// DuckDB in a Python process of its own, asked one query at a time.
struct Duck {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Duck {
    fn start(spec: &Path) -> Result<Duck> {
        let mut child = tokio::process::Command::new(procs::python())
            .arg("-c")
            .arg(DUCKDB)
            .arg(spec)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("running python (DuckDB, pyarrow from scripts/setup.sh)")?;
        let stdin = child.stdin.take().context("python's stdin")?;
        let stdout = child.stdout.take().context("python's stdout")?;
        let lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        Ok(Duck {
            child,
            stdin,
            lines,
        })
    }

    /// Its next line, as JSON.
    async fn line(&mut self) -> Result<serde_json::Value> {
        let l = tokio::time::timeout(Duration::from_secs(600), self.lines.next_line())
            .await
            .context("DuckDB took over 10 minutes")??
            .context("DuckDB's side ended early (its stderr is above)")?;
        serde_json::from_str(&l).with_context(|| format!("DuckDB's side said {l:?}"))
    }

    /// Runs query `i` once: its time in seconds.
    async fn time(&mut self, i: usize) -> Result<f64> {
        use tokio::io::AsyncWriteExt as _;
        self.stdin.write_all(format!("{i}\n").as_bytes()).await?;
        self.stdin.flush().await?;
        let v = self.line().await?;
        v["t"].as_f64().context("DuckDB: no time")
    }
}

/// The history of `days` simulated days, through gridwatch-ingest.
/// Returns the events and the seconds from the first publish to the last
/// day compacted.
async fn make_history(nats: &Nats, days: u32, data: &Path, logs: &Path) -> Result<(u64, f64)> {
    let t = Instant::now();
    let (sent, last) = super::prefill(nats, None, days).await?;
    eprintln!(
        "history: {sent} events of {days} days published in {:.0} s",
        t.elapsed().as_secs_f64()
    );
    let mut p = procs::ingest_with_env(
        nats,
        data,
        logs,
        &["--clock", "replay"],
        &[("GRIDWATCH__SNAPSHOT_S", "2"), ("RUST_LOG", "warn")],
    )?;
    let ops = nats.ops().await?;
    let deadline = Instant::now() + Duration::from_secs(3 * 3600);
    loop {
        let seen = async {
            let kv = ops
                .get_key_value(gridwatch_model::kv::DEFAULT_BUCKET)
                .await
                .ok()?;
            let v = kv.get(META_KEY).await.ok()??;
            serde_json::from_slice::<IngestStats>(&v).ok()
        }
        .await;
        if seen.is_some_and(|m| m.last_seq >= last) {
            break;
        }
        if Instant::now() > deadline || !p.running() {
            bail!("ingest did not finish:\n{}", p.log_tail());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Each closed day of both tables merged into one part; then a graceful
    // stop, whose snapshot writes the rest. A day closes when the clock
    // (here the events' time) is past its end by the lateness accepted
    // (24 h) and an hour: the last two simulated days stay open, in parts.
    let closed = (days as usize).saturating_sub(2);
    let merged = |table: &str| -> usize {
        std::fs::read_dir(data.join("history").join(table))
            .map(|rd| {
                rd.flatten()
                    .filter(|d| {
                        std::fs::read_dir(d.path())
                            .map(|ps| ps.count() == 1)
                            .unwrap_or(false)
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    while ["minutes", "states"].iter().any(|t| merged(t) < closed) {
        ensure!(
            Instant::now() < deadline && p.running(),
            "history not compacted:\n{}",
            p.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ensure!(
        p.terminate_within(Duration::from_secs(60)).is_some(),
        "ingest did not stop within 60 s"
    );
    let secs = t.elapsed().as_secs_f64();
    eprintln!("history: ingested and compacted in {secs:.0} s total");
    Ok((sent, secs))
}

/// Every part of `table`, as a list for DuckDB.
fn parts(history: &Path, table: &str, day: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(days) = std::fs::read_dir(history.join(table)) else {
        return out;
    };
    for d in days.flatten() {
        if day.is_some_and(|x| d.file_name().to_string_lossy() != format!("date={x}")) {
            continue;
        }
        if let Ok(ps) = std::fs::read_dir(d.path()) {
            out.extend(
                ps.flatten()
                    .map(|p| p.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
                    .map(|p| p.display().to_string()),
            );
        }
    }
    out.sort();
    out
}

/// The sum of a CSV answer's last column (a number in every row).
fn last_column_sum(csv: &str) -> f64 {
    csv.lines()
        .skip(1)
        .filter_map(|l| l.rsplit(',').next())
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The section.
pub async fn history(days: u32, reps: usize, keep: Option<&Path>, md: &mut String) -> Result<()> {
    let nats = Nats::start()?;
    let tmp = tempfile::tempdir()?;
    let logs = tmp.path().join("logs");
    let data = keep.map_or_else(|| tmp.path().join("data"), Path::to_path_buf);
    // What made the history: kept beside it, for a run that reuses it.
    let made_file = data.join("bench-history.json");
    let (events, made_s, reused) = match std::fs::read(&made_file) {
        Ok(b) if keep.is_some() => {
            let m: serde_json::Value = serde_json::from_slice(&b).context("bench-history.json")?;
            ensure!(
                m["days"].as_u64() == Some(u64::from(days)),
                "{} holds {} days, not {days}",
                data.display(),
                m["days"]
            );
            let events = m["events"].as_u64().unwrap_or(0);
            (events, m["made_s"].as_f64().unwrap_or(f64::NAN), true)
        }
        _ => {
            let (events, made_s) = make_history(&nats, days, &data, &logs).await?;
            let m = serde_json::json!({"days": days, "events": events, "made_s": made_s});
            std::fs::write(&made_file, serde_json::to_vec(&m)?)?;
            (events, made_s, false)
        }
    };
    let history = data.join("history");
    let port = procs::free_port()?;
    let backend = procs::backend_with_env(
        &nats,
        port,
        &logs,
        &[("GRIDWATCH__HISTORY_DIR", &history.display().to_string())],
    )?;
    let token = nats.accounts()?.analyst.token.clone();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    // The registry table, for DuckDB, from Gridwatch's own `nodes`.
    let nodes = tmp.path().join("nodes.parquet");
    let r = http
        .post(format!("{base}/api/v1/sql"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"sql": "SELECT * FROM nodes", "format": "parquet"}))
        .send()
        .await?;
    ensure!(r.status() == 200, "nodes: {}", r.status());
    std::fs::write(&nodes, r.bytes().await?)?;

    let qs = queries(i64::from(days));
    let ask = |q: &Q, format: &str| {
        let req = match &q.gridwatch {
            Ask::Get(path) => http.get(format!(
                "{base}{}",
                path.replace("format=arrow", &format!("format={format}"))
            )),
            Ask::Sql(sql) => http
                .post(format!("{base}/api/v1/sql"))
                .json(&serde_json::json!({"sql": sql, "format": format})),
        };
        req.bearer_auth(&token).send()
    };
    let spec = serde_json::json!({
        "nodes": nodes.display().to_string(),
        "minutes": parts(&history, "minutes", None),
        "orders": parts(&history, "orders", None),
        "day": parts(&history, "minutes", Some(&one_day(i64::from(days)).1)),
        "queries": qs.iter().map(|q| q.duckdb.clone()).collect::<Vec<_>>(),
    });
    let spec_file = tmp.path().join("duckdb.json");
    std::fs::write(&spec_file, serde_json::to_vec(&spec)?)?;
    let mut duck = Duck::start(&spec_file)?;
    let version = duck.line().await?["version"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let mut duck_answers = Vec::new();
    for _ in &qs {
        let v = duck.line().await?;
        duck_answers.push((
            v["rows"].as_u64().unwrap_or(0) as usize,
            v["sum"].as_f64().unwrap_or(f64::NAN),
        ));
    }
    // Per query: Gridwatch's answer checked against DuckDB's (timing two
    // different answers would mean nothing), a warm-up, then the reps
    // interleaved — Gridwatch then DuckDB, DuckDB then Gridwatch — so
    // that the drift of a shared machine falls on both alike.
    let mut gw: Vec<(f64, usize)> = Vec::new();
    let mut dk: Vec<f64> = Vec::new();
    for (i, (q, (drows, dsum))) in qs.iter().zip(&duck_answers).enumerate() {
        let r = ask(q, "csv").await?;
        let status = r.status();
        let text = r.text().await?;
        ensure!(
            status == 200,
            "{}: {status} {text}\nthe backend's log:\n{}",
            q.what,
            backend.log_tail()
        );
        let rows = text.lines().count().saturating_sub(1);
        let sum = last_column_sum(&text);
        ensure!(
            rows == *drows && (sum - dsum).abs() <= 1e-9 * sum.abs().max(1.0),
            "{}: Gridwatch {rows} rows summing to {sum}, DuckDB {drows} rows summing to {dsum}",
            q.what
        );
        ask(q, "arrow").await?.bytes().await?;
        let (mut gt, mut dt) = (Vec::new(), Vec::new());
        for rep in 0..reps {
            if rep % 2 == 1 {
                dt.push(duck.time(i).await?);
            }
            let t = Instant::now();
            let r = ask(q, "arrow").await?;
            ensure!(r.status() == 200, "{}: {}", q.what, r.status());
            r.bytes().await?;
            gt.push(t.elapsed().as_secs_f64());
            if rep % 2 == 0 {
                dt.push(duck.time(i).await?);
            }
        }
        gw.push((median(&mut gt), rows));
        dk.push(median(&mut dt));
    }
    drop(duck.stdin);
    let _ = duck.child.wait().await;

    let minutes_bytes = super::dir_bytes(&history.join("minutes"));
    let states_bytes = super::dir_bytes(&history.join("states"));
    let files = parts(&history, "minutes", None).len();
    writeln!(md, "## History queries\n")?;
    let made = if reused {
        " (made by an earlier run of this bench and kept: `--history-dir`)".to_string()
    } else {
        String::new()
    };
    writeln!(
        md,
        "{days} simulated days from 2022-10-15 ({events} events) through gridwatch-ingest{made}, published and ingested as fast as they go in {made_s:.0} s: the `minutes` table is {files} Parquet files, {:.1} MB (one per closed day; the last two days, still open to late events for 24 h, in parts); the `states` table (every state published, the last of each node's minute: in a replay this fast nearly every publish) {:.1} MB. Gridwatch: over HTTP on this machine (the answer as Arrow IPC, fully read; the query in a worker process, on polars' streaming engine: `GET /api/v1/query` or `POST /api/v1/sql`; the worker keeps the columns it has decoded, node ids as categoricals, for the next queries — within half its memory bound — so after the warm-up it reads memory, while DuckDB reads the files each time). DuckDB {}: in process (Python), the same files, `SET threads = 2`, the registry table in memory, `to_arrow_table()`. Both answers checked equal first: the same rows, the same sum of the last column. Then one warm-up each and {reps} reps, the two sides interleaved rep by rep (Gridwatch then DuckDB, then the other way round), so that the drift of this shared machine falls on both alike; the median of each.\n",
        minutes_bytes as f64 / 1e6,
        states_bytes as f64 / 1e6,
        version
    )?;
    writeln!(
        md,
        "| query | rows (both) | Gridwatch, ms | DuckDB, ms | ratio |"
    )?;
    writeln!(md, "|---|---|---|---|---|")?;
    for ((q, (g, rows)), d) in qs.iter().zip(&gw).zip(&dk) {
        writeln!(
            md,
            "| {} | {rows} | {:.1} | {:.1} | {:.2} |",
            q.what,
            g * 1e3,
            d * 1e3,
            g / d
        )?;
    }
    writeln!(md, "\nGoal: Gridwatch's time ≤ DuckDB's (ratio ≤ 1).\n")?;
    Ok(())
}
