//! `lstm-ae score`, offline scoring: every window of a CSV through a
//! bundle's model in ONNX Runtime, one score per row (the window ending at
//! that row), normalised by the bundle's threshold, and the series' anomaly
//! likelihood (`[postprocess]`). The decision is the daemon's own
//! [`Scorer`], fed the windows in order as one key, so the offline and
//! streaming answers are one piece of code, incidents included.

use std::path::Path;

use anyhow::Context;

use crate::cli::ScoreArgs;
use crate::config::{AnomalySettings, Settings};
use crate::data::{self, CsvOptions, DataError, Series};
use crate::infer::{Backend, InferError, OnnxBackend};
use crate::model::Bundle;
use crate::score::{
    AnomalyRule, Incident, IncidentConfig, IncidentState, PostprocessError, Scorer, ScorerConfig,
    WindowScore,
};

/// `lstm-ae score`: scores the file, writes the scored CSV and its charts,
/// prints the incidents (and, with `--labels`, which labelled windows the
/// anomalous windows caught).
pub fn run(a: ScoreArgs) -> anyhow::Result<()> {
    // clap asks for one of the two.
    let file = a
        .data
        .clone()
        .or_else(|| a.file.clone())
        .context("score needs the CSV to score: --data FILE")?;
    let bundle = Bundle::open(&a.model)?;
    let s = super::settings::load_for_bundle(a.config.as_deref(), &a.csv, &bundle.manifest)?;
    let (series, filled) = load_for_bundle(&bundle, &file, &s.data.csv_options())?;
    let mut backend = OnnxBackend::load_from_memory(&bundle.onnx, &s.runtime.backend_options())?;
    let mut scored = score_series(&bundle, &mut backend, series, &s)?;
    scored.filled = filled;
    let out = a.out.unwrap_or_else(|| {
        let stem = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        file.with_file_name(format!("{stem}.scored.csv"))
    });
    write_csv(&scored, &out).with_context(|| format!("writing {}", out.display()))?;
    let title = file
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (series_svg, score_svg) = charts(&scored, &title);
    let svg_path = out.with_extension("svg");
    let score_path = out.with_extension("score.svg");
    std::fs::write(&svg_path, series_svg)
        .with_context(|| format!("writing {}", svg_path.display()))?;
    std::fs::write(&score_path, score_svg)
        .with_context(|| format!("writing {}", score_path.display()))?;
    let windows = scored.scores.iter().flatten().count();
    let anomalous = (0..scored.scores.len())
        .filter(|&r| scored.is_anomaly(r) == Some(true))
        .count();
    let rule = match s.anomalies.rule {
        AnomalyRule::Threshold => format!("score ≥ threshold {:.5}", scored.threshold),
        AnomalyRule::Likelihood => format!("likelihood ≥ {}", s.anomalies.likelihood_threshold),
    };
    println!(
        "scored {windows} windows of {} with model {} v{}: {} in {} ({rule}; an incident closes after {} normal windows)",
        file.display(),
        bundle.manifest.model_id,
        bundle.manifest.model_version,
        super::count(anomalous, "anomalous window", "anomalous windows"),
        super::count(scored.incidents.len(), "incident", "incidents"),
        s.anomalies.close_after,
    );
    for i in scored.incidents.iter().take(20) {
        let peak = match (s.anomalies.rule, i.peak.likelihood) {
            (AnomalyRule::Likelihood, Some(l)) => format!("peak likelihood {l:.3}"),
            _ => format!("peak {:.2}× threshold", i.peak.normalized),
        };
        // The peak window's row with the largest error: where the
        // stretch's cause is, rather than the windows that contain it.
        let ts = &scored.series.timestamps;
        let error_peak = ts
            .iter()
            .position(|&t| t == i.peak.end_ts_ms)
            .and_then(|r| scored.peak_row.get(r).copied().flatten())
            .map(|p| format!("; error peaks at {}", crate::data::format_timestamp(ts[p])))
            .unwrap_or_default();
        println!(
            "  incident {} .. {}  {}, {peak} at {}{error_peak}{}",
            crate::data::format_timestamp(i.first_end_ts_ms),
            crate::data::format_timestamp(i.last_end_ts_ms),
            super::count(i.windows, "anomalous window", "anomalous windows"),
            crate::data::format_timestamp(i.peak.end_ts_ms),
            if scored.open_at_end.contains(&i.id) {
                " (still open at the end of the file)"
            } else {
                ""
            }
        );
    }
    if scored.gaps > 0 {
        println!(
            "  {} gap{} in time (a step over windowing.max_gap_steps = {} typical steps): no window spans one",
            scored.gaps,
            if scored.gaps == 1 { "" } else { "s" },
            s.windowing.max_gap_steps,
        );
    }
    if scored.incidents.len() > 20 {
        println!(
            "  … {} more (anomalous windows in {})",
            scored.incidents.len() - 20,
            out.display()
        );
    }
    if let Some(labels) = &a.labels {
        print_labelled(&scored, &file, labels)?;
    }
    println!(
        "wrote {}, {}, {}",
        out.display(),
        svg_path.display(),
        score_path.display()
    );
    Ok(())
}

/// Prints each labelled window of `file` and whether a detection fell in it.
fn print_labelled(scored: &Scored, file: &Path, labels: &Path) -> anyhow::Result<()> {
    let all = crate::data::labels::load_windows(labels)?;
    let Some((_, windows)) = crate::data::labels::windows_for(&all, file) else {
        println!(
            "labels: {} has no entry for {}",
            labels.display(),
            file.display()
        );
        return Ok(());
    };
    let ts = &scored.series.timestamps;
    let mut caught = 0;
    for &(a, b) in windows {
        let hit =
            (0..ts.len()).find(|&r| ts[r] >= a && ts[r] <= b && scored.is_anomaly(r) == Some(true));
        if hit.is_some() {
            caught += 1;
        }
        println!(
            "  labelled {} .. {}: {}",
            crate::data::format_timestamp(a),
            crate::data::format_timestamp(b),
            match hit {
                Some(r) => format!("detected at {}", crate::data::format_timestamp(ts[r])),
                None => "missed".into(),
            }
        );
    }
    println!("labelled windows detected: {caught} of {}", windows.len());
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error("{}: its columns [{}] do not include the bundle's features [{}] (model {})", file.display(), columns.join(", "), features.join(", "), model)]
    Columns {
        file: std::path::PathBuf,
        columns: Vec<String>,
        features: Vec<String>,
        model: String,
    },
    #[error("--features (data.feature_columns) names {} columns [{}], but model {model} reads {} features [{}]", given.len(), given.join(", "), features.len(), features.join(", "))]
    FeatureCount {
        given: Vec<String>,
        features: Vec<String>,
        model: String,
    },
    #[error("{}: {rows} rows, but model {model} needs at least one window of {window} rows", file.display())]
    TooShort {
        file: std::path::PathBuf,
        rows: usize,
        window: usize,
        model: String,
    },
    #[error("{}: no {window} consecutive rows without a gap in time: {gaps} gaps (steps over windowing.max_gap_steps = {max_gap_steps} typical steps) leave at most {longest} rows in a row; set LSTM_AE__WINDOWING__MAX_GAP_STEPS to a larger number, or 0 to window across gaps", file.display())]
    GapsShorterThanWindow {
        file: std::path::PathBuf,
        gaps: usize,
        longest: usize,
        window: usize,
        max_gap_steps: u32,
    },
    #[error("model {0} is a predict-only bundle: it has no reconstruction decoder, so no anomaly score; train it with --mode composite or --mode reconstruct (model.mode) to score")]
    NoScore(String),
    #[error("the model returned no `score` output")]
    MissingScore,
    #[error(transparent)]
    Postprocess(#[from] PostprocessError),
}

/// Scores of a whole series; index = row. Rows before the first full window
/// have no score.
pub struct Scored {
    pub series: Series,
    pub scores: Vec<Option<f32>>,
    pub threshold: f32,
    /// Anomaly likelihood per row, from the `[postprocess]` state machine.
    pub likelihood: Vec<Option<f64>>,
    /// The scorer's decision per row (under [`Rule`]).
    pub anomalous: Vec<Option<bool>>,
    /// Which of the two decides [`Scored::is_anomaly`].
    pub rule: Rule,
    /// The series' incidents, in time order, as the daemon's anomalies
    /// topic would give them: each closed one as of its close, and those
    /// still open at the last row as of that row.
    pub incidents: Vec<Incident>,
    /// Ids of the incidents still open at the last row.
    pub open_at_end: Vec<String>,
    /// Per row, how many of its cells `data.fill` filled (empty: none).
    pub filled: Vec<u32>,
    /// Gaps in time no window spans (`windowing.max_gap_steps`).
    pub gaps: usize,
    /// Per row, the row of the window ending there with the largest
    /// reconstruction error (summed over features): where in the window
    /// the error is. A row is scored by the whole window ending at it, so
    /// a short spike makes a stretch up to T rows long; this points back
    /// to the spike. `None` before the first window, or when the model
    /// gives no per-cell error.
    pub peak_row: Vec<Option<usize>>,
}

/// The anomaly decision, as `[anomalies]` configures the daemon's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub rule: AnomalyRule,
    pub likelihood_threshold: f64,
    /// `anomalies.close_after`: normal windows that close an incident.
    pub close_after: usize,
}

impl Rule {
    /// The rule `[anomalies]` configures.
    pub fn of(a: &AnomalySettings) -> Self {
        Rule {
            rule: a.rule,
            likelihood_threshold: a.likelihood_threshold,
            close_after: a.close_after,
        }
    }
}

impl Scored {
    pub fn normalized(&self, row: usize) -> Option<f32> {
        self.scores[row].map(|s| s / self.threshold)
    }

    pub fn is_anomaly(&self, row: usize) -> Option<bool> {
        self.anomalous[row]
    }

    /// `(first row, last row)` of each run of anomalous rows.
    pub fn anomalous_stretches(&self) -> Vec<(usize, usize)> {
        let mut out = vec![];
        let mut start = None;
        for row in 0..self.scores.len() {
            match (self.is_anomaly(row) == Some(true), start) {
                (true, None) => start = Some(row),
                (false, Some(s)) => {
                    out.push((s, row - 1));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push((s, self.scores.len() - 1));
        }
        out
    }
}

/// Loads the CSV with the bundle's feature columns, refusing a file whose
/// columns don't match; with it, per row, how many cells were filled. Feature columns in `opts` (`--features`) name the
/// file's columns that feed the model's features, in the model's order.
pub fn load_for_bundle(
    bundle: &Bundle,
    path: &Path,
    opts: &CsvOptions,
) -> Result<(Series, Vec<u32>), ScoreError> {
    let m = &bundle.manifest;
    let features = match &opts.feature_columns {
        Some(given) if given.len() != m.feature_names.len() => {
            return Err(ScoreError::FeatureCount {
                given: given.clone(),
                features: m.feature_names.clone(),
                model: m.model_id.clone(),
            })
        }
        Some(given) => given.clone(),
        None => m.feature_names.clone(),
    };
    let opts = CsvOptions {
        feature_columns: Some(features),
        ..opts.clone()
    };
    match data::load_csv_marking_filled(path, &opts) {
        Ok(s) => Ok(s),
        Err(DataError::UnknownColumn { available, .. }) => Err(ScoreError::Columns {
            file: path.to_path_buf(),
            columns: available,
            features: m.feature_names.clone(),
            model: m.model_id.clone(),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Windows per inference call: large enough to amortise the call, small
/// enough to keep memory flat on long series.
pub const BATCH: usize = 256;

/// Scores every window (stride 1) of `series` that spans no gap in time
/// longer than `windowing.max_gap_steps` typical steps (the daemon's rule,
/// with the file's median step; 0: windows across any step), deciding as
/// `[anomalies]` and `[postprocess]` of `s` configure the daemon.
pub fn score_series(
    bundle: &Bundle,
    backend: &mut dyn Backend,
    series: Series,
    s: &Settings,
) -> Result<Scored, ScoreError> {
    let (post, rule, max_gap_steps) = (
        &s.postprocess,
        Rule::of(&s.anomalies),
        s.windowing.max_gap_steps,
    );
    let m = &bundle.manifest;
    if !m.spec.mode.has_reconstruction() {
        return Err(ScoreError::NoScore(m.model_id.clone()));
    }
    let t = m.spec.window;
    if series.rows() < t {
        return Err(ScoreError::TooShort {
            file: series.path.clone(),
            rows: series.rows(),
            window: t,
            model: m.model_id.clone(),
        });
    }
    let runs = data::gapless_runs(&series.timestamps, max_gap_steps);
    let starts: Vec<usize> = runs
        .iter()
        .flat_map(|r| data::window_starts(r.start, r.end, t, 0, 1))
        .collect();
    if starts.is_empty() {
        return Err(ScoreError::GapsShorterThanWindow {
            file: series.path.clone(),
            gaps: runs.len() - 1,
            longest: runs.iter().map(|r| r.len()).max().unwrap_or(0),
            window: t,
            max_gap_steps,
        });
    }
    let mut scorer = Scorer::new(
        ScorerConfig {
            rule: rule.rule,
            likelihood_threshold: rule.likelihood_threshold,
            top_contributors: 0,
            incidents: IncidentConfig {
                close_after: rule.close_after,
                update_every: 0,
            },
            max_keys: 1,
            key_ttl_ms: u64::MAX,
            postprocess: post.clone(),
            track_likelihood: true,
        },
        m,
    )?;
    let f = m.spec.features;
    let flat: Vec<f32> = series.values.iter().copied().collect();
    let rows = series.rows();
    let mut scores = vec![None; rows];
    let mut likelihood = vec![None; rows];
    let mut anomalous = vec![None; rows];
    let mut peak_row = vec![None; rows];
    let mut incidents = vec![];
    let version = m.model_version.to_string();
    for chunk in starts.chunks(BATCH) {
        let x = data::gather_batch_major(series.values.view(), chunk, t);
        let out = backend.infer(x.view())?;
        let s = out.score.ok_or(ScoreError::MissingScore)?;
        for (b, (&start, &v)) in chunk.iter().zip(s.iter()).enumerate() {
            let end = start + t - 1;
            let forecast: Option<Vec<f32>> = out
                .prediction
                .as_ref()
                .map(|p| p.index_axis(ndarray::Axis(0), b).iter().copied().collect());
            let w = WindowScore {
                key: "",
                start_ts_ms: series.timestamps[start],
                end_ts_ms: series.timestamps[end],
                timestamps: &series.timestamps[start..=end],
                values: &flat[start * f..(end + 1) * f],
                score: v,
                squared_error: &[],
                prediction: forecast.as_deref(),
                expected: &[],
                model_version: &version,
            };
            let d = scorer.decide(&w, 0);
            if let Some(se) = &out.squared_error {
                let window = se.index_axis(ndarray::Axis(0), b);
                let row_error = |i: usize| window.row(i).sum();
                peak_row[end] = (0..window.nrows())
                    .max_by(|&i, &j| row_error(i).total_cmp(&row_error(j)))
                    .map(|i| start + i);
            }
            scores[end] = Some(v);
            likelihood[end] = d.likelihood;
            anomalous[end] = Some(d.anomalous.is_some());
            if let Some(e) = d.incident.filter(|e| e.state == IncidentState::Close) {
                incidents.push(e.incident);
            }
        }
    }
    let still_open: Vec<Incident> = scorer.open().cloned().collect();
    let open_at_end = still_open.iter().map(|i| i.id.clone()).collect();
    incidents.extend(still_open);
    incidents.sort_by_key(|i| i.first_end_ts_ms);
    Ok(Scored {
        series,
        scores,
        threshold: m.threshold.value,
        likelihood,
        anomalous,
        rule,
        incidents,
        open_at_end,
        filled: vec![],
        gaps: runs.len() - 1,
        peak_row,
    })
}

/// Writes `timestamp, <features…>, score, normalized_score,
/// anomaly_likelihood, is_anomaly` (under the configured rule), `filled`
/// (how many of the row's cells `data.fill` filled: the row the score's
/// window ends at), `peak_row_ts` (the time of the window's row with the
/// largest error, [`Scored::peak_row`]). New columns go at the end, so a
/// reader of the earlier ones by position is not broken.
pub fn write_csv(scored: &Scored, out: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    let s = &scored.series;
    writeln!(
        w,
        "timestamp,{},score,normalized_score,anomaly_likelihood,is_anomaly,filled,peak_row_ts",
        s.feature_names.join(",")
    )?;
    for row in 0..s.rows() {
        write!(w, "{}", data::format_timestamp(s.timestamps[row]))?;
        for v in s.values.row(row) {
            write!(w, ",{v}")?;
        }
        match scored.scores[row] {
            Some(sc) => write!(
                w,
                ",{sc},{},{},{}",
                sc / scored.threshold,
                scored.likelihood[row]
                    .map(|l| l.to_string())
                    .unwrap_or_default(),
                scored.is_anomaly(row) == Some(true)
            )?,
            None => write!(w, ",,,,")?,
        }
        write!(w, ",{}", scored.filled.get(row).copied().unwrap_or(0))?;
        let peak = scored.peak_row.get(row).copied().flatten();
        writeln!(
            w,
            ",{}",
            peak.map(|p| data::format_timestamp(s.timestamps[p]))
                .unwrap_or_default()
        )?;
    }
    w.flush()
}

/// The series (every feature, one line each) with anomalous stretches
/// shaded, and the normalised score below the same time axis, as two SVG
/// charts.
pub fn charts(scored: &Scored, title: &str) -> (String, String) {
    use crate::report::svg::{line_chart, LineChart, Series as Line, PALETTE};
    let s = &scored.series;
    let ts = |r: usize| s.timestamps[r] as f64;
    let shaded: Vec<(f64, f64)> = scored
        .anomalous_stretches()
        .iter()
        .map(|&(a, b)| (ts(a), ts(b)))
        .collect();
    // Several features on their own scales would flatten all but the
    // widest: each is drawn standardised (mean 0, spread 1 over the file),
    // so the one that jumped shows. One feature keeps its own units.
    let f = s.features();
    let standardise = |c: usize| -> (f64, f64) {
        if f == 1 {
            return (0.0, 1.0);
        }
        let col = s.values.column(c);
        let finite: Vec<f64> = col
            .iter()
            .map(|&v| f64::from(v))
            .filter(|v| v.is_finite())
            .collect();
        let n = finite.len().max(1) as f64;
        let mean = finite.iter().sum::<f64>() / n;
        let sd = (finite.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        (mean, if sd > 0.0 { sd } else { 1.0 })
    };
    let lines: Vec<Line> = (0..f)
        .map(|c| {
            let (mean, sd) = standardise(c);
            Line {
                label: s.feature_names[c].clone(),
                points: (0..s.rows())
                    .map(|r| (ts(r), (f64::from(s.values[[r, c]]) - mean) / sd))
                    .collect(),
                color: PALETTE[c % PALETTE.len()],
            }
        })
        .collect();
    let (what, y_label) = if f == 1 {
        (s.feature_names[0].clone(), s.feature_names[0].clone())
    } else {
        (
            format!("{f} features (standardised)"),
            "value (standardised per feature)".to_string(),
        )
    };
    let series_chart = line_chart(&LineChart {
        title: format!("{title}: {what} with anomalous windows shaded"),
        x_label: "time".into(),
        y_label,
        series: lines,
        shaded_x: shaded.clone(),
        x_is_time_ms: true,
        ..LineChart::default()
    });
    let score_chart = line_chart(&LineChart {
        title: format!("{title}: normalised score (1 = threshold)"),
        x_label: "time".into(),
        y_label: "score / threshold".into(),
        series: vec![Line {
            label: "normalised score".into(),
            points: (0..s.rows())
                .filter_map(|r| scored.normalized(r).map(|n| (ts(r), n as f64)))
                .collect(),
            color: "#d62728",
        }],
        shaded_x: shaded,
        hlines: vec![(1.0, "threshold".into())],
        x_is_time_ms: true,
        ..LineChart::default()
    });
    (series_chart, score_chart)
}
