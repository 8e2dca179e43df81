//! Streaming post-processing of the model's raw window errors into anomaly
//! scores in `[0, 1]`, shared by the NAB evaluation and (later) the daemon.
//!
//! - [`likelihood`]: the per-key state machine ([`Postprocessor`]) and its
//!   serde-deserialisable configuration ([`PostprocessConfig`]), whose
//!   defaults are the configuration measured best on NAB.

pub mod likelihood;

pub use likelihood::{gaussian_tail, PostprocessConfig, PostprocessError, Postprocessor};
