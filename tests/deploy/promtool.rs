//! promtool checks the Prometheus config and rules, runs the alerts' unit
//! tests, and parses every dashboard query.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::alerts::rules;
use super::grafana::{dashboard, dashboard_queries, substitute};
use super::{root, yaml};

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
