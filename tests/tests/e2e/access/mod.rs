//! Access: who may see and do what.
//!
//! - [`nats`]: NATS users with least privilege (a forged state refused),
//!   and docker-compose's NATS with TLS;
//! - [`matrix`]: every route × every role, personal data, the CSP;
//! - [`sessions`]: sign-in and out, expiry, revocation, throttling, the
//!   audit trail, the socket's scope, Origin and cap;
//! - [`limits`]: the rate per identity, slowloris, body size.

mod limits;
mod matrix;
mod nats;
mod sessions;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::system::WAIT;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_send(ws: &mut Socket, v: &Value) -> Result<()> {
    use futures::SinkExt as _;
    ws.send(tokio_tungstenite::tungstenite::Message::text(v.to_string()))
        .await?;
    Ok(())
}

/// The next text frame as JSON (skipping heartbeats).
async fn ws_next(ws: &mut Socket) -> Result<Value> {
    use futures::StreamExt as _;
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await?
            .context("the socket closed")??;
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            let v: Value = serde_json::from_str(t.as_str())?;
            if v["type"] != "heartbeat" {
                return Ok(v);
            }
        }
    }
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
