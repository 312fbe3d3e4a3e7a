//! `gridwatch-ingest`: consumes events from JetStream into exact live state.

use clap::Parser;
use gridwatch_ingest::{Config, clock::ClockMode, config, telemetry};
use std::path::PathBuf;

// The processor builds and drops thousands of small strings and vectors per
// batch; glibc's allocator was a third of its time (bench/ANALYSIS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Gridwatch ingest: JetStream → validation → polars aggregates → state"
)]
struct Args {
    /// NATS server URL [default: nats://127.0.0.1:4222].
    #[arg(long)]
    nats: Option<String>,
    /// Configuration file (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Directory for checkpoints and Parquet history [default: gridwatch-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Registry file [default: the committed Beilun registry].
    #[arg(long)]
    registry: Option<PathBuf>,
    /// `wall` (default) or `replay` (now follows the newest event time).
    #[arg(long, value_enum)]
    clock: Option<ClockMode>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_tracing();
    let a = Args::parse();
    let path = |p: Option<PathBuf>| p.map(|p| p.display().to_string());
    let cfg: Config = config::load(
        a.config.as_deref(),
        &[
            ("nats", a.nats),
            ("data_dir", path(a.data_dir)),
            ("registry", path(a.registry)),
            ("clock", a.clock.map(|c| format!("{c:?}").to_lowercase())),
        ],
    )?;
    let shutdown = telemetry::shutdown_on_signals();
    gridwatch_ingest::run(cfg, shutdown).await?;
    Ok(())
}
