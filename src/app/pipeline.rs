//! The training pipeline shared by `train`, `retrain` and `eval labelled`
//! (and the score summary `recalibrate` records):
//! series → chronological split per series (training, validation, and for
//! retrain a held-back recent slice for the promotion gate) → scaler fitted
//! on the training rows → windows → fit (from scratch or warm) → validation
//! scores → threshold → ONNX export → bundle.
//!
//! Several series (the keys of a Kafka topic, pooled) are concatenated into
//! one row array with their boundaries kept: no window crosses from one
//! series into the next, and each series is split by its own time, so every
//! series contributes its most recent rows to validation.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use ndarray::{concatenate, Array2, Axis};

use crate::config::Settings;
use crate::data::{self, Scaler, Series};
use crate::model::manifest::{
    DataRecord, Lineage, Manifest, OnnxInfo, ScoreSummary, Threshold, TrainingData,
    TrainingSummary, FORMAT_VERSION,
};
use crate::model::onnx::{export_bytes, ExportInfo, OPSET};
use crate::model::{bundle, Bundle, BundleError, ModelSpec, Params};
use crate::train::calibrate::{self, CalibrationError};
use crate::train::fit::{self, Dataset, Fitted, Progress};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Spec(#[from] crate::model::SpecError),
    #[error("model.features = {configured} in the settings, but the data has {found} feature columns ({names}); leave model.features at 1 or make them agree")]
    Features {
        configured: usize,
        found: usize,
        names: String,
    },
    #[error("series {key:?} has {found} features, the first series has {expected}")]
    MixedFeatures {
        key: String,
        found: usize,
        expected: usize,
    },
    #[error("no series long enough to train on: each needs at least {need} rows (window + horizon) in its training and validation parts")]
    NoWindows { need: usize },
    #[error("calibrating the threshold on {windows} validation windows: {source}")]
    Calibration {
        windows: usize,
        source: CalibrationError,
    },
    #[error("training diverged: the validation loss was never finite (try a lower training.learning_rate)")]
    Diverged,
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("{0}")]
    Interrupted(String),
}

/// Scaled, time-major windows at `starts`, with their horizon targets.
pub fn dataset(scaled: &Array2<f32>, starts: &[usize], spec: &ModelSpec) -> Dataset {
    let p = spec.target_horizon();
    Dataset {
        x: data::gather_time_major(scaled.view(), starts, spec.window),
        future: data::gather_horizon_time_major(scaled.view(), starts, spec.window, p),
    }
}

/// Series cut into windows, ready to fit.
pub struct Prepared {
    pub spec: ModelSpec,
    /// All series' rows, concatenated (raw units).
    pub series: Series,
    /// Each series' rows in `series`.
    pub bounds: Vec<Range<usize>>,
    pub scaler: Scaler,
    /// `series.values` scaled.
    pub scaled: Array2<f32>,
    /// Window starts (rows of `series`) for training, validation and the gate.
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub gate: Vec<usize>,
    /// First validation row of the first series (for the report).
    pub split_row: usize,
    pub train_rows: usize,
    pub validation_rows: usize,
}

/// Concatenates series (same features) and remembers their bounds.
pub fn concat(mut parts: Vec<Series>) -> Result<(Series, Vec<Range<usize>>), TrainError> {
    let first = parts.remove(0);
    let f = first.features();
    // One range: the first series' rows (not the numbers 0..rows).
    let mut bounds = std::iter::once(0..first.rows()).collect::<Vec<_>>();
    let mut values = vec![first.values.clone()];
    let mut timestamps = first.timestamps.clone();
    let mut filled = first.filled;
    for s in parts {
        if s.features() != f {
            return Err(TrainError::MixedFeatures {
                key: s.path.display().to_string(),
                found: s.features(),
                expected: f,
            });
        }
        let at = timestamps.len();
        bounds.push(at..at + s.rows());
        timestamps.extend_from_slice(&s.timestamps);
        values.push(s.values);
        filled += s.filled;
    }
    let views: Vec<_> = values.iter().map(|v| v.view()).collect();
    let values = concatenate(Axis(0), &views).map_err(|_| TrainError::MixedFeatures {
        key: String::new(),
        found: 0,
        expected: f,
    })?;
    Ok((
        Series {
            values,
            timestamps,
            filled,
            ..first
        },
        bounds,
    ))
}

/// Splits each series by time into training | validation | gate rows
/// (`gate_fraction` of the rows at the end, 0 for `train`), fits the scaler
/// on the training rows and lists the windows of each part.
///
/// A series too short to give windows on both sides is left out (and
/// logged); it is an error only when no series is left.
pub fn prepare(
    settings: &Settings,
    spec: ModelSpec,
    series: Series,
    bounds: Vec<Range<usize>>,
    gate_fraction: f64,
) -> Result<Prepared, TrainError> {
    spec.validate()?;
    let (t, p, stride) = (spec.window, spec.target_horizon(), settings.data.stride);
    let (mut train, mut validation, mut gate) = (vec![], vec![], vec![]);
    let mut train_rows: Vec<usize> = vec![];
    let (mut n_train_rows, mut n_validation_rows, mut split_row) = (0, 0, None);
    let mut last_err = None;
    for b in &bounds {
        let rows = b.end - b.start;
        let gate_rows = ((rows as f64) * gate_fraction).round() as usize;
        let fit_rows = rows - gate_rows.min(rows);
        let split = match data::chronological_split(
            fit_rows,
            t,
            p,
            stride,
            settings.data.validation_fraction,
        ) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(series = b.start, rows, error = %e, "series left out of training");
                last_err = Some(e);
                continue;
            }
        };
        train.extend(split.train.iter().map(|s| s + b.start));
        validation.extend(split.validation.iter().map(|s| s + b.start));
        if gate_rows > 0 {
            gate.extend(data::window_starts(b.start + fit_rows, b.end, t, p, stride));
        }
        train_rows.extend(b.start..b.start + split.split_row);
        n_train_rows += split.split_row;
        n_validation_rows += fit_rows - split.split_row;
        split_row.get_or_insert(b.start + split.split_row);
    }
    if train.is_empty() {
        return Err(match (bounds.len(), last_err) {
            (1, Some(e)) => e.into(),
            _ => TrainError::NoWindows { need: t + p },
        });
    }
    // The scaler sees only training rows: validation must look like unseen data.
    let train_values = series.values.select(Axis(0), &train_rows);
    let scaler = Scaler::fit(settings.data.scaler.clone(), train_values.view());
    let scaled = scaler.transform(series.values.view());
    Ok(Prepared {
        spec,
        series,
        bounds,
        scaler,
        scaled,
        train,
        validation,
        gate,
        split_row: split_row.unwrap_or(0),
        train_rows: n_train_rows,
        validation_rows: n_validation_rows,
    })
}

/// The spec for `series` from the settings, checking `model.features`.
pub fn spec_for(settings: &Settings, series: &Series) -> Result<ModelSpec, TrainError> {
    let configured = settings.model.features;
    if configured != 1 && configured != series.features() {
        return Err(TrainError::Features {
            configured,
            found: series.features(),
            names: series.feature_names.join(", "),
        });
    }
    Ok(settings.model.for_features(series.features()))
}

/// What a fit needs besides the data.
pub struct FitPlan<'a> {
    pub settings: &'a Settings,
    /// Starting weights (warm start); `None` = `Params::init(spec, seed)`.
    pub init: Option<Params<f32>>,
    pub model_id: String,
    pub model_version: i64,
    /// `training_data.file` in the manifest.
    pub data_name: String,
    pub lineage: Option<Lineage>,
}

/// Everything a training run produced.
pub struct Trained {
    pub bundle: Bundle,
    pub fitted: Fitted,
    pub series: Series,
    /// Validation windows' starts and scores (scaled units).
    pub validation_starts: Vec<usize>,
    pub validation_scores: Vec<f64>,
    pub scaled: Array2<f32>,
    pub split_row: usize,
    /// The held-back gate windows (empty for `train`).
    pub gate_starts: Vec<usize>,
}

/// Fits `prep` and writes the bundle into `out`.
pub fn fit_and_write(
    prep: Prepared,
    plan: FitPlan<'_>,
    out: &Path,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<Trained, TrainError> {
    let started = Instant::now();
    let settings = plan.settings;
    let spec = prep.spec.clone();
    let train = dataset(&prep.scaled, &prep.train, &spec);
    let validation = dataset(&prep.scaled, &prep.validation, &spec);
    tracing::info!(
        rows = prep.series.rows(),
        series = prep.bounds.len(),
        train_windows = train.len(),
        validation_windows = validation.len(),
        gate_windows = prep.gate.len(),
        warm_start = plan.init.is_some(),
        "training"
    );
    let init = plan
        .init
        .unwrap_or_else(|| Params::init(&spec, settings.training.seed));
    let fitted = fit::fit_from(
        init,
        &spec,
        &train,
        &validation,
        &settings.training,
        progress,
        stop,
    );
    if fitted.best_epoch == 0 {
        if fitted.history.is_empty() {
            return Err(TrainError::Interrupted(
                "training was interrupted before the first epoch ended; no model written".into(),
            ));
        }
        return Err(TrainError::Diverged);
    }
    let threads = settings.training.thread_count();
    let (val_loss, scores) = fit::evaluate_with_scores(&fitted.params, &spec, &validation, threads);
    let scores32: Vec<f32> = scores.iter().map(|&s| s as f32).collect();
    let calibrated = if spec.mode.has_reconstruction() {
        calibrate::calibrate_or_fall_back(&scores32, &settings.calibration).map_err(|source| {
            TrainError::Calibration {
                windows: scores32.len(),
                source,
            }
        })?
    } else {
        // A predict-only model has no reconstruction score to threshold.
        calibrate::Calibrated {
            value: f32::INFINITY,
            fallback: None,
        }
    };
    let threshold = calibrated.value;
    let scaler = prep.scaler.clone();
    let onnx = export_bytes(
        &fitted.params,
        &ExportInfo {
            spec: &spec,
            scaler_offset: &scaler.offset,
            scaler_scale: &scaler.scale,
            model_id: &plan.model_id,
            model_version: plan.model_version,
            metadata: vec![("lstm_ae.threshold".into(), threshold.to_string())],
        },
    );
    let last = fitted.history.last().copied();
    let best = fitted
        .history
        .iter()
        .find(|h| h.epoch == fitted.best_epoch)
        .copied();
    let series = &prep.series;
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        model_id: plan.model_id,
        model_version: plan.model_version,
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        trainer_version: env!("CARGO_PKG_VERSION").into(),
        spec: spec.clone(),
        feature_names: series.feature_names.clone(),
        scaler,
        threshold: Threshold {
            rule: settings.calibration.clone(),
            value: threshold,
            fallback: calibrated.fallback,
        },
        validation_scores: summary(&scores),
        training_data: TrainingData {
            file: plan.data_name,
            sha256: series.sha256.clone(),
            rows: series.rows(),
            train_rows: prep.train_rows,
            validation_rows: prep.validation_rows,
            train_windows: prep.train.len(),
            validation_windows: prep.validation.len(),
            stride: settings.data.stride,
            first_timestamp: series
                .timestamps
                .iter()
                .min()
                .map(|&t| data::format_timestamp(t))
                .unwrap_or_default(),
            last_timestamp: series
                .timestamps
                .iter()
                .max()
                .map(|&t| data::format_timestamp(t))
                .unwrap_or_default(),
        },
        training: TrainingSummary {
            epochs_run: fitted.history.len(),
            best_epoch: fitted.best_epoch,
            stopped: fitted.stopped,
            final_train_loss: last.map(|h| h.train).unwrap_or_default(),
            final_validation_loss: last.map(|h| h.validation).unwrap_or_default(),
            best_validation_loss: best.map(|h| h.validation).unwrap_or(val_loss.into()),
            seconds: started.elapsed().as_secs_f64(),
            seed: settings.training.seed,
            history: fitted.history.clone(),
        },
        onnx: OnnxInfo {
            file: bundle::MODEL_FILE.into(),
            sha256: String::new(),
            opset: OPSET,
            outputs: bundle::expected_outputs(&spec)
                .iter()
                .map(|s| s.to_string())
                .collect(),
        },
        lineage: plan.lineage,
        data: Some(DataRecord {
            timestamp_column: settings.data.timestamp_column.clone(),
            feature_columns: settings.data.feature_columns.clone(),
            separator: settings.data.separator.clone(),
            fill: settings.data.fill,
            timestamp_order: settings.data.timestamp_order,
        }),
    };
    Bundle::write(out, &mut manifest, &onnx)?;
    let bundle = Bundle::open(out)?;
    Ok(Trained {
        bundle,
        fitted,
        series: prep.series,
        validation_starts: prep.validation,
        validation_scores: scores,
        scaled: prep.scaled,
        split_row: prep.split_row,
        gate_starts: prep.gate,
    })
}

/// Count, mean and quantiles of window scores.
pub fn summary(scores: &[f64]) -> ScoreSummary {
    let scores32: Vec<f32> = scores.iter().map(|&s| s as f32).collect();
    ScoreSummary {
        count: scores.len(),
        mean: if scores.is_empty() {
            0.0
        } else {
            scores.iter().sum::<f64>() / scores.len() as f64
        },
        quantiles: if scores32.is_empty() {
            vec![]
        } else {
            calibrate::score_quantiles(&scores32)
        },
    }
}

/// Trains on the CSV `data_path` and writes the bundle to `out`, as
/// `lstm-ae train` does (also each file of `eval labelled`).
pub fn train_bundle(
    settings: &Settings,
    data_path: &Path,
    out: &Path,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<Trained, TrainError> {
    let mut series = data::load_csv(data_path, &settings.data.csv_options())?;
    let rows = settings.data.max_rows;
    if rows > 0 && rows < series.rows() {
        series.values = series.values.slice(ndarray::s![..rows, ..]).to_owned();
        series.timestamps.truncate(rows);
    }
    let spec = spec_for(settings, &series)?;
    // One range: all of the series' rows.
    let bounds = std::iter::once(0..series.rows()).collect::<Vec<_>>();
    let prep = prepare(settings, spec, series, bounds, 0.0)?;
    tracing::info!(file = %data_path.display(), "training data");
    let model_id = if settings.bundle.model_id.is_empty() {
        file_stem(data_path)
    } else {
        settings.bundle.model_id.clone()
    };
    let plan = FitPlan {
        settings,
        init: None,
        model_id,
        model_version: settings.bundle.model_version,
        data_name: data_path
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        lineage: None,
    };
    fit_and_write(prep, plan, out, progress, stop)
}

/// A path's file name without extension, or `model`.
pub fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into())
}

/// The default place of a bundle's report images.
pub fn report_dir(out: &Path) -> PathBuf {
    out.join(bundle::REPORT_DIR)
}
