//! The operator's marks, live (docs/feedback.md, *The daemon*): with
//! `kafka.feedback_topic` set, the daemon reads the whole topic before it
//! scores anything, then follows it on a thread of its own, applying each
//! record to one [`Marks`] set that the sink reads per window.
//!
//! The set is shared behind a read-write lock: the follower holds the
//! write lock only while one record is applied (a hash insert or removal,
//! never across I/O), so the sink's per-window lookup waits at most that
//! long, never for the broker.
//!
//! A record that is not a valid mark changes nothing: it is counted, and
//! copied to the dead-letter topic (when one is set) with the reason in
//! the usual headers ([`DeadLetterHeaders`]). The topic is read again from
//! the start at every start, so such a record is dead-lettered again after
//! each restart until a valid record of its id replaces it (or compaction
//! drops it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};

use super::error::ServeError;
use crate::config::KafkaSettings;
use crate::feedback::{read_record, Applied, FeedbackSettings, Marks, Verdict};
use crate::kafka::feedback::{RawRecord, TopicFollower};
use crate::score::CloseReason;
use crate::stream::dead_letter::DeadLetterHeaders;
use crate::telemetry::Metrics;

/// The marks the follower keeps and the sink reads.
pub type SharedMarks = Arc<RwLock<Marks>>;

/// The verdict of the mark that takes window end `end_ts_ms` of `key` out
/// of the incident rule, if any: `maintenance` first, then
/// `false_positive` (an `incident` mark changes nothing live).
pub fn suppressing(marks: &SharedMarks, key: &str, end_ts_ms: i64) -> Option<CloseReason> {
    let m = marks.read().unwrap_or_else(PoisonError::into_inner);
    if m.is_empty() {
        return None;
    }
    [
        (Verdict::Maintenance, CloseReason::Maintenance),
        (Verdict::FalsePositive, CloseReason::FalsePositive),
    ]
    .into_iter()
    .find(|&(v, _)| m.covering(key, end_ts_ms, v).is_some())
    .map(|(_, reason)| reason)
}

/// What `key`'s threshold is multiplied by at wall-clock `now_ms`
/// ([`Marks::raise`]); 1 while the raise is off or no mark is held.
pub fn raised(marks: &SharedMarks, key: &str, now_ms: i64, settings: &FeedbackSettings) -> f64 {
    if settings.raise_after == 0 {
        return 1.0;
    }
    let m = marks.read().unwrap_or_else(PoisonError::into_inner);
    if m.is_empty() {
        return 1.0;
    }
    m.raise(key, now_ms, settings)
}

/// The running follower; dropping it stops its thread within one poll.
pub struct Follower {
    stop: Arc<AtomicBool>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// How long one poll of the follower waits: a mark published while the
/// daemon runs applies within about this long after it reaches the broker.
const POLL: Duration = Duration::from_millis(200);

/// Applies records to the set, counts them, and dead-letters the bad ones.
struct Applier {
    marks: SharedMarks,
    settings: FeedbackSettings,
    max_marks: usize,
    topic: String,
    dead_letter_topic: String,
    producer: FutureProducer,
    metrics: Metrics,
}

impl Applier {
    fn apply(&self, r: RawRecord) {
        let m = &self.metrics;
        let change = match read_record(r.key.as_deref(), r.value.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                m.feedback_records.with_label_values(&["refused"]).inc();
                tracing::warn!(topic = %self.topic, partition = r.partition, offset = r.offset, error = %e, "feedback record refused: nothing applied");
                self.dead_letter(&r, e.kind(), &e.to_string());
                return;
            }
        };
        let (applied, len) = {
            let mut marks = self.marks.write().unwrap_or_else(PoisonError::into_inner);
            (marks.apply(change), marks.len())
        };
        m.feedback_marks.set(i64::try_from(len).unwrap_or(i64::MAX));
        if self.settings.raise_after > 0 {
            // Counted as the marks change, outside the write lock; a raise
            // that lapses as its marks age shows at the next record.
            let raised = self
                .marks
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .raised_keys(wall_ms(), &self.settings);
            m.feedback_raised_keys
                .set(i64::try_from(raised).unwrap_or(i64::MAX));
        }
        if applied == Applied::Full {
            m.feedback_records.with_label_values(&["full"]).inc();
            tracing::warn!(topic = %self.topic, partition = r.partition, offset = r.offset, max_marks = self.max_marks, "feedback.max_marks reached: mark not kept");
        } else {
            m.feedback_records.with_label_values(&["applied"]).inc();
        }
    }

    /// Queues a copy of `r` on the dead-letter topic, without waiting for
    /// the broker: a lost copy costs a triage aid, not a mark.
    fn dead_letter(&self, r: &RawRecord, kind: &'static str, message: &str) {
        if self.dead_letter_topic.is_empty() {
            return;
        }
        let reason = DeadLetterHeaders::new(kind, message, &self.topic, r.partition, r.offset);
        let mut headers = OwnedHeaders::new();
        for (k, v) in reason.pairs() {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let mut rec: FutureRecord<'_, [u8], [u8]> =
            FutureRecord::to(&self.dead_letter_topic).headers(headers);
        if let Some(k) = &r.key {
            rec = rec.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v.as_slice());
        }
        // The producer's queue is bounded; a full one is waited out a
        // little, then the copy is given up.
        for _ in 0..100 {
            match self.producer.send_result(rec) {
                Ok(_delivery) => {
                    self.metrics.dead_letters.with_label_values(&[kind]).inc();
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    tracing::warn!(error = %e, "feedback record not dead-lettered");
                    return;
                }
            }
        }
        tracing::warn!("feedback record not dead-lettered: the producer's queue stayed full");
    }
}

/// Reads the whole feedback topic, then follows it on a thread of its
/// own. `None` when `kafka.feedback_topic` is not set. A topic that
/// cannot be read to its end within `feedback.start_timeout_ms` stops the
/// start: a daemon that published anomalies its operators silenced would
/// page them for planned work.
pub async fn start(
    kafka: &KafkaSettings,
    settings: &FeedbackSettings,
    producer: FutureProducer,
    metrics: Metrics,
) -> Result<Option<(SharedMarks, Follower)>, ServeError> {
    let topic = kafka.feedback_topic.clone();
    if topic.is_empty() {
        return Ok(None);
    }
    let applier = Applier {
        marks: Arc::new(RwLock::new(Marks::new(settings.max_marks))),
        settings: settings.clone(),
        max_marks: settings.max_marks,
        topic: topic.clone(),
        dead_letter_topic: kafka.dead_letter_topic.clone(),
        producer,
        metrics,
    };
    let timeout = Duration::from_millis(settings.start_timeout_ms);
    let k = kafka.clone();
    let read = tokio::task::spawn_blocking(move || {
        let (follower, records) = TopicFollower::open(&k, &topic, timeout)?;
        let n = records.len();
        for r in records {
            applier.apply(r);
        }
        Ok::<_, crate::kafka::feedback::FeedbackTopicError>((follower, applier, n))
    })
    .await
    .map_err(|e| ServeError::Feedback(format!("the start-up read stopped: {e}")))?;
    let (reader, applier, n) = read.map_err(|e| ServeError::Feedback(e.to_string()))?;
    let marks = applier.marks.clone();
    tracing::info!(topic = %applier.topic, records = n, marks = marks.read().unwrap_or_else(PoisonError::into_inner).len(), "operator marks read; following the feedback topic");
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("lstm-ae-feedback".into())
        .spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                if let Some(r) = reader.next(POLL) {
                    applier.apply(r);
                }
            }
        })
        .map_err(|e| ServeError::Feedback(format!("cannot start its thread: {e}")))?;
    Ok(Some((marks, Follower { stop })))
}
