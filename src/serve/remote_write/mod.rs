//! A Prometheus remote-write client: series offered by the daemon's scoring
//! ([`RemoteWriter::push`]) go through a bounded queue to one sender task
//! that batches them into requests of the standard protocol (1.0) and
//! retries what the receiver may take later.
//!
//! ## The protocol
//!
//! A request is a protobuf `WriteRequest` of `TimeSeries` (labels sorted
//! by name, `__name__` the metric name; float samples with millisecond
//! timestamps; `proto/remote.proto`), compressed with snappy's block format,
//! POSTed with `Content-Encoding: snappy`, `Content-Type:
//! application/x-protobuf` and `X-Prometheus-Remote-Write-Version: 0.1.0`:
//! what Prometheus (`--web.enable-remote-write-receiver`), VictoriaMetrics
//! and Mimir receive (tests/remote_write.rs writes to the first two).
//!
//! ## Bounds, batching, retries
//!
//! The queue holds at most `queue_capacity_samples` samples; an offer that
//! does not fit is dropped whole and counted
//! (`lstm_ae_remote_write_samples_dropped_total{reason="queue_full"}`), so
//! the caller never waits for the receiver. The sender takes up to
//! `max_samples_per_send` samples as soon as that many are queued, or every
//! `flush_interval_ms`, and sends one request at a time (samples of a series
//! stay in time order, which receivers require). A connection error, a
//! timeout (`timeout_ms`), a 5xx or a 429 is retried after a backoff from
//! `min_backoff_ms` doubling up to `max_backoff_ms`, until it succeeds: a
//! receiver that is down for a while gets the oldest queued samples when it
//! is back, and the newest are dropped while the queue is full. Any other
//! status is final: those samples are counted as failed (a receiver refuses
//! a whole request for one sample it does not take, e.g. one older than its
//! head block in Prometheus). The memory held is the queue plus the one
//! request in flight.
//!
//! ## Shutdown
//!
//! [`RemoteWriter::shutdown`] refuses new offers, sends what is queued by
//! its deadline and counts what is left as dropped (`reason="shutdown"`).
//!
//! ## Crates
//!
//! The HTTP client is hyper's (`hyper-util`'s pooled client; hyper 1 is
//! already here under axum), with TLS from OpenSSL (`hyper-openssl`):
//! librdkafka already links the system's OpenSSL for Kafka's TLS, so the
//! process keeps one TLS stack and one set of trusted roots. Protobuf is
//! prost (as for the ONNX export), snappy is `snap` (the Rust port of the
//! reference implementation, pure Rust, maintained by BurntSushi).

mod queue;
mod sender;
mod settings;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use settings::{RemoteWriteSettings, SettingError};

use crate::telemetry::Metrics;

/// Types generated from `proto/remote.proto` (see `build.rs`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
}

use proto::TimeSeries;

/// Remote write could not start.
#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    /// A `[remote_write]` value that cannot work, or a credential that
    /// cannot be read.
    #[error(transparent)]
    Setting(#[from] SettingError),
    /// The TLS setup failed (e.g. an unreadable CA file).
    #[error("remote_write TLS: {0}")]
    Tls(String),
}

/// State shared by the handles and the sender task.
struct Shared {
    queue: Mutex<queue::Queue>,
    /// Wakes the sender: a request's worth is queued.
    batch_ready: Notify,
    max_samples_per_send: usize,
    metrics: Metrics,
    /// `Some(deadline)` once shutting down.
    stop: watch::Sender<Option<Instant>>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, queue::Queue> {
        // A panic while holding the lock cannot leave the queue half
        // changed (each operation is one push or pop), so a poisoned lock
        // is still sound to use.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The handle of a running remote-write client: cheap to clone; offers
/// series without waiting.
#[derive(Clone)]
pub struct RemoteWriter {
    shared: Arc<Shared>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl RemoteWriter {
    /// Starts the client under `settings` (which must be enabled and
    /// valid) on the current Tokio runtime. `env` looks up environment
    /// variables by name (`|n| std::env::var(n).ok()`), for the credentials.
    pub fn start(
        settings: &RemoteWriteSettings,
        env: impl Fn(&str) -> Option<String>,
        metrics: &Metrics,
    ) -> Result<RemoteWriter, RemoteWriteError> {
        settings.validate()?;
        let client = sender::Client::new(settings, settings.authorization(env)?)?;
        let (stop, stop_rx) = watch::channel(None);
        let shared = Arc::new(Shared {
            queue: Mutex::new(queue::Queue::new(settings.queue_capacity_samples)),
            batch_ready: Notify::new(),
            max_samples_per_send: settings.max_samples_per_send,
            metrics: metrics.clone(),
            stop,
        });
        metrics
            .remote_write_queue_capacity
            .set(settings.queue_capacity_samples as i64);
        let task = tokio::spawn(sender::run(
            shared.clone(),
            client,
            sender::Timing::from(settings),
            stop_rx,
        ));
        Ok(RemoteWriter {
            shared,
            task: Arc::new(Mutex::new(Some(task))),
        })
    }

    /// Queues `series` to be sent, all of them or none: `false` when they
    /// do not fit in the queue or the client is shutting down (the samples
    /// are counted as dropped). Never waits.
    pub fn push(&self, series: Vec<TimeSeries>) -> bool {
        let s = &self.shared;
        let m = &s.metrics;
        let result = {
            let mut q = s.queue();
            // Checked under the queue's lock: the sender's last look at the
            // queue, after the stop, then sees every offer it let in.
            if s.stop.borrow().is_some() {
                Err((queue::samples(&series), "shutdown"))
            } else {
                let pushed = q.push(series).map_err(|n| (n, "queue_full"));
                m.remote_write_queue_samples.set(q.len() as i64);
                pushed.map(|()| q.len())
            }
        };
        match result {
            Ok(queued) => {
                if queued >= s.max_samples_per_send {
                    s.batch_ready.notify_one();
                }
                true
            }
            Err((refused, reason)) => {
                m.remote_write_samples_dropped
                    .with_label_values(&[reason])
                    .inc_by(refused as u64);
                false
            }
        }
    }

    /// Samples queued now (not counting the request in flight).
    pub fn queued_samples(&self) -> usize {
        self.shared.queue().len()
    }

    /// Stops taking offers, sends what is queued within `timeout`, counts
    /// the rest as dropped, and returns when the sender has ended. Later
    /// calls (from any handle) return at once.
    pub async fn shutdown(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        self.shared.stop.send_if_modified(|stop| {
            let first = stop.is_none();
            if first {
                *stop = Some(deadline);
            }
            first
        });
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = task {
            // The sender only ends by itself (it never panics on input); a
            // panic would be a bug that must not stop the daemon's drain.
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the remote-write sender ended abnormally");
            }
        }
    }
}
