//! Inference with ONNX Runtime: finding and loading the runtime library
//! ([`runtime`]), and running an exported model on batches of windows
//! ([`onnx`]).
//!
//! The rest of the crate talks to models through the [`Backend`] trait, so
//! scoring code does not depend on ONNX Runtime types and tests can swap in
//! another backend.

pub mod onnx;
pub mod runtime;

#[cfg(test)]
pub(crate) mod test_models;

use std::path::PathBuf;

use ndarray::ArrayView3;
use thiserror::Error;

pub use onnx::{BackendOptions, OnnxBackend, Outputs, INPUT_NAME, OUTPUT_NAMES};

/// Runs a model on one batch of windows.
///
/// `Send` so the daemon can move a backend onto its own inference thread;
/// `&mut self` because an ONNX Runtime session is not safe to run from two
/// threads at once.
pub trait Backend: Send {
    /// Runs one batch `[batch, T, F]` (raw units) and returns every output the
    /// model has.
    fn infer(&mut self, window: ArrayView3<'_, f32>) -> Result<Outputs, InferError>;

    /// [`Backend::infer`], then gives back the working memory the runtime
    /// keeps for its next call (ONNX Runtime's arena): for a batch after
    /// which no work waits, so that a daemon whose input slows down or
    /// stops does not keep its peak. By default the same as `infer`.
    fn infer_and_release(&mut self, window: ArrayView3<'_, f32>) -> Result<Outputs, InferError> {
        self.infer(window)
    }
}

/// Everything that can go wrong loading ONNX Runtime, loading a model or
/// running it. Each message is one line that says what to do where it can.
#[derive(Debug, Error)]
pub enum InferError {
    /// No ONNX Runtime library at any place searched.
    #[error(
        "ONNX Runtime library not found (looked in: {}); run scripts/setup.sh or set ORT_DYLIB_PATH",
        join_paths(.looked_in)
    )]
    LibraryNotFound {
        /// Every path tried, in search order.
        looked_in: Vec<PathBuf>,
    },
    /// A library file was found but ONNX Runtime could not be started from it
    /// (not a shared library, wrong version, …).
    #[error(
        "could not load ONNX Runtime from {}: {message}; run scripts/setup.sh or set ORT_DYLIB_PATH",
        .path.display()
    )]
    LibraryLoad {
        /// The library file that failed.
        path: PathBuf,
        /// What ONNX Runtime or the dynamic loader said.
        message: String,
    },
    /// ONNX Runtime is loaded once per process; a later request named
    /// another file.
    #[error(
        "ONNX Runtime is already loaded from {} in this process; cannot switch to {}",
        .loaded.display(),
        .requested.display()
    )]
    LibraryConflict {
        /// The library in use.
        loaded: PathBuf,
        /// The library asked for afterwards.
        requested: PathBuf,
    },
    /// The model file does not exist.
    #[error("model file {} not found", .0.display())]
    ModelNotFound(PathBuf),
    /// ONNX Runtime rejected the model (corrupt file, unsupported operator…).
    #[error("ONNX Runtime could not load the model from {origin}: {source}")]
    ModelLoad {
        /// Where the model came from: a path or "memory".
        origin: String,
        /// ONNX Runtime's error.
        #[source]
        source: ort::Error,
    },
    /// The model loads but does not follow lstm-ae's graph contract (input
    /// `window` `[batch, T, F]` f32; known output names).
    #[error("model does not follow the lstm-ae graph contract: {0}")]
    Contract(String),
    /// The window given does not have the shape the model was exported for.
    #[error("input shape mismatch: model expects window [{expected}], got [{got}]")]
    InputShape {
        /// The model's shape, with `batch` (or `?`) for free dimensions.
        expected: String,
        /// The shape given.
        got: String,
    },
    /// ONNX Runtime failed while running the model.
    #[error("ONNX Runtime failed to run the model: {0}")]
    Run(#[source] ort::Error),
    /// An output came back with an unexpected type or shape.
    #[error("model output `{name}`: {message}")]
    Output {
        /// The output's name.
        name: String,
        /// What was wrong with it.
        message: String,
    },
}

fn join_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "nowhere".to_owned();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
