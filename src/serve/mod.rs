//! The Kafka → ONNX Runtime → Kafka daemon behind `lstm-ae serve`, as
//! stages with one owner each:
//!
//! ```text
//! Kafka ─► ingest ──(Batch, bounded by permits)──► inference threads ──(ScoredBatch)──► sink ─► Kafka
//!          ingest.rs: decode, dead letters,        backend.rs: one backend            sink.rs: order, Scorer
//!          windows, batches, offset holds,         per thread (ONNX Runtime),         (score::decision),
//!          rebalances, commit computation          model slot, stall watchdog         produce, acks
//!                                                        ▲
//!                                          reload.rs: poll the store / SIGHUP, load and
//!                                          validate a new version beside the old, swap
//!                                                                                        │
//!          offsets ◄──────────────────────── acks (holds released on delivery) ────────┘
//! ```
//!
//! With `kafka.feedback_topic` set, the operator's marks are read whole
//! before the pipeline starts and followed on a thread (`feedback.rs`); the
//! sink asks them about each window before the incident rule.
//!
//! The sink also hands each scored window's facts to the per-series
//! outputs (`series_outputs.rs`: the `lstm_ae_series_*` gauges of
//! [`series`] and the [`remote_write`] client), neither of which ever makes
//! it wait.
//!
//! [`Daemon`] is the one way in: the settings it reads ([`DaemonConfig`]),
//! optionally a model of the caller's ([`Model`]: a fake backend in tests),
//! then `run` until a shutdown future resolves. `daemon.rs` wires the
//! stages and owns the loop that moves messages, acks, commits and signals
//! between them, and the drain. The Kafka clients come from
//! [`crate::kafka`].
//!
//! ## Bounds and back-pressure
//!
//! Batches between the ingest stage and the sink are bounded by permits
//! (`serve.max_batches_in_flight` + one per inference thread), held from
//! the moment a batch is sent until the sink has taken it out of its
//! reorder buffer: a slow or stuck model stops intake, it never grows
//! memory. Dead letters in flight are bounded by
//! `serve.max_dead_letters_in_flight`. While the loop waits for a permit it
//! still sees signals, acknowledgements and failures. The acknowledgement
//! channel is unbounded on purpose: its length is bounded by the windows in
//! flight, and blocking it could deadlock the loop that drains it.
//!
//! ## Batching
//!
//! A batch goes to the inference threads when it holds `serve.max_batch`
//! windows, when its oldest window has waited `serve.max_wait_ms`, or as
//! soon as every inference thread waits for work: waiting for a fuller
//! batch then only adds latency. So batches are as large as what arrived
//! while the model was busy: single windows when input is sparse, full
//! batches under a backlog, and in between the size that keeps up (dynamic
//! batching).
//!
//! ## Delivery
//!
//! At-least-once for windows: the committed offset of a partition never
//! passes a message whose outputs are not acknowledged, nor a point still in
//! some key's window buffer (see [`crate::stream`]). After a crash, replay
//! rebuilds the buffers and re-scores; windows may repeat. A commit counts
//! as done only when the broker confirms it; a failed one is retried.
//!
//! ## Drain
//!
//! On shutdown: stop consuming, send the pending batch, wait for the sink
//! to finish (every window scored and acknowledged), commit, flush the
//! producer — all by `serve.drain_timeout_ms`. A stage still busy at the
//! deadline (a stuck backend) is abandoned: its windows stay uncommitted
//! and are replayed after the restart.

mod backend;
mod daemon;
mod error;
mod feedback;
pub mod ingest;
mod model;
mod reload;
pub mod remote_write;
pub mod series;
mod series_outputs;
mod sink;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::config::KafkaSettings;
use crate::telemetry::http::{self, Health};
use crate::telemetry::Metrics;
pub use backend::{BackendFactory, ModelSlot, Served};
pub use daemon::{DaemonConfig, Summary};
pub use error::{PipelineError, ServeError};
pub use model::Model;
pub use reload::{Loader, Reload};

/// The daemon, ready to run: `Daemon::new(config)`, then optionally
/// [`Daemon::model`], [`Daemon::metrics`] and [`Daemon::on_listen`], then
/// [`Daemon::run`].
pub struct Daemon {
    config: DaemonConfig,
    model: Option<Model>,
    metrics: Metrics,
    on_listen: Box<dyn FnOnce(SocketAddr) + Send>,
}

impl Daemon {
    /// A daemon serving the bundle or store of `serve.model` with ONNX
    /// Runtime, with metrics of its own.
    pub fn new(config: DaemonConfig) -> Daemon {
        Daemon {
            config,
            model: None,
            metrics: Metrics::new(),
            on_listen: Box::new(|_| {}),
        }
    }

    /// Serves `model` instead of `serve.model` (e.g. a fake backend).
    pub fn model(mut self, model: Model) -> Daemon {
        self.model = Some(model);
        self
    }

    /// Records into `metrics` (the caller reads them as the run goes).
    pub fn metrics(mut self, metrics: Metrics) -> Daemon {
        self.metrics = metrics;
        self
    }

    /// Called with the metrics endpoint's address once it is bound (useful
    /// with port 0).
    pub fn on_listen(mut self, f: impl FnOnce(SocketAddr) + Send + 'static) -> Daemon {
        self.on_listen = Box::new(f);
        self
    }

    /// Binds the metrics endpoint (`/metrics`, `/healthz`, `/readyz`), runs
    /// the pipeline until `shutdown` resolves, drains, and returns what the
    /// run did.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<Summary, ServeError> {
        let Daemon {
            config,
            model,
            metrics,
            on_listen,
        } = self;
        let health = Arc::new(Health::default());
        let addr = config.serve.metrics_listen.clone();
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| ServeError::Listen {
                addr: addr.clone(),
                source,
            })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ServeError::Listen { addr, source })?;
        on_listen(bound);
        tracing::info!(address = %bound, "metrics endpoint: /metrics /healthz /readyz");
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let http_task = tokio::spawn(http::serve(
            listener,
            metrics.clone(),
            health.clone(),
            async {
                let _ = http_stopped.await;
            },
            http::Limits::default(),
        ));
        log_membership(&config.kafka);
        let result = match model.map_or_else(|| Model::open(&config.serve, &config.runtime), Ok) {
            Ok(model) => daemon::run(config, model, metrics, health, shutdown).await,
            Err(e) => Err(e),
        };
        let _ = stop_http.send(());
        let _ = http_task.await;
        result
    }
}

/// Says how this daemon is a member of its group: what a restart costs
/// depends on it (docs/daemon.md, *Restarts and static membership*).
fn log_membership(k: &KafkaSettings) {
    let session_ms = k
        .effective_session_timeout_ms()
        .unwrap_or(k.session_timeout_ms);
    match k
        .consumer_property("group.instance.id")
        .unwrap_or(&k.instance_id)
    {
        "" => tracing::warn!(
            group = %k.group_id,
            session_timeout_ms = session_ms,
            "dynamic group membership: after a crash, this daemon's partitions wait for the broker to expire it; set kafka.instance_id (or POD_NAME/HOSTNAME) for static membership"
        ),
        id => tracing::info!(
            group = %k.group_id,
            instance_id = id,
            session_timeout_ms = session_ms,
            "static group membership: a restart within the session resumes its partitions"
        ),
    }
}
