//! Kafka clients for the daemon: consumer and producer configuration (our
//! defaults, then the raw librdkafka pass-through tables), the consumer
//! context that reports rebalances, commit results and statistics, and the
//! safe copy of a message for the dead-letter topic.

use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
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
}

/// Consumer context: queues rebalances and commit confirmations, and turns
/// librdkafka statistics into the consumer-lag gauge.
pub struct Context {
    pub events: Arc<Mutex<Vec<ConsumerEvent>>>,
    pub metrics: Metrics,
}

impl ClientContext for Context {
    fn stats(&self, s: Statistics) {
        for (topic, t) in &s.topics {
            for (p, part) in &t.partitions {
                // -1 is librdkafka's "internal/unassigned" partition.
                if *p >= 0 && part.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[topic.as_str(), &p.to_string()])
                        .set(part.consumer_lag);
                }
            }
        }
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

    /// An asynchronous commit's result: only a confirmed commit counts as
    /// done; a failed one is asked for again at the next commit tick.
    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        match result {
            Ok(()) => {
                let done = offsets
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some((e.topic().to_string(), e.partition(), o)),
                        _ => None,
                    })
                    .collect();
                if let Ok(mut ev) = self.events.lock() {
                    ev.push(ConsumerEvent::Committed(done));
                }
            }
            Err(e) => {
                self.metrics.commit_failures.inc();
                tracing::warn!(error = %e, "offset commit failed; retried at the next interval");
            }
        }
    }
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
/// new group), then the user's table, which may override anything.
pub fn consumer_config(k: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("group.id", &k.group_id)
        // Offsets are committed by the daemon only once outputs are acknowledged.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "statistics.interval.ms",
            k.statistics_interval_ms.to_string(),
        );
    for (key, v) in &k.consumer {
        c.set(key, v);
    }
    c
}

/// Producer properties: idempotent (no duplicates from retries), then the
/// user's table.
pub fn producer_config(k: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("compression.type", "none");
    for (key, v) in &k.producer {
        c.set(key, v);
    }
    c
}
