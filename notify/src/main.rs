//! `gridwatch-notify`: hourly DingTalk digests of open incidents and
//! supervision orders, one per responsible group, until 16:00.

use clap::Parser;
use gridwatch_notify::Config;
use gridwatch_runtime::config::{self, path_value};
use gridwatch_runtime::{shutdown, telemetry};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "Gridwatch notify: hourly DingTalk reminders of open incidents and orders"
)]
struct Args {
    /// NATS server URL [default: nats://127.0.0.1:4222].
    #[arg(long)]
    nats: Option<String>,
    /// Configuration file (TOML): hours, groups, robots.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Registry file [default: the committed Beilun registry].
    #[arg(long)]
    registry: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Print what went out on a local day (from the reminders stream) and
    /// exit.
    Report {
        /// The local day, YYYY-MM-DD.
        #[arg(long)]
        date: chrono::NaiveDate,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_tracing();
    let a = Args::parse();
    let cfg: Config = config::load(
        a.config.as_deref(),
        &[
            ("nats", a.nats),
            ("registry", path_value(a.registry.as_deref())),
        ],
    )?;
    if let Some(Cmd::Report { date }) = a.cmd {
        return report(&cfg, date).await;
    }
    let limit = Duration::from_secs(cfg.shutdown_s);
    let token = shutdown::on_signals();
    if let Some(listen) = cfg.metrics_listen.clone() {
        let addr = gridwatch_runtime::metrics::serve(&listen, token.clone()).await?;
        tracing::info!(%addr, "metrics at /metrics");
    }
    let service = gridwatch_notify::service::run(cfg, token.clone());
    shutdown::run_or_exit(&token, limit, service).await?;
    Ok(())
}

async fn report(cfg: &Config, date: chrono::NaiveDate) -> anyhow::Result<()> {
    let reg = gridwatch_runtime::registry::load(cfg.registry.as_deref())?;
    let creds = gridwatch_runtime::nats::Creds {
        nkey_file: cfg.nats_nkey_file.clone(),
        ca_file: cfg.nats_ca_file.clone(),
    };
    let (client, _) =
        gridwatch_runtime::nats::connect(&cfg.nats, &creds, "gridwatch-notify-report").await?;
    let js = async_nats::jetstream::new(client);
    let day = date.format("%Y-%m-%d").to_string();
    let got = gridwatch_notify::report::read_day(&js, &cfg.reminders_stream, &day).await?;
    print!("{}", gridwatch_notify::report::summary(&reg, &day, &got));
    Ok(())
}
