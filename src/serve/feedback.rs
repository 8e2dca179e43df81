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
//! A record that is not a valid mark changes nothing: it is counted and
//! logged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use super::error::ServeError;
use crate::config::KafkaSettings;
use crate::feedback::{read_record, Applied, FeedbackSettings, Marks, Verdict};
use crate::kafka::feedback::{RawRecord, TopicFollower};
use crate::score::CloseReason;
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

/// The running follower; dropping it stops its thread within one poll.
pub struct Follower {
    stop: Arc<AtomicBool>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How long one poll of the follower waits: a mark published while the
/// daemon runs applies within about this long after it reaches the broker.
const POLL: Duration = Duration::from_millis(200);

/// Applies records to the set and counts them.
struct Applier {
    marks: SharedMarks,
    max_marks: usize,
    topic: String,
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
                return;
            }
        };
        let (applied, len) = {
            let mut marks = self.marks.write().unwrap_or_else(PoisonError::into_inner);
            (marks.apply(change), marks.len())
        };
        m.feedback_marks.set(i64::try_from(len).unwrap_or(i64::MAX));
        if applied == Applied::Full {
            m.feedback_records.with_label_values(&["full"]).inc();
            tracing::warn!(topic = %self.topic, partition = r.partition, offset = r.offset, max_marks = self.max_marks, "feedback.max_marks reached: mark not kept");
        } else {
            m.feedback_records.with_label_values(&["applied"]).inc();
        }
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
    metrics: Metrics,
) -> Result<Option<(SharedMarks, Follower)>, ServeError> {
    let topic = kafka.feedback_topic.clone();
    if topic.is_empty() {
        return Ok(None);
    }
    let applier = Applier {
        marks: Arc::new(RwLock::new(Marks::new(settings.max_marks))),
        max_marks: settings.max_marks,
        topic: topic.clone(),
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
