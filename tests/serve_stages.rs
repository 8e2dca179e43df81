//! The daemon's whole pipeline against librdkafka's mock cluster with a
//! fake model injected through the backend factory: a model that gets
//! stuck, a model that fails, a broker that refuses outputs. Each must end
//! in a bounded, prompt, loss-free way (nothing committed past a window
//! that was not delivered).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

mod common;

use lstm_ae::config::Settings;
use lstm_ae::infer::{Backend, InferError, Outputs};
use lstm_ae::model::Bundle;
use lstm_ae::serve::{BackendFactory, Daemon, DaemonConfig, Model, ServeError, Summary};
use lstm_ae::telemetry::Metrics;
use ndarray::{Array1, Array2, Array3, ArrayView3};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const T0: i64 = 1_700_000_000_000;

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Scores every batch at once.
    Fast,
    /// Scores `n` batches, then blocks every later call until released.
    StuckAfter(usize),
    /// Fails the first call, after 100 ms: long enough for another
    /// thread to be waiting for work when it does.
    Fail,
    /// Call `n` (from 0) blocks until released; every other call scores
    /// at once (one thread stalls, the others go on).
    StuckOnce(usize),
}

/// What the fake backends share: the mode, the call count, the gate a stuck
/// call waits on.
struct Shared {
    mode: Mode,
    calls: AtomicUsize,
    /// Per call, in order: whether it was `infer_and_release`.
    releases: Mutex<Vec<bool>>,
    released: Mutex<bool>,
    gate: Condvar,
}

impl Shared {
    fn release(&self) {
        *self.released.lock().unwrap() = true;
        self.gate.notify_all();
    }
}

struct Fake {
    shared: Arc<Shared>,
}

impl Backend for Fake {
    fn infer(&mut self, x: ArrayView3<'_, f32>) -> Result<Outputs, InferError> {
        self.call(x, false)
    }

    fn infer_and_release(&mut self, x: ArrayView3<'_, f32>) -> Result<Outputs, InferError> {
        self.call(x, true)
    }
}

impl Fake {
    fn call(&mut self, x: ArrayView3<'_, f32>, release: bool) -> Result<Outputs, InferError> {
        self.shared.releases.lock().unwrap().push(release);
        let call = self.shared.calls.fetch_add(1, Ordering::SeqCst);
        let stuck = match self.shared.mode {
            Mode::Fail => {
                std::thread::sleep(Duration::from_millis(100));
                return Err(InferError::Contract("the fake model fails".into()));
            }
            Mode::StuckAfter(n) => call >= n,
            Mode::StuckOnce(n) => call == n,
            Mode::Fast => false,
        };
        if stuck {
            let mut r = self.shared.released.lock().unwrap();
            while !*r {
                r = self.shared.gate.wait(r).unwrap();
            }
        }
        let (b, t, f) = x.dim();
        Ok(Outputs {
            reconstruction: Some(x.to_owned()),
            prediction: None,
            embedding: Some(Array2::zeros((b, 4))),
            score: Some(Array1::from_elem(b, 1e-6)),
            squared_error: Some(Array3::zeros((b, t, f))),
        })
    }
}

fn fake_model(mode: Mode) -> (Model, Arc<Shared>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
    let manifest = Bundle::open(&dir).unwrap().manifest;
    let shared = Arc::new(Shared {
        mode,
        calls: AtomicUsize::new(0),
        releases: Mutex::new(Vec::new()),
        released: Mutex::new(false),
        gate: Condvar::new(),
    });
    let s = shared.clone();
    let factory: BackendFactory =
        Arc::new(move || Ok(Box::new(Fake { shared: s.clone() }) as Box<dyn Backend>));
    (
        Model {
            manifest,
            factory,
            reload: None,
        },
        shared,
    )
}

fn settings(cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>) -> Settings {
    let mut s = Settings::default();
    s.kafka.brokers = cluster.bootstrap_servers();
    s.kafka.group_id = "stages".into();
    s.kafka.inputs[0].topic = "points".into();
    s.kafka.commit_interval_ms = 100;
    s.serve.metrics_listen = "127.0.0.1:0".into();
    s.serve.max_wait_ms = 5;
    cluster.create_topic("points", 1, 1).unwrap();
    for topic in [
        &s.kafka.embeddings_topic,
        &s.kafka.anomalies_topic,
        &s.kafka.dead_letter_topic,
    ] {
        cluster.create_topic(topic, 1, 1).unwrap();
    }
    s
}

/// Points `points` (numbered from 0, a minute apart) of key `k` on
/// partition 0 of `points`.
async fn send_points(brokers: &str, points: std::ops::Range<usize>) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for i in points {
        let body = format!(
            r#"{{"key":"k","ts":{},"value":{}}}"#,
            T0 + 60_000 * i as i64,
            i % 7
        );
        producer
            .send(
                FutureRecord::to("points")
                    .partition(0)
                    .key("k")
                    .payload(&body),
                Timeout::Never,
            )
            .await
            .unwrap();
    }
}

/// The group's committed offset of `points` partition 0 (`None` if none).
fn committed(brokers: &str, group: &str) -> Option<i64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("points", 0);
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    match got.find_partition("points", 0).unwrap().offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

struct Running {
    metrics: Metrics,
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    daemon: tokio::task::JoinHandle<Result<Summary, ServeError>>,
}

async fn start(s: &Settings, model: Model) -> Running {
    let metrics = Metrics::new();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let daemon = tokio::spawn(
        Daemon::new(DaemonConfig::from(s))
            .model(model)
            .metrics(metrics.clone())
            .on_listen(move |a| {
                let _ = addr_tx.send(a);
            })
            .run(async {
                let _ = stopped.await;
            }),
    );
    Running {
        metrics,
        addr: addr_rx.await.unwrap(),
        stop,
        daemon,
    }
}

async fn get(addr: std::net::SocketAddr, path: &'static str) -> String {
    tokio::task::spawn_blocking(move || common::procs::http_get(addr.port(), path).unwrap().1)
        .await
        .unwrap()
}

async fn status(addr: std::net::SocketAddr, path: &'static str) -> u16 {
    tokio::task::spawn_blocking(move || common::procs::http_get(addr.port(), path).unwrap().0)
        .await
        .unwrap()
}

/// Starts the daemon with two inference threads, batches of one window and
/// one batch in flight beyond the threads' own (3 permits) on 400 points
/// with a fake model in `mode` that gets stuck; waits for `/readyz` to
/// report the stall (503) and checks that intake then stops within the
/// permits: nothing more consumed for a second, at most T − 1 points before
/// the first window, the 2 windows scored, one per permit and one batch
/// waiting for a permit, and no more batches in flight than permits.
async fn stalled_daemon(
    cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    mode: Mode,
) -> (Running, Arc<Shared>) {
    let mut s = settings(cluster);
    s.serve.inference_threads = 2;
    s.serve.max_batch = 1;
    s.serve.max_batches_in_flight = 1;
    s.serve.inference_stall_ms = 300;
    s.serve.drain_timeout_ms = 1_500;
    let t = 64; // the default model's window
    send_points(&cluster.bootstrap_servers(), 0..400).await;
    let (model, shared) = fake_model(mode);
    let d = start(&s, model).await;

    // Readiness turns to 503 once the stuck call passes inference_stall_ms.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = get(d.addr, "/readyz").await;
        if body.contains("inference stalled") {
            assert_eq!(status(d.addr, "/readyz").await, 503);
            break;
        }
        assert!(Instant::now() < deadline, "never reported stalled: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Intake stops: nothing more is consumed, and the batches held are bounded.
    let consumed = d.metrics.messages_consumed.with_label_values(&["points"]);
    let before = consumed.get();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        consumed.get(),
        before,
        "intake goes on while a batch is stuck"
    );
    let permits = 1 + 2;
    assert!(
        (before as usize) <= t - 1 + 2 + permits + 1,
        "{before} points consumed with {permits} batch permits"
    );
    assert!(
        d.metrics.batches_in_flight.get() <= permits as i64,
        "{} batches in flight (reorder buffer) for {permits} permits",
        d.metrics.batches_in_flight.get()
    );
    (d, shared)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_model_stops_intake_fails_readiness_and_shutdown_ends_by_the_deadline() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let (d, shared) = stalled_daemon(&cluster, Mode::StuckAfter(2)).await;
    assert!(d.metrics.inference_stalled.get() == 1);

    // Shutdown ends by the drain deadline (+1 s) although a call never returns.
    let asked = Instant::now();
    d.stop.send(()).unwrap();
    let summary = tokio::time::timeout(Duration::from_millis(1_500 + 1_000), d.daemon)
        .await
        .expect("shutdown within drain_timeout_ms + 1 s")
        .unwrap()
        .unwrap();
    assert!(asked.elapsed() < Duration::from_millis(2_500));
    assert!(!summary.drained);
    // Windows 1 and 2 were scored; window 3 (points 3..=66, offsets 2..=65)
    // never was: nothing at or past offset 2 may be committed.
    let c = committed(&brokers, "stages");
    assert!(
        c.is_none_or(|o| o <= 2),
        "committed {c:?} past an unscored window"
    );
    shared.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_goes_at_once_to_an_idle_inference_thread() {
    // A batch would be due only after ten minutes (`max_wait_ms`) or at 64
    // windows; with the inference thread waiting for work, the one window
    // of 64 points must be scored and published at once.
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut s = settings(&cluster);
    s.serve.inference_threads = 1;
    s.serve.max_wait_ms = 600_000;
    send_points(&brokers, 0..64).await;
    let (model, shared) = fake_model(Mode::Fast);
    let started = Instant::now();
    let d = start(&s, model).await;
    while d
        .metrics
        .outputs_produced
        .with_label_values(&[s.kafka.embeddings_topic.as_str()])
        .get()
        < 1
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the window waited for a fuller batch (scored: {})",
            d.metrics.windows_scored.get()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(d.metrics.windows_scored.get(), 1);
    assert_eq!(shared.calls.load(Ordering::SeqCst), 1);
    d.stop.send(()).unwrap();
    let summary = d.daemon.await.unwrap().unwrap();
    assert_eq!(summary.windows, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_gives_back_its_memory_once_the_daemon_has_caught_up() {
    // Batches of up to 2 windows. The one inference thread is held on the
    // first window; five more windows then arrive: 2–3 and 4–5 go as full
    // batches, 6 alone after `max_wait_ms`. Let go, the thread scores 2–3
    // and 4–5 with a batch behind each as usual, then window 6, with
    // nothing behind it and sent before it was full: the daemon has caught
    // up, and only then is the runtime asked to give back its memory.
    // (Which kind the first call is depends on the thread's wake-up.)
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut s = settings(&cluster);
    s.serve.inference_threads = 1;
    s.serve.max_batch = 2;
    s.serve.max_wait_ms = 200;
    s.serve.max_batches_in_flight = 4;
    send_points(&brokers, 0..64).await;
    let (model, shared) = fake_model(Mode::StuckOnce(0));
    let d = start(&s, model).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    // The thread is in its first call (so no later window goes early).
    while shared.calls.load(Ordering::SeqCst) < 1 {
        assert!(Instant::now() < deadline, "the first window was not scored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    send_points(&brokers, 64..69).await;
    while d.metrics.batches_in_flight.get() < 4 {
        assert!(
            Instant::now() < deadline,
            "{} batches in flight, 4 expected",
            d.metrics.batches_in_flight.get()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Past the least time between two releases (1 s), counted from the
    // first call, which may have been one.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    shared.release();
    while d.metrics.windows_scored.get() < 6 {
        assert!(Instant::now() < deadline, "the 6 windows were not scored");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let releases = shared.releases.lock().unwrap().clone();
    assert_eq!(releases.len(), 4, "{releases:?}");
    assert_eq!(releases[1..], [false, false, true], "{releases:?}");
    d.stop.send(()).unwrap();
    let summary = d.daemon.await.unwrap().unwrap();
    assert_eq!(summary.windows, 6);
}

/// Exactly one window, then no input, with a model whose first call fails:
/// the failure must be seen anyway, with `threads` inference threads (with
/// two, the other thread waits for work while the failing one reports).
/// Nothing is committed past offset 0: every point consumed (offsets
/// 0..=63) belongs to the only window, which was never scored, so the
/// lowest offset still held is 0 and a commit, if one happened before the
/// failure was seen, can only say "resume at 0"; anything above it would
/// skip the unscored window.
async fn a_failing_model_stops_the_daemon(threads: usize) {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut s = settings(&cluster);
    s.serve.inference_threads = threads;
    send_points(&brokers, 0..64).await;
    let (model, _) = fake_model(Mode::Fail);
    let d = start(&s, model).await;
    let r = tokio::time::timeout(Duration::from_secs(20), d.daemon)
        .await
        .expect("the daemon stops by itself")
        .unwrap();
    let err = r.expect_err("an inference failure is an error");
    assert!(err.to_string().contains("the fake model fails"), "{err}");
    let c = committed(&brokers, "stages");
    assert!(matches!(c, None | Some(0)), "committed {c:?}");
    drop(d.stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_stops_the_daemon_at_once_without_committing() {
    a_failing_model_stops_the_daemon(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_on_two_threads_stops_the_daemon_without_committing() {
    a_failing_model_stops_the_daemon(2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_output_with_idle_input_stops_the_daemon_promptly_without_committing() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut s = settings(&cluster);
    s.serve.inference_threads = 1;
    // Exactly one window, then no input.
    send_points(&brokers, 0..64).await;
    // From now on the broker refuses every produce, permanently.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 64],
    );
    let (model, shared) = fake_model(Mode::Fast);
    let d = start(&s, model).await;
    let r = tokio::time::timeout(Duration::from_secs(20), d.daemon)
        .await
        .expect("the daemon stops by itself")
        .unwrap();
    assert!(
        shared.calls.load(Ordering::SeqCst) >= 1,
        "the window was scored"
    );
    let err = r.expect_err("a refused output is an error");
    assert!(err.to_string().contains("producing to"), "{err}");
    cluster.clear_request_errors(RDKafkaApiKey::Produce);
    assert_eq!(committed(&brokers, "stages"), None);
    drop(d.stop);
}

/// CRC-32C (Castagnoli), as Kafka's record batch v2 uses it.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Produces one record with the given raw header keys by writing a Kafka
/// Produce request (v3, record batch v2) by hand: no client library lets a
/// header key be anything but UTF-8, and that is the input under test.
fn produce_raw(addr: &str, topic: &str, payload: &[u8], headers: &[(&[u8], &[u8])]) {
    use std::io::{Read, Write};
    let mut rec = vec![0u8]; // attributes
    varint(&mut rec, 0); // timestamp delta
    varint(&mut rec, 0); // offset delta
    varint(&mut rec, -1); // null key
    varint(&mut rec, payload.len() as i64);
    rec.extend_from_slice(payload);
    varint(&mut rec, headers.len() as i64);
    for (k, v) in headers {
        varint(&mut rec, k.len() as i64);
        rec.extend_from_slice(k);
        varint(&mut rec, v.len() as i64);
        rec.extend_from_slice(v);
    }
    let mut record = vec![];
    varint(&mut record, rec.len() as i64);
    record.extend_from_slice(&rec);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // From the attributes on: what the CRC covers.
    let mut tail = vec![];
    tail.extend_from_slice(&0i16.to_be_bytes()); // attributes
    tail.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    tail.extend_from_slice(&now.to_be_bytes()); // base timestamp
    tail.extend_from_slice(&now.to_be_bytes()); // max timestamp
    tail.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    tail.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    tail.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    tail.extend_from_slice(&1i32.to_be_bytes()); // one record
    tail.extend_from_slice(&record);
    let mut batch = vec![];
    batch.extend_from_slice(&0i64.to_be_bytes()); // base offset
    let after_length = 4 + 1 + 4 + tail.len();
    batch.extend_from_slice(&(after_length as i32).to_be_bytes());
    batch.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    batch.push(2); // magic
    batch.extend_from_slice(&crc32c(&tail).to_be_bytes());
    batch.extend_from_slice(&tail);

    let mut req = vec![];
    req.extend_from_slice(&0i16.to_be_bytes()); // Produce
    req.extend_from_slice(&3i16.to_be_bytes()); // v3
    req.extend_from_slice(&7i32.to_be_bytes()); // correlation id
    req.extend_from_slice(&4i16.to_be_bytes());
    req.extend_from_slice(b"test");
    req.extend_from_slice(&(-1i16).to_be_bytes()); // no transactional id
    req.extend_from_slice(&1i16.to_be_bytes()); // acks = 1
    req.extend_from_slice(&10_000i32.to_be_bytes());
    req.extend_from_slice(&1i32.to_be_bytes()); // one topic
    req.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    req.extend_from_slice(topic.as_bytes());
    req.extend_from_slice(&1i32.to_be_bytes()); // one partition
    req.extend_from_slice(&0i32.to_be_bytes()); // partition 0
    req.extend_from_slice(&(batch.len() as i32).to_be_bytes());
    req.extend_from_slice(&batch);
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.write_all(&(req.len() as i32).to_be_bytes()).unwrap();
    conn.write_all(&req).unwrap();
    let mut size = [0u8; 4];
    conn.read_exact(&mut size).unwrap();
    let mut resp = vec![0u8; i32::from_be_bytes(size) as usize];
    conn.read_exact(&mut resp).unwrap();
    // correlation id, topics, name, partitions, index, then the error code.
    let at = 4 + 4 + 2 + topic.len() + 4 + 4;
    let code = i16::from_be_bytes([resp[at], resp[at + 1]]);
    assert_eq!(code, 0, "the broker accepted the raw record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_key_that_is_not_utf8_is_dead_lettered_byte_for_byte() {
    use rdkafka::message::Headers;
    use rdkafka::Message;
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut s = settings(&cluster);
    s.serve.inference_threads = 1;
    let bad_key: &[u8] = b"\xff\xfe";
    produce_raw(
        &brokers,
        "points",
        b"not json",
        &[(bad_key, b"v1"), (b"ok", b"v2")],
    );
    let (model, _) = fake_model(Mode::Fast);
    let d = start(&s, model).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let dead = d.metrics.dead_letters.with_label_values(&["invalid_json"]);
    while dead.get() < 1 || d.metrics.dead_letters_in_flight.get() > 0 {
        assert!(!d.daemon.is_finished(), "the daemon died on the input");
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    d.stop.send(()).unwrap();
    assert!(d.daemon.await.unwrap().unwrap().drained);

    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    c.subscribe(&[s.kafka.dead_letter_topic.as_str()]).unwrap();
    let mut got = vec![];
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                // Only the headers after the first are read: rdkafka's
                // accessor would panic on the first one's key.
                let h = m.headers().unwrap();
                let count = h.count();
                let names: Vec<(String, Vec<u8>)> = (1..count)
                    .map(|i| {
                        let x = h.get(i);
                        (x.key.to_string(), x.value.unwrap_or_default().to_vec())
                    })
                    .collect();
                got.push((m.payload().unwrap_or_default().to_vec(), count, names));
                quiet_since = Instant::now();
            }
            _ if !got.is_empty() && quiet_since.elapsed() > Duration::from_secs(2) => break,
            _ => {}
        }
    }
    assert_eq!(got.len(), 1, "one dead letter");
    let (payload, count, names) = &got[0];
    assert_eq!(payload.as_slice(), b"not json");
    assert_eq!(
        *count,
        2 + 5,
        "both original headers and the five reason headers"
    );
    assert_eq!(names[0], ("ok".to_string(), b"v2".to_vec()));
    assert_eq!(
        names[1],
        ("lstm_ae.error.kind".to_string(), b"invalid_json".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_in_flight_are_bounded_on_a_slow_broker() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut s = settings(&cluster);
    s.serve.inference_threads = 1;
    s.serve.max_dead_letters_in_flight = 2;
    // The bad messages go in one record batch (one produce request), so
    // one fetch hands all of them to the daemon at once: sent and awaited
    // one by one, the mock broker returned them one per fetch round trip
    // and no more than two were ever in flight even without the bound.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "200")
        .create()
        .unwrap();
    let bad = 30;
    let payloads: Vec<String> = (0..bad).map(|i| format!("bad {i}")).collect();
    let sent: Vec<_> = payloads
        .iter()
        .map(|p| {
            producer
                .send_result(FutureRecord::to("points").partition(0).key("k").payload(p))
                .map_err(|(e, _)| e)
                .unwrap()
        })
        .collect();
    for f in sent {
        f.await.unwrap().unwrap();
    }
    // Every request to the broker now takes 100 ms: dead letters pile up
    // unless their number is bounded.
    cluster
        .broker_round_trip_time(1, Duration::from_millis(100))
        .unwrap();
    let (model, _) = fake_model(Mode::Fast);
    let d = start(&s, model).await;
    let dead = d.metrics.dead_letters.with_label_values(&["invalid_json"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut most = 0;
    while dead.get() < bad || d.metrics.dead_letters_in_flight.get() > 0 {
        most = most.max(d.metrics.dead_letters_in_flight.get());
        assert!(
            Instant::now() < deadline,
            "{} of {bad} dead letters",
            dead.get()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(most <= 2, "{most} dead letters in flight");
    assert!(most >= 1, "the gauge saw the dead letters");
    d.stop.send(()).unwrap();
    assert!(d.daemon.await.unwrap().unwrap().drained);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stalled_inference_thread_stops_intake_while_the_other_goes_on() {
    // Thread A is stuck on batch 3; thread B scores batches 4, 5, … whose
    // outputs must wait in the sink's reorder buffer behind batch 3. That
    // buffer is bounded by the batch permits: intake stops instead of
    // memory growing.
    let cluster = MockCluster::new(1).unwrap();
    let (d, shared) = stalled_daemon(&cluster, Mode::StuckOnce(2)).await;
    // The other thread's next batch may wait for a permit of an earlier
    // batch, which comes back only once the sink has taken that batch's
    // outputs out of its reorder buffer: on a loaded machine that can take
    // longer than the stall check above.
    let deadline = Instant::now() + Duration::from_secs(10);
    while shared.calls.load(Ordering::SeqCst) <= 3 {
        assert!(
            Instant::now() < deadline,
            "the other thread did not go on scoring"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Windows 1 and 2 were scored, window 3 (offsets 2..=65) is stuck: the
    // later windows scored by the other thread must not move the commit
    // past it, several commit intervals on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let c = committed(&cluster.bootstrap_servers(), "stages");
    assert!(
        c.is_none_or(|o| o <= 2),
        "committed {c:?} past the stuck window"
    );
    d.stop.send(()).unwrap();
    shared.release();
    tokio::time::timeout(Duration::from_secs(10), d.daemon)
        .await
        .expect("shutdown ends once the stuck call returns")
        .unwrap()
        .unwrap();
}

/// A key's TTL runs on the daemon's monotonic clock (tokio's, which the
/// test controls), not on the wall clock: a wall clock stepping forward
/// would otherwise expire every key at once. Time is paused, so tokio's
/// clock moves only with the runtime (auto-advance while the loop waits,
/// and the explicit advance below), never with the wall: the key must
/// expire after two TTLs of tokio time although the test ends within
/// seconds of wall time. A daemon reading the wall clock for the TTL
/// never expires it here.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_key_ttl_runs_on_the_monotonic_clock_not_the_wall_clock() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let mut s = settings(&cluster);
    s.serve.inference_threads = 1;
    s.windowing.key_ttl_ms = 600_000; // ten minutes: far beyond the test's wall time
    let n = 10; // fewer than T: the key only buffers
    send_points(&brokers, 0..n).await;
    let (model, _) = fake_model(Mode::Fast);
    let d = start(&s, model).await;
    let consumed = d.metrics.messages_consumed.with_label_values(&["points"]);
    let wall = Instant::now();
    while consumed.get() < n as u64 {
        assert!(wall.elapsed() < Duration::from_secs(30), "points consumed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::advance(Duration::from_millis(2 * 600_000)).await;
    let expired = d
        .metrics
        .window_keys_evicted
        .with_label_values(&["expired"]);
    while expired.get() < 1 {
        assert!(
            wall.elapsed() < Duration::from_secs(20),
            "the key never expired on the monotonic clock (live keys: {})",
            d.metrics.live_series_keys.get()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(d.metrics.buffered_points_dropped.get(), n as u64);
    d.stop.send(()).unwrap();
    let _ = d.daemon.await.unwrap();
}
