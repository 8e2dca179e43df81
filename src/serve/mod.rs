//! `lstm-ae serve`: the Kafka → ONNX Runtime → Kafka daemon.
//!
//! ```text
//! Kafka ─► ingest ──(Vec<Job>, bounded)──► inference threads ─(Vec<Scored>, bounded)─► sink ─► Kafka
//!          decode, dead letters,           ONNX Runtime, one                         back in batch order,
//!          per-key windows, batching       session each                              outputs, storm rule
//!                                                                                        │
//!          offsets ◄──────────────────────── acks (holds released on delivery) ────────┘
//! ```
//!
//! Back-pressure: both channels are bounded, so a slow model or broker
//! blocks the ingest loop, which stops fetching. The acknowledgement channel
//! is unbounded on purpose: its length is bounded by the windows in flight,
//! and blocking it could deadlock the loop that drains it.
//!
//! Delivery is at-least-once for windows: the committed offset of a
//! partition never passes a message whose outputs are not acknowledged, nor
//! a point still in some key's window buffer (see [`crate::stream`]). After a
//! crash, replay rebuilds the buffers and re-scores; windows may repeat.

mod backend;
pub mod demo;
pub mod kafka;
pub mod run;
mod sink;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::config::{AnomalyRule, Settings};
use crate::infer::{Backend, OnnxBackend};
use crate::model::Bundle;
use crate::score::KeyedLikelihood;
use crate::stream::batcher::Batcher;
use crate::stream::codec::{self, DeadLetterHeaders, Decoded, Format, SourceRef};
use crate::stream::offsets::{Hold, OffsetTracker};
use crate::stream::windower::{Origin, PointStatus, Windower, WindowerConfig};
use crate::telemetry::http::Health;
use crate::telemetry::Metrics;
pub use kafka::RebalanceEvent;

/// One window on its way through the pipeline.
pub struct Job {
    pub key: String,
    pub start_ts_ms: i64,
    pub end_ts_ms: i64,
    /// T·F raw values, row-major.
    pub values: Vec<f32>,
    pub timestamps: Vec<i64>,
    /// Offsets to keep uncommitted until every output is acknowledged.
    pub holds: Vec<Hold>,
    /// The message that completed the window.
    pub source: SourceRef,
    /// Its Kafka timestamp, for end-to-end latency.
    pub input_ts_ms: Option<i64>,
}

/// A window with the model's outputs.
pub struct Scored {
    pub job: Job,
    pub score: f32,
    pub embedding: Vec<f32>,
    pub squared_error: Vec<f32>,
    /// `P × F` raw forecast of the next points, when the model predicts.
    pub prediction: Option<Vec<f32>>,
}

/// Holds to release: every output of their message(s) is acknowledged.
pub struct Ack(pub Vec<Hold>);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Bundle(#[from] crate::model::BundleError),
    #[error(transparent)]
    Store(#[from] crate::model::store::StoreError),
    #[error(transparent)]
    Infer(#[from] crate::infer::InferError),
    #[error("model {0} has no reconstruction decoder, so no anomaly score: serve a composite or reconstruct model")]
    NoScore(String),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("metrics listener on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Pipeline(String),
}

/// What a run did, for the demo's summary and the logs.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub messages: u64,
    pub dead_letters: u64,
    pub windows: u64,
    pub drained: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Partition ids for the offset tracker and the windower, which know only
/// `i32` partitions: one id per (topic, partition) pair.
#[derive(Default)]
struct PartitionIds {
    ids: HashMap<(String, i32), i32>,
    names: Vec<(String, i32)>,
}

impl PartitionIds {
    fn id(&mut self, topic: &str, partition: i32) -> i32 {
        if let Some(&id) = self.ids.get(&(topic.to_string(), partition)) {
            return id;
        }
        let id = self.names.len() as i32;
        self.ids.insert((topic.to_string(), partition), id);
        self.names.push((topic.to_string(), partition));
        id
    }
}

/// Runs the daemon until `shutdown` resolves, then drains. The HTTP
/// endpoints run on `listener` when given.
pub async fn run(
    settings: Settings,
    metrics: Metrics,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Summary, ServeError> {
    // A store (follow its `current` version) or a fixed bundle folder.
    let dir = crate::model::store::resolve(std::path::Path::new(&settings.serve.model))?;
    let bundle = Bundle::open(&dir)?;
    let m = &bundle.manifest;
    if !m.spec.mode.has_reconstruction() {
        return Err(ServeError::NoScore(m.model_id.clone()));
    }
    let workers = match settings.serve.inference_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut opts = settings.runtime.backend_options();
    if workers > 1 && opts.intra_threads == 0 {
        opts.intra_threads = 1;
    }
    let mut backends = Vec::with_capacity(workers);
    for _ in 0..workers {
        backends.push(OnnxBackend::load_from_memory(&bundle.onnx, &opts)?);
    }
    let spec = m.spec.clone();
    metrics
        .model_info
        .with_label_values(&[
            m.model_id.as_str(),
            &m.model_version.to_string(),
            &spec.window.to_string(),
            &spec.features.to_string(),
            &spec.hidden.to_string(),
            &format!("{:?}", spec.mode).to_lowercase(),
        ])
        .set(1.0);
    metrics
        .max_series_keys
        .set(i64::try_from(settings.windowing.max_keys).unwrap_or(i64::MAX));
    health
        .model_loaded
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(model = %m.model_id, version = m.model_version, threshold = m.threshold.value, "model loaded");

    let k = &settings.kafka;
    let events = Arc::new(Mutex::new(vec![]));
    let consumer: StreamConsumer<kafka::Context> =
        kafka::consumer_config(k).create_with_context(kafka::Context {
            events: events.clone(),
            metrics: metrics.clone(),
        })?;
    let topics: Vec<&str> = k.inputs.iter().map(|i| i.topic.as_str()).collect();
    consumer.subscribe(&topics)?;
    let formats: HashMap<String, Format> = k
        .inputs
        .iter()
        .map(|i| (i.topic.clone(), i.format))
        .collect();
    let producer: FutureProducer = kafka::producer_config(k).create()?;

    let cap = settings.serve.max_batches_in_flight;
    let (batch_tx, batch_rx) = mpsc::channel::<(u64, Vec<Job>)>(cap);
    let batch_rx = Arc::new(Mutex::new(batch_rx));
    let (scored_tx, scored_rx) = mpsc::channel::<(u64, Vec<Scored>)>(cap + workers);
    let (ack_tx, mut ack_rx) = mpsc::unbounded_channel::<Ack>();
    let dlq_acks = ack_tx.clone();
    let mut dead_letters: tokio::task::JoinSet<Result<(), String>> = tokio::task::JoinSet::new();
    let (t, f) = (spec.window, spec.features);
    let mut inference = Vec::with_capacity(workers);
    for (i, b) in backends.into_iter().enumerate() {
        let boxed: Box<dyn Backend> = Box::new(b);
        let (rx, tx, m) = (batch_rx.clone(), scored_tx.clone(), metrics.clone());
        inference.push(
            std::thread::Builder::new()
                .name(format!("lstm-ae-inference-{i}"))
                .spawn(move || backend::run(boxed, t, f, rx, tx, m))
                .map_err(|e| {
                    ServeError::Pipeline(format!("cannot start an inference thread: {e}"))
                })?,
        );
    }
    drop(scored_tx);
    tracing::info!(
        threads = workers,
        intra_threads = opts.intra_threads,
        "inference sessions ready"
    );
    let manifest = Arc::new(bundle.manifest.clone());
    let likelihood = match settings.anomalies.rule {
        AnomalyRule::Threshold => None,
        AnomalyRule::Likelihood => Some(
            KeyedLikelihood::new(
                settings.postprocess.clone(),
                spec.target_horizon(),
                f,
                settings.windowing.max_keys,
                settings.windowing.key_ttl_ms,
            )
            .map_err(|e| ServeError::Pipeline(e.to_string()))?,
        ),
    };
    let mut sink = tokio::spawn(sink::run(
        scored_rx,
        producer.clone(),
        k.clone(),
        settings.anomalies.clone(),
        likelihood,
        manifest,
        ack_tx,
        metrics.clone(),
    ));

    let mut windower = Windower::new(WindowerConfig {
        window: t,
        stride: settings.windowing.stride,
        features: f,
        key_ttl_ms: settings.windowing.key_ttl_ms,
        max_keys: settings.windowing.max_keys,
    })
    .map_err(|e| ServeError::Pipeline(e.to_string()))?;
    let mut batcher: Batcher<Job> =
        Batcher::new(settings.serve.max_batch, settings.serve.max_wait_ms)
            .map_err(|e| ServeError::Pipeline(e.to_string()))?;
    let mut tracker = OffsetTracker::new();
    let mut ids = PartitionIds::default();
    let mut committed: HashMap<i32, i64> = HashMap::new();
    let mut summary = Summary::default();
    let mut commit_tick =
        tokio::time::interval(Duration::from_millis(k.commit_interval_ms.max(10)));
    let mut evict_tick = tokio::time::interval(Duration::from_secs(1));
    tokio::pin!(shutdown);
    let mut failure: Option<String> = None;

    // Batches are numbered so the sink can put them back in order after
    // the inference threads.
    let mut batch_seq: u64 = 0;
    // Sends a batch to inference; waiting here is the back-pressure.
    macro_rules! send_batch {
        ($b:expr) => {
            batch_seq += 1;
            if batch_tx.send((batch_seq, $b)).await.is_err() {
                failure = Some("an inference thread stopped".into());
                break;
            }
        };
    }

    loop {
        apply_rebalances(
            &events,
            &mut ids,
            &mut tracker,
            &mut windower,
            &health,
            &metrics,
        );
        let deadline = batcher.deadline();
        let sleep = tokio::time::sleep(Duration::from_millis(
            deadline
                .map(|d| (d - now_ms()).max(0) as u64)
                .unwrap_or(3_600_000),
        ));
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            r = &mut sink => {
                failure = Some(match r {
                    Ok(Ok(())) => "the sink stopped".into(),
                    Ok(Err(e)) => e,
                    Err(e) => e.to_string(),
                });
                break;
            }
            Some(Ack(holds)) = ack_rx.recv() => {
                for h in holds {
                    tracker.release(h);
                }
            }
            Some(done) = dead_letters.join_next(), if !dead_letters.is_empty() => {
                if let Ok(Err(e)) = done {
                    failure = Some(e);
                    break;
                }
            }
            _ = commit_tick.tick() => {
                commit(&consumer, &tracker, &windower, &ids, &mut committed, CommitMode::Async, &metrics);
            }
            _ = evict_tick.tick() => {
                windower.evict_idle(now_ms());
                metrics.live_series_keys.set(windower.live_keys() as i64);
            }
            _ = sleep, if deadline.is_some() => {
                if let Some(b) = batcher.poll(now_ms()) {
                    send_batch!(b);
                }
            }
            msg = consumer.recv() => {
                let msg = match msg {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(error = %e, "kafka consumer error");
                        continue;
                    }
                };
                summary.messages += 1;
                let topic = msg.topic().to_string();
                metrics.messages_consumed.with_label_values(&[topic.as_str()]).inc();
                let pid = ids.id(&topic, msg.partition());
                let hold = tracker.consumed(pid, msg.offset());
                let format = formats.get(&topic).copied().unwrap_or(Format::Points);
                let source = SourceRef { topic: topic.clone(), partition: msg.partition(), offset: msg.offset() };
                let input_ts = msg.timestamp().to_millis();
                match codec::decode(format, msg.key(), msg.payload(), f, t, k.max_message_bytes) {
                    Err(e) => {
                        summary.dead_letters += 1;
                        metrics.dead_letters.with_label_values(&[e.kind()]).inc();
                        let headers = DeadLetterHeaders::for_codec_error(&e, &topic, msg.partition(), msg.offset());
                        tracing::debug!(error = %e, topic, partition = msg.partition(), offset = msg.offset(), "dead letter");
                        dead_letters.spawn(dead_letter(
                            producer.clone(),
                            k.dead_letter_topic.clone(),
                            DeadLetter::from(&msg),
                            headers,
                            hold,
                            dlq_acks.clone(),
                        ));
                    }
                    Ok(Decoded::Window { key, end_ts_ms, start_ts_ms, values }) => {
                        let job = Job {
                            timestamps: vec![],
                            start_ts_ms: start_ts_ms.unwrap_or(end_ts_ms),
                            key, end_ts_ms, values,
                            holds: vec![hold], source, input_ts_ms: input_ts,
                        };
                        metrics.windows_in_flight.inc();
                        summary.windows += 1;
                        if let Some(b) = batcher.push(job, now_ms()) {
                            send_batch!(b);
                        }
                    }
                    Ok(Decoded::Point { key, ts_ms, values }) => {
                        let out = windower.push(&key, ts_ms, &values, Origin { partition: pid, offset: msg.offset() }, now_ms());
                        if let PointStatus::Rejected(r) = out.status {
                            metrics.points_rejected.with_label_values(&[r.kind()]).inc();
                        }
                        let mut job = None;
                        if let Some(w) = out.window {
                            let holds: Vec<Hold> = w.holds.iter().filter_map(|o| tracker.hold(o.partition, o.offset)).collect();
                            job = Some(Job {
                                key: w.key, start_ts_ms: w.start_ts_ms, end_ts_ms: w.end_ts_ms,
                                values: w.values, timestamps: w.timestamps, holds, source, input_ts_ms: input_ts,
                            });
                        }
                        // The window (if any) holds what it needs; the buffer
                        // holds the rest: the message's own hold can go.
                        tracker.release(hold);
                        metrics.live_series_keys.set(windower.live_keys() as i64);
                        if let Some(job) = job {
                            metrics.windows_in_flight.inc();
                            summary.windows += 1;
                            if let Some(b) = batcher.push(job, now_ms()) {
                                send_batch!(b);
                            }
                        }
                    }
                }
            }
        }
    }
    // Drain: stop fetching, score what is batched, wait for acks, commit.
    let drain_deadline = Instant::now() + Duration::from_millis(settings.serve.drain_timeout_ms);
    if failure.is_none() {
        if let Some(b) = batcher.flush() {
            let _ = batch_tx.send((batch_seq + 1, b)).await;
        }
    }
    drop(batch_tx);
    let mut drained = false;
    if failure.is_none() {
        loop {
            let left = drain_deadline.saturating_duration_since(Instant::now());
            tokio::select! {
                r = &mut sink => {
                    match r {
                        Ok(Ok(())) => drained = true,
                        Ok(Err(e)) => failure = Some(e),
                        Err(e) => failure = Some(e.to_string()),
                    }
                    break;
                }
                Some(Ack(holds)) = ack_rx.recv() => for h in holds { tracker.release(h); },
                _ = tokio::time::sleep(left) => {
                    tracing::warn!(timeout_ms = settings.serve.drain_timeout_ms, "drain timeout: outputs still unacknowledged stay uncommitted");
                    break;
                }
            }
        }
        while !dead_letters.is_empty() {
            let left = drain_deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, dead_letters.join_next()).await {
                Ok(Some(Ok(Err(e)))) => {
                    failure.get_or_insert(e);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        while let Ok(Ack(holds)) = ack_rx.try_recv() {
            for h in holds {
                tracker.release(h);
            }
        }
    }
    commit(
        &consumer,
        &tracker,
        &windower,
        &ids,
        &mut committed,
        CommitMode::Sync,
        &metrics,
    );
    let _ = producer.flush(Timeout::After(Duration::from_secs(5)));
    for worker in inference {
        if let Ok(Err(e)) = worker.join() {
            failure.get_or_insert(e.to_string());
        }
    }
    summary.drained = drained;
    match failure {
        Some(e) => Err(ServeError::Pipeline(e)),
        None => Ok(summary),
    }
}

/// What a dead letter keeps of its input message.
struct DeadLetter {
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

impl From<&BorrowedMessage<'_>> for DeadLetter {
    fn from(m: &BorrowedMessage<'_>) -> Self {
        let headers = m
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        DeadLetter {
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers,
        }
    }
}

/// Produces the original key, bytes and headers plus the reason headers;
/// releases the message's hold once the broker has it.
async fn dead_letter(
    producer: FutureProducer,
    topic: String,
    msg: DeadLetter,
    reason: DeadLetterHeaders,
    hold: Hold,
    acks: mpsc::UnboundedSender<Ack>,
) -> Result<(), String> {
    let mut headers = OwnedHeaders::new();
    for (k, v) in &msg.headers {
        headers = headers.insert(Header {
            key: k,
            value: v.as_deref(),
        });
    }
    for (k, v) in reason.pairs() {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).headers(headers);
    if let Some(k) = &msg.key {
        rec = rec.key(k.as_slice());
    }
    if let Some(p) = &msg.payload {
        rec = rec.payload(p.as_slice());
    }
    match producer.send(rec, Timeout::Never).await {
        Ok(_) => {
            let _ = acks.send(Ack(vec![hold]));
            Ok(())
        }
        Err((e, _)) => Err(format!(
            "producing to the dead-letter topic {topic} failed: {e}"
        )),
    }
}

/// Applies queued partition assignment changes.
fn apply_rebalances(
    events: &Mutex<Vec<RebalanceEvent>>,
    ids: &mut PartitionIds,
    tracker: &mut OffsetTracker,
    windower: &mut Windower,
    health: &Health,
    metrics: &Metrics,
) {
    let Ok(mut ev) = events.lock() else { return };
    for e in ev.drain(..) {
        match e {
            RebalanceEvent::Assigned(parts) => {
                tracing::info!(partitions = ?parts, "partitions assigned");
                if !parts.is_empty() {
                    health
                        .partitions_assigned
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            RebalanceEvent::Revoked(parts) => {
                tracing::info!(partitions = ?parts, "partitions revoked");
                for (topic, p) in parts {
                    let id = ids.id(&topic, p);
                    tracker.forget(id);
                    windower.forget_partition(id);
                    // Another consumer reports this partition's lag now; a
                    // stale value here would double it in dashboards and alerts.
                    let _ = metrics
                        .consumer_lag
                        .remove_label_values(&[topic.as_str(), &p.to_string()]);
                }
                health
                    .partitions_assigned
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// Commits, per partition, the lowest offset still needed (see the module docs).
fn commit(
    consumer: &StreamConsumer<kafka::Context>,
    tracker: &OffsetTracker,
    windower: &Windower,
    ids: &PartitionIds,
    committed: &mut HashMap<i32, i64>,
    mode: CommitMode,
    metrics: &Metrics,
) {
    let mut tpl = TopicPartitionList::new();
    let pids: Vec<i32> = tracker.partitions().collect();
    for pid in pids {
        let Some(offset) = tracker.committable(pid, windower.min_held_offset(pid)) else {
            continue;
        };
        if committed.get(&pid) == Some(&offset) {
            continue;
        }
        let Some((topic, partition)) = ids.names.get(pid as usize) else {
            continue;
        };
        if tpl
            .add_partition_offset(topic, *partition, Offset::Offset(offset))
            .is_ok()
        {
            committed.insert(pid, offset);
        }
    }
    if tpl.count() == 0 {
        return;
    }
    match consumer.commit(&tpl, mode) {
        Ok(()) => metrics.offsets_committed.inc(),
        Err(e) => {
            tracing::warn!(error = %e, "offset commit failed; it is retried at the next interval")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revoked_partition_loses_its_lag_series() {
        let metrics = Metrics::new();
        for p in ["0", "1"] {
            metrics.consumer_lag.with_label_values(&["in", p]).set(42);
        }
        let events = Mutex::new(vec![RebalanceEvent::Revoked(vec![("in".to_string(), 1)])]);
        let mut windower = Windower::new(WindowerConfig::new(4, 1)).unwrap();
        apply_rebalances(
            &events,
            &mut PartitionIds::default(),
            &mut OffsetTracker::new(),
            &mut windower,
            &Health::default(),
            &metrics,
        );
        let lag: Vec<String> = metrics
            .registry
            .gather()
            .iter()
            .filter(|f| f.name() == "lstm_ae_consumer_lag_messages")
            .flat_map(|f| f.get_metric().iter())
            .map(|m| {
                m.get_label()
                    .iter()
                    .map(|l| format!("{}={}", l.name(), l.value()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        assert_eq!(lag, vec!["partition=0,topic=in".to_string()]);
    }
}
