//! Benchmark evaluation: turning a detector's per-row anomaly scores into the
//! published benchmark numbers, so results are comparable with other detectors.
//!
//! - [`nab`]: the Numenta Anomaly Benchmark — its labels, profiles and result
//!   layout, the windowed scoring rule, the threshold sweep and the
//!   normalised score.

pub mod nab;
