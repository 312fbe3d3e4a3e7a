//! Metrics as Prometheus users expect: the backend's and ingest's own
//! `/metrics` pass `promtool check metrics` without a word, carry the
//! standard process metrics, and ingest's figures match what it did.

use anyhow::{Context, Result, bail, ensure};
use gridwatch_tests::events::{at, msg, publish_all, raw, tick};
use gridwatch_tests::procs::{self, free_port};
use gridwatch_tests::{registry, wait_for};
use std::io::Write;
use std::process::{Command, Stdio};

use crate::system::*;

/// `promtool check metrics` on `text`: what it says (nothing when clean).
fn promtool(text: &str) -> Result<String> {
    let bin = std::env::var("PROMTOOL_BIN").unwrap_or_else(|_| "promtool".into());
    let mut child = Command::new(&bin)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!("running {bin} (Debian package prometheus; scripts/setup.sh installs it)")
        })?;
    child
        .stdin
        .take()
        .context("promtool's stdin")?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() && said.trim().is_empty() {
        bail!("promtool failed with {}", out.status);
    }
    Ok(said.trim().to_string())
}

async fn get_text(url: &str) -> Result<String> {
    let r = reqwest::get(url).await?;
    ensure!(r.status().is_success(), "{url}: HTTP {}", r.status());
    Ok(r.text().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_metrics_endpoints_pass_promtool_and_carry_process_metrics() -> Result<()> {
    let mut sys = System::start().await?;
    // Ingest again, with its /metrics on a port the test knows.
    sys.ingest.terminate();
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    sys.ingest = procs::ingest_with_env(
        &sys.nats,
        &sys.work.dir.path().join("data"),
        &sys.work.logs(),
        &["--clock", "replay"],
        &[("GRIDWATCH__METRICS_LISTEN", listen.as_str())],
    )?;
    let reg = registry()?;
    let mg = reg.node(reg.microgrids[3]).id.to_string();
    publish_all(
        &sys.js,
        &[
            tick(at(12, 0, 0)),
            msg(&gridwatch_tests::events::patrol(
                "m1",
                at(11, 0, 0),
                &mg,
                2,
                [0; 5],
            )),
            raw("gw.ev.patrol.daqi", b"{not json"),
        ],
    )
    .await?;
    sys.wait_all_processed().await?;
    let ingest_url = format!("http://{listen}/metrics");
    let ingest = wait_for("ingest's metrics to show the events", WAIT, || async {
        let t = get_text(&ingest_url).await.ok()?;
        t.contains("gridwatch_ingest_events_applied_total 1")
            .then_some(t)
    })
    .await?;
    // The backend's takes an admin's token (as Prometheus scrapes it).
    let (status, backend) = sys.http.get("/metrics").await?;
    ensure!(status == 200, "the backend's /metrics: HTTP {status}");
    let backend = backend.as_str().unwrap_or_default().to_string();
    for (who, text) in [("ingest", &ingest), ("backend", &backend)] {
        let said = promtool(text)?;
        ensure!(
            said.is_empty(),
            "promtool on {who}'s /metrics:\n{said}\n\n{text}"
        );
        for m in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
            "process_start_time_seconds",
        ] {
            ensure!(text.contains(&format!("\n{m} ")), "{who} lacks {m}");
        }
        ensure!(
            text.contains("# HELP gridwatch_ingest_dlq_total")
                && text.contains("gridwatch_ingest_dlq_total{reason=\"malformed\"} 1"),
            "{who}: {text}"
        );
    }
    ensure!(backend.contains("# HELP gridwatch_ws_clients"), "{backend}");
    Ok(())
}
