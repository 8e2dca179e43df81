//! The Grafana dashboard (deploy/grafana/lstm-ae.json): importable, well
//! laid out, and every query on the daemon's metrics, every metric on a
//! panel.

use std::collections::BTreeSet;

use serde_json::Value;

use super::catalog::catalog;
use super::promql::{base_metric, check_grouping, selectors};
use super::read;

pub(crate) fn dashboard() -> Value {
    serde_json::from_str(&read("deploy/grafana/lstm-ae.json"))
        .unwrap_or_else(|e| panic!("deploy/grafana/lstm-ae.json: {e}"))
}

/// Panels, rows' nested panels included.
pub(crate) fn panels(d: &Value) -> Vec<&Value> {
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
pub(crate) fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("$job", "lstm-ae")
        .replace("$instance", ".*")
}

/// (panel title, refId, expr, legend) of every query.
pub(crate) fn dashboard_queries(d: &Value) -> Vec<(String, String, String, String)> {
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
