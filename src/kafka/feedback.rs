//! The feedback topic (`kafka.feedback_topic`): writing one mark or
//! tombstone, reading every record from the start to the end offsets the
//! broker reports when the read begins, and following the topic after
//! that (the daemon).
//!
//! The topic is meant to be compacted (one record per mark id); the reader
//! does not rely on it: it applies records in offset order, so a later
//! record of an id wins and a tombstone deletes, compacted or not. Marks
//! are keyed by id, so one id always lands on one partition and its
//! records keep their order.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use super::{config, Client};
use crate::config::KafkaSettings;

#[derive(Debug, thiserror::Error)]
pub enum FeedbackTopicError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("topic {0:?} does not exist (create it compacted: cleanup.policy=compact)")]
    NoTopic(String),
    #[error("the broker did not acknowledge the record within {0:?}")]
    NotAcknowledged(Duration),
    #[error("read {read} records of topic {topic:?} in {timeout:?}, and partitions {behind:?} are not at their end")]
    Timeout {
        topic: String,
        read: usize,
        timeout: Duration,
        behind: Vec<i32>,
    },
}

/// One record of the topic: its Kafka key and value (`None`: a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
}

/// Writes one record keyed by `id` (`value` `None`: a tombstone) and waits
/// for the broker's acknowledgement.
pub fn publish(
    kafka: &KafkaSettings,
    topic: &str,
    id: &str,
    value: Option<&str>,
    timeout: Duration,
) -> Result<(), FeedbackTopicError> {
    let producer: BaseProducer = config(kafka, Client::Replay).create()?;
    let mut record = BaseRecord::<str, str>::to(topic).key(id);
    if let Some(v) = value {
        record = record.payload(v);
    }
    producer.send(record).map_err(|(e, _)| e)?;
    producer.flush(timeout)?;
    if producer.in_flight_count() > 0 {
        return Err(FeedbackTopicError::NotAcknowledged(timeout));
    }
    Ok(())
}

/// Every record of `topic`, partition by partition in offset order, up to
/// the end offsets at the start of the read (and any record that arrived
/// while it ran).
pub fn read_all(
    kafka: &KafkaSettings,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<RawRecord>, FeedbackTopicError> {
    TopicFollower::open(kafka, topic, timeout).map(|(_, records)| records)
}

/// A reader of the whole topic that goes on following it: every partition
/// assigned from its first offset, outside any consumer group and without
/// commits (a restart reads the topic again from the start).
///
/// Partitions added to the topic after [`TopicFollower::open`] are not
/// followed.
pub struct TopicFollower {
    consumer: BaseConsumer,
    topic: String,
}

impl TopicFollower {
    /// Assigns every partition of `topic` and reads up to the end offsets
    /// the broker reports when the read begins; returns the follower,
    /// positioned after what it returned, and the records, per partition
    /// in offset order.
    pub fn open(
        kafka: &KafkaSettings,
        topic: &str,
        timeout: Duration,
    ) -> Result<(TopicFollower, Vec<RawRecord>), FeedbackTopicError> {
        let consumer: BaseConsumer = config(kafka, Client::HistoryReader).create()?;
        let started = Instant::now();
        let meta = Duration::from_secs(10).min(timeout);
        let md = consumer.fetch_metadata(Some(topic), meta)?;
        let parts: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if parts.is_empty() {
            return Err(FeedbackTopicError::NoTopic(topic.to_string()));
        }
        let mut ends = std::collections::BTreeMap::new();
        let mut assign = TopicPartitionList::new();
        for p in parts {
            let (low, high) = consumer.fetch_watermarks(topic, p, meta)?;
            assign.add_partition_offset(topic, p, Offset::Offset(low))?;
            if low < high {
                ends.insert(p, (low, high));
            }
        }
        consumer.assign(&assign)?;
        let follower = TopicFollower {
            consumer,
            topic: topic.to_string(),
        };
        let mut out = vec![];
        // A partition is done when the next offset to read reaches its end
        // offset, or when no record below the end is left to deliver (a
        // compacted topic has holes, and a transaction's marker is never
        // delivered): after a record at or past end − 1, or an empty poll
        // once its position is past every record the broker holds. A record
        // past the end (written during the read) is kept: the consumer's
        // position has moved past it.
        while !ends.is_empty() {
            if started.elapsed() > timeout {
                return Err(FeedbackTopicError::Timeout {
                    topic: topic.to_string(),
                    read: out.len(),
                    timeout,
                    behind: ends.keys().copied().collect(),
                });
            }
            match follower.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => {
                    let p = m.partition();
                    if let Some(&(_, high)) = ends.get(&p) {
                        if m.offset() + 1 >= high {
                            ends.remove(&p);
                        }
                    }
                    out.push(RawRecord::from(&m));
                }
                // The history reader's client reports reaching a
                // partition's end (`enable.partition.eof`): that one is done.
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    ends.remove(&p);
                }
                // Transient consumer errors are retried until the deadline.
                Some(Err(e)) => tracing::warn!(error = %e, topic, "feedback topic read: retrying"),
                None => {
                    let positions = follower.consumer.position()?;
                    ends.retain(|&p, &mut (_, high)| {
                        !matches!(
                            positions.find_partition(topic, p).map(|e| e.offset()),
                            Some(Offset::Offset(o)) if o >= high
                        )
                    });
                }
            }
        }
        Ok((follower, out))
    }

    /// The next record, waiting at most `wait`; `None` when none came (a
    /// transient consumer error is logged and retried by the next call).
    pub fn next(&self, wait: Duration) -> Option<RawRecord> {
        match self.consumer.poll(wait)? {
            Ok(m) => Some(RawRecord::from(&m)),
            // Caught up with a partition: news, not an error.
            Err(KafkaError::PartitionEOF(_)) => None,
            Err(e) => {
                tracing::warn!(error = %e, topic = %self.topic, "feedback topic: retrying");
                None
            }
        }
    }
}

impl From<&BorrowedMessage<'_>> for RawRecord {
    fn from(m: &BorrowedMessage<'_>) -> Self {
        RawRecord {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
        }
    }
}
