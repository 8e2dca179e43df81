//! NAB's scoring rule, implemented from NAB's documented method and checked
//! against NAB's published per-file and final scores: the per-row weighting,
//! the scoring of one file at one threshold, the corpus-wide threshold sweep,
//! and the normalisation to the 0–100 scale.
//!
//! # The rule, as reproduced here
//!
//! For a file of `n` rows:
//!
//! - the first [`probationary_rows`]`(n)` = `min(floor(0.15·n), 750)` rows are
//!   ignored entirely (they count as neither detections nor misses);
//! - a labelled window `[start, end]` spans the rows from the first to the last
//!   whose timestamp lies in it, inclusively; say rows `L..=R`, width
//!   `W = R − L + 1`. A window counts only if at least one of its rows is past
//!   the probationary period;
//! - a row inside a window at index `i` is weighted
//!   `tp · σ(−(R − i + 1)/W) / σ(−1)`, with
//!   [`scaled_sigmoid`] `σ(y) = 2/(1 + e^{5y}) − 1` (and `σ(y) = −1` for `y > 3`):
//!   exactly `tp` at the window's first row, falling towards its end;
//! - a row outside every window is weighted `fp · σ((i − R′)/(W′ − 1))`, where
//!   `R′`, `W′` belong to the closest window that ended before it, or `−fp` if no
//!   window has ended yet;
//! - at a threshold `θ` the rows with `score ≥ θ` are detections. A counted window
//!   scores the weight of its earliest detection, or `−fn` if it has none. Every
//!   detection outside a window adds its (negative) weight. The file's score is
//!   the sum; `tn` is not used;
//! - the threshold is the one maximising the summed score over all files
//!   ([`optimise_threshold`]), and the final number is
//!   `100·(raw − null)/(perfect − null)` ([`normalised_score`]).
//!
//! TP/TN/FP/FN in [`FileResult`] count non-probationary rows, as NAB's score
//! files do.

use std::collections::BTreeMap;

use super::NabError;

/// Fraction of each file's rows NAB gives a detector to learn before scoring.
pub const PROBATIONARY_PERCENT: f64 = 0.15;

/// NAB caps the probationary period at `0.15 · 5000` rows.
pub const MAX_PROBATIONARY_ROWS: usize = 750;

/// The threshold NAB reports for "no row fires", when every score is below it.
pub const NO_DETECTION_THRESHOLD: f64 = 1.1;

/// Beyond this relative distance the scaled sigmoid is clamped to −1.
const SIGMOID_CLAMP: f64 = 3.0;

/// A NAB application profile: the weights of its cost matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    /// Reward for detecting a window at its first row.
    pub tp: f64,
    /// Scale of the penalty for a detection outside every window.
    pub fp: f64,
    /// Penalty for a window with no detection.
    pub fn_: f64,
    /// Present in NAB's profiles but unused by its scoring rule.
    pub tn: f64,
}

/// One detector's output for one NAB series.
#[derive(Debug, Clone, PartialEq)]
pub struct FileScores {
    /// `category/file.csv`, the key of the labels file.
    pub key: String,
    /// Epoch milliseconds (NAB's naive timestamps read as UTC), in file order;
    /// they need not increase.
    pub timestamps: Vec<i64>,
    /// Anomaly score per row; NaN never fires.
    pub scores: Vec<f64>,
}

/// The outcome of one file at one threshold, as in NAB's `*_scores.csv` rows.
#[derive(Debug, Clone, PartialEq)]
pub struct FileResult {
    pub key: String,
    pub threshold: f64,
    pub score: f64,
    /// Non-probationary rows inside a window with `score ≥ threshold`.
    pub tp: usize,
    /// Non-probationary rows outside every window below the threshold.
    pub tn: usize,
    /// Non-probationary rows outside every window at or above the threshold.
    pub fp: usize,
    /// Non-probationary rows inside a window below the threshold.
    pub fn_: usize,
    /// All rows of the file, probationary ones included (NAB's `Total_Count`).
    pub total_rows: usize,
    pub probationary_rows: usize,
    /// Windows that reach past the probationary period, hence are scored.
    pub counted_windows: usize,
    /// Counted windows with at least one detection (the rest are missed).
    pub windows_hit: usize,
}

/// The corpus-wide best threshold and the summed raw score it achieves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Optimum {
    pub threshold: f64,
    pub score: f64,
}

/// The two ends of the normalised scale for one profile and corpus.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baselines {
    /// The raw score of a detector that never fires: `−fn` per counted window.
    pub null: f64,
    /// `tp` per labelled window, as NAB defines the perfect detector's score.
    pub perfect: f64,
}

/// Everything NAB reports for one detector under one profile.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileReport {
    pub profile: String,
    pub threshold: f64,
    /// Summed raw score over all files at `threshold`.
    pub raw: f64,
    pub baselines: Baselines,
    /// `100·(raw − null)/(perfect − null)`.
    pub normalised: f64,
    pub files: Vec<FileResult>,
}

/// NAB's reward curve: +1 far before a point, 0 at it, −1 far after;
/// `2/(1 + e^{5y}) − 1`, clamped to −1 for `y > 3` as NAB does.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > SIGMOID_CLAMP {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// Rows at the start of an `n`-row file that NAB does not score:
/// `min(floor(0.15·n), 750)`, with the product taken in `f64` as NAB does.
pub fn probationary_rows(n: usize) -> usize {
    let rows = (PROBATIONARY_PERCENT * n as f64).floor() as usize;
    rows.min(MAX_PROBATIONARY_ROWS)
}

fn series_error(key: &str, message: impl Into<String>) -> NabError {
    NabError::Series {
        key: key.to_string(),
        message: message.into(),
    }
}

/// Where a row stands for scoring.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    Probationary,
    Outside,
    /// Index into the file's counted windows.
    Window(usize),
}

/// A file turned into per-row NAB weights under one profile; the threshold
/// only decides which rows fire, so this is computed once and swept over.
#[derive(Debug)]
struct Prepared {
    /// Per row: anomaly score, NAB weight if it fires, slot.
    rows: Vec<(f64, f64, Slot)>,
    counted_windows: usize,
    labelled_windows: usize,
    probationary_rows: usize,
}

/// Maps each window to the inclusive row range it spans: from the first to the
/// last row whose timestamp lies in it. Rows are taken in file order and
/// timestamps need not increase (NAB's corpus repeats and rewinds them around
/// DST changes); a row inside a span belongs to that window whatever its
/// timestamp. Windows must each cover a row, and neither overlap in time nor
/// interleave in row order.
fn window_rows(
    key: &str,
    timestamps: &[i64],
    windows: &[(i64, i64)],
) -> Result<Vec<(usize, usize)>, NabError> {
    let mut sorted = windows.to_vec();
    sorted.sort_unstable();
    if let Some(pair) = sorted.windows(2).find(|p| p[1].0 <= p[0].1) {
        return Err(series_error(
            key,
            format!(
                "windows [{}, {}] and [{}, {}] (epoch ms) overlap",
                pair[0].0, pair[0].1, pair[1].0, pair[1].1
            ),
        ));
    }
    let mut spans: Vec<Option<(usize, usize)>> = vec![None; sorted.len()];
    for (i, &t) in timestamps.iter().enumerate() {
        let after = sorted.partition_point(|&(start, _)| start <= t);
        if let Some(k) = after.checked_sub(1).filter(|&k| t <= sorted[k].1) {
            spans[k].get_or_insert((i, i)).1 = i;
        }
    }
    let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(sorted.len());
    for (&(start, end), span) in sorted.iter().zip(spans) {
        let Some((first, last)) = span else {
            return Err(series_error(
                key,
                format!("window [{start}, {end}] (epoch ms) covers no row"),
            ));
        };
        if ranges
            .last()
            .is_some_and(|&(_, prev_last)| first <= prev_last)
        {
            return Err(series_error(
                key,
                format!("window [{start}, {end}] (epoch ms) interleaves with the previous one in row order"),
            ));
        }
        ranges.push((first, last));
    }
    Ok(ranges)
}

fn prepare(
    file: &FileScores,
    windows: &[(i64, i64)],
    profile: &Profile,
) -> Result<Prepared, NabError> {
    let key = &file.key;
    let n = file.timestamps.len();
    if file.scores.len() != n {
        return Err(series_error(
            key,
            format!("{n} timestamps but {} scores", file.scores.len()),
        ));
    }
    let ranges = window_rows(key, &file.timestamps, windows)?;
    let probation = probationary_rows(n);
    let max_tp = scaled_sigmoid(-1.0);

    let mut rows = Vec::with_capacity(n);
    // `next`: first window not yet ended; `counted`: ids given to windows seen
    // past the probationary period.
    let mut next = 0;
    let mut previous: Option<(usize, usize)> = None;
    let mut counted = 0;
    let mut current_id: Option<usize> = None;
    for (i, &score) in file.scores.iter().enumerate() {
        while next < ranges.len() && ranges[next].1 < i {
            previous = Some(ranges[next]);
            next += 1;
            current_id = None;
        }
        let inside = ranges.get(next).filter(|&&(first, _)| first <= i);
        let weight = match (inside, previous) {
            (Some(&(first, last)), _) => {
                let width = (last - first + 1) as f64;
                let position = -((last - i + 1) as f64) / width;
                profile.tp * scaled_sigmoid(position) / max_tp
            }
            (None, Some((first, last))) => {
                // A one-row window gives 1/0 = inf here, hence −1: NAB's
                // clamp, where NAB itself would divide by zero.
                let past = (i - last) as f64 / (last - first) as f64;
                profile.fp * scaled_sigmoid(past)
            }
            (None, None) => -profile.fp,
        };
        let slot = if i < probation {
            Slot::Probationary
        } else if inside.is_some() {
            let id = *current_id.get_or_insert_with(|| {
                counted += 1;
                counted - 1
            });
            Slot::Window(id)
        } else {
            Slot::Outside
        };
        rows.push((score, weight, slot));
    }
    Ok(Prepared {
        rows,
        counted_windows: counted,
        labelled_windows: ranges.len(),
        probationary_rows: probation,
    })
}

fn score_prepared(p: &Prepared, key: &str, profile: &Profile, threshold: f64) -> FileResult {
    let mut earliest: Vec<Option<f64>> = vec![None; p.counted_windows];
    let (mut tp, mut tn, mut fp, mut fn_) = (0, 0, 0, 0);
    let mut fp_sum = 0.0;
    for &(score, weight, slot) in &p.rows {
        let fires = score >= threshold;
        match slot {
            Slot::Probationary => {}
            Slot::Outside if fires => {
                fp += 1;
                fp_sum += weight;
            }
            Slot::Outside => tn += 1,
            Slot::Window(w) if fires => {
                tp += 1;
                // Rows are in file order: the first detection is the earliest.
                earliest[w].get_or_insert(weight);
            }
            Slot::Window(_) => fn_ += 1,
        }
    }
    let windows: f64 = earliest.iter().map(|e| e.unwrap_or(-profile.fn_)).sum();
    FileResult {
        windows_hit: earliest.iter().filter(|e| e.is_some()).count(),
        key: key.to_string(),
        threshold,
        score: fp_sum + windows,
        tp,
        tn,
        fp,
        fn_,
        total_rows: p.rows.len(),
        probationary_rows: p.probationary_rows,
        counted_windows: p.counted_windows,
    }
}

fn windows_for<'a>(
    windows: &'a BTreeMap<String, Vec<(i64, i64)>>,
    key: &str,
) -> Result<&'a [(i64, i64)], NabError> {
    windows
        .get(key)
        .map(Vec::as_slice)
        .ok_or_else(|| series_error(key, "no entry in the labels"))
}

/// Scores one file at one threshold under NAB's rule (see the module docs).
/// Errors if the series is malformed or a window covers none of its rows.
pub fn score_file(
    file: &FileScores,
    windows: &[(i64, i64)],
    profile: &Profile,
    threshold: f64,
) -> Result<FileResult, NabError> {
    let p = prepare(file, windows, profile)?;
    Ok(score_prepared(&p, &file.key, profile, threshold))
}

/// Finds the threshold maximising the summed score over `files`, as NAB's
/// sweep does: every distinct score is a candidate, plus "nothing fires"
/// (reported as [`NO_DETECTION_THRESHOLD`] when all scores are below it).
///
/// Rows are sorted once by score and added in descending groups of equal
/// score, updating the total incrementally: O(N log N) for N rows. Among equal
/// totals the highest threshold wins, as in NAB. The returned score is
/// recomputed file by file at the chosen threshold, so it equals the sum of
/// [`score_file`] results exactly.
pub fn optimise_threshold(
    files: &[FileScores],
    windows: &BTreeMap<String, Vec<(i64, i64)>>,
    profile: &Profile,
) -> Result<Optimum, NabError> {
    let prepared = prepare_all(files, windows, profile)?;
    Ok(optimise_prepared(&prepared, files, profile))
}

fn prepare_all(
    files: &[FileScores],
    windows: &BTreeMap<String, Vec<(i64, i64)>>,
    profile: &Profile,
) -> Result<Vec<Prepared>, NabError> {
    files
        .iter()
        .map(|f| prepare(f, windows_for(windows, &f.key)?, profile))
        .collect()
}

/// A row that can change the total when it fires.
struct Candidate {
    score: f64,
    weight: f64,
    /// Global window id, or `None` for a false positive.
    window: Option<usize>,
    row: usize,
}

fn optimise_prepared(prepared: &[Prepared], files: &[FileScores], profile: &Profile) -> Optimum {
    let mut candidates = Vec::new();
    let mut offset = 0;
    for p in prepared {
        for (row, &(score, weight, slot)) in p.rows.iter().enumerate() {
            if score.is_nan() {
                continue;
            }
            let window = match slot {
                Slot::Probationary => continue,
                Slot::Outside => None,
                Slot::Window(w) => Some(offset + w),
            };
            candidates.push(Candidate {
                score,
                weight,
                window,
                row,
            });
        }
        offset += p.counted_windows;
    }
    candidates.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));

    let none_threshold = match candidates.first() {
        Some(c) if c.score >= NO_DETECTION_THRESHOLD => c.score.next_up(),
        _ => NO_DETECTION_THRESHOLD,
    };
    // Per global window: (row, weight) of its earliest detection so far.
    let mut earliest: Vec<Option<(usize, f64)>> = vec![None; offset];
    let mut total = -profile.fn_ * offset as f64;
    let mut best = (none_threshold, total);
    let mut i = 0;
    while i < candidates.len() {
        let group = candidates[i].score;
        while i < candidates.len() && candidates[i].score == group {
            let c = &candidates[i];
            match c.window {
                None => total += c.weight,
                Some(w) => match earliest[w] {
                    Some((row, _)) if row <= c.row => {}
                    slot => {
                        let old = slot.map_or(-profile.fn_, |(_, weight)| weight);
                        total += c.weight - old;
                        earliest[w] = Some((c.row, c.weight));
                    }
                },
            }
            i += 1;
        }
        if total > best.1 {
            best = (group, total);
        }
    }
    let threshold = best.0;
    let score = prepared
        .iter()
        .zip(files)
        .map(|(p, f)| score_prepared(p, &f.key, profile, threshold).score)
        .sum();
    Optimum { threshold, score }
}

fn baselines_prepared(prepared: &[Prepared], profile: &Profile) -> Baselines {
    let counted: usize = prepared.iter().map(|p| p.counted_windows).sum();
    let labelled: usize = prepared.iter().map(|p| p.labelled_windows).sum();
    Baselines {
        null: -profile.fn_ * counted as f64,
        perfect: profile.tp * labelled as f64,
    }
}

/// The null and perfect scores of `files` under `profile`. As in NAB, the
/// perfect score counts every labelled window, even one lying wholly in a
/// probationary period (none does in NAB's corpus).
pub fn baselines(
    files: &[FileScores],
    windows: &BTreeMap<String, Vec<(i64, i64)>>,
    profile: &Profile,
) -> Result<Baselines, NabError> {
    Ok(baselines_prepared(
        &prepare_all(files, windows, profile)?,
        profile,
    ))
}

/// NAB's final score: 0 for the null detector, 100 for the perfect one.
/// Not finite if `perfect == null` (a corpus without windows).
pub fn normalised_score(raw: f64, baselines: &Baselines) -> f64 {
    100.0 * (raw - baselines.null) / (baselines.perfect - baselines.null)
}

/// The full NAB evaluation of one detector under one profile: best threshold,
/// per-file results at it, and the normalised score.
pub fn evaluate(
    files: &[FileScores],
    windows: &BTreeMap<String, Vec<(i64, i64)>>,
    profile: &Profile,
) -> Result<ProfileReport, NabError> {
    let prepared = prepare_all(files, windows, profile)?;
    let optimum = optimise_prepared(&prepared, files, profile);
    let results: Vec<FileResult> = prepared
        .iter()
        .zip(files)
        .map(|(p, f)| score_prepared(p, &f.key, profile, optimum.threshold))
        .collect();
    let baselines = baselines_prepared(&prepared, profile);
    Ok(ProfileReport {
        profile: profile.name.clone(),
        threshold: optimum.threshold,
        raw: optimum.score,
        baselines,
        normalised: normalised_score(optimum.score, &baselines),
        files: results,
    })
}

/// Like [`evaluate`], but at a given threshold instead of the best one:
/// how a threshold chosen elsewhere (on other files, or without labels)
/// scores on `files`.
pub fn evaluate_at(
    files: &[FileScores],
    windows: &BTreeMap<String, Vec<(i64, i64)>>,
    profile: &Profile,
    threshold: f64,
) -> Result<ProfileReport, NabError> {
    let prepared = prepare_all(files, windows, profile)?;
    let results: Vec<FileResult> = prepared
        .iter()
        .zip(files)
        .map(|(p, f)| score_prepared(p, &f.key, profile, threshold))
        .collect();
    let raw = results.iter().map(|r| r.score).sum();
    let baselines = baselines_prepared(&prepared, profile);
    Ok(ProfileReport {
        profile: profile.name.clone(),
        threshold,
        raw,
        baselines,
        normalised: normalised_score(raw, &baselines),
        files: results,
    })
}

#[cfg(test)]
mod tests {
    //! Synthetic files small enough to score by hand; the expected numbers are
    //! NAB's formulas evaluated on paper (tanh form: σ(y) = −tanh(5y/2)).
    use super::super::test_profiles::{profile, standard};
    use super::*;

    const STEP: i64 = 60_000;
    /// An `n`-row file at one-minute steps whose scores are 0 except `hits`.
    fn file(key: &str, n: usize, hits: &[(usize, f64)]) -> FileScores {
        let mut scores = vec![0.0; n];
        for &(i, s) in hits {
            scores[i] = s;
        }
        FileScores {
            key: key.into(),
            timestamps: (0..n as i64).map(|i| i * STEP).collect(),
            scores,
        }
    }

    /// The window covering rows `first..=last` of [`file`].
    fn rows(first: i64, last: i64) -> (i64, i64) {
        (first * STEP, last * STEP)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn probationary_length_is_15_percent_floored_capped_at_750() {
        assert_eq!(probationary_rows(0), 0);
        assert_eq!(probationary_rows(20), 3);
        assert_eq!(probationary_rows(4032), 604);
        assert_eq!(probationary_rows(4999), 749);
        assert_eq!(probationary_rows(5000), 750);
        assert_eq!(probationary_rows(22695), 750);
    }

    #[test]
    fn scaled_sigmoid_shape_and_clamp() {
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!(close(scaled_sigmoid(-1.0), 2.5f64.tanh()));
        assert!(close(scaled_sigmoid(1.0), -(2.5f64.tanh())));
        // Just below the clamp the curve is not yet exactly −1; past it, it is.
        assert!(scaled_sigmoid(3.0) > -1.0);
        assert_eq!(scaled_sigmoid(3.0001), -1.0);
    }

    #[test]
    fn detection_at_window_start_earns_full_tp() {
        // n = 20: rows 0..3 probationary; window rows 10..=14.
        let r = score_file(
            &file("a/x.csv", 20, &[(10, 1.0)]),
            &[rows(10, 14)],
            &standard(),
            0.5,
        )
        .unwrap();
        assert!(close(r.score, 1.0), "{}", r.score);
        assert_eq!((r.tp, r.tn, r.fp, r.fn_), (1, 12, 0, 4));
        assert_eq!(
            (r.total_rows, r.probationary_rows, r.counted_windows),
            (20, 3, 1)
        );
    }

    #[test]
    fn detection_at_window_end_earns_less() {
        // Position −1/5: σ(−0.2)/σ(−1) = tanh(0.5)/tanh(2.5).
        let r = score_file(
            &file("a/x.csv", 20, &[(14, 1.0)]),
            &[rows(10, 14)],
            &standard(),
            0.5,
        )
        .unwrap();
        assert!(close(r.score, 0.4683868439022782), "{}", r.score);
    }

    #[test]
    fn only_the_earliest_detection_in_a_window_counts() {
        // Row 11: position −4/5, tanh(2)/tanh(2.5); row 13 adds a TP row, no score.
        let r = score_file(
            &file("a/x.csv", 20, &[(11, 0.7), (13, 0.9)]),
            &[rows(10, 14)],
            &standard(),
            0.5,
        )
        .unwrap();
        assert!(close(r.score, 0.9771068409226047), "{}", r.score);
        assert_eq!((r.tp, r.fn_), (2, 3));
    }

    #[test]
    fn missed_window_costs_fn_weight() {
        let f = file("a/x.csv", 20, &[]);
        let r = score_file(&f, &[rows(10, 14)], &standard(), 0.5).unwrap();
        assert_eq!(r.score, -1.0);
        assert_eq!((r.tp, r.tn, r.fp, r.fn_), (0, 12, 0, 5));
        let low_fn = profile("reward_low_FN_rate", 0.11, 2.0);
        assert_eq!(
            score_file(&f, &[rows(10, 14)], &low_fn, 0.5).unwrap().score,
            -2.0
        );
    }

    #[test]
    fn false_positive_right_after_a_window_is_mild() {
        // Row 15: (15 − 14)/(5 − 1) = 0.25 → 0.11·σ(0.25) = −0.11·tanh(0.625).
        let r = score_file(
            &file("a/x.csv", 20, &[(15, 1.0)]),
            &[rows(10, 14)],
            &standard(),
            0.5,
        )
        .unwrap();
        assert!(close(r.score, -1.061005969458432), "{}", r.score);
        assert_eq!((r.tp, r.fp, r.fn_), (0, 1, 5));
    }

    #[test]
    fn false_positive_far_away_or_before_any_window_costs_full_fp() {
        // n = 40: probation 6 rows. Row 35 is 21/4 = 5.25 window-widths past
        // (clamped to −1); row 7 precedes every window.
        for hit in [35, 7] {
            let r = score_file(
                &file("a/x.csv", 40, &[(hit, 1.0)]),
                &[rows(10, 14)],
                &standard(),
                0.5,
            )
            .unwrap();
            assert!(close(r.score, -1.11), "row {hit}: {}", r.score);
        }
    }

    #[test]
    fn probationary_rows_are_ignored() {
        // Window rows 2..=6 straddles the 3-row probation: a hit at row 2 is not
        // scored (the window is missed), a hit at row 3 is, at position −4/5.
        let w = [rows(2, 6)];
        let early = score_file(&file("a/x.csv", 20, &[(2, 1.0)]), &w, &standard(), 0.5).unwrap();
        assert_eq!(early.score, -1.0);
        assert_eq!((early.tp, early.fn_, early.counted_windows), (0, 4, 1));
        let late = score_file(&file("a/x.csv", 20, &[(3, 1.0)]), &w, &standard(), 0.5).unwrap();
        assert!(close(late.score, 0.9771068409226047), "{}", late.score);
        // A hit in the probation outside windows is no false positive either.
        let r = score_file(&file("a/x.csv", 20, &[(1, 1.0)]), &[], &standard(), 0.5).unwrap();
        assert_eq!((r.score, r.fp, r.tn), (0.0, 0, 17));
    }

    #[test]
    fn window_inside_probation_is_not_counted_but_anchors_false_positives() {
        // Window rows 0..=2 lies wholly in the probation: no FN. Row 4 is
        // (4 − 2)/(3 − 1) = 1 width past it: 0.11·σ(1) = −0.11·tanh(2.5).
        let w = [rows(0, 2)];
        let quiet = score_file(&file("a/x.csv", 20, &[]), &w, &standard(), 0.5).unwrap();
        assert_eq!((quiet.score, quiet.counted_windows), (0.0, 0));
        let r = score_file(&file("a/x.csv", 20, &[(4, 1.0)]), &w, &standard(), 0.5).unwrap();
        assert!(close(r.score, -0.10852757279665734), "{}", r.score);
    }

    #[test]
    fn repeated_and_rewound_timestamps_score_by_row_span() {
        // Row 12 jumps back to minute 3, outside the window's time range, yet
        // lies in the window's row span 10..=14: position −3/5, tanh(1.5)/tanh(2.5).
        let mut f = file("a/x.csv", 20, &[(12, 1.0)]);
        f.timestamps[12] = 3 * STEP;
        let r = score_file(&f, &[rows(10, 14)], &standard(), 0.5).unwrap();
        assert!(close(r.score, 0.9174286804284078), "{}", r.score);
        assert_eq!((r.tp, r.fn_), (1, 4));
        // Row 15 repeats minute 14, the window's end: the span grows to
        // 10..=15 (width 6) and a hit there sits at −1/6: tanh(5/12)/tanh(2.5).
        let mut f = file("a/x.csv", 20, &[(15, 1.0)]);
        f.timestamps[15] = 14 * STEP;
        let r = score_file(&f, &[rows(10, 14)], &standard(), 0.5).unwrap();
        assert!(close(r.score, 0.39946569664483356), "{}", r.score);
        assert_eq!((r.tp, r.fn_), (1, 5));
    }

    #[test]
    fn window_bounds_between_rows_cover_the_rows_inside() {
        let w = [(9 * STEP + STEP / 2, 14 * STEP + STEP / 2)];
        let r = score_file(&file("a/x.csv", 20, &[(10, 1.0)]), &w, &standard(), 0.5).unwrap();
        assert!(close(r.score, 1.0), "{}", r.score);
        assert_eq!((r.tp, r.fn_), (1, 4));
    }

    #[test]
    fn malformed_series_are_errors_naming_the_key() {
        let mut short = file("a/short.csv", 20, &[]);
        short.scores.pop();
        // Timestamps 0..10 twice: the windows' rows interleave in row order.
        let mut rewound = file("a/rewound.csv", 20, &[]);
        rewound.timestamps = (0..20).map(|i| (i % 10) * STEP).collect();
        let cases = [
            (short, vec![]),
            (rewound, vec![rows(2, 3), rows(5, 6)]),
            (
                file("a/empty_window.csv", 20, &[]),
                vec![(100 * STEP, 200 * STEP)],
            ),
            (
                file("a/overlap.csv", 20, &[]),
                vec![rows(5, 9), rows(8, 12)],
            ),
        ];
        for (f, w) in cases {
            let err = score_file(&f, &w, &standard(), 0.5).unwrap_err();
            assert!(err.to_string().starts_with(&f.key), "{err}");
        }
        let windows = BTreeMap::new();
        let err = optimise_threshold(&[file("a/unlabelled.csv", 20, &[])], &windows, &standard())
            .unwrap_err();
        assert!(err.to_string().contains("a/unlabelled.csv"), "{err}");
    }

    #[test]
    fn optimiser_picks_the_best_candidate_threshold() {
        // Window rows 10..=14; row 16 (0.95) is an FP 2/4 past the window,
        // 0.11·σ(0.5) = −0.11·tanh(1.25); row 12 (0.9) is at −3/5; row 10 (0.5)
        // at −1. Best: θ = 0.5 → 1 − 0.11·tanh(1.25).
        let a = file("a/a.csv", 20, &[(10, 0.5), (12, 0.9), (16, 0.95)]);
        let mut windows = BTreeMap::from([("a/a.csv".to_string(), vec![rows(10, 14)])]);
        let best = optimise_threshold(std::slice::from_ref(&a), &windows, &standard()).unwrap();
        assert_eq!(best.threshold, 0.5);
        assert!(close(best.score, 0.9066887996046735), "{}", best.score);

        // Another file whose 0.7 is a false positive (−0.11) makes the lower
        // threshold cost more than the earlier detection gains:
        // θ = 0.9 → tanh(1.5)/tanh(2.5) − 0.11·tanh(1.25).
        let b = file("b/b.csv", 20, &[(10, 0.7)]);
        windows.insert("b/b.csv".to_string(), vec![]);
        let best = optimise_threshold(&[a, b], &windows, &standard()).unwrap();
        assert_eq!(best.threshold, 0.9);
        assert!(close(best.score, 0.8241174800330813), "{}", best.score);
    }

    #[test]
    fn optimiser_prefers_not_firing_when_nothing_is_gained() {
        let windows = BTreeMap::from([("a/a.csv".to_string(), vec![])]);
        let f = file("a/a.csv", 20, &[(10, 0.3), (12, 0.8)]);
        let best = optimise_threshold(std::slice::from_ref(&f), &windows, &standard()).unwrap();
        assert_eq!((best.threshold, best.score), (NO_DETECTION_THRESHOLD, 0.0));
        // Ties go to the higher threshold: with free false positives every
        // candidate scores 0, and "nothing fires" is still chosen.
        let free_fp = profile("free", 0.0, 1.0);
        let best = optimise_threshold(std::slice::from_ref(&f), &windows, &free_fp).unwrap();
        assert_eq!(best.threshold, NO_DETECTION_THRESHOLD);
        // Scores above 1.1 push the "nothing fires" threshold above them.
        let high = file("a/a.csv", 20, &[(10, 2.0)]);
        let best = optimise_threshold(&[high], &windows, &standard()).unwrap();
        assert!(best.threshold > 2.0);
        assert_eq!(best.score, 0.0);
    }

    #[test]
    fn baselines_and_normalisation() {
        // One window counted, one wholly probationary: null counts only the
        // first, perfect both (NAB's definition).
        let windows = BTreeMap::from([
            ("a/a.csv".to_string(), vec![rows(10, 14)]),
            ("b/b.csv".to_string(), vec![rows(0, 1)]),
        ]);
        let files = [file("a/a.csv", 20, &[]), file("b/b.csv", 20, &[])];
        let low_fn = profile("reward_low_FN_rate", 0.11, 2.0);
        let b = baselines(&files, &windows, &low_fn).unwrap();
        assert_eq!((b.null, b.perfect), (-2.0, 2.0));
        assert_eq!(normalised_score(-2.0, &b), 0.0);
        assert_eq!(normalised_score(2.0, &b), 100.0);
        assert_eq!(normalised_score(0.0, &b), 50.0);
        // NAB's published windowedGaussian standard result: raw −24.0131054891
        // over 116 windows is 39.649523496077585.
        let nab = Baselines {
            null: -116.0,
            perfect: 116.0,
        };
        assert!((normalised_score(-24.0131054891, &nab) - 39.649523496077585).abs() < 1e-9);
    }

    #[test]
    fn evaluate_reports_per_file_results_at_the_best_threshold() {
        let windows = BTreeMap::from([("a/a.csv".to_string(), vec![rows(10, 14)])]);
        let files = [file("a/a.csv", 20, &[(10, 0.5), (12, 0.9), (16, 0.95)])];
        let report = evaluate(&files, &windows, &standard()).unwrap();
        assert_eq!(report.threshold, 0.5);
        assert_eq!(report.files.len(), 1);
        assert_eq!(report.files[0].score, report.raw);
        assert_eq!((report.files[0].tp, report.files[0].fp), (2, 1));
        assert!(close(
            report.normalised,
            100.0 * (0.9066887996046735 + 1.0) / 2.0
        ));
    }
}
