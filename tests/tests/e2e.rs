//! End-to-end tests: a real nats-server (one per test, free port, temporary
//! JetStream store), the real `gridwatch-ingest` and `gridwatch-backend`
//! binaries, and headless Chromium. Every number is checked against an
//! independent recount of the raw events the test published.

use anyhow::{Context, Result, bail, ensure};
use async_nats::jetstream;
use futures::{SinkExt, StreamExt};
use gridwatch_model::{Level, Registry, Zone};
use gridwatch_tests::events::{self, Msg, at, ensure_stream, msg, publish_all, raw, tick};
use gridwatch_tests::procs::{self, Nats, Proc, Workdir, free_port};
use gridwatch_tests::recount::{Recount, differences};
use gridwatch_tests::{Http, registry, wait_for};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(90);

/// One running system: nats-server, ingest (replay clock), backend.
struct System {
    nats: Nats,
    work: Workdir,
    ingest: Proc,
    _backend: Proc,
    port: u16,
    http: Http,
    js: jetstream::Context,
    client: async_nats::Client,
}

impl System {
    async fn start() -> Result<System> {
        let nats = Nats::start()?;
        let work = Workdir::new()?;
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect(nats.url())
            .await?;
        let js = jetstream::new(client.clone());
        ensure_stream(&js).await?;
        let ingest = procs::ingest(
            &nats.url(),
            &work.dir.path().join("data"),
            &work.logs(),
            &["--clock", "replay"],
        )?;
        let port = free_port()?;
        let backend = procs::backend(&nats.url(), port, &work.logs())?;
        let http = Http::new(port);
        // Ready when the backend has the district's state.
        wait_for("the district state", WAIT, || async {
            http.state("beilun").await.ok()
        })
        .await?;
        Ok(System {
            nats,
            work,
            ingest,
            _backend: backend,
            port,
            http,
            js,
            client,
        })
    }

    fn restart_ingest(&mut self) -> Result<()> {
        self.ingest = procs::ingest(
            &self.nats.url(),
            &self.work.dir.path().join("data"),
            &self.work.logs(),
            &["--clock", "replay"],
        )?;
        Ok(())
    }

    async fn stream_last_seq(&self) -> Result<u64> {
        let s = self.js.get_stream("GW_EVENTS").await?;
        Ok(s.get_info().await?.state.last_sequence)
    }

    async fn wait_all_processed(&self) -> Result<()> {
        let last = self.stream_last_seq().await?;
        self.http
            .wait_processed(last, WAIT)
            .await
            .with_context(|| format!("ingest log:\n{}", self.ingest.log_tail()))
    }

    /// Asserts the state API equals the recount at each node.
    async fn assert_exact(&self, rc: &Recount<'_>, nodes: &[&str]) -> Result<()> {
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

fn mgs_under(reg: &Registry, node: &str) -> Vec<String> {
    let i = reg.lookup(node).expect("the node is in the registry");
    reg.microgrids_under(i)
        .map(|m| reg.node(m).id.to_string())
        .collect()
}

fn first_with_zone(reg: &Registry, zone: Zone) -> String {
    reg.microgrids
        .iter()
        .map(|&m| reg.node(m))
        .find(|n| n.mg.as_ref().is_some_and(|g| g.zone == zone))
        .map(|n| n.id.to_string())
        .expect("the registry has such a micro-grid")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_counts_duplicates_out_of_order_and_dead_letters() -> Result<()> {
    let sys = System::start().await?;
    let reg = registry()?;
    let daqi = mgs_under(&reg, "beilun/daqi");
    let xinqi = mgs_under(&reg, "beilun/xinqi");
    let sealed = first_with_zone(&reg, Zone::Sealed);
    let grid = (0..reg.nodes.len() as u32)
        .map(|i| reg.node(i))
        .find(|n| n.level == Level::Grid && n.id.as_str().starts_with("beilun/chaiqiao/"))
        .map(|n| n.id.to_string())
        .context("a Chaiqiao grid")?;

    let good = vec![
        events::testing("t1", at(6, 10, 0), &daqi[0], 50, 30),
        events::testing("t2", at(6, 20, 0), &daqi[0], 80, 10),
        events::testing("t3", at(6, 15, 0), &daqi[0], 20, 99), // out of order: older than t2
        events::testing("t4", at(7, 0, 0), &xinqi[0], 100, 5),
        events::patrol("p3", at(8, 30, 0), &xinqi[0], 2, [0, 1, 0, 0, 0]),
        events::zone("z1", at(9, 0, 0), &grid, "sealed"),
        events::video("v2", at(9, 0, 0), &daqi[2], "F2", "gathering", "raised"),
        events::incident("i1", at(9, 5, 0), &daqi[1], "I1", "reported", 2),
        events::incident("i2", at(9, 6, 0), &xinqi[0], "I2", "reported", 1),
        events::patrol("p1", at(9, 10, 0), &daqi[0], 3, [1, 2, 0, 1, 0]),
        events::video("v1", at(9, 20, 0), &sealed, "F1", "sealed_exit", "raised"),
        events::video("v3", at(9, 30, 0), &daqi[2], "F2", "gathering", "rectified"),
        events::patrol("p2", at(9, 40, 0), &daqi[1], 2, [0, 0, 1, 0, 1]),
        events::incident("i3", at(9, 50, 0), &xinqi[0], "I2", "resolved", 1),
        events::patrol("p4", at(9, 55, 0), &sealed, 4, [0, 0, 0, 0, 0]),
        events::patrol("p5", at(8, 5, 0), &daqi[0], 2, [0, 3, 0, 0, 0]), // out of order
        events::patrol("p6", at(10, 0, 0), &daqi[2], 3, [0, 0, 0, 2, 0]),
    ];
    // The replay clock reads 10:00 from the start.
    let mut msgs: Vec<Msg> = vec![tick(at(10, 0, 0))];
    msgs.extend(good.iter().map(msg));
    // Exact duplicates that get past JetStream's dedupe (no Nats-Msg-Id),
    // and one that JetStream drops itself (same Nats-Msg-Id).
    msgs.push(raw("gw.ev.patrol.daqi", good[9].to_string().as_bytes()));
    msgs.push(raw("gw.ev.testing.daqi", good[0].to_string().as_bytes()));
    msgs.push(msg(&good[10]));
    // Every kind of bad event, after the good ones (the replay clock is then 10:00).
    let mut bad: Vec<(&str, Msg)> = vec![
        (
            "malformed",
            raw("gw.ev.patrol.daqi", b"{\"v\":1,\"kind\":\"patrol\","),
        ),
        ("malformed", raw("gw.ev.patrol.daqi", b"\xff\xfe not utf-8")),
    ];
    let mut v2 = events::patrol("bad-v", at(9, 0, 0), &daqi[0], 2, [0; 5]);
    v2["v"] = json!(2);
    bad.push(("version", msg(&v2)));
    bad.push((
        "schema",
        msg(&events::patrol("bad-s", at(9, 0, 0), &daqi[0], 0, [0; 5])),
    ));
    let mut no_node = events::testing("bad-s2", at(9, 0, 0), &daqi[0], 1, 1);
    no_node.as_object_mut().map(|o| o.remove("samples"));
    bad.push(("schema", msg(&no_node)));
    bad.push((
        "unknown_node",
        msg(&events::patrol(
            "bad-u",
            at(9, 0, 0),
            "beilun/daqi/nowhere/g01/m01",
            2,
            [0; 5],
        )),
    ));
    let mut late = events::patrol("bad-l", at(9, 0, 0), &daqi[0], 2, [0; 5]);
    late["ts"] = json!("2022-10-13T09:00:00+08:00");
    bad.push(("too_late", msg(&late)));
    bad.push((
        "future",
        msg(&events::patrol("bad-f", at(10, 30, 0), &daqi[0], 2, [0; 5])),
    ));
    bad.push((
        "conflict",
        msg(&events::video(
            "bad-c",
            at(9, 59, 0),
            &daqi[0],
            "F9",
            "other",
            "rectified",
        )),
    ));
    msgs.extend(bad.iter().map(|(_, m)| m.clone()));
    publish_all(&sys.js, &msgs).await?;
    sys.wait_all_processed().await?;

    let mut rc = Recount::new(&reg, at(10, 0, 0));
    for ev in &good {
        rc.apply(ev);
    }
    let community = grid.rsplit_once('/').map(|x| x.0).unwrap_or("beilun");
    sys.assert_exact(
        &rc,
        &[
            "beilun",
            "beilun/daqi",
            "beilun/xinqi",
            "beilun/chaiqiao",
            community,
            &grid,
            &daqi[0],
            &daqi[2],
            &sealed,
        ],
    )
    .await?;
    // The zone change moved the grid's micro-grids into the sealed class.
    let d = sys.http.state("beilun").await?;
    let baseline_sealed = reg
        .microgrids
        .iter()
        .filter(|&&m| {
            reg.node(m)
                .mg
                .as_ref()
                .is_some_and(|g| g.zone == Zone::Sealed)
        })
        .count() as u64;
    let grid_mgs = mgs_under(&reg, &grid).len() as u64;
    assert_eq!(
        d["zones"]["sealed"]["microgrids"],
        json!(baseline_sealed + grid_mgs)
    );
    // A sealed-zone exit flag is open: the micro-grid and the district are red.
    let s = sys.http.state(&sealed).await?;
    assert_eq!(s["status"], "red", "{s}");
    assert!(
        d["red_nodes"]
            .as_array()
            .is_some_and(|r| r.iter().any(|n| n["node"] == json!(sealed)))
    );
    // The wall's map agrees: the micro-grid's cell is sealed and red, and
    // the map has as many red cells as the district counts.
    let map = sys.http.state(gridwatch_model::state::MAP_NODE).await?;
    let cells = map["cells"].as_object().context("map cells")?;
    assert_eq!(cells.len(), reg.microgrids.len());
    let ordinal = reg
        .microgrids
        .iter()
        .position(|&m| reg.node(m).id.as_str() == sealed)
        .context("the sealed micro-grid's ordinal")?;
    assert_eq!(cells[&ordinal.to_string()], "sr", "{map}");
    let red_cells = cells
        .values()
        .filter(|c| c.as_str().is_some_and(|c| c.ends_with('r')));
    assert_eq!(Some(red_cells.count() as u64), d["red_microgrids"].as_u64());

    // Metrics count what happened.
    let (_, metrics) = sys.http.get("/metrics").await?;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    for line in [
        format!("gridwatch_ingest_events_applied_total {}", good.len()),
        "gridwatch_ingest_duplicates_total 2".to_string(),
        "gridwatch_ingest_dlq_total{reason=\"malformed\"} 2".to_string(),
        "gridwatch_ingest_dlq_total{reason=\"conflict\"} 1".to_string(),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "metrics lack `{line}`:\n{metrics}"
        );
    }

    // Every bad event is in GW_DLQ with its reason and its original bytes.
    let dlq = sys.js.get_stream("GW_DLQ").await?;
    let n = dlq.get_info().await?.state.messages;
    ensure!(
        n == bad.len() as u64,
        "GW_DLQ holds {n} messages, expected {}",
        bad.len()
    );
    let mut found = Vec::new();
    for seq in 1..=n {
        let m = dlq.get_raw_message(seq).await?;
        let reason = m
            .headers
            .get("Gw-Reason")
            .map(|v| v.to_string())
            .unwrap_or_default();
        ensure!(
            m.subject.as_str() == format!("gw.dlq.{reason}"),
            "subject {} for {reason}",
            m.subject
        );
        ensure!(
            m.headers
                .get("Gw-Detail")
                .is_some_and(|d| !d.as_str().is_empty()),
            "no detail"
        );
        found.push((reason, m.payload.clone()));
    }
    for (reason, m) in &bad {
        ensure!(
            found.iter().any(|(r, p)| r == reason && *p == m.payload),
            "no `{reason}` dead letter for {:?}",
            String::from_utf8_lossy(&m.payload)
        );
    }

    // Bad HTTP requests get a 4xx with a JSON error body.
    for (path, code) in [
        ("/api/v1/state?node=beilun/nowhere", 404),
        ("/api/v1/state", 400),
        ("/api/v1/state?node=", 400),
        ("/api/v1/nothing", 404),
    ] {
        let (status, body) = sys.http.get(path).await?;
        assert_eq!(status, code, "{path}: {body}");
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "{path}: {body}"
        );
    }
    let (status, h) = sys.http.get("/api/v1/hierarchy").await?;
    assert_eq!(status, 200);
    assert_eq!(h["streets"].as_array().map(Vec::len), Some(11));
    Ok(())
}

/// Random valid patrol and testing events (with duplicate ids) for volume
/// tests, deterministic for `seed`.
fn volume(reg: &Registry, seed: u64, n: usize, id_prefix: &str) -> Vec<Value> {
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

fn raw_msgs(evs: &[Value]) -> Vec<Msg> {
    // No Nats-Msg-Id: duplicates reach ingest, which must count them once.
    evs.iter()
        .map(|e| {
            let m = msg(e);
            raw(&m.subject, &m.payload)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_killed_mid_stream_resumes_exactly() -> Result<()> {
    let mut sys = System::start().await?;
    let reg = registry()?;
    let evs = volume(&reg, 7, 40_000, "k");
    let (first, second) = evs.split_at(20_000);
    publish_all(&sys.js, &[tick(at(11, 0, 0))]).await?;
    publish_all(&sys.js, &raw_msgs(first)).await?;
    // Kill while it is working through the first half.
    sys.http.wait_processed(2_000, WAIT).await?;
    sys.ingest.kill_hard();
    // The rest arrives while ingest is down.
    publish_all(&sys.js, &raw_msgs(second)).await?;
    sys.restart_ingest()?;
    // And once more, from a snapshot plus journal of the restarted run.
    sys.http.wait_processed(30_000, WAIT).await?;
    sys.ingest.kill_hard();
    sys.restart_ingest()?;
    sys.wait_all_processed().await?;
    let mut rc = Recount::new(&reg, at(11, 0, 0));
    for e in &evs {
        rc.apply(e);
    }
    sys.assert_exact(
        &rc,
        &["beilun", "beilun/daqi", "beilun/xinqi", "beilun/guoju"],
    )
    .await?;
    // A clean restart changes nothing either. The restarted ingest
    // republishes every state one version up: wait for that.
    let before = sys.http.state("beilun").await?["seq"].as_u64().unwrap_or(0);
    sys.ingest.terminate();
    sys.restart_ingest()?;
    wait_for("the restarted ingest to republish", WAIT, || async {
        let seq = sys.http.state("beilun").await.ok()?["seq"].as_u64()?;
        (seq > before).then_some(())
    })
    .await?;
    sys.wait_all_processed().await?;
    sys.assert_exact(&rc, &["beilun", "beilun/daqi"]).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restart_while_events_flow_loses_and_doubles_nothing() -> Result<()> {
    let mut sys = System::start().await?;
    let reg = registry()?;
    let evs = volume(&reg, 11, 6_000, "n");
    publish_all(&sys.js, &[tick(at(11, 0, 0))]).await?;
    let js = sys.js.clone();
    let to_send = evs.clone();
    // A publisher that retries each event (same Nats-Msg-Id) until stored.
    let publisher = tokio::spawn(async move {
        let mut sent = 0usize;
        for e in &to_send {
            let m = msg(e);
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let mut h = async_nats::HeaderMap::new();
                h.insert("Nats-Msg-Id", m.msg_id.clone().unwrap_or_default().as_str());
                let r = match js
                    .publish_with_headers(m.subject.clone(), h, m.payload.clone())
                    .await
                {
                    Ok(f) => f.await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match r {
                    Ok(()) => break,
                    Err(e) if Instant::now() > deadline => bail!("publish kept failing: {e}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
            sent += 1;
            if sent.is_multiple_of(200) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(sent)
    });
    sys.http.wait_processed(1_500, WAIT).await?;
    sys.nats.restart()?;
    let sent = publisher.await??;
    assert_eq!(sent, evs.len());
    let _ = &sys.client;
    sys.wait_all_processed().await?;
    let mut rc = Recount::new(&reg, at(11, 0, 0));
    for e in &evs {
        rc.apply(e);
    }
    sys.assert_exact(&rc, &["beilun", "beilun/daqi", "beilun/chunxiao"])
        .await?;
    Ok(())
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client that applies snapshots and deltas.
struct WsClient {
    ws: Ws,
    states: std::collections::HashMap<String, (u64, Value)>,
    deltas: u64,
    errors: Vec<Value>,
}

impl WsClient {
    async fn connect(port: u16) -> Result<WsClient> {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws")).await?;
        Ok(WsClient {
            ws,
            states: Default::default(),
            deltas: 0,
            errors: Vec::new(),
        })
    }

    async fn send(&mut self, v: Value) -> Result<()> {
        self.ws
            .send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
            .await?;
        Ok(())
    }

    /// Reads one frame and applies it.
    async fn step(&mut self) -> Result<()> {
        let frame = tokio::time::timeout(Duration::from_secs(30), self.ws.next())
            .await
            .context("no frame within 30 s")?
            .context("socket closed")??;
        let text = frame.into_text()?;
        let v: Value = serde_json::from_str(text.as_str())?;
        let node = v["node"].as_str().unwrap_or_default().to_string();
        let seq = v["seq"].as_u64().unwrap_or(0);
        match v["type"].as_str() {
            Some("snapshot") => {
                self.states.insert(node, (seq, v["state"].clone()));
            }
            Some("delta") => {
                let (cur, state) = self
                    .states
                    .get_mut(&node)
                    .context("a delta before any snapshot")?;
                let from = v["from"].as_u64().unwrap_or(u64::MAX);
                ensure!(from == *cur && seq > from, "delta {from}→{seq} after {cur}");
                gridwatch_model::merge_patch::apply(state, &v["patch"]);
                *cur = seq;
                self.deltas += 1;
            }
            Some("heartbeat") => {}
            Some("error") => self.errors.push(v),
            other => bail!("unexpected frame {other:?}: {v}"),
        }
        Ok(())
    }

    /// Applies frames until `node` equals the REST state.
    async fn sync_with(&mut self, http: &Http, node: &str) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        loop {
            let rest = http.state(node).await?;
            if let Some((seq, s)) = self.states.get(node)
                && *s == rest
                && Some(*seq) == rest["seq"].as_u64()
            {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "WebSocket state of {node} never matched REST"
            );
            self.step().await?;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_snapshot_then_deltas_match_rest_and_resume() -> Result<()> {
    let sys = System::start().await?;
    let reg = registry()?;
    let evs = volume(&reg, 3, 3_000, "w");
    let mut client = WsClient::connect(sys.port).await?;
    client
        .send(json!({"type": "subscribe", "node": "beilun"}))
        .await?;
    client
        .send(json!({"type": "subscribe", "node": "beilun/daqi"}))
        .await?;
    client
        .send(json!({"type": "subscribe", "node": "beilun/nowhere"}))
        .await?;
    publish_all(&sys.js, &[tick(at(11, 0, 0))]).await?;
    for chunk in evs[..1_500].chunks(300) {
        publish_all(&sys.js, &raw_msgs(chunk)).await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    sys.wait_all_processed().await?;
    client.sync_with(&sys.http, "beilun").await?;
    client.sync_with(&sys.http, "beilun/daqi").await?;
    ensure!(client.deltas > 0, "no deltas were applied");
    ensure!(
        client.errors.iter().any(|e| e["code"] == "unknown_node"),
        "no error for an unknown node: {:?}",
        client.errors
    );

    // Disconnect, let the state move on, reconnect from the old seq.
    let (old_seq, old_state) = client.states["beilun"].clone();
    drop(client);
    publish_all(&sys.js, &raw_msgs(&evs[1_500..])).await?;
    sys.wait_all_processed().await?;
    let rest_seq = sys.http.state("beilun").await?["seq"].as_u64().unwrap_or(0);
    ensure!(
        rest_seq > old_seq,
        "the district did not move on ({old_seq} → {rest_seq})"
    );
    let mut again = WsClient::connect(sys.port).await?;
    again.states.insert("beilun".into(), (old_seq, old_state));
    again
        .send(json!({"type": "subscribe", "node": "beilun", "resume_from": old_seq}))
        .await?;
    // The missed deltas arrive (the backend keeps enough history), and the
    // client ends equal to the REST state.
    again.sync_with(&sys.http, "beilun").await?;
    ensure!(
        again.deltas > 0,
        "resumed with a snapshot instead of the missed deltas"
    );
    // Switching node on the same socket (as the wall's rotation does):
    // unsubscribing keeps the connection, the new node's snapshot comes.
    again
        .send(json!({"type": "unsubscribe", "node": "beilun"}))
        .await?;
    again
        .send(json!({"type": "subscribe", "node": "beilun/daqi"}))
        .await?;
    let deadline = Instant::now() + WAIT;
    while !again.states.contains_key("beilun/daqi") {
        ensure!(Instant::now() < deadline, "no snapshot of beilun/daqi");
        again
            .step()
            .await
            .context("the socket after an unsubscribe")?;
    }
    Ok(())
}

/// The browser tests need the built frontend.
fn require_frontend() -> Result<()> {
    let dist = gridwatch_tests::root().join("frontend/dist/index.html");
    ensure!(
        dist.exists(),
        "build the frontend first: scripts/build-frontend.sh"
    );
    Ok(())
}

/// Saves a screenshot of the page as `tests/artifacts/<name>.png`.
async fn screenshot(c: &fantoccini::Client, name: &str) -> Result<()> {
    let png = c.screenshot().await?;
    std::fs::write(
        gridwatch_tests::artifacts_dir().join(format!("{name}.png")),
        png,
    )?;
    Ok(())
}

/// Headless Chromium (through chromedriver) with a window of `size`.
async fn chromium(sys: &System, size: (u32, u32)) -> Result<(procs::Proc, fantoccini::Client)> {
    let (driver, url) = procs::chromedriver(&sys.work.logs())?;
    let caps = procs::chromium_caps(size, &[]);
    let c =
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .context("starting headless Chromium through chromedriver")?;
    Ok((driver, c))
}

/// The text of the element with `data-testid` = `id`, if it is there.
async fn text_of(c: &fantoccini::Client, id: &str) -> Option<String> {
    let el = c
        .find(fantoccini::Locator::Css(&format!("[data-testid='{id}']")))
        .await
        .ok()?;
    el.text().await.ok()
}

/// Waits until the element `id` reads `expected`.
async fn wait_text(c: &fantoccini::Client, id: &str, expected: &str) -> Result<()> {
    wait_for(&format!("`{id}` to read {expected}"), WAIT, || async {
        (text_of(c, id).await? == expected).then_some(())
    })
    .await
}

/// Sets the viewport (not the window) to `w`×`h` CSS pixels, then checks
/// that the page fits: no horizontal or vertical scrolling.
async fn fit_viewport(c: &fantoccini::Client, w: u32, h: u32) -> Result<()> {
    c.set_window_size(w, h).await?;
    // The window includes the browser's frame: grow it by the difference.
    let inner = c
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await?;
    let (iw, ih) = (
        inner[0].as_u64().unwrap_or(u64::from(w)) as u32,
        inner[1].as_u64().unwrap_or(u64::from(h)) as u32,
    );
    c.set_window_size(w + w.saturating_sub(iw), h + h.saturating_sub(ih))
        .await?;
    wait_for(&format!("a {w}×{h} viewport"), WAIT, || async {
        let v = c
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await
            .ok()?;
        (v[0].as_u64() == Some(u64::from(w)) && v[1].as_u64() == Some(u64::from(h))).then_some(())
    })
    .await?;
    let fits = c
        .execute(
            "const d = document.documentElement; \
             return [d.scrollWidth, d.scrollHeight, window.innerWidth, window.innerHeight];",
            vec![],
        )
        .await?;
    let v: Vec<u64> = fits
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    ensure!(v.len() == 4, "no page size: {fits}");
    ensure!(
        v[2] == u64::from(w) && v[3] == u64::from(h),
        "viewport {}×{} instead of {w}×{h}",
        v[2],
        v[3]
    );
    ensure!(
        v[0] <= v[2] && v[1] <= v[3],
        "scrollbars at {w}×{h}: content {}×{}",
        v[0],
        v[1]
    );
    Ok(())
}

/// The wall at 1920×1080 and 3840×2160: no scrollbars; its red count, map
/// and sealed-zone population equal the state API's after events; a
/// micro-grid turning red reaches the ticker; a backend restart heals
/// without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_wall_matches_the_api_at_both_sizes_and_heals() -> Result<()> {
    require_frontend()?;
    let mut sys = System::start().await?;
    let reg = registry()?;
    let sealed = first_with_zone(&reg, Zone::Sealed);
    let daqi = mgs_under(&reg, "beilun/daqi");
    publish_all(
        &sys.js,
        &[
            tick(at(9, 0, 0)),
            msg(&events::testing("w1", at(8, 10, 0), &daqi[0], 400, 20)),
            msg(&events::patrol("w2", at(8, 50, 0), &sealed, 2, [0; 5])),
        ],
    )
    .await?;
    sys.wait_all_processed().await?;
    let (_driver, c) = chromium(&sys, (1920, 1080)).await?;
    let result = async {
        c.goto(&format!("http://127.0.0.1:{}/wall", sys.port))
            .await?;
        let agree = |c: fantoccini::Client, http: gridwatch_tests::Http| async move {
            let d = http.state("beilun").await?;
            let red = gridwatch_model::fmt::thousands(d["red_microgrids"].as_u64().unwrap_or(0));
            let sealed_pop = gridwatch_model::fmt::thousands(
                d["zones"]["sealed"]["population"].as_u64().unwrap_or(0),
            );
            wait_text(&c, "wall-red", &red).await?;
            wait_text(&c, "zone-sealed-population", &sealed_pop).await?;
            // The chart's samples today add up to the API's.
            let samples = gridwatch_model::fmt::thousands(
                d["testing"]["samples_today"].as_u64().unwrap_or(0),
            );
            wait_text(&c, "chart-total", &samples).await?;
            wait_for("the map's red count", WAIT, || async {
                text_of(&c, "map-red")
                    .await?
                    .starts_with(&format!("{red} "))
                    .then_some(())
            })
            .await?;
            anyhow::Ok(red)
        };
        let red0 = agree(c.clone(), sys.http.clone()).await?;
        for (w, h) in [(1920, 1080), (3840, 2160)] {
            fit_viewport(&c, w, h).await?;
            screenshot(&c, &format!("wall-{w}x{h}")).await?;
        }
        fit_viewport(&c, 1920, 1080).await?;
        // A sealed-zone exit: the micro-grid turns red, the ticker says so,
        // and the counts still agree with the API.
        publish_all(
            &sys.js,
            &[msg(&events::video(
                "w3",
                at(9, 1, 0),
                &sealed,
                "FW",
                "sealed_exit",
                "raised",
            ))],
        )
        .await?;
        sys.wait_all_processed().await?;
        let red1 = agree(c.clone(), sys.http.clone()).await?;
        ensure!(red1 != red0, "the red count did not move ({red0})");
        wait_for("a red alert on the ticker", WAIT, || async {
            c.find(fantoccini::Locator::Css(
                "[data-testid='ticker'] .alert.status-red",
            ))
            .await
            .ok()
            .map(|_| ())
        })
        .await?;
        // The backend restarts under the open page; it heals by itself.
        sys._backend.kill_hard();
        wait_for("the wall to notice", Duration::from_secs(30), || async {
            c.find(fantoccini::Locator::Css(".conn.conn-open"))
                .await
                .is_err()
                .then_some(())
        })
        .await?;
        sys._backend = procs::backend(&sys.nats.url(), sys.port, &sys.work.logs())?;
        publish_all(
            &sys.js,
            &[msg(&events::video(
                "w4",
                at(9, 2, 0),
                &sealed,
                "FW",
                "sealed_exit",
                "rectified",
            ))],
        )
        .await?;
        sys.wait_all_processed().await?;
        let red2 = agree(c.clone(), sys.http.clone()).await?;
        ensure!(red2 != red1, "no new data after the restart ({red1})");
        screenshot(&c, "wall-after-restart").await?;
        // Rotation, in English: the wall moves on to a street, whose figures
        // are the API's for that street, and lists its communities.
        c.goto(&format!(
            "http://127.0.0.1:{}/wall?rotate=2&lang=en",
            sys.port
        ))
        .await?;
        let street = wait_for("the wall to rotate to a street", WAIT, || async {
            let name = text_of(&c, "subtitle").await?;
            reg.nodes
                .iter()
                .find(|n| n.level == Level::Street && n.name_en == name)
                .map(|n| n.id.to_string())
        })
        .await?;
        let s = sys.http.state(&street).await?;
        let pop = gridwatch_model::fmt::thousands(
            s["zones"]["prevention"]["population"].as_u64().unwrap_or(0),
        );
        wait_text(&c, "zone-prevention-population", &pop).await?;
        // The map zooms on that street: its outline is the one in focus and
        // the view box is narrower than the district's.
        let focus = c
            .find(fantoccini::Locator::Css(
                "[data-testid='map'] path.street.focus",
            ))
            .await
            .context("a street in focus on the map")?;
        ensure!(
            focus.attr("data-node").await?.as_deref() == Some(street.as_str()),
            "the map is not zoomed on {street}"
        );
        let view_box = |v: Option<String>| -> Vec<f64> {
            v.unwrap_or_default()
                .split(' ')
                .filter_map(|x| x.parse().ok())
                .collect()
        };
        let zoomed = view_box(
            c.find(fantoccini::Locator::Css("[data-testid='map']"))
                .await?
                .attr("viewBox")
                .await?,
        );
        ensure!(
            zoomed.len() == 4 && (zoomed[0] != 0.0 || zoomed[1] != 0.0),
            "the view box {zoomed:?} is the whole district's"
        );
        screenshot(&c, "wall-street-en").await?;
        anyhow::Ok(())
    }
    .await;
    let _ = c.close().await;
    result
}

/// The street tablet at 1024×768 and 1280×800: no scrollbars; tap down
/// from the street to a micro-grid, whose figures are the API's, and back
/// up by the breadcrumbs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_tablet_drills_down_and_back() -> Result<()> {
    require_frontend()?;
    let mut sys = System::start().await?;
    let reg = registry()?;
    let daqi = mgs_under(&reg, "beilun/daqi");
    publish_all(
        &sys.js,
        &[
            tick(at(9, 0, 0)),
            msg(&events::testing("s1", at(8, 30, 0), &daqi[0], 120, 4)),
        ],
    )
    .await?;
    sys.wait_all_processed().await?;
    let street_name = reg
        .lookup("beilun/daqi")
        .map(|i| reg.node(i).name.clone())
        .context("Daqi")?;
    let (_driver, c) = chromium(&sys, (1024, 768)).await?;
    let result = async {
        c.goto(&format!("http://127.0.0.1:{}/street/daqi", sys.port))
            .await?;
        wait_text(&c, "node-name", &street_name).await?;
        for (w, h) in [(1024, 768), (1280, 800)] {
            fit_viewport(&c, w, h).await?;
            screenshot(&c, &format!("street-{w}x{h}")).await?;
        }
        // Down: street → community → grid → micro-grid, tapping the first
        // (worst) row each time.
        let mut name = street_name.clone();
        for _ in 0..3 {
            let row = c
                .find(fantoccini::Locator::Css("[data-testid='child']"))
                .await?;
            row.click().await?;
            name = wait_for("the next level", WAIT, || async {
                let now = text_of(&c, "node-name").await?;
                (now != name && now != "–").then_some(now)
            })
            .await?;
        }
        c.find(fantoccini::Locator::Css("[data-testid='mg-detail']"))
            .await
            .context("a micro-grid page at the bottom")?;
        // Its figures are the API's: the URL names the micro-grid.
        let url = c.current_url().await?;
        let mg = url
            .path()
            .strip_prefix("/street/")
            .context("a tablet URL")?
            .to_string();
        let s = sys.http.state(&mg).await?;
        ensure!(s["name"] == json!(name), "{mg} is not {name}");
        let tested =
            gridwatch_model::fmt::thousands(s["testing"]["samples_today"].as_u64().unwrap_or(0));
        wait_for("the micro-grid's tests", WAIT, || async {
            text_of(&c, "mg-tested")
                .await?
                .starts_with(&format!("{tested} /"))
                .then_some(())
        })
        .await?;
        // Its team is the registry's.
        let leader = reg
            .lookup(&mg)
            .and_then(|i| reg.node(i).mg.as_ref())
            .map(|m| m.team.leader.clone())
            .context("a micro-grid in the registry")?;
        wait_text(&c, "mg-leader", &leader).await?;
        // A flag raised, an incident reported and a designation made on it
        // reach the open tablet, each with how long it has been open by the
        // deployment clock (09:00).
        publish_all(
            &sys.js,
            &[
                msg(&events::video(
                    "tv1",
                    at(8, 50, 0),
                    &mg,
                    "TF1",
                    "gathering",
                    "raised",
                )),
                msg(&events::incident(
                    "ti1",
                    at(8, 40, 0),
                    &mg,
                    "TI1",
                    "reported",
                    2,
                )),
                msg(&events::zone("tz1", at(8, 55, 0), &mg, "control")),
            ],
        )
        .await?;
        for (id, expected) in [
            ("mg-flags", "10 min"),
            ("mg-incidents", "20 min"),
            ("mg-zone-since", "08:55"),
        ] {
            wait_for(&format!("{id} to show {expected}"), WAIT, || async {
                text_of(&c, id).await?.contains(expected).then_some(())
            })
            .await?;
        }
        screenshot(&c, "street-microgrid").await?;
        // Offline: the backend goes away under the tablet; a banner says so.
        // The flag is rectified meanwhile; when the backend is back the
        // tablet catches up by itself.
        sys._backend.kill_hard();
        wait_for("the offline banner", Duration::from_secs(30), || async {
            c.find(fantoccini::Locator::Css("[data-testid='offline']"))
                .await
                .ok()
                .map(|_| ())
        })
        .await?;
        screenshot(&c, "street-offline").await?;
        publish_all(
            &sys.js,
            &[msg(&events::video(
                "tv2",
                at(8, 58, 0),
                &mg,
                "TF1",
                "gathering",
                "rectified",
            ))],
        )
        .await?;
        sys._backend = procs::backend(&sys.nats.url(), sys.port, &sys.work.logs())?;
        wait_for(
            "the tablet to catch up",
            Duration::from_secs(60),
            || async {
                let banner = c
                    .find(fantoccini::Locator::Css("[data-testid='offline']"))
                    .await
                    .is_ok();
                let flags = text_of(&c, "mg-flags").await?;
                (!banner && !flags.contains("10 min") && flags.contains("无")).then_some(())
            },
        )
        .await?;
        // Back up to the street by its breadcrumb.
        let crumbs = c
            .find_all(fantoccini::Locator::Css("[data-testid='crumbs'] .crumb"))
            .await?;
        ensure!(crumbs.len() == 4, "{} breadcrumbs", crumbs.len());
        crumbs[0].click().await?;
        wait_text(&c, "node-name", &street_name).await?;
        anyhow::Ok(())
    }
    .await;
    let _ = c.close().await;
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_page_updates_live_and_marks_stale() -> Result<()> {
    require_frontend()?;
    let mut sys = System::start().await?;
    let reg = registry()?;
    let daqi = mgs_under(&reg, "beilun/daqi");
    publish_all(
        &sys.js,
        &[
            tick(at(6, 30, 0)),
            msg(&events::testing("b1", at(6, 10, 0), &daqi[0], 1234, 20)),
        ],
    )
    .await?;
    sys.wait_all_processed().await?;

    let (_driver, c) = chromium(&sys, (1920, 1080)).await?;
    let result = async {
        c.goto(&format!("http://127.0.0.1:{}/", sys.port)).await?;
        wait_text(&c, "samples-today", "1,234").await?;
        // Publish one event; the number changes without a reload.
        let t0 = Instant::now();
        publish_all(
            &sys.js,
            &[msg(&events::testing("b2", at(6, 20, 0), &daqi[1], 1000, 5))],
        )
        .await?;
        wait_text(&c, "samples-today", "2,234").await?;
        eprintln!("publish → page: {} ms", t0.elapsed().as_millis());
        screenshot(&c, "district").await?;
        // Cut the data: the backend goes away; after 10 s the page says stale.
        sys._backend.kill_hard();
        wait_for("the stale marker", Duration::from_secs(30), || async {
            c.find(fantoccini::Locator::Css("[data-testid='stale']"))
                .await
                .ok()
                .map(|_| ())
        })
        .await?;
        screenshot(&c, "district-stale").await?;
        // The backend returns; the page reconnects by itself and is live again.
        sys._backend = procs::backend(&sys.nats.url(), sys.port, &sys.work.logs())?;
        publish_all(
            &sys.js,
            &[msg(&events::testing("b3", at(6, 30, 0), &daqi[2], 1, 5))],
        )
        .await?;
        wait_text(&c, "samples-today", "2,235").await?;
        ensure!(
            c.find(fantoccini::Locator::Css("[data-testid='stale']"))
                .await
                .is_err(),
            "still stale"
        );
        anyhow::Ok(())
    }
    .await;
    let _ = c.close().await;
    result
}
