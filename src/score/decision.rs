//! The anomaly decision for one scored window, shared by the daemon's sink
//! and the offline `lstm-ae score`: the rule (calibrated threshold or
//! per-key likelihood), the alert-storm rule, the contributors, and the
//! typed output records. It is pure: no I/O, no clock (processing time is
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
//! The storm rule keeps state only for keys in an anomalous run or a
//! cool-down, bounded like the windower's keys: at most `max_keys` (a new
//! key beyond it drops the least recently updated one), and a key not
//! seen for `key_ttl_ms` (processing time) is forgotten. A forgotten
//! key starts a new run (its cool-down is lost). The likelihood's per-key
//! state is bounded by [`KeyedLikelihood`] with the same limits.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use super::{
    KeyEvictions, KeyedLikelihood, PostprocessConfig, PostprocessError, RecentKeys, WindowErrors,
};
use crate::model::Manifest;
use crate::stream::records::{
    feature_name, finite_or_max, format_ts_ms, top_contributors, AnomalyRecord, EmbeddingRecord,
    PointValue, ScoreRecord, SourceRef,
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
    /// Cells listed per anomaly.
    pub top_contributors: usize,
    /// Storm rule: publish only after this many anomalous windows in a row.
    pub min_consecutive: usize,
    /// Storm rule: after publishing, suppress this many windows of the key.
    pub cooldown_windows: usize,
    /// Most keys with storm or likelihood state.
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
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// `score / threshold`; non-finite when the score is.
    pub normalized: f32,
    /// The key's likelihood, with [`AnomalyRule::Likelihood`] and a finite score.
    pub likelihood: Option<f64>,
    /// Why the window is anomalous, if it is.
    pub anomalous: Option<Reason>,
    /// Whether an anomaly record is published (the storm rule let it through).
    pub publish: bool,
}

/// Keys dropped from the scorer's per-key state, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScorerEvictions {
    /// From the storm rule's state (such a key starts a new run).
    pub storm: KeyEvictions,
    /// From the likelihood's state (such a key loses its history).
    pub likelihood: KeyEvictions,
}

/// Per-key state of the storm rule.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Storm {
    consecutive: usize,
    cooldown_left: usize,
}

/// The storm rule's per-key state, bounded (see the module docs): only
/// keys in a run or a cool-down have an entry.
#[derive(Debug)]
struct Storms {
    keys: RecentKeys<Storm>,
}

impl Storms {
    /// Decides whether an anomalous window is published: after
    /// `min_consecutive` anomalous windows in a row, then nothing for
    /// `cooldown` windows of that key; counting starts again after the
    /// cool-down.
    fn publish(
        &mut self,
        key: &str,
        anomalous: bool,
        min_consecutive: usize,
        cooldown: usize,
        now_ms: u64,
    ) -> bool {
        self.keys.expire(now_ms);
        let held = self.keys.get(key).copied();
        let mut s = held.unwrap_or_default();
        let publish = if s.cooldown_left > 0 {
            // A new run must start after the cool-down, not during it.
            s.cooldown_left -= 1;
            s.consecutive = 0;
            false
        } else if anomalous {
            s.consecutive += 1;
            if s.consecutive >= min_consecutive {
                s.cooldown_left = cooldown;
                s.consecutive = 0;
                true
            } else {
                false
            }
        } else {
            s.consecutive = 0;
            false
        };
        if s == Storm::default() {
            // Most windows: a quiet key with no state, nothing to look up again.
            if held.is_some() {
                self.keys.remove(key);
            }
        } else {
            *self.keys.touch(key, now_ms, Storm::default) = s;
        }
        publish
    }
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
    storms: Storms,
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
        let storms = Storms {
            keys: RecentKeys::new(cfg.max_keys, cfg.key_ttl_ms),
        };
        Ok(Scorer {
            threshold: manifest.threshold.value,
            window: spec.window,
            features: spec.features,
            feature_names: manifest.feature_names.clone(),
            scaler: manifest.scaler.clone(),
            likelihood,
            storms,
            cfg,
        })
    }

    /// Scores the following windows with another version of the model
    /// (hot reload): its threshold, scaler and feature names. The window
    /// length and the features must be the same (the reload stage refuses
    /// others). The storm rule's state is kept; each key's likelihood
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

    /// Keys with likelihood state (0 under the threshold rule).
    pub fn likelihood_keys(&self) -> usize {
        self.likelihood.as_ref().map_or(0, KeyedLikelihood::len)
    }

    /// Keys with storm-rule state.
    pub fn storm_keys(&self) -> usize {
        self.storms.keys.len()
    }

    /// Keys dropped from the storm rule's and the likelihood's state since
    /// the last call.
    pub fn take_evictions(&mut self) -> ScorerEvictions {
        ScorerEvictions {
            storm: self.storms.keys.take_evictions(),
            likelihood: self
                .likelihood
                .as_mut()
                .map_or_else(KeyEvictions::default, KeyedLikelihood::take_evictions),
        }
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
                (AnomalyRule::Likelihood, Some(v)) if v >= self.cfg.likelihood_threshold => {
                    Some(Reason::Likelihood)
                }
                (AnomalyRule::Threshold, _) if normalized >= 1.0 => Some(Reason::Threshold),
                _ => None,
            }
        };
        let publish = self.storms.publish(
            w.key,
            anomalous.is_some(),
            self.cfg.min_consecutive,
            self.cfg.cooldown_windows,
            now_ms,
        );
        Decision {
            normalized,
            likelihood,
            anomalous,
            publish,
        }
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
            embedding,
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
            last_point,
        }
    }

    /// The anomalies topic's record, for a window with `d.anomalous` set.
    pub fn anomaly_record(
        &self,
        w: &WindowScore<'_>,
        d: &Decision,
        source: SourceRef,
    ) -> AnomalyRecord {
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
        AnomalyRecord {
            key: w.key.to_string(),
            window_start_ts: format_ts_ms(w.start_ts_ms),
            window_end_ts: format_ts_ms(w.end_ts_ms),
            score: finite_or_max(w.score),
            threshold: self.threshold,
            normalized_score: finite_or_max(d.normalized),
            anomaly_likelihood: d.likelihood,
            reason: d
                .anomalous
                .unwrap_or(Reason::Threshold)
                .as_str()
                .to_string(),
            model_version: w.model_version.to_string(),
            contributors,
            source,
        }
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

    fn cfg(min_consecutive: usize, cooldown_windows: usize) -> ScorerConfig {
        ScorerConfig {
            rule: AnomalyRule::Threshold,
            likelihood_threshold: 0.5,
            top_contributors: 3,
            min_consecutive,
            cooldown_windows,
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

    fn storms(max_keys: usize, ttl_ms: u64) -> Storms {
        Storms {
            keys: RecentKeys::new(max_keys, ttl_ms),
        }
    }

    fn run_rule(flags: &[bool], min: usize, cooldown: usize) -> Vec<bool> {
        let mut s = storms(10, 1_000);
        flags
            .iter()
            .map(|&a| s.publish("k", a, min, cooldown, 0))
            .collect()
    }

    #[test]
    fn without_a_rule_every_anomalous_window_is_published() {
        let f = [false, true, true, false, true];
        assert_eq!(run_rule(&f, 1, 0), f.to_vec());
    }

    #[test]
    fn consecutive_windows_and_cooldown() {
        // 3 in a row publish once, then 2 windows of silence.
        let f = [true, true, true, true, true, true, true, true, false, true];
        let want = [
            false, false, true, false, false, false, false, true, false, false,
        ];
        assert_eq!(run_rule(&f, 3, 2), want.to_vec());
    }

    #[test]
    fn quiet_keys_leave_no_state() {
        let mut s = storms(10_000, 1_000);
        for k in 0..1000 {
            s.publish(&k.to_string(), false, 2, 5, 0);
        }
        assert!(s.keys.is_empty());
    }

    #[test]
    fn storm_state_is_bounded_by_max_keys_and_ttl() {
        // Every key alerts once and enters a long cool-down: without a
        // bound, each would be kept for ever.
        let mut s = storms(100, 1_000);
        for k in 0..10_000u64 {
            s.publish(&k.to_string(), true, 1, 1_000, k / 100);
            assert!(s.keys.len() <= 100, "{} keys", s.keys.len());
        }
        assert_eq!(s.keys.take_evictions().capacity_keys, 9_900);
        // Idle past the TTL: dropped.
        s.publish("late", false, 1, 1_000, 10_000);
        assert!(s.keys.is_empty());
        assert_eq!(s.keys.take_evictions().expired_keys, 100);
    }

    #[test]
    fn a_new_storm_key_at_the_limit_drops_only_the_least_recently_updated() {
        // A dropped key forgets its cool-down and may alert again at once,
        // so making room must cost one key, not a tenth of them.
        let mut s = storms(20, 1_000_000);
        for k in 0..20u64 {
            s.publish(&k.to_string(), true, 1, 1_000, k);
        }
        s.publish("0", true, 1, 1_000, 20); // in its cool-down; now the most recent
        s.publish("new", true, 1, 1_000, 21);
        assert_eq!(s.keys.len(), 20);
        assert!(
            s.keys.get("1").is_none(),
            "1 was the least recently updated"
        );
        assert!(s.keys.get("0").is_some() && s.keys.get("2").is_some());
        assert_eq!(s.keys.take_evictions().capacity_keys, 1);
    }

    #[test]
    fn likelihood_and_storm_evictions_are_both_reported() {
        // Under the likelihood rule with min_consecutive 2, every anomalous
        // window of a new key leaves storm state, and every window
        // likelihood state: with room for 2 keys, 5 keys evict 3 of each.
        let m = manifest();
        let (t, f) = (m.spec.window, m.spec.features);
        let mut s = Scorer::new(
            ScorerConfig {
                rule: AnomalyRule::Likelihood,
                max_keys: 2,
                likelihood_threshold: 0.0,
                ..cfg(2, 0)
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
        assert_eq!(ev.storm.capacity_keys, 3, "{ev:?}");
        assert_eq!(s.likelihood_keys(), 2);
        assert_eq!(s.take_evictions(), ScorerEvictions::default());
    }

    #[test]
    fn an_infinite_score_is_an_anomaly_with_a_reason_and_finite_json() {
        let m = manifest();
        let (t, f) = (m.spec.window, m.spec.features);
        for rule in [AnomalyRule::Threshold, AnomalyRule::Likelihood] {
            let mut s = Scorer::new(ScorerConfig { rule, ..cfg(1, 0) }, &m).unwrap();
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
            assert!(d.publish);
            let src = SourceRef {
                topic: "in".into(),
                partition: 0,
                offset: 0,
            };
            for json in [
                s.anomaly_record(&w, &d, src.clone()).to_json().unwrap(),
                s.embedding_record(&w, &d, vec![0.0]).to_json().unwrap(),
                s.score_record(&w, &d).to_json().unwrap(),
            ] {
                let text = String::from_utf8(json).unwrap();
                assert!(!text.contains("null"), "{text}");
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                let score = v["score"].as_f64().unwrap();
                assert!((score / f64::from(f32::MAX) - 1.0).abs() < 1e-6, "{text}");
            }
            let a: serde_json::Value =
                serde_json::from_slice(&s.anomaly_record(&w, &d, src).to_json().unwrap()).unwrap();
            assert_eq!(a["reason"], "non_finite_score");
        }
    }

    #[test]
    fn a_new_model_version_brings_its_threshold_and_a_new_window_length_is_refused() {
        let m = manifest();
        let (t, f) = (m.spec.window, m.spec.features);
        let mut s = Scorer::new(cfg(1, 0), &m).unwrap();
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
        let mut s = Scorer::new(cfg(1, 0), &m).unwrap();
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
        let rec = s.anomaly_record(
            &w,
            &d,
            SourceRef {
                topic: "in".into(),
                partition: 0,
                offset: 0,
            },
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
        let mut s = Scorer::new(cfg(1, 0), &m).unwrap();
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
}
