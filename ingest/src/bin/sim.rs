//! `gridwatch-sim`: publishes a realistic Beilun day into JetStream.

use anyhow::Context;
use chrono::{NaiveDate, NaiveTime};
use clap::Parser;
use gridwatch_ingest::sim::{Pace, SimConfig};
use gridwatch_ingest::{Config, nats};
use gridwatch_runtime::config::{self, path_value};
use gridwatch_runtime::{shutdown, telemetry};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "Gridwatch simulator: a realistic Beilun day on NATS JetStream"
)]
struct Args {
    /// NATS server URL [default: nats://127.0.0.1:4222].
    #[arg(long)]
    nats: Option<String>,
    /// Configuration file (TOML; the ingest settings for stream names).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Registry file [default: the committed Beilun registry].
    #[arg(long)]
    registry: Option<PathBuf>,
    /// Seed: the same seed and date give the same events.
    #[arg(long, default_value_t = 20221015)]
    seed: u64,
    /// Local date to play (YYYY-MM-DD) [default: today, in real time].
    #[arg(long)]
    date: Option<NaiveDate>,
    /// Start of the replay (local HH:MM); earlier events are sent at once.
    #[arg(long)]
    from: Option<NaiveTime>,
    /// Speed-up of simulated time over the wall clock (replay clock).
    #[arg(long, conflicts_with = "rate")]
    speed: Option<f64>,
    /// Fixed rate in events per second (replay clock).
    #[arg(long)]
    rate: Option<f64>,
    /// Share of extra bad events, 0–1.
    #[arg(long, default_value_t = 0.0)]
    bad_share: f64,
    /// Stop after this many messages.
    #[arg(long)]
    limit: Option<usize>,
    /// Days to play, one after another.
    #[arg(long, default_value_t = 1)]
    days: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_tracing();
    let a = Args::parse();
    let cfg: Config = config::load(
        a.config.as_deref(),
        &[
            ("nats", a.nats.clone()),
            ("registry", path_value(a.registry.as_deref())),
        ],
    )?;
    let reg = gridwatch_runtime::registry::load(cfg.registry.as_deref())?;
    let pace = match (a.speed, a.rate) {
        (Some(s), _) => Pace::Speed(s),
        (_, Some(r)) => Pace::Rate(r),
        _ => Pace::RealTime,
    };
    if pace == Pace::RealTime
        && a.date
            .is_some_and(|d| d != gridwatch_model::time::local_date(chrono::Utc::now()))
    {
        anyhow::bail!(
            "a past or future --date needs --speed or --rate (and ingest on --clock replay)"
        );
    }
    if !(0.0..=1.0).contains(&a.bad_share) {
        anyhow::bail!("--bad-share must be between 0 and 1");
    }
    let limit = Duration::from_secs(cfg.shutdown_s);
    let token = shutdown::on_signals();
    let play = async {
        let (client, _) =
            gridwatch_runtime::nats::connect(&cfg.nats, &cfg.nats_creds(), "gridwatch-sim").await?;
        let js = async_nats::jetstream::new(client);
        // A field user may publish events and nothing else: ingest makes
        // the stream. Without users (a bare dev server) the simulator may
        // start first and makes it itself.
        if cfg.nats_nkey_file.is_none() {
            js.get_or_create_stream(nats::events_stream(&cfg))
                .await
                .context("creating the event stream")?;
        }
        let sim = SimConfig {
            seed: a.seed,
            date: a.date,
            from: a.from,
            pace,
            bad_share: a.bad_share,
            limit: a.limit,
            days: a.days,
        };
        anyhow::Ok(gridwatch_ingest::sim::run(js, &reg, sim, token.clone()).await?)
    };
    let sent = shutdown::run_or_exit(&token, limit, play).await?;
    tracing::info!(sent, "simulator done");
    Ok(())
}
