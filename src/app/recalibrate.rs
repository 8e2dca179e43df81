//! `lstm-ae recalibrate`: re-fits the live version's anomaly threshold on
//! recent scores without retraining the network, and writes the result as
//! a new store version (same weights, new threshold and version number).
//!
//! Every window of the recent history (CSV or Kafka, as `retrain` reads it)
//! is scored by the live model in ONNX Runtime, and the `[calibration]` rule
//! is fitted to those scores. No gate: the network is unchanged, and the
//! new threshold is by construction the rule's answer on recent data.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::feedback::{marked, series_key};
use super::retrain::Promotion;
use super::source::{self, SourceOptions};
use crate::cli::RecalibrateArgs;
use crate::config::Settings;
use crate::data;
use crate::feedback::Verdict;
use crate::infer::{Backend, OnnxBackend};
use crate::model::manifest::{Lineage, Origin, Threshold};
use crate::model::store::Store;
use crate::model::{onnx, Bundle};
use crate::train::calibrate;

/// `lstm-ae recalibrate`: re-fits, writes and (unless `--no-promote`)
/// promotes; prints the old and new threshold.
pub fn run(a: RecalibrateArgs) -> Result<()> {
    let s = super::settings::load(a.config.as_deref(), &a.source.csv)?;
    let opts = RecalibrateOptions {
        store: a.store.clone(),
        source: SourceOptions::from(&a.source),
        promotion: if a.no_promote {
            Promotion::Never
        } else {
            Promotion::IfGatePasses
        },
    };
    let r = recalibrate_store(&s, &opts)
        .with_context(|| format!("recalibrating {}", a.store.display()))?;
    let marks = if r.marked_out + r.false_positives_kept > 0 {
        format!(
            "; {} left out by incident or maintenance marks, {} over the old threshold in false-positive marks",
            r.marked_out, r.false_positives_kept
        )
    } else {
        String::new()
    };
    println!(
        "recalibrate: {} v{} {} (parent v{}): threshold {:.5} → {:.5} ({} rule) on {} recent windows{marks}",
        a.store.display(),
        r.version,
        if r.promoted { "promoted" } else { "kept as candidate" },
        r.parent,
        r.old_threshold,
        r.threshold,
        s.calibration.name(),
        r.windows
    );
    Ok(())
}

pub struct RecalibrateOptions {
    pub store: PathBuf,
    pub source: SourceOptions,
    pub promotion: Promotion,
}

/// What happened.
#[derive(Debug)]
pub struct Recalibrated {
    pub version: i64,
    pub parent: i64,
    pub promoted: bool,
    pub windows: usize,
    pub old_threshold: f32,
    pub threshold: f32,
    /// Windows left out by incident and maintenance marks.
    pub marked_out: usize,
    /// Windows above the old threshold inside false-positive marks.
    pub false_positives_kept: usize,
}

pub fn recalibrate_store(settings: &Settings, opts: &RecalibrateOptions) -> Result<Recalibrated> {
    let store = Store::open(&opts.store)?;
    let parent = store.open_current()?;
    let parent_version = parent.manifest.model_version;
    let spec = parent.manifest.spec.clone();
    let loaded = source::load(settings, &opts.source, spec.features)?;
    let mut backend =
        OnnxBackend::load_from_memory(&parent.onnx, &settings.runtime.backend_options())
            .context("loading the live version into ONNX Runtime")?;
    let marks = super::feedback::marks_for(settings, opts.source.feedback.as_deref())?;
    let old_threshold = parent.manifest.threshold.value;
    let mut scores: Vec<f32> = vec![];
    let (mut marked_out, mut fp_kept) = (0, 0);
    for s in &loaded.series {
        let key = series_key(&s.path);
        let is_marked = |start: usize, verdicts: &[Verdict]| {
            let last = s.timestamps[start + spec.window - 1];
            marks
                .as_ref()
                .is_some_and(|m| marked(m, &key, s.timestamps[start], last, verdicts))
        };
        // Incident and maintenance windows are not the normal data the
        // threshold describes.
        let mut starts = data::window_starts(0, s.rows(), spec.window, 0, 1);
        let all = starts.len();
        starts.retain(|&st| !is_marked(st, &[Verdict::Incident, Verdict::Maintenance]));
        marked_out += all - starts.len();
        for chunk in starts.chunks(super::score::BATCH) {
            let x = data::gather_batch_major(s.values.view(), chunk, spec.window);
            let out = backend.infer(x.view())?;
            let Some(sc) = out.score else {
                bail!("the live model has no reconstruction score to threshold");
            };
            // Every other window counts; one the live threshold flags inside
            // a false-positive mark is what a higher threshold should let
            // pass, and is counted as such.
            fp_kept += chunk
                .iter()
                .zip(sc.iter())
                .filter(|&(&st, &v)| v >= old_threshold && is_marked(st, &[Verdict::FalsePositive]))
                .count();
            scores.extend(sc.iter().copied());
        }
    }
    if scores.is_empty() {
        bail!(
            "the history has no complete window of {} rows to score",
            spec.window
        );
    }
    let calibrated = calibrate::calibrate_or_fall_back(&scores, &settings.calibration)
        .with_context(|| format!("calibrating on {} recent window scores", scores.len()))?;
    let threshold = calibrated.value;
    let version = store.next_version()?;
    let onnx_bytes = onnx::restamp(&parent.onnx, version, threshold)?;
    let mut manifest = parent.manifest.clone();
    manifest.model_version = version;
    manifest.created_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    manifest.threshold = Threshold {
        rule: settings.calibration.clone(),
        value: threshold,
        fallback: calibrated.fallback,
    };
    let scores64: Vec<f64> = scores.iter().map(|&s| f64::from(s)).collect();
    manifest.validation_scores = super::pipeline::summary(&scores64);
    manifest.lineage = Some(Lineage {
        marked_windows_excluded: marked_out,
        false_positive_windows_kept: fp_kept,
        origin: Origin::Recalibrate,
        source: loaded.source,
        parent_version: Some(parent_version),
        warm_start: false,
        excluded_windows: 0,
        gate: None,
    });
    store.add_version(version, |dir| -> Result<()> {
        Bundle::write(dir, &mut manifest, &onnx_bytes)?;
        Bundle::open(dir)?;
        Ok(())
    })?;
    let promoted = opts.promotion != Promotion::Never;
    if promoted {
        store.promote(version, false)?;
    }
    Ok(Recalibrated {
        version,
        parent: parent_version,
        promoted,
        windows: scores.len(),
        old_threshold,
        threshold,
        marked_out,
        false_positives_kept: fp_kept,
    })
}
