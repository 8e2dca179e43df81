//! `lstm-ae retrain`: a new version of a model store from recent history,
//! gated before promotion.
//!
//! 1. Data: a CSV (as `train`) or the daemon's input topics
//!    ([`super::source`]: a time range, one key / a glob / all keys pooled,
//!    no consumer group).
//! 2. Each series is split by time into training | validation | a held-back
//!    recent slice (`retrain.gate_fraction`) that only the gate sees.
//! 3. Windows the live model flags (score ≥ its threshold, run in ONNX
//!    Runtime) are left out of training and validation; the manifest counts them.
//! 4. Fit, from scratch or from the live version's weights (`--warm-start`),
//!    with the live version's architecture (a store keeps one window length
//!    and feature set; a new architecture is a new store, made with `train`).
//! 5. The gate ([`gate`]) compares candidate and live on the held-back slice.
//! 6. The version is written into the store (complete, or not at all), then
//!    promoted when the gate passed (`--promote`, the default), never
//!    (`--no-promote`) or even when it failed (`--force`).
//!
//! Same data, settings and seed give the same `model.onnx`, byte for byte.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};
use ndarray::ArrayView2;

use super::feedback::{marked, series_key};
use super::pipeline::{self, FitPlan};
use super::source::{self, SourceOptions};
use crate::cli::RetrainArgs;
use crate::config::Settings;
use crate::data;
use crate::feedback::{Marks, Verdict};
use crate::infer::{Backend, OnnxBackend};
use crate::model::manifest::{GateResult, Lineage, Origin};
use crate::model::store::Store;
use crate::model::{onnx, Bundle};
use crate::train::fit::Progress;

/// `retrain`'s exit code when the gate rejected the candidate.
pub const EXIT_REJECTED: u8 = 3;

/// `lstm-ae retrain`: the settings, then the flags over them; exit code 3
/// when the gate rejected the candidate.
pub fn run(a: RetrainArgs) -> Result<ExitCode> {
    let mut s = super::settings::load(a.config.as_deref(), &a.source.csv)?;
    if let Some(v) = a.epochs {
        s.training.epochs = v;
    }
    if let Some(v) = a.seed {
        s.training.seed = v;
    }
    if let Some(v) = a.hidden {
        s.model.hidden = v;
    }
    if let Some(v) = a.window {
        s.model.window = v;
    }
    if let Some(v) = a.learning_rate {
        s.training.learning_rate = v;
    }
    if let Some(v) = a.threads {
        s.training.threads = v;
    }
    s.validate()?;
    let opts = RetrainOptions {
        store: a.store.clone(),
        source: SourceOptions::from(&a.source),
        warm_start: a.warm_start,
        promotion: if a.force {
            Promotion::Force
        } else if a.no_promote && !a.promote {
            Promotion::Never
        } else {
            Promotion::IfGatePasses
        },
    };
    let stop = super::progress::stop_on_ctrl_c();
    let mut bar = super::progress::Bar::new(s.training.epochs, a.quiet);
    let outcome = retrain_store(&s, &opts, &mut bar, &stop)
        .with_context(|| format!("retraining {}", a.store.display()))?;
    bar.bar.finish_and_clear();
    println!("{}", outcome.summary(&a.store));
    let rejected = outcome.gate.as_ref().is_some_and(|g| !g.passed) && !outcome.promoted;
    Ok(if rejected {
        ExitCode::from(EXIT_REJECTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Whether a passing (or failing) candidate becomes current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promotion {
    /// Promote when the gate passes (the default).
    IfGatePasses,
    /// Keep the new version as a candidate whatever the gate says.
    Never,
    /// Promote even when the gate fails (recorded as forced).
    Force,
}

pub struct RetrainOptions {
    pub store: PathBuf,
    pub source: SourceOptions,
    pub warm_start: bool,
    pub promotion: Promotion,
}

/// What happened, for the one-line summary and the exit code.
#[derive(Debug)]
pub struct Outcome {
    pub version: i64,
    pub parent: Option<i64>,
    pub promoted: bool,
    pub gate: Option<GateResult>,
    pub excluded: usize,
    /// Left out by incident and maintenance marks.
    pub marked_out: usize,
    /// Flagged, but kept by false-positive marks.
    pub false_positives_kept: usize,
    pub train_windows: usize,
    pub seconds: f64,
}

impl Outcome {
    /// `retrain: …` on one line, for cron logs.
    pub fn summary(&self, store: &Path) -> String {
        let gate = match &self.gate {
            None => "no live version to compare with".to_string(),
            Some(g) => format!(
                "gate {}: {}",
                if g.passed { "passed" } else { "FAILED" },
                g.reason
            ),
        };
        let what = match (self.promoted, self.gate.as_ref().is_some_and(|g| !g.passed)) {
            (true, true) => "promoted (forced)",
            (true, false) => "promoted",
            (false, true) => "rejected",
            (false, false) => "kept as candidate",
        };
        let marks = if self.marked_out + self.false_positives_kept > 0 {
            format!(
                ", {} left out by incident or maintenance marks, {} kept as marked false positives",
                self.marked_out, self.false_positives_kept
            )
        } else {
            String::new()
        };
        format!(
            "retrain: {} v{} {what} (parent {}): {gate}; {} training windows, {} excluded as anomalous{marks}, {:.1} s",
            store.display(),
            self.version,
            self.parent
                .map(|p| format!("v{p}"))
                .unwrap_or_else(|| "none".into()),
            self.train_windows,
            self.excluded,
            self.seconds
        )
    }
}

/// Runs a retrain; see the module docs.
pub fn retrain_store(
    settings: &Settings,
    opts: &RetrainOptions,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Result<Outcome> {
    let started = std::time::Instant::now();
    let store = Store::create(&opts.store)?;
    let parent_version = store.current()?;
    let parent = parent_version
        .map(|v| store.open_version(v))
        .transpose()
        .context("opening the live version")?;
    let features = parent
        .as_ref()
        .map(|b| b.manifest.spec.features)
        .unwrap_or(settings.model.features);
    let loaded = source::load(settings, &opts.source, features)?;
    let marks = super::feedback::marks_for(settings, opts.source.feedback.as_deref())?;
    let keys: Vec<String> = loaded.series.iter().map(|s| series_key(&s.path)).collect();
    let (series, bounds) = pipeline::concat(loaded.series)?;
    let spec = match &parent {
        Some(b) => b.manifest.spec.clone(),
        None => pipeline::spec_for(settings, &series)?,
    };
    let mut prep = pipeline::prepare(
        settings,
        spec.clone(),
        series,
        bounds,
        settings.retrain.gate_fraction,
    )?;
    let backend_opts = settings.runtime.backend_options();
    let mut live = parent
        .as_ref()
        .map(|b| OnnxBackend::load_from_memory(&b.onnx, &backend_opts))
        .transpose()
        .context("loading the live version into ONNX Runtime")?;
    let span = spec.window + spec.horizon;
    let marked = |prep: &pipeline::Prepared, set: Set, verdicts: &[Verdict]| -> Vec<bool> {
        prep.set(set)
            .iter()
            .map(|&s| {
                marks.as_ref().is_some_and(|m| {
                    window_marked(
                        m,
                        &keys,
                        &prep.bounds,
                        &prep.series.timestamps,
                        s,
                        span,
                        verdicts,
                    )
                })
            })
            .collect()
    };
    // Incident and maintenance windows are not normal data: out of every
    // set, the gate's included.
    let mut marked_out = 0;
    for set in [Set::Train, Set::Validation, Set::Gate] {
        let hit = marked(&prep, set, &[Verdict::Incident, Verdict::Maintenance]);
        let starts = prep.set_mut(set);
        let before = starts.len();
        let mut it = hit.iter();
        starts.retain(|_| !it.next().copied().unwrap_or(false));
        marked_out += before - starts.len();
    }
    let mut excluded = 0;
    let mut fp_kept = 0;
    if let (Some(b), Some(backend)) = (&parent, live.as_mut()) {
        for set in [Set::Train, Set::Validation] {
            let flags = flagged(backend, b, prep.series.values.view(), prep.set(set))?;
            // A flagged window an operator called a false positive is normal
            // data the live model got wrong: the next model learns it.
            let fp = marked(&prep, set, &[Verdict::FalsePositive]);
            let starts = prep.set_mut(set);
            let mut keep = Vec::with_capacity(starts.len());
            for ((&s, &flag), &fp) in starts.iter().zip(&flags).zip(&fp) {
                match (flag, fp) {
                    (false, _) => keep.push(s),
                    (true, true) => {
                        keep.push(s);
                        fp_kept += 1;
                    }
                    (true, false) => excluded += 1,
                }
            }
            *starts = keep;
        }
        if prep.train.is_empty() || prep.validation.is_empty() {
            bail!("the live model flags every training or validation window of this history as anomalous; nothing left to train on");
        }
    }
    if prep.train.is_empty() || prep.validation.is_empty() {
        bail!("operator marks (incident, maintenance) cover every training or validation window of this history; nothing left to train on");
    }
    let init = match (&parent, opts.warm_start) {
        (Some(b), true) => Some(
            onnx::import_params(&b.onnx, &b.manifest.spec)
                .context("--warm-start: reading the live version's weights")?,
        ),
        (None, true) => {
            tracing::warn!(
                "--warm-start: the store has no live version yet; training from scratch"
            );
            None
        }
        _ => None,
    };
    let version = store.next_version()?;
    let model_id = match &parent {
        Some(b) => b.manifest.model_id.clone(),
        None if !settings.bundle.model_id.is_empty() => settings.bundle.model_id.clone(),
        None => opts
            .store
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into()),
    };
    let train_windows = prep.train.len();
    let lineage = Lineage {
        origin: Origin::Retrain,
        source: loaded.source,
        parent_version,
        warm_start: init.is_some(),
        excluded_windows: excluded,
        marked_windows_excluded: marked_out,
        false_positive_windows_kept: fp_kept,
        gate: None,
    };
    let promotion = opts.promotion;
    let (_, gate_result) =
        store.add_version(version, move |dir| -> Result<Option<GateResult>> {
            let plan = FitPlan {
                settings,
                init,
                model_id,
                model_version: version,
                data_name: loaded.name,
                lineage: Some(lineage),
            };
            let mut trained = pipeline::fit_and_write(prep, plan, dir, progress, stop)?;
            let mut gate_result = None;
            if let (Some(b), Some(backend)) = (&parent, live.as_mut()) {
                let g = gate(
                    settings,
                    backend,
                    b,
                    &trained.bundle,
                    trained.series.values.view(),
                    &trained.gate_starts,
                )?;
                let m = &mut trained.bundle.manifest;
                if let Some(l) = m.lineage.as_mut() {
                    l.gate = Some(GateResult {
                        forced: !g.passed && promotion == Promotion::Force,
                        ..g.clone()
                    });
                }
                Bundle::write(dir, m, &trained.bundle.onnx)?;
                gate_result = Some(g);
            }
            super::train_report::write(&trained, &pipeline::report_dir(dir))
                .with_context(|| format!("writing the report into {}", dir.display()))?;
            Ok(gate_result)
        })?;
    let passed = gate_result.as_ref().is_none_or(|g| g.passed);
    let promoted = match opts.promotion {
        Promotion::Never => false,
        Promotion::Force => true,
        Promotion::IfGatePasses => passed,
    };
    if promoted {
        store.promote(version, true)?;
    }
    Ok(Outcome {
        version,
        parent: parent_version,
        promoted,
        gate: gate_result,
        excluded,
        marked_out,
        false_positives_kept: fp_kept,
        train_windows,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Per window: the model's score and its reconstruction.
struct Scored {
    score: Vec<f32>,
    /// Mean squared reconstruction error in the units `scale` gives.
    loss: Vec<f64>,
}

fn run_windows(
    backend: &mut dyn Backend,
    window: usize,
    values: ArrayView2<f32>,
    starts: &[usize],
    scale: &[f32],
) -> Result<Scored> {
    let mut out = Scored {
        score: Vec::with_capacity(starts.len()),
        loss: Vec::with_capacity(starts.len()),
    };
    for chunk in starts.chunks(super::score::BATCH) {
        let x = data::gather_batch_major(values, chunk, window);
        let o = backend.infer(x.view())?;
        let (Some(score), Some(rec)) = (o.score, o.reconstruction) else {
            bail!("the model has no reconstruction decoder: it cannot score windows");
        };
        out.score.extend(score.iter().copied());
        for (xb, rb) in x.outer_iter().zip(rec.outer_iter()) {
            let mut sum = 0.0f64;
            for ((&a, &b), f) in xb.iter().zip(rb.iter()).zip((0..scale.len()).cycle()) {
                sum += (f64::from((a - b) * scale[f])).powi(2);
            }
            out.loss.push(sum / xb.len().max(1) as f64);
        }
    }
    Ok(out)
}

/// The window sets of a prepared history.
#[derive(Clone, Copy)]
enum Set {
    Train,
    Validation,
    Gate,
}

impl pipeline::Prepared {
    fn set(&self, s: Set) -> &[usize] {
        match s {
            Set::Train => &self.train,
            Set::Validation => &self.validation,
            Set::Gate => &self.gate,
        }
    }
    fn set_mut(&mut self, s: Set) -> &mut Vec<usize> {
        match s {
            Set::Train => &mut self.train,
            Set::Validation => &mut self.validation,
            Set::Gate => &mut self.gate,
        }
    }
}

/// Whether the window of `span` rows at row `start` overlaps a mark of one
/// of `verdicts` for its series. Its range runs from its first row's time
/// to just after its last row's.
fn window_marked(
    marks: &Marks,
    keys: &[String],
    bounds: &[std::ops::Range<usize>],
    timestamps: &[i64],
    start: usize,
    span: usize,
    verdicts: &[Verdict],
) -> bool {
    let Some(i) = bounds.iter().position(|b| b.contains(&start)) else {
        return false;
    };
    let last = (start + span).min(bounds[i].end).saturating_sub(1);
    marked(
        marks,
        &keys[i],
        timestamps[start],
        timestamps[last],
        verdicts,
    )
}

/// Which of the windows at `starts` the live model flags.
fn flagged(
    backend: &mut dyn Backend,
    live: &Bundle,
    values: ArrayView2<f32>,
    starts: &[usize],
) -> Result<Vec<bool>> {
    let m = &live.manifest;
    let s = run_windows(backend, m.spec.window, values, starts, &m.scaler.scale)?;
    Ok(s.score.iter().map(|&v| v >= m.threshold.value).collect())
}

/// The promotion gate. On the held-back slice (the most recent
/// `retrain.gate_fraction` of every series, seen by neither training nor
/// validation):
/// - loss: mean squared reconstruction error over the windows the live
///   model does not flag, both models measured in the candidate's scaled
///   units; the candidate passes if its loss ≤ live × (1 + `loss_tolerance`);
/// - anomaly rate: the fraction of windows each model flags under its own
///   threshold; the candidate passes if its rate ≤ live + `anomaly_rate_tolerance`.
///
/// Both must pass. A slice without windows fails the gate.
pub fn gate(
    settings: &Settings,
    live_backend: &mut dyn Backend,
    live: &Bundle,
    candidate: &Bundle,
    values: ArrayView2<f32>,
    starts: &[usize],
) -> Result<GateResult> {
    let (lt, rt) = (
        settings.retrain.loss_tolerance,
        settings.retrain.anomaly_rate_tolerance,
    );
    let mut result = GateResult {
        passed: false,
        forced: false,
        reason: String::new(),
        windows: starts.len(),
        current_loss: 0.0,
        candidate_loss: 0.0,
        current_anomaly_rate: 0.0,
        candidate_anomaly_rate: 0.0,
        loss_tolerance: lt,
        anomaly_rate_tolerance: rt,
    };
    if starts.is_empty() {
        result.reason =
            "the held-back slice has no windows (raise retrain.gate_fraction or give more history)"
                .into();
        return Ok(result);
    }
    let scale = &candidate.manifest.scaler.scale;
    let mut cand_backend =
        OnnxBackend::load_from_memory(&candidate.onnx, &settings.runtime.backend_options())?;
    let cur = run_windows(
        live_backend,
        live.manifest.spec.window,
        values,
        starts,
        scale,
    )?;
    let cand = run_windows(
        &mut cand_backend,
        candidate.manifest.spec.window,
        values,
        starts,
        scale,
    )?;
    let cur_flags: Vec<bool> = cur
        .score
        .iter()
        .map(|&s| s >= live.manifest.threshold.value)
        .collect();
    let rate = |scores: &[f32], thr: f32| {
        scores.iter().filter(|&&s| s >= thr).count() as f64 / scores.len() as f64
    };
    result.current_anomaly_rate = rate(&cur.score, live.manifest.threshold.value);
    result.candidate_anomaly_rate = rate(&cand.score, candidate.manifest.threshold.value);
    let mean_unflagged = |loss: &[f64]| {
        let v: Vec<f64> = loss
            .iter()
            .zip(&cur_flags)
            .filter(|(_, &f)| !f)
            .map(|(&l, _)| l)
            .collect();
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    result.current_loss = mean_unflagged(&cur.loss);
    result.candidate_loss = mean_unflagged(&cand.loss);
    let loss_ok = result.candidate_loss.is_finite()
        && (!result.current_loss.is_finite()
            || result.candidate_loss <= result.current_loss * (1.0 + lt));
    let rate_ok = result.candidate_anomaly_rate <= result.current_anomaly_rate + rt;
    result.passed = loss_ok && rate_ok;
    let loss_text = format!(
        "loss {} vs live {} (limit +{:.0}%)",
        super::progress::loss(result.candidate_loss),
        super::progress::loss(result.current_loss),
        lt * 100.0
    );
    let rate_text = format!(
        "anomaly rate {:.2}% vs live {:.2}% (limit +{:.2} points)",
        result.candidate_anomaly_rate * 100.0,
        result.current_anomaly_rate * 100.0,
        rt * 100.0
    );
    result.reason = match (loss_ok, rate_ok) {
        (true, true) => format!("{loss_text}, {rate_text} on {} windows", starts.len()),
        (false, true) => format!("worse {loss_text}"),
        (true, false) => format!("worse {rate_text}"),
        (false, false) => format!("worse {loss_text} and {rate_text}"),
    };
    Ok(result)
}
