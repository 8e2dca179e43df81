//! Reading a topic's partitions from given offsets to given end offsets
//! with a consumer outside any group (`Client::HistoryReader`): how a
//! reader of whole ranges knows it is done.
//!
//! A partition is done once a message at or past `to − 1` has come, or once
//! librdkafka reports the end of the partition (the consumer is built with
//! `enable.partition.eof`): the offsets below the end that never come are
//! then known to hold no message — a transaction's commit marker (the last
//! offset a transactional producer leaves; it is never delivered), or a
//! compacted hole. Waiting for the position to reach the end offset instead
//! never ends after a transactional producer.
//!
//! One topic at a time: librdkafka's end-of-partition report names the
//! partition, not its topic.
//!
//! A consumer error is retried: librdkafka reconnects by itself, and a
//! broker that restarts during the read only delays it. Errors that keep
//! coming ([`MAX_ERRORS_IN_A_ROW`] with no message between them) end the
//! read with the partitions still behind.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

/// Consumer errors in a row, with no message between them, after which the
/// read gives up; each poll waits up to [`POLL`], so a broker gets at
/// least this many polls' time to come back.
pub const MAX_ERRORS_IN_A_ROW: u32 = 50;

const POLL: Duration = Duration::from_millis(200);

/// One partition's range to read: offsets `from..to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub partition: i32,
    pub from: i64,
    pub to: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("the read did not reach the end offsets within {timeout:?}: {behind}")]
    Timeout { timeout: Duration, behind: String },
    #[error("reading {behind} failed {errors} times in a row, last: {last}")]
    Failing {
        behind: String,
        errors: u32,
        last: KafkaError,
    },
}

/// What is left to read, per partition: (next offset, end offset), and
/// the consumer errors in a row. Kept apart from the consumer so that when
/// a read is done is checked without a broker.
#[derive(Debug)]
struct Progress {
    left: BTreeMap<i32, (i64, i64)>,
    errors: u32,
}

impl Progress {
    fn new(spans: &[Span]) -> Self {
        Progress {
            left: spans
                .iter()
                .filter(|s| s.from < s.to)
                .map(|s| (s.partition, (s.from, s.to)))
                .collect(),
            errors: 0,
        }
    }

    fn done(&self) -> bool {
        self.left.is_empty()
    }

    /// A message of `partition` at `offset`: whether it is below the end.
    fn message(&mut self, partition: i32, offset: i64) -> bool {
        self.errors = 0;
        let Some((next, to)) = self.left.get_mut(&partition) else {
            return false;
        };
        let wanted = offset < *to;
        *next = offset + 1;
        if *next >= *to {
            self.left.remove(&partition);
        }
        wanted
    }

    /// librdkafka reached the end of `partition`: whatever offsets below
    /// the end did not come hold no message.
    fn end_of_partition(&mut self, partition: i32) {
        self.errors = 0;
        self.left.remove(&partition);
    }

    /// A consumer error: whether the read may go on.
    fn error(&mut self) -> bool {
        self.errors += 1;
        self.errors < MAX_ERRORS_IN_A_ROW
    }

    fn behind(&self, topic: &str) -> String {
        self.left
            .iter()
            .map(|(p, (next, to))| format!("{topic}/{p} at {next} of {to}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Reads `spans` of `topic` and calls `on_message` with every message below
/// its partition's `to`, in offset order per partition; gives up once
/// `deadline` passes (`timeout` is what the error reports).
pub fn read_to_end(
    consumer: &BaseConsumer,
    topic: &str,
    spans: &[Span],
    deadline: Instant,
    timeout: Duration,
    mut on_message: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), ReadError> {
    let mut progress = Progress::new(spans);
    if progress.done() {
        return Ok(());
    }
    let mut assign = TopicPartitionList::new();
    for (&p, &(from, _)) in &progress.left {
        assign.add_partition_offset(topic, p, Offset::Offset(from))?;
    }
    consumer.assign(&assign)?;
    while !progress.done() {
        if Instant::now() > deadline {
            return Err(ReadError::Timeout {
                timeout,
                behind: progress.behind(topic),
            });
        }
        match consumer.poll(POLL) {
            None => {}
            Some(Ok(m)) => {
                let wanted = m.topic() == topic && progress.message(m.partition(), m.offset());
                if wanted {
                    on_message(&m);
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => progress.end_of_partition(p),
            Some(Err(e)) => {
                if !progress.error() {
                    return Err(ReadError::Failing {
                        behind: progress.behind(topic),
                        errors: progress.errors,
                        last: e,
                    });
                }
                tracing::warn!(error = %e, topic, "reading to the end offsets: retrying");
                // An error may come back at once: wait as a poll would.
                std::thread::sleep(POLL);
            }
        }
    }
    consumer.unassign()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(partition: i32, from: i64, to: i64) -> Span {
        Span {
            partition,
            from,
            to,
        }
    }

    /// A transactional producer's commit marker is the last offset of the
    /// partition and is never delivered: the end-of-partition report ends
    /// the read there; the position alone never reaches the end offset.
    #[test]
    fn the_end_of_a_partition_ends_it_short_of_a_transaction_marker() {
        let mut p = Progress::new(&[span(0, 0, 4), span(1, 2, 2), span(2, 0, 2)]);
        // Partition 1 is empty: nothing to wait for.
        assert_eq!(p.left.len(), 2);
        for offset in 0..3 {
            assert!(p.message(0, offset));
        }
        // Offset 3 is partition 0's marker: no message comes for it.
        assert!(!p.done());
        assert_eq!(p.behind("t"), "t/0 at 3 of 4, t/2 at 0 of 2");
        p.end_of_partition(0);
        assert_eq!(p.behind("t"), "t/2 at 0 of 2");
        // A message at or past the end (read from a bounded range) ends it,
        // and is not passed on.
        assert!(p.message(2, 0));
        assert!(!p.message(2, 5));
        assert!(p.done());
        // Partitions not asked for are ignored.
        assert!(!p.message(7, 0));
    }

    #[test]
    fn errors_are_retried_until_too_many_come_in_a_row() {
        let mut p = Progress::new(&[span(0, 0, 10)]);
        for _ in 0..3 {
            for _ in 1..MAX_ERRORS_IN_A_ROW {
                assert!(p.error());
            }
            // A message between them starts the count over.
            p.message(0, 0);
        }
        for _ in 1..MAX_ERRORS_IN_A_ROW {
            assert!(p.error());
        }
        assert!(!p.error());
        assert_eq!(p.behind("t"), "t/0 at 1 of 10");
    }
}
