//! `gridwatch-backend`: REST, WebSocket, health and metrics over the node
//! states ingest publishes.

use clap::Parser;
use gridwatch_backend::Config;
use gridwatch_runtime::config::{self, path_value};
use gridwatch_runtime::{shutdown, telemetry};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "Gridwatch backend: live state over HTTP and WebSocket"
)]
struct Args {
    /// NATS server URL [default: nats://127.0.0.1:4222].
    #[arg(long)]
    nats: Option<String>,
    /// Configuration file (TOML).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// Registry file [default: the committed Beilun registry].
    #[arg(long)]
    registry: Option<PathBuf>,
    /// Directory of the built frontend [default: frontend/dist].
    #[arg(long)]
    static_dir: Option<PathBuf>,
    /// The users file (gridwatch-admin writes it; SIGHUP reloads it).
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// Ingest's `<data-dir>/history`, for history queries and SQL.
    #[arg(long)]
    history_dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    // A query worker (see `history::worker`): no runtime, no server.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).and_then(|a| a.to_str()) == Some(gridwatch_backend::history::worker::ARG) {
        return gridwatch_backend::history::worker::main(&args[2..]);
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve())
}

async fn serve() -> anyhow::Result<()> {
    telemetry::init_tracing();
    let a = Args::parse();
    let cfg: Config = config::load(
        a.config.as_deref(),
        &[
            ("nats", a.nats),
            ("listen", a.listen),
            ("registry", path_value(a.registry.as_deref())),
            ("static_dir", path_value(a.static_dir.as_deref())),
            ("users_file", path_value(a.users_file.as_deref())),
            ("history_dir", path_value(a.history_dir.as_deref())),
        ],
    )?;
    let limit = Duration::from_secs(cfg.shutdown_s);
    let token = shutdown::on_signals();
    let serve = gridwatch_backend::run(cfg, token.clone(), None);
    shutdown::run_or_exit(&token, limit, serve).await?;
    Ok(())
}
