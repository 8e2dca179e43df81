//! What each scored window says about its own series, for Grafana: the
//! opt-in, bounded `lstm_ae_series_*` gauges on `/metrics` ([`SeriesGauges`])
//! and the same facts as remote-write time series ([`remote_write_series`]).
//! Both use the metric names of `telemetry::metrics::series_names` and the
//! labels `key` and `feature`, so one dashboard
//! (`deploy/grafana/lstm-ae-series.json`) reads either.
//!
//! ## Per window
//!
//! [`WindowFacts`]: the key, the window's end time, its normalised score
//! (non-finite scores are written as the largest `f32`, as in the records),
//! 0/1 anomalous, the threshold, and per feature the window's last point and
//! the model's expected value for it. A key's anomalous window also sets
//! the end time of its latest anomaly
//! (`lstm_ae_series_last_anomaly_timestamp_seconds`), which the dashboard's
//! table of keys reads.
//!
//! ## Bounds of the gauges
//!
//! Each key costs 3 + 2 × features series (one more once it had an
//! anomaly) in every scrape, so the gauges are off unless
//! `series_metrics.enabled`, only keys matching `series_metrics.keys` get
//! them, at most `series_metrics.max_keys` keys have them (a new key beyond
//! it removes the series of the least recently updated key) and a key
//! without a window for `series_metrics.ttl_ms` (processing time) loses
//! them. The key set is a [`RecentKeys`]; removals and left-out windows are
//! counted. Remote writes carry every key: the receiver holds them, not
//! the daemon.
//!
//! ## Label values
//!
//! A key is written as it is: keys are non-empty UTF-8 (the codec refuses
//! others), and any UTF-8 is a valid Prometheus label value (the text format
//! escapes `\`, `"` and line breaks; remote writes carry bytes). An empty
//! key would be an absent label in Prometheus, so one is left out. A
//! feature is named as in the records (`stream::records::feature_name`: an
//! unnamed one is `f<column>`).

use serde::{Deserialize, Serialize};

use super::remote_write::proto::{Label, Sample, TimeSeries};
use crate::score::RecentKeys;
use crate::stream::records::{feature_name, finite_or_max};
use crate::telemetry::metrics::series_names;
use crate::telemetry::Metrics;

/// `[series_metrics]`: per-key gauges on `/metrics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeriesMetricsSettings {
    /// Export the `lstm_ae_series_*` gauges. Off by default: each key adds
    /// 3 + 2 × features series to every scrape, one more after its first
    /// anomaly (for many keys, use `[remote_write]` instead).
    pub enabled: bool,
    /// Globs of the keys that get gauges (`*` any run of characters, `?`
    /// one, `[ab]` one of a set); empty = every key.
    pub keys: Vec<String>,
    /// Most keys with gauges; a new key beyond it removes the series of the
    /// least recently updated key.
    pub max_keys: usize,
    /// A key without a scored window for this long (processing time) loses
    /// its series.
    pub ttl_ms: u64,
}

impl Default for SeriesMetricsSettings {
    fn default() -> Self {
        SeriesMetricsSettings {
            enabled: false,
            keys: vec![],
            max_keys: 1_000,
            ttl_ms: 3_600_000,
        }
    }
}

/// A `[series_metrics]` value that cannot work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid series_metrics.{field}: {reason}")]
pub struct SeriesSettingsError {
    /// The key inside `[series_metrics]`.
    pub field: &'static str,
    pub reason: String,
}

impl SeriesMetricsSettings {
    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), SeriesSettingsError> {
        self.filter().map(|_| ())
    }

    /// The compiled key globs (empty: every key).
    fn filter(&self) -> Result<Vec<glob::Pattern>, SeriesSettingsError> {
        let bad = |field, reason: String| Err(SeriesSettingsError { field, reason });
        if self.max_keys == 0 {
            return bad("max_keys", "must be at least 1".into());
        }
        if self.ttl_ms == 0 {
            return bad("ttl_ms", "must be at least 1".into());
        }
        let mut out = vec![];
        for g in &self.keys {
            match glob::Pattern::new(g) {
                Ok(p) => out.push(p),
                Err(e) => return bad("keys", format!("{g:?} is not a glob: {e}")),
            }
        }
        Ok(out)
    }
}

/// One scored window's facts about its series.
#[derive(Debug, Clone, Copy)]
pub struct WindowFacts<'a> {
    pub key: &'a str,
    /// Event time of the window's last point, Unix milliseconds: the
    /// timestamp of its remote-write samples.
    pub end_ts_ms: i64,
    /// Score / threshold.
    pub normalized_score: f32,
    pub anomalous: bool,
    /// The threshold the raw score was divided by.
    pub threshold: f32,
    /// Feature names of the model that scored the window, in its order.
    pub features: &'a [String],
    /// The window's last point, one value per feature, input units.
    pub values: &'a [f32],
    /// The model's expected value for that point, per feature, input units
    /// (`score::WindowScore::expected`).
    pub expected: &'a [f32],
}

/// A value as written, in the samples' type.
fn finite(x: f32) -> f64 {
    f64::from(finite_or_max(x))
}

impl WindowFacts<'_> {
    fn score(&self) -> f64 {
        finite(self.normalized_score)
    }

    fn anomalous_value(&self) -> f64 {
        if self.anomalous {
            1.0
        } else {
            0.0
        }
    }

    fn end_seconds(&self) -> f64 {
        self.end_ts_ms as f64 / 1000.0
    }

    /// (feature label, value, expected value) per feature.
    fn per_feature(&self) -> impl Iterator<Item = (std::borrow::Cow<'_, str>, f64, f64)> + '_ {
        self.values
            .iter()
            .zip(self.expected)
            .enumerate()
            .map(|(i, (v, e))| (feature_name(self.features, i), finite(*v), finite(*e)))
    }
}

/// An input partition, `(topic, partition)`.
pub type Partition = (String, i32);

/// Per-key bookkeeping of the gauges.
#[derive(Debug, Default)]
struct KeyGauges {
    /// The key has a last-anomaly gauge to remove with it.
    had_anomaly: bool,
    /// The input partition of its latest window, if known: the key's
    /// series leave when this daemon loses that partition.
    partition: Option<Partition>,
}

/// The `lstm_ae_series_*` gauges of at most `max_keys` recently scored
/// keys (see the module docs). Owned by the one task that scores windows.
pub struct SeriesGauges {
    keys: RecentKeys<KeyGauges>,
    filter: Vec<glob::Pattern>,
    /// Feature label values the per-feature gauges have now.
    features: Vec<String>,
    metrics: Metrics,
}

impl SeriesGauges {
    /// Gauges under `settings` (whatever `enabled` says: the caller builds
    /// them only when it is set), in `metrics`.
    pub fn new(
        settings: &SeriesMetricsSettings,
        metrics: &Metrics,
    ) -> Result<SeriesGauges, SeriesSettingsError> {
        Ok(SeriesGauges {
            keys: RecentKeys::new(settings.max_keys, settings.ttl_ms),
            filter: settings.filter()?,
            features: vec![],
            metrics: metrics.clone(),
        })
    }

    /// Keys with gauges now.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Sets the key's gauges from a scored window at processing time
    /// `now_ms` (monotonic), first removing keys quiet past the TTL.
    pub fn record(&mut self, w: &WindowFacts<'_>, now_ms: u64) {
        self.record_from(w, None, now_ms);
    }

    /// [`SeriesGauges::record`] of a window from input `partition`
    /// (`(topic, partition)`), for [`SeriesGauges::remove_partitions`].
    pub fn record_from(
        &mut self,
        w: &WindowFacts<'_>,
        partition: Option<(&str, i32)>,
        now_ms: u64,
    ) {
        self.expire(now_ms);
        let admitted = !w.key.is_empty()
            && (self.filter.is_empty() || self.filter.iter().any(|p| p.matches(w.key)));
        if !admitted {
            self.metrics.series_metrics_windows_filtered.inc();
            return;
        }
        self.adopt_features(w);
        let SeriesGauges {
            keys,
            features,
            metrics,
            ..
        } = self;
        let state = keys.touch_with(w.key, now_ms, KeyGauges::default, |key, old| {
            remove_series(metrics, features, key, &old)
        });
        let m = &*metrics;
        let key = w.key;
        m.series_normalized_score
            .with_label_values(&[key])
            .set(w.score());
        m.series_anomalous
            .with_label_values(&[key])
            .set(w.anomalous_value());
        m.series_threshold
            .with_label_values(&[key])
            .set(f64::from(w.threshold));
        for (feature, value, expected) in w.per_feature() {
            m.series_value
                .with_label_values(&[key, &feature])
                .set(value);
            m.series_expected_value
                .with_label_values(&[key, &feature])
                .set(expected);
        }
        if w.anomalous {
            state.had_anomaly = true;
            m.series_last_anomaly
                .with_label_values(&[key])
                .set(w.end_seconds());
        }
        let from = |(t, p): (&str, i32)| (t.to_string(), p);
        match (&state.partition, partition) {
            (Some((t, p)), Some((t2, p2))) if t == t2 && *p == p2 => {}
            (_, new) => state.partition = new.map(from),
        }
        self.count();
    }

    /// Removes the series of keys without a window for longer than the TTL
    /// at `now_ms`; the caller's timer calls this when no windows come.
    pub fn expire(&mut self, now_ms: u64) {
        let SeriesGauges {
            keys,
            features,
            metrics,
            ..
        } = self;
        keys.expire_with(now_ms, |key, old| {
            remove_series(metrics, features, key, &old)
        });
        self.count();
    }

    /// Removes `key`'s series now (e.g. its partition was revoked); not
    /// counted as an eviction.
    pub fn remove(&mut self, key: &str) {
        if let Some(old) = self.keys.remove(key) {
            remove_series(&self.metrics, &self.features, key, &old);
        }
        self.count();
    }

    /// Removes the series of every key whose latest window came from one
    /// of `partitions` (this daemon no longer reads them: the key's next
    /// windows are another daemon's); not counted as an eviction.
    pub fn remove_partitions(&mut self, partitions: &std::collections::HashSet<Partition>) {
        if partitions.is_empty() {
            return;
        }
        let SeriesGauges {
            keys,
            features,
            metrics,
            ..
        } = self;
        keys.remove_where(
            |_, s| s.partition.as_ref().is_some_and(|p| partitions.contains(p)),
            |key, old| remove_series(metrics, features, key, &old),
        );
        self.count();
    }

    /// A window scored by a model with other feature names (a reload)
    /// replaces every key's per-feature series: each key gets the new ones
    /// with its next window.
    fn adopt_features(&mut self, w: &WindowFacts<'_>) {
        let n = w.values.len().min(w.expected.len());
        let same = self.features.len() == n
            && (0..n).all(|i| feature_name(w.features, i) == self.features[i].as_str());
        if !same {
            self.metrics.series_value.reset();
            self.metrics.series_expected_value.reset();
            self.features = (0..n)
                .map(|i| feature_name(w.features, i).into_owned())
                .collect();
        }
    }

    /// The key count and the evictions since the last call, to the metrics.
    fn count(&mut self) {
        let e = self.keys.take_evictions();
        let m = &self.metrics;
        if e.expired_keys > 0 {
            m.series_metrics_keys_evicted
                .with_label_values(&["expired"])
                .inc_by(e.expired_keys);
        }
        if e.capacity_keys > 0 {
            m.series_metrics_keys_evicted
                .with_label_values(&["capacity"])
                .inc_by(e.capacity_keys);
        }
        m.series_metrics_keys.set(self.keys.len() as i64);
    }
}

/// Removes every gauge of `key`. A gauge that is not there (never set) is
/// no error.
fn remove_series(m: &Metrics, features: &[String], key: &str, state: &KeyGauges) {
    let _ = m.series_normalized_score.remove_label_values(&[key]);
    let _ = m.series_anomalous.remove_label_values(&[key]);
    let _ = m.series_threshold.remove_label_values(&[key]);
    for f in features {
        let _ = m.series_value.remove_label_values(&[key, f]);
        let _ = m.series_expected_value.remove_label_values(&[key, f]);
    }
    if state.had_anomaly {
        let _ = m.series_last_anomaly.remove_label_values(&[key]);
    }
}

/// The window's facts as remote-write time series: one sample each, at the
/// window's end time, under the gauges' names and labels (sorted by name).
/// Nothing for an empty key.
pub fn remote_write_series(w: &WindowFacts<'_>) -> Vec<TimeSeries> {
    if w.key.is_empty() {
        return vec![];
    }
    let one = |name: &str, feature: Option<&str>, value: f64| {
        let mut labels = vec![label("__name__", name)];
        if let Some(f) = feature {
            labels.push(label("feature", f));
        }
        labels.push(label("key", w.key));
        TimeSeries {
            labels,
            samples: vec![Sample {
                value,
                timestamp: w.end_ts_ms,
            }],
        }
    };
    let mut out = Vec::with_capacity(4 + 2 * w.features.len()); // + the last anomaly
    out.push(one(series_names::NORMALIZED_SCORE, None, w.score()));
    out.push(one(series_names::ANOMALOUS, None, w.anomalous_value()));
    out.push(one(series_names::THRESHOLD, None, f64::from(w.threshold)));
    for (feature, value, expected) in w.per_feature() {
        out.push(one(series_names::VALUE, Some(&feature), value));
        out.push(one(series_names::EXPECTED_VALUE, Some(&feature), expected));
    }
    if w.anomalous {
        out.push(one(series_names::LAST_ANOMALY, None, w.end_seconds()));
    }
    out
}

fn label(name: &str, value: &str) -> Label {
    Label {
        name: name.into(),
        value: value.into(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn features() -> Vec<String> {
        vec!["temp".into(), "rpm".into()]
    }

    fn facts<'a>(
        key: &'a str,
        features: &'a [String],
        values: &'a [f32],
        expected: &'a [f32],
        anomalous: bool,
    ) -> WindowFacts<'a> {
        WindowFacts {
            key,
            end_ts_ms: 1_700_000_060_500,
            normalized_score: if anomalous { 1.5 } else { 0.25 },
            anomalous,
            threshold: 0.125,
            features,
            values,
            expected,
        }
    }

    fn settings(max_keys: usize, ttl_ms: u64, keys: &[&str]) -> SeriesMetricsSettings {
        SeriesMetricsSettings {
            enabled: true,
            keys: keys.iter().map(|k| k.to_string()).collect(),
            max_keys,
            ttl_ms,
        }
    }

    /// (metric name, sorted labels) → value of every `lstm_ae_series_*`
    /// sample with a `key` label in the registry's output.
    fn exported(m: &Metrics) -> BTreeMap<(String, Vec<(String, String)>), f64> {
        let mut out = BTreeMap::new();
        for f in m.registry.gather() {
            for s in f.get_metric() {
                let mut labels: Vec<(String, String)> = s
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_string(), l.value().to_string()))
                    .collect();
                labels.sort();
                if labels.iter().any(|(n, _)| n == "key") {
                    out.insert((f.name().to_string(), labels), s.get_gauge().get_value());
                }
            }
        }
        out
    }

    fn keys_exported(m: &Metrics) -> BTreeSet<String> {
        exported(m)
            .into_keys()
            .flat_map(|(_, labels)| labels)
            .filter(|(n, _)| n == "key")
            .map(|(_, v)| v)
            .collect()
    }

    #[test]
    fn a_window_sets_every_gauge_of_its_key() {
        let m = Metrics::new();
        let mut g = SeriesGauges::new(&settings(10, 1_000, &[]), &m).unwrap();
        let f = features();
        g.record(
            &facts("pump-1", &f, &[70.5, 1200.0], &[71.0, 1190.0], false),
            0,
        );
        let lbl = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let key = [("key", "pump-1")];
        let want: BTreeMap<_, _> = [
            (("lstm_ae_series_normalized_score", lbl(&key)), 0.25),
            (("lstm_ae_series_anomalous", lbl(&key)), 0.0),
            (("lstm_ae_series_threshold", lbl(&key)), 0.125),
            (
                (
                    "lstm_ae_series_value",
                    lbl(&[("feature", "rpm"), ("key", "pump-1")]),
                ),
                1200.0,
            ),
            (
                (
                    "lstm_ae_series_value",
                    lbl(&[("feature", "temp"), ("key", "pump-1")]),
                ),
                70.5,
            ),
            (
                (
                    "lstm_ae_series_expected_value",
                    lbl(&[("feature", "rpm"), ("key", "pump-1")]),
                ),
                1190.0,
            ),
            (
                (
                    "lstm_ae_series_expected_value",
                    lbl(&[("feature", "temp"), ("key", "pump-1")]),
                ),
                71.0,
            ),
        ]
        .into_iter()
        .map(|((n, l), v)| ((n.to_string(), l), v))
        .collect();
        assert_eq!(exported(&m), want);
        // An anomalous window adds its end time as the last anomaly.
        g.record(
            &facts("pump-1", &f, &[90.0, 1200.0], &[71.0, 1190.0], true),
            1,
        );
        let e = exported(&m);
        assert_eq!(
            e[&(
                "lstm_ae_series_last_anomaly_timestamp_seconds".to_string(),
                lbl(&key)
            )],
            1_700_000_060.5
        );
        assert_eq!(e[&("lstm_ae_series_anomalous".to_string(), lbl(&key))], 1.0);
        assert_eq!(m.series_metrics_keys.get(), 1);
    }

    #[test]
    fn max_keys_holds_under_ten_times_as_many_keys_and_the_oldest_leave_first() {
        let m = Metrics::new();
        let mut g = SeriesGauges::new(&settings(50, u64::MAX, &[]), &m).unwrap();
        let f = features();
        for i in 0..500u64 {
            let key = format!("k{i}");
            // Every 10th window is anomalous: those keys have one more gauge to remove.
            let anomalous = i % 10 == 0;
            g.record(&facts(&key, &f, &[1.0, 2.0], &[1.5, 2.5], anomalous), i);
            assert!(g.len() <= 50);
        }
        let want: BTreeSet<String> = (450..500).map(|i| format!("k{i}")).collect();
        assert_eq!(keys_exported(&m), want, "the 50 most recent keys");
        // 50 keys × (3 + 2 × 2 features) series, and a last anomaly for the
        // 5 anomalous keys among them: nothing of an evicted key is left.
        assert_eq!(exported(&m).len(), 50 * 7 + 5);
        assert_eq!(
            m.series_metrics_keys_evicted
                .with_label_values(&["capacity"])
                .get(),
            450
        );
        assert_eq!(m.series_metrics_keys.get(), 50);
        // A key updated again is the most recent: the next new key evicts another.
        g.record(&facts("k450", &f, &[1.0, 2.0], &[1.5, 2.5], false), 600);
        g.record(&facts("new", &f, &[1.0, 2.0], &[1.5, 2.5], false), 601);
        let keys = keys_exported(&m);
        assert!(keys.contains("k450") && keys.contains("new") && !keys.contains("k451"));
    }

    #[test]
    fn a_quiet_key_loses_its_series_after_the_ttl_and_the_removal_is_counted() {
        let m = Metrics::new();
        let mut g = SeriesGauges::new(&settings(10, 1_000, &[]), &m).unwrap();
        let f = features();
        g.record(&facts("quiet", &f, &[1.0, 2.0], &[1.0, 2.0], true), 0);
        g.record(&facts("busy", &f, &[1.0, 2.0], &[1.0, 2.0], false), 600);
        g.expire(1_000);
        assert_eq!(
            keys_exported(&m),
            BTreeSet::from(["busy".into(), "quiet".into()])
        );
        g.expire(1_001);
        assert_eq!(keys_exported(&m), BTreeSet::from(["busy".to_string()]));
        assert!(!m.render().contains("key=\"quiet\""), "{}", m.render());
        assert_eq!(
            m.series_metrics_keys_evicted
                .with_label_values(&["expired"])
                .get(),
            1
        );
        // A window renews the TTL; record() expires others by itself.
        g.record(&facts("busy", &f, &[1.0, 2.0], &[1.0, 2.0], false), 1_500);
        g.record(&facts("other", &f, &[1.0, 2.0], &[1.0, 2.0], false), 2_500);
        assert_eq!(
            keys_exported(&m),
            BTreeSet::from(["busy".into(), "other".into()])
        );
        g.record(&facts("other", &f, &[1.0, 2.0], &[1.0, 2.0], false), 2_501);
        assert_eq!(keys_exported(&m), BTreeSet::from(["other".to_string()]));
        g.remove("other");
        assert!(keys_exported(&m).is_empty());
        assert_eq!(g.len(), 0);
        assert_eq!(m.series_metrics_keys.get(), 0);
    }

    #[test]
    fn the_keys_of_a_lost_partition_lose_their_series_and_the_others_keep_theirs() {
        let m = Metrics::new();
        let mut g = SeriesGauges::new(&settings(10, u64::MAX, &[]), &m).unwrap();
        let f = features();
        let w = |k| facts(k, &f, &[1.0, 2.0], &[1.0, 2.0], true);
        g.record_from(&w("a"), Some(("in", 0)), 0);
        g.record_from(&w("b"), Some(("in", 1)), 0);
        g.record_from(&w("c"), Some(("other", 0)), 0);
        g.record(&w("d"), 0);
        // A key's partition is that of its latest window.
        g.record_from(&w("e"), Some(("in", 1)), 0);
        g.record_from(&w("e"), Some(("in", 2)), 1);
        let lost = std::collections::HashSet::from([("in".to_string(), 1), ("in".to_string(), 2)]);
        g.remove_partitions(&lost);
        assert_eq!(
            keys_exported(&m),
            BTreeSet::from(["a", "c", "d"].map(String::from))
        );
        // Every series of a removed key is gone, its last anomaly included;
        // a removal is not an eviction.
        assert_eq!(exported(&m).len(), 3 * (3 + 2 * 2 + 1));
        assert_eq!(g.len(), 3);
        assert_eq!(m.series_metrics_keys.get(), 3);
        for reason in ["expired", "capacity"] {
            assert_eq!(
                m.series_metrics_keys_evicted
                    .with_label_values(&[reason])
                    .get(),
                0
            );
        }
    }

    #[test]
    fn only_keys_matching_a_glob_get_gauges_and_the_others_are_counted() {
        let m = Metrics::new();
        let mut g = SeriesGauges::new(&settings(10, u64::MAX, &["pump-*", "fan-?"]), &m).unwrap();
        let f = features();
        for k in ["pump-1", "pump-22", "fan-3", "fan-33", "valve-1", ""] {
            g.record(&facts(k, &f, &[1.0, 2.0], &[1.0, 2.0], false), 0);
        }
        assert_eq!(
            keys_exported(&m),
            BTreeSet::from(["fan-3", "pump-1", "pump-22"].map(String::from))
        );
        assert_eq!(m.series_metrics_windows_filtered.get(), 3);
    }

    #[test]
    fn new_feature_names_replace_the_per_feature_series() {
        let m = Metrics::new();
        let mut g = SeriesGauges::new(&settings(10, u64::MAX, &[]), &m).unwrap();
        let old = features();
        g.record(&facts("a", &old, &[1.0, 2.0], &[1.0, 2.0], false), 0);
        g.record(&facts("b", &old, &[1.0, 2.0], &[1.0, 2.0], false), 0);
        let new = vec!["pressure".to_string(), String::new()];
        g.record(&facts("a", &new, &[3.0, 4.0], &[3.0, 4.0], false), 1);
        let features: BTreeSet<(String, String)> = exported(&m)
            .into_keys()
            .filter_map(|(_, labels)| {
                let get = |n: &str| labels.iter().find(|(l, _)| l == n).map(|(_, v)| v.clone());
                Some((get("key")?, get("feature")?))
            })
            .collect();
        // b keeps its key-level gauges; its old per-feature ones are gone
        // until its next window. An unnamed feature is named as in the
        // records: f and its column number.
        let want: BTreeSet<(String, String)> = [("a", "pressure"), ("a", "f1")]
            .into_iter()
            .map(|(k, f)| (k.to_string(), f.to_string()))
            .collect();
        assert_eq!(features, want);
        assert_eq!(keys_exported(&m), BTreeSet::from(["a".into(), "b".into()]));
    }

    #[test]
    fn awkward_keys_are_exported_escaped_and_a_non_finite_score_as_the_largest_f32() {
        let m = Metrics::new();
        let mut g = SeriesGauges::new(&settings(10, u64::MAX, &[]), &m).unwrap();
        let f = vec!["v".to_string()];
        let key = "a \"quoted\" \\ key\nwith a line break, ünïcödé and {braces}";
        let mut w = facts(key, &f, &[1.0], &[1.0], true);
        w.normalized_score = f32::NAN;
        g.record(&w, 0);
        let text = m.render();
        let escaped = "a \\\"quoted\\\" \\\\ key\\nwith a line break, ünïcödé and {braces}";
        assert!(
            text.contains(&format!(
                "lstm_ae_series_normalized_score{{key=\"{escaped}\"}} 340282346638528860000000000000000000000\n"
            )),
            "{text}"
        );
    }

    #[test]
    fn remote_write_series_carry_the_gauges_names_labels_and_values() {
        let m = Metrics::new();
        let mut g = SeriesGauges::new(&settings(10, u64::MAX, &[]), &m).unwrap();
        let f = features();
        let w = facts("pump-7", &f, &[70.5, 1200.0], &[71.0, 1190.0], true);
        g.record(&w, 0);
        let series = remote_write_series(&w);
        let mut from_remote = BTreeMap::new();
        for s in &series {
            let names: Vec<&str> = s.labels.iter().map(|l| l.name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "labels sorted by name");
            assert_eq!(s.samples.len(), 1);
            assert_eq!(s.samples[0].timestamp, 1_700_000_060_500);
            let name = s.labels[0].value.clone();
            assert_eq!(s.labels[0].name, "__name__");
            let mut labels: Vec<(String, String)> = s.labels[1..]
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            labels.sort();
            from_remote.insert((name, labels), s.samples[0].value);
        }
        assert_eq!(from_remote, exported(&m));
        assert_eq!(series.len(), 3 + 2 * 2 + 1);
        let quiet = facts("pump-7", &f, &[70.5, 1200.0], &[71.0, 1190.0], false);
        assert_eq!(
            remote_write_series(&quiet).len(),
            3 + 2 * 2,
            "no last anomaly"
        );
        assert!(remote_write_series(&facts("", &f, &[1.0, 2.0], &[1.0, 2.0], true)).is_empty());
    }

    #[test]
    fn the_table_loads_shows_its_defaults_in_the_example_and_is_checked_at_load() {
        use crate::config::Settings;
        let example =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/serve.example.toml");
        let s = Settings::load_with_env(Some(&example), vec![]).unwrap();
        assert_eq!(s.series_metrics, SeriesMetricsSettings::default());
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[series_metrics]\nenabled = true\nkeys = [\"pump-*\"]\nmax_keys = 5\n",
        )
        .unwrap();
        let s = Settings::load_with_env(Some(&f), vec![]).unwrap();
        assert_eq!(s.series_metrics, settings(5, 3_600_000, &["pump-*"]));
        std::fs::write(&f, "[series_metrics]\nkeys = [\"[\"]\n").unwrap();
        let e = Settings::load_with_env(Some(&f), vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("series_metrics.keys"), "{e}");
        std::fs::write(&f, "[series_metrics]\nmax_key = 5\n").unwrap();
        let e = Settings::load_with_env(Some(&f), vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_key"), "{e}");
    }

    #[test]
    fn settings_are_checked_and_name_the_field() {
        assert_eq!(SeriesMetricsSettings::default().validate(), Ok(()));
        let bad = |s: SeriesMetricsSettings| s.validate().unwrap_err().field;
        assert_eq!(bad(settings(0, 1, &[])), "max_keys");
        assert_eq!(bad(settings(1, 0, &[])), "ttl_ms");
        let e = settings(1, 1, &["pump-[1"]).validate().unwrap_err();
        assert!(e.field == "keys" && e.reason.contains("pump-[1"), "{e}");
    }
}
