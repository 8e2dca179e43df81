//! Offline scoring (`lstm-ae score`): every window of a CSV through a
//! bundle's model in ONNX Runtime, one score per row (the window ending at
//! that row), normalised by the bundle's threshold, and the series' anomaly
//! likelihood (`[postprocess]`, as the daemon computes it per key).

use std::path::Path;

use crate::config::AnomalyRule;
use crate::data::{self, CsvOptions, DataError, Series};
use crate::infer::{Backend, InferError};
use crate::model::Bundle;
use crate::score::{prediction_errors, PostprocessConfig, PostprocessError, Postprocessor};

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
    #[error("{}: {rows} rows, but model {model} needs at least one window of {window} rows", file.display())]
    TooShort {
        file: std::path::PathBuf,
        rows: usize,
        window: usize,
        model: String,
    },
    #[error("model {0} is a predict-only bundle: it has no reconstruction decoder, so no anomaly score; train with model.mode = \"composite\" or \"reconstruct\" to score")]
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
    /// Which of the two decides [`Scored::is_anomaly`].
    pub rule: Rule,
}

/// The anomaly decision, as `[anomalies]` configures the daemon's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    pub rule: AnomalyRule,
    pub likelihood_threshold: f64,
}

impl Scored {
    pub fn normalized(&self, row: usize) -> Option<f32> {
        self.scores[row].map(|s| s / self.threshold)
    }

    pub fn is_anomaly(&self, row: usize) -> Option<bool> {
        match self.rule.rule {
            AnomalyRule::Threshold => self.normalized(row).map(|n| n >= 1.0),
            AnomalyRule::Likelihood => {
                self.likelihood[row].map(|l| l >= self.rule.likelihood_threshold)
            }
        }
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
/// columns don't match.
pub fn load_for_bundle(
    bundle: &Bundle,
    path: &Path,
    opts: &CsvOptions,
) -> Result<Series, ScoreError> {
    let m = &bundle.manifest;
    let opts = CsvOptions {
        feature_columns: Some(m.feature_names.clone()),
        ..opts.clone()
    };
    match data::load_csv(path, &opts) {
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

/// Scores every window (stride 1) of `series`.
pub fn score_series(
    bundle: &Bundle,
    backend: &mut dyn Backend,
    series: Series,
    post: &PostprocessConfig,
    rule: Rule,
) -> Result<Scored, ScoreError> {
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
    let starts = data::window_starts(0, series.rows(), t, 0, 1);
    let mut scores = vec![None; series.rows()];
    // forecasts[e]: the P × F forecast (raw) of the window ending at row e.
    let mut forecasts: Vec<Option<Vec<f32>>> = vec![None; series.rows()];
    for chunk in starts.chunks(BATCH) {
        let x = data::gather_batch_major(series.values.view(), chunk, t);
        let out = backend.infer(x.view())?;
        let s = out.score.ok_or(ScoreError::MissingScore)?;
        for (b, (&start, &v)) in chunk.iter().zip(s.iter()).enumerate() {
            scores[start + t - 1] = Some(v);
            if let Some(p) = &out.prediction {
                forecasts[start + t - 1] =
                    Some(p.index_axis(ndarray::Axis(0), b).iter().copied().collect());
            }
        }
    }
    // The likelihood works in scaled units, like the model's score.
    let scaled = m.scaler.transform(series.values.view());
    let f = m.spec.features;
    for fc in forecasts.iter_mut().flatten() {
        for (i, v) in fc.iter_mut().enumerate() {
            *v = (*v - m.scaler.offset[i % f]) * m.scaler.scale[i % f];
        }
    }
    let prediction = prediction_errors(&forecasts, scaled.view(), m.spec.target_horizon());
    let mut pp = Postprocessor::new(post.clone())?;
    let flat: Vec<f32> = series.values.iter().copied().collect();
    let likelihood = (0..series.rows())
        .map(|row| {
            scores[row].map(|s| {
                let p = Some(prediction[row]).filter(|p| p.is_finite());
                let window = &flat[(row + 1 - t) * f..(row + 1) * f];
                pp.push_window(post.combine(f64::from(s), p), window, f)
            })
        })
        .collect();
    Ok(Scored {
        series,
        scores,
        threshold: m.threshold.value,
        likelihood,
        rule,
    })
}

/// Writes `timestamp, <features…>, score, normalized_score,
/// anomaly_likelihood, is_anomaly` (under the configured rule).
pub fn write_csv(scored: &Scored, out: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(out)?);
    let s = &scored.series;
    writeln!(
        w,
        "timestamp,{},score,normalized_score,anomaly_likelihood,is_anomaly",
        s.feature_names.join(",")
    )?;
    for row in 0..s.rows() {
        write!(w, "{}", data::format_timestamp(s.timestamps[row]))?;
        for v in s.values.row(row) {
            write!(w, ",{v}")?;
        }
        match (scored.scores[row], scored.likelihood[row]) {
            (Some(sc), Some(l)) => writeln!(
                w,
                ",{sc},{},{l},{}",
                sc / scored.threshold,
                scored.is_anomaly(row) == Some(true)
            )?,
            _ => writeln!(w, ",,,,")?,
        }
    }
    w.flush()
}

/// The series (first feature) with anomalous stretches shaded, and the
/// normalised score below the same time axis, as two SVG charts.
pub fn charts(scored: &Scored, title: &str) -> (String, String) {
    use crate::report::svg::{line_chart, LineChart, Series as Line};
    let s = &scored.series;
    let ts = |r: usize| s.timestamps[r] as f64;
    let shaded: Vec<(f64, f64)> = scored
        .anomalous_stretches()
        .iter()
        .map(|&(a, b)| (ts(a), ts(b)))
        .collect();
    let series_chart = line_chart(&LineChart {
        title: format!(
            "{title}: {} with anomalous windows shaded",
            s.feature_names[0]
        ),
        x_label: "time".into(),
        y_label: s.feature_names[0].clone(),
        series: vec![Line {
            label: s.feature_names[0].clone(),
            points: (0..s.rows())
                .map(|r| (ts(r), s.values[[r, 0]] as f64))
                .collect(),
            color: "#1f77b4",
        }],
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
