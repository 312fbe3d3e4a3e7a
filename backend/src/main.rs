//! `gridwatch-backend`: REST, WebSocket, health and metrics over the node
//! states ingest publishes.

use clap::Parser;
use gridwatch_backend::config;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

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
}

fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {},
                        _ = term.recv() => {},
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let a = Args::parse();
    let path = |p: Option<PathBuf>| p.map(|p| p.display().to_string());
    let cfg = config::load(
        a.config.as_deref(),
        &[
            ("nats", a.nats),
            ("listen", a.listen),
            ("registry", path(a.registry)),
            ("static_dir", path(a.static_dir)),
        ],
    )?;
    let shutdown = shutdown_on_signals();
    gridwatch_backend::run(cfg, shutdown, None).await?;
    Ok(())
}
