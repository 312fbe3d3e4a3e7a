//! The raw limit: how fast a bare async-nats client reads the pre-filled
//! event stream from nats-server, tuned as hard as the product — several
//! ways of pulling, several batch sizes, and no per-message work beyond
//! counting (receive only) or counting and serde into the model's types
//! (receive + decode). The best configuration found is the baseline the
//! ingest figure is a ratio of.

use anyhow::{Result, bail};
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use gridwatch_model::Event;
use gridwatch_model::event::{CLOCK_SUBJECT, ClockTick};
use std::time::{Duration, Instant};

/// How the bare consumer pulls.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pull {
    /// async-nats' `stream().messages()`: a continuous pull that asks for
    /// more as it drains, up to `batch` per request.
    Messages { batch: usize },
    /// `batch()` requests one after another, `batch` messages each.
    Batch { batch: usize },
    /// `inflight` pull requests of `batch` messages kept outstanding on a
    /// plain subscription (a new one as each is filled): the server never
    /// waits for the client's next request.
    Inflight { batch: usize, inflight: usize },
}

impl std::fmt::Display for Pull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pull::Messages { batch } => write!(f, "`messages()`, batch {batch}"),
            Pull::Batch { batch } => write!(f, "`batch()` one at a time, batch {batch}"),
            Pull::Inflight { batch, inflight } => {
                write!(f, "{inflight} pull requests in flight, batch {batch}")
            }
        }
    }
}

/// The configurations the sweep tries.
pub fn candidates() -> Vec<Pull> {
    let mut v = Vec::new();
    for batch in [500, 2_000, 10_000] {
        v.push(Pull::Messages { batch });
    }
    for batch in [2_000, 10_000] {
        v.push(Pull::Batch { batch });
    }
    for (batch, inflight) in [(1_000, 4), (5_000, 2), (5_000, 4), (10_000, 4), (20_000, 2)] {
        v.push(Pull::Inflight { batch, inflight });
    }
    v
}

/// Decodes one message as the product does: a clock tick or a v1 event.
fn decode(subject: &str, payload: &[u8]) -> Result<()> {
    if subject == CLOCK_SUBJECT {
        std::hint::black_box(serde_json::from_slice::<ClockTick>(payload)?);
    } else {
        let kind = subject.split('.').nth(2);
        std::hint::black_box(Event::parse(payload, kind).map_err(|e| anyhow::anyhow!("{e}"))?);
    }
    Ok(())
}

/// Reads the `total` messages of `stream` once with a fresh consumer
/// `name`; returns messages per second.
pub async fn consume(
    url: &str,
    stream: &str,
    total: u64,
    pull: Pull,
    with_decode: bool,
    name: &str,
) -> Result<f64> {
    let client = async_nats::connect(url).await?;
    let js = jetstream::new(client.clone());
    let s = js.get_stream(stream).await?;
    let c = s
        .create_consumer(consumer::pull::Config {
            name: Some(name.to_string()),
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await?;
    let mut got = 0u64;
    let start = Instant::now();
    match pull {
        Pull::Messages { batch } => {
            let mut msgs = c.stream().max_messages_per_batch(batch).messages().await?;
            while got < total {
                let Some(m) = msgs.next().await else { break };
                let m = m.map_err(|e| anyhow::anyhow!("{e}"))?;
                if with_decode {
                    decode(m.subject.as_str(), &m.payload)?;
                }
                got += 1;
            }
        }
        Pull::Batch { batch } => {
            while got < total {
                let mut msgs = c
                    .batch()
                    .max_messages(batch)
                    .expires(Duration::from_secs(5))
                    .messages()
                    .await?;
                let before = got;
                while let Some(m) = msgs.next().await {
                    let m = m.map_err(|e| anyhow::anyhow!("{e}"))?;
                    if with_decode {
                        decode(m.subject.as_str(), &m.payload)?;
                    }
                    got += 1;
                }
                if got == before {
                    bail!("a batch came back empty at {got} of {total}");
                }
            }
        }
        Pull::Inflight { batch, inflight } => {
            let inbox = client.new_inbox();
            let mut sub = client.subscribe(inbox.clone()).await?;
            let next = format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}");
            let req = bytes::Bytes::from(
                serde_json::json!({"batch": batch, "expires": 30_000_000_000u64}).to_string(),
            );
            let mut requested = 0u64;
            for _ in 0..inflight {
                client
                    .publish_with_reply(next.clone(), inbox.clone(), req.clone())
                    .await?;
                requested += batch as u64;
            }
            let mut in_request = 0usize;
            while got < total {
                let Some(m) = sub.next().await else { break };
                // Status messages (timeouts, no messages) carry no event.
                if m.status.is_some() {
                    continue;
                }
                if with_decode {
                    decode(m.subject.as_str(), &m.payload)?;
                }
                got += 1;
                in_request += 1;
                if in_request == batch {
                    in_request = 0;
                    if requested < total {
                        client
                            .publish_with_reply(next.clone(), inbox.clone(), req.clone())
                            .await?;
                        requested += batch as u64;
                    }
                }
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    if got < total {
        bail!("{pull}: read {got} of {total} messages");
    }
    let _ = s.delete_consumer(name).await;
    Ok(total as f64 / secs)
}
