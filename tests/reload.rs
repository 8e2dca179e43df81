//! Hot reload in `lstm-ae serve`, against a real broker process (tansu) and
//! real ONNX Runtime: while points stream in, versions are promoted in the
//! model store the daemon serves from.
//!
//! - a valid new version is swapped in: no window is lost or repeated, each
//!   window is scored by exactly one version, and per key every window
//!   before the switch carries the old version and every one after it the
//!   new one, scored with that version's threshold;
//! - a version whose features disagree with the live model, and a version
//!   whose ONNX file was truncated after promotion, are refused and counted
//!   while the new version keeps scoring;
//! - output does not stop during the swap.
//!
//! Needs the tansu binary that `scripts/setup.sh --test` installs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::broker::{Broker, Daemon, TopicReader};
use common::models::{default_bundle, write_version};

const KEYS: usize = 8;
const N: usize = 1_200; // points per key
const T: usize = 64; // the default model's window
const T0: i64 = 1_700_000_000_000;

fn ts(i: usize) -> i64 {
    T0 + 60_000 * i as i64
}

fn points(from: usize, to: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    for i in from..to {
        for k in 0..KEYS {
            let v = 80.0 + 10.0 * ((i as f64) * 0.15 + k as f64).sin();
            let body = serde_json::json!({"key": format!("m-{k}"), "ts": ts(i), "value": v});
            out.push((format!("m-{k}"), body.to_string().into_bytes()));
        }
    }
    out
}

#[test]
fn promoted_versions_are_swapped_in_between_batches_and_bad_ones_refused() {
    let dir = common::broker::test_dir();
    let broker = Broker::with_daemon_topics(dir.path(), 2);

    // A store whose live version is 1; version 2 has a threshold 1.6 times
    // as high, so a record's normalized score tells which one scored it.
    let store = dir.path().join("store");
    let thr1 = default_bundle().manifest.threshold.value;
    let thr = |v: &str| match v {
        "1" => thr1,
        "2" => thr1 * 1.6,
        other => panic!("a record scored by version {other}"),
    };
    let s = store.to_str().unwrap();
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
    common::run_ok(&["models", "import", s, bundle.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(store.join("current"))
            .unwrap()
            .trim(),
        "1"
    );
    write_version(&store, 2, thr("2"), None);
    // Valid on its own (promote accepts it), but it reads another feature.
    write_version(&store, 3, thr("2"), Some(vec!["pressure".into()]));
    // Truncated after it was written: the checksum no longer matches.
    let v4 = write_version(&store, 4, thr("2"), None);
    let onnx = v4.join("model.onnx");
    let bytes = std::fs::read(&onnx).unwrap();
    std::fs::write(&onnx, &bytes[..bytes.len() / 2]).unwrap();

    let daemon = Daemon::start(
        dir.path(),
        &broker.brokers(),
        None,
        &[
            ("LSTM_AE__SERVE__MODEL", s),
            ("LSTM_AE__SERVE__MODEL_POLL_MS", "200"),
        ],
    );
    daemon.wait_until(60, "version 1 loaded", |d| {
        d.metric("lstm_ae_model_info{features=\"1\",hidden=\"64\",mode=\"composite\",model_id=\"machine_temperature\",version=\"1\",window=\"64\"}") == 1.0
    });

    // The stream is paced by a thread, so the swaps happen while it flows.
    let brokers = broker.brokers();
    let producer = std::thread::spawn(move || {
        let chunk = 20;
        for from in (0..N).step_by(chunk) {
            common::broker::produce(
                &brokers,
                "lstm-ae.points",
                &points(from, (from + chunk).min(N)),
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let scored = |d: &Daemon| d.metric("lstm_ae_windows_scored_total");
    daemon.wait_until(120, "the first windows scored", |d| scored(d) >= 1_000.0);

    let promoted_at = common::now_ms();
    common::run_ok(&["models", "promote", s, "2"]);
    let asked = Instant::now();
    daemon.wait_until(30, "version 2 swapped in", |d| {
        d.metric("lstm_ae_model_reloads_total{result=\"ok\"}") == 1.0
    });
    let swapped_in = asked.elapsed();

    // A version reading another feature: refused, version 2 goes on.
    common::run_ok(&["models", "promote", s, "3"]);
    daemon.wait_until(30, "version 3 refused", |d| {
        d.metric("lstm_ae_model_reloads_total{result=\"refused\"}") == 1.0
    });
    // `current` naming the truncated version (written as the store does):
    // refused too.
    std::fs::write(store.join("current.tmp"), "4\n").unwrap();
    std::fs::rename(store.join("current.tmp"), store.join("current")).unwrap();
    daemon.wait_until(30, "version 4 refused", |d| {
        d.metric("lstm_ae_model_reloads_total{result=\"refused\"}") == 2.0
    });
    let before = scored(&daemon);
    daemon.wait_until(60, "scoring to go on after the refusals", |d| {
        scored(d) > before
    });
    assert_eq!(
        daemon.metric("lstm_ae_model_reloads_total{result=\"ok\"}"),
        1.0
    );
    let info = daemon.get("/metrics").1;
    let live: Vec<&str> = info
        .lines()
        .filter(|l| l.starts_with("lstm_ae_model_info{"))
        .collect();
    assert_eq!(live.len(), 1, "one live model: {live:?}");
    assert!(live[0].contains("version=\"2\""), "{live:?}");

    producer.join().unwrap();
    let want: BTreeSet<(String, String)> = (0..KEYS)
        .flat_map(|k| {
            (T - 1..N).map(move |i| {
                (
                    format!("m-{k}"),
                    lstm_ae::stream::records::format_ts_ms(ts(i)),
                )
            })
        })
        .collect();
    daemon.wait_until(180, "every window scored", |d| {
        scored(d) as usize >= want.len()
    });
    daemon.signal("-TERM");

    // Every embeddings record, to the topic's end.
    let mut reader = TopicReader::new(&broker.brokers(), "lstm-ae.embeddings");
    let mut records = vec![];
    reader.read_to_end(Duration::from_secs(60), |r| records.push(r));
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    // Per key, the versions in window order.
    let mut by_key: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
    let mut first_v2_at = i64::MAX;
    let mut produced_at = vec![];
    for r in &records {
        let v = r.json();
        let key = v["key"].as_str().unwrap().to_string();
        let end = v["window_end_ts"].as_str().unwrap().to_string();
        let version = v["model_version"].as_str().unwrap().to_string();
        let (score, norm) = (
            v["score"].as_f64().unwrap(),
            v["normalized_score"].as_f64().unwrap(),
        );
        let expect = score / f64::from(thr(&version));
        assert!(
            (norm - expect).abs() <= 1e-5 * expect.abs().max(1.0),
            "{key} {end}: normalized {norm} is not score / threshold of version {version} ({expect})"
        );
        let t = r.timestamp_ms.unwrap();
        produced_at.push(t);
        if version == "2" {
            first_v2_at = first_v2_at.min(t);
        }
        let end_ms = lstm_ae::data::time::parse_rfc3339(&end).unwrap();
        by_key
            .entry(key.clone())
            .or_default()
            .push((end_ms, version));
        *seen.entry((key, end)).or_default() += 1;
    }
    assert_eq!(
        seen.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "exactly the expected windows"
    );
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeated.is_empty(),
        "windows scored twice: {:?}",
        &repeated[..repeated.len().min(5)]
    );
    for (key, mut windows) in by_key {
        windows.sort();
        let versions: Vec<&str> = windows.iter().map(|(_, v)| v.as_str()).collect();
        let switch = versions
            .iter()
            .position(|v| *v == "2")
            .unwrap_or(versions.len());
        assert!(
            switch > 0 && switch < versions.len(),
            "{key}: both versions scored some windows (switch at {switch} of {})",
            versions.len()
        );
        assert!(
            versions[..switch].iter().all(|v| *v == "1")
                && versions[switch..].iter().all(|v| *v == "2"),
            "{key}: versions in window order are not 1…1 2…2: {versions:?}"
        );
    }
    // Output never stopped for long while the stream flowed (the swap
    // does not pause scoring).
    produced_at.sort();
    let gap = produced_at
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(0);
    assert!(gap < 5_000, "output stopped for {gap} ms");
    eprintln!(
        "reload: promote → first record of version 2: {} ms (reload seen in /metrics after {} ms); longest output gap {gap} ms; {} records",
        first_v2_at - promoted_at,
        swapped_in.as_millis(),
        records.len()
    );
}

/// `current` replaced by a FIFO behaves like a store on a hung network file
/// system: reading it never returns. The check runs off the daemon's loop
/// with a time limit, so scoring goes on, a SIGHUP during the check is
/// skipped and counted, the check that times out is counted as refused
/// (its thread, blocked for good, is left behind), and SIGTERM ends the
/// daemon within `drain_timeout_ms` + 1 s.
#[test]
fn a_store_that_hangs_stops_neither_scoring_nor_shutdown() {
    let dir = common::broker::test_dir();
    let broker = Broker::with_daemon_topics(dir.path(), 1);
    let store = dir.path().join("store");
    let s = store.to_str().unwrap();
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
    common::run_ok(&["models", "import", s, bundle.to_str().unwrap()]);
    let mut daemon = Daemon::start(
        dir.path(),
        &broker.brokers(),
        None,
        &[
            ("LSTM_AE__SERVE__MODEL", s),
            ("LSTM_AE__SERVE__MODEL_POLL_MS", "200"),
            ("LSTM_AE__SERVE__MODEL_CHECK_TIMEOUT_MS", "3000"),
        ],
    );
    daemon.wait_until(60, "version 1 loaded", |d| {
        d.metric("lstm_ae_model_reload_in_progress") == 0.0
            && d.metric("lstm_ae_windows_scored_total") == 0.0
            && d.get("/readyz").0 == 200
    });
    let brokers = broker.brokers();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let producer = std::thread::spawn(move || {
        let mut from = 0;
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            common::broker::produce(&brokers, "lstm-ae.points", &points(from, from + 10));
            from += 10;
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let scored = |d: &Daemon| d.metric("lstm_ae_windows_scored_total");
    daemon.wait_until(120, "the first windows scored", |d| scored(d) >= 100.0);

    let current = store.join("current");
    std::fs::remove_file(&current).unwrap();
    let st = std::process::Command::new("mkfifo")
        .arg(&current)
        .status()
        .unwrap();
    assert!(st.success());
    // A poll starts a check, which blocks on the FIFO.
    std::thread::sleep(Duration::from_millis(1_000));
    let before = scored(&daemon);
    daemon.wait_until(30, "scoring to go on while `current` hangs", |d| {
        scored(d) >= before + 100.0
    });
    assert_eq!(daemon.metric("lstm_ae_model_reload_in_progress"), 1.0);
    let skipped = "lstm_ae_model_reload_skipped_total{reason=\"check_running\"}";
    let was = daemon.metric(skipped);
    daemon.signal("-HUP");
    daemon.wait_until(10, "the SIGHUP during the check counted", |d| {
        d.metric(skipped) > was
    });
    daemon.wait_until(10, "the check timed out and counted as refused", |d| {
        d.metric("lstm_ae_model_reloads_total{result=\"refused\"}") == 1.0
    });
    // Its thread is still blocked: no second check starts, and the gauge
    // says so.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(daemon.metric("lstm_ae_model_reload_in_progress"), 1.0);
    assert!(daemon.metric("lstm_ae_model_reload_skipped_total{reason=\"check_timed_out\"}") >= 1.0);
    let before = scored(&daemon);
    daemon.wait_until(30, "scoring to go on after the time-out", |d| {
        scored(d) > before
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    producer.join().unwrap();

    let asked = Instant::now();
    daemon.signal("-TERM");
    let status = loop {
        if let Some(st) = daemon.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            asked.elapsed() < Duration::from_millis(5_000 + 1_000),
            "still running {:?} after SIGTERM",
            asked.elapsed()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}
