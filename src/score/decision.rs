//! The anomaly decision for one scored window, shared by the daemon's sink
//! and the offline `lstm-ae score`: the rule (calibrated threshold or
//! per-key likelihood), the key's incident ([`super::incident`]), the
//! contributors, and the typed output records. It is pure: no I/O, no clock (processing time is
//! passed in, from a monotonic clock), so it is tested without Kafka.
//!
//! ## Non-finite scores
//!
//! A window of huge but finite values (e.g. `3.4e38` sentinels) can give an
//! infinite or NaN reconstruction error. Such a window is anomalous with
//! reason [`Reason::NonFiniteScore`] whatever the rule: it is never silently
//! skipped. It does not feed the likelihood (whose history would be
//! poisoned), and in the records its `score` and `normalized_score` are
//! written as the largest `f32` (`3.4028235e38`), never as JSON `null`.
//!
//! ## Memory
//!
//! The incident rule keeps state only for keys with an open incident,
//! bounded like the windower's keys: at most `max_keys` (a new key beyond
//! it drops the least recently updated one), and a key not seen for
//! `key_ttl_ms` (processing time) is forgotten, its incident closed with
//! reason `evicted`. The likelihood's per-key state is bounded by
//! [`KeyedLikelihood`] with the same limits.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use super::incident::{
    CloseReason, IncidentConfig, IncidentEvent, IncidentState, Incidents, Observation,
};
use super::{KeyEvictions, KeyedLikelihood, PostprocessConfig, PostprocessError, WindowErrors};
use crate::model::Manifest;
use crate::stream::records::{
    feature_name, finite_or_max, format_ts_ms, top_contributors, EmbeddingRecord,
    FeatureContribution, IncidentRecord, PointValue, ScoreRecord, SourceRef,
};

/// What makes a window anomalous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnomalyRule {
    /// `score / threshold >= 1`, with the threshold calibrated at training.
    #[default]
    Threshold,
    /// The key's anomaly likelihood (`[postprocess]`, as in `lstm-ae eval
    /// nab`) `>= likelihood_threshold`.
    Likelihood,
}

/// Why a window is anomalous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// `score / threshold >= 1` (rule `threshold`).
    Threshold,
    /// The likelihood reached `likelihood_threshold` (rule `likelihood`).
    Likelihood,
    /// The model's score is infinite or NaN (see the module docs).
    NonFiniteScore,
}

/// The decision's parameters (the daemon's `[anomalies]`, `[postprocess]`
/// and the key limits of `[windowing]`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScorerConfig {
    pub rule: AnomalyRule,
    /// With [`AnomalyRule::Likelihood`]: the likelihood at or above which a
    /// window is anomalous.
    pub likelihood_threshold: f64,
    /// Cells (and features) listed per incident record.
    pub top_contributors: usize,
    /// When an incident closes and how often it is updated.
    pub incidents: IncidentConfig,
    /// Most keys with incident or likelihood state.
    pub max_keys: usize,
    /// A key idle this long (processing time) loses its state.
    pub key_ttl_ms: u64,
    /// The likelihood's post-processing.
    pub postprocess: PostprocessConfig,
    /// Compute the likelihood under the threshold rule too (the offline
    /// `lstm-ae score` reports both); the daemon keeps no likelihood state
    /// it does not use.
    pub track_likelihood: bool,
}

/// One scored window, as the model and the stream give it.
#[derive(Debug, Clone, Copy)]
pub struct WindowScore<'a> {
    pub key: &'a str,
    pub start_ts_ms: i64,
    pub end_ts_ms: i64,
    /// The window's row timestamps, oldest first; empty when unknown (a
    /// window message without `start_ts`).
    pub timestamps: &'a [i64],
    /// `T × F` raw values, row-major.
    pub values: &'a [f32],
    /// Mean squared reconstruction error (scaled units).
    pub score: f32,
    /// `T × F` squared errors, row-major.
    pub squared_error: &'a [f32],
    /// `P × F` raw forecast of the next points, when the model predicts.
    pub prediction: Option<&'a [f32]>,
    /// The model's expected value for the window's last point: its
    /// reconstruction of that row, `F` raw values (the decoder's output
    /// unscaled, in natural row order: with a reversed reconstruction, the
    /// decoder's first step). Empty when not known.
    pub expected: &'a [f32],
    /// The version of the model that scored it (every record carries it).
    pub model_version: &'a str,
}

impl WindowScore<'_> {
    /// The window's last point, `F` raw values.
    pub fn last_point(&self, features: usize) -> &[f32] {
        &self.values[self.values.len().saturating_sub(features)..]
    }
}

/// What the scorer decided about a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `score / threshold`; non-finite when the score is.
    pub normalized: f32,
    /// The key's likelihood, with [`AnomalyRule::Likelihood`] and a finite score.
    pub likelihood: Option<f64>,
    /// Why the window is anomalous, if it is.
    pub anomalous: Option<Reason>,
    /// The incident the window belongs to, if any.
    pub incident_id: Option<String>,
    /// The incident record this window gives (open, update or close).
    pub incident: Option<IncidentEvent>,
}

/// Keys dropped from the scorer's per-key state, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScorerEvictions {
    /// From the incident state (each with a close record, reason `evicted`).
    pub incidents: KeyEvictions,
    /// From the likelihood's state (such a key loses its history).
    pub likelihood: KeyEvictions,
}

/// A model version with another window length or feature count cannot
/// take over the running state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a model with window {} × {} features cannot replace one with window {} × {} features while serving", .to.0, .to.1, .from.0, .from.1)]
pub struct ModelChange {
    pub from: (usize, usize),
    pub to: (usize, usize),
}

/// The anomaly decision and the records of a model's windows.
pub struct Scorer {
    cfg: ScorerConfig,
    threshold: f32,
    window: usize,
    features: usize,
    feature_names: Vec<String>,
    scaler: crate::data::Scaler,
    likelihood: Option<KeyedLikelihood>,
    incidents: Incidents,
}

impl Scorer {
    pub fn new(cfg: ScorerConfig, manifest: &Manifest) -> Result<Self, PostprocessError> {
        let spec = &manifest.spec;
        let likelihood = match (cfg.rule, cfg.track_likelihood) {
            (AnomalyRule::Threshold, false) => None,
            _ => Some(KeyedLikelihood::new(
                cfg.postprocess.clone(),
                spec.target_horizon(),
                spec.features,
                cfg.max_keys,
                cfg.key_ttl_ms,
            )?),
        };
        let incidents = Incidents::new(cfg.incidents, cfg.max_keys, cfg.key_ttl_ms);
        Ok(Scorer {
            threshold: manifest.threshold.value,
            window: spec.window,
            features: spec.features,
            feature_names: manifest.feature_names.clone(),
            scaler: manifest.scaler.clone(),
            likelihood,
            incidents,
            cfg,
        })
    }

    /// Scores the following windows with another version of the model
    /// (hot reload): its threshold, scaler and feature names. The window
    /// length and the features must be the same (the reload stage refuses
    /// others). Open incidents are kept; each key's likelihood
    /// history is carried over rescaled by the ratio of the thresholds —
    /// each threshold is calibrated on its own model's errors, so their
    /// ratio maps one model's error scale onto the other's. Returns the
    /// likelihood keys carried over.
    pub fn set_model(&mut self, manifest: &Manifest) -> Result<usize, ModelChange> {
        let spec = &manifest.spec;
        if (spec.window, spec.features) != (self.window, self.features) {
            return Err(ModelChange {
                from: (self.window, self.features),
                to: (spec.window, spec.features),
            });
        }
        let ratio = f64::from(manifest.threshold.value) / f64::from(self.threshold);
        self.threshold = manifest.threshold.value;
        self.scaler = manifest.scaler.clone();
        self.feature_names = manifest.feature_names.clone();
        Ok(self.likelihood.as_mut().map_or(0, |l| l.rescale(ratio)))
    }

    /// The calibrated threshold of the model.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The score threshold a window is held to under a false-positive
    /// `raise` ([`Scorer::decide_raised`]): raised under the threshold rule;
    /// the likelihood rule raises its likelihood threshold instead.
    pub fn raised_threshold(&self, raise: f64) -> f32 {
        match self.cfg.rule {
            AnomalyRule::Threshold => (f64::from(self.threshold) * raise) as f32,
            AnomalyRule::Likelihood => self.threshold,
        }
    }

    /// Keys with likelihood state (0 under the threshold rule).
    pub fn likelihood_keys(&self) -> usize {
        self.likelihood.as_ref().map_or(0, KeyedLikelihood::len)
    }

    /// Keys with an open incident.
    pub fn open_incidents(&self) -> usize {
        self.incidents.len()
    }

    /// The incidents still open (for the end of an offline run).
    pub fn open(&mut self) -> impl Iterator<Item = &super::Incident> {
        self.incidents.open()
    }

    /// The close records of the incidents of keys dropped since the last
    /// call, with their keys: to publish like any other record.
    pub fn take_evicted_incidents(&mut self) -> Vec<(String, IncidentEvent)> {
        self.incidents.take_evicted()
    }

    /// Keys dropped from the incident and the likelihood state since the
    /// last call.
    pub fn take_evictions(&mut self) -> ScorerEvictions {
        ScorerEvictions {
            incidents: self.incidents.take_evictions(),
            likelihood: self
                .likelihood
                .as_mut()
                .map_or_else(KeyEvictions::default, KeyedLikelihood::take_evictions),
        }
    }

    /// Window errors that did not enter a key's likelihood history since the
    /// last call (non-finite, or too large for finite moments; each scored 0).
    pub fn take_refused_likelihood_errors(&mut self) -> u64 {
        self.likelihood
            .as_mut()
            .map_or(0, KeyedLikelihood::take_refused)
    }

    /// Raw `rows × F` values in scaled units, as the model's score is.
    fn scaled(&self, raw: &[f32]) -> Vec<f32> {
        let f = self.features;
        match ArrayView2::from_shape((raw.len() / f.max(1), f), raw) {
            Ok(v) => self.scaler.transform(v).into_iter().collect(),
            Err(_) => vec![],
        }
    }

    /// Decides about the next window of `w.key`; windows of a key must come
    /// in event-time order. `now_ms` is processing time from a monotonic clock.
    pub fn decide(&mut self, w: &WindowScore<'_>, now_ms: u64) -> Decision {
        self.decide_with(w, now_ms, None, 1.0)
    }

    /// Decides about a window an operator's mark covers: `anomalous` is
    /// what the rule says, but the window neither opens nor extends an
    /// incident; the key's incident, if one is open, closes with `mark`
    /// (see [`Incidents::close`]).
    pub fn decide_marked(
        &mut self,
        w: &WindowScore<'_>,
        now_ms: u64,
        mark: CloseReason,
    ) -> Decision {
        self.decide_with(w, now_ms, Some(mark), 1.0)
    }

    /// Decides as [`Scorer::decide`] (or [`Scorer::decide_marked`] with a
    /// `mark`), with the key's threshold — or likelihood threshold under
    /// that rule — multiplied by `raise` (operators' false-positive marks,
    /// docs/feedback.md, *Threshold raise*). `normalized` stays relative
    /// to the plain threshold, so scores read the same raised or not.
    pub fn decide_raised(
        &mut self,
        w: &WindowScore<'_>,
        now_ms: u64,
        mark: Option<CloseReason>,
        raise: f64,
    ) -> Decision {
        self.decide_with(w, now_ms, mark, raise)
    }

    fn decide_with(
        &mut self,
        w: &WindowScore<'_>,
        now_ms: u64,
        mark: Option<CloseReason>,
        raise: f64,
    ) -> Decision {
        let normalized = w.score / self.threshold;
        let finite_score = w.score.is_finite() && normalized.is_finite();
        let mut likelihood = None;
        if finite_score && self.likelihood.is_some() {
            let f = self.features;
            let errors = WindowErrors {
                reconstruction: f64::from(w.score),
                timestamps: w.timestamps,
                last_point: self.scaled(w.last_point(f)),
                forecast: w.prediction.map(|p| self.scaled(p)),
                values: w.values,
            };
            if let Some(l) = self.likelihood.as_mut() {
                likelihood = Some(l.push(w.key, errors, now_ms));
            }
        }
        let anomalous = if !finite_score {
            Some(Reason::NonFiniteScore)
        } else {
            match (self.cfg.rule, likelihood) {
                (AnomalyRule::Likelihood, Some(v))
                    if v >= self.cfg.likelihood_threshold * raise =>
                {
                    Some(Reason::Likelihood)
                }
                (AnomalyRule::Threshold, _) if f64::from(normalized) >= raise => {
                    Some(Reason::Threshold)
                }
                _ => None,
            }
        };
        if let Some(reason) = mark {
            let step = self.incidents.close(w.key, reason, now_ms);
            return Decision {
                normalized,
                likelihood,
                anomalous,
                incident_id: step.incident_id,
                incident: step.event,
            };
        }
        let feature_errors = self.feature_errors(w.squared_error);
        let step = self.incidents.observe(
            w.key,
            &Observation {
                start_ts_ms: w.start_ts_ms,
                end_ts_ms: w.end_ts_ms,
                anomalous,
                score: w.score,
                normalized,
                likelihood,
                level: match (finite_score, self.cfg.rule, likelihood) {
                    (false, _, _) => f64::MAX,
                    (true, AnomalyRule::Likelihood, Some(l)) => l,
                    _ => f64::from(normalized),
                },
                feature_errors: &feature_errors,
                model_version: w.model_version,
            },
            now_ms,
        );
        Decision {
            normalized,
            likelihood,
            anomalous,
            incident_id: step.incident_id,
            incident: step.event,
        }
    }

    /// Per feature, a `T × F` squared error summed over the rows; empty
    /// when not known (offline scoring computes no per-cell error).
    fn feature_errors(&self, squared_error: &[f32]) -> Vec<f32> {
        let f = self.features;
        if f == 0 || squared_error.len() != self.window * f {
            return Vec::new();
        }
        let mut out = vec![0.0f32; f];
        for row in squared_error.chunks_exact(f) {
            for (sum, &e) in out.iter_mut().zip(row) {
                *sum += e;
            }
        }
        out
    }

    /// The embeddings topic's record.
    pub fn embedding_record(
        &self,
        w: &WindowScore<'_>,
        d: &Decision,
        embedding: Vec<f32>,
    ) -> EmbeddingRecord {
        EmbeddingRecord {
            key: w.key.to_string(),
            window_start_ts: format_ts_ms(w.start_ts_ms),
            window_end_ts: format_ts_ms(w.end_ts_ms),
            model_version: w.model_version.to_string(),
            embedding: embedding.into_iter().map(finite_or_max).collect(),
            score: finite_or_max(w.score),
            normalized_score: finite_or_max(d.normalized),
            anomaly_likelihood: d.likelihood,
        }
    }

    /// The scores topic's record: the embedding record without the vector,
    /// with the last point and its expected value.
    pub fn score_record(&self, w: &WindowScore<'_>, d: &Decision) -> ScoreRecord {
        let last_point = w
            .last_point(self.features)
            .iter()
            .zip(w.expected)
            .enumerate()
            .map(|(i, (&value, &expected))| PointValue {
                feature: feature_name(&self.feature_names, i).into_owned(),
                value,
                expected: finite_or_max(expected),
            })
            .collect();
        ScoreRecord {
            key: w.key.to_string(),
            window_start_ts: format_ts_ms(w.start_ts_ms),
            window_end_ts: format_ts_ms(w.end_ts_ms),
            model_version: w.model_version.to_string(),
            score: finite_or_max(w.score),
            normalized_score: finite_or_max(d.normalized),
            anomaly_likelihood: d.likelihood,
            anomalous: d.anomalous.is_some(),
            incident_id: d.incident_id.clone(),
            suppressed: None,
            last_point,
        }
    }

    /// The anomalies topic's record of an incident `event` of `key`: with
    /// the window that gave it and its input message for an open or an
    /// update (and a normal close), without for a close by eviction.
    pub fn incident_record(
        &self,
        key: &str,
        event: &IncidentEvent,
        window: Option<(&WindowScore<'_>, &Decision, SourceRef)>,
    ) -> IncidentRecord {
        let i = &event.incident;
        let mut features: Vec<(usize, f32)> = i
            .feature_errors
            .iter()
            .copied()
            .enumerate()
            .map(|(i, e)| (i, finite_or_max(e)))
            .collect();
        features.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        features.truncate(self.cfg.top_contributors);
        let closing = event.state == IncidentState::Close;
        let model_version = window.as_ref().map(|(w, _, _)| w.model_version);
        let mut rec = IncidentRecord {
            state: event.state.as_str().to_string(),
            incident_id: i.id.clone(),
            key: key.to_string(),
            reason: i.reason.as_str().to_string(),
            model_version: model_version.unwrap_or_default().to_string(),
            threshold: self.threshold,
            first_window_start_ts: format_ts_ms(i.first_start_ts_ms),
            first_window_end_ts: format_ts_ms(i.first_end_ts_ms),
            last_window_end_ts: format_ts_ms(i.last_end_ts_ms),
            windows: i.windows,
            peak_score: i.peak.score,
            peak_normalized_score: i.peak.normalized,
            peak_anomaly_likelihood: i.peak.likelihood,
            peak_ts: format_ts_ms(i.peak.end_ts_ms),
            top_features: features
                .into_iter()
                .map(|(f, e)| FeatureContribution {
                    feature: feature_name(&self.feature_names, f).into_owned(),
                    squared_error: e,
                })
                .collect(),
            window_start_ts: None,
            window_end_ts: None,
            score: None,
            normalized_score: None,
            anomaly_likelihood: None,
            contributors: vec![],
            duration_ms: closing.then(|| i.last_end_ts_ms.saturating_sub(i.first_end_ts_ms)),
            close_reason: event.close_reason.map(|r| r.as_str().to_string()),
            source: None,
        };
        if let Some((w, d, source)) = window {
            rec.source = Some(source);
            if !closing {
                rec.window_start_ts = Some(format_ts_ms(w.start_ts_ms));
                rec.window_end_ts = Some(format_ts_ms(w.end_ts_ms));
                rec.score = Some(finite_or_max(w.score));
                rec.normalized_score = Some(finite_or_max(d.normalized));
                rec.anomaly_likelihood = d.likelihood;
                rec.contributors = self.contributors(w);
            }
        }
        rec
    }

    /// The window's cells with the largest squared error.
    fn contributors(&self, w: &WindowScore<'_>) -> Vec<crate::stream::records::Contributor> {
        let mut contributors = top_contributors(
            w.squared_error,
            self.window,
            self.features,
            &self.feature_names,
            w.timestamps,
            self.cfg.top_contributors,
        );
        if w.timestamps.is_empty() {
            // Only the last row's time is known (no `start_ts`).
            for c in contributors
                .iter_mut()
                .filter(|c| c.step + 1 == self.window)
            {
                c.ts = format_ts_ms(w.end_ts_ms);
            }
        }
        contributors
    }
}

impl Reason {
    /// The `reason` field of an anomaly record.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Threshold => "threshold",
            Reason::Likelihood => "likelihood",
            Reason::NonFiniteScore => "non_finite_score",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ScorerConfig {
        ScorerConfig {
            rule: AnomalyRule::Threshold,
            likelihood_threshold: 0.5,
            top_contributors: 3,
            incidents: IncidentConfig {
                close_after: 2,
                update_every: 0,
            },
            max_keys: 100,
            key_ttl_ms: 1_000_000,
            postprocess: PostprocessConfig::default(),
            track_likelihood: false,
        }
    }

    fn manifest() -> Manifest {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
        crate::model::Bundle::open(&dir).unwrap().manifest
    }

    #[test]
    fn likelihood_and_incident_evictions_are_both_reported() {
        // Under the likelihood rule with a threshold of 0, every window of
        // a new key opens an incident, and every window leaves likelihood
        // state: with room for 2 keys, 5 keys evict 3 of each.
        let m = manifest();
        let (t, f) = (m.spec.window, m.spec.features);
        let mut s = Scorer::new(
            ScorerConfig {
                rule: AnomalyRule::Likelihood,
                max_keys: 2,
                likelihood_threshold: 0.0,
                ..cfg()
            },
            &m,
        )
        .unwrap();
        let values = vec![0.5f32; t * f];
        let se = vec![1.0f32; t * f];
        for k in ["a", "b", "c", "d", "e"] {
            let w = WindowScore {
                key: k,
                start_ts_ms: 0,
                end_ts_ms: 1,
                timestamps: &[],
                values: &values,
                score: 1.0,
                squared_error: &se,
                prediction: None,
                expected: &[],
                model_version: "1",
            };
            s.decide(&w, 0);
        }
        let ev = s.take_evictions();
        assert_eq!(ev.likelihood.capacity_keys, 3, "{ev:?}");
        assert_eq!(ev.incidents.capacity_keys, 3, "{ev:?}");
        let closed: Vec<String> = s
            .take_evicted_incidents()
            .into_iter()
            .map(|(k, e)| {
                assert_eq!(e.close_reason, Some(super::super::CloseReason::Evicted));
                k
            })
            .collect();
        assert_eq!(
            closed,
            ["a", "b", "c"],
            "each evicted key's incident closed"
        );
        assert_eq!(s.likelihood_keys(), 2);
        assert_eq!(s.take_evictions(), ScorerEvictions::default());
    }

    #[test]
    fn an_infinite_score_is_an_anomaly_with_a_reason_and_finite_json() {
        let m = manifest();
        let (t, f) = (m.spec.window, m.spec.features);
        for rule in [AnomalyRule::Threshold, AnomalyRule::Likelihood] {
            let mut s = Scorer::new(ScorerConfig { rule, ..cfg() }, &m).unwrap();
            let values = vec![3.4e38f32; t * f];
            let se = vec![f32::INFINITY; t * f];
            let nan = vec![f32::NAN; f];
            let w = WindowScore {
                key: "k",
                start_ts_ms: 0,
                end_ts_ms: 1,
                timestamps: &[],
                values: &values,
                score: f32::INFINITY,
                squared_error: &se,
                prediction: None,
                expected: &nan,
                model_version: "1",
            };
            let d = s.decide(&w, 0);
            assert_eq!(d.anomalous, Some(Reason::NonFiniteScore), "{rule:?}");
            let event = d.incident.clone().expect("the window opens an incident");
            let src = SourceRef {
                topic: "in".into(),
                partition: 0,
                offset: 0,
            };
            for json in [
                s.incident_record("k", &event, Some((&w, &d, src.clone())))
                    .to_json()
                    .unwrap(),
                s.embedding_record(&w, &d, vec![0.0]).to_json().unwrap(),
                s.score_record(&w, &d).to_json().unwrap(),
            ] {
                let text = String::from_utf8(json).unwrap();
                assert!(!text.contains("null"), "{text}");
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                let score = v["score"].as_f64().unwrap();
                assert!((score / f64::from(f32::MAX) - 1.0).abs() < 1e-6, "{text}");
            }
            let rec = s.incident_record("k", &event, Some((&w, &d, src)));
            let a: serde_json::Value = serde_json::from_slice(&rec.to_json().unwrap()).unwrap();
            assert_eq!(a["reason"], "non_finite_score");
            assert_eq!(a["state"], "open");
            assert!((a["peak_score"].as_f64().unwrap() / f64::from(f32::MAX) - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn a_non_finite_embedding_value_is_written_as_the_largest_f32() {
        let m = manifest();
        let (t, f) = (m.spec.window, m.spec.features);
        let mut s = Scorer::new(cfg(), &m).unwrap();
        let values = vec![1.0f32; t * f];
        let mut se = vec![0.01f32; t * f];
        se[f] = f32::INFINITY;
        let expected = vec![1.0f32; f];
        let w = WindowScore {
            key: "k",
            start_ts_ms: 0,
            end_ts_ms: 1,
            timestamps: &[],
            values: &values,
            score: 0.5,
            squared_error: &se,
            prediction: None,
            expected: &expected,
            model_version: "1",
        };
        let d = s.decide(&w, 0);
        let rec = s.embedding_record(&w, &d, vec![0.5, f32::NAN, f32::NEG_INFINITY]);
        let text = String::from_utf8(rec.to_json().unwrap()).unwrap();
        assert!(!text.contains("null"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let emb: Vec<f32> = v["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(emb, vec![0.5, f32::MAX, f32::MAX]);
        // The infinite cell (row 1, feature 0) leads the contributors.
        let c = s.contributors(&w);
        assert_eq!((c[0].step, c[0].squared_error), (1, f32::MAX), "{c:?}");
    }

    #[test]
    fn a_new_model_version_brings_its_threshold_and_a_new_window_length_is_refused() {
        let m = manifest();
        let (t, f) = (m.spec.window, m.spec.features);
        let mut s = Scorer::new(cfg(), &m).unwrap();
        let values = vec![1.0f32; t * f];
        let se = vec![0.0f32; t * f];
        let w = WindowScore {
            key: "k",
            start_ts_ms: 0,
            end_ts_ms: 1,
            timestamps: &[],
            values: &values,
            score: 1.5 * m.threshold.value,
            squared_error: &se,
            prediction: None,
            expected: &[],
            model_version: "1",
        };
        assert_eq!(s.decide(&w, 0).anomalous, Some(Reason::Threshold));
        let mut v2 = m.clone();
        v2.threshold.value = 2.0 * m.threshold.value;
        assert_eq!(s.set_model(&v2), Ok(0));
        let d = s.decide(&w, 0);
        assert_eq!(d.anomalous, None);
        assert!((d.normalized - 0.75).abs() < 1e-6);
        let mut longer = m.clone();
        longer.spec.window = t + 1;
        assert!(s.set_model(&longer).is_err());
        assert_eq!(s.threshold(), v2.threshold.value);
    }

    #[test]
    fn threshold_rule_and_contributor_times_of_a_window_without_start() {
        let m = manifest();
        let (t, f) = (m.spec.window, m.spec.features);
        let mut s = Scorer::new(cfg(), &m).unwrap();
        let values = vec![1.0f32; t * f];
        let mut se = vec![0.0f32; t * f];
        se[(t - 1) * f] = 9.0;
        let w = WindowScore {
            key: "k",
            start_ts_ms: 1_000,
            end_ts_ms: 1_000,
            timestamps: &[],
            values: &values,
            score: 2.0 * m.threshold.value,
            squared_error: &se,
            prediction: None,
            expected: &[],
            model_version: "1",
        };
        let d = s.decide(&w, 0);
        assert_eq!(d.anomalous, Some(Reason::Threshold));
        let rec = s.incident_record(
            "k",
            d.incident.as_ref().unwrap(),
            Some((
                &w,
                &d,
                SourceRef {
                    topic: "in".into(),
                    partition: 0,
                    offset: 0,
                },
            )),
        );
        assert_eq!(rec.contributors[0].step, t - 1);
        assert_eq!(rec.contributors[0].ts, format_ts_ms(1_000));
        let calm = WindowScore {
            score: 0.5 * m.threshold.value,
            ..w
        };
        assert_eq!(s.decide(&calm, 0).anomalous, None);
    }

    #[test]
    fn the_score_record_carries_the_last_point_and_its_expected_value_per_feature() {
        let mut m = manifest();
        m.spec.features = 2;
        m.spec.window = 3;
        m.feature_names = vec!["temp".into(), String::new()];
        let mut s = Scorer::new(cfg(), &m).unwrap();
        // Rows (1, 10), (2, 20), (3, 30): the last point is (3, 30).
        let values = [1.0, 10.0, 2.0, 20.0, 3.0, 30.0];
        let expected = [2.75, 31.5];
        let w = WindowScore {
            key: "k",
            start_ts_ms: 0,
            end_ts_ms: 1,
            timestamps: &[],
            values: &values,
            score: 0.5 * m.threshold.value,
            squared_error: &[0.0; 6],
            prediction: None,
            expected: &expected,
            model_version: "1",
        };
        let d = s.decide(&w, 0);
        let v: serde_json::Value =
            serde_json::from_slice(&s.score_record(&w, &d).to_json().unwrap()).unwrap();
        assert_eq!(
            v["last_point"],
            serde_json::json!([
                {"feature": "temp", "value": 3.0, "expected": 2.75},
                {"feature": "f1", "value": 30.0, "expected": 31.5},
            ])
        );
    }

    #[test]
    fn a_raised_threshold_keeps_a_window_between_the_plain_and_raised_one_normal() {
        let m = manifest();
        let (t, f) = (m.spec.window, m.spec.features);
        let values = vec![1.0f32; t * f];
        let se = vec![0.0f32; t * f];
        // 1.2 × the threshold: above the plain threshold, below 1.5 × it.
        let w = WindowScore {
            key: "k",
            start_ts_ms: 0,
            end_ts_ms: 1,
            timestamps: &[],
            values: &values,
            score: 1.2 * m.threshold.value,
            squared_error: &se,
            prediction: None,
            expected: &[],
            model_version: "1",
        };
        let mut plain = Scorer::new(cfg(), &m).unwrap();
        assert_eq!(plain.decide(&w, 0).anomalous, Some(Reason::Threshold));
        let mut raised = Scorer::new(cfg(), &m).unwrap();
        let d = raised.decide_raised(&w, 0, None, 1.5);
        assert_eq!(d.anomalous, None);
        assert!((d.normalized - 1.2).abs() < 1e-5, "{}", d.normalized);
        assert!(d.incident.is_none());
        let above = WindowScore {
            score: 1.6 * m.threshold.value,
            ..w
        };
        assert_eq!(
            raised.decide_raised(&above, 0, None, 1.5).anomalous,
            Some(Reason::Threshold)
        );
    }
}
