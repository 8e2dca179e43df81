//! Kafka clients for the daemon: consumer and producer configuration (our
//! defaults, then the raw librdkafka pass-through tables), the consumer
//! context that reports rebalances and statistics, the committer that sends
//! offset commits one at a time and reports their results, and the safe copy
//! of a message for the dead-letter topic.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, OwnedHeaders};
use rdkafka::statistics::Statistics;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::config::KafkaSettings;
use crate::telemetry::Metrics;

/// What the consumer reports from inside librdkafka's poll, for the ingest
/// stage to apply before the next message.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsumerEvent {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
    /// The broker confirmed these (topic, partition, offset) commits.
    Committed(Vec<(String, i32, i64)>),
    /// A commit failed (some or all of its partitions): it is asked for
    /// again at the next commit tick.
    CommitFailed,
}

/// Consumer context: queues rebalances, and turns librdkafka statistics into
/// the consumer-lag and prefetch gauges.
pub struct Context {
    pub events: Arc<Mutex<Vec<ConsumerEvent>>>,
    pub metrics: Metrics,
}

impl ClientContext for Context {
    fn stats(&self, s: Statistics) {
        let mut prefetched = 0;
        for (topic, t) in &s.topics {
            for (p, part) in &t.partitions {
                // -1 is librdkafka's "internal/unassigned" partition.
                if *p < 0 {
                    continue;
                }
                if part.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[topic.as_str(), &p.to_string()])
                        .set(part.consumer_lag);
                }
                // Every partition's fetch queue feeds the one consumer queue,
                // so each reports that queue's length: the largest is the
                // prefetch of all partitions together, not their sum.
                prefetched = prefetched.max(part.fetchq_cnt);
            }
        }
        self.metrics.consumer_prefetched.set(prefetched);
    }
}

fn partitions(tpl: &rdkafka::TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = r {
            if let Ok(mut ev) = self.events.lock() {
                ev.push(ConsumerEvent::Revoked(partitions(tpl)));
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = r {
            if let Ok(mut ev) = self.events.lock() {
                ev.push(ConsumerEvent::Assigned(partitions(tpl)));
            }
        }
    }
}

/// Sends offset commits one at a time, each on a thread of its own making
/// (synchronous commits), and queues each result as a [`ConsumerEvent`]
/// for the ingest stage, which asks for the next commit only once the last
/// one's result is in.
///
/// Why not `commit(.., CommitMode::Async)` with the context's
/// `commit_callback`: librdkafka reports the result of an application's
/// asynchronous commit only to an `offset_commit_cb` set in its
/// configuration or to a reply queue (`rd_kafka_cgrp_propagate_commit_result`
/// in `rdkafka_cgrp.c`), and rdkafka uses neither (it enables the
/// offset-commit *event*, which librdkafka sends for auto-commits only): no
/// result ever came back, so every tick sent the same commit again. A group
/// coordinator answers one member's requests in order, so commits sent
/// faster than it answers them queue up ahead of the heartbeats; on a slow
/// broker (tansu 0.6 here: 1–3 s per commit under load, a commit every
/// 200 ms) no heartbeat was answered for 30 s, the session expired and the
/// daemon rejoined over and over (issue 8's stall).
///
/// A thread rather than a blocking task: a commit may wait for the broker up
/// to `socket.timeout.ms`, and the runtime would wait for a blocking task at
/// exit; the process does not wait for this thread.
pub struct Committer {
    tx: SyncSender<Vec<(String, i32, i64)>>,
}

impl Committer {
    pub fn start(
        consumer: Arc<StreamConsumer<Context>>,
        events: Arc<Mutex<Vec<ConsumerEvent>>>,
        metrics: Metrics,
    ) -> std::io::Result<Committer> {
        let (tx, rx) = sync_channel::<Vec<(String, i32, i64)>>(1);
        std::thread::Builder::new()
            .name("lstm-ae-commit".into())
            .spawn(move || {
                for offsets in rx {
                    let event = match consumer.commit(&list(&offsets), CommitMode::Sync) {
                        Ok(()) => ConsumerEvent::Committed(offsets),
                        Err(e) => {
                            metrics.commit_failures.inc();
                            tracing::warn!(error = %e, "offset commit failed; retried at the next interval");
                            ConsumerEvent::CommitFailed
                        }
                    };
                    if let Ok(mut ev) = events.lock() {
                        ev.push(event);
                    }
                }
            })?;
        Ok(Committer { tx })
    }

    /// Hands `offsets` to the commit thread; `false` when it is still busy
    /// with the last ones (or gone), and nothing was sent.
    pub fn commit(&self, offsets: Vec<(String, i32, i64)>) -> bool {
        self.tx.try_send(offsets).is_ok()
    }
}

/// (topic, partition, offset) triples as librdkafka's list.
pub fn list(offsets: &[(String, i32, i64)]) -> TopicPartitionList {
    let mut tpl = TopicPartitionList::new();
    for (topic, p, o) in offsets {
        let _ = tpl.add_partition_offset(topic, *p, Offset::Offset(*o));
    }
    tpl
}

/// A copy of a consumed message for the dead-letter topic. Headers are
/// copied natively (`BorrowedHeaders::detach`), never read: rdkafka's
/// header accessors panic on a key that is not UTF-8, and no input may
/// crash the daemon. The original headers are forwarded byte for byte.
pub struct DeadLetterCopy {
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Option<OwnedHeaders>,
}

impl From<&BorrowedMessage<'_>> for DeadLetterCopy {
    fn from(m: &BorrowedMessage<'_>) -> Self {
        DeadLetterCopy {
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers: m.headers().map(|h| h.detach()),
        }
    }
}

/// Consumer properties: ours first (manual commits, earliest offset on a
/// new group, group membership, a bounded prefetch), then the user's
/// `common` and `consumer` tables, which may override anything, then the
/// SASL password secret.
///
/// The prefetch: librdkafka fetches ahead until the consumer queue (which
/// every partition's fetch queue feeds) has `queued.min.messages` (default
/// 100,000) or holds `queued.max.messages.kbytes` (64 MB) of payload, and
/// each message
/// carries bookkeeping beyond its payload that the cap does not count,
/// allocated on librdkafka's broker thread. With small points and a
/// backlog that was 65 MB of the daemon's memory (heaptrack:
/// `rd_kafka_op_new_fetch_msg` 48 MB and fetch buffers 17 MB at peak).
/// 10,000 messages a partition and 8 MB still keep about a second of work
/// queued at the daemon's rate (README, *Performance*).
///
/// Once a partition's queue is over those bounds librdkafka postpones its
/// next fetch by `fetch.queue.backoff.ms`, 1 s by default: with bounds a
/// user lowers to save memory the queue then runs dry long before the
/// fetch (2,000 messages: 52–57 % of bare ONNX Runtime's rate on two
/// threads with 1 s, 76–77 % with 10 ms). 10 ms changed nothing at our
/// bounds (82–84 % either way; README, *Daemon memory at 100,000 keys*).
pub fn consumer_config(k: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("group.id", &k.group_id)
        // Offsets are committed by the daemon only once outputs are acknowledged.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", k.session_timeout_ms.to_string())
        .set(
            "statistics.interval.ms",
            k.statistics_interval_ms.to_string(),
        )
        .set("queued.min.messages", "10000")
        .set("queued.max.messages.kbytes", "8192")
        .set("fetch.max.bytes", "4194304")
        .set("fetch.queue.backoff.ms", "10");
    if !k.instance_id.is_empty() {
        c.set("group.instance.id", &k.instance_id);
    }
    user_tables(&mut c, k, &k.consumer);
    c
}

/// Producer properties: idempotent (no duplicates from retries), then the
/// user's `common` and `producer` tables, then the SASL password secret.
pub fn producer_config(k: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "none");
    user_tables(&mut c, k, &k.producer);
    c
}

/// `common`, then the client's own table, then the secret: TLS and SASL
/// set once reach both clients, and the password never sits in a table.
fn user_tables(
    c: &mut ClientConfig,
    k: &KafkaSettings,
    own: &std::collections::BTreeMap<String, String>,
) {
    for (key, v) in k.common.iter().chain(own) {
        c.set(key, v);
    }
    if let Some(p) = &k.sasl_password {
        c.set("sasl.password", p.expose());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Settings;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Settings loaded from a file holding `text`, with no environment.
    fn from_toml(text: &str) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, text).unwrap();
        Settings::load_with_env(Some(&f), vec![]).unwrap()
    }

    fn both(k: &KafkaSettings) -> [ClientConfig; 2] {
        [consumer_config(k), producer_config(k)]
    }

    #[test]
    fn the_common_table_reaches_both_clients_and_each_table_overrides_it() {
        let s = from_toml(
            "[kafka.common]\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanisms\" = \"SCRAM-SHA-512\"\n\"client.id\" = \"both\"\n[kafka.producer]\n\"client.id\" = \"producer\"\n",
        );
        for c in both(&s.kafka) {
            assert_eq!(c.get("security.protocol"), Some("SASL_SSL"));
            assert_eq!(c.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        }
        assert_eq!(consumer_config(&s.kafka).get("client.id"), Some("both"));
        assert_eq!(producer_config(&s.kafka).get("client.id"), Some("producer"));
    }

    #[test]
    fn the_prefetch_is_bounded_and_the_consumer_table_may_raise_it() {
        // librdkafka's own defaults (100,000 messages a partition, 64 MB)
        // held 65 MB of fetched messages at 100,000 keys.
        let c = consumer_config(&Settings::default().kafka);
        assert_eq!(c.get("queued.min.messages"), Some("10000"));
        assert_eq!(c.get("queued.max.messages.kbytes"), Some("8192"));
        // librdkafka's 1 s would stall a consumer whose bounds are lowered.
        assert_eq!(c.get("fetch.queue.backoff.ms"), Some("10"));
        let s = from_toml("[kafka.consumer]\n\"queued.min.messages\" = \"100000\"\n");
        let c = consumer_config(&s.kafka);
        assert_eq!(c.get("queued.min.messages"), Some("100000"));
        assert_eq!(c.get("queued.max.messages.kbytes"), Some("8192"));
    }

    #[test]
    fn the_sasl_password_from_the_environment_reaches_both_clients_and_no_log() {
        let s =
            Settings::load_with_env(None, env(&[("LSTM_AE_KAFKA_SASL_PASSWORD", "s3cr3t-env")]))
                .unwrap();
        for c in both(&s.kafka) {
            assert_eq!(c.get("sasl.password"), Some("s3cr3t-env"));
        }
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cr3t-env"), "{shown}");
    }

    #[test]
    fn the_sasl_password_from_a_file_reaches_both_clients_and_the_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("password");
        std::fs::write(&secret, "s3cr3t-file\n").unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            format!(
                "[kafka]\nsasl_password_file = {:?}\n",
                secret.display().to_string()
            ),
        )
        .unwrap();
        let s = Settings::load_with_env(Some(&f), vec![]).unwrap();
        for c in both(&s.kafka) {
            assert_eq!(c.get("sasl.password"), Some("s3cr3t-file"));
        }
        let s = Settings::load_with_env(
            Some(&f),
            env(&[("LSTM_AE_KAFKA_SASL_PASSWORD", "from-env")]),
        )
        .unwrap();
        for c in both(&s.kafka) {
            assert_eq!(c.get("sasl.password"), Some("from-env"));
        }
        std::fs::remove_file(&secret).unwrap();
        let e = Settings::load_with_env(Some(&f), vec![])
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka.sasl_password_file"), "{e}");
    }

    #[test]
    fn static_membership_defaults_from_the_pod_then_the_host_name() {
        let id = |pairs: &[(&str, &str)]| {
            let s = Settings::load_with_env(None, env(pairs)).unwrap();
            consumer_config(&s.kafka)
                .get("group.instance.id")
                .map(str::to_string)
        };
        assert_eq!(id(&[]), None, "no name: dynamic membership");
        assert_eq!(id(&[("HOSTNAME", "host-1")]).as_deref(), Some("host-1"));
        assert_eq!(
            id(&[("HOSTNAME", "host-1"), ("POD_NAME", "lstm-ae-0")]).as_deref(),
            Some("lstm-ae-0")
        );
        assert_eq!(
            id(&[
                ("HOSTNAME", "host-1"),
                ("LSTM_AE__KAFKA__INSTANCE_ID", "daemon-a")
            ])
            .as_deref(),
            Some("daemon-a")
        );
        assert_eq!(
            id(&[
                ("HOSTNAME", "host-1"),
                ("LSTM_AE__KAFKA__STATIC_MEMBERSHIP", "false")
            ]),
            None
        );
        let s = Settings::load_with_env(None, env(&[])).unwrap();
        assert_eq!(
            consumer_config(&s.kafka).get("session.timeout.ms"),
            Some("30000")
        );
    }

    /// The largest prefetch gauge seen while the consumer of
    /// `consumer_config` (statistics every 100 ms) reads `n` messages of
    /// 100 bytes from each of two partitions at about 100 a millisecond.
    fn most_prefetched(n: usize, consumer_table: &[(&str, &str)]) -> i64 {
        use rdkafka::consumer::BaseConsumer;
        use rdkafka::mocking::MockCluster;
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        use std::time::{Duration, Instant};

        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("in", 2, 1).unwrap();
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", cluster.bootstrap_servers())
            .set("linger.ms", "20")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .unwrap();
        for i in 0..2 * n {
            let body = format!("{i:0100}");
            let mut record = BaseRecord::<(), _>::to("in")
                .payload(&body)
                .partition((i % 2) as i32);
            while let Err((_, r)) = producer.send(record) {
                producer.poll(Duration::from_millis(10));
                record = r;
            }
        }
        producer.flush(Duration::from_secs(60)).unwrap();

        let mut k = KafkaSettings {
            brokers: cluster.bootstrap_servers(),
            group_id: "prefetch".into(),
            statistics_interval_ms: 100,
            ..KafkaSettings::default()
        };
        for (key, v) in consumer_table {
            k.consumer.insert(key.to_string(), v.to_string());
        }
        let metrics = Metrics::new();
        let consumer: BaseConsumer<Context> = consumer_config(&k)
            .create_with_context(Context {
                events: Arc::default(),
                metrics: metrics.clone(),
            })
            .unwrap();
        let mut tpl = TopicPartitionList::new();
        for p in 0..2 {
            tpl.add_partition_offset("in", p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let (mut read, mut most) = (0, 0);
        let start = Instant::now();
        while read < 2 * n {
            assert!(start.elapsed() < Duration::from_secs(60), "{read} read");
            // Statistics are served by the same poll, behind the messages
            // fetched before them.
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                m.unwrap();
                read += 1;
                if read % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            most = most.max(metrics.consumer_prefetched.get());
        }
        most
    }

    #[test]
    fn the_prefetch_gauge_reports_the_bounded_queue() {
        // 40,000 messages a partition, 80,000 (8 MB) in all: librdkafka's
        // own defaults (100,000 messages, 64 MB) fetch all of them ahead;
        // ours stop at 10,000 plus what one fetch brings (1 MB, about 9,000
        // messages, a partition).
        let n = 40_000;
        let ours = most_prefetched(n, &[]);
        let defaults = most_prefetched(
            n,
            &[
                ("queued.min.messages", "100000"),
                ("queued.max.messages.kbytes", "65536"),
                ("fetch.max.bytes", "52428800"),
            ],
        );
        eprintln!("most prefetched: {ours} (ours), {defaults} (librdkafka's defaults)");
        assert!(
            defaults > 60_000,
            "librdkafka's defaults prefetched {defaults}"
        );
        assert!(ours > 0, "the gauge never rose");
        assert!(ours <= 30_000, "the bounded prefetch held {ours}");
    }
}
