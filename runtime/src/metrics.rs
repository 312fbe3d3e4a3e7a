//! Prometheus metrics, set up once per process: the recorder, a HELP line
//! for every metric the services emit, the standard process metrics
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, open
//! file descriptors, threads, start time), ingest's figures from its
//! statistics record, and a small `/metrics` server for a service without
//! an HTTP API of its own (ingest). `promtool check metrics` finds nothing
//! to say about the output (a test runs it).

use gridwatch_model::stats::IngestStats;
use metrics::{Unit, describe_counter, describe_gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::OnceLock;
use tokio_util::sync::CancellationToken;

use crate::error::RuntimeError;

/// The process's metrics: the recorder's handle and the process collector.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    process: std::sync::Arc<metrics_process::Collector>,
}

impl Metrics {
    /// The text exposition of every metric, process metrics fresh.
    pub fn render(&self) -> String {
        self.process.collect();
        self.handle.render()
    }
}

/// Installs the recorder (once; later calls return the same) and describes
/// every metric.
pub fn install() -> Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            describe();
            let process = metrics_process::Collector::default();
            process.describe();
            Metrics {
                handle,
                process: std::sync::Arc::new(process),
            }
        })
        .clone()
}

fn describe() {
    describe_counter!(
        "gridwatch_notify_digests_total",
        "Reminder digests by where they went: dingtalk, outbox, refused, superseded."
    );
    describe_counter!(
        "gridwatch_notify_retries_total",
        "Sends to a DingTalk robot that failed and are tried again."
    );
    describe_counter!(
        "gridwatch_ingest_events_applied_total",
        "Events applied to the live state."
    );
    describe_counter!(
        "gridwatch_ingest_duplicates_total",
        "Events whose id was seen before, counted once."
    );
    describe_counter!(
        "gridwatch_ingest_redelivered_total",
        "Messages JetStream delivered again, skipped by their sequence."
    );
    describe_counter!(
        "gridwatch_ingest_batches_total",
        "Micro-batches ingest has applied."
    );
    describe_counter!(
        "gridwatch_ingest_dlq_total",
        "Messages sent to the dead-letter stream, by reason."
    );
    describe_counter!(
        "gridwatch_ingest_states_refused_total",
        "Node states the server refused (too large, not permitted), left out."
    );
    describe_counter!(
        "gridwatch_ingest_dead_letters_truncated_total",
        "Dead letters whose payload was cut to fit the server's max_payload."
    );
    describe_counter!(
        "gridwatch_ingest_dead_letters_set_aside_total",
        "Dead letters the server refused, kept in the data dir instead."
    );
    describe_gauge!(
        "gridwatch_ingest_write_failing",
        "1 while writes under ingest's data dir fail (nothing is acked then)."
    );
    describe_gauge!(
        "gridwatch_ingest_checkpoints_set_aside",
        "Unusable checkpoints moved aside at start (the state rebuilt from the stream)."
    );
    describe_gauge!(
        "gridwatch_ingest_consumer_lag",
        "Messages in the event stream not yet delivered to ingest."
    );
    describe_gauge!(
        "gridwatch_ingest_last_seq",
        "The last event-stream sequence every published state reflects."
    );
    describe_gauge!(
        "gridwatch_ingest_checkpoint_seq",
        "The event-stream sequence the last checkpoint covers."
    );
    describe_gauge!(
        "gridwatch_ingest_batch_latency_p50_seconds",
        Unit::Seconds,
        "Median time from a batch's first arrival to its states handed over, recent batches."
    );
    describe_gauge!(
        "gridwatch_ingest_batch_latency_p99_seconds",
        Unit::Seconds,
        "99th percentile of the same."
    );
    describe_gauge!(
        "gridwatch_ingest_stage_busy_seconds",
        Unit::Seconds,
        "Time ingest has spent in each stage since it started."
    );
    describe_gauge!(
        "gridwatch_ingest_held",
        "What ingest's live state holds, by kind (seen ids, open flags, incidents, buckets)."
    );
    describe_counter!(
        "gridwatch_state_updates_total",
        "Node states the backend received from the state bucket."
    );
    describe_gauge!(
        "gridwatch_ws_clients",
        "WebSocket clients connected to the backend."
    );
    describe_counter!(
        "gridwatch_pg_sign_ins_total",
        "Sign-ins over the Postgres protocol by outcome: ok, refused, forbidden."
    );
    describe_counter!(
        "gridwatch_pg_queries_total",
        "Queries run over the Postgres protocol."
    );
    describe_counter!(
        "gridwatch_pg_connections_cut_total",
        "Postgres connections cut for a message past the size bound."
    );
    describe_counter!(
        "gridwatch_ws_frames_sent_total",
        "WebSocket frames the backend sent, by type."
    );
    describe_counter!(
        "gridwatch_ws_snapshots_resent_total",
        "Fresh snapshots sent instead of deltas, by why."
    );
}

/// Records ingest's statistics as metrics.
pub fn record_ingest(m: &IngestStats) {
    metrics::counter!("gridwatch_ingest_events_applied_total").absolute(m.applied);
    metrics::counter!("gridwatch_ingest_duplicates_total").absolute(m.duplicates);
    metrics::counter!("gridwatch_ingest_redelivered_total").absolute(m.redelivered);
    metrics::counter!("gridwatch_ingest_batches_total").absolute(m.batches);
    for (reason, n) in &m.dlq {
        metrics::counter!("gridwatch_ingest_dlq_total", "reason" => reason.clone()).absolute(*n);
    }
    metrics::counter!("gridwatch_ingest_states_refused_total").absolute(m.states_refused);
    metrics::counter!("gridwatch_ingest_dead_letters_truncated_total").absolute(m.dead_truncated);
    metrics::counter!("gridwatch_ingest_dead_letters_set_aside_total").absolute(m.dead_set_aside);
    metrics::gauge!("gridwatch_ingest_write_failing")
        .set(f64::from(u8::from(m.write_error.is_some())));
    metrics::gauge!("gridwatch_ingest_checkpoints_set_aside").set(m.checkpoints_set_aside as f64);
    metrics::gauge!("gridwatch_ingest_consumer_lag").set(m.consumer_lag as f64);
    metrics::gauge!("gridwatch_ingest_last_seq").set(m.last_seq as f64);
    metrics::gauge!("gridwatch_ingest_checkpoint_seq").set(m.checkpoint_seq as f64);
    metrics::gauge!("gridwatch_ingest_batch_latency_p50_seconds")
        .set(m.batch_latency_ms_p50 / 1000.0);
    metrics::gauge!("gridwatch_ingest_batch_latency_p99_seconds")
        .set(m.batch_latency_ms_p99 / 1000.0);
    let h = &m.held;
    for (what, n) in [
        ("seen_ids", h.seen_ids),
        ("open_flags", h.open_flags),
        ("incidents", h.incidents),
        ("buckets", h.buckets),
    ] {
        metrics::gauge!("gridwatch_ingest_held", "what" => what).set(n as f64);
    }
    for (stage, us) in m.stages.stages() {
        metrics::gauge!("gridwatch_ingest_stage_busy_seconds", "stage" => stage)
            .set(us as f64 / 1e6);
    }
}

/// Serves `GET /metrics` on `listen` until `stop`; returns the bound
/// address at once (`:0` picks a free port).
///
/// Fails when the address cannot be bound.
pub async fn serve(listen: &str, stop: CancellationToken) -> Result<SocketAddr, RuntimeError> {
    let m = install();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| RuntimeError::Config(format!("metrics listen {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| RuntimeError::Config(format!("metrics listen {listen}: {e}")))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = m.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    m.render(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the metrics server stopped");
        }
    });
    Ok(addr)
}
