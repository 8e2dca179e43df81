//! The sink: turns scored windows into output messages (embeddings,
//! anomalies, optional scores), produces them, and once the broker has
//! acknowledged every output of a window, hands the window's offset holds
//! back to the ingest loop. The anomaly decision (calibrated threshold or
//! per-key likelihood) and the alert-storm rule live here; both rely on each
//! key's windows coming in order, which [`InOrder`] restores after the
//! inference threads.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{Histogram, IntCounter};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::{Ack, Scored};
use crate::config::{AnomalyRule, AnomalySettings, KafkaSettings};
use crate::model::Manifest;
use crate::score::{KeyedLikelihood, WindowErrors};
use crate::stream::codec::{format_ts_ms, top_contributors, AnomalyRecord, EmbeddingRecord};
use crate::telemetry::Metrics;

/// Per-key state of the storm rule; only keys in an anomalous run or a
/// cool-down are stored, so memory follows the number of alerting keys.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Storm {
    consecutive: usize,
    cooldown_left: usize,
}

/// Decides whether an anomalous window is published: after
/// `min_consecutive` anomalous windows in a row, then nothing for
/// `cooldown_windows` windows of that key; counting starts again after
/// the cool-down.
pub fn storm_rule(
    state: &mut HashMap<String, Storm>,
    key: &str,
    anomalous: bool,
    cfg: &AnomalySettings,
) -> bool {
    let mut s = state.get(key).copied().unwrap_or_default();
    let publish = if s.cooldown_left > 0 {
        // A new run must start after the cool-down, not during it.
        s.cooldown_left -= 1;
        s.consecutive = 0;
        false
    } else if anomalous {
        s.consecutive += 1;
        if s.consecutive >= cfg.min_consecutive {
            s.cooldown_left = cfg.cooldown_windows;
            s.consecutive = 0;
            true
        } else {
            false
        }
    } else {
        s.consecutive = 0;
        false
    };
    if s == Storm::default() {
        state.remove(key);
    } else {
        state.insert(key.to_string(), s);
    }
    publish
}

/// Puts numbered batches (1, 2, 3, …) back in order: several inference
/// threads finish them out of order, but outputs must keep each key's
/// window order. Holds at most as many batches as run at once.
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

    /// Batches left waiting for an earlier one (a bug if any at the end).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

/// Queues one message; waits while librdkafka's queue is full (that wait
/// is back-pressure on the whole pipeline).
async fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
) -> Result<rdkafka::producer::DeliveryFuture, String> {
    loop {
        match producer.send_result(FutureRecord::to(topic).key(key).payload(payload)) {
            Ok(f) => return Ok(f),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((e, _)) => return Err(format!("producing to {topic} failed: {e}")),
        }
    }
}

/// The window's errors in scaled units, as the likelihood needs them: the
/// model's score is already scaled; its last point and forecast are raw.
fn window_errors<'a>(s: &'a Scored, m: &Manifest) -> WindowErrors<'a> {
    let f = m.spec.features;
    let scale = |raw: &[f32]| -> Vec<f32> {
        raw.iter()
            .enumerate()
            .map(|(i, v)| (v - m.scaler.offset[i % f]) * m.scaler.scale[i % f])
            .collect()
    };
    let last = s.job.values.len().saturating_sub(f);
    WindowErrors {
        reconstruction: f64::from(s.score),
        timestamps: &s.job.timestamps,
        last_point: scale(&s.job.values[last..]),
        forecast: s.prediction.as_deref().map(scale),
        values: &s.job.values,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
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
    pending: Vec<(Topic, rdkafka::producer::DeliveryFuture)>,
    holds: Vec<crate::stream::offsets::Hold>,
    input_ts: Option<i64>,
}

/// Awaits the batch's deliveries window by window; each fully acknowledged
/// window releases its holds. The first failure ends the batch (fatal).
async fn deliver(
    windows: Vec<WindowDelivery>,
    acks: mpsc::UnboundedSender<Ack>,
    metrics: Metrics,
    topics: Arc<TopicMetrics>,
) -> Result<(), String> {
    for w in windows {
        for (topic, fut) in w.pending {
            // Only topics in use get outputs, so the handles are there.
            let handles = topics.get(topic);
            let name = handles.map_or("", |h| h.0.as_str());
            match fut.await {
                Ok(Ok(_)) => {
                    if let Some((_, produced, _, latency)) = handles {
                        produced.inc();
                        if let Some(ts) = w.input_ts {
                            let ms = (now_ms() - ts).max(0) as u64;
                            latency.observe(Duration::from_millis(ms).as_secs_f64());
                        }
                    }
                }
                Ok(Err((e, _))) => {
                    if let Some((_, _, errors, _)) = handles {
                        errors.inc();
                    }
                    return Err(format!("producing to {name} failed: {e}"));
                }
                Err(_) => return Err(format!("the producer dropped a message for {name}")),
            }
        }
        metrics.windows_in_flight.dec();
        // The ingest loop may already be gone at the very end of a drain.
        let _ = acks.send(Ack(w.holds));
    }
    Ok(())
}

/// Runs until the scored-window channel closes and every delivery has
/// finished. A failed delivery is fatal (returned): its window's offsets
/// stay uncommitted, so a restart replays it.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    mut scored: mpsc::Receiver<(u64, Vec<Scored>)>,
    producer: FutureProducer,
    kafka: KafkaSettings,
    anomalies: AnomalySettings,
    mut likelihood: Option<KeyedLikelihood>,
    manifest: Arc<Manifest>,
    acks: mpsc::UnboundedSender<Ack>,
    metrics: Metrics,
) -> Result<(), String> {
    let mut storm: HashMap<String, Storm> = HashMap::new();
    let mut deliveries: JoinSet<Result<(), String>> = JoinSet::new();
    let threshold = manifest.threshold.value;
    let version = manifest.model_version.to_string();
    let (t, f) = (manifest.spec.window, manifest.spec.features);
    let mut order = InOrder::default();
    let topics = Arc::new(TopicMetrics::new(&metrics, &kafka));
    while let Some((seq, batch)) = scored.recv().await {
        // Reap finished deliveries so the set stays small; stop on failure.
        while let Some(done) = deliveries.try_join_next() {
            done.map_err(|e| e.to_string())??;
        }
        // One delivery task per batch: its windows' acknowledgements are
        // awaited in window order.
        let mut batch_deliveries: Vec<WindowDelivery> = vec![];
        for s in order.push(seq, batch).into_iter().flatten() {
            let normalized = s.score / threshold;
            metrics.windows_scored.inc();
            metrics.normalized_score.observe(normalized as f64);
            let anomaly_likelihood = likelihood.as_mut().map(|l| {
                let v = l.push(&s.job.key, window_errors(&s, &manifest), now_ms() as u64);
                metrics.anomaly_likelihood.observe(v);
                metrics.likelihood_keys.set(l.len() as i64);
                v
            });
            let anomalous = match (anomalies.rule, anomaly_likelihood) {
                (AnomalyRule::Likelihood, Some(v)) => v >= anomalies.likelihood_threshold,
                _ => normalized >= 1.0,
            };
            let job = s.job;
            let start = format_ts_ms(job.start_ts_ms);
            let end = format_ts_ms(job.end_ts_ms);
            let mut outputs: Vec<(Topic, Vec<u8>)> = vec![];
            let emb = EmbeddingRecord {
                key: job.key.clone(),
                window_start_ts: start.clone(),
                window_end_ts: end.clone(),
                model_version: version.clone(),
                embedding: s.embedding,
                score: s.score,
                normalized_score: normalized,
                anomaly_likelihood,
            };
            let emb_json = emb.to_json().map_err(|e| e.to_string())?;
            if !kafka.scores_topic.is_empty() {
                let score = serde_json::json!({
                    "key": job.key, "window_start_ts": start, "window_end_ts": end,
                    "model_version": version, "score": s.score, "normalized_score": normalized,
                    "anomaly_likelihood": anomaly_likelihood,
                });
                outputs.push((Topic::Scores, score.to_string().into_bytes()));
            }
            outputs.push((Topic::Embeddings, emb_json));
            if storm_rule(&mut storm, &job.key, anomalous, &anomalies) {
                let rec = AnomalyRecord {
                    key: job.key.clone(),
                    window_start_ts: start,
                    window_end_ts: end,
                    score: s.score,
                    threshold,
                    normalized_score: normalized,
                    anomaly_likelihood,
                    model_version: version.clone(),
                    contributors: top_contributors(
                        &s.squared_error,
                        t,
                        f,
                        &manifest.feature_names,
                        &job.timestamps,
                        anomalies.top_contributors,
                    ),
                    source: job.source.clone(),
                };
                outputs.push((Topic::Anomalies, rec.to_json().map_err(|e| e.to_string())?));
                metrics.anomalies.inc();
            } else if anomalous {
                metrics.anomalies_suppressed.inc();
            }
            // Enqueue now, in window order, so each key's outputs keep their
            // order on the topic; only the wait for acknowledgements is spawned.
            let mut pending = Vec::with_capacity(outputs.len());
            for (topic, payload) in &outputs {
                let name = topic.name(&kafka);
                pending.push((*topic, enqueue(&producer, name, &job.key, payload).await?));
            }
            batch_deliveries.push(WindowDelivery {
                pending,
                holds: job.holds,
                input_ts: job.input_ts_ms,
            });
        }
        if !batch_deliveries.is_empty() {
            let (acks, metrics, topics) = (acks.clone(), metrics.clone(), topics.clone());
            deliveries.spawn(deliver(batch_deliveries, acks, metrics, topics));
        }
    }
    while let Some(done) = deliveries.join_next().await {
        done.map_err(|e| e.to_string())??;
    }
    if order.waiting() > 0 {
        // Their windows stay unacknowledged, hence uncommitted: replayed.
        return Err(format!(
            "{} scored batches waited for an earlier batch that an inference thread never finished",
            order.waiting()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(min_consecutive: usize, cooldown_windows: usize) -> AnomalySettings {
        AnomalySettings {
            top_contributors: 3,
            min_consecutive,
            cooldown_windows,
            ..AnomalySettings::default()
        }
    }

    fn run_rule(flags: &[bool], c: &AnomalySettings) -> Vec<bool> {
        let mut state = HashMap::new();
        flags
            .iter()
            .map(|&a| storm_rule(&mut state, "k", a, c))
            .collect()
    }

    #[test]
    fn without_a_rule_every_anomalous_window_is_published() {
        let f = [false, true, true, false, true];
        assert_eq!(run_rule(&f, &cfg(1, 0)), f.to_vec());
    }

    #[test]
    fn consecutive_windows_and_cooldown() {
        // 3 in a row publish once, then 2 windows of silence.
        let f = [true, true, true, true, true, true, true, true, false, true];
        let want = [
            false, false, true, false, false, false, false, true, false, false,
        ];
        assert_eq!(run_rule(&f, &cfg(3, 2)), want.to_vec());
    }

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
    fn quiet_keys_leave_no_state() {
        let mut state = HashMap::new();
        for k in 0..1000 {
            storm_rule(&mut state, &k.to_string(), false, &cfg(2, 5));
        }
        assert!(state.is_empty());
    }
}
