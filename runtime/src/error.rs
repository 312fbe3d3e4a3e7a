//! The runtime's errors.

/// What can go wrong setting a service up or stopping it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The configuration file is unreadable, or a key is unknown or mistyped.
    #[error("configuration: {0}")]
    Config(String),
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The registry is not valid.
    #[error(transparent)]
    Registry(#[from] gridwatch_model::registry::RegistryError),
    /// The NATS connection could not be set up.
    #[error("NATS: {0}")]
    Nats(String),
    /// Shutdown was asked for and the service had not stopped in time.
    #[error("did not stop within {0} s of the shutdown signal")]
    ShutdownTimedOut(u64),
    /// Cancelled before the work was done.
    #[error("cancelled")]
    Cancelled,
}
