//! The raw limit: how fast a bare async-nats client reads the pre-filled
//! event stream from nats-server, tuned as hard as the product — several
//! ways of pulling, several batch sizes, the client on the bench's runtime
//! or on a thread of its own, and no per-message work beyond counting
//! (receive only) or counting and serde into the model's types (receive +
//! decode). The best configuration found is the baseline the ingest figure
//! is a ratio of. Each reading also says how busy nats-server was, and a
//! control stream of tiny header-less messages shows what the same client
//! reaches when the server's cost per message is smallest.

use anyhow::{Result, bail};
use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use gridwatch_model::Event;
use gridwatch_model::event::{CLOCK_SUBJECT, ClockTick};
use std::time::{Duration, Instant};

/// The server the raw reads connect to, as the `ops` user.
#[derive(Clone, Debug)]
pub struct Server {
    pub url: String,
    pub nkey_file: std::path::PathBuf,
}

impl Server {
    /// `opts` plus this user's key.
    pub async fn connect(&self, opts: async_nats::ConnectOptions) -> Result<async_nats::Client> {
        let (seed, inbox) = gridwatch_runtime::nats_auth::read_seed(&self.nkey_file)?;
        Ok(opts
            .nkey(seed)
            .custom_inbox_prefix(inbox)
            .connect(self.url.as_str())
            .await?)
    }
}

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

/// Where the client runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Runtime {
    /// On the bench's multi-threaded tokio runtime: the connection task
    /// and the reading loop may sit on different worker threads.
    Shared,
    /// On a current-thread runtime of its own: connection task and reading
    /// loop on one thread, no message crosses threads.
    OwnThread,
}

/// One configuration of the bare consumer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Setup {
    pub pull: Pull,
    pub runtime: Runtime,
}

impl std::fmt::Display for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rt = match self.runtime {
            Runtime::Shared => "shared runtime",
            Runtime::OwnThread => "own thread",
        };
        write!(f, "{}, {rt}", self.pull)
    }
}

/// The configurations the sweep tries: every way of pulling on a thread of
/// its own (faster in every pairing measured), and a few on the shared
/// runtime for comparison.
pub fn candidates() -> Vec<Setup> {
    let mut pulls = Vec::new();
    for batch in [500, 2_000, 10_000] {
        pulls.push(Pull::Messages { batch });
    }
    for batch in [2_000, 10_000] {
        pulls.push(Pull::Batch { batch });
    }
    for (batch, inflight) in [
        (1_000, 4),
        (5_000, 2),
        (10_000, 2),
        (10_000, 4),
        (10_000, 8),
        (20_000, 4),
        (50_000, 2),
    ] {
        pulls.push(Pull::Inflight { batch, inflight });
    }
    let shared = [
        Pull::Messages { batch: 2_000 },
        Pull::Inflight {
            batch: 10_000,
            inflight: 4,
        },
    ];
    let mut v: Vec<Setup> = pulls
        .into_iter()
        .map(|pull| Setup {
            pull,
            runtime: Runtime::OwnThread,
        })
        .collect();
    v.extend(shared.into_iter().map(|pull| Setup {
        pull,
        runtime: Runtime::Shared,
    }));
    v
}

/// One read of a stream.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    pub msgs_per_s: f64,
    /// nats-server's CPU time over the read's wall time (1.0 = one core
    /// busy all along); NaN when unknown.
    pub server_cores: f64,
}

/// CPU seconds (user + system) `pid` has used, from /proc.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux this runs on.
    Some(ticks / 100.0)
}

/// Reads the `total` messages of `stream` once with a fresh consumer
/// `name` in configuration `setup`; `server` is nats-server's pid.
pub async fn read(
    url: &Server,
    stream: &str,
    total: u64,
    setup: Setup,
    with_decode: bool,
    name: &str,
    server: Option<u32>,
) -> Result<Reading> {
    let cpu0 = server.and_then(cpu_seconds);
    let start = Instant::now();
    let msgs_per_s = match setup.runtime {
        Runtime::Shared => consume(url, stream, total, setup.pull, with_decode, name).await?,
        Runtime::OwnThread => {
            let (url, stream, name) = (url.clone(), stream.to_string(), name.to_string());
            let pull = setup.pull;
            tokio::task::spawn_blocking(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(consume(&url, &stream, total, pull, with_decode, &name))
            })
            .await??
        }
    };
    let secs = start.elapsed().as_secs_f64();
    let server_cores = match (cpu0, server.and_then(cpu_seconds)) {
        (Some(a), Some(b)) => (b - a) / secs,
        _ => f64::NAN,
    };
    Ok(Reading {
        msgs_per_s,
        server_cores,
    })
}

/// The control stream: `n` messages of 16 bytes, no headers, in a stream
/// of their own (`subject`), published with acks pipelined.
pub async fn fill_tiny(url: &Server, stream: &str, subject: &str, n: u64) -> Result<u64> {
    let client = url.connect(async_nats::ConnectOptions::new()).await?;
    let js = jetstream::new(client);
    js.get_or_create_stream(jetstream::stream::Config {
        name: stream.to_string(),
        subjects: vec![subject.to_string()],
        ..Default::default()
    })
    .await?;
    let payload = bytes::Bytes::from_static(b"0123456789abcdef");
    let mut acks = std::collections::VecDeque::new();
    for _ in 0..n {
        acks.push_back(js.publish(subject.to_string(), payload.clone()).await?);
        // Under the context's limit of acks in flight (5,000), past which
        // `publish` waits for one of them: held here, it would never come.
        if acks.len() >= 1_000
            && let Some(a) = acks.pop_front()
        {
            a.await?;
        }
    }
    for a in acks {
        a.await?;
    }
    let info = js.get_stream(stream).await?.get_info().await?;
    Ok(info.state.last_sequence)
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

/// Waits for the next message; fails when none comes for 10 s (messages
/// were dropped, or the server stopped delivering), instead of hanging.
async fn stalled<T>(
    next: impl std::future::Future<Output = Option<T>>,
    got: u64,
    total: u64,
) -> Result<Option<T>> {
    tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .map_err(|_| anyhow::anyhow!("no message for 10 s at {got} of {total}"))
}

/// Reads the `total` messages of `stream` once with a fresh consumer
/// `name` on the caller's runtime; returns messages per second.
async fn consume(
    url: &Server,
    stream: &str,
    total: u64,
    pull: Pull,
    with_decode: bool,
    name: &str,
) -> Result<f64> {
    // Room for every message of the pull requests in flight: a full
    // subscription drops what arrives (a slow consumer).
    let client = url
        .connect(async_nats::ConnectOptions::new().subscription_capacity(1 << 20))
        .await?;
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
                let Some(m) = stalled(msgs.next(), got, total).await? else {
                    break;
                };
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
                let Some(m) = stalled(sub.next(), got, total).await? else {
                    break;
                };
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
