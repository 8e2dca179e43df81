//! Kafka clients for the daemon: consumer and producer configuration (our
//! defaults, then the raw librdkafka pass-through tables), and the consumer
//! context that reports rebalances and statistics.

use std::sync::{Arc, Mutex};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;

use crate::config::KafkaSettings;
use crate::telemetry::Metrics;

/// A partition assignment change, for the ingest loop to apply.
#[derive(Debug, Clone, PartialEq)]
pub enum RebalanceEvent {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
}

/// Consumer context: queues rebalance events and turns librdkafka
/// statistics into the consumer-lag gauge.
pub struct Context {
    pub events: Arc<Mutex<Vec<RebalanceEvent>>>,
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
                ev.push(RebalanceEvent::Revoked(partitions(tpl)));
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, r: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = r {
            if let Ok(mut ev) = self.events.lock() {
                ev.push(RebalanceEvent::Assigned(partitions(tpl)));
            }
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
