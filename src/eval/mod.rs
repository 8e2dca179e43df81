//! Benchmark evaluation: turning a detector's per-row anomaly scores into the
//! published benchmark numbers, so results are comparable with other detectors.
//!
//! - [`nab`]: the Numenta Anomaly Benchmark — its labels, profiles and result
//!   layout, the windowed scoring rule, the threshold sweep and the
//!   normalised score.
//! - [`run`]: `lstm-ae eval nab`, the streaming evaluation driver (train on
//!   the probation, score causally, write NAB's results tree).
//! - [`split`]: the fixed tuning/report split and the scores of each half.
//! - [`report`]: the evaluation report (per-category scores and windows hit,
//!   missed and false positives, scoreboard, charts of the worst series).

pub mod nab;
pub mod report;
pub mod run;
pub mod split;
