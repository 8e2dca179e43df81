//! # lstm-ae
//!
//! Streaming anomaly detection built on the composite LSTM autoencoder of
//! Srivastava et al. (2015): one encoder, a reconstruction decoder and a
//! prediction decoder. A Rust trainer fits the model and exports it to ONNX;
//! ONNX Runtime runs it for offline scoring and in the daemon.
//!
//! ## Layout
//!
//! Layers point down only: `app` → `serve` / `eval` → `kafka` / `infer` /
//! `train` / `score` → `model` / `stream` / `data` / `feedback` / `report` /
//! `telemetry`.
//! `config` defines the typed settings from the types of the layers below
//! it; `serve` and `kafka` take their own sections of it (never the whole
//! [`config::Settings`]), and only `app` loads it. `cli` is parsing only,
//! read by `app`.
//!
//! - [`app`]: every command (`train`, `retrain`, `recalibrate`, `models`,
//!   `inspect`, `score`, `serve`, `demo`, `produce`, `healthcheck`, `eval`),
//!   the training pipeline they share, the offline scoring of `score`, and
//!   their presentation.
//! - [`cli`]: the subcommands and their flags, parsed; nothing more.
//! - [`config`]: settings: built-in defaults < file < environment; validated.
//! - [`serve`]: the Kafka daemon: ingest, inference threads, sink, hot
//!   reload, drain, the per-series outputs (gauges and the remote-write
//!   client); one entry point ([`serve::Daemon`]) taking its own slice of
//!   the settings ([`serve::DaemonConfig`]).
//! - [`eval`]: benchmark evaluation (NAB scoring, the `eval nab` driver and
//!   report; labelled-file metrics).
//! - [`kafka`]: every Kafka client the project builds (the daemon's
//!   consumer and producer, the history reader, the replay producer, the
//!   demo's printer), so the security settings reach all of them.
//! - [`infer`]: the ONNX Runtime backend (library discovery, sessions)
//!   behind the [`infer::Backend`] trait.
//! - [`train`]: LSTM forward/backward over ndarray, the composite model, Adam,
//!   the training loop and threshold calibration.
//! - [`score`]: the anomaly decision: raw model errors into anomaly scores
//!   (anomaly likelihood, incidents, contributors) and output records,
//!   shared by the daemon and offline scoring.
//! - [`model`]: [`model::ModelSpec`], the parameters, `manifest.json` and its
//!   threshold rule, ONNX export, the versioned model store — the one place
//!   that knows the graph.
//! - [`stream`]: the daemon's Kafka-independent core: message codec, per-key
//!   windower, batching policy and the offset commit rule.
//! - [`feedback`]: operator marks (false positive, incident, maintenance)
//!   over a key and a time range: the record, its validation, and the
//!   bounded set a reader keeps.
//! - [`data`]: CSV series loading, timestamps, labels, windowing and scaling.
//! - [`report`]: SVG charts for training and scoring reports.
//! - [`telemetry`]: Prometheus metrics, the HTTP endpoints and logging setup.

// `deny`, not `forbid`: ndarray's `s!` macro expands to an item marked
// `#[allow(unsafe_code)]`, which `forbid` rejects. No code of ours is unsafe.
#![deny(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
pub mod data;
pub mod eval;
pub mod feedback;
pub mod infer;
pub mod kafka;
pub mod model;
pub mod report;
pub mod score;
pub mod serve;
pub mod stream;
pub mod telemetry;
pub mod train;

/// The thread count a `threads`-style setting means: `n`, or one per core
/// when `n` is 0 (every such setting follows this rule); 1 when the core
/// count cannot be read.
pub fn threads_or_cores(n: usize) -> usize {
    match n {
        0 => std::thread::available_parallelism().map_or(1, |c| c.get()),
        n => n,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn zero_threads_means_one_per_core_and_anything_else_itself() {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        assert_eq!(super::threads_or_cores(0), cores);
        assert_eq!(super::threads_or_cores(3), 3);
    }
}
