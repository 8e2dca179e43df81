//! The NAB evaluation report: per-category and overall normalised scores
//! for every profile, the comparison with NAB's published scoreboard, and
//! charts of the series where the detector does worst (series with labelled
//! windows shaded, anomaly score with the chosen threshold).
//!
//! Written as `report.md` (for people), `summary.json` (for scripts) and
//! `figures/*.svg` under the output folder.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::eval::nab::run::{EvaluatedSeries, NabEvalConfig, NabRun};
use crate::eval::nab::split::SplitScores;
use crate::eval::nab::{self, FileResult, ProfileReport};
use crate::report::svg::{line_chart, LineChart, Series as Line};

/// NAB's published standard-profile scoreboard (v1.1), for comparison.
pub const SCOREBOARD: [(&str, f64); 6] = [
    ("ARTime", 74.9),
    ("Numenta HTM", 70.5),
    ("CAD OSE", 69.9),
    ("earthgecko Skyline", 58.2),
    ("Random Cut Forest", 51.7),
    ("Windowed Gaussian", 39.6),
];

/// Series drawn in the report.
const WORST_SHOWN: usize = 4;

/// A failure to write the report.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", .path.display())]
pub struct ReportError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Normalised score of one category (or the whole corpus) under one profile.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CategoryScore {
    pub category: String,
    pub files: usize,
    pub windows: usize,
    pub raw: f64,
    /// `None` when the category has no labelled window (NAB's scale is undefined).
    pub normalised: Option<f64>,
    /// Counted windows (past the probation) with a detection, and without.
    pub windows_hit: usize,
    pub windows_missed: usize,
    /// Detections (rows at or above the threshold) outside every window.
    pub false_positives: usize,
}

/// One profile's summary.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileSummary {
    pub profile: String,
    pub threshold: f64,
    pub normalised: f64,
    /// Full, tuning-half and report-half scores (see [`crate::eval::nab::split`]).
    pub split: Option<SplitScores>,
    pub categories: Vec<CategoryScore>,
}

/// What `summary.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub detector: String,
    pub series: usize,
    pub seconds: f64,
    pub profiles: Vec<ProfileSummary>,
    pub config: NabEvalConfig,
}

/// Per-category scores at the profile's corpus-wide threshold: the files'
/// raw scores summed and normalised against the category's own null and
/// perfect detectors.
pub fn category_scores(
    report: &ProfileReport,
    windows: &BTreeMap<String, Vec<(i64, i64)>>,
    tp: f64,
    fn_: f64,
) -> Vec<CategoryScore> {
    #[derive(Default)]
    struct Sums {
        files: usize,
        labelled: usize,
        counted: usize,
        hit: usize,
        fp: usize,
        raw: f64,
    }
    let mut by: BTreeMap<String, Sums> = BTreeMap::new();
    for f in &report.files {
        let category = f.key.split('/').next().unwrap_or_default().to_string();
        let e = by.entry(category).or_default();
        e.files += 1;
        e.labelled += windows.get(&f.key).map_or(0, Vec::len);
        e.counted += f.counted_windows;
        e.hit += f.windows_hit;
        e.fp += f.fp;
        e.raw += f.score;
    }
    by.into_iter()
        .map(|(category, sums)| {
            let Sums {
                files,
                labelled,
                counted,
                hit,
                fp,
                raw,
            } = sums;
            let b = nab::Baselines {
                null: -fn_ * counted as f64,
                perfect: tp * labelled as f64,
            };
            CategoryScore {
                category,
                files,
                windows: labelled,
                raw,
                normalised: (b.perfect > b.null).then(|| nab::normalised_score(raw, &b)),
                windows_hit: hit,
                windows_missed: counted - hit,
                false_positives: fp,
            }
        })
        .collect()
}

/// Writes `report.md`, `summary.json` and the figures; returns the paths.
pub fn write(out: &Path, run: &NabRun, cfg: &NabEvalConfig) -> Result<Vec<PathBuf>, ReportError> {
    let profiles = &run.profiles;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError { path, source }
    };
    let figures = out.join("figures");
    fs::create_dir_all(&figures).map_err(io(&figures))?;
    let mut written = vec![];

    let summaries: Vec<ProfileSummary> = run
        .reports
        .iter()
        .map(|r| {
            let (tp, fn_) = profiles
                .iter()
                .find(|p| p.name == r.profile)
                .map_or((1.0, 1.0), |p| (p.tp, p.fn_));
            ProfileSummary {
                profile: r.profile.clone(),
                threshold: r.threshold,
                normalised: r.normalised,
                split: run.splits.iter().find(|s| s.profile == r.profile).cloned(),
                categories: category_scores(r, &run.windows, tp, fn_),
            }
        })
        .collect();

    let mut md = String::new();
    let _ = writeln!(md, "# NAB evaluation of `{}`\n", run.detector);
    let _ = writeln!(
        md,
        "{} series, {:.0} s wall clock ({:.1} min). Scores are NAB's normalised scores \
         (null detector 0, perfect 100) at the threshold NAB's sweep picks per profile.\n",
        run.series.len(),
        run.seconds,
        run.seconds / 60.0
    );
    let _ = writeln!(md, "## Scores\n");
    let _ = write!(md, "| category |");
    for s in &summaries {
        let _ = write!(md, " {} |", s.profile);
    }
    let _ = write!(md, "\n| --- |");
    for _ in &summaries {
        let _ = write!(md, " ---: |");
    }
    md.push('\n');
    let categories: Vec<String> = summaries
        .first()
        .map(|s| s.categories.iter().map(|c| c.category.clone()).collect())
        .unwrap_or_default();
    for (i, c) in categories.iter().enumerate() {
        let _ = write!(md, "| {c} |");
        for s in &summaries {
            match s.categories.get(i).and_then(|c| c.normalised) {
                Some(v) => {
                    let _ = write!(md, " {v:.1} |");
                }
                None => {
                    let raw = s.categories.get(i).map_or(0.0, |c| c.raw);
                    let _ = write!(md, " n/a (raw {raw:.2}) |");
                }
            }
        }
        md.push('\n');
    }
    let _ = write!(md, "| **overall** |");
    for s in &summaries {
        let _ = write!(md, " **{:.1}** |", s.normalised);
    }
    let _ = write!(md, "\n| threshold |");
    for s in &summaries {
        let _ = write!(md, " {:.4} |", s.threshold);
    }
    md.push_str("\n\n");
    split_table(&mut md, &summaries);
    breakdown_table(&mut md, &summaries);

    let standard = run.reports.iter().find(|r| r.profile == "standard");
    if let Some(std_report) = standard {
        let _ = writeln!(md, "## Beside NAB's scoreboard (standard profile)\n");
        let _ = writeln!(md, "| detector | standard |\n| --- | ---: |");
        let mut board: Vec<(String, f64)> = SCOREBOARD
            .iter()
            .map(|(n, v)| (n.to_string(), *v))
            .collect();
        board.push((
            format!("**{} (this run)**", run.detector),
            std_report.normalised,
        ));
        board.push(("Keras LSTM AE + likelihood (baseline)".into(), 27.7));
        board.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (n, v) in board {
            let _ = writeln!(md, "| {n} | {v:.1} |");
        }
        md.push('\n');

        let worst = worst_files(std_report, &run.windows);
        let _ = writeln!(
            md,
            "## Where the detector does worst (standard profile)\n\n\
             Series ranked by lost score (`tp` per labelled window minus the file's score). \
             Red bands: labelled windows.\n"
        );
        let _ = writeln!(
            md,
            "| series | windows | score | TP rows | FP rows | FN rows |\n| --- | ---: | ---: | ---: | ---: | ---: |"
        );
        for f in &worst {
            let _ = writeln!(
                md,
                "| {} | {} | {:.2} | {} | {} | {} |",
                f.key, f.counted_windows, f.score, f.tp, f.fp, f.fn_
            );
        }
        md.push('\n');
        for f in worst.iter().take(WORST_SHOWN) {
            let Some(ev) = run.series.iter().find(|s| s.key == f.key) else {
                continue;
            };
            let stem = f.key.replace(['/', '.'], "_");
            let (series_svg, score_svg) =
                charts(ev, &run.windows[&f.key], std_report.threshold, f.score);
            for (suffix, svg) in [("series", series_svg), ("score", score_svg)] {
                let path = figures.join(format!("{stem}.{suffix}.svg"));
                fs::write(&path, svg).map_err(io(&path))?;
                let _ = writeln!(md, "![{} {suffix}](figures/{stem}.{suffix}.svg)\n", f.key);
                written.push(path);
            }
        }
    }
    let _ = writeln!(md, "## Configuration\n\n```json\n{}\n```", to_json(cfg));
    let md_path = out.join("report.md");
    fs::write(&md_path, md).map_err(io(&md_path))?;
    written.insert(0, md_path);

    let summary = Summary {
        detector: run.detector.clone(),
        series: run.series.len(),
        seconds: run.seconds,
        profiles: summaries,
        config: cfg.clone(),
    };
    let json_path = out.join("summary.json");
    fs::write(&json_path, to_json(&summary)).map_err(io(&json_path))?;
    written.insert(1, json_path);
    Ok(written)
}

/// The tuning/report split's scores, one row per profile.
fn split_table(md: &mut String, summaries: &[ProfileSummary]) {
    let _ = writeln!(
        md,
        "## Tuning and report halves\n\n\
         Files alternate between the halves by sorted name within each category \
         (`eval::nab::split`). The report half is scored at the threshold swept on the \
         tuning half; \"fixed\" is the whole corpus at the label-free threshold \
         `postprocess.fire_level`.\n"
    );
    let _ = writeln!(
        md,
        "| profile | full | tuning half | report half | report half (own sweep) | fixed threshold | full at fixed |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    for s in summaries {
        if let Some(x) = &s.split {
            let _ = writeln!(
                md,
                "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.4} | {:.1} |",
                s.profile,
                x.full,
                x.tuning,
                x.report,
                x.report_swept,
                x.fixed_threshold,
                x.full_at_fixed
            );
        }
    }
    md.push('\n');
}

/// Windows hit and missed and false positives per category, under the
/// standard profile (or the first one) at its threshold.
fn breakdown_table(md: &mut String, summaries: &[ProfileSummary]) {
    let Some(s) = summaries
        .iter()
        .find(|s| s.profile == "standard")
        .or(summaries.first())
    else {
        return;
    };
    let _ = writeln!(
        md,
        "## Windows hit, missed and false positives ({} profile, threshold {:.4})\n",
        s.profile, s.threshold
    );
    let _ = writeln!(
        md,
        "| category | files | windows | hit | missed | false positives | score |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    );
    let mut total = (0, 0, 0, 0, 0);
    for c in &s.categories {
        let score = c
            .normalised
            .map_or_else(|| format!("n/a (raw {:.2})", c.raw), |v| format!("{v:.1}"));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {score} |",
            c.category, c.files, c.windows, c.windows_hit, c.windows_missed, c.false_positives
        );
        total.0 += c.files;
        total.1 += c.windows;
        total.2 += c.windows_hit;
        total.3 += c.windows_missed;
        total.4 += c.false_positives;
    }
    let _ = writeln!(
        md,
        "| **all** | {} | {} | {} | {} | {} | {:.1} |\n",
        total.0, total.1, total.2, total.3, total.4, s.normalised
    );
}

/// What `lstm-ae eval nab` prints: per profile the full score, and the
/// halves.
pub fn console_lines(run: &NabRun) -> Vec<String> {
    run.reports
        .iter()
        .map(|r| {
            let split = run
                .splits
                .iter()
                .find(|s| s.profile == r.profile)
                .map(|s| {
                    format!(
                        "; tuning half {:.2}, report half {:.2}, full at fixed threshold {:.2}",
                        s.tuning, s.report, s.full_at_fixed
                    )
                })
                .unwrap_or_default();
            format!(
                "{:<20} {:>6.2}  (threshold {:.4}, raw {:.2}{split})",
                r.profile, r.normalised, r.threshold, r.raw
            )
        })
        .collect()
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("\"unserialisable: {e}\""))
}

/// Files with labelled windows, most lost score first.
pub fn worst_files<'a>(
    report: &'a ProfileReport,
    windows: &BTreeMap<String, Vec<(i64, i64)>>,
) -> Vec<&'a FileResult> {
    let lost = |f: &FileResult| windows.get(&f.key).map_or(0, Vec::len) as f64 - f.score;
    let mut files: Vec<&FileResult> = report
        .files
        .iter()
        .filter(|f| f.counted_windows > 0)
        .collect();
    files.sort_by(|a, b| lost(b).total_cmp(&lost(a)).then(a.key.cmp(&b.key)));
    files.truncate(10);
    files
}

/// The series with its labelled windows shaded, and the anomaly score
/// against the threshold.
fn charts(
    ev: &EvaluatedSeries,
    windows: &[(i64, i64)],
    threshold: f64,
    file_score: f64,
) -> (String, String) {
    let x = |r: usize| ev.timestamps[r] as f64;
    let shaded: Vec<(f64, f64)> = windows.iter().map(|&(a, b)| (a as f64, b as f64)).collect();
    let probation = nab::probationary_rows(ev.values.len());
    let series = line_chart(&LineChart {
        title: format!("{}: value, labelled windows shaded", ev.key),
        x_label: "time".into(),
        y_label: "value".into(),
        series: vec![Line {
            label: "value".into(),
            points: (0..ev.values.len())
                .map(|r| (x(r), f64::from(ev.values[r])))
                .collect(),
            color: "#1f77b4",
        }],
        shaded_x: shaded.clone(),
        x_is_time_ms: true,
        ..LineChart::default()
    });
    let score = line_chart(&LineChart {
        title: format!(
            "{}: anomaly score (file score {file_score:.2}, probation ends row {probation})",
            ev.key
        ),
        x_label: "time".into(),
        y_label: "anomaly score".into(),
        series: vec![Line {
            label: "anomaly score".into(),
            points: (probation..ev.values.len())
                .map(|r| (x(r), ev.scores.scores[r]))
                .collect(),
            color: "#d62728",
        }],
        shaded_x: shaded,
        hlines: vec![(threshold, format!("threshold {threshold:.3}"))],
        x_is_time_ms: true,
        ..LineChart::default()
    });
    (series, score)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(key: &str, score: f64, counted: usize) -> FileResult {
        FileResult {
            key: key.into(),
            threshold: 0.5,
            score,
            tp: 0,
            tn: 0,
            fp: 0,
            fn_: 0,
            total_rows: 100,
            probationary_rows: 15,
            counted_windows: counted,
            windows_hit: 0,
        }
    }

    #[test]
    fn categories_normalise_against_their_own_baselines() {
        let report = ProfileReport {
            profile: "standard".into(),
            threshold: 0.5,
            raw: 0.0,
            baselines: nab::Baselines {
                null: -3.0,
                perfect: 3.0,
            },
            normalised: 50.0,
            files: vec![
                result("a/x.csv", 0.5, 1),
                result("a/y.csv", -1.0, 1),
                result("b/z.csv", -0.22, 0),
            ],
        };
        let windows = BTreeMap::from([
            ("a/x.csv".to_string(), vec![(0, 1)]),
            ("a/y.csv".to_string(), vec![(0, 1)]),
            ("b/z.csv".to_string(), vec![]),
        ]);
        let c = category_scores(&report, &windows, 1.0, 1.0);
        // a: raw −0.5, null −2, perfect 2 → 100·1.5/4 = 37.5.
        assert_eq!(c[0].category, "a");
        assert_eq!(c[0].normalised, Some(37.5));
        assert_eq!((c[0].files, c[0].windows), (2, 2));
        // b has no window: undefined.
        assert_eq!(c[1].normalised, None);
        assert!((c[1].raw + 0.22).abs() < 1e-12);
        // Worst: a/y lost 2, a/x lost 0.5; b/z (no counted window) is left out.
        let w = worst_files(&report, &windows);
        assert_eq!(
            w.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(),
            ["a/y.csv", "a/x.csv"]
        );
    }
}
