//! Hot reload under load (docs/model-store.md): the release `lstm-ae serve`
//! works through a backlog of points in a fresh tansu broker while new
//! versions are promoted in the model store it serves. Prints
//!
//! - the reload latency: promotion (the `current` file changed) → the first
//!   output record scored by the new version, once through polling
//!   (`serve.model_poll_ms`, default 5 s) and once with SIGHUP right after
//!   the promotion;
//! - the throughput around each swap (windows/s over the 3 s centred on the
//!   first record of the new version) beside the median over the run's
//!   whole seconds.
//!
//! Run with `scripts/bench-reload.sh` (BENCH_KEYS, BENCH_POINTS,
//! BENCH_POLL_MS override the defaults 50, 2000, 5000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::broker::{Broker, Daemon, TopicReader};
use common::models::{default_bundle, write_version};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`:
    // nothing is measured there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("reload bench: run it with scripts/bench-reload.sh or cargo bench --bench reload");
        return;
    }
    let keys = env_or("BENCH_KEYS", 50);
    let points = env_or("BENCH_POINTS", 2_000);
    let poll_ms = env_or("BENCH_POLL_MS", 5_000);
    let t = default_bundle().manifest.spec.window;
    let expected = keys * (points + 1 - t);

    let dir = common::broker::test_dir();
    let broker = Broker::with_daemon_topics(dir.path(), 2);
    let mut backlog = Vec::with_capacity(keys * points);
    for i in 0..points {
        for k in 0..keys {
            let v = 80.0 + 10.0 * ((i as f64) * 0.15 + k as f64).sin();
            let body = serde_json::json!({"key": format!("k{k}"), "ts": 1_700_000_000_000i64 + 60_000 * i as i64, "value": v});
            backlog.push((format!("k{k}"), body.to_string().into_bytes()));
        }
    }
    broker.produce("lstm-ae.points", &backlog);
    drop(backlog);

    let store = dir.path().join("store");
    let thr = default_bundle().manifest.threshold.value;
    for (v, scale) in [(1, 1.0), (2, 1.5), (3, 2.0)] {
        write_version(&store, v, thr * scale, None);
    }
    let s = store.to_str().unwrap_or_default().to_string();
    common::run_ok(&["models", "promote", &s, "1"]);

    // A long group session: under a backlog tansu can answer heartbeats
    // late, and a rebalance in the middle would blur the figures.
    let cfg = dir.path().join("bench.toml");
    std::fs::write(
        &cfg,
        "[kafka]\nsession_timeout_ms = 45000\n[kafka.consumer]\n\"heartbeat.interval.ms\" = \"3000\"\n",
    )
    .expect("the bench config is written");
    let daemon = Daemon::start(
        dir.path(),
        &broker.brokers(),
        Some(&cfg),
        &[
            ("LSTM_AE__SERVE__MODEL", &s),
            ("LSTM_AE__SERVE__MODEL_POLL_MS", &poll_ms.to_string()),
            ("LSTM_AE__SERVE__MAX_WAIT_MS", "20"),
        ],
    );
    let scored = |d: &Daemon| d.metric("lstm_ae_windows_scored_total") as usize;
    daemon.wait_until(300, "a fifth of the windows", |d| scored(d) >= expected / 5);
    let promoted_poll = common::now_ms();
    common::run_ok(&["models", "promote", &s, "2"]);
    daemon.wait_until(60, "version 2 live", |d| {
        d.metric("lstm_ae_model_reloads_total{result=\"ok\"}") >= 1.0
    });
    daemon.wait_until(300, "three fifths of the windows", |d| {
        scored(d) >= 3 * expected / 5
    });
    let promoted_hup = common::now_ms();
    common::run_ok(&["models", "promote", &s, "3"]);
    daemon.signal("-HUP");
    daemon.wait_until(60, "version 3 live", |d| {
        d.metric("lstm_ae_model_reloads_total{result=\"ok\"}") >= 2.0
    });
    daemon.wait_until(600, "every window", |d| scored(d) >= expected);
    let refused = daemon.metric("lstm_ae_model_reloads_total{result=\"refused\"}");
    daemon.signal("-TERM");

    let mut reader = TopicReader::new(&broker.brokers(), "lstm-ae.embeddings");
    let mut first: BTreeMap<String, i64> = BTreeMap::new();
    let mut per_second: BTreeMap<i64, usize> = BTreeMap::new();
    let mut stamps = vec![];
    reader.read_to_end(Duration::from_secs(120), |r| {
        let ts = r.timestamp_ms.unwrap_or(0);
        let v = r.json()["model_version"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        let e = first.entry(v).or_insert(ts);
        *e = (*e).min(ts);
        stamps.push(ts);
    });
    let (start, end) = (
        stamps.iter().min().copied().unwrap_or(0),
        stamps.iter().max().copied().unwrap_or(0),
    );
    for ts in &stamps {
        *per_second.entry((ts - start) / 1000).or_default() += 1;
    }
    // Whole seconds only (the last one is partial).
    let last = (end - start) / 1000;
    let mut rates: Vec<usize> = per_second
        .iter()
        .filter(|(s, _)| **s < last)
        .map(|(_, n)| *n)
        .collect();
    rates.sort_unstable();
    let median = rates.get(rates.len() / 2).copied().unwrap_or(0);
    // Windows/s over the 3 s centred on a swap (one second holds only a
    // few batches of up to 256 windows, too lumpy to compare alone).
    let around = |at: i64| {
        stamps
            .iter()
            .filter(|ts| (at - 1_500..at + 1_500).contains(*ts))
            .count()
            / 3
    };

    println!(
        "== hot reload under a backlog: {keys} keys × {points} points = {} windows (read {}), {} s, serve.model_poll_ms {poll_ms}",
        expected,
        stamps.len(),
        (end - start) / 1000
    );
    println!("median windows/s over whole seconds: {median}");
    for (v, promoted, how) in [("2", promoted_poll, "poll"), ("3", promoted_hup, "SIGHUP")] {
        let f = first.get(v).copied().unwrap_or(i64::MAX);
        println!(
            "v{v} ({how}): promotion → first record of v{v}: {} ms; windows/s over the 3 s around it: {} ({:.0} % of the median)",
            f - promoted,
            around(f),
            100.0 * around(f) as f64 / median.max(1) as f64
        );
    }
    println!("refused reloads: {refused}");
}
