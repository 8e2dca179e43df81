//! A real Prometheus server (Debian's `prometheus`, installed by
//! `scripts/setup.sh --test`) on 127.0.0.1 and a free port, scraping given
//! targets every second as job `lstm-ae` and evaluating given rule files;
//! queried through its HTTP API. Killed on drop.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::procs;

pub struct Prometheus {
    pub port: u16,
    child: Child,
}

/// Percent-encodes a query-string value.
pub fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Prometheus {
    /// Scrapes `targets` (ports on 127.0.0.1) as job `lstm-ae` every second;
    /// `rules` are copied next to the config and evaluated every second.
    pub fn start(dir: &Path, targets: &[u16], rules: &[PathBuf]) -> Prometheus {
        let port = procs::free_port().unwrap();
        let mut rule_names = vec![];
        for r in rules {
            let name = r.file_name().unwrap().to_string_lossy().into_owned();
            std::fs::copy(r, dir.join(&name)).unwrap();
            rule_names.push(format!("\"{name}\""));
        }
        let targets: Vec<String> = targets
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        let cfg = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [{}]\n\
             scrape_configs:\n  - job_name: lstm-ae\n    scrape_timeout: 900ms\n    static_configs:\n      - targets: [{}]\n",
            rule_names.join(", "),
            targets.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), cfg).unwrap();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .current_dir(dir)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("prometheus (Debian package prometheus: scripts/setup.sh --test) starts");
        let p = Prometheus { port, child };
        let deadline = Instant::now() + Duration::from_secs(60);
        while procs::http_get(port, "/-/ready").map(|r| r.0) != Ok(200) {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 60 s; see {}",
                dir.join("prometheus.log").display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        p
    }

    fn api(&self, path: &str) -> Value {
        let (status, body) = procs::http_get(self.port, path).unwrap();
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET {path}: {status} {e}: {body}"));
        assert_eq!(v["status"], "success", "GET {path}: {body}");
        v["data"].clone()
    }

    /// An instant query's result (a vector's samples, or `[ts, value]` for a scalar).
    pub fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api(&format!("/api/v1/query?query={}", urlencode(expr)));
        match data["result"].as_array() {
            Some(a) if data["resultType"] == "vector" || data["resultType"] == "matrix" => {
                a.clone()
            }
            _ => vec![data["result"].clone()],
        }
    }

    /// Label names of every series matching `selector`.
    pub fn label_names(&self, selector: &str) -> BTreeSet<String> {
        let data = self.api(&format!("/api/v1/series?match[]={}", urlencode(selector)));
        data.as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s.as_object().unwrap().keys().cloned())
            .collect()
    }

    /// Metric names Prometheus holds.
    pub fn metric_names(&self) -> BTreeSet<String> {
        self.api("/api/v1/label/__name__/values")
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    /// Every rule's (name, health, lastError) from /api/v1/rules.
    pub fn rules(&self) -> Vec<(String, String, String)> {
        let data = self.api("/api/v1/rules");
        let mut out = vec![];
        for g in data["groups"].as_array().unwrap() {
            for r in g["rules"].as_array().unwrap() {
                out.push((
                    r["name"].as_str().unwrap_or("").to_string(),
                    r["health"].as_str().unwrap_or("").to_string(),
                    r["lastError"].as_str().unwrap_or("").to_string(),
                ));
            }
        }
        out
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
