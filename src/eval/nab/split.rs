//! The fixed tuning/report split of a NAB corpus, and the scores that make
//! a NAB figure trustworthy: the full corpus as NAB scores it, the tuning
//! half, and the report half at the threshold chosen on the tuning half.
//!
//! Why: NAB sweeps the threshold over the labels it then scores, and every
//! setting of this crate was chosen by looking at NAB scores. A setting is
//! kept only if it pays on the tuning half and holds on the report half,
//! whose labels choose nothing (not even the threshold).
//!
//! The split: within each category, files sorted by name, the 1st, 3rd, 5th…
//! file is in the tuning half and the 2nd, 4th… in the report half. It
//! depends on the file names only, so it is the same for every detector and
//! every run (NAB: 31 tuning files with 61 windows, 27 report files with 55).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::eval::nab::{self, FileScores, NabError, Profile};

/// Which half of the corpus a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Half {
    Tuning,
    Report,
}

/// The half of every key (`category/file.csv`): alternating by sorted file
/// name within each category, starting with the tuning half.
pub fn halves<'a>(keys: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, Half> {
    let mut by_category: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for key in keys {
        let category = key.split_once('/').map_or("", |(c, _)| c);
        by_category.entry(category).or_default().push(key);
    }
    let mut out = BTreeMap::new();
    for mut files in by_category.into_values() {
        files.sort_unstable();
        files.dedup();
        for (i, key) in files.into_iter().enumerate() {
            let half = if i % 2 == 0 {
                Half::Tuning
            } else {
                Half::Report
            };
            out.insert(key.to_string(), half);
        }
    }
    out
}

/// One profile's scores on the whole corpus and on each half.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitScores {
    pub profile: String,
    /// NAB's score of the whole corpus (threshold swept over all files).
    pub full: f64,
    pub full_threshold: f64,
    /// The tuning half, threshold swept over the tuning half.
    pub tuning: f64,
    pub tuning_threshold: f64,
    /// The report half at `tuning_threshold`: nothing here is chosen on the
    /// report half's labels.
    pub report: f64,
    /// The report half with its own swept threshold, for reference only.
    pub report_swept: f64,
    /// The label-free operating point (the post-processor's `fire_level`,
    /// the daemon's default likelihood threshold) and the whole corpus's
    /// score there.
    pub fixed_threshold: f64,
    pub full_at_fixed: f64,
}

/// Scores `files` on the whole, on each half of [`halves`], and at
/// `fixed_threshold`.
pub fn split_scores(
    files: &[FileScores],
    windows: &BTreeMap<String, Vec<(i64, i64)>>,
    profile: &Profile,
    fixed_threshold: f64,
) -> Result<SplitScores, NabError> {
    let half = halves(files.iter().map(|f| f.key.as_str()));
    let pick = |h: Half| -> Vec<FileScores> {
        files
            .iter()
            .filter(|f| half.get(&f.key) == Some(&h))
            .cloned()
            .collect()
    };
    let (tuning_files, report_files) = (pick(Half::Tuning), pick(Half::Report));
    let full = nab::evaluate(files, windows, profile)?;
    let tuning = nab::evaluate(&tuning_files, windows, profile)?;
    let report = nab::evaluate_at(&report_files, windows, profile, tuning.threshold)?;
    let report_swept = nab::evaluate(&report_files, windows, profile)?;
    let fixed = nab::evaluate_at(files, windows, profile, fixed_threshold)?;
    Ok(SplitScores {
        profile: profile.name.clone(),
        full: full.normalised,
        full_threshold: full.threshold,
        tuning: tuning.normalised,
        tuning_threshold: tuning.threshold,
        report: report.normalised,
        report_swept: report_swept.normalised,
        fixed_threshold,
        full_at_fixed: fixed.normalised,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_alternate_by_sorted_name_within_each_category() {
        let keys = ["b/z.csv", "a/c.csv", "a/a.csv", "b/y.csv", "a/b.csv"];
        let h = halves(keys);
        let of = |k: &str| h[k];
        assert_eq!(of("a/a.csv"), Half::Tuning);
        assert_eq!(of("a/b.csv"), Half::Report);
        assert_eq!(of("a/c.csv"), Half::Tuning);
        // Each category starts afresh.
        assert_eq!(of("b/y.csv"), Half::Tuning);
        assert_eq!(of("b/z.csv"), Half::Report);
    }

    fn profile() -> Profile {
        Profile {
            name: "standard".into(),
            tp: 1.0,
            fp: 0.11,
            fn_: 1.0,
            tn: 1.0,
        }
    }

    /// 20 rows a minute apart (probation 3 rows), window on rows 10..=14,
    /// `hits` = (row, score).
    fn file(key: &str, hits: &[(usize, f64)]) -> FileScores {
        let mut scores = vec![0.0; 20];
        for &(r, s) in hits {
            scores[r] = s;
        }
        FileScores {
            key: key.into(),
            timestamps: (0..20).map(|i| i * 60_000).collect(),
            scores,
        }
    }

    #[test]
    fn the_report_half_is_scored_at_the_tuning_threshold() {
        let w = vec![(10 * 60_000, 14 * 60_000)];
        // Tuning half: c/a and c/c; report half: c/b. On the tuning half the
        // best threshold is 0.8: c/a's hit at the window's start, while
        // going down to 0.7 adds only c/c's false positive. The report
        // file's hit of 0.6 is below it: a miss, although its own sweep
        // would have caught it.
        let files = [
            file("c/a.csv", &[(10, 0.8)]),
            file("c/b.csv", &[(10, 0.6)]),
            file("c/c.csv", &[(5, 0.7)]),
        ];
        let windows: BTreeMap<String, Vec<(i64, i64)>> =
            files.iter().map(|f| (f.key.clone(), w.clone())).collect();
        let s = split_scores(&files, &windows, &profile(), 0.5).unwrap();
        assert_eq!(s.tuning_threshold, 0.8);
        // Tuning: raw 1 (hit) − 1 (c/c missed) = 0 on a scale of −2..2.
        assert!((s.tuning - 50.0).abs() < 1e-9, "{}", s.tuning);
        // Report: c/b missed at 0.8, the null detector's score.
        assert!(s.report.abs() < 1e-9, "{}", s.report);
        assert!((s.report_swept - 100.0).abs() < 1e-9, "{}", s.report_swept);
        // At the fixed 0.5: c/a and c/b caught at their first row, c/c
        // missed with a false positive before any window (−0.11):
        // raw 0.89 on −3..3.
        assert!(
            (s.full_at_fixed - 100.0 * 3.89 / 6.0).abs() < 1e-9,
            "{}",
            s.full_at_fixed
        );
    }
}
