//! The daemon consumer's side of librdkafka: the context that reports
//! rebalances and statistics, the committer that sends offset commits one
//! at a time and reports their results, and the safe copy of a message for
//! the dead-letter topic.

use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::{BorrowedMessage, OwnedHeaders};
use rdkafka::statistics::Statistics;
use rdkafka::{Message, Offset, TopicPartitionList};

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
/// faster than it answers them queue up ahead of the heartbeats; on a broker
/// slower to answer a commit than the commit interval, no heartbeat was
/// answered within the session timeout, the session expired and the daemon
/// rejoined over and over.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KafkaSettings;
    use crate::kafka::{config, Client};
    use rdkafka::config::ClientConfig;

    /// The largest prefetch gauge seen while the daemon's consumer
    /// (statistics every 100 ms) reads `n` messages of
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
        let consumer: BaseConsumer<Context> = config(&k, Client::DaemonConsumer)
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
