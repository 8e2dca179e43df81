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
//!
//! One module per part of the kit: the daemon's metric catalog
//! (`catalog.rs`), the PromQL scanners the checks share (`promql.rs`), the
//! Grafana dashboard (`grafana.rs`), the Prometheus scrape config and alert
//! rules (`alerts.rs`), promtool (`promtool.rs`), the live run against a
//! real Prometheus (`live.rs`) and the systemd unit (`systemd.rs`).

#[path = "../common/mod.rs"]
mod common;

mod alerts;
mod catalog;
mod grafana;
mod live;
mod promql;
mod promtool;
mod systemd;

use std::path::PathBuf;

use yaml_rust2::{Yaml, YamlLoader};

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

fn string(y: &Yaml) -> Option<&str> {
    y.as_str()
}
