//! Prometheus: the scrape config (deploy/prometheus/prometheus.yml) and the
//! alert rules (alerts.yml) with their unit tests (alerts.test.yml), read
//! as files.

use std::collections::BTreeSet;

use lstm_ae::config::ServeSettings;
use yaml_rust2::Yaml;

use super::catalog::catalog;
use super::promql::{base_metric, check_grouping, selectors};
use super::{root, string, yaml};

pub(crate) fn scrape_job() -> String {
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
pub(crate) fn rule_files(doc: &Yaml) -> Vec<&str> {
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

pub(crate) struct Rule<'a> {
    pub(crate) name: &'a str,
    pub(crate) expr: &'a str,
    pub(crate) rule: &'a Yaml,
}

pub(crate) fn rules(doc: &Yaml) -> Vec<Rule<'_>> {
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
