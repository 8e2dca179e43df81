//! `manifest.json`: everything a bundle's user needs besides the weights —
//! the spec, feature names, scaler, threshold, provenance and training
//! figures — and the checks that it agrees with `model.onnx`.

use serde::{Deserialize, Serialize};

use super::{Fallback, ModelSpec, ThresholdRule};
use crate::data::{FillRule, Scaler, TimestampOrder};

/// Bumped when a field changes meaning or is added (manifests refuse
/// unknown fields); readers refuse newer formats and read older ones.
/// 2: `lineage` (model store versions) and `threshold.fallback` (small
/// training sets); a binary that reads only format 1 says "upgrade" for
/// these instead of failing on an unknown field. 3: `data` (how the
/// training CSV was read).
pub const FORMAT_VERSION: u32 = 3;

/// The anomaly threshold and how it was set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub rule: ThresholdRule,
    /// Score at which a window is anomalous; `normalized = score / value`.
    /// A predict-only model has no score and so no threshold: infinite
    /// here, `null` in the JSON (which has no infinity).
    #[serde(with = "threshold_value")]
    pub value: f32,
    /// Set when `rule` could not be applied to the validation scores (POT
    /// with too few of them): the rule that set `value` instead, and why.
    /// Absent in manifests written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

/// A threshold value in JSON: a number, or `null` for none (infinite).
mod threshold_value {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f32(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        Ok(Option::<f32>::deserialize(d)?.unwrap_or(f32::INFINITY))
    }
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

/// How the training CSV was read (the `[data]` settings that say so), so
/// that `score` reads a new file of the same kind the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataRecord {
    /// Empty: found by name, else the first column.
    pub timestamp_column: String,
    /// Empty: every column but the timestamp.
    pub feature_columns: Vec<String>,
    pub separator: String,
    pub fill: FillRule,
    pub timestamp_order: TimestampOrder,
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

/// What one epoch did, for progress display and the report.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub train: LossRecord,
    pub validation: LossRecord,
    pub seconds: f64,
}

/// A training loss in a serialisable form.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct LossRecord {
    pub total: f64,
    pub reconstruction: f64,
    pub prediction: f64,
}

/// Why training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Epochs,
    EarlyStopping,
    Interrupted,
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
    /// How this version came to be, for a version in a model store
    /// (`lstm-ae retrain` / `recalibrate`); absent in a bundle written by
    /// `lstm-ae train`, so older manifests still read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lineage: Option<Lineage>,
    /// How the training CSV was read; absent in manifests written before
    /// it existed, which are read with the built-in `[data]` defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataRecord>,
}

/// What made a store version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A network trained from scratch.
    Train,
    /// A network trained on recent history (from scratch or warm-started).
    Retrain,
    /// The parent's network with only the threshold re-fitted.
    Recalibrate,
}

/// Where a version's training data came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum DataSource {
    /// A CSV file (its name and hash are in [`TrainingData`]).
    Csv { path: String },
    /// The daemon's input topics, read without a consumer group.
    Kafka {
        topics: Vec<String>,
        /// `all`, one key, or a glob over keys (`*`, `?`).
        keys: String,
        /// Event-time range asked for, epoch ms (inclusive start, exclusive end).
        since_ms: Option<i64>,
        until_ms: Option<i64>,
        /// Per partition: the offsets read, `[from, to)`.
        partitions: Vec<PartitionRange>,
        /// Series (keys) the data pooled.
        series: usize,
    },
}

/// A partition's offsets read, `[from, to)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionRange {
    pub topic: String,
    pub partition: i32,
    pub from: i64,
    pub to: i64,
}

/// The store provenance of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lineage {
    pub origin: Origin,
    pub source: DataSource,
    /// The version that was current when this one was made.
    pub parent_version: Option<i64>,
    /// Training started from the parent's weights.
    pub warm_start: bool,
    /// Windows left out of training and validation because the parent model
    /// flagged them as anomalous.
    pub excluded_windows: usize,
    /// Windows left out because an operator's mark (docs/feedback.md) calls
    /// their range an incident or maintenance.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub marked_windows_excluded: usize,
    /// Windows the parent model flagged but that were kept, because an
    /// operator's mark calls their range a false positive.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub false_positive_windows_kept: usize,
    /// The promotion gate's verdict; `None` when there was no parent to compare with.
    pub gate: Option<GateResult>,
}

/// The gate's comparison of candidate and current on the held-back slice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateResult {
    pub passed: bool,
    /// Promoted although the gate failed (`--force`).
    pub forced: bool,
    /// One line: why it passed or failed.
    pub reason: String,
    /// Windows of the held-back slice compared.
    pub windows: usize,
    /// Mean squared reconstruction error on the slice's unflagged windows,
    /// in units of the slice's own standard deviation (comparable across
    /// the two models' scalers).
    pub current_loss: f64,
    pub candidate_loss: f64,
    /// Fraction of the slice's windows each model flags (score ≥ its threshold).
    pub current_anomaly_rate: f64,
    pub candidate_anomaly_rate: f64,
    /// The candidate's loss may exceed the current's by this fraction.
    pub loss_tolerance: f64,
    /// The candidate's anomaly rate may exceed the current's by this much (absolute).
    pub anomaly_rate_tolerance: f64,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}
