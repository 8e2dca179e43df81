//! The model: its spec, its parameters, the bundle's `manifest.json` and the
//! ONNX export. This is the one place that knows the graph.

pub mod bundle;
pub mod manifest;
pub mod onnx;
pub mod params;
pub mod real;
pub mod spec;
pub mod store;
pub mod threshold;

pub use bundle::{Bundle, BundleError};
pub use manifest::Manifest;
pub use params::Params;
pub use spec::{Activation, DecoderInput, Mode, ModelSpec, SpecError};
pub use threshold::{Fallback, ThresholdRule};

/// Types generated from `proto/onnx.proto` (see `build.rs`).
#[allow(clippy::all, missing_docs)]
pub mod onnx_pb {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}
