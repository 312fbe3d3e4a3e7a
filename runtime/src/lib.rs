//! Gridwatch's service runtime, written once and used by ingest, the
//! backend and the simulator (the model stays free of I/O):
//!
//! - [`config`]: typed configuration, layered defaults → TOML file →
//!   `GRIDWATCH__…` environment variables → flags; unknown keys rejected.
//! - [`telemetry`]: `tracing` with `RUST_LOG`.
//! - [`shutdown`]: one root `CancellationToken` cancelled on SIGINT or
//!   SIGTERM, and the bound on how long a service may take to stop.
//! - [`nats`]: connect options (retry, reconnect forever, count
//!   disconnections), with the service's NKey and TLS.
//! - [`nats_auth`]: the NATS users, their permissions and their keys.
//! - [`publish`]: a JetStream publish retried until stored or cancelled.
//! - [`registry`]: the registry from a file, or the Beilun one built in.
//! - [`metrics`]: the Prometheus recorder, HELP for every metric, process
//!   metrics, ingest's figures, and a `/metrics` server.
//! - [`error`]: the crate's error.

pub mod config;
pub mod error;
pub mod metrics;
pub mod nats;
pub mod nats_auth;
pub mod publish;
pub mod registry;
pub mod shutdown;
pub mod telemetry;

pub use error::RuntimeError;
