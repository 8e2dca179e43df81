//! The operations kit in `deploy/` against the daemon it operates: every
//! metric the Grafana dashboard and the Prometheus alerts use exists in the
//! daemon's registry; the files are well formed; the scrape target is the
//! daemon's default `serve.metrics_listen`; the systemd unit stops the daemon
//! slower than it drains. `promtool` checks the config and the rules and runs
//! the alerts' unit tests (deploy/prometheus/alerts.test.yml), and a real
//! Prometheus server scrapes two real daemons (`lstm-ae serve` on a tansu
//! broker) while they score a stream with anomalies, dead letters and a
//! rejected point: every dashboard query must return data, every alert must
//! evaluate without error on series that exist, and every metric and label
//! they name must be in what Prometheus scraped (a renamed metric or label
//! fails). Needs `scripts/setup.sh --test` (prometheus, promtool, tansu).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use lstm_ae::config::ServeSettings;
use lstm_ae::telemetry::Metrics;
use prometheus::core::Collector;
use prometheus::proto::MetricType;
use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

// ---------------------------------------------------------------------------
// Files

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn yaml(rel: &str) -> Yaml {
    let mut docs = YamlLoader::load_from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(docs.len(), 1, "{rel}: one YAML document");
    docs.remove(0)
}

fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/grafana/lstm-ae.json"))
        .unwrap_or_else(|e| panic!("deploy/grafana/lstm-ae.json: {e}"))
}

fn string(y: &Yaml) -> Option<&str> {
    y.as_str()
}

// ---------------------------------------------------------------------------
// The daemon's metrics

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone)]
struct MetricDef {
    kind: Kind,
    labels: BTreeSet<String>,
}

/// Labels Prometheus adds to every scraped series.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

/// Every metric of `Metrics::new()`: name, type and label names, read from
/// the collectors themselves (a vector with no child yet is not in
/// `Registry::gather`, so the registry alone would miss most of them).
fn catalog() -> BTreeMap<String, MetricDef> {
    let m = Metrics::new();
    let collectors: Vec<Box<dyn Collector>> = vec![
        Box::new(m.messages_consumed.clone()),
        Box::new(m.windows_scored.clone()),
        Box::new(m.anomalies.clone()),
        Box::new(m.anomalies_suppressed.clone()),
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
        Box::new(m.series_keys_evicted.clone()),
        Box::new(m.buffered_points_dropped.clone()),
        Box::new(m.storm_keys.clone()),
        Box::new(m.storm_keys_evicted.clone()),
        Box::new(m.likelihood_keys_evicted.clone()),
        Box::new(m.non_finite_scores.clone()),
        Box::new(m.dead_letters_in_flight.clone()),
        Box::new(m.batches_in_flight.clone()),
        Box::new(m.inference_stalled.clone()),
        Box::new(m.model_info.clone()),
        Box::new(m.model_reloads.clone()),
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
    assert_eq!(cat.len(), 51);
}

/// Metric selectors in a PromQL expression: (metric name, the text of its
/// `{…}` matchers, if any). A name is an identifier starting `lstm_ae_`, or
/// `up`, not followed by `(` (a function) — enough for this project's
/// queries, which Prometheus itself evaluates in the live test below.
fn selectors(expr: &str) -> Vec<(String, Option<String>)> {
    let bytes = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let mut out = vec![];
    let mut i = 0;
    while i < bytes.len() {
        if ident(bytes[i]) && (i == 0 || !ident(bytes[i - 1])) {
            let start = i;
            while i < bytes.len() && ident(bytes[i]) {
                i += 1;
            }
            let name = &expr[start..i];
            let prev = expr[..start].trim_end();
            let in_matchers = prev.ends_with('{') || prev.ends_with(',');
            let is_ours = name.starts_with("lstm_ae_") || name == "up";
            if is_ours && !in_matchers && !expr[i..].trim_start().starts_with('(') {
                let matchers = expr[i..]
                    .strip_prefix('{')
                    .and_then(|r| r.find('}').map(|e| r[..e].to_string()));
                out.push((name.to_string(), matchers));
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The catalog metric a series name belongs to (`_bucket`, `_sum`, `_count`
/// of a histogram included).
fn base_metric<'a>(cat: &'a BTreeMap<String, MetricDef>, series: &str) -> Option<&'a str> {
    if let Some((k, _)) = cat.get_key_value(series) {
        return Some(k);
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = series.strip_suffix(suffix)?;
        let (k, def) = cat.get_key_value(base)?;
        (def.kind == Kind::Histogram).then_some(k.as_str())
    })
}

/// Label names in `by (…)`, `without (…)`, `on (…)`, `ignoring (…)` and
/// `group_left (…)` clauses.
fn grouping_labels(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for kw in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        for (i, _) in expr.match_indices(kw) {
            let before_ok = i == 0
                || !expr.as_bytes()[i - 1].is_ascii_alphanumeric()
                    && expr.as_bytes()[i - 1] != b'_';
            let rest = expr[i + kw.len()..].trim_start();
            if before_ok && rest.starts_with('(') {
                let inner = &rest[1..rest.find(')').unwrap()];
                out.extend(
                    inner
                        .split(',')
                        .map(|l| l.trim().to_string())
                        .filter(|l| !l.is_empty()),
                );
            }
        }
    }
    out
}

#[test]
fn the_selector_scanner_finds_what_it_should() {
    assert_eq!(
        selectors(
            r#"sum by (topic) (rate(lstm_ae_messages_consumed_total{job="x", topic!=""}[5m])) / up"#
        ),
        [
            (
                "lstm_ae_messages_consumed_total".to_string(),
                Some(r#"job="x", topic!="""#.to_string())
            ),
            ("up".to_string(), None),
        ]
    );
    assert_eq!(
        grouping_labels("sum by (job, le) (x) / ignoring (reason) group_left sum by (job) (y) and on(instance) z"),
        BTreeSet::from(["job", "le", "reason", "instance"].map(String::from))
    );
    assert!(grouping_labels("absent(up)").is_empty());
}

/// `{{label}}` in a Grafana legend.
fn legend_labels(legend: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = legend;
    while let Some(a) = rest.find("{{") {
        let b = rest[a..].find("}}").expect("closed {{") + a;
        out.push(rest[a + 2..b].trim().to_string());
        rest = &rest[b + 2..];
    }
    out
}

/// `$labels.name` in an alert annotation.
fn template_labels(text: &str) -> Vec<String> {
    text.match_indices("$labels.")
        .map(|(i, m)| {
            text[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The Grafana dashboard

/// Panels, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = vec![];
    for p in d["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(inner) = p["panels"].as_array() {
            out.extend(inner.iter());
        }
    }
    out
}

/// Grafana's variables in a query replaced by values Prometheus accepts.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$job", "lstm-ae")
        .replace("$instance", ".*")
}

/// (panel title, refId, expr, legend) of every query.
fn dashboard_queries(d: &Value) -> Vec<(String, String, String, String)> {
    let mut out = vec![];
    for p in panels(d) {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                p["title"].as_str().unwrap_or("").to_string(),
                t["refId"].as_str().unwrap_or("").to_string(),
                t["expr"].as_str().unwrap_or("").to_string(),
                t["legendFormat"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    out
}

#[test]
fn dashboard_is_importable_json_with_unique_titled_panels() {
    let d = dashboard();
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(!d["uid"].as_str().unwrap().is_empty());
    assert!(!d["title"].as_str().unwrap().is_empty());
    assert!(d["id"].is_null(), "id must be null for an import");

    let vars = d["templating"]["list"].as_array().unwrap();
    let var = |name: &str| {
        vars.iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("no ${name} variable"))
    };
    assert_eq!(var("datasource")["type"], "datasource");
    assert_eq!(var("datasource")["query"], "prometheus");
    for name in ["job", "instance"] {
        assert_eq!(var(name)["type"], "query");
        assert_eq!(var(name)["datasource"]["uid"], "${datasource}");
    }

    let mut ids = BTreeSet::new();
    let mut cells: Vec<(i64, i64, i64, i64, String)> = vec![];
    for p in panels(&d) {
        let title = p["title"].as_str().unwrap_or("");
        assert!(!title.trim().is_empty(), "panel without a title: {p}");
        let id = p["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("{title}: no numeric id"));
        assert!(ids.insert(id), "{title}: id {id} used twice");
        let g = &p["gridPos"];
        let (x, y, w, h) = (
            g["x"].as_i64().unwrap(),
            g["y"].as_i64().unwrap(),
            g["w"].as_i64().unwrap(),
            g["h"].as_i64().unwrap(),
        );
        assert!(
            x >= 0 && w > 0 && h > 0 && x + w <= 24,
            "{title}: gridPos {g}"
        );
        for (x2, y2, w2, h2, other) in &cells {
            let overlap = x < x2 + w2 && *x2 < x + w && y < y2 + h2 && *y2 < y + h;
            assert!(!overlap, "{title} overlaps {other}");
        }
        cells.push((x, y, w, h, title.to_string()));
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        let targets = p["targets"]
            .as_array()
            .unwrap_or_else(|| panic!("{title}: no targets"));
        assert!(!targets.is_empty(), "{title}: no targets");
        let mut refs = BTreeSet::new();
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or("");
            assert!(!expr.trim().is_empty(), "{title}: a target without expr");
            assert!(
                refs.insert(t["refId"].as_str().unwrap()),
                "{title}: refId twice"
            );
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{title}");
        }
    }
}

/// Every grouping label of `expr` is a label of one of its metrics (or a
/// target label, or `le` of a histogram).
fn check_grouping(cat: &BTreeMap<String, MetricDef>, what: &str, expr: &str) {
    let mut have: BTreeSet<String> = TARGET_LABELS.iter().map(|l| l.to_string()).collect();
    have.insert("le".into());
    for (name, _) in selectors(expr) {
        if let Some(base) = base_metric(cat, &name) {
            have.extend(cat[base].labels.iter().cloned());
        }
    }
    for l in grouping_labels(expr) {
        assert!(
            have.contains(&l),
            "{what}: label {l} is on none of its metrics ({have:?})"
        );
    }
}

#[test]
fn dashboard_queries_use_the_daemons_metrics() {
    let cat = catalog();
    let d = dashboard();
    let mut used = BTreeSet::new();
    let mut exprs: Vec<(String, String)> = dashboard_queries(&d)
        .into_iter()
        .map(|(title, refid, expr, _)| (format!("{title} {refid}"), expr))
        .collect();
    for v in d["templating"]["list"].as_array().unwrap() {
        if let Some(def) = v["definition"].as_str() {
            exprs.push((format!("${}", v["name"]), def.to_string()));
        }
    }
    for (what, expr) in exprs {
        check_grouping(&cat, &what, &expr);
        let sels = selectors(&expr);
        assert!(!sels.is_empty(), "{what}: no metric in {expr}");
        for (name, _) in sels {
            if name == "up" {
                continue;
            }
            let base = base_metric(&cat, &name)
                .unwrap_or_else(|| panic!("{what}: {name} is not a metric of the daemon"));
            used.insert(base.to_string());
        }
    }
    // The per-series gauges (a key as a label) have their own dashboard,
    // checked by tests/remote_write.rs.
    let series: Value = serde_json::from_str(&read("deploy/grafana/lstm-ae-series.json")).unwrap();
    for (_, _, expr, _) in dashboard_queries(&series) {
        for (name, _) in selectors(&expr) {
            if let Some(base) = base_metric(&cat, &name) {
                used.insert(base.to_string());
            }
        }
    }
    // Every metric of the daemon has a panel.
    let all: BTreeSet<String> = cat.into_keys().collect();
    let missing: Vec<_> = all.difference(&used).collect();
    assert!(missing.is_empty(), "metrics without a panel: {missing:?}");
}

// ---------------------------------------------------------------------------
// Prometheus: scrape config and alert rules

fn scrape_job() -> String {
    let p = yaml("deploy/prometheus/prometheus.yml");
    let jobs = p["scrape_configs"].as_vec().expect("scrape_configs");
    let job = jobs
        .iter()
        .find(|j| j["job_name"].as_str() == Some("lstm-ae"))
        .expect("a scrape job named lstm-ae");
    assert!(matches!(
        job["metrics_path"].as_str(),
        None | Some("/metrics")
    ));
    let targets: Vec<&str> = job["static_configs"]
        .as_vec()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["targets"]
                .as_vec()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
        })
        .collect();
    let listen = ServeSettings::default().metrics_listen;
    assert!(
        targets.contains(&listen.as_str()),
        "scrape targets {targets:?} lack the default serve.metrics_listen {listen}"
    );
    job["job_name"].as_str().unwrap().to_string()
}

/// The `rule_files` list of a Prometheus config or a promtool test file.
fn rule_files(doc: &Yaml) -> Vec<&str> {
    doc["rule_files"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect()
}

#[test]
fn prometheus_scrapes_the_default_metrics_address_and_loads_the_alerts() {
    scrape_job();
    let p = yaml("deploy/prometheus/prometheus.yml");
    let files = rule_files(&p);
    assert_eq!(files, ["alerts.yml"]);
    assert!(root().join("deploy/prometheus").join(files[0]).is_file());
}

struct Rule<'a> {
    name: &'a str,
    expr: &'a str,
    rule: &'a Yaml,
}

fn rules(doc: &Yaml) -> Vec<Rule<'_>> {
    let mut out = vec![];
    let groups = doc["groups"].as_vec().expect("groups");
    assert!(!groups.is_empty());
    let mut group_names = BTreeSet::new();
    for g in groups {
        let gname = g["name"].as_str().expect("group name");
        assert!(group_names.insert(gname), "group {gname} twice");
        let rs = g["rules"]
            .as_vec()
            .unwrap_or_else(|| panic!("{gname}: no rules"));
        assert!(!rs.is_empty(), "{gname}: no rules");
        for r in rs {
            let name = r["alert"]
                .as_str()
                .unwrap_or_else(|| panic!("{gname}: a rule without alert: {r:?}"));
            let expr = r["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: no expr"));
            out.push(Rule {
                name,
                expr,
                rule: r,
            });
        }
    }
    out
}

/// Seconds of a Prometheus duration such as `1h30m`, `10m`, `0s`.
fn duration_secs(s: &str) -> Option<u64> {
    let mut total = 0;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            return None; // milliseconds: not used for `for`
        } else {
            c
        };
        let n: u64 = num.parse().ok()?;
        num.clear();
        total += n * match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604800,
            _ => return None,
        };
        any = true;
    }
    (num.is_empty() && any).then_some(total)
}

#[test]
fn every_alert_has_for_severity_summary_and_description() {
    let doc = yaml("deploy/prometheus/alerts.yml");
    let mut names = BTreeSet::new();
    for r in rules(&doc) {
        let name = r.name;
        assert!(names.insert(name), "alert {name} twice");
        assert!(
            name.starts_with("LstmAe"),
            "{name}: alert names start with LstmAe"
        );
        let f = string(&r.rule["for"]).unwrap_or_else(|| panic!("{name}: no `for`"));
        let secs = duration_secs(f).unwrap_or_else(|| panic!("{name}: bad for: {f}"));
        assert!(
            secs >= 60,
            "{name}: for {f} is shorter than a minute (flapping)"
        );
        let sev =
            string(&r.rule["labels"]["severity"]).unwrap_or_else(|| panic!("{name}: no severity"));
        assert!(
            ["critical", "warning", "info"].contains(&sev),
            "{name}: severity {sev}"
        );
        for a in ["summary", "description"] {
            let text =
                string(&r.rule["annotations"][a]).unwrap_or_else(|| panic!("{name}: no {a}"));
            assert!(text.len() > 10, "{name}: {a} too short");
        }
        assert!(
            string(&r.rule["annotations"]["description"])
                .unwrap()
                .contains("Action"),
            "{name}: the description names the action to take"
        );
    }
}

#[test]
fn alerts_use_the_daemons_metrics_and_scrape_job() {
    let cat = catalog();
    let job = scrape_job();
    let doc = yaml("deploy/prometheus/alerts.yml");
    let mut used = BTreeSet::new();
    for r in rules(&doc) {
        check_grouping(&cat, r.name, r.expr);
        for (name, matchers) in selectors(r.expr) {
            if name != "up" {
                let base = base_metric(&cat, &name)
                    .unwrap_or_else(|| panic!("{}: {name} is not a metric of the daemon", r.name));
                used.insert(base.to_string());
            }
            assert!(
                matchers.is_some_and(|m| m.contains(&format!("job=\"{job}\""))),
                "{}: {name} does not select job=\"{job}\"",
                r.name
            );
        }
    }
    // What an on-call engineer needs covered.
    for m in [
        "lstm_ae_ready",
        "lstm_ae_consumer_lag_messages",
        "lstm_ae_dead_letters_total",
        "lstm_ae_produce_errors_total",
        "lstm_ae_messages_consumed_total",
        "lstm_ae_windows_scored_total",
        "lstm_ae_end_to_end_latency_seconds",
        "lstm_ae_anomalies_total",
        "lstm_ae_live_series_keys",
    ] {
        assert!(used.contains(m), "no alert on {m}");
    }
    assert!(rules(&doc)
        .iter()
        .any(|r| r.expr.trim() == format!("up{{job=\"{job}\"}} == 0")));
}

#[test]
fn every_alert_has_a_unit_test_that_fires_it() {
    let doc = yaml("deploy/prometheus/alerts.yml");
    let alerts: BTreeSet<&str> = rules(&doc).iter().map(|r| r.name).collect();
    let tests = yaml("deploy/prometheus/alerts.test.yml");
    let files = rule_files(&tests);
    assert_eq!(files, ["alerts.yml"]);
    let mut fired = BTreeSet::new();
    for t in tests["tests"].as_vec().unwrap() {
        for a in t["alert_rule_test"].as_vec().into_iter().flatten() {
            let name = a["alertname"].as_str().unwrap();
            assert!(
                alerts.contains(name),
                "alerts.test.yml tests {name}, which alerts.yml lacks"
            );
            if a["exp_alerts"].as_vec().is_some_and(|v| !v.is_empty()) {
                fired.insert(name);
            }
        }
    }
    let untested: Vec<_> = alerts.difference(&fired).collect();
    assert!(
        untested.is_empty(),
        "alerts no unit test fires: {untested:?}"
    );
}

// ---------------------------------------------------------------------------
// promtool

/// promtool, when installed; under CI=true its absence is a failure.
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PROMTOOL").map(PathBuf::from).or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "promtool is not on PATH: scripts/setup.sh installs it (Debian package prometheus)"
        );
        eprintln!("skipped: promtool is not on PATH (scripts/setup.sh installs it)");
    }
    found
}

fn promtool_ok(tool: &Path, args: &[&str], dir: &Path) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

#[test]
fn promtool_accepts_the_config_and_rules_and_the_alert_unit_tests_pass() {
    let Some(tool) = promtool() else { return };
    let dir = root().join("deploy/prometheus");
    promtool_ok(&tool, &["check", "config", "prometheus.yml"], &dir);
    let text = promtool_ok(&tool, &["check", "rules", "alerts.yml"], &dir);
    let n = rules(&yaml("deploy/prometheus/alerts.yml")).len();
    assert!(
        text.contains(&format!("SUCCESS: {n} rules found")),
        "{text}"
    );
    promtool_ok(&tool, &["test", "rules", "alerts.test.yml"], &dir);
}

#[test]
fn promtool_parses_every_dashboard_query() {
    let Some(tool) = promtool() else { return };
    // Each query as a recording rule: `check rules` parses its PromQL.
    let d = dashboard();
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let queries = dashboard_queries(&d);
    for (k, (_, _, expr, _)) in queries.iter().enumerate() {
        file += &format!(
            "      - record: dashboard_query_{k}\n        expr: {}\n",
            serde_json::to_string(&substitute(expr)).unwrap()
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("dashboard.yml"), file).unwrap();
    let text = promtool_ok(&tool, &["check", "rules", "dashboard.yml"], tmp.path());
    assert!(
        text.contains(&format!("SUCCESS: {} rules found", queries.len())),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// The dashboard and the alerts against a real Prometheus

/// Dashboard queries that return data only after an event; the live test
/// below produces each event (and checks it happened).
const ONLY_ON_AN_EVENT: [(&str, &str); 5] = [
    ("lstm_ae_anomalies_total", "a spike in pump-0's points"),
    (
        "lstm_ae_anomalies_suppressed_total",
        "the spike's later windows, under anomalies.cooldown_windows",
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
    use common::broker::{Broker, Daemon};
    use common::prometheus::Prometheus;
    use std::time::Duration;

    let dir = common::broker::test_dir();
    let broker = Broker::with_daemon_topics(dir.path(), 1);
    // Two daemons in two groups reading the same stream: the calibrated
    // threshold with the storm rule, and the likelihood rule.
    let threshold = Daemon::start(
        dir.path(),
        &broker.brokers(),
        None,
        &[
            ("LSTM_AE__KAFKA__GROUP_ID", "threshold"),
            ("LSTM_AE__KAFKA__STATISTICS_INTERVAL_MS", "1000"),
            ("LSTM_AE__ANOMALIES__COOLDOWN_WINDOWS", "5"),
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

// ---------------------------------------------------------------------------
// systemd

/// key -> values of the unit's [Service] section (keys may repeat).
fn unit_section(section: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in read("deploy/systemd/lstm-ae.service").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with('[') {
            current = line.trim_matches(|c| c == '[' || c == ']').to_string();
        } else if current == section {
            let (k, v) = line.split_once('=').expect("key=value");
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    out
}

/// Seconds of a systemd time span such as `30s`, `1min 30s`, `90`.
fn systemd_secs(s: &str) -> u64 {
    s.split_whitespace()
        .map(|part| {
            let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
            let n: u64 = digits.parse().unwrap();
            n * match &part[digits.len()..] {
                "" | "s" | "sec" => 1,
                "m" | "min" => 60,
                "h" => 3600,
                u => panic!("unit {u} in {s}"),
            }
        })
        .sum()
}

#[test]
fn systemd_unit_runs_serve_and_outwaits_the_drain() {
    let svc = unit_section("Service");
    let one = |k: &str| -> &str {
        let v = svc.get(k).unwrap_or_else(|| panic!("[Service] has no {k}"));
        v.last().unwrap()
    };
    assert_eq!(
        one("ExecStart"),
        "/usr/local/bin/lstm-ae serve --config /etc/lstm-ae/serve.toml"
    );
    assert_eq!(one("KillSignal"), "SIGTERM");
    assert_eq!(one("Restart"), "on-failure");
    let drain = ServeSettings::default().drain_timeout_ms.div_ceil(1000);
    let stop = systemd_secs(one("TimeoutStopSec"));
    assert!(
        stop >= drain + 10,
        "TimeoutStopSec {stop}s must exceed serve.drain_timeout_ms ({drain}s) with room to commit"
    );
    assert!(svc["Environment"]
        .iter()
        .any(|e| e.starts_with("ORT_DYLIB_PATH=/")));
    for k in [
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "DynamicUser",
    ] {
        assert!(svc.contains_key(k), "hardening: {k} missing");
    }
    // The command line parses: `serve` takes --config.
    let help = Command::new(env!("CARGO_BIN_EXE_lstm-ae"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--config"));
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let has = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    }
    // verify wants ExecStart's binary to exist: point it at the one cargo built.
    let unit = read("deploy/systemd/lstm-ae.service")
        .replace("/usr/local/bin/lstm-ae", env!("CARGO_BIN_EXE_lstm-ae"));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("lstm-ae.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "systemd-analyze verify:\n{err}"
    );
}
