//! The WebSocket: a snapshot, then deltas that match the REST state, and
//! resume after a reconnect.

use anyhow::{Context, Result, bail, ensure};
use futures::{SinkExt, StreamExt};
use gridwatch_tests::events::{at, publish_all, tick};
use gridwatch_tests::{Http, registry};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

use crate::system::*;

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
    async fn connect(port: u16, token: &str) -> Result<WsClient> {
        let req = gridwatch_tests::ws_request(&format!("ws://127.0.0.1:{port}/ws"), token, &[])?;
        let (ws, _) = tokio_tungstenite::connect_async(req).await?;
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
    let mut client = WsClient::connect(sys.port, &sys.token()).await?;
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
    let mut again = WsClient::connect(sys.port, &sys.token()).await?;
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
