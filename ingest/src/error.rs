//! The ingest crate's errors.

/// Everything that can stop ingest.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("NATS: {0}")]
    Nats(String),
    #[error("checkpoint {path}: {message}")]
    Checkpoint { path: String, message: String },
    #[error(transparent)]
    Runtime(#[from] gridwatch_runtime::RuntimeError),
    #[error("polars: {0}")]
    Polars(#[from] polars::error::PolarsError),
}

impl IngestError {
    /// Wraps any NATS client error.
    pub fn nats(e: impl std::fmt::Display) -> Self {
        IngestError::Nats(e.to_string())
    }
}
