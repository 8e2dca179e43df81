//! Every Prometheus metric of the daemon, defined in this one place.
//!
//! Names follow `lstm_ae_<name>_<unit>[_total]`, base units; labels are
//! low-cardinality only (topic, partition, reason) — a series key is a label
//! only in the opt-in, capped `lstm_ae_series_*` gauges (`key`, `feature`;
//! kept by `serve::series`), whose names remote writes use as well.

use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The daemon's metrics and the registry that exports them.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub messages_consumed: IntCounterVec,
    pub windows_scored: IntCounter,
    pub anomalies: IntCounter,
    pub incident_records: IntCounterVec,
    pub anomalies_suppressed: IntCounterVec,
    pub feedback_marks: IntGauge,
    pub feedback_raised_keys: IntGauge,
    pub feedback_records: IntCounterVec,
    pub dead_letters: IntCounterVec,
    pub points_rejected: IntCounterVec,
    pub outputs_produced: IntCounterVec,
    pub produce_errors: IntCounterVec,
    pub inference_batch_size: Histogram,
    pub inference_duration: Histogram,
    pub end_to_end_latency: HistogramVec,
    pub normalized_score: Histogram,
    pub consumer_lag: IntGaugeVec,
    pub consumer_prefetched: IntGauge,
    pub windows_in_flight: IntGauge,
    pub live_series_keys: IntGauge,
    pub max_series_keys: IntGauge,
    pub anomaly_likelihood: Histogram,
    pub likelihood_keys: IntGauge,
    pub offsets_committed: IntCounter,
    pub commit_failures: IntCounter,
    pub window_keys_evicted: IntCounterVec,
    pub buffered_points_dropped: IntCounter,
    pub window_gaps: IntCounter,
    pub open_incidents: IntGauge,
    pub incident_keys_evicted: IntCounterVec,
    pub likelihood_keys_evicted: IntCounterVec,
    pub non_finite_scores: IntCounter,
    pub non_finite_embeddings: IntCounter,
    pub likelihood_errors_refused: IntCounter,
    pub dead_letters_in_flight: IntGauge,
    pub outputs_in_flight: IntGauge,
    pub batches_in_flight: IntGauge,
    pub inference_stalled: IntGauge,
    pub model_info: GaugeVec,
    pub model_reloads: IntCounterVec,
    pub model_reload_skipped: IntCounterVec,
    pub model_reload_in_progress: IntGauge,
    pub likelihood_keys_rescaled: IntCounter,
    pub build_info: GaugeVec,
    pub ready: Gauge,
    pub series_normalized_score: GaugeVec,
    pub series_anomalous: GaugeVec,
    pub series_threshold: GaugeVec,
    pub series_value: GaugeVec,
    pub series_expected_value: GaugeVec,
    pub series_last_anomaly: GaugeVec,
    pub series_metrics_keys: IntGauge,
    pub series_metrics_keys_evicted: IntCounterVec,
    pub series_metrics_windows_filtered: IntCounter,
    pub remote_write_samples_sent: IntCounter,
    pub remote_write_samples_failed: IntCounter,
    pub remote_write_samples_dropped: IntCounterVec,
    pub remote_write_retries: IntCounter,
    pub remote_write_queue_samples: IntGauge,
    pub remote_write_queue_capacity: IntGauge,
    pub remote_write_request_duration: Histogram,
    pub http_connections: IntGauge,
}

/// Names of the per-series gauges, shared by `/metrics` and remote writes so
/// one dashboard reads both. Labels: `key` (the series key), and `feature`
/// (the model's feature name) on the per-feature ones.
pub mod series_names {
    /// The window's score divided by the threshold (1 = anomaly boundary).
    pub const NORMALIZED_SCORE: &str = "lstm_ae_series_normalized_score";
    /// 1 when the window is anomalous, else 0.
    pub const ANOMALOUS: &str = "lstm_ae_series_anomalous";
    /// The threshold the window's raw score was divided by.
    pub const THRESHOLD: &str = "lstm_ae_series_threshold";
    /// The last point of the window, per feature, in the input's units.
    pub const VALUE: &str = "lstm_ae_series_value";
    /// The model's reconstruction of that point, per feature, input units.
    pub const EXPECTED_VALUE: &str = "lstm_ae_series_expected_value";
    /// End time of the key's latest anomalous window, Unix seconds.
    pub const LAST_ANOMALY: &str = "lstm_ae_series_last_anomaly_timestamp_seconds";
}

/// Registers a collector built from a static definition: either step can
/// only fail on a programming error (a bad name, a name used twice).
fn register<C: prometheus::core::Collector + Clone + 'static>(
    r: &Registry,
    c: prometheus::Result<C>,
) -> C {
    let c = c.expect("static metric definition is valid");
    r.register(Box::new(c.clone()))
        .expect("each metric is registered once");
    c
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    register(r, IntCounter::new(name, help))
}

fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(r, IntCounterVec::new(Opts::new(name, help), labels))
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register(
        r,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets)),
    )
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(r, GaugeVec::new(Opts::new(name, help), labels))
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        let secs = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let latency = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
        ];
        let lag = register(
            &r,
            IntGaugeVec::new(
                Opts::new(
                    "lstm_ae_consumer_lag_messages",
                    "Messages behind the partition's high watermark, from librdkafka statistics.",
                ),
                &["topic", "partition"],
            ),
        );
        let prefetched = register(
            &r,
            IntGauge::new(
                "lstm_ae_consumer_prefetched_messages",
                "Messages librdkafka has fetched and the daemon has not read yet, all partitions together (its consumer queue, fetchq_cnt in its statistics); bounded by queued.min.messages plus one fetch.",
            ),
        );
        let e2e = register(&r, HistogramVec::new(
            HistogramOpts::new(
                "lstm_ae_end_to_end_latency_seconds",
                "From the input message's Kafka timestamp to the broker's acknowledgement of an output, by output topic.",
            )
            .buckets(latency),
            &["topic"],
        ));
        let in_flight = register(
            &r,
            IntGauge::new(
                "lstm_ae_windows_in_flight",
                "Windows taken from the stream whose outputs are not yet acknowledged.",
            ),
        );
        let keys = register(
            &r,
            IntGauge::new(
                "lstm_ae_live_series_keys",
                "Series keys with a window buffer in memory.",
            ),
        );
        let max_keys = register(
            &r,
            IntGauge::new(
                "lstm_ae_max_series_keys",
                "windowing.max_keys: series keys held at most (for alerts on the live count).",
            ),
        );
        let likelihood_keys = register(
            &r,
            IntGauge::new(
                "lstm_ae_likelihood_keys",
                "Series keys with anomaly-likelihood history in memory (rule = likelihood).",
            ),
        );
        let ready = register(
            &r,
            Gauge::new(
                "lstm_ae_ready",
                "1 when the model is loaded and partitions are assigned.",
            ),
        );
        let build_info = gauge_vec(
            &r,
            "lstm_ae_build_info",
            "Build of the running binary; always 1.",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1.0);
        let m = Metrics {
            messages_consumed: counter_vec(
                &r,
                "lstm_ae_messages_consumed_total",
                "Input messages read, by topic.",
                &["topic"],
            ),
            windows_scored: counter(
                &r,
                "lstm_ae_windows_scored_total",
                "Windows run through the model and scored.",
            ),
            anomalies: counter(
                &r,
                "lstm_ae_anomalies_total",
                "Anomalous windows under anomalies.rule (each is part of an incident, unless an operator's mark suppresses it).",
            ),
            incident_records: counter_vec(
                &r,
                "lstm_ae_incident_records_total",
                "Records published on the anomalies topic, by incident state (open, update, close).",
                &["state"],
            ),
            anomalies_suppressed: counter_vec(
                &r,
                "lstm_ae_anomalies_suppressed_total",
                "Anomalous windows an operator's mark kept out of incidents and the anomalies topic, by the mark's verdict (maintenance, false_positive).",
                &["reason"],
            ),
            feedback_marks: register(
                &r,
                IntGauge::new(
                    "lstm_ae_feedback_marks",
                    "Operator marks the daemon holds from kafka.feedback_topic (at most feedback.max_marks).",
                ),
            ),
            feedback_raised_keys: register(
                &r,
                IntGauge::new(
                    "lstm_ae_feedback_raised_keys",
                    "Keys whose threshold feedback.raise_after false-positive marks raise (counted when a feedback record is applied).",
                ),
            ),
            feedback_records: counter_vec(
                &r,
                "lstm_ae_feedback_records_total",
                "Records read from kafka.feedback_topic, by result (applied; refused: invalid, dead-lettered; full: a new mark beyond feedback.max_marks, not kept).",
                &["result"],
            ),
            dead_letters: counter_vec(
                &r,
                "lstm_ae_dead_letters_total",
                "Input messages sent to the dead-letter topic, by reason.",
                &["reason"],
            ),
            points_rejected: counter_vec(
                &r,
                "lstm_ae_points_rejected_total",
                "Points not windowed (duplicate or out-of-order timestamp), by reason.",
                &["reason"],
            ),
            outputs_produced: counter_vec(
                &r,
                "lstm_ae_outputs_produced_total",
                "Output messages acknowledged by the broker, by topic.",
                &["topic"],
            ),
            produce_errors: counter_vec(
                &r,
                "lstm_ae_produce_errors_total",
                "Output messages the broker did not acknowledge, by topic.",
                &["topic"],
            ),
            inference_batch_size: histogram(
                &r,
                "lstm_ae_inference_batch_size_windows",
                "Windows per inference call.",
                vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
                ],
            ),
            inference_duration: histogram(
                &r,
                "lstm_ae_inference_duration_seconds",
                "Time of one ONNX Runtime call.",
                secs,
            ),
            end_to_end_latency: e2e,
            normalized_score: histogram(
                &r,
                "lstm_ae_normalized_score",
                "Scores divided by the model's threshold (1 = anomaly boundary).",
                vec![0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 5.0, 10.0, 100.0],
            ),
            consumer_lag: lag,
            consumer_prefetched: prefetched,
            windows_in_flight: in_flight,
            live_series_keys: keys,
            max_series_keys: max_keys,
            anomaly_likelihood: histogram(
                &r,
                "lstm_ae_anomaly_likelihood",
                "Per-key anomaly likelihood of scored windows (rule = likelihood).",
                vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0],
            ),
            likelihood_keys,
            offsets_committed: counter(
                &r,
                "lstm_ae_offsets_committed_total",
                "Offset commits sent to the broker.",
            ),
            commit_failures: counter(
                &r,
                "lstm_ae_commit_failures_total",
                "Offset commits the broker refused or that failed; each is retried until it succeeds.",
            ),
            window_keys_evicted: counter_vec(
                &r,
                "lstm_ae_window_keys_evicted_total",
                "Series keys dropped from the windower, by reason (expired: idle past windowing.key_ttl_ms; capacity: windowing.max_keys; revoked: partition revoked; moved: started over on another partition, windowing.key_move_after).",
                &["reason"],
            ),
            buffered_points_dropped: counter(
                &r,
                "lstm_ae_buffered_points_dropped_total",
                "Points dropped from window buffers with their evicted key (never scored; not replayed).",
            ),
            window_gaps: counter(
                &r,
                "lstm_ae_window_gaps_total",
                "Gaps in time: a key's step longer than windowing.max_gap_steps typical steps, after which its window restarted (no window spans the gap).",
            ),
            open_incidents: register(
                &r,
                IntGauge::new(
                    "lstm_ae_open_incidents",
                    "Series keys with an open incident (the incident state held).",
                ),
            ),
            incident_keys_evicted: counter_vec(
                &r,
                "lstm_ae_incident_keys_evicted_total",
                "Keys with an open incident dropped, by reason (expired, capacity); each incident gets a close record with close_reason evicted.",
                &["reason"],
            ),
            likelihood_keys_evicted: counter_vec(
                &r,
                "lstm_ae_likelihood_keys_evicted_total",
                "Likelihood-rule keys dropped with their history, by reason (expired, capacity); such a key scores 0 until postprocess.min_history windows again.",
                &["reason"],
            ),
            non_finite_scores: counter(
                &r,
                "lstm_ae_non_finite_scores_total",
                "Windows whose score is infinite or NaN (published as anomalies with reason non_finite_score).",
            ),
            non_finite_embeddings: counter(
                &r,
                "lstm_ae_non_finite_embeddings_total",
                "Windows whose embedding has an infinite or NaN value (published with the largest f32, 3.4028235e38, in its place).",
            ),
            likelihood_errors_refused: counter(
                &r,
                "lstm_ae_likelihood_errors_refused_total",
                "Window errors kept out of a key's likelihood history: infinite, NaN, or too large for its moments to stay finite (the window's likelihood is 0).",
            ),
            dead_letters_in_flight: register(
                &r,
                IntGauge::new(
                    "lstm_ae_dead_letters_in_flight",
                    "Dead letters queued for the broker and not yet acknowledged (bounded by serve.max_dead_letters_in_flight).",
                ),
            ),
            outputs_in_flight: register(
                &r,
                IntGauge::new(
                    "lstm_ae_outputs_in_flight",
                    "Output messages (embeddings, scores, incident records) queued for the broker and not yet acknowledged (bounded by serve.max_outputs_in_flight).",
                ),
            ),
            batches_in_flight: register(
                &r,
                IntGauge::new(
                    "lstm_ae_batches_in_flight",
                    "Batches sent to inference whose scored windows the sink has not yet taken (bounded).",
                ),
            ),
            inference_stalled: register(
                &r,
                IntGauge::new(
                    "lstm_ae_inference_stalled",
                    "1 while an inference call has run longer than serve.inference_stall_ms (readiness fails).",
                ),
            ),
            model_info: gauge_vec(
                &r,
                "lstm_ae_model_info",
                "The model being served; always 1.",
                &[
                    "model_id", "version", "window", "features", "hidden", "mode",
                ],
            ),
            model_reloads: counter_vec(
                &r,
                "lstm_ae_model_reloads_total",
                "Model versions considered for a hot reload, by result (ok: swapped in; refused: failed validation, the old version keeps serving).",
                &["result"],
            ),
            model_reload_skipped: counter_vec(
                &r,
                "lstm_ae_model_reload_skipped_total",
                "Model polls and SIGHUPs skipped because a reload check still runs, by reason (check_running: within its time limit; check_timed_out: past serve.model_check_timeout_ms, its thread left behind).",
                &["reason"],
            ),
            model_reload_in_progress: register(
                &r,
                IntGauge::new(
                    "lstm_ae_model_reload_in_progress",
                    "1 while a model reload check runs (also one past its time limit, left behind until it returns).",
                ),
            ),
            likelihood_keys_rescaled: counter(
                &r,
                "lstm_ae_likelihood_keys_rescaled_total",
                "Per-key likelihood histories carried over to a new model version (rescaled by the ratio of the thresholds).",
            ),
            http_connections: register(
                &r,
                IntGauge::new(
                    "lstm_ae_http_connections",
                    "Open connections to /metrics, /healthz and /readyz (bounded: further clients wait).",
                ),
            ),
            build_info,
            ready,
            series_normalized_score: gauge_vec(
                &r,
                series_names::NORMALIZED_SCORE,
                "Per series key (series_metrics): the latest window's score / threshold; 1 = anomaly boundary.",
                &["key"],
            ),
            series_anomalous: gauge_vec(
                &r,
                series_names::ANOMALOUS,
                "Per series key (series_metrics): 1 if the latest window is anomalous, else 0.",
                &["key"],
            ),
            series_threshold: gauge_vec(
                &r,
                series_names::THRESHOLD,
                "Per series key (series_metrics): the threshold the latest window's raw score was divided by.",
                &["key"],
            ),
            series_value: gauge_vec(
                &r,
                series_names::VALUE,
                "Per series key and feature (series_metrics): the latest window's last point, input units.",
                &["key", "feature"],
            ),
            series_expected_value: gauge_vec(
                &r,
                series_names::EXPECTED_VALUE,
                "Per series key and feature (series_metrics): the model's reconstruction of the latest window's last point, input units.",
                &["key", "feature"],
            ),
            series_last_anomaly: gauge_vec(
                &r,
                series_names::LAST_ANOMALY,
                "Per series key (series_metrics): end time of the key's latest anomalous window, Unix seconds.",
                &["key"],
            ),
            series_metrics_keys: register(
                &r,
                IntGauge::new(
                    "lstm_ae_per_series_keys",
                    "Series keys with lstm_ae_series_* gauges (bounded by series_metrics.max_keys).",
                ),
            ),
            series_metrics_keys_evicted: counter_vec(
                &r,
                "lstm_ae_per_series_keys_evicted_total",
                "Series keys whose lstm_ae_series_* gauges were removed, by reason (expired: quiet past series_metrics.ttl_ms; capacity: series_metrics.max_keys).",
                &["reason"],
            ),
            series_metrics_windows_filtered: counter(
                &r,
                "lstm_ae_per_series_windows_filtered_total",
                "Scored windows left out of the lstm_ae_series_* gauges: their key matches none of series_metrics.keys.",
            ),
            remote_write_samples_sent: counter(
                &r,
                "lstm_ae_remote_write_samples_sent_total",
                "Samples the remote-write receiver accepted.",
            ),
            remote_write_samples_failed: counter(
                &r,
                "lstm_ae_remote_write_samples_failed_total",
                "Samples the remote-write receiver refused with a status that is not retried (4xx but 429); lost.",
            ),
            remote_write_samples_dropped: counter_vec(
                &r,
                "lstm_ae_remote_write_samples_dropped_total",
                "Samples never sent, by reason (queue_full: remote_write.queue_capacity_samples reached; shutdown: still queued or retried when the daemon stopped).",
                &["reason"],
            ),
            remote_write_retries: counter(
                &r,
                "lstm_ae_remote_write_retries_total",
                "Remote-write requests retried after a connection error, a timeout, a 5xx or a 429.",
            ),
            remote_write_queue_samples: register(
                &r,
                IntGauge::new(
                    "lstm_ae_remote_write_queue_samples",
                    "Samples queued for remote write, not yet in a request.",
                ),
            ),
            remote_write_queue_capacity: register(
                &r,
                IntGauge::new(
                    "lstm_ae_remote_write_queue_capacity_samples",
                    "remote_write.queue_capacity_samples: samples queued at most (for alerts on the queue length).",
                ),
            ),
            remote_write_request_duration: histogram(
                &r,
                "lstm_ae_remote_write_request_duration_seconds",
                "Time of one remote-write request, to the receiver's answer or the timeout.",
                vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
            ),
            registry: r,
        };
        // Known label values exist from the start at 0, so dashboards and
        // alerts see a series (and a rate of 0) before the first eviction.
        for reason in ["expired", "capacity", "revoked"] {
            m.window_keys_evicted.with_label_values(&[reason]);
        }
        for reason in ["expired", "capacity"] {
            m.incident_keys_evicted.with_label_values(&[reason]);
            m.likelihood_keys_evicted.with_label_values(&[reason]);
        }
        for reason in ["maintenance", "false_positive"] {
            m.anomalies_suppressed.with_label_values(&[reason]);
        }
        for result in ["applied", "refused", "full"] {
            m.feedback_records.with_label_values(&[result]);
        }
        for state in ["open", "update", "close"] {
            m.incident_records.with_label_values(&[state]);
        }
        for result in ["ok", "refused"] {
            m.model_reloads.with_label_values(&[result]);
        }
        for reason in ["check_running", "check_timed_out"] {
            m.model_reload_skipped.with_label_values(&[reason]);
        }
        for reason in ["expired", "capacity"] {
            m.series_metrics_keys_evicted.with_label_values(&[reason]);
        }
        for reason in ["queue_full", "shutdown"] {
            m.remote_write_samples_dropped.with_label_values(&[reason]);
        }
        m
    }

    /// The text exposition format, for `GET /metrics`.
    pub fn render(&self) -> String {
        let mut buf = vec![];
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let m = Metrics::new();
        m.messages_consumed.with_label_values(&["in"]).inc();
        m.dead_letters.with_label_values(&["invalid_json"]).inc();
        m.points_rejected.with_label_values(&["duplicate"]).inc();
        m.outputs_produced.with_label_values(&["out"]).inc();
        m.produce_errors.with_label_values(&["out"]).inc();
        m.end_to_end_latency
            .with_label_values(&["out"])
            .observe(0.1);
        m.consumer_lag.with_label_values(&["in", "0"]).set(3);
        m.model_info
            .with_label_values(&["m", "1", "64", "1", "64", "composite"])
            .set(1.0);
        for f in m.registry.gather() {
            let name = f.name();
            assert!(name.starts_with("lstm_ae_"), "{name}");
            let counter = f.get_field_type() == prometheus::proto::MetricType::COUNTER;
            assert_eq!(
                counter,
                name.ends_with("_total"),
                "{name}: counters and only counters end in _total"
            );
            for metric in f.get_metric() {
                for l in metric.get_label() {
                    assert_ne!(l.name(), "key", "{name}: no series key as a label");
                }
            }
        }
        let text = m.render();
        assert!(
            text.contains("lstm_ae_build_info{version=\"")
                && text.contains("lstm_ae_messages_consumed_total{topic=\"in\"} 1")
        );
    }

    #[test]
    fn a_series_key_is_a_label_only_of_the_series_gauges_which_remote_writes_share() {
        let m = Metrics::new();
        for g in [
            &m.series_normalized_score,
            &m.series_anomalous,
            &m.series_threshold,
            &m.series_last_anomaly,
        ] {
            g.with_label_values(&["pump-1"]).set(1.0);
        }
        for g in [&m.series_value, &m.series_expected_value] {
            g.with_label_values(&["pump-1", "temp"]).set(1.0);
        }
        let mut with_key = std::collections::BTreeSet::new();
        for f in m.registry.gather() {
            for metric in f.get_metric() {
                if metric.get_label().iter().any(|l| l.name() == "key") {
                    with_key.insert(f.name().to_string());
                }
            }
        }
        let names: std::collections::BTreeSet<String> = [
            series_names::NORMALIZED_SCORE,
            series_names::ANOMALOUS,
            series_names::THRESHOLD,
            series_names::VALUE,
            series_names::EXPECTED_VALUE,
            series_names::LAST_ANOMALY,
        ]
        .map(String::from)
        .into();
        assert_eq!(with_key, names);
        assert!(names.iter().all(|n| n
            .strip_prefix("lstm_ae_")
            .is_some_and(|n| n.starts_with("series_"))));
        // The family is the per-series data only: a selector of
        // `lstm_ae_series_.*` gets keyed series and nothing else.
        let family: std::collections::BTreeSet<String> = m
            .registry
            .gather()
            .iter()
            .map(|f| f.name().to_string())
            .filter(|n| {
                n.strip_prefix("lstm_ae_")
                    .is_some_and(|n| n.starts_with("series_"))
            })
            .collect();
        assert_eq!(family, names);
    }
}
