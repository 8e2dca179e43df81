//! `lstm-ae train` end to end: CSV → chronological split → scaler fitted on
//! the training rows → windows → fit → validation scores → threshold →
//! ONNX export → bundle. The CLI adds progress display and the report.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::config::Settings;
use crate::data::{self, CsvOptions, FillRule, Scaler, Series, TimestampOrder};
use crate::model::manifest::{
    Manifest, OnnxInfo, ScoreSummary, Threshold, TrainingData, TrainingSummary, FORMAT_VERSION,
};
use crate::model::onnx::{export_bytes, ExportInfo, OPSET};
use crate::model::{bundle, Bundle, BundleError, ModelSpec};
use crate::train::calibrate::{self, CalibrationError};
use crate::train::fit::{self, Dataset, Fitted, Progress};

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] data::DataError),
    #[error(transparent)]
    Spec(#[from] crate::model::SpecError),
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

/// CSV reading options from the settings.
pub fn csv_options(s: &Settings) -> CsvOptions {
    CsvOptions {
        timestamp_column: (!s.data.timestamp_column.is_empty())
            .then(|| s.data.timestamp_column.clone()),
        feature_columns: (!s.data.feature_columns.is_empty())
            .then(|| s.data.feature_columns.clone()),
        fill: match s.data.fill.as_str() {
            "previous" => FillRule::Previous,
            "linear" => FillRule::Linear,
            _ => FillRule::Error,
        },
        timestamp_order: if s.data.timestamp_order == "file" {
            TimestampOrder::Unchecked
        } else {
            TimestampOrder::Increasing
        },
    }
}

/// Scaled, time-major windows at `starts`, with their horizon targets.
pub fn dataset(scaled: &ndarray::Array2<f32>, starts: &[usize], spec: &ModelSpec) -> Dataset {
    let p = spec.target_horizon();
    Dataset {
        x: data::gather_time_major(scaled.view(), starts, spec.window),
        future: data::gather_horizon_time_major(scaled.view(), starts, spec.window, p),
    }
}

/// Everything a training run produced.
pub struct Trained {
    pub bundle: Bundle,
    pub fitted: Fitted,
    pub series: Series,
    /// Validation windows' starts and scores (scaled units).
    pub validation_starts: Vec<usize>,
    pub validation_scores: Vec<f64>,
    pub scaled: ndarray::Array2<f32>,
    pub split_row: usize,
}

/// Trains on `data_path` and writes the bundle to `out`.
pub fn train_bundle(
    settings: &Settings,
    data_path: &Path,
    out: &Path,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<Trained, TrainError> {
    let started = Instant::now();
    let mut series = data::load_csv(data_path, &csv_options(settings))?;
    let rows = settings.data.max_rows;
    if rows > 0 && rows < series.rows() {
        series.values = series.values.slice(ndarray::s![..rows, ..]).to_owned();
        series.timestamps.truncate(rows);
    }
    let spec = settings.model.spec(series.features());
    spec.validate()?;
    let split = data::chronological_split(
        series.rows(),
        spec.window,
        spec.target_horizon(),
        settings.data.stride,
        settings.data.validation_fraction,
    )?;
    // The scaler sees only training rows: validation must look like unseen data.
    let scaler = Scaler::fit(
        settings.data.scaler.clone(),
        series.values.slice(ndarray::s![..split.split_row, ..]),
    );
    let scaled = scaler.transform(series.values.view());
    let train = dataset(&scaled, &split.train, &spec);
    let validation = dataset(&scaled, &split.validation, &spec);
    tracing::info!(
        file = %data_path.display(),
        rows = series.rows(),
        train_windows = train.len(),
        validation_windows = validation.len(),
        "training"
    );
    let fitted = fit::fit(
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
    let model_id = if settings.bundle.model_id.is_empty() {
        data_path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into())
    } else {
        settings.bundle.model_id.clone()
    };
    let info = ExportInfo {
        spec: &spec,
        scaler_offset: &scaler.offset,
        scaler_scale: &scaler.scale,
        model_id: &model_id,
        model_version: settings.bundle.model_version,
        metadata: vec![("lstm_ae.threshold".into(), threshold.to_string())],
    };
    let onnx = export_bytes(&fitted.params, &info);
    let last = fitted.history.last().copied();
    let best = fitted
        .history
        .iter()
        .find(|h| h.epoch == fitted.best_epoch)
        .copied();
    let mean = if scores.is_empty() {
        0.0
    } else {
        scores.iter().sum::<f64>() / scores.len() as f64
    };
    let mut manifest = Manifest {
        format_version: FORMAT_VERSION,
        model_id,
        model_version: settings.bundle.model_version,
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
        validation_scores: ScoreSummary {
            count: scores.len(),
            mean,
            quantiles: if scores32.is_empty() {
                vec![]
            } else {
                calibrate::score_quantiles(&scores32)
            },
        },
        training_data: TrainingData {
            file: data_path
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: series.sha256.clone(),
            rows: series.rows(),
            train_rows: split.split_row,
            validation_rows: series.rows() - split.split_row,
            train_windows: split.train.len(),
            validation_windows: split.validation.len(),
            stride: settings.data.stride,
            first_timestamp: series
                .timestamps
                .first()
                .map(|&t| data::format_timestamp(t))
                .unwrap_or_default(),
            last_timestamp: series
                .timestamps
                .last()
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
    };
    Bundle::write(out, &mut manifest, &onnx)?;
    let bundle = Bundle::open(out)?;
    Ok(Trained {
        bundle,
        fitted,
        series,
        validation_starts: split.validation,
        validation_scores: scores,
        scaled,
        split_row: split.split_row,
    })
}

/// The default place of a bundle's report images.
pub fn report_dir(out: &Path) -> PathBuf {
    out.join(bundle::REPORT_DIR)
}
