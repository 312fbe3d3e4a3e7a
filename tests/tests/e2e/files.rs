//! Files: ingest's data dir under faults — a corrupt checkpoint, a stream
//! recreated under the same name, a second ingest on the same dir, and a
//! full disk. Each ends with the state equal to the recount.

use anyhow::{Context, Result, bail, ensure};
use gridwatch_tests::events::{at, ensure_stream, publish_all, tick};
use gridwatch_tests::procs;
use gridwatch_tests::recount::Recount;
use gridwatch_tests::{registry, wait_for};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::system::*;

/// Ingest's /healthz figures as the backend reports them.
async fn health(sys: &System) -> Option<(u16, Value)> {
    sys.http.get("/healthz").await.ok()
}

/// Waits until ingest reports `checkpoints_set_aside == 1` and has
/// processed exactly to `last` (a rebuilt state starts from 0).
async fn wait_rebuilt(sys: &System, last: u64) -> Result<()> {
    wait_for("ingest to rebuild from the stream", WAIT, || async {
        let (_, h) = health(sys).await?;
        (h["checkpoints_set_aside"].as_u64()? == 1 && h["last_seq"].as_u64()? == last).then_some(())
    })
    .await
    .with_context(|| format!("ingest log:\n{}", sys.ingest.log_tail()))
}

fn recount(evs: &[Value]) -> Result<Recount<'static>> {
    let reg: &'static gridwatch_model::Registry = Box::leak(Box::new(registry()?));
    let mut rc = Recount::new(reg, at(11, 0, 0));
    for e in evs {
        rc.apply(e);
    }
    Ok(rc)
}

fn set_aside_files(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().contains(".unusable-"))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_is_set_aside_and_the_state_rebuilt_exactly() -> Result<()> {
    let mut sys = System::start().await?;
    let reg = registry()?;
    let evs = volume(&reg, 21, 3_000, "c");
    publish_all(&sys.js, &[tick(at(11, 0, 0))]).await?;
    let last = publish_all(&sys.js, &raw_msgs(&evs)).await?;
    sys.wait_all_processed().await?;
    // A clean stop writes a snapshot; then one byte of it goes bad.
    sys.ingest.terminate();
    let data = sys.work.dir.path().join("data");
    let ckpt = data.join("checkpoint.bin");
    let mut bytes = std::fs::read(&ckpt).context("the checkpoint")?;
    let at_byte = bytes.len() * 2 / 3;
    bytes[at_byte] ^= 0x5a;
    std::fs::write(&ckpt, &bytes)?;
    sys.restart_ingest()?;
    wait_rebuilt(&sys, last).await?;
    let rc = recount(&evs)?;
    sys.assert_exact(&rc, &["beilun", "beilun/daqi", "beilun/xinqi"])
        .await?;
    let aside = set_aside_files(&data);
    ensure!(
        aside
            .iter()
            .any(|p| p.to_string_lossy().contains("checkpoint.bin")),
        "the bad checkpoint was not kept aside: {aside:?}"
    );
    ensure!(
        sys.ingest.running(),
        "ingest is not running:\n{}",
        sys.ingest.log_tail()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_stream_is_detected_and_read_from_its_start() -> Result<()> {
    let mut sys = System::start().await?;
    let reg = registry()?;
    let old = volume(&reg, 31, 2_000, "old");
    publish_all(&sys.js, &[tick(at(11, 0, 0))]).await?;
    publish_all(&sys.js, &raw_msgs(&old)).await?;
    sys.wait_all_processed().await?;
    sys.ingest.terminate();
    // The stream goes and comes back with other, fewer events: its
    // sequences now mean other messages.
    sys.admin.delete_stream("GW_EVENTS").await?;
    ensure_stream(&sys.admin).await?;
    let new = volume(&reg, 32, 700, "new");
    publish_all(&sys.js, &[tick(at(11, 0, 0))]).await?;
    let last = publish_all(&sys.js, &raw_msgs(&new)).await?;
    sys.restart_ingest()?;
    wait_rebuilt(&sys, last).await?;
    let rc = recount(&new)?;
    sys.assert_exact(&rc, &["beilun", "beilun/daqi", "beilun/chunxiao"])
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ingest_on_the_same_data_dir_stops() -> Result<()> {
    let sys = System::start().await?;
    let data = sys.work.dir.path().join("data");
    let mut second = procs::ingest(
        &sys.nats,
        &data,
        &sys.work.dir.path().join("logs-second"),
        &["--clock", "replay"],
    )?;
    let start = Instant::now();
    while second.running() {
        ensure!(start.elapsed() < WAIT, "the second ingest kept running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(&second.log).unwrap_or_default();
    ensure!(log.contains("another ingest holds the data dir"), "{log}");
    Ok(())
}

/// A tmpfs of `mib` MiB at `dir`, unmounted when dropped.
pub struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    pub fn mount(dir: &Path, mib: u32) -> Result<SmallDisk> {
        std::fs::create_dir_all(dir)?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .output()
            .context("running mount")?;
        if !out.status.success() {
            bail!(
                "this test mounts a small tmpfs as ingest's data dir and needs root: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(SmallDisk {
            dir: dir.to_path_buf(),
        })
    }

    /// Fills what is free with one file; returns its path.
    pub fn fill(&self) -> Result<PathBuf> {
        use std::io::Write;
        let p = self.dir.join("filler");
        let mut f = std::fs::File::create(&p)?;
        let chunk = vec![0u8; 64 << 10];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = f.sync_all();
        Ok(p)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_acks_says_why_and_heals_by_itself() -> Result<()> {
    let mut sys = System::start().await?;
    // Ingest again, on a small disk of its own.
    sys.ingest.terminate();
    let data = sys.work.dir.path().join("data");
    let _ = std::fs::remove_dir_all(&data);
    let disk = SmallDisk::mount(&data, 64)?;
    sys.restart_ingest()?;
    let reg = registry()?;
    let evs = volume(&reg, 41, 4_000, "d");
    let (first, second) = evs.split_at(1_000);
    publish_all(&sys.js, &[tick(at(11, 0, 0))]).await?;
    publish_all(&sys.js, &raw_msgs(first)).await?;
    sys.wait_all_processed().await?;
    let filler = disk.fill()?;
    publish_all(&sys.js, &raw_msgs(second)).await?;
    let (status, h) = wait_for("/healthz to say ingest cannot write", WAIT, || async {
        let (s, h) = health(&sys).await?;
        h["ingest_write_error"].as_str()?;
        Some((s, h))
    })
    .await?;
    ensure!(status == 503, "healthz {status}: {h}");
    ensure!(h["problems"].to_string().contains("cannot write"), "{h}");
    // Nothing written, nothing acked: the consumer's ack floor is behind.
    let stream = sys.admin.get_stream("GW_EVENTS").await?;
    let mut c = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>("gridwatch-ingest")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let acked = c.info().await?.ack_floor.stream_sequence;
    let last = sys.stream_last_seq().await?;
    ensure!(acked < last, "acked {acked} of {last} with the disk full");
    // Room again: it heals by itself, acks, and the counts are exact.
    std::fs::remove_file(&filler)?;
    wait_for("/healthz to be healthy again", WAIT, || async {
        let (s, h) = health(&sys).await?;
        (s == 200 && h["ingest_write_error"].is_null()).then_some(())
    })
    .await?;
    sys.wait_all_processed().await?;
    wait_for("every event acked", WAIT, || async {
        let mut c = stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>("gridwatch-ingest")
            .await
            .ok()?;
        (c.info().await.ok()?.ack_floor.stream_sequence >= last).then_some(())
    })
    .await?;
    let rc = recount(&evs)?;
    sys.assert_exact(&rc, &["beilun", "beilun/daqi", "beilun/xinqi"])
        .await?;
    // And a restart from what it wrote loses nothing.
    sys.ingest.kill_hard();
    sys.restart_ingest()?;
    sys.wait_all_processed().await?;
    sys.assert_exact(&rc, &["beilun", "beilun/daqi"]).await?;
    ensure!(sys.ingest.running(), "{}", sys.ingest.log_tail());
    Ok(())
}
