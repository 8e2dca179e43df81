//! The series dashboard (deploy/grafana/lstm-ae-series.json) as the tests
//! read it: its panels, variables and every PromQL query in it, with
//! Grafana's variables replaced so that Prometheus can evaluate them.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn json(rel: &str) -> Value {
    let text = std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

pub fn dashboard() -> Value {
    json("deploy/grafana/lstm-ae-series.json")
}

pub fn variable<'a>(d: &'a Value, name: &str) -> &'a Value {
    d["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no ${name} variable"))
}

pub fn panel<'a>(d: &'a Value, title: &str) -> &'a Value {
    d["panels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["title"] == title)
        .unwrap_or_else(|| panic!("no panel {title:?}"))
}

/// (where, PromQL) of every query: panel targets, variables, annotations.
pub fn queries(d: &Value) -> Vec<(String, String)> {
    let mut out = vec![];
    for p in d["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                format!("{} / {}", p["title"], t["refId"]),
                t["expr"].as_str().unwrap().to_string(),
            ));
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            out.push((
                format!("${}", v["name"].as_str().unwrap()),
                v["query"]["query"].as_str().unwrap().to_string(),
            ));
        }
    }
    for a in d["annotations"]["list"].as_array().unwrap() {
        if let Some(e) = a["expr"].as_str() {
            out.push((format!("annotation {}", a["name"]), e.to_string()));
        }
    }
    out
}

/// Metric names in a PromQL expression: identifiers starting `lstm_ae_`.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("lstm_ae_"))
        .map(String::from)
        .collect()
}

/// Grafana's variables in a query replaced by values Prometheus accepts.
pub fn substitute(expr: &str, key: &str, feature: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$key", key)
        .replace("$feature", feature)
}

/// A variable's query as Prometheus answers it: Grafana's
/// `label_values(X, l)` becomes `count by (l) (X)`; others stay.
pub fn promql(expr: &str) -> String {
    match expr.strip_prefix("label_values(") {
        Some(rest) => {
            let (selector, label) = rest
                .trim_end_matches(')')
                .rsplit_once(',')
                .expect("label_values(selector, label)");
            format!("count by ({}) ({selector})", label.trim())
        }
        None => expr.to_string(),
    }
}
