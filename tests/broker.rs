//! `lstm-ae serve` as a process against a separate Kafka-protocol broker
//! process (tansu): exact windows and scores, dead letters, crash and
//! restart, graceful shutdown, and the /metrics scrape.
//!
//! Needs the tansu binary that `scripts/setup.sh` installs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use common::broker::{Broker, Daemon};

const KEYS: usize = 3;
const T: usize = 64; // the default model's window
const T0: i64 = 1_700_000_000_000;

fn value(key: usize, i: usize) -> f64 {
    80.0 + 10.0 * ((i as f64) * 0.15 + key as f64).sin()
        + if i.is_multiple_of(37) { 3.0 } else { 0.0 }
}

fn ts(i: usize) -> i64 {
    T0 + 300_000 * i as i64
}

/// Points `from..to` of every key, interleaved, as (Kafka key, JSON body).
fn points(from: usize, to: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    for i in from..to {
        for k in 0..KEYS {
            let body =
                serde_json::json!({"key": format!("pump-{k}"), "ts": ts(i), "value": value(k, i)});
            out.push((format!("pump-{k}"), body.to_string().into_bytes()));
        }
    }
    out
}

/// (key, window end) → every score published for it.
fn windows(records: &[common::broker::Record]) -> BTreeMap<(String, String), Vec<f64>> {
    let mut m: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
    for r in records {
        let v = r.json();
        m.entry((
            v["key"].as_str().unwrap().to_string(),
            v["window_end_ts"].as_str().unwrap().to_string(),
        ))
        .or_default()
        .push(v["score"].as_f64().unwrap());
    }
    m
}

fn expected(n: usize) -> BTreeSet<(String, String)> {
    (0..KEYS)
        .flat_map(|k| {
            (T - 1..n).map(move |i| {
                (
                    format!("pump-{k}"),
                    lstm_ae::stream::records::format_ts_ms(ts(i)),
                )
            })
        })
        .collect()
}

/// A broker with sqlite storage and the daemon's topics, points on two
/// partitions.
fn setup(dir: &Path) -> Broker {
    Broker::with_daemon_topics(dir, 2)
}

#[test]
fn points_of_several_keys_give_exactly_the_windows_and_scores_of_lstm_ae_score() {
    let dir = common::broker::test_dir();
    let broker = setup(dir.path());
    let n = 150;
    broker.produce("lstm-ae.points", &points(0, n));
    let daemon = Daemon::start(dir.path(), &broker.brokers(), None, &[]);
    let want = expected(n);
    daemon.wait_until(120, "every window scored", |d| {
        d.metric("lstm_ae_windows_scored_total") as usize >= want.len()
    });
    let got = windows(&broker.read_all("lstm-ae.embeddings", Duration::from_secs(3)));
    assert_eq!(
        got.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "exactly the expected windows"
    );
    assert!(got.values().all(|v| v.len() == 1), "each window once");

    // The same series through `lstm-ae score`.
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
    for k in 0..KEYS {
        let csv = dir.path().join(format!("pump-{k}.csv"));
        let mut body = String::from("timestamp,value\n");
        for i in 0..n {
            body.push_str(&format!("{},{}\n", ts(i), value(k, i)));
        }
        std::fs::write(&csv, body).unwrap();
        let out = dir.path().join(format!("pump-{k}.scored.csv"));
        let o = common::run(
            &[
                "score",
                "--model",
                model.to_str().unwrap(),
                csv.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            &[],
        );
        assert!(o.status.success(), "{}", common::text(&o.stderr));
        let scored = std::fs::read_to_string(&out).unwrap();
        for (i, line) in scored.lines().skip(1).enumerate().skip(T - 1) {
            let score: f64 = line.split(',').nth(2).unwrap().parse().unwrap();
            let key = (
                format!("pump-{k}"),
                lstm_ae::stream::records::format_ts_ms(ts(i)),
            );
            let daemon_score = got[&key][0];
            assert!(
                (daemon_score - score).abs() <= 1e-4,
                "{key:?}: daemon {daemon_score}, lstm-ae score {score}"
            );
        }
    }
}

#[test]
fn bad_messages_go_to_the_dead_letter_topic_and_the_stream_goes_on() {
    let dir = common::broker::test_dir();
    let broker = setup(dir.path());
    let window_of_6 =
        serde_json::json!({"key": "w", "end_ts": T0, "values": vec![vec![1.0]; 6]}).to_string();
    let corpus: Vec<(&str, String)> = vec![
        ("invalid_json", "{not json".into()),
        (
            "wrong_type",
            r#"{"key":"x","ts":1700000000000,"value":"high"}"#.into(),
        ),
        (
            "wrong_feature_count",
            r#"{"key":"x","ts":1700000000000,"values":[1.0,2.0,3.0]}"#.into(),
        ),
        (
            "non_finite",
            r#"{"key":"x","ts":1700000000000,"value":1e400}"#.into(),
        ),
        ("empty", String::new()),
        (
            "oversized",
            format!(
                r#"{{"key":"x","ts":1700000000000,"value":1.0,"pad":"{}"}}"#,
                "x".repeat(4096)
            ),
        ),
        (
            "bad_timestamp",
            r#"{"key":"x","ts":"not a time","value":1.0}"#.into(),
        ),
    ];
    let mut msgs: Vec<(String, Vec<u8>)> = corpus
        .iter()
        .map(|(_, b)| ("bad".to_string(), b.clone().into_bytes()))
        .collect();
    msgs.extend(points(0, T + 4));
    broker.produce("lstm-ae.points", &msgs);
    // A window-format topic too: a window of the wrong length.
    broker.create_topic("lstm-ae.windows", 1);
    broker.produce("lstm-ae.windows", &[("w".into(), window_of_6.into_bytes())]);
    let cfg = dir.path().join("serve.toml");
    std::fs::write(
        &cfg,
        "[kafka]\nmax_message_bytes = 2048\nsession_timeout_ms = 6000\n[[kafka.inputs]]\ntopic = \"lstm-ae.points\"\nformat = \"points\"\n[[kafka.inputs]]\ntopic = \"lstm-ae.windows\"\nformat = \"windows\"\n",
    )
    .unwrap();
    let daemon = Daemon::start(dir.path(), &broker.brokers(), Some(&cfg), &[]);
    let good = KEYS * 5;
    daemon.wait_until(120, "good windows scored", |d| {
        d.metric("lstm_ae_windows_scored_total") as usize >= good
    });
    let dlq = broker.read_all("lstm-ae.dead-letters", Duration::from_secs(3));
    let mut kinds: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for r in &dlq {
        assert!(r.header("lstm_ae.source.topic").is_some());
        assert!(r
            .header("lstm_ae.error.message")
            .is_some_and(|m| !m.is_empty()));
        kinds.insert(
            r.header("lstm_ae.error.kind").unwrap().to_string(),
            r.payload.clone(),
        );
    }
    for (kind, body) in &corpus {
        assert_eq!(
            kinds.get(*kind).map(Vec::as_slice),
            Some(body.as_bytes()),
            "{kind} on the dead-letter topic with its bytes"
        );
    }
    assert!(
        kinds.contains_key("wrong_window_length"),
        "{:?}",
        kinds.keys()
    );
    assert_eq!(dlq.len(), corpus.len() + 1);
    assert_eq!(daemon.get("/healthz").0, 200, "still running");
    let got = windows(&broker.read_all("lstm-ae.embeddings", Duration::from_secs(3)));
    assert_eq!(got.len(), good);
}

#[test]
fn after_a_sigkill_and_a_restart_every_window_is_there_at_least_once() {
    let dir = common::broker::test_dir();
    let broker = setup(dir.path());
    let n = 200;
    broker.produce("lstm-ae.points", &points(0, 120));
    let daemon = Daemon::start(dir.path(), &broker.brokers(), None, &[]);
    daemon.wait_until(120, "some windows scored", |d| {
        d.metric("lstm_ae_windows_scored_total") > 20.0
    });
    daemon.signal("-KILL");
    drop(daemon);
    broker.produce("lstm-ae.points", &points(120, n));
    let daemon = Daemon::start(dir.path(), &broker.brokers(), None, &[]);
    let want = expected(n);
    let mut got = BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        got = windows(&broker.read_all("lstm-ae.embeddings", Duration::from_secs(2)));
        if want.iter().all(|w| got.contains_key(w)) {
            break;
        }
    }
    let missing: Vec<_> = want.iter().filter(|w| !got.contains_key(*w)).collect();
    assert!(
        missing.is_empty(),
        "{} windows missing after the crash, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    drop(daemon);
}

#[test]
fn sigterm_drains_commits_and_exits_0_and_a_restart_repeats_nothing() {
    let dir = common::broker::test_dir();
    let broker = setup(dir.path());
    let n = 150;
    let sent = points(0, n);
    broker.produce("lstm-ae.points", &sent);
    let mut daemon = Daemon::start(dir.path(), &broker.brokers(), None, &[]);
    let want = expected(n);
    // Scored is counted before the outputs are acknowledged: wait for both.
    daemon.wait_until(120, "every window scored and acknowledged", |d| {
        d.metric("lstm_ae_windows_scored_total") as usize >= want.len()
            && d.metric("lstm_ae_outputs_produced_total{topic=\"lstm-ae.embeddings\"}") as usize
                >= want.len()
            && d.metric("lstm_ae_windows_in_flight") == 0.0
    });

    // The scrape agrees with what was sent.
    let consumed = daemon.metric("lstm_ae_messages_consumed_total{topic=\"lstm-ae.points\"}");
    assert_eq!(consumed as usize, sent.len());
    assert_eq!(
        daemon.metric("lstm_ae_windows_scored_total") as usize,
        want.len()
    );
    assert_eq!(
        daemon.metric("lstm_ae_outputs_produced_total{topic=\"lstm-ae.embeddings\"}") as usize,
        want.len()
    );
    assert_eq!(daemon.metric("lstm_ae_live_series_keys") as usize, KEYS);
    assert_eq!(daemon.metric("lstm_ae_windows_in_flight"), 0.0);
    assert!(daemon.get("/metrics").1.contains("lstm_ae_model_info{"));
    assert_eq!(daemon.get("/readyz").0, 200);

    daemon.signal("-TERM");
    let status = daemon.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
    let before = broker
        .read_all("lstm-ae.embeddings", Duration::from_secs(2))
        .len();
    assert_eq!(before, want.len());

    // A restart replays only the points still buffered (fewer than a window
    // per key), so no window is scored again.
    let daemon = Daemon::start(dir.path(), &broker.brokers(), None, &[]);
    daemon.wait_until(90, "the restarted daemon consumed its replay", |d| {
        d.metric("lstm_ae_messages_consumed_total{topic=\"lstm-ae.points\"}") as usize
            >= KEYS * (T - 1)
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(daemon.metric("lstm_ae_windows_scored_total"), 0.0);
    assert_eq!(
        daemon.metric("lstm_ae_messages_consumed_total{topic=\"lstm-ae.points\"}") as usize,
        KEYS * (T - 1),
        "the committed offsets keep exactly the buffered points"
    );
    let after = broker
        .read_all("lstm-ae.embeddings", Duration::from_secs(2))
        .len();
    assert_eq!(after, before, "no window repeated after a graceful restart");
}

#[test]
fn log_format_json_gives_json_lines_and_a_settings_error_stays_one_readable_line() {
    let dir = common::broker::test_dir();
    let broker = setup(dir.path());
    let port = common::broker::free_port();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
    let serve = |extra: &[(&str, &str)], stderr: std::process::Stdio| {
        let mut c = std::process::Command::new(common::bin());
        c.arg("serve")
            .current_dir(dir.path())
            .env("LSTM_AE__KAFKA__BROKERS", broker.brokers())
            .env("LSTM_AE__SERVE__MODEL", &model)
            .env(
                "LSTM_AE__SERVE__METRICS_LISTEN",
                format!("127.0.0.1:{port}"),
            )
            .env("LSTM_AE__LOG__FORMAT", "json")
            .env("LSTM_AE__LOG__LEVEL", "info")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(stderr);
        for (k, v) in extra {
            c.env(k, v);
        }
        c
    };
    let log = dir.path().join("serve.log");
    let mut child = serve(
        &[("LSTM_AE__KAFKA__STATIC_MEMBERSHIP", "false")],
        std::fs::File::create(&log).unwrap().into(),
    )
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while common::broker::procs_http_ready(port) != Some(200) {
        assert!(
            std::time::Instant::now() < deadline,
            "the daemon became ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(child.wait().unwrap().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{text}");
    let mut messages = vec![];
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"));
        assert!(v["level"].is_string(), "{l}");
        messages.push(
            v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    for m in ["model loaded", "shutdown requested: draining", "stopped"] {
        assert!(messages.iter().any(|x| x == m), "{m:?} in {messages:?}");
    }

    // Settings that do not load: one plain line, whatever log.format says.
    let o = serve(
        &[("LSTM_AE__SERVE__DRAIN_TIMEOUT_MS", "60000")],
        std::process::Stdio::piped(),
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = common::text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: configuration: invalid serve.drain_timeout_ms")
            && err.contains("kafka.session_timeout_ms"),
        "{err}"
    );
}
