//! `lstm-ae eval labelled --data DIR --out DIR`: how the detector does on
//! the user's own labelled files. Per CSV under `DIR`: train a bundle on the
//! leading rows exactly as `lstm-ae train` does, score the whole file as
//! `lstm-ae score` does (ONNX Runtime, the configured post-processing), and
//! compare the rows after the training span with the labels
//! ([`crate::eval::labelled`] has the metrics and the report).
//!
//! Labels come from a windows file in NAB's format (`DIR/windows.json` or
//! `--windows`; keys are paths relative to `DIR`), or else from a label
//! column (`label` unless `--label-column` says otherwise; non-zero =
//! anomalous). Every other non-timestamp column is a feature.
//!
//! With `--feedback FILE`, operator marks are labels too, over those of
//! the file: a row an `incident` mark covers is anomalous, a row a
//! `false_positive` mark covers is normal (and counted as known normal);
//! `maintenance` marks say nothing about the model and are ignored. A
//! file's marks are those whose key matches its series key, the file name
//! without extension — what `produce` sends and `retrain` reads.
//!
//! A file that cannot be evaluated (too short, no labels, bad data) is
//! skipped and named, with why, in the output and the report; the run
//! fails (exit 1) only when no file could be evaluated, so one bad file
//! does not cost the figures of the others. A windows-file entry that
//! names no file under `DIR` is an error: its labels would silently count
//! for nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};

use super::pipeline;
use super::score;
use crate::cli::EvalLabelledArgs;
use crate::config::{AnomalyRule, Settings};
use crate::data::labels::{self, LabelledWindows};
use crate::data::{self, CsvOptions};
use crate::eval::labelled::{self, ScoredFile, Skipped, Summary};
use crate::feedback::{Marks, Verdict};
use crate::infer::OnnxBackend;
use crate::train::fit::Quiet;

/// `lstm-ae eval labelled`: evaluates, writes the report, prints the
/// pooled figures of both rules.
pub fn run(a: EvalLabelledArgs) -> Result<()> {
    let mut settings = super::settings::load(a.config.as_deref(), &a.csv)?;
    if let Some(e) = a.epochs {
        settings.training.epochs = e;
        settings.validate()?;
    }
    if !(a.train_fraction > 0.0 && a.train_fraction < 1.0) {
        anyhow::bail!("--train-fraction must be between 0 and 1 (exclusive)");
    }
    let marks = match &a.feedback {
        Some(f) => super::feedback::marks_for(&settings, Some(f))?,
        None => None,
    };
    let opts = Options {
        data: a.data,
        out: a.out,
        settings,
        train: a
            .train_rows
            .map_or(TrainSpan::Fraction(a.train_fraction), TrainSpan::Rows),
        label_column: a.label_column,
        windows: a.windows,
        marks,
    };
    let (summary, written) = evaluate(&opts)?;
    for s in &summary.skipped {
        println!("skipped {}: {}", s.key, s.reason);
    }
    let f = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"));
    for (name, r) in [
        ("state (threshold rule)", &summary.pooled_state),
        ("alert (likelihood rule)", &summary.pooled_alert),
    ] {
        println!(
            "{name:<24} precision {} recall {} F1 {} ROC-AUC {} PR-AUC {}; stretches detected {}/{}, mean delay {} rows",
            f(r.precision),
            f(r.recall),
            f(r.f1),
            f(r.roc_auc),
            f(r.pr_auc),
            r.ranges.detected,
            r.ranges.stretches,
            f(r.mean_delay_rows)
        );
    }
    println!(
        "{} evaluated, {} skipped; report {}",
        super::count(summary.files.len(), "file", "files"),
        summary.skipped.len(),
        written
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}

/// How much of each file the model trains on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrainSpan {
    /// The first N rows.
    Rows(usize),
    /// The first `round(fraction × rows)` rows.
    Fraction(f64),
}

/// What to evaluate and how.
#[derive(Debug)]
pub struct Options {
    pub data: PathBuf,
    pub out: PathBuf,
    /// Training, calibration, anomaly rule and post-processing, as for `train` and `score`.
    pub settings: Settings,
    pub train: TrainSpan,
    /// The label column's name (matched case-insensitively).
    pub label_column: String,
    /// NAB-style windows; default `DIR/windows.json` when it exists.
    pub windows: Option<PathBuf>,
    /// Operator marks read as labels (`--feedback`).
    pub marks: Option<Marks>,
}

/// The CSV files under `dir`, recursively, sorted; `skip` (the output
/// folder, if inside) is left out.
fn csv_files(dir: &Path, skip: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries =
            std::fs::read_dir(&d).with_context(|| format!("reading the folder {}", d.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("reading the folder {}", d.display()))?
                .path();
            if path == skip {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A file's labels and feature columns.
struct Labelled {
    features: Vec<String>,
    labels: Vec<bool>,
    source: String,
    /// Rows a false_positive mark covers (empty without marks).
    known_normal: Vec<bool>,
}

fn read_labels(
    path: &Path,
    key: &str,
    opts: &CsvOptions,
    label_column: &str,
    windows: Option<&LabelledWindows>,
    marks: Option<&Marks>,
) -> Result<Labelled> {
    let all = data::load_csv(
        path,
        &CsvOptions {
            feature_columns: None,
            ..opts.clone()
        },
    )?;
    let label_idx = all
        .feature_names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(label_column));
    let features: Vec<String> = all
        .feature_names
        .iter()
        .enumerate()
        .filter(|&(i, _)| Some(i) != label_idx)
        .map(|(_, n)| n.clone())
        .collect();
    if features.is_empty() {
        bail!(
            "{}: no feature column besides the timestamp and the label '{label_column}'",
            path.display()
        );
    }
    let windowed = windows.and_then(|all_w| labels::windows_for(all_w, Path::new(key)));
    let (mut labels, mut source) = match (windowed, label_idx, marks) {
        (Some((wkey, w)), _, _) => (
            labels::row_labels(&all.timestamps, w),
            format!("windows of '{wkey}'"),
        ),
        (None, Some(i), _) => (
            all.values.column(i).iter().map(|&v| v != 0.0).collect(),
            format!("column '{}'", all.feature_names[i]),
        ),
        (None, None, Some(_)) => (vec![false; all.timestamps.len()], "no labels".into()),
        (None, None, None) => bail!(
            "{}: no labels: no column named '{label_column}' (--label-column), no entry \
             '{key}' in a windows file (--windows, or windows.json in the data folder) and \
             no --feedback marks",
            path.display()
        ),
    };
    let mut known_normal = vec![];
    if let Some(m) = marks {
        let series = super::feedback::series_key(path);
        known_normal = vec![false; labels.len()];
        let (mut incident, mut normal) = (0, 0);
        for (r, &ts) in all.timestamps.iter().enumerate() {
            // An incident mark wins over a false_positive one on the same row.
            if m.covering(&series, ts, Verdict::Incident).is_some() {
                labels[r] = true;
                incident += 1;
            } else if m.covering(&series, ts, Verdict::FalsePositive).is_some() {
                labels[r] = false;
                known_normal[r] = true;
                normal += 1;
            }
        }
        source.push_str(&format!(
            ", then marks of '{series}' ({incident} incident rows, {normal} false_positive rows)"
        ));
    }
    Ok(Labelled {
        features,
        labels,
        source,
        known_normal,
    })
}

/// Trains on the leading span of one file, scores it all, and pairs the
/// scores with the labels.
fn evaluate_one(
    opts: &Options,
    path: &Path,
    key: &str,
    windows: Option<&LabelledWindows>,
) -> Result<ScoredFile> {
    let csv = opts.settings.data.csv_options();
    let l = read_labels(
        path,
        key,
        &csv,
        &opts.label_column,
        windows,
        opts.marks.as_ref(),
    )?;
    let rows = l.labels.len();
    let train_rows = match opts.train {
        TrainSpan::Rows(n) => n,
        TrainSpan::Fraction(f) => (f * rows as f64).round() as usize,
    };
    if train_rows == 0 || train_rows >= rows {
        bail!(
            "{}: {rows} rows; the training span ({train_rows} rows) must leave rows to \
             evaluate (--train-rows or --train-fraction)",
            path.display()
        );
    }
    let mut s = opts.settings.clone();
    s.data.feature_columns = l.features.clone();
    s.data.max_rows = train_rows;
    s.bundle.model_id = path
        .file_stem()
        .map(|x| x.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let bundle_dir = opts.out.join("models").join(labelled::figure_stem(key));
    tracing::info!(file = key, rows, train_rows, labels = %l.source, "training");
    let trained =
        pipeline::train_bundle(&s, path, &bundle_dir, &mut Quiet, &AtomicBool::new(false))
            .with_context(|| {
                format!(
                    "training on the first {train_rows} rows of {}",
                    path.display()
                )
            })?;
    let bundle = trained.bundle;
    let (series, _) = score::load_for_bundle(&bundle, path, &csv)?;
    let mut backend = OnnxBackend::load_from_memory(&bundle.onnx, &s.runtime.backend_options())?;
    let scored = score::score_series(&bundle, &mut backend, series, &s)
        .with_context(|| format!("scoring {}", path.display()))?;
    if scored.series.rows() != rows {
        bail!(
            "{}: {} rows scored but {rows} labelled (the file changed while it was evaluated?)",
            path.display(),
            scored.series.rows()
        );
    }
    let t = &bundle.manifest.threshold;
    let threshold_rule = match &t.fallback {
        None => serde_json::to_string(&t.rule)?,
        Some(f) => format!("{} (fallback)", serde_json::to_string(&f.rule)?),
    };
    Ok(ScoredFile {
        key: key.to_string(),
        timestamps: scored.series.timestamps.clone(),
        values: scored
            .series
            .values
            .column(0)
            .iter()
            .map(|&v| f64::from(v))
            .collect(),
        feature: scored.series.feature_names[0].clone(),
        labels: l.labels,
        normalized: (0..rows)
            .map(|r| scored.normalized(r).map(f64::from))
            .collect(),
        likelihood: scored.likelihood.clone(),
        train_rows,
        threshold_rule,
        labels_from: l.source,
        known_normal: l.known_normal,
    })
}

/// Refuses a windows file with an entry that labels none of the files:
/// a misspelt or misplaced key would otherwise count for nothing, without
/// a word.
fn check_entries(
    windows: &LabelledWindows,
    path: &Path,
    keys: &[String],
    data: &Path,
) -> Result<()> {
    let used: Vec<&str> = keys
        .iter()
        .filter_map(|k| labels::windows_for(windows, Path::new(k)).map(|(entry, _)| entry))
        .collect();
    let unused: Vec<&str> = windows
        .keys()
        .map(String::as_str)
        .filter(|e| !used.contains(e))
        .collect();
    if !unused.is_empty() {
        bail!(
            "{}: {} no CSV file under {} (keys are paths relative to --data; the files are {})",
            path.display(),
            unused
                .iter()
                .map(|e| format!("entry '{e}' names"))
                .collect::<Vec<_>>()
                .join(", "),
            data.display(),
            keys.join(", ")
        );
    }
    Ok(())
}

/// Evaluates every CSV under `opts.data` and writes the report into
/// `opts.out`; returns the summary and the files written.
pub fn evaluate(opts: &Options) -> Result<(Summary, Vec<PathBuf>)> {
    let windows_path = opts.windows.clone().or_else(|| {
        let p = opts.data.join("windows.json");
        p.exists().then_some(p)
    });
    let windows = match &windows_path {
        Some(p) => Some(labels::load_windows(p)?),
        None => None,
    };
    let files = csv_files(&opts.data, &opts.out)?;
    if files.is_empty() {
        bail!("{}: no CSV files to evaluate", opts.data.display());
    }
    let keys: Vec<String> = files
        .iter()
        .map(|path| {
            path.strip_prefix(&opts.data)
                .unwrap_or(path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    if let (Some(w), Some(p)) = (&windows, &windows_path) {
        check_entries(w, p, &keys, &opts.data)?;
    }
    let (mut scored, mut skipped) = (vec![], vec![]);
    for (path, key) in files.iter().zip(&keys) {
        match evaluate_one(opts, path, key, windows.as_ref()) {
            Ok(s) => scored.push(s),
            Err(e) => {
                let reason = format!("{e:#}");
                tracing::warn!(file = %key, %reason, "skipped");
                skipped.push(Skipped {
                    key: key.clone(),
                    reason,
                });
            }
        }
    }
    if scored.is_empty() {
        let reasons: Vec<String> = skipped.iter().map(|s| s.reason.clone()).collect();
        bail!("no file could be evaluated: {}", reasons.join("; "));
    }
    let rule = match opts.settings.anomalies.rule {
        AnomalyRule::Threshold => "threshold",
        AnomalyRule::Likelihood => "likelihood",
    };
    let mut summary =
        labelled::summarise(&scored, rule, opts.settings.anomalies.likelihood_threshold);
    summary.skipped = skipped;
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let written = labelled::write_report(&opts.out, &summary, &scored)?;
    Ok((summary, written))
}
