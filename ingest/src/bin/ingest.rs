//! `gridwatch-ingest`: consumes events from JetStream into exact live state.

use clap::Parser;
use gridwatch_ingest::{Config, clock::ClockMode};
use gridwatch_runtime::config::{self, path_value};
use gridwatch_runtime::{shutdown, telemetry};
use std::path::PathBuf;
use std::time::Duration;

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
    let cfg: Config = config::load(
        a.config.as_deref(),
        &[
            ("nats", a.nats),
            ("data_dir", path_value(a.data_dir.as_deref())),
            ("registry", path_value(a.registry.as_deref())),
            ("clock", a.clock.map(|c| format!("{c:?}").to_lowercase())),
        ],
    )?;
    let limit = Duration::from_secs(cfg.shutdown_s);
    let token = shutdown::on_signals();
    shutdown::run_or_exit(&token, limit, gridwatch_ingest::run(cfg, token.clone())).await?;
    Ok(())
}
