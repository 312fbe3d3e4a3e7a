//! `gridwatch-recount`, the operators' independent recount: over a
//! simulated morning with bad events mixed in it finds the live states
//! equal, and it finds a state that was tampered with.

use anyhow::{Result, ensure};
use gridwatch_runtime::nats_auth::Service;
use gridwatch_tests::procs;
use serde_json::Value;
use std::time::{Duration, Instant};

use crate::system::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recount_finds_the_states_equal_and_a_tampered_one_not() -> Result<()> {
    let sys = System::start().await?;
    let mut sim = procs::sim(
        &sys.nats,
        &sys.work.logs(),
        &[
            "--date",
            "2022-10-15",
            "--rate",
            "20000",
            "--bad-share",
            "0.05",
            "--limit",
            "30000",
        ],
        &[],
    )?;
    let start = Instant::now();
    while sim.running() {
        ensure!(start.elapsed() < WAIT, "the simulator did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    sys.wait_all_processed().await?;
    let (code, out) = procs::recount(&sys.nats, &["--sample", "40"])?;
    ensure!(code == 0, "recount exited {code}:\n{out}");
    ensure!(
        out.contains("beilun/daqi (as of") && out.contains("recount: equal"),
        "{out}"
    );
    // Somebody with ingest's key changes a street's state by hand (no
    // other NATS user may write it): the recount says so.
    let insider = async_nats::jetstream::new(sys.nats.client_as(Service::Ingest).await?);
    let kv = insider.get_key_value("GW_STATE").await?;
    let key = "node.beilun/daqi";
    let mut state: Value = serde_json::from_slice(
        &kv.get(key)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no state"))?,
    )?;
    let n = state["patrol"]["patrols_today"].as_u64().unwrap_or(0);
    state["patrol"]["patrols_today"] = (n + 1).into();
    kv.put(key, serde_json::to_vec(&state)?.into()).await?;
    let (code, out) = procs::recount(&sys.nats, &["--node", "beilun/daqi"])?;
    ensure!(
        code == 1,
        "recount exited {code} on a tampered state:\n{out}"
    );
    ensure!(out.contains("beilun/daqi.patrol.patrols_today"), "{out}");
    Ok(())
}
