//! The sink stage: puts scored batches back in order, asks the [`Scorer`]
//! for each window's decision and records, produces them, and once the
//! broker has acknowledged every output of a window hands the window's
//! offset holds back to the ingest stage.
//!
//! Order matters twice: each key's outputs must keep the key's window order
//! on the topics, and the scorer's per-key state (likelihood, incidents)
//! needs windows in order. [`InOrder`] restores it after the inference
//! threads; it holds at most the batches whose permits are out (see
//! [`super::backend::Batch`]), so a stalled thread stops intake instead of
//! growing memory.
//!
//! A window in an operator's `maintenance` or `false_positive` mark of its
//! key is decided with [`Scorer::decide_marked`]: it stays out of
//! incidents, and its scores record says which mark suppressed it.
//!
//! Every output holds one of `serve.max_outputs_in_flight` permits from
//! the moment it is queued until the broker acknowledges it: a slow broker
//! makes the sink wait for permits, which keeps the batches' permits out and
//! so pauses intake, instead of filling librdkafka's queue.
//!
//! A failed delivery is fatal and noticed at once, even with no input
//! arriving: the daemon stops without committing the window.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{Histogram, IntCounter, IntGauge};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::backend::{ScoredBatch, ScoredMsg, Served};
use super::error::PipelineError;
use super::feedback::{raised, suppressing, SharedMarks};
use super::series_outputs::SeriesOutputs;
use crate::config::KafkaSettings;
use crate::score::{Scorer, WindowScore};
use crate::stream::offsets::Hold;
use crate::telemetry::Metrics;

/// Holds to release: every output of their message(s) is acknowledged.
pub struct Ack(pub Vec<Hold>);

/// Wall-clock epoch ms, for end-to-end latency against Kafka timestamps.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Puts numbered batches (1, 2, 3, …) back in order: several inference
/// threads finish them out of order, but outputs must keep each key's
/// window order.
#[derive(Debug)]
pub struct InOrder<T> {
    next: u64,
    waiting: BTreeMap<u64, T>,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        InOrder {
            next: 1,
            waiting: BTreeMap::new(),
        }
    }
}

impl<T> InOrder<T> {
    /// Takes batch `seq`; returns the batches now ready, in order.
    pub fn push(&mut self, seq: u64, batch: T) -> Vec<T> {
        self.waiting.insert(seq, batch);
        let mut ready = vec![];
        while let Some(b) = self.waiting.remove(&self.next) {
            ready.push(b);
            self.next += 1;
        }
        ready
    }

    /// Batches left waiting for an earlier one.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

/// Seconds from an input's Kafka timestamp to now, or `None` for a
/// timestamp in the future or so far in the past that it is meaningless
/// (no overflow whatever the input says).
pub fn latency_seconds(now_ms: i64, input_ts_ms: i64) -> Option<f64> {
    let ms = now_ms.checked_sub(input_ts_ms)?;
    (ms >= 0).then(|| ms as f64 / 1000.0)
}

/// An output queued for the broker: holds its permit until it is dropped
/// after the acknowledgement (or the failure) comes back.
struct InFlight {
    _permit: OwnedSemaphorePermit,
    gauge: IntGauge,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Where outputs get their permits, and the gauge of those out.
struct Outputs<'a> {
    producer: &'a FutureProducer,
    permits: &'a Arc<Semaphore>,
    gauge: &'a IntGauge,
}

impl Outputs<'_> {
    /// Queues one message once a permit is free; waits while librdkafka's
    /// queue is full too (both waits are back-pressure on the whole
    /// pipeline).
    async fn enqueue(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
    ) -> Result<(DeliveryFuture, InFlight), PipelineError> {
        let permit =
            self.permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| PipelineError::Dropped {
                    topic: topic.to_string(),
                })?;
        self.gauge.inc();
        let held = InFlight {
            _permit: permit,
            gauge: self.gauge.clone(),
        };
        Ok((enqueue(self.producer, topic, key, payload).await?, held))
    }
}

/// Queues one message; waits while librdkafka's queue is full.
async fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
) -> Result<DeliveryFuture, PipelineError> {
    loop {
        match producer.send_result(FutureRecord::to(topic).key(key).payload(payload)) {
            Ok(f) => return Ok(f),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((source, _)) => {
                return Err(PipelineError::Produce {
                    topic: topic.to_string(),
                    source,
                })
            }
        }
    }
}

/// The output topics, by role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Topic {
    Embeddings,
    Anomalies,
    Scores,
}

impl Topic {
    fn name(self, k: &KafkaSettings) -> &str {
        match self {
            Topic::Embeddings => &k.embeddings_topic,
            Topic::Anomalies => &k.anomalies_topic,
            Topic::Scores => &k.scores_topic,
        }
    }
}

/// A topic's name and the metric handles a delivery to it updates.
type Handles = (String, IntCounter, IntCounter, Histogram);

/// Per output topic in use, the metric handles, looked up once (a labelled
/// lookup per output costs more than the update).
struct TopicMetrics([Option<Handles>; 3]);

impl TopicMetrics {
    fn new(m: &Metrics, k: &KafkaSettings) -> Self {
        let handles = |t: Topic| {
            let name = t.name(k);
            (!name.is_empty()).then(|| {
                (
                    name.to_string(),
                    m.outputs_produced.with_label_values(&[name]),
                    m.produce_errors.with_label_values(&[name]),
                    m.end_to_end_latency.with_label_values(&[name]),
                )
            })
        };
        TopicMetrics([
            handles(Topic::Embeddings),
            handles(Topic::Anomalies),
            handles(Topic::Scores),
        ])
    }

    fn get(&self, t: Topic) -> Option<&Handles> {
        self.0[t as usize].as_ref()
    }
}

/// One window's queued outputs and what its acknowledgement releases.
struct WindowDelivery {
    pending: Vec<(Topic, DeliveryFuture, InFlight)>,
    holds: Vec<Hold>,
    input_ts: Option<i64>,
}

/// Awaits the batch's deliveries window by window; each fully acknowledged
/// window releases its holds. The first failure ends the batch (fatal).
async fn deliver(
    windows: Vec<WindowDelivery>,
    acks: mpsc::UnboundedSender<Ack>,
    metrics: Metrics,
    topics: Arc<TopicMetrics>,
) -> Result<(), PipelineError> {
    for w in windows {
        for (topic, fut, held) in w.pending {
            // Only topics in use get outputs, so the handles are there.
            let handles = topics.get(topic);
            let name = || handles.map_or(String::new(), |h| h.0.clone());
            match fut.await {
                Ok(Ok(_)) => {
                    if let Some((_, produced, _, latency)) = handles {
                        produced.inc();
                        if let Some(s) = w.input_ts.and_then(|ts| latency_seconds(now_ms(), ts)) {
                            latency.observe(s);
                        }
                    }
                }
                Ok(Err((source, _))) => {
                    if let Some((_, _, errors, _)) = handles {
                        errors.inc();
                    }
                    return Err(PipelineError::Produce {
                        topic: name(),
                        source,
                    });
                }
                Err(_) => return Err(PipelineError::Dropped { topic: name() }),
            }
            drop(held);
        }
        metrics.windows_in_flight.dec();
        // The ingest loop may already be gone at the very end of a drain.
        let _ = acks.send(Ack(w.holds));
    }
    Ok(())
}

/// The sink's fixed parts.
pub struct Sink {
    pub producer: FutureProducer,
    pub kafka: KafkaSettings,
    pub scorer: Scorer,
    /// The model the scorer is set to; a window scored by another (a hot
    /// reload) switches it first.
    pub model: Arc<Served>,
    pub acks: mpsc::UnboundedSender<Ack>,
    pub metrics: Metrics,
    /// Processing time for the scorer's key TTLs (monotonic).
    pub clock: tokio::time::Instant,
    /// Per-series gauges and remote writes of each scored window.
    pub series: SeriesOutputs,
    /// The operator's marks, when `kafka.feedback_topic` is set.
    pub marks: Option<SharedMarks>,
    /// `serve.max_outputs_in_flight` permits, one per unacknowledged output.
    pub output_permits: Arc<Semaphore>,
    /// The threshold raise after false-positive marks.
    pub feedback: crate::feedback::FeedbackSettings,
}

impl Sink {
    /// Runs until the scored channel closes and every delivery has
    /// finished, or until the first failure (returned at once).
    pub async fn run(mut self, mut scored: mpsc::Receiver<ScoredMsg>) -> Result<(), PipelineError> {
        let mut deliveries: JoinSet<Result<(), PipelineError>> = JoinSet::new();
        let mut order = InOrder::default();
        let topics = Arc::new(TopicMetrics::new(&self.metrics, &self.kafka));
        // The gauges' upkeep also runs while no window comes.
        let mut series_tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                // A failed delivery stops the daemon even when no batch comes.
                Some(done) = deliveries.join_next(), if !deliveries.is_empty() => {
                    done.map_err(PipelineError::SinkTask)??;
                }
                _ = series_tick.tick(), if self.series.has_gauges() => {
                    self.series.tick(self.clock.elapsed().as_millis() as u64);
                }
                msg = scored.recv() => {
                    let Some(msg) = msg else { break };
                    let batch = msg?;
                    for b in order.push(batch.seq, batch) {
                        let windows = self.outputs(b).await?;
                        if !windows.is_empty() {
                            let (acks, m, t) = (self.acks.clone(), self.metrics.clone(), topics.clone());
                            deliveries.spawn(deliver(windows, acks, m, t));
                        }
                    }
                }
            }
        }
        while let Some(done) = deliveries.join_next().await {
            done.map_err(PipelineError::SinkTask)??;
        }
        if order.waiting() > 0 {
            // Their windows stay unacknowledged, hence uncommitted: replayed.
            return Err(PipelineError::OrderLost(order.waiting()));
        }
        Ok(())
    }

    /// Decides about a batch's windows and enqueues their outputs, in
    /// window order, so each key's outputs keep their order on the topics;
    /// only the wait for acknowledgements is left to the caller.
    async fn outputs(&mut self, batch: ScoredBatch) -> Result<Vec<WindowDelivery>, PipelineError> {
        let ScoredBatch {
            windows, permit, ..
        } = batch;
        let m = &self.metrics;
        let now = self.clock.elapsed().as_millis() as u64;
        self.series.tick(now);
        let mut out = Vec::with_capacity(windows.len());
        for s in windows {
            if !Arc::ptr_eq(&s.model, &self.model) {
                let carried = self.scorer.set_model(&s.model.manifest)?;
                m.likelihood_keys_rescaled.inc_by(carried as u64);
                tracing::info!(from = %self.model.version, to = %s.model.version, likelihood_keys = carried, "scoring with the new model version from this window on");
                self.model = s.model.clone();
            }
            let job = &s.job;
            let w = WindowScore {
                key: &job.key,
                start_ts_ms: job.start_ts_ms,
                end_ts_ms: job.end_ts_ms,
                timestamps: &job.timestamps,
                values: &job.values,
                score: s.score,
                squared_error: &s.squared_error,
                prediction: s.prediction.as_deref(),
                expected: &s.expected,
                model_version: &s.model.version,
            };
            // A window in a maintenance or false-positive mark of its key
            // stays out of incidents (docs/feedback.md, *The daemon*).
            let mark = self
                .marks
                .as_ref()
                .and_then(|marks| suppressing(marks, &job.key, job.end_ts_ms));
            let raise = self.marks.as_ref().map_or(1.0, |marks| {
                raised(marks, &job.key, now_ms(), &self.feedback)
            });
            let d = self.scorer.decide_raised(&w, now, mark, raise);
            let suppressed = mark.filter(|_| d.anomalous.is_some());
            let manifest = &s.model.manifest;
            self.series.window(
                &w,
                &d,
                self.scorer.raised_threshold(raise),
                &manifest.feature_names,
                manifest.spec.features,
                (&job.source.topic, job.source.partition),
                now,
            );
            m.windows_scored.inc();
            if d.normalized.is_finite() {
                m.normalized_score.observe(f64::from(d.normalized));
            } else {
                m.non_finite_scores.inc();
            }
            if let Some(l) = d.likelihood.filter(|l| l.is_finite()) {
                m.anomaly_likelihood.observe(l);
            }
            let mut outputs: Vec<(Topic, Vec<u8>)> = Vec::with_capacity(3);
            if !self.kafka.scores_topic.is_empty() {
                let mut rec = self.scorer.score_record(&w, &d);
                rec.suppressed = suppressed.map(|r| r.as_str().to_string());
                outputs.push((Topic::Scores, rec.to_json()?));
            }
            if s.embedding.iter().any(|x| !x.is_finite()) {
                m.non_finite_embeddings.inc();
            }
            let emb = self.scorer.embedding_record(&w, &d, s.embedding);
            outputs.push((Topic::Embeddings, emb.to_json()?));
            if d.anomalous.is_some() {
                m.anomalies.inc();
            }
            if let Some(reason) = suppressed {
                m.anomalies_suppressed
                    .with_label_values(&[reason.as_str()])
                    .inc();
            }
            if let Some(event) = &d.incident {
                let rec = self.scorer.incident_record(
                    &job.key,
                    event,
                    Some((&w, &d, job.source.clone())),
                );
                outputs.push((Topic::Anomalies, rec.to_json()?));
                m.incident_records
                    .with_label_values(&[event.state.as_str()])
                    .inc();
            }
            let queue = Outputs {
                producer: &self.producer,
                permits: &self.output_permits,
                gauge: &m.outputs_in_flight,
            };
            let mut pending = Vec::with_capacity(outputs.len());
            for (topic, payload) in &outputs {
                let name = topic.name(&self.kafka);
                let (fut, held) = queue.enqueue(name, &s.job.key, payload).await?;
                pending.push((*topic, fut, held));
            }
            // Incidents of keys this window's decision dropped: closed with
            // it, so its offset is committed only once they are out.
            for (key, event) in self.scorer.take_evicted_incidents() {
                let rec = self.scorer.incident_record(&key, &event, None);
                let name = Topic::Anomalies.name(&self.kafka);
                let (fut, held) = queue.enqueue(name, &key, &rec.to_json()?).await?;
                pending.push((Topic::Anomalies, fut, held));
                m.incident_records
                    .with_label_values(&[event.state.as_str()])
                    .inc();
            }
            out.push(WindowDelivery {
                pending,
                holds: s.job.holds,
                input_ts: s.job.input_ts_ms,
            });
        }
        m.likelihood_keys.set(self.scorer.likelihood_keys() as i64);
        m.likelihood_errors_refused
            .inc_by(self.scorer.take_refused_likelihood_errors());
        m.open_incidents.set(self.scorer.open_incidents() as i64);
        let ev = self.scorer.take_evictions();
        for (counter, e) in [
            (&m.incident_keys_evicted, ev.incidents),
            (&m.likelihood_keys_evicted, ev.likelihood),
        ] {
            for (reason, n) in [("expired", e.expired_keys), ("capacity", e.capacity_keys)] {
                if n > 0 {
                    counter.with_label_values(&[reason]).inc_by(n);
                }
            }
        }
        // The batch is out of the reorder buffer: its permit goes back.
        drop(permit);
        m.batches_in_flight.dec();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_come_out_in_order_whatever_order_they_finish_in() {
        let mut o = InOrder::default();
        assert!(o.push(2, "b").is_empty());
        assert!(o.push(4, "d").is_empty());
        assert_eq!(o.push(1, "a"), vec!["a", "b"]);
        assert_eq!(o.waiting(), 1);
        assert_eq!(o.push(3, "c"), vec!["c", "d"]);
        assert_eq!(o.push(5, "e"), vec!["e"]);
        assert_eq!(o.waiting(), 0);
    }

    #[test]
    fn latency_never_overflows() {
        assert_eq!(latency_seconds(2_000, 500), Some(1.5));
        assert_eq!(latency_seconds(1_000, i64::MIN), None);
        assert_eq!(latency_seconds(i64::MIN, i64::MAX), None);
        assert_eq!(latency_seconds(1_000, 2_000), None);
    }
}
