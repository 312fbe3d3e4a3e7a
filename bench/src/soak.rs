//! The soak run: seven simulated days at high speed with bad events mixed
//! in (`gridwatch-sim --days 7 --bad-share 0.01`, replay clock), the
//! release stack as in the live runs. At noon of each simulated day it
//! notes ingest's and the backend's RSS and what ingest's live state holds
//! (dedupe ids, open flags, incidents kept, per-minute buckets): each
//! should stay flat from the third day on, once two days of state are
//! kept.

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Timelike};
use gridwatch_model::kv::META_KEY;
use gridwatch_model::stats::{Held, IngestStats};
use gridwatch_tests::procs;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::live::{Stack, rss_kib};

/// One noon's reading.
struct Noon {
    day: String,
    ingest_kib: u64,
    backend_kib: u64,
    held: Held,
    applied: u64,
    dead: u64,
}

/// Runs the soak and appends its section to `md`.
pub async fn soak(days: u32, speed: f64, md: &mut String) -> Result<()> {
    // Snapshots (where pruning happens) every 5 s of wall time, as often
    // in simulated time (about 3 h at 2000×) as the default 60 s is at a
    // few tens times real speed.
    let stack = Stack::start(&[("GRIDWATCH__SNAPSHOT_S".to_string(), "5".to_string())]).await?;
    let kv = stack.admin.get_key_value("GW_STATE").await?;
    let work = tempfile::tempdir()?;
    let mut sim = procs::sim(
        &stack.nats,
        work.path(),
        &[
            "--date",
            "2022-10-15",
            "--speed",
            &speed.to_string(),
            "--days",
            &days.to_string(),
            "--bad-share",
            "0.01",
        ],
        &[("RUST_LOG", "warn")],
    )?;
    let ingest_pid = stack.ingest.pid().context("ingest is not running")?;
    let backend_pid = stack.backend.pid().context("the backend is not running")?;
    let mut noons: Vec<Noon> = Vec::new();
    let started = Instant::now();
    let limit = Duration::from_secs_f64(days as f64 * 86_400.0 / speed * 3.0 + 300.0);
    while sim.running() {
        if started.elapsed() > limit {
            bail!("the soak did not finish within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(m) = kv
            .get(META_KEY)
            .await
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice::<IngestStats>(&v).ok())
        else {
            continue;
        };
        let Some(now) = m
            .clock_now
            .as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        else {
            continue;
        };
        let day = now.date_naive().to_string();
        if now.hour() >= 12 && noons.last().is_none_or(|n| n.day != day) {
            eprintln!("soak: noon of {day}");
            noons.push(Noon {
                day,
                ingest_kib: rss_kib(ingest_pid).0,
                backend_kib: rss_kib(backend_pid).0,
                held: m.held.clone(),
                applied: m.applied,
                dead: m.dlq.values().sum(),
            });
        }
    }
    let secs = started.elapsed().as_secs_f64();
    writeln!(md, "## Soak: {days} simulated days\n")?;
    writeln!(
        md,
        "`gridwatch-sim --days {days} --speed {speed} --bad-share 0.01` from 2022-10-15 against the release stack (ingest on the replay clock with `snapshot_s` 5, where pruning happens; the backend with no clients), {secs:.0} s in all. At noon of each simulated day:\n"
    )?;
    writeln!(
        md,
        "| day | ingest RSS | backend RSS | dedupe ids | open flags | incidents kept | buckets | applied so far | dead letters so far |"
    )?;
    writeln!(md, "|---|---|---|---|---|---|---|---|---|")?;
    for n in &noons {
        writeln!(
            md,
            "| {} | {:.0} MiB | {:.0} MiB | {} | {} | {} | {} | {} | {} |",
            n.day,
            n.ingest_kib as f64 / 1024.0,
            n.backend_kib as f64 / 1024.0,
            n.held.seen_ids,
            n.held.open_flags,
            n.held.incidents,
            n.held.buckets,
            n.applied,
            n.dead
        )?;
    }
    writeln!(md)?;
    Ok(())
}
