//! The JSON records the daemon publishes (embeddings, anomalies, scores), the
//! one timestamp shape they use, and the contributors that say where in a
//! window an anomaly lies. Their field names are a contract with consumers.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::data::time;

/// Formats epoch milliseconds as the RFC 3339 string used in every output
/// record: always UTC, always millisecond precision
/// (`2026-01-01T00:00:00.000Z`), so consumers can parse one fixed shape.
/// Timestamps outside chrono's range (impossible for validated input) fall
/// back to the decimal number of milliseconds.
pub fn format_ts_ms(ms: i64) -> String {
    time::format_timestamp_millis(ms)
}

/// A value as every output writes it (records, per-series gauges and
/// samples): the largest `f32` in place of a non-finite one, so JSON never
/// says `null` and a series never holds NaN.
pub fn finite_or_max(x: f32) -> f32 {
    if x.is_finite() {
        x
    } else {
        f32::MAX
    }
}

/// Feature `i`'s name in every output (records, per-series gauges and
/// samples): the model's name for it, or `f<i>` when it has none (missing or
/// empty), so a feature is always named and named alike everywhere.
pub fn feature_name(names: &[String], i: usize) -> Cow<'_, str> {
    match names.get(i) {
        Some(n) if !n.is_empty() => Cow::Borrowed(n),
        _ => Cow::Owned(format!("f{i}")),
    }
}

/// One record on the embeddings topic: the encoder's vector for a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingRecord {
    /// Series key.
    pub key: String,
    /// First row's event time, RFC 3339 ([`format_ts_ms`]).
    pub window_start_ts: String,
    /// Last row's event time, RFC 3339.
    pub window_end_ts: String,
    /// The model that produced it, so consumers can tell embedding spaces apart.
    pub model_version: String,
    /// The encoder's last hidden state.
    pub embedding: Vec<f32>,
    /// Reconstruction error of the window.
    pub score: f32,
    /// `score / threshold`: 1 or more is anomalous under `rule = "threshold"`.
    pub normalized_score: f32,
    /// The key's anomaly likelihood in `[0, 1]`; only with
    /// `anomalies.rule = "likelihood"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_likelihood: Option<f64>,
}

/// Where an output came from, so an alert can be traced to the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: i32,
    /// Offset of the message that completed the window.
    pub offset: i64,
}

/// One cell of a window that contributed much to its reconstruction error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contributor {
    /// Row within the window, 0 = oldest.
    pub step: usize,
    /// Event time of that row, RFC 3339 (empty if unknown).
    pub ts: String,
    /// Feature name from the manifest.
    pub feature: String,
    /// Squared reconstruction error of the cell.
    pub squared_error: f32,
}

/// A feature's share of an incident: its squared error summed over the
/// incident's anomalous windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureContribution {
    /// Feature name from the manifest ([`feature_name`]).
    pub feature: String,
    pub squared_error: f32,
}

/// One record on the anomalies topic: a key's incident opened (`state`
/// `open`), is still going on (`update`) or ended (`close`); see
/// `crate::score::incident`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentRecord {
    /// `open`, `update` or `close`.
    pub state: String,
    /// The same in every record of the incident; derived from the key, the
    /// first window's end and the model version, so a replay names it alike.
    pub incident_id: String,
    /// Series key.
    pub key: String,
    /// Why its first window was anomalous: `threshold`, `likelihood` or
    /// `non_finite_score` (the score is infinite or NaN; scores then read
    /// 3.4028235e38).
    pub reason: String,
    /// The model that scored the window of this record.
    pub model_version: String,
    /// The calibrated threshold of that model.
    pub threshold: f32,
    /// First anomalous window's first row's event time, RFC 3339.
    pub first_window_start_ts: String,
    /// First anomalous window's last row's event time: the incident's start.
    pub first_window_end_ts: String,
    /// Latest anomalous window's last row's event time (on a close: the
    /// incident's end).
    pub last_window_end_ts: String,
    /// Anomalous windows in the incident so far.
    pub windows: u64,
    /// The incident's highest raw score so far (its window: `peak_ts`).
    pub peak_score: f32,
    pub peak_normalized_score: f32,
    /// The likelihood of the peak window, under `anomalies.rule = "likelihood"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_anomaly_likelihood: Option<f64>,
    /// End of the peak window, RFC 3339.
    pub peak_ts: String,
    /// Features by their squared error summed over the incident's anomalous
    /// windows, largest first (`anomalies.top_contributors` of them).
    pub top_features: Vec<FeatureContribution>,
    /// Open and update: the window's end, RFC 3339; close: absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start_ts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end_ts: Option<String>,
    /// Open and update: the window's reconstruction error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Open and update: `score / threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalized_score: Option<f32>,
    /// Open and update, with `anomalies.rule = "likelihood"`: the key's
    /// likelihood (what crossed `anomalies.likelihood_threshold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_likelihood: Option<f64>,
    /// Open and update: the window's cells with the largest squared error,
    /// largest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contributors: Vec<Contributor>,
    /// Close: `last_window_end_ts - first_window_end_ts`, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// Close: `normal` (`anomalies.close_after` normal windows) or
    /// `evicted` (the key's state was dropped: `windowing.max_keys` or
    /// `windowing.key_ttl_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_reason: Option<String>,
    /// The input message of the window that produced the record (absent on
    /// a close by eviction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceRef>,
}

/// One record on the optional scores topic: every window's score, without
/// the embedding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRecord {
    /// Series key.
    pub key: String,
    /// First row's event time, RFC 3339.
    pub window_start_ts: String,
    /// Last row's event time, RFC 3339.
    pub window_end_ts: String,
    /// The model that scored it.
    pub model_version: String,
    /// Reconstruction error of the window.
    pub score: f32,
    /// `score / threshold`.
    pub normalized_score: f32,
    /// The key's anomaly likelihood; only with `anomalies.rule = "likelihood"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anomaly_likelihood: Option<f64>,
    /// Whether the window is anomalous under the configured rule.
    pub anomalous: bool,
    /// The incident the window belongs to: an anomalous window, or a normal
    /// one while its key's incident is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<String>,
    /// The verdict of the operator's mark that kept this anomalous window
    /// out of the anomalies topic (`maintenance`, `false_positive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<String>,
    /// The window's last point and the model's expected value for it, per
    /// feature in the model's order.
    pub last_point: Vec<PointValue>,
}

/// One feature of a window's last point: what came in and what the model
/// expected (its reconstruction of that point), both in input units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointValue {
    /// Feature name from the manifest ([`feature_name`]).
    pub feature: String,
    pub value: f32,
    /// The reconstruction decoder's output for the point, unscaled (see
    /// `WindowScore::expected`); a non-finite one reads `3.4028235e38`.
    pub expected: f32,
}

impl ScoreRecord {
    /// The record as JSON bytes.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

impl EmbeddingRecord {
    /// The record as JSON bytes (non-finite floats become `null`).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

impl IncidentRecord {
    /// The record as JSON bytes (non-finite floats become `null`).
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }
}

/// The `n` cells of a T×F squared-error matrix (row-major) with the largest
/// error, largest first; ties go to the earlier step, then the lower
/// feature index, so the explanation is deterministic.
///
/// An anomaly is only actionable if it says *where*: which time step and
/// which sensor — a non-finite error most of all, so it ranks first;
/// a feature is named by [`feature_name`], a step without a timestamp gets
/// an empty `ts`. Only the first `t·f` entries are read.
pub fn top_contributors(
    squared_error: &[f32],
    t: usize,
    f: usize,
    feature_names: &[String],
    timestamps: &[i64],
    n: usize,
) -> Vec<Contributor> {
    if f == 0 || n == 0 {
        return Vec::new();
    }
    let cells = squared_error.len().min(t.saturating_mul(f));
    // A non-finite cell is where the model broke down: it ranks above every
    // finite one and is written as the largest `f32` ([`finite_or_max`]).
    let error = |i: usize| finite_or_max(squared_error[i]);
    let mut idx: Vec<usize> = (0..cells).collect();
    let order = |a: &usize, b: &usize| error(*b).total_cmp(&error(*a)).then(a.cmp(b));
    if idx.len() > n {
        idx.select_nth_unstable_by(n - 1, order);
        idx.truncate(n);
    }
    idx.sort_unstable_by(order);
    idx.into_iter()
        .map(|i| {
            let (step, feat) = (i / f, i % f);
            Contributor {
                step,
                ts: timestamps
                    .get(step)
                    .map(|&ms| format_ts_ms(ms))
                    .unwrap_or_default(),
                feature: feature_name(feature_names, feat).into_owned(),
                squared_error: error(i),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// 2026-01-01T00:00:00Z in epoch ms.
    const NEW_YEAR_MS: i64 = 1_767_225_600_000;

    #[test]
    fn timestamps_in_outputs_have_one_fixed_shape() {
        assert_eq!(format_ts_ms(NEW_YEAR_MS), "2026-01-01T00:00:00.000Z");
        assert_eq!(
            format_ts_ms(NEW_YEAR_MS + 1_234),
            "2026-01-01T00:00:01.234Z"
        );
    }

    #[test]
    fn top_contributors_largest_first_ties_by_position() {
        // T = 3, F = 2; cells (step, feature) → error:
        // (0,0)=0.1 (0,1)=0.5 (1,0)=0.5 (1,1)=NaN (2,0)=0.9 (2,1)=0.0
        let se = [0.1, 0.5, 0.5, f32::NAN, 0.9, 0.0];
        let names = vec!["temp".to_string()]; // feature 1 has no name
        let ts = [1000, 2000, 3000];
        let top = top_contributors(&se, 3, 2, &names, &ts, 3);
        let got: Vec<(usize, &str, f32)> = top
            .iter()
            .map(|c| (c.step, c.feature.as_str(), c.squared_error))
            .collect();
        // The NaN cell is where the model broke: named first, as f32::MAX.
        assert_eq!(
            got,
            vec![(1, "f1", f32::MAX), (2, "temp", 0.9), (0, "f1", 0.5)]
        );
        assert_eq!(top[1].ts, "1970-01-01T00:00:03.000Z");
        // n larger than the cells: all six.
        let all = top_contributors(&se, 3, 2, &names, &ts, 10);
        assert_eq!(all.len(), 6);
        assert_eq!(all[5].squared_error, 0.0);
        assert_eq!((all[3].step, all[3].feature.as_str()), (1, "temp"));
        // Missing timestamps leave ts empty instead of failing.
        let no_ts = top_contributors(&se, 3, 2, &names, &[], 1);
        assert_eq!(no_ts[0].ts, "");
        assert!(top_contributors(&se, 3, 2, &names, &ts, 0).is_empty());
    }

    #[test]
    fn a_window_with_an_infinite_cell_names_that_cell_and_writes_no_null() {
        let se = [0.2, f32::INFINITY, 0.1, 0.3];
        let names = vec!["temp".to_string(), "load".to_string()];
        let top = top_contributors(&se, 2, 2, &names, &[10, 20], 1);
        assert_eq!(top.len(), 1);
        assert_eq!((top[0].step, top[0].feature.as_str()), (0, "load"));
        let json = serde_json::to_string(&top).unwrap();
        assert!(!json.contains("null"), "{json}");
    }

    #[test]
    fn output_records_serialise_with_the_documented_fields() {
        let rec = IncidentRecord {
            state: "open".into(),
            incident_id: "0a-b".into(),
            key: "pump-7".into(),
            reason: "likelihood".into(),
            model_version: "m@1".into(),
            threshold: 1.25,
            first_window_start_ts: format_ts_ms(NEW_YEAR_MS),
            first_window_end_ts: format_ts_ms(NEW_YEAR_MS + 60_000),
            last_window_end_ts: format_ts_ms(NEW_YEAR_MS + 60_000),
            windows: 1,
            peak_score: 2.5,
            peak_normalized_score: 2.0,
            peak_anomaly_likelihood: Some(0.75),
            peak_ts: format_ts_ms(NEW_YEAR_MS + 60_000),
            top_features: vec![FeatureContribution {
                feature: "temp".into(),
                squared_error: 0.75,
            }],
            window_start_ts: Some(format_ts_ms(NEW_YEAR_MS)),
            window_end_ts: Some(format_ts_ms(NEW_YEAR_MS + 60_000)),
            score: Some(2.5),
            normalized_score: Some(2.0),
            anomaly_likelihood: Some(0.75),
            contributors: vec![Contributor {
                step: 3,
                ts: format_ts_ms(NEW_YEAR_MS),
                feature: "temp".into(),
                squared_error: 0.75,
            }],
            duration_ms: None,
            close_reason: None,
            source: Some(SourceRef {
                topic: "in".into(),
                partition: 2,
                offset: 9,
            }),
        };
        let v: Value = serde_json::from_slice(&rec.to_json().unwrap()).unwrap();
        assert_eq!(v["state"], "open");
        assert_eq!(v["window_end_ts"], "2026-01-01T00:01:00.000Z");
        assert_eq!(v["threshold"], 1.25);
        assert_eq!(v["anomaly_likelihood"], 0.75);
        assert_eq!(v["reason"], "likelihood");
        assert_eq!(v["contributors"][0]["feature"], "temp");
        assert_eq!(v["contributors"][0]["step"], 3);
        assert_eq!(v["top_features"][0]["feature"], "temp");
        assert_eq!(v["source"]["partition"], 2);
        assert_eq!(v["source"]["offset"], 9);
        assert!(v.get("duration_ms").is_none() && v.get("close_reason").is_none());
        let emb = EmbeddingRecord {
            key: "k".into(),
            window_start_ts: "a".into(),
            window_end_ts: "b".into(),
            model_version: "m@1".into(),
            embedding: vec![0.5, f32::NAN],
            score: 1.0,
            normalized_score: 0.5,
            anomaly_likelihood: None,
        };
        let v: Value = serde_json::from_slice(&emb.to_json().unwrap()).unwrap();
        assert_eq!(v["embedding"], serde_json::json!([0.5, null]));
        assert_eq!(v["normalized_score"], 0.5);
        let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "key",
                "window_start_ts",
                "window_end_ts",
                "model_version",
                "embedding",
                "score",
                "normalized_score"
            ])
        );
    }
}
