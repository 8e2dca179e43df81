//! The daemon's metrics, as its registry defines them: the catalog every
//! check of the dashboard and the alerts compares against.

use std::collections::{BTreeMap, BTreeSet};

use lstm_ae::telemetry::Metrics;
use prometheus::core::Collector;
use prometheus::proto::MetricType;

use super::read;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone)]
pub(crate) struct MetricDef {
    pub(crate) kind: Kind,
    pub(crate) labels: BTreeSet<String>,
}

/// Labels Prometheus adds to every scraped series.
pub(crate) const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// Every metric of `Metrics::new()`: name, type and label names, read from
/// the collectors themselves (a vector with no child yet is not in
/// `Registry::gather`, so the registry alone would miss most of them).
pub(crate) fn catalog() -> BTreeMap<String, MetricDef> {
    let m = Metrics::new();
    let collectors: Vec<Box<dyn Collector>> = vec![
        Box::new(m.messages_consumed.clone()),
        Box::new(m.windows_scored.clone()),
        Box::new(m.anomalies.clone()),
        Box::new(m.incident_records.clone()),
        Box::new(m.anomalies_suppressed.clone()),
        Box::new(m.feedback_marks.clone()),
        Box::new(m.feedback_raised_keys.clone()),
        Box::new(m.feedback_records.clone()),
        Box::new(m.dead_letters.clone()),
        Box::new(m.points_rejected.clone()),
        Box::new(m.outputs_produced.clone()),
        Box::new(m.produce_errors.clone()),
        Box::new(m.inference_batch_size.clone()),
        Box::new(m.inference_duration.clone()),
        Box::new(m.end_to_end_latency.clone()),
        Box::new(m.normalized_score.clone()),
        Box::new(m.consumer_lag.clone()),
        Box::new(m.consumer_prefetched.clone()),
        Box::new(m.windows_in_flight.clone()),
        Box::new(m.live_series_keys.clone()),
        Box::new(m.max_series_keys.clone()),
        Box::new(m.anomaly_likelihood.clone()),
        Box::new(m.likelihood_keys.clone()),
        Box::new(m.offsets_committed.clone()),
        Box::new(m.commit_failures.clone()),
        Box::new(m.window_keys_evicted.clone()),
        Box::new(m.buffered_points_dropped.clone()),
        Box::new(m.window_gaps.clone()),
        Box::new(m.open_incidents.clone()),
        Box::new(m.incident_keys_evicted.clone()),
        Box::new(m.likelihood_keys_evicted.clone()),
        Box::new(m.non_finite_scores.clone()),
        Box::new(m.non_finite_embeddings.clone()),
        Box::new(m.likelihood_errors_refused.clone()),
        Box::new(m.dead_letters_in_flight.clone()),
        Box::new(m.outputs_in_flight.clone()),
        Box::new(m.batches_in_flight.clone()),
        Box::new(m.inference_stalled.clone()),
        Box::new(m.model_info.clone()),
        Box::new(m.model_reloads.clone()),
        Box::new(m.model_reload_skipped.clone()),
        Box::new(m.model_reload_in_progress.clone()),
        Box::new(m.likelihood_keys_rescaled.clone()),
        Box::new(m.build_info.clone()),
        Box::new(m.ready.clone()),
        Box::new(m.series_normalized_score.clone()),
        Box::new(m.series_anomalous.clone()),
        Box::new(m.series_threshold.clone()),
        Box::new(m.series_value.clone()),
        Box::new(m.series_expected_value.clone()),
        Box::new(m.series_last_anomaly.clone()),
        Box::new(m.series_metrics_keys.clone()),
        Box::new(m.series_metrics_keys_evicted.clone()),
        Box::new(m.series_metrics_windows_filtered.clone()),
        Box::new(m.remote_write_samples_sent.clone()),
        Box::new(m.remote_write_samples_failed.clone()),
        Box::new(m.remote_write_samples_dropped.clone()),
        Box::new(m.remote_write_retries.clone()),
        Box::new(m.remote_write_queue_samples.clone()),
        Box::new(m.remote_write_queue_capacity.clone()),
        Box::new(m.remote_write_request_duration.clone()),
        Box::new(m.http_connections.clone()),
    ];
    let mut out = BTreeMap::new();
    for c in &collectors {
        let descs = c.desc();
        assert_eq!(descs.len(), 1);
        let d = descs[0];
        let families = c.collect();
        let kind = match families[0].get_field_type() {
            MetricType::COUNTER => Kind::Counter,
            MetricType::GAUGE => Kind::Gauge,
            MetricType::HISTOGRAM => Kind::Histogram,
            t => panic!("{}: unexpected type {t:?}", d.fq_name),
        };
        let mut labels: BTreeSet<String> = d.variable_labels.iter().cloned().collect();
        labels.extend(d.const_label_pairs.iter().map(|l| l.name().to_string()));
        out.insert(d.fq_name.clone(), MetricDef { kind, labels });
    }
    // Registered metrics that are already exported must be in the list above.
    for f in m.registry.gather() {
        assert!(
            out.contains_key(f.name()),
            "{} missing from catalog()",
            f.name()
        );
    }
    out
}

#[test]
fn the_catalog_is_every_metric_defined_in_metrics_rs() {
    // Each metric name is a string literal in src/telemetry/metrics.rs; a new
    // metric must be added to catalog() (and so to the checks below).
    let src = read("src/telemetry/metrics.rs");
    let mut defined = BTreeSet::new();
    for (i, _) in src.match_indices("\"lstm_ae_") {
        let rest = &src[i + 1..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap();
        if rest[end..].starts_with('"') && end > "lstm_ae_".len() {
            defined.insert(rest[..end].to_string());
        }
    }
    let cat: BTreeSet<String> = catalog().into_keys().collect();
    assert_eq!(defined, cat);
    assert_eq!(cat.len(), 62);
}
