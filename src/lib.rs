//! # lstm-ae
//!
//! Streaming anomaly detection built on the composite LSTM autoencoder of
//! Srivastava et al. (2015): one encoder, a reconstruction decoder and a
//! prediction decoder. A Rust trainer fits the model and exports it to ONNX;
//! ONNX Runtime runs it for offline scoring and in the daemon.
//!
//! ## Layout
//!
//! - [`app`]: the commands and their presentation, above every library module.
//! - [`cli`]: the subcommands (`train`, `score`, `inspect`, …) and their flags.
//! - [`config`]: settings: built-in defaults < file < environment; validated.
//! - [`data`]: CSV series loading, windowing and scaling, shared by train and score.
//! - [`model`]: [`model::ModelSpec`], the parameters, `manifest.json`, ONNX export —
//!   the one place that knows the graph.
//! - [`train`]: LSTM forward/backward over ndarray, the composite model, Adam,
//!   the training loop and threshold calibration.
//! - [`infer`]: the ONNX Runtime backend (library discovery, sessions) and scoring.
//! - [`stream`]: the daemon's Kafka-independent core: message codec, per-key
//!   windower, batching policy and the offset commit rule.
//! - [`eval`]: benchmark evaluation (NAB scoring, the `eval nab` driver and report).
//! - [`score`]: streaming post-processing of raw model errors into anomaly
//!   scores (anomaly likelihood, refractory period), shared with the daemon.
//! - [`report`]: SVG charts for training and scoring reports.
//! - [`serve`]: the Kafka daemon: ingest, inference thread, sink, offsets, shutdown.
//! - [`telemetry`]: Prometheus metrics, the HTTP endpoints and logging setup.

// `deny`, not `forbid`: ndarray's `s!` macro expands to an item marked
// `#[allow(unsafe_code)]`, which `forbid` rejects. No code of ours is unsafe.
#![deny(unsafe_code)]

pub mod app;
pub mod cli;
pub mod config;
pub mod data;
pub mod eval;
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
