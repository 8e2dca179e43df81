//! Benchmark evaluation: turning a detector's per-row anomaly scores into the
//! published benchmark numbers, so results are comparable with other detectors.
//!
//! - [`nab`]: the Numenta Anomaly Benchmark: its scoring rule and file
//!   formats, the `lstm-ae eval nab` driver, the tuning/report split and the
//!   report.
//! - [`labelled`]: `lstm-ae eval labelled`'s metrics (point-wise, ranking,
//!   range-based; state and alert readings) and report, for any labelled CSVs.

pub mod labelled;
pub mod nab;
