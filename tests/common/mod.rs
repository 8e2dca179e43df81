//! Helpers shared by the integration tests: the binary, temp folders and
//! synthetic series whose anomalies are known by construction.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lstm-ae"))
}

/// Runs `lstm-ae` with `args`; stdout and stderr captured.
pub fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args).env("RUST_LOG", "warn");
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("the lstm-ae binary runs")
}

/// Runs `lstm-ae` with `args` and panics with its stderr unless it succeeds.
pub fn run_ok(args: &[&str]) {
    let out = run(args, &[]);
    assert!(
        out.status.success(),
        "lstm-ae {args:?}: {}",
        text(&out.stderr)
    );
}

/// Wall-clock epoch milliseconds (to compare with Kafka timestamps).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A noisy sine (period 40 rows) sampled every minute from 2026-01-01.
/// Rows in `spike` get +8 added: an anomaly no normal window resembles.
pub fn sine_csv(path: &Path, rows: usize, spike: Option<std::ops::Range<usize>>) {
    let mut s = String::from("timestamp,value\n");
    let mut state = 12345u64;
    for r in 0..rows {
        // xorshift noise: deterministic, no extra dependency.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let noise = (state % 1000) as f64 / 1000.0 - 0.5;
        let mut v = 10.0 + 3.0 * (r as f64 * std::f64::consts::TAU / 40.0).sin() + 0.2 * noise;
        if spike.as_ref().is_some_and(|s| s.contains(&r)) {
            v += 8.0;
        }
        let ts = chrono::DateTime::from_timestamp(1_767_225_600 + 60 * r as i64, 0).unwrap();
        s.push_str(&format!("{},{v:.4}\n", ts.format("%Y-%m-%d %H:%M:%S")));
    }
    std::fs::write(path, s).unwrap();
}

/// Small, fast training settings for tests.
pub const SMALL: &[&str] = &[
    "--window",
    "16",
    "--hidden",
    "8",
    "--horizon",
    "4",
    "--epochs",
    "6",
    "--batch-size",
    "32",
    "--quiet",
];

pub mod broker;
pub mod docker;
pub mod models;
pub mod procs;
pub mod prometheus;
pub mod receivers;
pub mod series_dashboard;
pub mod tools;
