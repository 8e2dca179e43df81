//! The daemon's pipeline end to end against librdkafka's mock cluster (the
//! real Kafka protocol on 127.0.0.1, in process): points for several keys
//! become exactly the expected windows with the scores offline ONNX Runtime
//! gives; bad messages go to the dead-letter topic with their reason; the
//! `/metrics` scrape agrees with what was sent.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

mod common;

use common::broker::Record;
use lstm_ae::app::score::score_series;
use lstm_ae::config::{AnomalyRule, Settings};
use lstm_ae::data::Series;
use lstm_ae::infer::{BackendOptions, OnnxBackend};
use lstm_ae::model::Bundle;
use lstm_ae::serve::{Daemon, DaemonConfig};
use lstm_ae::stream::records::format_ts_ms;
use lstm_ae::telemetry::Metrics;
use ndarray::{Array2, Array3};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEYS: usize = 3;
const POINTS: usize = 100;

fn value(key: usize, i: usize) -> f32 {
    80.0 + 10.0 * ((i as f32) * 0.2 + key as f32).sin()
}

/// Every record of `topic`, read to its end: until nothing new arrives for
/// 3 s (after a first record, or after 30 s for an empty topic), so that an
/// extra record would be seen.
async fn read_topic(brokers: &str, topic: &str) -> Vec<Record> {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{topic}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut out = vec![];
    let first_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout(Duration::from_secs(3), c.recv()).await {
            Ok(Ok(m)) => out.push(Record::from(&m)),
            Ok(Err(_)) => {}
            Err(_) if !out.is_empty() || Instant::now() > first_deadline => break,
            Err(_) => {}
        }
    }
    out
}

async fn scrape(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).await.unwrap();
    body
}

/// Settings for the daemon against the mock cluster, with the topics created.
fn mock_settings(
    cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    model_dir: &Path,
) -> Settings {
    let mut s = Settings::default();
    s.kafka.brokers = cluster.bootstrap_servers();
    s.kafka.group_id = "it".into();
    s.kafka.inputs[0].topic = "points".into();
    s.serve.model = model_dir.to_string_lossy().into_owned();
    s.serve.metrics_listen = "127.0.0.1:0".into();
    s.serve.max_wait_ms = 5;
    cluster.create_topic("points", 2, 1).unwrap();
    for topic in [
        &s.kafka.embeddings_topic,
        &s.kafka.anomalies_topic,
        &s.kafka.dead_letter_topic,
    ] {
        cluster.create_topic(topic, 1, 1).unwrap();
    }
    s
}

const T0: i64 = 1_700_000_000_000;

fn ts(i: usize) -> i64 {
    T0 + 60_000 * i as i64
}

/// Sends `n` points of each of `keys` keys, interleaved, to `points`.
async fn send_points(
    producer: &FutureProducer,
    keys: usize,
    n: usize,
    value: impl Fn(usize, usize) -> f32,
) {
    for i in 0..n {
        for k in 0..keys {
            let body = format!(
                r#"{{"key":"key-{k}","ts":{},"value":{}}}"#,
                ts(i),
                value(k, i)
            );
            producer
                .send(
                    FutureRecord::to("points")
                        .key(&format!("key-{k}"))
                        .payload(&body),
                    Timeout::Never,
                )
                .await
                .unwrap();
        }
    }
}

/// A daemon running in this process until stopped.
struct Running {
    metrics: Metrics,
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    daemon: tokio::task::JoinHandle<Result<lstm_ae::serve::Summary, lstm_ae::serve::ServeError>>,
}

async fn start(s: &Settings) -> Running {
    let metrics = Metrics::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let daemon = tokio::spawn(
        Daemon::new(DaemonConfig::from(s))
            .metrics(metrics.clone())
            .on_listen(move |a| {
                let _ = addr_tx.send(a);
            })
            .run(async {
                let _ = stopped.await;
            }),
    );
    let addr = addr_rx.await.unwrap();
    Running {
        metrics,
        addr,
        stop,
        daemon,
    }
}

impl Running {
    /// Waits until `total` messages are consumed and nothing is in flight.
    async fn wait_consumed(&self, total: u64) {
        let consumed = self
            .metrics
            .messages_consumed
            .with_label_values(&["points"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while consumed.get() < total || self.metrics.windows_in_flight.get() > 0 {
            assert!(
                Instant::now() < deadline,
                "consumed {} of {total}",
                consumed.get()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the daemon and checks that it drained.
    async fn stop(self) {
        self.stop.send(()).unwrap();
        let summary = self.daemon.await.unwrap().unwrap();
        assert!(summary.drained);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_become_scored_windows_and_bad_messages_dead_letters() {
    let model_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
    let bundle = Bundle::open(&model_dir).unwrap();
    let t = bundle.manifest.spec.window;

    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let s = mock_settings(&cluster, &model_dir);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    send_points(&producer, KEYS, POINTS, value).await;
    let bad: Vec<(&str, &str)> = vec![
        ("not json", "invalid_json"),
        (
            r#"{"key":"x","ts":1,"values":[1.0,2.0]}"#,
            "wrong_feature_count",
        ),
        (r#"{"key":"x","ts":1,"value":"NaN"}"#, "non_finite"),
        (
            r#"{"key":"x","ts":"yesterday","value":1.0}"#,
            "bad_timestamp",
        ),
        ("", "empty"),
    ];
    for (body, _) in &bad {
        producer
            .send(
                FutureRecord::to("points").key("bad").payload(*body),
                Timeout::Never,
            )
            .await
            .unwrap();
    }
    let total = (KEYS * POINTS + bad.len()) as u64;

    let daemon = start(&s).await;
    daemon.wait_consumed(total).await;
    let addr = daemon.addr;
    // Readiness is refreshed every 250 ms, so it may trail the assignment.
    let ready_by = tokio::time::Instant::now() + Duration::from_secs(5);
    while !scrape(addr, "/readyz").await.starts_with("HTTP/1.1 200") {
        assert!(
            tokio::time::Instant::now() < ready_by,
            "/readyz not 200 within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = scrape(addr, "/metrics").await;
    let windows = KEYS * (POINTS - t + 1);
    assert!(
        text.contains(&format!("lstm_ae_windows_scored_total {windows}")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "lstm_ae_messages_consumed_total{{topic=\"points\"}} {total}"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("lstm_ae_max_series_keys {}", s.windowing.max_keys)),
        "{text}"
    );
    for (_, kind) in &bad {
        assert!(
            text.contains(&format!(
                "lstm_ae_dead_letters_total{{reason=\"{kind}\"}} 1"
            )),
            "{kind}: {text}"
        );
    }
    daemon.stop().await;

    // Exactly the expected windows, each once, with offline scores.
    let emb = read_topic(&brokers, &s.kafka.embeddings_topic).await;
    assert_eq!(emb.len(), windows);
    let mut got: BTreeMap<(String, String), f64> = BTreeMap::new();
    for Record { key, payload, .. } in &emb {
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
        assert_eq!(
            key.as_deref(),
            v["key"].as_str(),
            "outputs are keyed by series key"
        );
        assert_eq!(
            v["embedding"].as_array().unwrap().len(),
            bundle.manifest.spec.hidden
        );
        let prev = got.insert(
            (
                v["key"].as_str().unwrap().to_string(),
                v["window_end_ts"].as_str().unwrap().to_string(),
            ),
            v["score"].as_f64().unwrap(),
        );
        assert!(prev.is_none(), "a window was published twice");
    }
    let mut backend =
        OnnxBackend::load_from_memory(&bundle.onnx, &BackendOptions::default()).unwrap();
    for k in 0..KEYS {
        let n = POINTS - t + 1;
        let x = Array3::from_shape_fn((n, t, 1), |(w, i, _)| value(k, w + i));
        let scores = backend.run(x.view()).unwrap().score.unwrap();
        for w in 0..n {
            let end = format_ts_ms(ts(w + t - 1));
            let daemon_score = got[&(format!("key-{k}"), end.clone())];
            assert!(
                (daemon_score - scores[w] as f64).abs() <= 1e-4,
                "key-{k} {end}: {daemon_score} vs {}",
                scores[w]
            );
        }
    }

    // Every bad message on the dead-letter topic, original bytes and reason.
    let dlq = read_topic(&brokers, &s.kafka.dead_letter_topic).await;
    assert_eq!(dlq.len(), bad.len(), "one dead letter per bad message");
    let mut reasons: HashMap<String, Vec<u8>> = HashMap::new();
    for Record {
        key,
        payload,
        headers,
        ..
    } in dlq
    {
        assert_eq!(key.as_deref(), Some("bad"));
        let h: HashMap<_, _> = headers.into_iter().collect();
        assert_eq!(
            h.get("lstm_ae.source.topic").map(String::as_str),
            Some("points")
        );
        assert!(h.contains_key("lstm_ae.source.offset") && h.contains_key("lstm_ae.error.message"));
        reasons.insert(h["lstm_ae.error.kind"].clone(), payload);
    }
    for (body, kind) in &bad {
        assert_eq!(
            reasons.get(*kind).map(Vec::as_slice),
            Some(body.as_bytes()),
            "{kind}"
        );
    }
}

/// The spike in key 1 of the likelihood test.
const SPIKE: std::ops::Range<usize> = 250..254;

fn spiky(key: usize, i: usize) -> f32 {
    value(key, i)
        + if key == 1 && SPIKE.contains(&i) {
            25.0
        } else {
            0.0
        }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_likelihood_rule_scores_each_key_as_lstm_ae_score_does() {
    let model_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
    let bundle = Bundle::open(&model_dir).unwrap();
    let t = bundle.manifest.spec.window;
    let (keys, n) = (2, 320);

    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut s = mock_settings(&cluster, &model_dir);
    s.anomalies.rule = AnomalyRule::Likelihood;
    // A short history, so that the likelihood has something to say within a
    // few hundred windows.
    s.postprocess.min_history = 30;
    s.postprocess.long_window = 200;
    s.postprocess.short_window = 3;
    s.postprocess.refractory = 10;
    s.validate().unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    send_points(&producer, keys, n, spiky).await;
    let daemon = start(&s).await;
    daemon.wait_consumed((keys * n) as u64).await;
    let text = scrape(daemon.addr, "/metrics").await;
    assert!(text.contains("lstm_ae_likelihood_keys 2"), "{text}");
    daemon.stop().await;

    let windows = keys * (n - t + 1);
    let emb = read_topic(&brokers, &s.kafka.embeddings_topic).await;
    assert_eq!(emb.len(), windows);
    let mut got: BTreeMap<(String, String), f64> = BTreeMap::new();
    for Record { payload, .. } in &emb {
        let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
        got.insert(
            (
                v["key"].as_str().unwrap().to_string(),
                v["window_end_ts"].as_str().unwrap().to_string(),
            ),
            v["anomaly_likelihood"]
                .as_f64()
                .expect("a likelihood on every window"),
        );
    }

    // Offline: each key's series through `lstm-ae score`'s row-indexed path.
    let mut backend =
        OnnxBackend::load_from_memory(&bundle.onnx, &BackendOptions::default()).unwrap();
    let mut flagged = BTreeSet::new();
    // Per key, the offline incidents: (first window end, last anomalous
    // window end, still open at the last row).
    let mut incidents: BTreeSet<(String, String, String, bool)> = BTreeSet::new();
    for k in 0..keys {
        let series = Series {
            path: format!("key-{k}.csv").into(),
            timestamps: (0..n).map(ts).collect(),
            feature_names: vec!["value".into()],
            values: Array2::from_shape_fn((n, 1), |(i, _)| spiky(k, i)),
            sha256: String::new(),
            filled: 0,
        };
        let offline = score_series(&bundle, &mut backend, series, &s).unwrap();
        for row in t - 1..n {
            let key = (format!("key-{k}"), format_ts_ms(ts(row)));
            let want = offline.likelihood[row].unwrap();
            assert!(
                (got[&key] - want).abs() <= 1e-3,
                "{key:?}: daemon {}, offline {want}",
                got[&key]
            );
            if offline.is_anomaly(row) == Some(true) {
                flagged.insert(key);
            }
        }
        for i in &offline.incidents {
            incidents.insert((
                format!("key-{k}"),
                format_ts_ms(i.first_end_ts_ms),
                format_ts_ms(i.last_end_ts_ms),
                offline.open_at_end.contains(&i.id),
            ));
        }
    }
    let spike_ends: BTreeSet<_> = SPIKE
        .map(|i| ("key-1".to_string(), format_ts_ms(ts(i))))
        .collect();
    assert!(
        !flagged.is_disjoint(&spike_ends),
        "the spike is flagged: {flagged:?}"
    );
    // The anomalies topic, read to its end: one open record per offline
    // incident and one close per incident closed before the last row (the
    // daemon was drained there: open incidents stay open), nothing else.
    let anomalies = read_topic(&brokers, &s.kafka.anomalies_topic).await;
    let closed = incidents.iter().filter(|i| !i.3).count();
    assert_eq!(
        anomalies.len(),
        incidents.len() + closed,
        "an open and a close per incident: {incidents:?}"
    );
    let mut opened = BTreeSet::new();
    let mut closes = BTreeSet::new();
    let mut ids: HashMap<String, String> = HashMap::new();
    for Record { payload: p, .. } in &anomalies {
        let v: serde_json::Value = serde_json::from_slice(p).unwrap();
        let key = v["key"].as_str().unwrap().to_string();
        let first = v["first_window_end_ts"].as_str().unwrap().to_string();
        let id = v["incident_id"].as_str().unwrap().to_string();
        // Every record of an incident carries its one id.
        assert_eq!(
            ids.entry(format!("{key} {first}")).or_insert(id.clone()),
            &id
        );
        match v["state"].as_str().unwrap() {
            "open" => {
                assert!(
                    v["anomaly_likelihood"].as_f64().unwrap() >= s.anomalies.likelihood_threshold
                );
                assert_eq!(v["window_end_ts"], v["first_window_end_ts"]);
                assert!(flagged.contains(&(key.clone(), first.clone())));
                opened.insert((key, first));
            }
            "close" => {
                assert_eq!(v["close_reason"], "normal");
                let last = v["last_window_end_ts"].as_str().unwrap().to_string();
                assert!(flagged.contains(&(key.clone(), last.clone())));
                closes.insert((key, first, last));
            }
            other => panic!("unexpected record state {other}: {v}"),
        }
    }
    let want_opened: BTreeSet<_> = incidents
        .iter()
        .map(|(k, first, _, _)| (k.clone(), first.clone()))
        .collect();
    let want_closed: BTreeSet<_> = incidents
        .iter()
        .filter(|i| !i.3)
        .map(|(k, first, last, _)| (k.clone(), first.clone(), last.clone()))
        .collect();
    assert_eq!(opened, want_opened, "the daemon's incidents are score's");
    assert_eq!(closes, want_closed, "and they end where score's end");
    assert!(
        incidents.iter().any(|(k, first, last, _)| k == "key-1"
            && spike_ends.iter().any(|(_, e)| e >= first && e <= last)),
        "an incident covers the spike: {incidents:?}"
    );
}
