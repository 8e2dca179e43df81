//! The report of `lstm-ae eval labelled`: `report.md` (one table per
//! reading, the files, the worst files' charts) and `summary.json`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::{alert_of, state_of, stretches, Pick, Reading, ScoredFile, Summary};
use crate::report::svg::{line_chart, LineChart, Series as Line};

/// Files drawn in the report.
pub const WORST_SHOWN: usize = 3;

/// A failure to write the report.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", .path.display())]
pub struct ReportError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.3}"))
}

fn table_row(name: &str, r: &Reading) -> String {
    format!(
        "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} ({}) | {} / {} |\n",
        r.counts.tp + r.counts.fp,
        fmt(r.precision),
        fmt(r.recall),
        fmt(r.f1),
        fmt(r.false_alarm_rate),
        fmt(r.missed_alarm_rate),
        fmt(r.roc_auc),
        fmt(r.pr_auc),
        r.ranges.detected,
        r.ranges.stretches,
        fmt(r.range_recall),
        fmt(r.mean_delay_rows),
        fmt(r.mean_delay_seconds),
    )
}

const TABLE_HEAD: &str = "| file | detections | precision | recall | F1 | false-alarm rate | missed-alarm rate | ROC-AUC | PR-AUC | stretches detected (range recall) | mean delay (rows / s) |\n|---|---|---|---|---|---|---|---|---|---|---|\n";

/// Writes `report.md`, `summary.json` and the worst files' charts into
/// `out`; returns the paths written.
pub fn write_report(
    out: &Path,
    summary: &Summary,
    files: &[ScoredFile],
) -> Result<Vec<PathBuf>, ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| ReportError { path, source }
    };
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures).map_err(io(&figures))?;
    let mut written = vec![];

    let mut md = String::new();
    let _ = writeln!(md, "# Evaluation on labelled data\n");
    let _ = writeln!(
        md,
        "{} files. Each was trained on its leading rows and scored on the rest; only the \
         rest is evaluated. The configured rule is `{}` (likelihood threshold {}).\n",
        summary.files.len(),
        summary.configured_rule,
        summary.likelihood_threshold
    );
    let _ = writeln!(
        md,
        "Two readings of \"anomaly\": **state** — the threshold rule marks every window \
         whose score reaches the calibrated threshold, so a labelled stretch can be \
         detected row by row; **alert** — the likelihood rule fires once per event and \
         then stays quiet, so read its range recall, delay and precision, not its \
         point-wise recall.\n"
    );
    let readings: [(&str, &Reading, Pick); 2] = [
        (
            "State (threshold rule: every anomalous window)",
            &summary.pooled_state,
            state_of,
        ),
        (
            "Alert (likelihood rule: once per event)",
            &summary.pooled_alert,
            alert_of,
        ),
    ];
    for (title, pooled, pick) in readings {
        let _ = writeln!(md, "## {title}\n");
        md.push_str(TABLE_HEAD);
        for e in &summary.files {
            md.push_str(&table_row(&e.key, pick(e)));
        }
        md.push_str(&table_row("**pooled**", pooled));
        md.push('\n');
    }
    let _ = writeln!(md, "## Files\n");
    let _ = writeln!(
        md,
        "| file | rows | training rows | evaluated rows | labelled rows | labelled rows in training | known normal rows (flagged) | labels from | threshold rule |\n|---|---|---|---|---|---|---|---|---|"
    );
    for e in &summary.files {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} |",
            e.key,
            e.rows,
            e.train_rows,
            e.evaluated_rows,
            e.labelled_rows,
            e.labelled_in_training,
            e.known_normal_rows,
            e.known_normal_flagged,
            e.labels_from,
            e.threshold_rule
        );
    }
    md.push('\n');
    if !summary.skipped.is_empty() {
        let _ = writeln!(md, "## Skipped files\n");
        let _ = writeln!(
            md,
            "These could not be evaluated; the figures above leave them out.\n"
        );
        for s in &summary.skipped {
            let _ = writeln!(md, "- {}: {}", s.key, s.reason);
        }
        md.push('\n');
    }

    let worst = summary.worst();
    if !worst.is_empty() {
        let _ = writeln!(
            md,
            "## Where the detector does worst ({} rule)\n",
            summary.configured_rule
        );
    }
    for &i in worst.iter().take(WORST_SHOWN) {
        let (Some(f), e) = (files.get(i), &summary.files[i]) else {
            continue;
        };
        let stem = figure_stem(&e.key);
        let (series, score) = charts(f);
        for (name, svg) in [
            (format!("{stem}.series.svg"), series),
            (format!("{stem}.score.svg"), score),
        ] {
            let path = figures.join(&name);
            std::fs::write(&path, svg).map_err(io(&path))?;
            let _ = writeln!(md, "![{}](figures/{name})\n", e.key);
            written.push(path);
        }
    }

    let path = out.join("report.md");
    std::fs::write(&path, md).map_err(io(&path))?;
    written.insert(0, path);
    let path = out.join("summary.json");
    let json =
        serde_json::to_string_pretty(summary).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    std::fs::write(&path, json).map_err(io(&path))?;
    written.insert(1, path);
    Ok(written)
}

/// A file name for a key: path separators and dots become `_`.
pub fn figure_stem(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The series with labelled stretches shaded, and the score over the
/// threshold with the likelihood, on the same time axis.
fn charts(f: &ScoredFile) -> (String, String) {
    let x = |r: usize| f.timestamps[r] as f64;
    let shaded: Vec<(f64, f64)> = stretches(&f.labels)
        .into_iter()
        .map(|(a, b)| (x(a), x(b)))
        .collect();
    let series = line_chart(&LineChart {
        title: format!("{}: {}, labelled stretches shaded", f.key, f.feature),
        x_label: "time".into(),
        y_label: f.feature.clone(),
        series: vec![Line {
            label: f.feature.clone(),
            points: (0..f.values.len()).map(|r| (x(r), f.values[r])).collect(),
            color: "#1f77b4",
        }],
        shaded_x: shaded.clone(),
        x_is_time_ms: true,
        ..LineChart::default()
    });
    let from = f.train_rows.min(f.labels.len());
    let score = line_chart(&LineChart {
        title: format!("{}: score / threshold and likelihood after training", f.key),
        x_label: "time".into(),
        y_label: "score / threshold; likelihood".into(),
        series: vec![
            Line {
                label: "score / threshold".into(),
                points: (from..f.normalized.len())
                    .filter_map(|r| f.normalized[r].map(|v| (x(r), v)))
                    .collect(),
                color: "#d62728",
            },
            Line {
                label: "likelihood".into(),
                points: (from..f.likelihood.len())
                    .filter_map(|r| f.likelihood[r].map(|v| (x(r), v)))
                    .collect(),
                color: "#2ca02c",
            },
        ],
        shaded_x: shaded,
        hlines: vec![(1.0, "threshold".into())],
        x_is_time_ms: true,
        ..LineChart::default()
    });
    (series, score)
}
