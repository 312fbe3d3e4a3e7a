//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).

/// Starts `tracing`. Safe to call twice (the second call does nothing).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).try_init();
}
