//! The dashboard and the alerts against a real Prometheus scraping two real
//! daemons: every query returns data, every alert evaluates on series that
//! exist.

use std::collections::BTreeSet;

use super::alerts::rules;
use super::catalog::catalog;
use super::grafana::{dashboard, dashboard_queries, substitute};
use super::promql::{base_metric, grouping_labels, legend_labels, selectors, template_labels};
use super::{root, string, yaml};

/// Dashboard queries that return data only after an event; the live test
/// below produces each event (and checks it happened).
const ONLY_ON_AN_EVENT: [(&str, &str); 5] = [
    ("lstm_ae_anomalies_total", "a spike in pump-0's points"),
    (
        "lstm_ae_incident_records_total",
        "the spike in pump-0's points opens an incident",
    ),
    (
        "lstm_ae_dead_letters_total",
        "two messages that are not JSON",
    ),
    ("lstm_ae_points_rejected_total", "a point sent twice"),
    (
        "lstm_ae_anomaly_likelihood",
        "a second daemon under anomalies.rule = likelihood",
    ),
];

/// (Kafka key, JSON body) of points `from..to` of keys pump-0..2; pump-0
/// jumps by 60 (the series runs at 70–90) at points 200..215.
fn live_points(from: usize, to: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    for i in from..to {
        for k in 0..3 {
            let mut v = 80.0 + 10.0 * ((i as f64) * 0.15 + k as f64).sin();
            if k == 0 && (200..215).contains(&i) {
                v += 60.0;
            }
            let ts = 1_700_000_000_000i64 + 300_000 * i as i64;
            let body = serde_json::json!({"key": format!("pump-{k}"), "ts": ts, "value": v});
            out.push((format!("pump-{k}"), body.to_string().into_bytes()));
        }
    }
    out
}

#[test]
fn dashboard_queries_and_alert_inputs_return_data_from_a_real_prometheus() {
    use crate::common::broker::{Broker, Daemon};
    use crate::common::prometheus::Prometheus;
    use std::time::Duration;

    let dir = crate::common::broker::test_dir();
    let broker = Broker::with_daemon_topics(dir.path(), 1);
    // Two daemons in two groups reading the same stream: the calibrated
    // threshold with an update record per 5 windows of an incident, and
    // the likelihood rule.
    let threshold = Daemon::start(
        dir.path(),
        &broker.brokers(),
        None,
        &[
            ("LSTM_AE__KAFKA__GROUP_ID", "threshold"),
            ("LSTM_AE__KAFKA__STATISTICS_INTERVAL_MS", "1000"),
            ("LSTM_AE__ANOMALIES__UPDATE_EVERY", "5"),
        ],
    );
    let likelihood = Daemon::start(
        dir.path(),
        &broker.brokers(),
        None,
        &[
            ("LSTM_AE__KAFKA__GROUP_ID", "likelihood"),
            ("LSTM_AE__KAFKA__STATISTICS_INTERVAL_MS", "1000"),
            ("LSTM_AE__ANOMALIES__RULE", "likelihood"),
            ("LSTM_AE__POSTPROCESS__MIN_HISTORY", "20"),
        ],
    );
    let prom_dir = tempfile::tempdir().unwrap();
    let prom = Prometheus::start(
        prom_dir.path(),
        &[threshold.metrics_port, likelihood.metrics_port],
        &[root().join("deploy/prometheus/alerts.yml")],
    );

    // The stream, in bursts two seconds apart so that rates have samples.
    let n = 300;
    for burst in 0..6 {
        let (a, b) = (burst * n / 6, (burst + 1) * n / 6);
        broker.produce("lstm-ae.points", &live_points(a, b));
        if burst == 3 {
            broker.produce(
                "lstm-ae.points",
                &[
                    ("bad".into(), b"not json".to_vec()),
                    ("bad".into(), b"{oops".to_vec()),
                ],
            );
            // Point 100 of pump-1 again: rejected, not windowed.
            broker.produce("lstm-ae.points", &live_points(100, 101)[1..2]);
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let windows = 3 * (n - 63);
    for d in [&threshold, &likelihood] {
        d.wait_until(120, "every window scored and acknowledged", |d| {
            d.metric("lstm_ae_windows_scored_total") as usize >= windows
                && d.metric("lstm_ae_windows_in_flight") == 0.0
        });
    }
    // A few more scrapes and rule evaluations.
    std::thread::sleep(Duration::from_secs(4));

    // The events happened.
    let total = |q: &str| -> f64 {
        prom.query(q)
            .first()
            .and_then(|s| s["value"][1].as_str().and_then(|v| v.parse().ok()))
            .unwrap_or(0.0)
    };
    for (metric, event) in ONLY_ON_AN_EVENT {
        let series = if metric.ends_with("_total") {
            metric.to_string()
        } else {
            format!("{metric}_count")
        };
        assert!(
            total(&format!("sum({series}{{job=\"lstm-ae\"}})")) > 0.0,
            "the event for {metric} did not happen: {event}"
        );
    }

    let cat = catalog();
    let scraped = prom.metric_names();
    // Labels of a query's metrics, as Prometheus holds them.
    let labels_of = |expr: &str| -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (name, _) in selectors(expr) {
            out.extend(prom.label_names(&format!("{name}{{job=\"lstm-ae\"}}")));
        }
        out
    };
    let check_names_and_labels = |what: &str, expr: &str| {
        for (name, _) in selectors(expr) {
            assert!(
                scraped.contains(&name),
                "{what}: {name} is not in what Prometheus scraped from the daemons"
            );
            assert!(name == "up" || base_metric(&cat, &name).is_some());
        }
        let have = labels_of(expr);
        for l in grouping_labels(expr) {
            assert!(
                have.contains(&l),
                "{what}: label {l} is on none of its series ({have:?})"
            );
        }
        have
    };

    // Every dashboard query returns data, with the labels its legend shows.
    let d = dashboard();
    for (title, refid, expr, legend) in dashboard_queries(&d) {
        let what = format!("{title} {refid}");
        let expr = substitute(&expr);
        check_names_and_labels(&what, &expr);
        let result = prom.query(&expr);
        assert!(!result.is_empty(), "{what}: no data for {expr}");
        for l in legend_labels(&legend) {
            for sample in &result {
                assert!(
                    sample["metric"].get(&l).is_some(),
                    "{what}: legend {{{{{l}}}}} is not a label of {sample}"
                );
            }
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(def) = v["definition"].as_str() {
            let inner = &def["label_values(".len()..def.len() - 1];
            let (sel, label) = inner.rsplit_once(',').unwrap();
            let sel = substitute(sel);
            let result = prom.query(&format!("count by ({}) ({sel})", label.trim()));
            assert!(
                result
                    .iter()
                    .any(|s| s["metric"].get(label.trim()).is_some()),
                "{def}: no values"
            );
        }
    }

    // Every alert: Prometheus evaluates it without error, every series it
    // reads exists in the scrape (each selector, as written, returns data),
    // and the labels its grouping and annotations use are on those series.
    let evaluated = prom.rules();
    let doc = yaml("deploy/prometheus/alerts.yml");
    for r in rules(&doc) {
        let (_, health, err) = evaluated
            .iter()
            .find(|(n, _, _)| n == r.name)
            .unwrap_or_else(|| panic!("{}: not loaded by Prometheus", r.name));
        assert_eq!(health, "ok", "{}: {err}", r.name);
        let mut have = check_names_and_labels(r.name, r.expr);
        have.extend(["job".to_string(), "instance".to_string()]);
        for (name, matchers) in selectors(r.expr) {
            let sel = format!("{name}{{{}}}", matchers.unwrap_or_default());
            assert!(
                !prom.query(&sel).is_empty(),
                "{}: {sel} returns no data",
                r.name
            );
        }
        for a in ["summary", "description"] {
            for l in template_labels(string(&r.rule["annotations"][a]).unwrap()) {
                assert!(
                    have.contains(&l),
                    "{}: $labels.{l} is on none of its series",
                    r.name
                );
            }
        }
    }
    drop(prom);
    drop(threshold);
    drop(likelihood);
}
