//! The history from outside Gridwatch, and its bounds (called by the
//! history test, over its morning): an exported Parquet read back by
//! DuckDB and pyarrow; psql (simple protocol) and psycopg (extended
//! protocol) over the Postgres wire protocol with an analyst's token;
//! what may not sign in or run; a query past its memory bound and one
//! past its time stopped, the backend answering on.

use anyhow::{Context, Result, ensure};
use gridwatch_tests::Http;
use gridwatch_tests::procs::{self, free_port, python_run as py};
use std::collections::BTreeMap;
use std::process::Command;

use crate::system::*;

/// The per-street sum every reader must agree on.
const PER_STREET: &str = "SELECT n.street, sum(h.samples) AS samples FROM history h JOIN nodes n ON h.node = n.node GROUP BY n.street ORDER BY n.street";

/// `psql -At -F,` as `user` with `password`: exit ok, stdout, stderr.
fn psql(port: u16, user: &str, password: &str, sql: &str) -> Result<(bool, String, String)> {
    use std::io::Write;
    // On standard input: an argument may not be over 128 KiB.
    let mut child = Command::new("psql")
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "10")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", user])
        .args(["-d", "gridwatch", "-w", "-At", "-F", ",", "-X"])
        .args(["-v", "ON_ERROR_STOP=1", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running psql (Debian postgresql-client)")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A server that hangs up early closes the pipe: psql says why.
        let _ = stdin.write_all(sql.as_bytes());
        let _ = stdin.write_all(b";\n");
    }
    let out = child.wait_with_output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    ))
}

/// `PER_STREET` answered in `format`, saved to a file.
async fn export(sys: &System, token: &str, format: &str) -> Result<std::path::PathBuf> {
    let file = sys.work.dir.path().join(format!("per-street.{format}"));
    let r = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/api/v1/sql", sys.port))
        .bearer_auth(token)
        .json(&serde_json::json!({ "sql": PER_STREET, "format": format }))
        .send()
        .await?;
    ensure!(r.status() == 200, "{format} export: {}", r.status());
    std::fs::write(&file, r.bytes().await?)?;
    Ok(file)
}

/// `want`: each street's samples as the raw events add up.
pub async fn outside_and_bounds(sys: &System, want: &BTreeMap<String, u64>) -> Result<()> {
    let acc = sys.nats.accounts()?.clone();
    let lines: String = want.iter().map(|(s, n)| format!("{s},{n}\n")).collect();

    // The SQL answer as Parquet, read by DuckDB and by pyarrow.
    let file = export(sys, &acc.analyst.token, "parquet").await?;
    let f = file.display().to_string();
    let duck = py(
        "import duckdb, sys\nfor s, n in duckdb.sql(f\"SELECT street, sum(samples) FROM read_parquet('{sys.argv[1]}') GROUP BY street ORDER BY street\").fetchall(): print(f'{s},{n}')",
        &[&f],
    )?;
    ensure!(duck == lines.trim(), "DuckDB read {duck:?}, want {lines:?}");
    let arrow = py(
        "import pyarrow.parquet as pq, sys\nt = pq.read_table(sys.argv[1]).to_pydict()\nfor s, n in zip(t['street'], t['samples']): print(f'{s},{n}')",
        &[&f],
    )?;
    ensure!(
        arrow == lines.trim(),
        "pyarrow read {arrow:?}, want {lines:?}"
    );
    // As Arrow IPC (the worker's own file, passed on): the same, the
    // street a plain string.
    let file = export(sys, &acc.analyst.token, "arrow").await?;
    let ipc = py(
        "import pyarrow as pa, sys\nt = pa.ipc.open_file(sys.argv[1]).read_all()\nassert pa.types.is_string(t.schema.field('street').type) or pa.types.is_large_string(t.schema.field('street').type) or str(t.schema.field('street').type) == 'string_view', t.schema\nt = t.to_pydict()\nfor s, n in zip(t['street'], t['samples']): print(f'{s},{n}')",
        &[&file.display().to_string()],
    )?;
    ensure!(
        ipc == lines.trim(),
        "pyarrow read the IPC file {ipc:?}, want {lines:?}"
    );

    // A second backend on the same history, with the Postgres protocol on
    // a port of its own and tight bounds.
    let (http_port, pg_port) = (free_port()?, free_port()?);
    let history = sys.work.dir.path().join("data/history");
    let _b = procs::backend_with_env(
        &sys.nats,
        http_port,
        &sys.work.logs(),
        &[
            ("GRIDWATCH__HISTORY_DIR", &history.display().to_string()),
            ("GRIDWATCH__PG_LISTEN", &format!("127.0.0.1:{pg_port}")),
            ("GRIDWATCH__QUERY_TIMEOUT_S", "5"),
            ("GRIDWATCH__QUERY_MEMORY_MB", "256"),
        ],
    )?;
    procs::wait_port(pg_port, WAIT, "the Postgres protocol")?;

    // psql: the simple protocol.
    let (ok, out, err) = psql(pg_port, &acc.analyst.user, &acc.analyst.token, PER_STREET)?;
    ensure!(ok && out == lines, "psql: {ok} {out:?} {err}");
    let (ok, out, err) = psql(
        pg_port,
        &acc.analyst.user,
        &acc.analyst.token,
        "SELECT zone, count(*) AS n FROM zones GROUP BY zone",
    )?;
    ensure!(ok && out == "sealed,1\n", "psql zones: {out:?} {err}");
    // Drivers' session commands pass; SHOW answers.
    let (ok, out, err) = psql(
        pg_port,
        &acc.analyst.user,
        &acc.analyst.token,
        "SHOW TimeZone",
    )?;
    ensure!(ok && out.trim() == "Asia/Shanghai", "{out:?} {err}");
    // What may not run, with the reason.
    for (sql, says) in [
        ("DROP TABLE history", "only SELECT"),
        (
            "SELECT * FROM read_parquet('/etc/passwd')",
            "table functions",
        ),
        ("SELEC 1", "Expected"),
    ] {
        let (ok, _, err) = psql(pg_port, &acc.analyst.user, &acc.analyst.token, sql)?;
        ensure!(!ok && err.contains(says), "{sql}: {err}");
    }
    // Who may not sign in: a wrong token, someone else's, a supervisor.
    let (ok, _, err) = psql(pg_port, &acc.analyst.user, "gwt_nope", "SELECT 1")?;
    ensure!(
        !ok && err.to_lowercase().contains("password"),
        "a wrong token: {err}"
    );
    let (ok, _, err) = psql(pg_port, &acc.analyst.user, &acc.admin.token, "SELECT 1")?;
    ensure!(
        !ok && err.to_lowercase().contains("password"),
        "the admin token: {err}"
    );
    let (ok, _, err) = psql(
        pg_port,
        &acc.supervisor.user,
        &acc.supervisor.token,
        "SELECT 1",
    )?;
    ensure!(!ok && err.contains("analysts"), "a supervisor: {err}");

    // Messages past the bound are cut at their header with the reason,
    // statements past 16 KiB refused by the checker; the server answers on.
    let huge = format!("SELECT '{}' AS x", "x".repeat(300 << 10));
    let (ok, _, err) = psql(pg_port, &acc.analyst.user, &acc.analyst.token, &huge)?;
    ensure!(
        !ok && err.contains("connection closed: a message of"),
        "a 300 KiB statement: {err}"
    );
    let long = format!("SELECT '{}' AS x", "x".repeat(20 << 10));
    let (ok, _, err) = psql(pg_port, &acc.analyst.user, &acc.analyst.token, &long)?;
    ensure!(
        !ok && err.contains("over 16384 bytes"),
        "a 20 KiB statement: {err}"
    );
    let (ok, out, err) = psql(
        pg_port,
        &acc.analyst.user,
        &acc.analyst.token,
        "SHOW TimeZone",
    )?;
    ensure!(
        ok && out.trim() == "Asia/Shanghai",
        "after a cut: {out:?} {err}"
    );

    // psycopg: the extended protocol (parse, describe, bind, execute),
    // typed answers.
    let got = py(
        "import psycopg, sys\nwith psycopg.connect(host='127.0.0.1', port=int(sys.argv[1]), user=sys.argv[2], password=sys.argv[3], dbname='gridwatch', connect_timeout=10) as c:\n  rows = c.execute(sys.argv[4]).fetchall()\n  for s, n in rows: assert isinstance(n, int); print(f'{s},{n}')",
        &[
            &pg_port.to_string(),
            &acc.analyst.user,
            &acc.analyst.token,
            PER_STREET,
        ],
    )?;
    ensure!(got == lines.trim(), "psycopg: {got:?}");

    // Past the rows, the memory and the time: stopped with the reason,
    // the next query answered.
    let analyst = Http::with_token(http_port, &acc.analyst.token);
    let sql = |q: &str| serde_json::json!({ "sql": q });
    let post = |q: String| {
        let analyst = &analyst;
        async move {
            analyst
                .send(reqwest::Method::POST, "/api/v1/sql", Some(&sql(&q)), &[])
                .await
        }
    };
    let (s, _, v) =
        post("SELECT a.node, b.node AS b FROM nodes a CROSS JOIN nodes b".into()).await?;
    let m = v["error"]["message"].as_str().unwrap_or_default();
    ensure!(s == 400 && m.contains("rows"), "rows: {s} {v}");
    let (s, _, v) = post(
        "SELECT a.node, b.name AS b FROM nodes a CROSS JOIN nodes b ORDER BY b DESC, a.node LIMIT 5"
            .into(),
    )
    .await?;
    let m = v["error"]["message"].as_str().unwrap_or_default();
    ensure!(s == 400 && m.contains("256 MiB"), "memory: {s} {v}");
    let (ok, _, err) = psql(
        pg_port,
        &acc.analyst.user,
        &acc.analyst.token,
        "SELECT a.node, b.name AS b FROM nodes a CROSS JOIN nodes b ORDER BY b DESC, a.node LIMIT 5",
    )?;
    ensure!(
        !ok && err.contains("256 MiB"),
        "psql past the memory: {err}"
    );
    // A read that never returns (a hung mount; here a FIFO where a part
    // should be): stopped at the time limit.
    let day = history.join("minutes/date=2022-10-20");
    std::fs::create_dir_all(&day)?;
    let fifo = day.join("part-000000000000-000000000000.parquet");
    let made = Command::new("mkfifo").arg(&fifo).status()?;
    ensure!(made.success(), "mkfifo");
    let (s, v) = analyst
        .get("/api/v1/query?metric=samples&level=street&from=2022-10-20&to=2022-10-21&bucket=1d")
        .await?;
    std::fs::remove_file(&fifo)?;
    let m = v["error"]["message"].as_str().unwrap_or_default();
    ensure!(s == 503 && m.contains("over 5 s"), "time: {s} {v}");
    let (ok, out, err) = psql(pg_port, &acc.analyst.user, &acc.analyst.token, PER_STREET)?;
    ensure!(ok && out == lines, "after the stops: {out:?} {err}");
    Ok(())
}
