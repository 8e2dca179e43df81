//! The per-series outputs through the real daemon (`lstm-ae serve` on a
//! tansu broker, the default model on ONNX Runtime): the expected value the
//! scores topic's records carry is the model's reconstruction of the
//! window's last point as the trainer's own forward pass computes it; a
//! real Prometheus and a real VictoriaMetrics receive remote writes equal
//! to those records, and the series dashboard's queries return data from
//! that Prometheus; the gauges on `/metrics` stay within
//! `series_metrics.max_keys` and leave with an expired key; a receiver down
//! for 30 s costs samples only, never scoring or commits. Needs
//! `scripts/setup.sh --test` (tansu, prometheus, victoria-metrics).

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::broker::{test_dir, Broker, Daemon};
use common::receivers::{Receiver, Stored};
use common::series_dashboard::{dashboard, panel, promql, queries, substitute};
use lstm_ae::model::onnx::import_params;
use lstm_ae::stream::records::format_ts_ms;
use lstm_ae::train::composite;
use ndarray::{Array3, Axis};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

const POINTS: &str = "lstm-ae.points";
/// The default model's window.
const T: usize = 64;
/// The default model's one feature.
const FEATURE: &str = "value";

/// Each key's points, (Unix ms, value), oldest first.
type Points = BTreeMap<String, Vec<(i64, f32)>>;

/// A point's value: a slow wave around the default model's training level,
/// each key with its own phase, in steps of 0.01 (written and parsed back
/// exactly); `spike` adds a jump far outside what the model learned.
fn value(key_index: usize, i: usize, spike: bool) -> f32 {
    let phase = key_index as f32 * 0.7;
    let v = 86.0 + 6.0 * (i as f32 / 9.0 + phase).sin() + if spike { 60.0 } else { 0.0 };
    (v * 100.0).round() / 100.0
}

/// `n` points of each key, a second apart, the last at `end_ms`; the first
/// key jumps for its last 3 points (anomalous windows).
fn series(keys: &[&str], n: usize, end_ms: i64) -> Points {
    keys.iter()
        .enumerate()
        .map(|(k, key)| {
            let pts = (0..n)
                .map(|i| {
                    let ts = end_ms - 1_000 * (n - 1 - i) as i64;
                    (ts, value(k, i, k == 0 && i + 3 >= n))
                })
                .collect();
            (key.to_string(), pts)
        })
        .collect()
}

fn point_json(key: &str, ts: i64, v: f32) -> Vec<u8> {
    serde_json::json!({ "key": key, "ts": ts, "value": v })
        .to_string()
        .into_bytes()
}

/// Produces the points in time order, the keys taking turns.
fn produce(broker: &Broker, points: &Points) {
    let n = points.values().map(Vec::len).max().unwrap_or(0);
    let mut msgs = vec![];
    for i in 0..n {
        for (key, pts) in points {
            if let Some(&(ts, v)) = pts.get(i) {
                msgs.push((key.clone(), point_json(key, ts, v)));
            }
        }
    }
    broker.produce(POINTS, &msgs);
}

/// Windows a key's `n` points make (stride 1).
fn windows_of(points: &Points) -> usize {
    points.values().map(|p| p.len().saturating_sub(T - 1)).sum()
}

/// One record of the scores topic, as the test reads it.
#[derive(Debug, Clone)]
struct ScoreRec {
    key: String,
    end_ms: i64,
    normalized: f32,
    value: f32,
    expected: f32,
}

/// Every record on `topic`, its window end mapped back to the Unix ms of
/// the point it names.
fn score_records(broker: &Broker, topic: &str, points: &Points) -> Vec<ScoreRec> {
    let ms_of: HashMap<String, i64> = points
        .values()
        .flatten()
        .map(|&(ts, _)| (format_ts_ms(ts), ts))
        .collect();
    broker
        .read_all(topic, Duration::from_secs(3))
        .iter()
        .map(|r| {
            let v = r.json();
            let end = v["window_end_ts"].as_str().expect("window_end_ts");
            let lp = &v["last_point"];
            assert_eq!(lp.as_array().map(Vec::len), Some(1), "{v}");
            assert_eq!(lp[0]["feature"], FEATURE, "{v}");
            ScoreRec {
                key: v["key"].as_str().unwrap().to_string(),
                end_ms: *ms_of
                    .get(end)
                    .unwrap_or_else(|| panic!("{end} is no point's time")),
                normalized: v["normalized_score"].as_f64().unwrap() as f32,
                value: lp[0]["value"].as_f64().unwrap() as f32,
                expected: lp[0]["expected"].as_f64().unwrap() as f32,
            }
        })
        .collect()
}

fn now_ms() -> i64 {
    common::now_ms()
}

fn scored(d: &Daemon) -> f64 {
    d.metric("lstm_ae_windows_scored_total")
}

/// A broker with the daemon's topics and a scores topic per name.
fn broker_with_scores(dir: &Path, scores: &[&str]) -> Broker {
    let b = Broker::with_daemon_topics(dir, 1);
    for t in scores {
        b.create_topic(t, 1);
    }
    b
}

#[test]
fn the_expected_value_is_the_trainers_reconstruction_of_the_windows_last_point() {
    let dir = test_dir();
    let broker = broker_with_scores(dir.path(), &["lstm-ae.scores"]);
    let points = series(&["pump-1", "pump-2"], T + 20, now_ms());
    produce(&broker, &points);
    let d = Daemon::start(
        dir.path(),
        &broker.brokers(),
        None,
        &[("LSTM_AE__KAFKA__SCORES_TOPIC", "lstm-ae.scores")],
    );
    let total = windows_of(&points);
    d.wait_until(120, "every window scored", |d| scored(d) >= total as f64);
    let recs = score_records(&broker, "lstm-ae.scores", &points);
    let ids: BTreeSet<(String, i64)> = recs.iter().map(|r| (r.key.clone(), r.end_ms)).collect();
    assert_eq!((recs.len(), ids.len()), (total, total));

    // The trainer's forward pass on the same weights and windows, scaled
    // by the manifest's scaler and time-major; its reconstruction unscaled.
    let bundle = common::models::default_bundle();
    let m = &bundle.manifest;
    let params = import_params(&bundle.onnx, &m.spec).expect("the default model's weights");
    let (offset, scale) = (m.scaler.offset[0], m.scaler.scale[0]);
    let mut x = Array3::<f32>::zeros((T, recs.len(), 1));
    for (b, r) in recs.iter().enumerate() {
        let pts = &points[&r.key];
        let end = pts.iter().position(|p| p.0 == r.end_ms).unwrap();
        for (t, &(_, v)) in pts[end + 1 - T..=end].iter().enumerate() {
            x[[t, b, 0]] = (v - offset) * scale;
        }
        assert_eq!(r.value, pts[end].1, "the last point's value");
    }
    let fw = composite::forward(&params, &m.spec, x.view());
    let rec = fw.reconstruction.expect("a reconstruction decoder");
    let raw = |t: usize, b: usize| rec[[t, b, 0]] / scale + offset;
    // ONNX Runtime and the trainer agree to 1e-4 in scaled units
    // (tests/parity.rs); in this model's raw units that is 1e-4 / scale.
    let tol = 2e-4 / scale;
    let mut first_row_differs = 0;
    for (b, r) in recs.iter().enumerate() {
        let want = raw(T - 1, b);
        assert!(
            (r.expected - want).abs() <= tol,
            "{} at {}: expected {} in the record, the trainer's last row is {want}",
            r.key,
            r.end_ms,
            r.expected
        );
        if (r.expected - raw(0, b)).abs() > tol {
            first_row_differs += 1;
        }
    }
    // The check tells rows apart: the decoder's first row (the last point
    // of a reversed decoder before the export undoes it) is another value.
    assert!(
        first_row_differs > recs.len() / 2,
        "only {first_row_differs} of {} windows tell the first row from the last",
        recs.len()
    );
    assert_eq!(rec.len_of(Axis(0)), T);
}

// ---------------------------------------------------------------------------
// Remote writes to real receivers

/// The `(key, end ms) → value` of one metric (and feature) in `stored`.
fn samples_of(stored: &Stored, name: &str) -> BTreeMap<(String, i64), f64> {
    stored
        .iter()
        .filter(|(labels, _)| labels.get("__name__").map(String::as_str) == Some(name))
        .flat_map(|(labels, samples)| {
            let key = labels["key"].clone();
            if name != "lstm_ae_series_normalized_score" {
                assert_eq!(labels.get("feature").map(String::as_str), Some(FEATURE));
            }
            samples.iter().map(move |&(ms, v)| ((key.clone(), ms), v))
        })
        .collect()
}

/// What the receiver holds equals the records: the same windows (key and
/// end time), nothing more, and per window the score, value and expected
/// value the record carries (f32 in the record, f64 in the receiver).
fn assert_receiver_holds_the_records(what: &str, r: &Receiver, recs: &[ScoreRec], points: &Points) {
    let from = points.values().flatten().map(|p| p.0).min().unwrap();
    let to = points.values().flatten().map(|p| p.0).max().unwrap();
    let selector = r#"{__name__=~"lstm_ae_series_(normalized_score|value|expected_value)"}"#;
    let stored = r.wait_for(selector, from, to, 3 * recs.len());
    let want_ids: BTreeSet<(String, i64)> =
        recs.iter().map(|r| (r.key.clone(), r.end_ms)).collect();
    for (name, field) in [
        ("lstm_ae_series_normalized_score", 0),
        ("lstm_ae_series_value", 1),
        ("lstm_ae_series_expected_value", 2),
    ] {
        let got = samples_of(&stored, name);
        let ids: BTreeSet<(String, i64)> = got.keys().cloned().collect();
        assert_eq!(ids, want_ids, "{what}: {name}: the windows differ");
        for rec in recs {
            let want = [rec.normalized, rec.value, rec.expected][field];
            let v = got[&(rec.key.clone(), rec.end_ms)];
            assert_eq!(
                v as f32, want,
                "{what}: {name} of {} at {}: {v} stored, {want} in the record",
                rec.key, rec.end_ms
            );
        }
    }
}

#[test]
fn prometheus_and_victoria_metrics_hold_the_scores_records_and_feed_the_series_dashboard() {
    let dir = test_dir();
    let (to_prom, to_vm) = ("lstm-ae.scores-p", "lstm-ae.scores-v");
    let broker = broker_with_scores(dir.path(), &[to_prom, to_vm]);
    let prometheus = Receiver::prometheus(dir.path());
    let victoria = Receiver::victoria_metrics(dir.path());
    // Current times: Prometheus refuses samples far older than its head.
    let keys = ["pump-1", "pump-2", "pump-3"];
    let points = series(&keys, T + 30, now_ms() - 1_000);
    produce(&broker, &points);
    let total = windows_of(&points);
    let daemon = |name: &str, scores: &str, url: String| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let group = format!("lstm-ae-{name}");
        Daemon::start(
            &d,
            &broker.brokers(),
            None,
            &[
                ("LSTM_AE__KAFKA__GROUP_ID", group.as_str()),
                ("LSTM_AE__KAFKA__SCORES_TOPIC", scores),
                ("LSTM_AE__REMOTE_WRITE__URL", url.as_str()),
                ("LSTM_AE__REMOTE_WRITE__FLUSH_INTERVAL_MS", "200"),
            ],
        )
    };
    let dp = daemon("p", to_prom, prometheus.write_url());
    let dv = daemon("v", to_vm, victoria.write_url());
    for d in [&dp, &dv] {
        d.wait_until(120, "every window scored", |d| scored(d) >= total as f64);
    }
    for (what, r, d, topic) in [
        ("Prometheus", &prometheus, &dp, to_prom),
        ("VictoriaMetrics", &victoria, &dv, to_vm),
    ] {
        let recs = score_records(&broker, topic, &points);
        assert_eq!(recs.len(), total, "{what}: records");
        assert!(
            recs.iter()
                .any(|r| r.key == "pump-1" && r.normalized >= 1.0),
            "{what}: the spike makes anomalous windows (the last-anomaly query needs one)"
        );
        assert_receiver_holds_the_records(what, r, &recs, &points);
        assert_eq!(
            d.metric("lstm_ae_remote_write_samples_failed_total")
                + d.metric(r#"lstm_ae_remote_write_samples_dropped_total{reason="queue_full"}"#),
            0.0,
            "{what}: nothing refused or dropped"
        );
    }

    // Every query of the series dashboard returns data for a known key
    // from that Prometheus.
    let d = dashboard();
    let at = Some(now_ms() as f64 / 1000.0);
    for (what, expr) in queries(&d) {
        let q = substitute(&promql(&expr), "pump-1", FEATURE);
        let result = prometheus.query_at(&q, at);
        assert!(!result.is_empty(), "{what}: {q} returned nothing");
    }
    // The score panel reads pump-1's latest window.
    let recs = score_records(&broker, to_prom, &points);
    let last = recs
        .iter()
        .filter(|r| r.key == "pump-1")
        .max_by_key(|r| r.end_ms)
        .unwrap();
    let expr = panel(&d, "Normalised score vs threshold")["targets"][0]["expr"]
        .as_str()
        .unwrap()
        .to_string();
    let r = prometheus.query_at(&substitute(&expr, "pump-1", FEATURE), at);
    assert_eq!(r.len(), 1, "{expr}: {r:?}");
    let v: f64 = r[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert_eq!(v as f32, last.normalized);
}

// ---------------------------------------------------------------------------
// Gauges on /metrics

/// The keys with a `lstm_ae_series_*` sample in a scrape, and the lines of
/// that family.
fn gauge_keys(body: &str) -> (BTreeSet<String>, usize) {
    let lines: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("lstm_ae_series_"))
        .collect();
    let keys = lines
        .iter()
        .map(|l| {
            let rest = &l[l.find("key=\"").expect("a key label") + 5..];
            rest[..rest.find('"').unwrap()].to_string()
        })
        .collect();
    (keys, lines.len())
}

/// The keys of each `lstm_ae_series_*` family in a scrape. A scrape
/// gathers one family after another while the sink goes on scoring, so
/// only within one family do the keys come from one moment.
fn keys_per_family(body: &str) -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let mut out: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
    for l in body.lines().filter(|l| l.starts_with("lstm_ae_series_")) {
        let family = l[..l.find('{').expect("labels")].to_string();
        let rest = &l[l.find("key=\"").expect("a key label") + 5..];
        out.entry(family)
            .or_default()
            .insert(rest[..rest.find('"').unwrap()].to_string());
    }
    out
}

#[test]
fn gauges_hold_max_keys_under_ten_times_as_many_keys_and_leave_with_an_expired_key() {
    let dir = test_dir();
    let broker = broker_with_scores(dir.path(), &[]);
    let names: Vec<String> = (0..50).map(|i| format!("k{i:02}")).collect();
    let keys: Vec<&str> = names.iter().map(String::as_str).collect();
    let points = series(&keys, T + 2, now_ms());
    produce(&broker, &points);
    let total = windows_of(&points);
    let max_keys = 5;
    let d = Daemon::start(
        dir.path(),
        &broker.brokers(),
        None,
        &[
            ("LSTM_AE__SERIES_METRICS__ENABLED", "true"),
            ("LSTM_AE__SERIES_METRICS__MAX_KEYS", "5"),
            ("LSTM_AE__SERIES_METRICS__TTL_MS", "10000"),
        ],
    );
    // Every scrape while the 50 keys are scored holds at most max_keys in
    // each family.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let body = d.get("/metrics").1;
        for (family, seen) in keys_per_family(&body) {
            assert!(
                seen.len() <= max_keys,
                "{family}: {} keys exported: {seen:?}",
                seen.len()
            );
        }
        if common::procs::metric(&body, "lstm_ae_windows_scored_total") >= total as f64 {
            break;
        }
        assert!(Instant::now() < deadline, "not every window scored");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The keys take turns, so the last five scored are k45..k49, each with
    // 3 + 2 × 1 series (and a last anomaly if it had one); every window of
    // a key not among the five most recent pushed one out.
    let body = d.get("/metrics").1;
    let (seen, lines) = gauge_keys(&body);
    let want: BTreeSet<String> = (45..50).map(|i| format!("k{i}")).collect();
    assert_eq!(seen, want);
    assert!((5 * 5..=5 * 6).contains(&lines), "{lines} series");
    let metric = |s: &str| common::procs::metric(&body, s);
    assert_eq!(metric("lstm_ae_per_series_keys"), max_keys as f64);
    assert_eq!(
        metric(r#"lstm_ae_per_series_keys_evicted_total{reason="capacity"}"#),
        (total - max_keys) as f64
    );
    assert_eq!(
        metric(r#"lstm_ae_per_series_keys_evicted_total{reason="expired"}"#),
        0.0
    );

    // No window comes any more: after the TTL every series leaves /metrics.
    d.wait_until(60, "the gauges expire", |d| {
        gauge_keys(&d.get("/metrics").1).1 == 0
    });
    let body = d.get("/metrics").1;
    assert_eq!(common::procs::metric(&body, "lstm_ae_per_series_keys"), 0.0);
    assert_eq!(
        common::procs::metric(
            &body,
            r#"lstm_ae_per_series_keys_evicted_total{reason="expired"}"#
        ),
        max_keys as f64
    );
}

// ---------------------------------------------------------------------------
// A receiver down mid-stream

/// Feeds points of `keys` at the current time, one per key every 100 ms,
/// until `stop`; the values as [`value`] makes them.
fn live_feed(
    brokers: String,
    keys: Vec<String>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("linger.ms", "5")
            .create()
            .unwrap();
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let ts = now_ms();
            for (k, key) in keys.iter().enumerate() {
                let body = point_json(key, ts, value(k, i, false));
                while p
                    .send(BaseRecord::to(POINTS).key(key).payload(&body))
                    .is_err()
                {
                    p.poll(Duration::from_millis(10));
                }
            }
            p.poll(Duration::ZERO);
            i += 1;
            std::thread::sleep(Duration::from_millis(100));
        }
        p.flush(Duration::from_secs(30)).unwrap();
    })
}

#[test]
fn a_receiver_down_for_30_s_costs_samples_only_and_writing_resumes_by_itself() {
    let dir = test_dir();
    let broker = broker_with_scores(dir.path(), &[]);
    let mut prometheus = Receiver::prometheus(dir.path());
    let capacity = 300.0;
    let d = Daemon::start(
        dir.path(),
        &broker.brokers(),
        None,
        &[
            (
                "LSTM_AE__REMOTE_WRITE__URL",
                prometheus.write_url().as_str(),
            ),
            ("LSTM_AE__REMOTE_WRITE__QUEUE_CAPACITY_SAMPLES", "300"),
            ("LSTM_AE__REMOTE_WRITE__MAX_SAMPLES_PER_SEND", "100"),
            ("LSTM_AE__REMOTE_WRITE__FLUSH_INTERVAL_MS", "200"),
            ("LSTM_AE__REMOTE_WRITE__TIMEOUT_MS", "2000"),
            ("LSTM_AE__REMOTE_WRITE__MAX_BACKOFF_MS", "1000"),
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let keys: Vec<String> = ["pump-1", "pump-2", "pump-3"].map(String::from).into();
    let feed = live_feed(broker.brokers(), keys, stop.clone());
    let sent = |d: &Daemon| d.metric("lstm_ae_remote_write_samples_sent_total");
    d.wait_until(90, "samples sent", |d| sent(d) > 0.0);

    prometheus.stop();
    let down_at = now_ms();
    let before = d.get("/metrics").1;
    let m0 = |s: &str| common::procs::metric(&before, s);
    let (scored0, commits0) = (
        m0("lstm_ae_windows_scored_total"),
        m0("lstm_ae_offsets_committed_total"),
    );
    let mut max_queue: f64 = 0.0;
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let q = d.metric("lstm_ae_remote_write_queue_samples");
        assert!(q <= capacity, "{q} samples queued, capacity {capacity}");
        max_queue = max_queue.max(q);
        std::thread::sleep(Duration::from_millis(200));
    }
    let during = d.get("/metrics").1;
    let m1 = |s: &str| common::procs::metric(&during, s);
    // 30 s at 30 points a second: scoring and commits went on.
    assert!(
        m1("lstm_ae_windows_scored_total") - scored0 >= 300.0,
        "scored {} → {}",
        scored0,
        m1("lstm_ae_windows_scored_total")
    );
    assert!(m1("lstm_ae_offsets_committed_total") - commits0 >= 10.0);
    assert_eq!(m1("lstm_ae_remote_write_queue_capacity_samples"), capacity);
    assert!(max_queue > 0.0);
    let dropped = m1(r#"lstm_ae_remote_write_samples_dropped_total{reason="queue_full"}"#);
    assert!(dropped > 0.0, "nothing dropped while the receiver was down");
    assert!(m1("lstm_ae_remote_write_retries_total") > 0.0);
    let sent_down = m1("lstm_ae_remote_write_samples_sent_total");

    prometheus.restart();
    let up_at = now_ms();
    d.wait_until(60, "sending resumes", |d| sent(d) > sent_down);
    // The receiver holds windows that ended after it came back.
    let stored = prometheus.wait_for(
        r#"lstm_ae_series_normalized_score{key="pump-1"}"#,
        up_at,
        now_ms() + 5_000,
        1,
    );
    let after: usize = stored.values().map(Vec::len).sum();
    assert!(after > 0, "no sample of pump-1 after the restart");
    stop.store(true, Ordering::Relaxed);
    feed.join().unwrap();
    assert!(down_at < up_at);
}

// ---------------------------------------------------------------------------
// Settings that cannot work

#[test]
fn a_credentials_file_that_cannot_be_read_stops_serve_at_start_naming_the_key() {
    let dir = test_dir();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
    let missing = dir.path().join("no-such-token");
    let port = common::procs::free_port().unwrap();
    let listen = format!("127.0.0.1:{port}");
    let out = common::run(
        &["serve"],
        &[
            // Nothing listens there: the daemon must stop before it matters.
            ("LSTM_AE__KAFKA__BROKERS", "127.0.0.1:1"),
            ("LSTM_AE__SERVE__MODEL", model.to_str().unwrap()),
            ("LSTM_AE__SERVE__METRICS_LISTEN", &listen),
            (
                "LSTM_AE__REMOTE_WRITE__URL",
                "http://127.0.0.1:1/api/v1/write",
            ),
            (
                "LSTM_AE__REMOTE_WRITE__BEARER_TOKEN_FILE",
                missing.to_str().unwrap(),
            ),
        ],
    );
    let err = common::text(&out.stderr);
    assert!(!out.status.success(), "serve ran: {err}");
    assert!(
        err.contains("remote_write.bearer_token_file"),
        "the error names the key: {err}"
    );
}
