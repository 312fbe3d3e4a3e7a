//! One running system (nats-server, ingest on the replay clock, backend)
//! and the helpers the tests share.

use anyhow::{Context, Result, ensure};
use async_nats::jetstream;
use gridwatch_model::{Registry, Zone};
use gridwatch_tests::events::{self, Msg, at, ensure_stream, msg, raw};
use gridwatch_tests::procs::{self, Nats, Proc, Workdir, free_port};
use gridwatch_tests::recount::{Recount, differences};
use gridwatch_tests::{Http, wait_for};
use serde_json::Value;
use std::time::Duration;

pub const WAIT: Duration = Duration::from_secs(90);

/// One running system: nats-server, ingest (replay clock), backend.
pub struct System {
    pub nats: Nats,
    pub work: Workdir,
    pub ingest: Proc,
    pub backend: Proc,
    pub port: u16,
    pub http: Http,
    /// JetStream as the `replay` user: the test publishes events and
    /// clock ticks like the field and the simulator.
    pub js: jetstream::Context,
    pub client: async_nats::Client,
    /// JetStream as `ops`: streams, the state bucket, the DLQ.
    pub admin: jetstream::Context,
}

impl System {
    pub async fn start() -> Result<System> {
        Self::start_on(Nats::start()?).await
    }

    /// A system on a server started by the caller.
    pub async fn start_on(nats: Nats) -> Result<System> {
        let work = Workdir::new()?;
        let client = nats.client().await?;
        let js = jetstream::new(client.clone());
        let admin = nats.ops().await?;
        ensure_stream(&admin).await?;
        let ingest = procs::ingest(
            &nats,
            &work.dir.path().join("data"),
            &work.logs(),
            &["--clock", "replay"],
        )?;
        let port = free_port()?;
        let history = work.dir.path().join("data/history");
        let backend = procs::backend_with_env(
            &nats,
            port,
            &work.logs(),
            &[("GRIDWATCH__HISTORY_DIR", &history.display().to_string())],
        )?;
        let http = Http::with_token(port, &nats.accounts()?.admin.token);
        // Ready when the backend has the district's state.
        wait_for("the district state", WAIT, || async {
            http.state("beilun").await.ok()
        })
        .await?;
        Ok(System {
            nats,
            work,
            ingest,
            backend,
            port,
            http,
            js,
            client,
            admin,
        })
    }

    pub fn restart_ingest(&mut self) -> Result<()> {
        self.ingest = procs::ingest(
            &self.nats,
            &self.work.dir.path().join("data"),
            &self.work.logs(),
            &["--clock", "replay"],
        )?;
        Ok(())
    }

    /// The admin's API token.
    pub fn token(&self) -> String {
        self.nats
            .accounts()
            .map(|a| a.admin.token.clone())
            .unwrap_or_default()
    }

    pub async fn stream_last_seq(&self) -> Result<u64> {
        let s = self.admin.get_stream("GW_EVENTS").await?;
        Ok(s.get_info().await?.state.last_sequence)
    }

    pub async fn wait_all_processed(&self) -> Result<()> {
        let last = self.stream_last_seq().await?;
        self.http
            .wait_processed(last, WAIT)
            .await
            .with_context(|| format!("ingest log:\n{}", self.ingest.log_tail()))
    }

    /// Waits until `node`'s state satisfies `f` (`what` names it in the
    /// timeout): that state.
    pub async fn state_until(
        &self,
        node: &str,
        what: &str,
        f: impl Fn(&Value) -> bool,
    ) -> Result<Value> {
        wait_for(what, WAIT, || async {
            self.http.state(node).await.ok().filter(|s| f(s))
        })
        .await
    }

    /// Asserts the state API equals the recount at each node.
    pub async fn assert_exact(&self, rc: &Recount<'_>, nodes: &[&str]) -> Result<()> {
        let mut diffs = Vec::new();
        for node in nodes {
            let actual = self.http.state(node).await?;
            let expected = rc.expected(node);
            diffs.extend(differences(&expected, &actual, node));
        }
        ensure!(
            diffs.is_empty(),
            "state API differs from the recount:\n{}",
            diffs.join("\n")
        );
        Ok(())
    }
}

pub fn mgs_under(reg: &Registry, node: &str) -> Vec<String> {
    let i = reg.lookup(node).expect("the node is in the registry");
    reg.microgrids_under(i)
        .map(|m| reg.node(m).id.to_string())
        .collect()
}

pub fn first_with_zone(reg: &Registry, zone: Zone) -> String {
    reg.microgrids
        .iter()
        .map(|&m| reg.node(m))
        .find(|n| n.mg.as_ref().is_some_and(|g| g.zone == zone))
        .map(|n| n.id.to_string())
        .expect("the registry has such a micro-grid")
}

/// Random valid patrol and testing events (with duplicate ids) for volume
/// tests, deterministic for `seed`.
pub fn volume(reg: &Registry, seed: u64, n: usize, id_prefix: &str) -> Vec<Value> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mgs: Vec<String> = reg
        .microgrids
        .iter()
        .step_by(17)
        .map(|&m| reg.node(m).id.to_string())
        .collect();
    let mut out: Vec<Value> = Vec::with_capacity(n);
    for i in 0..n {
        if i > 0 && rng.random_bool(0.03) {
            let j = rng.random_range(0..out.len());
            out.push(out[j].clone());
            continue;
        }
        let node = &mgs[rng.random_range(0..mgs.len())];
        let secs = rng.random_range(0..4 * 3600);
        let t = at(7, 0, 0) + chrono::Duration::seconds(secs);
        let id = format!("{id_prefix}-{i}");
        out.push(if rng.random_bool(0.5) {
            events::patrol(
                &id,
                t,
                node,
                rng.random_range(1..5),
                [rng.random_range(0..2), 0, 0, rng.random_range(0..2), 0],
            )
        } else {
            events::testing(
                &id,
                t,
                node,
                rng.random_range(0..60),
                rng.random_range(0..40),
            )
        });
    }
    out
}

pub fn raw_msgs(evs: &[Value]) -> Vec<Msg> {
    // No Nats-Msg-Id: duplicates reach ingest, which must count them once.
    evs.iter()
        .map(|e| {
            let m = msg(e);
            raw(&m.subject, &m.payload)
        })
        .collect()
}
