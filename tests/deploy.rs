//! The operations kit in `deploy/` against the daemon it operates: every
//! metric the Grafana dashboard and the Prometheus alerts use exists in the
//! daemon's registry with the labels they group by; the files are well formed;
//! the scrape target is the daemon's default `serve.metrics_listen`; the
//! systemd unit stops the daemon slower than it drains. With `promtool` on
//! PATH (scripts/setup.sh installs it; required when CI=true) Prometheus
//! itself checks the config, the rules, the dashboard's queries and runs the
//! alerts' unit tests (deploy/prometheus/alerts.test.yml).

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
        Box::new(m.windows_in_flight.clone()),
        Box::new(m.live_series_keys.clone()),
        Box::new(m.max_series_keys.clone()),
        Box::new(m.anomaly_likelihood.clone()),
        Box::new(m.likelihood_keys.clone()),
        Box::new(m.offsets_committed.clone()),
        Box::new(m.model_info.clone()),
        Box::new(m.build_info.clone()),
        Box::new(m.ready.clone()),
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
    assert_eq!(cat.len(), 22);
}

/// What a series name in a query refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Whole,
    Bucket,
    Sum,
    Count,
}

/// The metric a series name belongs to, or why it names none.
fn resolve<'a>(
    cat: &'a BTreeMap<String, MetricDef>,
    series: &str,
) -> Result<(&'a MetricDef, Part), String> {
    if let Some(def) = cat.get(series) {
        return Ok((def, Part::Whole));
    }
    for (suffix, part) in [
        ("_bucket", Part::Bucket),
        ("_sum", Part::Sum),
        ("_count", Part::Count),
    ] {
        if let Some(base) = series.strip_suffix(suffix) {
            if let Some(def) = cat.get(base) {
                if def.kind == Kind::Histogram {
                    return Ok((def, part));
                }
                return Err(format!(
                    "{series}: {base} is a {:?}, not a histogram",
                    def.kind
                ));
            }
        }
    }
    Err(format!("{series}: no such metric in the daemon's registry"))
}

// ---------------------------------------------------------------------------
// A small PromQL scanner: enough to find metric selectors, their label
// matchers, the labels of `by`/`on`/`ignoring` and which functions and
// aggregations enclose what.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num,
    Range,
    Open(char),
    Close(char),
    Op(String),
}

fn tokenize(expr: &str) -> Result<Vec<Tok>, String> {
    let c: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut out = vec![];
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '#' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '"' || ch == '\'' || ch == '`' {
            let mut s = String::new();
            i += 1;
            while i < c.len() && c[i] != ch {
                if c[i] == '\\' && ch != '`' {
                    i += 1;
                }
                if i < c.len() {
                    s.push(c[i]);
                }
                i += 1;
            }
            if i >= c.len() {
                return Err(format!("unterminated string in {expr}"));
            }
            i += 1;
            out.push(Tok::Str(s));
        } else if ch == '[' {
            while i < c.len() && c[i] != ']' {
                i += 1;
            }
            if i >= c.len() {
                return Err(format!("unterminated range in {expr}"));
            }
            i += 1;
            out.push(Tok::Range);
        } else if ch == '(' || ch == '{' {
            out.push(Tok::Open(ch));
            i += 1;
        } else if ch == ')' || ch == '}' {
            out.push(Tok::Close(ch));
            i += 1;
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' || ch == '$' {
            let start = i;
            while i < c.len()
                && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':' || c[i] == '$')
            {
                i += 1;
            }
            out.push(Tok::Ident(c[start..i].iter().collect()));
        } else if ch.is_ascii_digit() || ch == '.' {
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                i += 1;
            }
            out.push(Tok::Num);
        } else {
            let two: String = c[i..(i + 2).min(c.len())].iter().collect();
            if ["==", "!=", "=~", "!~", ">=", "<="].contains(&two.as_str()) {
                out.push(Tok::Op(two));
                i += 2;
            } else if "=<>+-*/%^,".contains(ch) {
                out.push(Tok::Op(ch.to_string()));
                i += 1;
            } else {
                return Err(format!("unexpected {ch:?} in {expr}"));
            }
        }
    }
    Ok(out)
}

const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
];
const KEYWORDS: [&str; 10] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
];

#[derive(Debug)]
struct Selector {
    name: String,
    at: usize,
    /// (label, operator, value)
    matchers: Vec<(String, String, String)>,
}

#[derive(Debug)]
struct Grouping {
    keyword: String,
    labels: Vec<String>,
    /// Token span the clause applies to (aggregations only).
    body: Option<(usize, usize)>,
}

#[derive(Debug)]
struct Call {
    name: String,
    body: (usize, usize),
}

#[derive(Debug)]
struct Query {
    selectors: Vec<Selector>,
    groupings: Vec<Grouping>,
    calls: Vec<Call>,
}

fn parse(expr: &str) -> Result<Query, String> {
    let t = tokenize(expr)?;
    // Matching brackets.
    let mut pair = vec![usize::MAX; t.len()];
    let mut stack = vec![];
    for (i, tok) in t.iter().enumerate() {
        match tok {
            Tok::Open(_) => stack.push(i),
            Tok::Close(c) => {
                let o = stack.pop().ok_or(format!("unbalanced {c} in {expr}"))?;
                pair[o] = i;
                pair[i] = o;
            }
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(format!("unbalanced brackets in {expr}"));
    }
    let label_list = |open: usize| -> Result<Vec<String>, String> {
        let mut v = vec![];
        for tok in &t[open + 1..pair[open]] {
            match tok {
                Tok::Ident(l) => v.push(l.clone()),
                Tok::Op(c) if c == "," => {}
                other => return Err(format!("{other:?} in a label list of {expr}")),
            }
        }
        Ok(v)
    };
    let mut q = Query {
        selectors: vec![],
        groupings: vec![],
        calls: vec![],
    };
    let mut i = 0;
    while i < t.len() {
        let Tok::Ident(word) = &t[i] else {
            i += 1;
            continue;
        };
        let next_open = |c: char| matches!(t.get(i + 1), Some(Tok::Open(o)) if *o == c);
        if KEYWORDS.contains(&word.as_str()) {
            if next_open('(') {
                let labels = label_list(i + 1)?;
                let body = if ["by", "without"].contains(&word.as_str()) {
                    match t.get(i.wrapping_sub(1)) {
                        // sum by (a) (body)
                        Some(Tok::Ident(agg)) if AGGREGATIONS.contains(&agg.as_str()) => {
                            let o = pair[i + 1] + 1;
                            match t.get(o) {
                                Some(Tok::Open('(')) => Some((o, pair[o])),
                                _ => return Err(format!("no body after {word} in {expr}")),
                            }
                        }
                        // sum (body) by (a)
                        Some(Tok::Close(')')) => Some((pair[i - 1], i - 1)),
                        _ => return Err(format!("{word} outside an aggregation in {expr}")),
                    }
                } else {
                    None
                };
                q.groupings.push(Grouping {
                    keyword: word.clone(),
                    labels,
                    body,
                });
                i = pair[i + 1] + 1;
            } else {
                i += 1;
            }
            continue;
        }
        if next_open('(') {
            // A function or an aggregation: sum by (x) (...) has its body later.
            q.calls.push(Call {
                name: word.clone(),
                body: (i + 1, pair[i + 1]),
            });
            i += 1;
            continue;
        }
        if AGGREGATIONS.contains(&word.as_str()) {
            // `sum by (...) (...)`: the body is recorded with the grouping.
            if let (Some(Tok::Ident(k)), Some(Tok::Open('('))) = (t.get(i + 1), t.get(i + 2)) {
                if ["by", "without"].contains(&k.as_str()) {
                    let body_open = pair[i + 2] + 1;
                    q.calls.push(Call {
                        name: word.clone(),
                        body: (body_open, pair[body_open]),
                    });
                    i += 1;
                    continue;
                }
            }
        }
        if word == "offset" {
            i += 2;
            continue;
        }
        // A metric selector.
        let mut sel = Selector {
            name: word.clone(),
            at: i,
            matchers: vec![],
        };
        if next_open('{') {
            let close = pair[i + 1];
            let mut j = i + 2;
            while j < close {
                match (&t[j], t.get(j + 1), t.get(j + 2)) {
                    (Tok::Ident(l), Some(Tok::Op(op)), Some(Tok::Str(v))) => {
                        sel.matchers.push((l.clone(), op.clone(), v.clone()));
                        j += 3;
                    }
                    (Tok::Op(c), _, _) if c == "," => j += 1,
                    other => return Err(format!("bad matcher {other:?} in {expr}")),
                }
            }
            i = close + 1;
        } else {
            i += 1;
        }
        q.selectors.push(sel);
    }
    Ok(q)
}

/// One query checked against the registry.
struct Checked {
    /// Metric names referred to (histogram parts under their metric's name).
    metrics: BTreeSet<String>,
    /// Labels a result series can carry, for legends and `$labels`.
    result_labels: BTreeSet<String>,
}

/// Checks one PromQL expression: metric names exist, matchers and groupings
/// use labels the metrics have, counters are rated and gauges are not,
/// `histogram_quantile` gets buckets grouped by `le`.
fn check_query(cat: &BTreeMap<String, MetricDef>, expr: &str) -> Result<Checked, String> {
    let q = parse(expr)?;
    let mut metrics = BTreeSet::new();
    // Per selector: the labels its series carry.
    let mut sel_labels: Vec<BTreeSet<String>> = vec![];
    let mut sel_part: Vec<Option<(Kind, Part)>> = vec![];
    for s in &q.selectors {
        let mut labels: BTreeSet<String> = TARGET_LABELS.iter().map(|l| l.to_string()).collect();
        if s.name == "up" {
            sel_part.push(None);
        } else if s.name.starts_with("lstm_ae_") {
            let (def, part) = resolve(cat, &s.name)?;
            let base = match part {
                Part::Whole => s.name.clone(),
                _ => s.name[..s.name.rfind('_').unwrap()].to_string(),
            };
            metrics.insert(base);
            labels.extend(def.labels.iter().cloned());
            if part == Part::Bucket {
                labels.insert("le".into());
            }
            sel_part.push(Some((def.kind, part)));
        } else {
            return Err(format!(
                "{}: not a metric of the daemon (in {expr})",
                s.name
            ));
        }
        for (l, _, _) in &s.matchers {
            if !labels.contains(l) {
                return Err(format!(
                    "{}{{{l}=...}}: it has no label {l} (in {expr})",
                    s.name
                ));
            }
        }
        sel_labels.push(labels);
    }
    let inside = |span: (usize, usize)| -> Vec<usize> {
        (0..q.selectors.len())
            .filter(|&k| q.selectors[k].at > span.0 && q.selectors[k].at < span.1)
            .collect()
    };
    let all_labels: BTreeSet<String> = sel_labels.iter().flatten().cloned().collect();
    let mut result_labels = BTreeSet::new();
    for g in &q.groupings {
        match g.body {
            Some(body) => {
                let inner = inside(body);
                for l in &g.labels {
                    if g.keyword == "by" && !inner.iter().all(|&k| sel_labels[k].contains(l)) {
                        return Err(format!(
                            "{} ({l}): not a label of every series aggregated (in {expr})",
                            g.keyword
                        ));
                    }
                }
                if g.keyword == "by" {
                    result_labels.extend(g.labels.iter().cloned());
                }
            }
            None => {
                for l in &g.labels {
                    if !all_labels.contains(l) {
                        return Err(format!(
                            "{} ({l}): no series of the query has it (in {expr})",
                            g.keyword
                        ));
                    }
                }
            }
        }
    }
    for call in &q.calls {
        let inner = inside(call.body);
        match call.name.as_str() {
            "rate" | "irate" | "increase" | "resets" => {
                for &k in &inner {
                    if let Some((kind, part)) = sel_part[k] {
                        if kind == Kind::Gauge || (kind == Kind::Histogram && part == Part::Whole) {
                            return Err(format!(
                                "{}({}): not a counter (in {expr})",
                                call.name, q.selectors[k].name
                            ));
                        }
                    }
                }
            }
            "deriv" | "delta" | "predict_linear" => {
                for &k in &inner {
                    if let Some((kind, _)) = sel_part[k] {
                        if kind != Kind::Gauge {
                            return Err(format!(
                                "{}({}): not a gauge (in {expr})",
                                call.name, q.selectors[k].name
                            ));
                        }
                    }
                }
            }
            "histogram_quantile" => {
                if inner.is_empty()
                    || inner
                        .iter()
                        .any(|&k| sel_part[k].map(|p| p.1) != Some(Part::Bucket))
                {
                    return Err(format!(
                        "histogram_quantile over series that are not _bucket (in {expr})"
                    ));
                }
                for g in &q.groupings {
                    if let Some(body) = g.body {
                        if body.0 > call.body.0
                            && body.1 < call.body.1
                            && g.keyword == "by"
                            && !g.labels.iter().any(|l| l == "le")
                        {
                            return Err(format!(
                                "histogram_quantile of an aggregation without le (in {expr})"
                            ));
                        }
                        if body.0 > call.body.0 && body.1 < call.body.1 {
                            // le is consumed by the quantile.
                            result_labels.remove("le");
                            let kept: Vec<_> =
                                g.labels.iter().filter(|l| *l != "le").cloned().collect();
                            result_labels.extend(kept);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let aggregated = q.groupings.iter().any(|g| g.body.is_some())
        || q.calls
            .iter()
            .any(|c| AGGREGATIONS.contains(&c.name.as_str()));
    if !aggregated {
        result_labels = all_labels;
    }
    Ok(Checked {
        metrics,
        result_labels,
    })
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

#[test]
fn the_query_checker_catches_what_it_should() {
    let cat = catalog();
    let ok = |e: &str| check_query(&cat, e).unwrap_or_else(|err| panic!("{err}"));
    let bad = |e: &str| assert!(check_query(&cat, e).is_err(), "accepted: {e}");
    let c = ok(r#"sum by (job, topic) (rate(lstm_ae_messages_consumed_total{job="x"}[5m]))"#);
    assert_eq!(
        c.metrics,
        BTreeSet::from(["lstm_ae_messages_consumed_total".to_string()])
    );
    assert_eq!(
        c.result_labels,
        BTreeSet::from(["job".into(), "topic".into()])
    );
    let c = ok("histogram_quantile(0.99, sum by (topic, le) (rate(lstm_ae_end_to_end_latency_seconds_bucket[5m])))");
    assert_eq!(c.result_labels, BTreeSet::from(["topic".to_string()]));
    ok("sum(rate(lstm_ae_inference_duration_seconds_sum[1m])) / sum(rate(lstm_ae_inference_duration_seconds_count[1m]))");
    ok("lstm_ae_consumer_lag_messages > 3 unless sum by (topic) (rate(lstm_ae_messages_consumed_total[1m])) > 0");
    ok("sum(rate(lstm_ae_windows_scored_total[1m])) by (instance)");
    bad("rate(lstm_ae_messages_consumed[5m])"); // no such metric
    bad("lstm_ae_windows_scored_total_bucket"); // not a histogram
    bad("sum by (reason) (rate(lstm_ae_messages_consumed_total[5m]))"); // no label reason
    bad(r#"lstm_ae_ready{topic="x"}"#); // no label topic
    bad("rate(lstm_ae_consumer_lag_messages[5m])"); // a gauge
    bad("deriv(lstm_ae_windows_scored_total[5m])"); // a counter
    bad("histogram_quantile(0.5, sum by (topic) (rate(lstm_ae_end_to_end_latency_seconds_bucket[5m])))"); // no le
    bad("histogram_quantile(0.5, rate(lstm_ae_end_to_end_latency_seconds_sum[5m]))");
    bad("node_cpu_seconds_total"); // not ours
    assert_eq!(
        legend_labels("p99 {{topic}}[{{ partition }}]"),
        ["topic", "partition"]
    );
    assert_eq!(
        template_labels("on {{ $labels.instance }}: {{ $value }}"),
        ["instance"]
    );
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

#[test]
fn dashboard_queries_use_the_daemons_metrics_and_labels() {
    let cat = catalog();
    let d = dashboard();
    let mut used = BTreeSet::new();
    for (title, refid, expr, legend) in dashboard_queries(&d) {
        let c = check_query(&cat, &expr).unwrap_or_else(|e| panic!("{title} {refid}: {e}"));
        for l in legend_labels(&legend) {
            assert!(
                c.result_labels.contains(&l),
                "{title} {refid}: legend {{{{{l}}}}} is not a label of the result {:?}",
                c.result_labels
            );
        }
        used.extend(c.metrics);
    }
    // Template variables: label_values(selector, label).
    for v in d["templating"]["list"].as_array().unwrap() {
        let Some(def) = v["definition"].as_str() else {
            continue;
        };
        let inner = def
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{def}: expected label_values(selector, label)"));
        let (sel, label) = inner.rsplit_once(',').unwrap();
        let c = check_query(&cat, sel).unwrap_or_else(|e| panic!("${}: {e}", v["name"]));
        assert!(c.result_labels.contains(label.trim()), "{def}");
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
fn alerts_use_the_daemons_metrics_labels_and_scrape_job() {
    let cat = catalog();
    let job = scrape_job();
    let doc = yaml("deploy/prometheus/alerts.yml");
    let mut used = BTreeSet::new();
    for r in rules(&doc) {
        let c = check_query(&cat, r.expr).unwrap_or_else(|e| panic!("{}: {e}", r.name));
        used.extend(c.metrics.iter().cloned());
        for s in parse(r.expr).unwrap().selectors {
            assert!(
                s.matchers
                    .iter()
                    .any(|(l, op, v)| l == "job" && op == "=" && *v == job),
                "{}: {} does not select job=\"{job}\"",
                r.name,
                s.name
            );
        }
        for a in ["summary", "description"] {
            for l in template_labels(string(&r.rule["annotations"][a]).unwrap()) {
                assert!(
                    c.result_labels.contains(&l),
                    "{}: $labels.{l} is not a label of the alert's series {:?}",
                    r.name,
                    c.result_labels
                );
            }
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
