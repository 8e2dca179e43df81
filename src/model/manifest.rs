//! `manifest.json`: everything a bundle's user needs besides the weights —
//! the spec, feature names, scaler, threshold, provenance and training
//! figures — and the checks that it agrees with `model.onnx`.

use serde::{Deserialize, Serialize};

use super::ModelSpec;
use crate::data::Scaler;
use crate::train::calibrate::{Fallback, ThresholdRule};
use crate::train::fit::{EpochStats, LossRecord, StopReason};

/// Bumped when a field changes meaning; readers refuse newer formats.
pub const FORMAT_VERSION: u32 = 1;

/// The anomaly threshold and how it was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub rule: ThresholdRule,
    /// Score at which a window is anomalous; `normalized = score / value`.
    pub value: f32,
    /// Set when `rule` could not be applied to the validation scores (POT
    /// with too few of them): the rule that set `value` instead, and why.
    /// Absent in manifests written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

/// Summary of the validation windows' scores the threshold came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreSummary {
    pub count: usize,
    pub mean: f64,
    /// `(quantile, score)` pairs.
    pub quantiles: Vec<(f64, f64)>,
}

/// Where the training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingData {
    pub file: String,
    pub sha256: String,
    pub rows: usize,
    pub train_rows: usize,
    pub validation_rows: usize,
    pub train_windows: usize,
    pub validation_windows: usize,
    pub stride: usize,
    /// First and last timestamps, RFC 3339.
    pub first_timestamp: String,
    pub last_timestamp: String,
}

/// How training went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingSummary {
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub stopped: StopReason,
    pub final_train_loss: LossRecord,
    pub final_validation_loss: LossRecord,
    pub best_validation_loss: LossRecord,
    pub seconds: f64,
    pub seed: u64,
    pub history: Vec<EpochStats>,
}

/// The model file's identity, so a swapped or corrupted file is noticed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnnxInfo {
    pub file: String,
    pub sha256: String,
    pub opset: i64,
    pub outputs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub model_id: String,
    pub model_version: i64,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub trainer_version: String,
    pub spec: ModelSpec,
    pub feature_names: Vec<String>,
    pub scaler: Scaler,
    pub threshold: Threshold,
    pub validation_scores: ScoreSummary,
    pub training_data: TrainingData,
    pub training: TrainingSummary,
    pub onnx: OnnxInfo,
}
