//! A real Kafka-protocol broker process (tansu) and a real `lstm-ae serve`
//! process for the integration tests, with the helpers to feed and read
//! topics and scrape the daemon's HTTP endpoints.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Message;

use super::procs;

pub fn free_port() -> u16 {
    procs::free_port().unwrap()
}

pub fn tansu_bin() -> PathBuf {
    procs::tansu_bin().unwrap()
}

fn wait_for_port(port: u16, what: &str) {
    procs::wait_for_port(port, what).unwrap()
}

/// An append-only log file in `dir`.
fn log(dir: &Path, name: &str) -> Stdio {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// A test's temp folder; kept (and its path printed) when
/// `LSTM_AE_KEEP_TEST_DIRS` is set, for the broker's log (`tansu.out`,
/// `tansu.err`) and its sqlite file.
pub fn test_dir() -> tempfile::TempDir {
    let keep = std::env::var_os("LSTM_AE_KEEP_TEST_DIRS").is_some();
    let dir = tempfile::Builder::new()
        .prefix("lstm-ae-broker-")
        .disable_cleanup(keep)
        .tempdir()
        .unwrap();
    if keep {
        eprintln!("test folder kept: {}", dir.path().display());
    }
    dir
}

/// A tansu broker on a free port, killed on drop.
pub struct Broker {
    pub port: u16,
    child: Child,
    dir: PathBuf,
    storage: String,
}

impl Broker {
    /// In-memory storage, or sqlite (a file in `dir`) to survive restarts.
    ///
    /// tansu 0.6.0's memory engine cannot serve a fetch that starts inside a
    /// record batch: it returns only the batches whose *base* offset is at or
    /// past the requested one (nothing at all inside the last batch), and its
    /// ListOffsets end offset is the last batch's base offset + 1. A consumer
    /// that resumes from a committed offset therefore skips the rest of that
    /// batch or fetches nothing. Use it only for tests that read every topic
    /// from offset 0.
    pub fn start(dir: &Path, sqlite: bool) -> Broker {
        let port = free_port();
        let storage = if sqlite {
            "sqlite://tansu.db".to_string()
        } else {
            "memory://tansu/".to_string()
        };
        let child = Self::spawn(dir, port, &storage);
        wait_for_port(port, "tansu");
        Broker {
            port,
            child,
            dir: dir.to_path_buf(),
            storage,
        }
    }

    fn spawn(dir: &Path, port: u16, storage: &str) -> Child {
        procs::tansu_broker(&tansu_bin(), dir, port, storage)
            // tansu's own log, in the test's temp dir, for post-mortems.
            .stdout(log(dir, "tansu.out"))
            .stderr(log(dir, "tansu.err"))
            .spawn()
            .expect("tansu starts")
    }

    /// Kills the broker (SIGKILL) and starts it again on the same port
    /// and storage: what a broker crash and restart looks like to clients.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = Self::spawn(&self.dir, self.port, &self.storage);
        wait_for_port(self.port, "tansu (restarted)");
    }

    /// The daemon's default topics.
    pub const DAEMON_TOPICS: [&'static str; 4] = [
        "lstm-ae.points",
        "lstm-ae.embeddings",
        "lstm-ae.anomalies",
        "lstm-ae.dead-letters",
    ];

    /// A broker with sqlite storage and the daemon's default topics: the
    /// points topic on `points_partitions` partitions, the others on one.
    /// Not the memory engine: a restarted daemon resumes from a committed
    /// offset inside a record batch, which only sqlite serves (see
    /// [`Broker::start`]).
    pub fn with_daemon_topics(dir: &Path, points_partitions: u32) -> Broker {
        let b = Broker::start(dir, true);
        for t in Self::DAEMON_TOPICS {
            b.create_topic(
                t,
                if t == "lstm-ae.points" {
                    points_partitions
                } else {
                    1
                },
            );
        }
        b
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's process id, for the benchmarks' CPU and `perf` readings.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn create_topic(&self, name: &str, partitions: u32) {
        let st = Command::new(tansu_bin())
            .args([
                "topic",
                "create",
                "--broker",
                &format!("tcp://127.0.0.1:{}", self.port),
            ])
            .args(["--partitions", &partitions.to_string(), name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success(), "tansu topic create {name}");
    }

    pub fn produce(&self, topic: &str, messages: &[(String, Vec<u8>)]) {
        produce(&self.brokers(), topic, messages)
    }

    /// Every message of `topic` from the start, read by a fresh group until
    /// `idle` passes without a new one.
    pub fn read_all(&self, topic: &str, idle: Duration) -> Vec<Record> {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.brokers())
            .set("group.id", format!("reader-{}", free_port()))
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        c.subscribe(&[topic]).unwrap();
        let mut out = vec![];
        let mut last = Instant::now();
        // Group join takes a few seconds; allow for it before counting idle time.
        let first_deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match c.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    out.push(Record::from(&m));
                    last = Instant::now();
                }
                _ => {
                    let waited = if out.is_empty() {
                        Instant::now() > first_deadline
                    } else {
                        last.elapsed() > idle
                    };
                    if waited {
                        break;
                    }
                }
            }
        }
        out
    }
}

/// Produces `messages` (key, payload) to `topic` and waits for every ack;
/// a function of the address, so a thread can feed a topic while the test
/// restarts the broker or kills the daemon.
pub fn produce(brokers: &str, topic: &str, messages: &[(String, Vec<u8>)]) {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for (k, v) in messages {
        loop {
            match p.send(BaseRecord::to(topic).key(k).payload(v)) {
                Ok(()) => break,
                Err(_) => {
                    p.poll(Duration::from_millis(10));
                }
            }
        }
    }
    // Generous: the broker may be restarting under the producer.
    p.flush(Duration::from_secs(120)).unwrap();
}

/// Reads every partition of a topic from the beginning, without a group
/// (partitions assigned directly, so no join delay), keeping its position
/// between calls.
pub struct TopicReader {
    consumer: BaseConsumer,
    topic: String,
    partitions: Vec<i32>,
    /// Next offset to read, per partition.
    next: std::collections::HashMap<i32, i64>,
    pub records: u64,
}

impl TopicReader {
    pub fn new(brokers: &str, topic: &str) -> TopicReader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("reader-{}", free_port()))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(30))
            .unwrap();
        let partitions: Vec<i32> = md
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        assert!(!partitions.is_empty(), "{topic} has partitions");
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in &partitions {
            tpl.add_partition_offset(topic, *p, rdkafka::Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        TopicReader {
            consumer,
            topic: topic.to_string(),
            partitions,
            next: Default::default(),
            records: 0,
        }
    }

    /// Hands every record that arrives within `d` to `f`.
    pub fn poll_for(&mut self, d: Duration, mut f: impl FnMut(Record)) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(100)) {
                self.next.insert(m.partition(), m.offset() + 1);
                self.records += 1;
                f(Record::from(&m));
            }
        }
    }

    /// (low, high) watermarks of a partition of any topic.
    pub fn watermarks(&self, topic: &str, partition: i32) -> (i64, i64) {
        self.consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(30))
            .unwrap()
    }

    /// Reads up to each partition's end offset as of now (its high
    /// watermark), so that "nothing else" is a statement about the whole
    /// topic; panics after `timeout`.
    pub fn read_to_end(&mut self, timeout: Duration, mut f: impl FnMut(Record)) {
        let deadline = Instant::now() + timeout;
        let ends: Vec<(i32, i64)> = self
            .partitions
            .iter()
            .map(|&p| {
                let (_, high) = self
                    .consumer
                    .fetch_watermarks(&self.topic, p, Duration::from_secs(30))
                    .unwrap();
                (p, high)
            })
            .collect();
        while ends
            .iter()
            .any(|(p, high)| self.next.get(p).copied().unwrap_or(0) < *high)
        {
            assert!(
                Instant::now() < deadline,
                "{}: not at its end offsets {ends:?} after {timeout:?}; at {:?}",
                self.topic,
                self.next
            );
            self.poll_for(Duration::from_millis(200), &mut f);
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A consumed message.
#[derive(Debug, Clone)]
pub struct Record {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
    /// The message's Kafka timestamp (the producer's CreateTime), ms.
    pub timestamp_ms: Option<i64>,
}

impl Record {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).expect("a JSON record")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl From<&rdkafka::message::BorrowedMessage<'_>> for Record {
    fn from(m: &rdkafka::message::BorrowedMessage<'_>) -> Self {
        Record {
            key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
            payload: m.payload().unwrap_or_default().to_vec(),
            timestamp_ms: m.timestamp().to_millis(),
            headers: m
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
                .unwrap_or_default(),
        }
    }
}

/// A running `lstm-ae serve`; its log (level `LSTM_AE_TEST_LOG`, default
/// `warn`) goes to the test's stderr.
pub struct Daemon {
    pub child: Child,
    pub metrics_port: u16,
}

impl Daemon {
    /// Starts the daemon against `brokers` with the default model; `extra`
    /// are additional `LSTM_AE__…` variables.
    pub fn start(
        dir: &Path,
        brokers: &str,
        config: Option<&Path>,
        extra: &[(&str, &str)],
    ) -> Daemon {
        let port = free_port();
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
        // A short group session, so that a daemon that is gone for good is
        // replaced quickly (the drain must end within it: 5 s).
        let default_cfg = dir.join("group.toml");
        std::fs::write(
            &default_cfg,
            "[kafka]\nsession_timeout_ms = 6000\n[kafka.consumer]\n\"heartbeat.interval.ms\" = \"500\"\n",
        )
        .unwrap();
        let mut c = Command::new(super::bin());
        c.arg("serve")
            .arg("--config")
            .arg(config.unwrap_or(&default_cfg));
        c.current_dir(dir)
            .env("LSTM_AE__KAFKA__BROKERS", brokers)
            .env("LSTM_AE__SERVE__MODEL", &model)
            .env(
                "LSTM_AE__SERVE__METRICS_LISTEN",
                format!("127.0.0.1:{port}"),
            )
            .env("LSTM_AE__KAFKA__COMMIT_INTERVAL_MS", "200")
            .env("LSTM_AE__SERVE__MAX_WAIT_MS", "5")
            .env("LSTM_AE__SERVE__DRAIN_TIMEOUT_MS", "5000")
            // Dynamic membership unless a test asks otherwise (and never
            // from the CI host's HOSTNAME): tansu 0.6 holds a static
            // member's join and sync 3 s each, so a static member needs a
            // session well above the 6 s here (docs/daemon.md, *Restarts and
            // static membership*).
            .env("LSTM_AE__KAFKA__STATIC_MEMBERSHIP", "false")
            .env(
                "RUST_LOG",
                std::env::var("LSTM_AE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra {
            c.env(k, v);
        }
        let child = c.spawn().expect("lstm-ae serve starts");
        wait_for_port(port, "lstm-ae serve's metrics endpoint");
        Daemon {
            child,
            metrics_port: port,
        }
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.metrics_port, path)
    }

    /// A counter or gauge value from /metrics (0 when absent).
    pub fn metric(&self, series: &str) -> f64 {
        procs::metric(&self.get("/metrics").1, series)
    }

    /// Waits until `cond` holds, polling; panics with `what` after `secs`.
    pub fn wait_until(&self, secs: u64, what: &str, mut cond: impl FnMut(&Daemon) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http_get(port: u16, path: &str) -> (u16, String) {
    procs::http_get(port, path).unwrap()
}

/// The status of `GET /readyz` on 127.0.0.1:`port`, if anything answers.
pub fn procs_http_ready(port: u16) -> Option<u16> {
    procs::http_get(port, "/readyz").ok().map(|(s, _)| s)
}
