//! Evaluation on any labelled data (`lstm-ae eval labelled`): the metrics,
//! per file and pooled, and their report (`report.md`, `summary.json`,
//! `figures/*.svg`, written by `report.rs`). The driver that trains and
//! scores each file is `app::eval_labelled`; this module only sees scores
//! and labels.
//!
//! ## Two readings of "anomaly"
//!
//! - **State** (the threshold rule): a row is detected when the window
//!   ending at it scores at or above the calibrated threshold. Every row of
//!   an anomalous stretch can be detected, so point-wise recall is
//!   meaningful: this is the reading for users who label whole stretches.
//! - **Alert** (the likelihood rule): a row is detected when the anomaly
//!   likelihood reaches `anomalies.likelihood_threshold`; after firing the
//!   post-processor stays quiet for its refractory period, so one event
//!   gives about one detection. Point-wise recall is then small by design;
//!   range recall (was each stretch paged at least once?), delay and
//!   precision (were the pages inside labelled stretches?) are the figures
//!   that matter.
//!
//! ## Metrics (over the evaluated rows: after the training span, with a score)
//!
//! - point-wise: TP/FP/FN/TN of detections against labels; precision
//!   TP/(TP+FP), recall TP/(TP+FN), F1, false-alarm rate FP/(FP+TN),
//!   missed-alarm rate FN/(TP+FN). A ratio with a zero denominator is
//!   `None` (`null` in JSON, `–` in the report).
//! - ranking, of the raw score (the window's score over the threshold; the
//!   likelihood for the alert reading): ROC-AUC (the probability that a
//!   labelled row outscores an unlabelled one, ties counting half) and
//!   PR-AUC as average precision (Σ over distinct score levels, highest
//!   first, of the recall gained × the precision there).
//! - range-based: a labelled stretch is a maximal run of labelled rows; it
//!   is detected when at least one of its rows is. Range recall = detected /
//!   all stretches; detection delay = rows (and seconds) from a stretch's
//!   first row to its first detected row, averaged over detected stretches.
//! - pooled: counts and stretches summed over files, ranking metrics over
//!   all files' rows together (the score over the threshold is on one scale
//!   in every file: 1 = that file's threshold).

mod report;

pub use report::{figure_stem, write_report, ReportError, WORST_SHOWN};

use serde::Serialize;

/// One scored file, as the driver hands it over; one entry per row.
#[derive(Debug, Clone)]
pub struct ScoredFile {
    /// The file's path relative to the data folder.
    pub key: String,
    /// Epoch milliseconds.
    pub timestamps: Vec<i64>,
    /// The first feature, for the chart.
    pub values: Vec<f64>,
    pub feature: String,
    pub labels: Vec<bool>,
    /// Score / threshold of the window ending at the row (`None` before the first window).
    pub normalized: Vec<Option<f64>>,
    /// Anomaly likelihood at the row.
    pub likelihood: Vec<Option<f64>>,
    /// Rows `..train_rows` were the model's training data and are not evaluated.
    pub train_rows: usize,
    /// The threshold rule that set the file's threshold (the fallback if one was used).
    pub threshold_rule: String,
    /// Where the labels came from, in words (a column, a windows entry,
    /// operator marks).
    pub labels_from: String,
    /// Rows an operator's false_positive mark calls normal (empty when no
    /// marks were given): labelled normal, and counted apart so a reader
    /// sees how many of the detector's flags the operator overruled.
    pub known_normal: Vec<bool>,
}

/// Point-wise confusion counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub tn: usize,
}

impl Counts {
    pub fn of(labels: &[bool], detected: &[bool]) -> Counts {
        let mut c = Counts::default();
        for (&l, &d) in labels.iter().zip(detected) {
            match (l, d) {
                (true, true) => c.tp += 1,
                (false, true) => c.fp += 1,
                (true, false) => c.fn_ += 1,
                (false, false) => c.tn += 1,
            }
        }
        c
    }

    fn add(&mut self, o: &Counts) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
        self.tn += o.tn;
    }
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Labelled stretches and how many were detected, with their delays.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Ranges {
    pub stretches: usize,
    pub detected: usize,
    /// Sum over detected stretches of the rows to the first detection.
    pub delay_rows_sum: usize,
    /// Sum over detected stretches of the time to the first detection.
    pub delay_ms_sum: i64,
}

impl Ranges {
    fn add(&mut self, o: &Ranges) {
        self.stretches += o.stretches;
        self.detected += o.detected;
        self.delay_rows_sum += o.delay_rows_sum;
        self.delay_ms_sum += o.delay_ms_sum;
    }
}

/// `(first, last)` row of each maximal run of `true`.
pub fn stretches(labels: &[bool]) -> Vec<(usize, usize)> {
    let mut out = vec![];
    let mut start = None;
    for (i, &l) in labels.iter().enumerate() {
        match (l, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, labels.len() - 1));
    }
    out
}

/// Range detection of `labels`' stretches by `detected`; `timestamps` give the delays' time.
pub fn ranges(labels: &[bool], detected: &[bool], timestamps: &[i64]) -> Ranges {
    let mut r = Ranges::default();
    for (a, b) in stretches(labels) {
        r.stretches += 1;
        if let Some(first) = (a..=b).find(|&i| detected[i]) {
            r.detected += 1;
            r.delay_rows_sum += first - a;
            r.delay_ms_sum += timestamps[first] - timestamps[a];
        }
    }
    r
}

/// ROC-AUC of `scores` for `labels`: P(score of a labelled row > score of an
/// unlabelled one), ties counting half (the Mann–Whitney statistic with
/// average ranks). `None` unless both classes are present.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Sum of the average ranks (1-based) of the labelled rows.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg * idx[i..=j].iter().filter(|&&k| labels[k]).count() as f64;
        i = j + 1;
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// PR-AUC as average precision: over the distinct score levels from the
/// highest down, Σ (recall there − recall at the previous level) ×
/// precision there. `None` without a labelled row.
pub fn average_precision(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let pos = labels.iter().filter(|&&l| l).count();
    if pos == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut seen, mut ap, mut prev_recall) = (0usize, 0usize, 0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        tp += idx[i..=j].iter().filter(|&&k| labels[k]).count();
        seen += j - i + 1;
        let recall = tp as f64 / pos as f64;
        ap += (recall - prev_recall) * tp as f64 / seen as f64;
        prev_recall = recall;
        i = j + 1;
    }
    Some(ap)
}

/// The figures of one reading (state or alert) of one file or the pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reading {
    pub counts: Counts,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub false_alarm_rate: Option<f64>,
    pub missed_alarm_rate: Option<f64>,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub ranges: Ranges,
    /// Detected stretches / stretches.
    pub range_recall: Option<f64>,
    pub mean_delay_rows: Option<f64>,
    pub mean_delay_seconds: Option<f64>,
}

impl Reading {
    fn new(counts: Counts, ranges: Ranges, roc_auc: Option<f64>, pr_auc: Option<f64>) -> Reading {
        let c = counts;
        let precision = ratio(c.tp, c.tp + c.fp);
        let recall = ratio(c.tp, c.tp + c.fn_);
        let f1 = match (precision, recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        Reading {
            counts,
            precision,
            recall,
            f1,
            false_alarm_rate: ratio(c.fp, c.fp + c.tn),
            missed_alarm_rate: ratio(c.fn_, c.tp + c.fn_),
            roc_auc,
            pr_auc,
            range_recall: ratio(ranges.detected, ranges.stretches),
            mean_delay_rows: ratio(ranges.delay_rows_sum, ranges.detected),
            mean_delay_seconds: (ranges.detected > 0)
                .then(|| ranges.delay_ms_sum as f64 / 1000.0 / ranges.detected as f64),
            ranges,
        }
    }

    /// Every figure of `labels` against `detected`, ranking by `scores`.
    pub fn compute(
        labels: &[bool],
        detected: &[bool],
        scores: &[f64],
        timestamps: &[i64],
    ) -> Reading {
        Reading::new(
            Counts::of(labels, detected),
            ranges(labels, detected, timestamps),
            roc_auc(scores, labels),
            average_precision(scores, labels),
        )
    }
}

/// One file's evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct FileEval {
    pub key: String,
    pub rows: usize,
    pub train_rows: usize,
    /// Rows scored and compared with labels.
    pub evaluated_rows: usize,
    pub labelled_rows: usize,
    /// Labelled rows inside the training span (the model learnt them as normal).
    pub labelled_in_training: usize,
    pub threshold_rule: String,
    pub labels_from: String,
    /// Evaluated rows a false_positive mark calls normal, and how many of
    /// them the state reading flagged (false positives by the operator's word).
    pub known_normal_rows: usize,
    pub known_normal_flagged: usize,
    /// The threshold rule read as a state: every anomalous window.
    pub state: Reading,
    /// The likelihood rule read as an alert: once per event.
    pub alert: Reading,
}

/// The rows of a file that are evaluated: after the training span, with a score.
fn evaluated_rows(f: &ScoredFile) -> Vec<usize> {
    (f.train_rows..f.labels.len())
        .filter(|&r| f.normalized[r].is_some() && f.likelihood[r].is_some())
        .collect()
}

/// The columns the metrics need, for the evaluated rows.
struct Columns {
    labels: Vec<bool>,
    timestamps: Vec<i64>,
    normalized: Vec<f64>,
    likelihood: Vec<f64>,
}

fn columns(f: &ScoredFile) -> Columns {
    let rows = evaluated_rows(f);
    Columns {
        labels: rows.iter().map(|&r| f.labels[r]).collect(),
        timestamps: rows.iter().map(|&r| f.timestamps[r]).collect(),
        normalized: rows
            .iter()
            .map(|&r| f.normalized[r].unwrap_or(0.0))
            .collect(),
        likelihood: rows
            .iter()
            .map(|&r| f.likelihood[r].unwrap_or(0.0))
            .collect(),
    }
}

fn state_detections(c: &Columns) -> Vec<bool> {
    c.normalized.iter().map(|&n| n >= 1.0).collect()
}

fn alert_detections(c: &Columns, likelihood_threshold: f64) -> Vec<bool> {
    c.likelihood
        .iter()
        .map(|&l| l >= likelihood_threshold)
        .collect()
}

/// Evaluates one file under both readings.
pub fn evaluate_file(f: &ScoredFile, likelihood_threshold: f64) -> FileEval {
    let c = columns(f);
    let state = state_detections(&c);
    let alert = alert_detections(&c, likelihood_threshold);
    let known: Vec<bool> = evaluated_rows(f)
        .iter()
        .map(|&r| f.known_normal.get(r).copied().unwrap_or(false))
        .collect();
    FileEval {
        key: f.key.clone(),
        rows: f.labels.len(),
        train_rows: f.train_rows,
        evaluated_rows: c.labels.len(),
        labelled_rows: c.labels.iter().filter(|&&l| l).count(),
        labelled_in_training: f.labels[..f.train_rows.min(f.labels.len())]
            .iter()
            .filter(|&&l| l)
            .count(),
        threshold_rule: f.threshold_rule.clone(),
        labels_from: f.labels_from.clone(),
        known_normal_rows: known.iter().filter(|&&k| k).count(),
        known_normal_flagged: known.iter().zip(&state).filter(|(&k, &s)| k && s).count(),
        state: Reading::compute(&c.labels, &state, &c.normalized, &c.timestamps),
        alert: Reading::compute(&c.labels, &alert, &c.likelihood, &c.timestamps),
    }
}

/// Which reading of a file a table or sum is about.
type Pick = fn(&FileEval) -> &Reading;

fn state_of(e: &FileEval) -> &Reading {
    &e.state
}

fn alert_of(e: &FileEval) -> &Reading {
    &e.alert
}

/// All files together: counts and stretches summed, ranking over all rows.
pub fn pool(files: &[ScoredFile], evals: &[FileEval]) -> (Reading, Reading) {
    let (mut labels, mut normalized, mut likelihood) = (vec![], vec![], vec![]);
    for f in files {
        let c = columns(f);
        labels.extend(c.labels);
        normalized.extend(c.normalized);
        likelihood.extend(c.likelihood);
    }
    let sum = |pick: Pick| {
        let (mut counts, mut ranges) = (Counts::default(), Ranges::default());
        for e in evals {
            counts.add(&pick(e).counts);
            ranges.add(&pick(e).ranges);
        }
        (counts, ranges)
    };
    let (sc, sr) = sum(state_of);
    let (ac, ar) = sum(alert_of);
    (
        Reading::new(
            sc,
            sr,
            roc_auc(&normalized, &labels),
            average_precision(&normalized, &labels),
        ),
        Reading::new(
            ac,
            ar,
            roc_auc(&likelihood, &labels),
            average_precision(&likelihood, &labels),
        ),
    )
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// `threshold` or `likelihood`: the rule the daemon would alert with.
    pub configured_rule: String,
    pub likelihood_threshold: f64,
    pub files: Vec<FileEval>,
    pub pooled_state: Reading,
    pub pooled_alert: Reading,
    /// Files that could not be evaluated, with why; the figures above
    /// are those of the other files.
    pub skipped: Vec<Skipped>,
}

/// A file left out of the evaluation, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Skipped {
    pub key: String,
    pub reason: String,
}

/// Builds the summary of scored files.
pub fn summarise(
    files: &[ScoredFile],
    configured_rule: &str,
    likelihood_threshold: f64,
) -> Summary {
    let evals: Vec<FileEval> = files
        .iter()
        .map(|f| evaluate_file(f, likelihood_threshold))
        .collect();
    let (pooled_state, pooled_alert) = pool(files, &evals);
    Summary {
        configured_rule: configured_rule.to_string(),
        likelihood_threshold,
        files: evals,
        pooled_state,
        pooled_alert,
        skipped: vec![],
    }
}

impl Summary {
    /// The reading of the configured rule.
    fn configured<'a>(&self, e: &'a FileEval) -> &'a Reading {
        if self.configured_rule == "likelihood" {
            alert_of(e)
        } else {
            state_of(e)
        }
    }

    /// Indices of files worst first under the configured rule: lowest range
    /// recall, then lowest F1 (a missing figure counts as 0).
    pub fn worst(&self) -> Vec<usize> {
        let key = |i: &usize| {
            let r = self.configured(&self.files[*i]);
            (r.range_recall.unwrap_or(0.0), r.f1.unwrap_or(0.0))
        };
        let mut idx: Vec<usize> = (0..self.files.len()).collect();
        idx.sort_by(|a, b| {
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        idx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Vec<bool> {
        s.chars().map(|c| c == '1').collect()
    }

    #[test]
    fn point_counts_and_ratios_by_hand() {
        // labels   0011100011
        // detected 0110000111
        // TP: rows 2, 8, 9 = 3; FP: rows 1, 7 = 2; FN: rows 3, 4 = 2; TN: 0, 5, 6 = 3.
        let l = b("0011100011");
        let d = b("0110000111");
        let c = Counts::of(&l, &d);
        assert_eq!(
            c,
            Counts {
                tp: 3,
                fp: 2,
                fn_: 2,
                tn: 3
            }
        );
        let scores: Vec<f64> = d.iter().map(|&x| f64::from(u8::from(x))).collect();
        let ts: Vec<i64> = (0..10).map(|i| i * 60_000).collect();
        let r = Reading::compute(&l, &d, &scores, &ts);
        assert_eq!(r.precision, Some(0.6));
        assert_eq!(r.recall, Some(0.6));
        assert!((r.f1.unwrap() - 0.6).abs() < 1e-12);
        assert_eq!(r.false_alarm_rate, Some(0.4));
        assert_eq!(r.missed_alarm_rate, Some(0.4));
        // Two stretches, rows 2..=4 (detected at 2, delay 0) and 8..=9
        // (detected at 8, delay 0).
        assert_eq!(r.ranges.stretches, 2);
        assert_eq!(r.range_recall, Some(1.0));
        assert_eq!(r.mean_delay_rows, Some(0.0));
    }

    #[test]
    fn ratios_without_a_denominator_are_none() {
        let l = b("0000");
        let d = b("0000");
        let r = Reading::compute(&l, &d, &[0.0; 4], &[0, 1, 2, 3]);
        assert_eq!((r.precision, r.recall, r.f1), (None, None, None));
        assert_eq!(r.false_alarm_rate, Some(0.0));
        assert_eq!((r.roc_auc, r.pr_auc, r.range_recall), (None, None, None));
        // Detections but no hit: precision 0, recall 0, F1 0.
        let r = Reading::compute(&b("0011"), &b("1100"), &[1.0, 1.0, 0.0, 0.0], &[0, 1, 2, 3]);
        assert_eq!(
            (r.precision, r.recall, r.f1),
            (Some(0.0), Some(0.0), Some(0.0))
        );
        assert_eq!(r.roc_auc, Some(0.0));
    }

    #[test]
    fn stretches_and_delays() {
        assert_eq!(stretches(&b("1100111010")), vec![(0, 1), (4, 6), (8, 8)]);
        assert_eq!(stretches(&b("0001")), vec![(3, 3)]);
        assert!(stretches(&b("000")).is_empty());
        // Stretches 2..=6 (first detection row 5: 3 rows, 30 s at 10 s a row)
        // and 9..=10 (missed).
        let l = b("00111110011");
        let d = b("10000110000");
        let ts: Vec<i64> = (0..11).map(|i| i * 10_000).collect();
        let r = ranges(&l, &d, &ts);
        assert_eq!(
            r,
            Ranges {
                stretches: 2,
                detected: 1,
                delay_rows_sum: 3,
                delay_ms_sum: 30_000
            }
        );
        let reading = Reading::compute(&l, &d, &[0.0; 11], &ts);
        assert_eq!(reading.range_recall, Some(0.5));
        assert_eq!(reading.mean_delay_rows, Some(3.0));
        assert_eq!(reading.mean_delay_seconds, Some(30.0));
    }

    #[test]
    fn roc_auc_by_hand() {
        // Positives score 0.9 and 0.4; negatives 0.8, 0.3, 0.1. Pairs
        // (pos > neg): 0.9 beats all 3, 0.4 beats 0.3 and 0.1 → 5 of 6.
        let s = [0.9, 0.8, 0.4, 0.3, 0.1];
        let l = [true, false, true, false, false];
        assert!((roc_auc(&s, &l).unwrap() - 5.0 / 6.0).abs() < 1e-12);
        // A tie between a positive and a negative counts half: pos {0.5, 0.7},
        // neg {0.5, 0.1}: 0.5 vs 0.5 = ½, 0.5 > 0.1, 0.7 beats both → 3.5 / 4.
        let s = [0.5, 0.7, 0.5, 0.1];
        let l = [true, true, false, false];
        assert!((roc_auc(&s, &l).unwrap() - 0.875).abs() < 1e-12);
        assert_eq!(roc_auc(&[1.0, 2.0], &[true, true]), None);
        assert_eq!(roc_auc(&[3.0, 1.0], &[true, false]), Some(1.0));
    }

    #[test]
    fn average_precision_by_hand() {
        // Ranked: 0.9 (pos), 0.8 (neg), 0.4 (pos), 0.3, 0.1 (neg).
        // Recall steps at rank 1 (P = 1) and rank 3 (P = 2/3):
        // AP = ½·1 + ½·⅔ = 5/6.
        let s = [0.9, 0.8, 0.4, 0.3, 0.1];
        let l = [true, false, true, false, false];
        assert!((average_precision(&s, &l).unwrap() - 5.0 / 6.0).abs() < 1e-12);
        // A tie is one level: {0.5 pos, 0.5 neg} then 0.1 pos:
        // level 1: recall ½, precision ½; level 2: recall 1, precision ⅔.
        // AP = ½·½ + ½·⅔ = 7/12.
        let s = [0.5, 0.5, 0.1];
        let l = [true, false, true];
        assert!((average_precision(&s, &l).unwrap() - 7.0 / 12.0).abs() < 1e-12);
        assert_eq!(average_precision(&[1.0], &[false]), None);
        // A perfect ranking gives 1.
        assert_eq!(
            average_precision(&[3.0, 2.0, 1.0], &[true, true, false]),
            Some(1.0)
        );
    }

    fn scored(
        key: &str,
        labels: &str,
        normalized: &[f64],
        likelihood: &[f64],
        train_rows: usize,
    ) -> ScoredFile {
        let labels = b(labels);
        let n = labels.len();
        ScoredFile {
            key: key.into(),
            timestamps: (0..n as i64).map(|i| i * 1000).collect(),
            values: vec![0.0; n],
            feature: "value".into(),
            labels,
            normalized: normalized
                .iter()
                .map(|&v| (v >= 0.0).then_some(v))
                .collect(),
            likelihood: likelihood
                .iter()
                .map(|&v| (v >= 0.0).then_some(v))
                .collect(),
            train_rows,
            labels_from: String::new(),
            known_normal: vec![],
            threshold_rule: "pot".into(),
        }
    }

    #[test]
    fn files_skip_their_training_span_and_pool_by_summing() {
        // File a: rows 0..3 are training (row 2 labelled there); evaluated
        // rows 3..8 with labels 0 1 1 0 0; state detects rows 4, 7; alert
        // (≥ 0.5) detects row 4 only.
        let a = scored(
            "a.csv",
            "00101100",
            &[-1.0, 0.2, 5.0, 0.5, 1.5, 0.9, 0.1, 1.0],
            &[-1.0, 0.1, 0.9, 0.1, 0.6, 0.2, 0.1, 0.3],
            3,
        );
        // File b: nothing trained away; row 0 has no score.
        // Evaluated rows 1..4 with labels 0 0 1; state detects row 3; alert none.
        let b_ = scored(
            "b.csv",
            "0001",
            &[-1.0, 0.1, 0.2, 2.0],
            &[-1.0, 0.1, 0.1, 0.4],
            0,
        );
        let s = summarise(&[a, b_], "threshold", 0.5);
        let (ea, eb) = (&s.files[0], &s.files[1]);
        assert_eq!(
            (ea.evaluated_rows, ea.labelled_rows, ea.labelled_in_training),
            (5, 2, 1)
        );
        assert_eq!(
            ea.state.counts,
            Counts {
                tp: 1,
                fp: 1,
                fn_: 1,
                tn: 2
            }
        );
        assert_eq!(
            ea.alert.counts,
            Counts {
                tp: 1,
                fp: 0,
                fn_: 1,
                tn: 3
            }
        );
        assert_eq!(eb.evaluated_rows, 3);
        assert_eq!(
            eb.state.counts,
            Counts {
                tp: 1,
                fp: 0,
                fn_: 0,
                tn: 2
            }
        );
        assert_eq!(
            eb.alert.counts,
            Counts {
                tp: 0,
                fp: 0,
                fn_: 1,
                tn: 2
            }
        );
        assert_eq!(
            s.pooled_state.counts,
            Counts {
                tp: 2,
                fp: 1,
                fn_: 1,
                tn: 4
            }
        );
        assert_eq!(s.pooled_state.ranges.stretches, 2);
        assert_eq!(s.pooled_state.range_recall, Some(1.0));
        assert_eq!(s.pooled_alert.range_recall, Some(0.5));
        // Pooled state ranking over the 8 evaluated rows: positives 1.5, 0.9,
        // 2.0; negatives 0.5, 1.0, 0.1, 0.1, 0.2. 2.0 and 1.5 beat all 5;
        // 0.9 beats 0.5, 0.1, 0.1, 0.2 → 14 of 15.
        assert!((s.pooled_state.roc_auc.unwrap() - 14.0 / 15.0).abs() < 1e-12);
        // Worst first: b and a both detect every stretch under the state
        // reading; a has the lower F1 (0.5 vs 1).
        assert_eq!(s.worst(), vec![0, 1]);
    }
}
