//! The daemon's pipeline end to end against librdkafka's mock cluster (the
//! real Kafka protocol on 127.0.0.1, in process): points for several keys
//! become exactly the expected windows with the scores offline ONNX Runtime
//! gives; bad messages go to the dead-letter topic with their reason; the
//! `/metrics` scrape agrees with what was sent.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use lstm_ae::config::Settings;
use lstm_ae::infer::{BackendOptions, OnnxBackend};
use lstm_ae::model::Bundle;
use lstm_ae::telemetry::Metrics;
use ndarray::Array3;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEYS: usize = 3;
const POINTS: usize = 100;

fn value(key: usize, i: usize) -> f32 {
    80.0 + 10.0 * ((i as f32) * 0.2 + key as f32).sin()
}

async fn drain_topic(
    brokers: &str,
    topic: &str,
    expect: usize,
) -> Vec<(Option<String>, Vec<u8>, Vec<(String, String)>)> {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{topic}"))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut out = vec![];
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < expect && Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(2), c.recv()).await {
            let headers = m
                .headers()
                .map(|hs| {
                    hs.iter()
                        .map(|h| {
                            (
                                h.key.to_string(),
                                String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push((
                m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                m.payload().unwrap_or_default().to_vec(),
                headers,
            ));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn points_become_scored_windows_and_bad_messages_dead_letters() {
    let model_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
    let bundle = Bundle::open(&model_dir).unwrap();
    let t = bundle.manifest.spec.window;

    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut s = Settings::default();
    s.kafka.brokers = brokers.clone();
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

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let t0 = 1_700_000_000_000i64;
    for i in 0..POINTS {
        for k in 0..KEYS {
            let body = format!(
                r#"{{"key":"key-{k}","ts":{},"value":{}}}"#,
                t0 + 60_000 * i as i64,
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

    let metrics = Metrics::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let daemon = tokio::spawn(lstm_ae::serve::run::serve_with(
        s.clone(),
        metrics.clone(),
        async {
            let _ = stopped.await;
        },
        move |a| {
            let _ = addr_tx.send(a);
        },
    ));
    let addr = addr_rx.await.unwrap();
    let consumed = metrics.messages_consumed.with_label_values(&["points"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while consumed.get() < total || metrics.windows_in_flight.get() > 0 {
        assert!(
            Instant::now() < deadline,
            "consumed {} of {total}",
            consumed.get()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(scrape(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
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
    for (_, kind) in &bad {
        assert!(
            text.contains(&format!(
                "lstm_ae_dead_letters_total{{reason=\"{kind}\"}} 1"
            )),
            "{kind}: {text}"
        );
    }
    stop.send(()).unwrap();
    let summary = daemon.await.unwrap().unwrap();
    assert!(summary.drained);

    // Exactly the expected windows, each once, with offline scores.
    let emb = drain_topic(&brokers, &s.kafka.embeddings_topic, windows).await;
    assert_eq!(emb.len(), windows);
    let mut got: BTreeMap<(String, String), f64> = BTreeMap::new();
    for (key, payload, _) in &emb {
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
            let end = lstm_ae::stream::codec::format_ts_ms(t0 + 60_000 * (w + t - 1) as i64);
            let daemon_score = got[&(format!("key-{k}"), end.clone())];
            assert!(
                (daemon_score - scores[w] as f64).abs() <= 1e-4,
                "key-{k} {end}: {daemon_score} vs {}",
                scores[w]
            );
        }
    }

    // Every bad message on the dead-letter topic, original bytes and reason.
    let dlq = drain_topic(&brokers, &s.kafka.dead_letter_topic, bad.len()).await;
    let mut reasons: HashMap<String, Vec<u8>> = HashMap::new();
    for (key, payload, headers) in dlq {
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
