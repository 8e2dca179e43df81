//! The daemon's loop: wires the stages (see the module docs of
//! [`super`]), then moves messages, batches, dead letters, acknowledgements,
//! commits and signals between them until shutdown or a failure, and drains.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Header;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::Message;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::backend::{Batch, Inference, ModelSlot, Served};
use super::error::{PipelineError, ServeError};
use super::feedback;
use super::ingest::{self, DeadLetter, Ingest, IngestConfig, Job, MessageView};
use super::model::Model;
use super::reload;
use super::remote_write::{RemoteWriteSettings, RemoteWriter};
use super::series::SeriesMetricsSettings;
use super::series_outputs::SeriesOutputs;
use super::sink::{self, Ack};
use crate::config::{
    AnomalySettings, KafkaSettings, RuntimeSettings, ServeSettings, WindowingSettings,
};
use crate::feedback::FeedbackSettings;
use crate::kafka::consumer::{self, Committer, Context, DeadLetterCopy};
use crate::kafka::{self, Client};
use crate::score::{IncidentConfig, PostprocessConfig, Scorer, ScorerConfig};
use crate::stream::codec::Format;
use crate::stream::windower::WindowerConfig;
use crate::telemetry::http::Health;
use crate::telemetry::Metrics;

/// The settings the daemon reads: its slice of the crate's settings (the
/// `serve` command builds it from them).
#[derive(Debug, Clone, Default)]
pub struct DaemonConfig {
    /// Input and output topics, group membership, the clients' properties.
    pub kafka: KafkaSettings,
    /// The model, batching, inference threads, the metrics endpoint, drain.
    pub serve: ServeSettings,
    /// Per-key window buffers: stride, key TTL, key cap.
    pub windowing: WindowingSettings,
    /// The anomaly decision and the incidents.
    pub anomalies: AnomalySettings,
    /// Raw window errors into anomaly scores.
    pub postprocess: PostprocessConfig,
    /// ONNX Runtime, for the model of `serve.model`.
    pub runtime: RuntimeSettings,
    /// The opt-in per-series gauges on `/metrics`.
    pub series_metrics: SeriesMetricsSettings,
    /// The remote-write sink of the per-series samples (off without a URL).
    pub remote_write: RemoteWriteSettings,
    /// The bound and start-up timeout of the operator's marks.
    pub feedback: FeedbackSettings,
}

/// What a run did, for the demo's summary and the logs.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub messages: u64,
    pub dead_letters: u64,
    pub windows: u64,
    pub drained: bool,
}

/// Runs the daemon with `model` until `shutdown` resolves, then drains.
pub(super) async fn run(
    config: DaemonConfig,
    model: Model,
    metrics: Metrics,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<Summary, ServeError> {
    let m = &model.manifest;
    if !m.spec.mode.has_reconstruction() {
        return Err(ServeError::NoScore(m.model_id.clone()));
    }
    let spec = m.spec.clone();
    let (t, f) = (spec.window, spec.features);
    let k = &config.kafka;
    let sv = &config.serve;
    let workers = crate::threads_or_cores(sv.inference_threads);

    // Inference threads first: a model that does not load stops here.
    let permits = sv.max_batches_in_flight.max(1) + workers;
    let batch_permits = Arc::new(Semaphore::new(permits));
    let (batch_tx, batch_rx) = mpsc::channel::<Batch>(permits);
    let (scored_tx, scored_rx) = mpsc::channel(permits);
    let served = Served::new(m.clone());
    let slot = ModelSlot::new(model.factory.clone(), served.clone());
    let inference = Inference::start(
        workers,
        slot.clone(),
        (t, f),
        sv.max_batch,
        batch_rx,
        scored_tx,
        metrics.clone(),
    )
    .map_err(|e| match e {
        PipelineError::Inference { source, .. } => ServeError::Infer(source),
        e => ServeError::Pipeline(e),
    })?;
    reload::set_model_info(&metrics, m);
    let reloader = model.reload.clone().map(|r| {
        reload::Reloader::new(
            r,
            slot,
            metrics.clone(),
            Duration::from_millis(sv.model_check_timeout_ms),
        )
    });
    metrics
        .max_series_keys
        .set(i64::try_from(config.windowing.max_keys).unwrap_or(i64::MAX));
    health.model_loaded.store(true, Ordering::Relaxed);
    tracing::info!(model = %m.model_id, version = m.model_version, threshold = m.threshold.value, threads = workers, "model loaded");

    let events: ingest::EventQueue = Arc::default();
    let consumer: Arc<StreamConsumer<Context>> = Arc::new(
        kafka::config(k, Client::DaemonConsumer).create_with_context(Context {
            events: events.clone(),
            metrics: metrics.clone(),
        })?,
    );
    let committer = Committer::start(consumer.clone(), events.clone(), metrics.clone())
        .map_err(PipelineError::CommitThread)?;
    let topics: Vec<&str> = k.inputs.iter().map(|i| i.topic.as_str()).collect();
    consumer.subscribe(&topics)?;
    let producer: FutureProducer = kafka::config(k, Client::DaemonProducer).create()?;
    // Before the first window: the operator's marks, read whole.
    let (marks, feedback) = feedback::start(k, &config.feedback, producer.clone(), metrics.clone())
        .await?
        .unzip();
    let w = &config.windowing;
    let ingest = Ingest::new(
        IngestConfig {
            formats: k
                .inputs
                .iter()
                .map(|i| (i.topic.clone(), i.format))
                .collect::<HashMap<String, Format>>(),
            windower: WindowerConfig {
                window: t,
                stride: w.stride,
                features: f,
                key_ttl_ms: w.key_ttl_ms,
                max_keys: w.max_keys,
                max_gap_steps: w.max_gap_steps,
                key_move_after: w.key_move_after,
            },
            max_batch: sv.max_batch,
            max_wait_ms: sv.max_wait_ms,
            max_message_bytes: k.max_message_bytes,
        },
        events,
        metrics.clone(),
    )
    .map_err(PipelineError::from)?;
    let a = &config.anomalies;
    let scorer = Scorer::new(
        ScorerConfig {
            rule: a.rule,
            likelihood_threshold: a.likelihood_threshold,
            top_contributors: a.top_contributors,
            incidents: IncidentConfig {
                close_after: a.close_after,
                update_every: a.update_every,
            },
            max_keys: w.max_keys,
            key_ttl_ms: w.key_ttl_ms,
            postprocess: config.postprocess.clone(),
            track_likelihood: false,
        },
        m,
    )
    .map_err(PipelineError::from)?;
    // Last before the stages run: nothing can fail after the remote writer starts.
    let series = SeriesOutputs::start(
        &config.series_metrics,
        &config.remote_write,
        ingest.revoked(),
        &metrics,
    )?;
    let remote_writer = series.writer();
    let clock = Instant::now();
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<Ack>();
    let sink = tokio::spawn(
        sink::Sink {
            producer: producer.clone(),
            kafka: k.clone(),
            scorer,
            model: served,
            acks: ack_tx.clone(),
            metrics: metrics.clone(),
            clock,
            series,
            marks,
            output_permits: Arc::new(Semaphore::new(sv.max_outputs_in_flight.max(1))),
            feedback: config.feedback.clone(),
        }
        .run(scored_rx),
    );
    let mut pipeline = Pipeline {
        consumer,
        committer,
        producer,
        ingest,
        batch_tx: Some(batch_tx),
        batch_permits,
        dead_letter_permits: Arc::new(Semaphore::new(sv.max_dead_letters_in_flight.max(1))),
        dead_letters: tokio::task::JoinSet::new(),
        acks: ack_tx,
        ack_rx,
        sink,
        inference,
        health,
        metrics,
        config: config.clone(),
        clock,
        seq: 0,
        summary: Summary::default(),
        pending_at_drain: None,
        reloader,
        hangup: reload::Hangup::new(),
        remote_writer,
        _feedback: feedback,
    };
    let failure = pipeline.consume(shutdown).await;
    pipeline.drain(failure).await
}

/// The running pipeline as the loop sees it.
struct Pipeline {
    consumer: Arc<StreamConsumer<Context>>,
    committer: Committer,
    producer: FutureProducer,
    ingest: Ingest,
    /// `None` once closed (drain).
    batch_tx: Option<mpsc::Sender<Batch>>,
    batch_permits: Arc<Semaphore>,
    dead_letter_permits: Arc<Semaphore>,
    dead_letters: tokio::task::JoinSet<Result<(), PipelineError>>,
    acks: mpsc::UnboundedSender<Ack>,
    ack_rx: mpsc::UnboundedReceiver<Ack>,
    sink: tokio::task::JoinHandle<Result<(), PipelineError>>,
    inference: Inference,
    health: Arc<Health>,
    metrics: Metrics,
    config: DaemonConfig,
    clock: Instant,
    seq: u64,
    summary: Summary,
    /// A batch that waited for a permit when shutdown came.
    pending_at_drain: Option<Vec<Job>>,
    /// Hot reload of new model versions (none: a fixed model).
    reloader: Option<reload::Reloader>,
    hangup: reload::Hangup,
    /// Sends the per-series samples; shut down by the drain.
    remote_writer: Option<RemoteWriter>,
    /// Follows the feedback topic until the pipeline is dropped.
    _feedback: Option<feedback::Follower>,
}

/// Work the loop could not hand on yet for want of a permit; while there is
/// some, no message is consumed.
enum Pending {
    Batch(Vec<Job>),
    DeadLetter(DeadLetterCopy, DeadLetter),
}

impl Pipeline {
    /// Monotonic milliseconds since the start.
    fn now(&self) -> i64 {
        self.clock.elapsed().as_millis() as i64
    }

    fn send_batch(
        &mut self,
        jobs: Vec<Job>,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), PipelineError> {
        self.seq += 1;
        self.summary.windows += jobs.len() as u64;
        self.metrics.batches_in_flight.inc();
        let batch = Batch {
            seq: self.seq,
            jobs,
            permit,
        };
        // A permit is a free slot in the channel, so only a closed channel fails.
        match &self.batch_tx {
            Some(tx) => tx
                .try_send(batch)
                .map_err(|_| PipelineError::InferenceStopped),
            None => Err(PipelineError::InferenceStopped),
        }
    }

    fn send_dead_letter(
        &mut self,
        copy: DeadLetterCopy,
        dl: DeadLetter,
        permit: OwnedSemaphorePermit,
    ) {
        self.summary.dead_letters += 1;
        self.metrics.dead_letters_in_flight.inc();
        let (producer, topic, acks, metrics) = (
            self.producer.clone(),
            self.config.kafka.dead_letter_topic.clone(),
            self.acks.clone(),
            self.metrics.clone(),
        );
        self.dead_letters.spawn(async move {
            let r = dead_letter(&producer, &topic, copy, dl, &acks).await;
            metrics.dead_letters_in_flight.dec();
            drop(permit);
            r
        });
    }

    /// The pending windows as a batch, before it is full or due, when every
    /// inference thread waits for work (see "Batching" above).
    fn early_batch(&mut self) -> Option<Pending> {
        if self.inference.is_idle() {
            self.ingest.flush().map(Pending::Batch)
        } else {
            None
        }
    }

    /// Hands on `p` if a permit is free; else keeps it pending.
    fn hand_on(&mut self, p: Pending) -> Result<Option<Pending>, PipelineError> {
        match p {
            Pending::Batch(jobs) => match self.batch_permits.clone().try_acquire_owned() {
                Ok(permit) => self.send_batch(jobs, permit).map(|()| None),
                Err(_) => Ok(Some(Pending::Batch(jobs))),
            },
            Pending::DeadLetter(copy, dl) => {
                match self.dead_letter_permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        self.send_dead_letter(copy, dl, permit);
                        Ok(None)
                    }
                    Err(_) => Ok(Some(Pending::DeadLetter(copy, dl))),
                }
            }
        }
    }

    /// An asynchronous commit, on the commit thread; its result comes back
    /// as an event.
    fn commit(&mut self) {
        let offsets = self.ingest.offsets_to_commit(false);
        if offsets.is_empty() {
            return;
        }
        if self.committer.commit(offsets) {
            self.metrics.offsets_committed.inc();
        } else {
            self.ingest.commit_failed();
        }
    }

    /// The drain's synchronous commit, waited for until `deadline` at most:
    /// with the broker gone librdkafka can block far longer, and the
    /// process must end by the drain timeout. It runs on a thread of its
    /// own that is left behind if it does not answer in time (the offsets
    /// then stay uncommitted and their windows are replayed).
    async fn final_commit(&mut self, deadline: Instant) {
        let offsets = self.ingest.offsets_to_commit(true);
        if offsets.is_empty() {
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (consumer, list) = (self.consumer.clone(), consumer::list(&offsets));
        let spawned = std::thread::Builder::new()
            .name("lstm-ae-final-commit".into())
            .spawn(move || {
                let _ = tx.send(consumer.commit(&list, CommitMode::Sync));
            });
        if spawned.is_err() {
            tracing::warn!(
                "cannot start the final commit: the uncommitted tail is replayed after the restart"
            );
            return;
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Ok(()))) => {
                self.metrics.offsets_committed.inc();
                self.ingest.committed(&offsets);
            }
            Ok(Ok(Err(e))) => {
                self.metrics.commit_failures.inc();
                tracing::warn!(error = %e, "the final offset commit failed: the uncommitted tail is replayed after the restart");
            }
            Ok(Err(_)) | Err(_) => tracing::warn!(
                "the final offset commit was not answered by the drain deadline: the uncommitted tail is replayed after the restart"
            ),
        }
    }

    fn update_health(&self) {
        let stalled = self
            .inference
            .stalled(Duration::from_millis(self.config.serve.inference_stall_ms));
        self.metrics.inference_stalled.set(i64::from(stalled));
        self.health
            .inference_stalled
            .store(stalled, Ordering::Relaxed);
        self.health
            .partitions_assigned
            .store(self.ingest.assigned(), Ordering::Relaxed);
    }

    /// Consumes until `shutdown` or a failure (returned).
    async fn consume(
        &mut self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Option<PipelineError> {
        let k = &self.config.kafka;
        let mut commit_tick =
            tokio::time::interval(Duration::from_millis(k.commit_interval_ms.max(10)));
        let mut house_tick = tokio::time::interval(Duration::from_millis(250));
        let poll_ms = self.config.serve.model_poll_ms;
        let polls = poll_ms > 0 && self.reloader.as_ref().is_some_and(|r| r.polls());
        let mut model_tick = tokio::time::interval(Duration::from_millis(poll_ms.max(100)));
        tokio::pin!(shutdown);
        let mut pending: Option<Pending> = None;
        loop {
            // While work waits for a permit nothing is consumed: the key TTL
            // stands still (`Ingest::set_blocked`).
            let now = self.now();
            self.ingest.set_blocked(pending.is_some(), now);
            let due = self.ingest.deadline();
            let wake = self.clock + Duration::from_millis(due.unwrap_or(0).max(0) as u64);
            let waiting_batch = matches!(pending, Some(Pending::Batch(_)));
            let waiting_dl = matches!(pending, Some(Pending::DeadLetter(..)));
            let step: Result<(), PipelineError> = tokio::select! {
                biased;
                _ = &mut shutdown => {
                    if let Some(Pending::Batch(jobs)) = pending.take() {
                        // Sent by the drain if a permit frees in time.
                        self.pending_at_drain = Some(jobs);
                    }
                    return None;
                }
                r = &mut self.sink => {
                    return Some(match r {
                        Ok(Ok(())) => PipelineError::SinkStopped,
                        Ok(Err(e)) => e,
                        Err(e) => PipelineError::SinkTask(e),
                    });
                }
                Some(Ack(holds)) = self.ack_rx.recv() => {
                    self.ingest.release(holds);
                    // A batch was scored: its thread may be idle now.
                    let early = if pending.is_none() { self.early_batch() } else { None };
                    match early {
                        Some(p) => self.hand_on(p).map(|p| pending = p),
                        None => Ok(()),
                    }
                }
                Some(done) = self.dead_letters.join_next(), if !self.dead_letters.is_empty() => {
                    done.map_err(PipelineError::SinkTask).and_then(|r| r)
                }
                _ = commit_tick.tick() => {
                    self.commit();
                    Ok(())
                }
                _ = house_tick.tick() => {
                    let now = self.now();
                    self.ingest.evict_idle(now);
                    self.update_health();
                    if let Some(r) = self.reloader.as_mut() {
                        r.refresh();
                    }
                    Ok(())
                }
                _ = model_tick.tick(), if polls => {
                    if let Some(r) = self.reloader.as_mut() {
                        r.poll();
                    }
                    Ok(())
                }
                () = self.hangup.recv() => {
                    match self.reloader.as_mut() {
                        Some(r) => r.hangup(),
                        None => tracing::warn!("SIGHUP: this model cannot be reloaded (given by the caller)"),
                    }
                    Ok(())
                }
                done = reload::finished(self.reloader.as_mut()) => {
                    if let Some(r) = self.reloader.as_mut() {
                        r.finish(done);
                    }
                    Ok(())
                }
                permit = self.batch_permits.clone().acquire_owned(), if waiting_batch => {
                    match (pending.take(), permit) {
                        (Some(Pending::Batch(jobs)), Ok(permit)) => self.send_batch(jobs, permit),
                        _ => Err(PipelineError::InferenceStopped),
                    }
                }
                permit = self.dead_letter_permits.clone().acquire_owned(), if waiting_dl => {
                    if let (Some(Pending::DeadLetter(copy, dl)), Ok(permit)) = (pending.take(), permit) {
                        self.send_dead_letter(copy, dl, permit);
                    }
                    Ok(())
                }
                _ = tokio::time::sleep_until(wake), if pending.is_none() && due.is_some() => {
                    let now = self.now();
                    match self.ingest.poll(now) {
                        Some(jobs) => self.hand_on(Pending::Batch(jobs)).map(|p| pending = p),
                        None => Ok(()),
                    }
                }
                msg = self.consumer.recv(), if pending.is_none() => {
                    match msg {
                        Err(e) => {
                            tracing::warn!(error = %e, "kafka consumer error");
                            Ok(())
                        }
                        Ok(msg) => {
                            self.summary.messages += 1;
                            let view = MessageView {
                                topic: msg.topic(),
                                partition: msg.partition(),
                                offset: msg.offset(),
                                key: msg.key(),
                                payload: msg.payload(),
                                timestamp_ms: msg.timestamp().to_millis(),
                            };
                            let now = self.clock.elapsed().as_millis() as i64;
                            let out = self.ingest.on_message(&view, now);
                            let next = match (out.batch, out.dead_letter) {
                                (_, Some(dl)) => Some(Pending::DeadLetter(DeadLetterCopy::from(&msg), dl)),
                                (Some(jobs), None) => Some(Pending::Batch(jobs)),
                                (None, None) => None,
                            };
                            drop(msg);
                            let next = next.or_else(|| self.early_batch());
                            match next {
                                Some(p) => self.hand_on(p).map(|p| pending = p),
                                None => Ok(()),
                            }
                        }
                    }
                }
            };
            if let Err(e) = step {
                return Some(e);
            }
        }
    }

    /// Drains by the deadline (see the module docs) and ends the run.
    async fn drain(mut self, failure: Option<PipelineError>) -> Result<Summary, ServeError> {
        let timeout = Duration::from_millis(self.config.serve.drain_timeout_ms);
        let deadline = Instant::now() + timeout;
        let mut failure = failure;
        let mut drained = false;
        if failure.is_none() {
            // The pending batch and the batcher's rest, if permits free in time.
            let mut rest: Vec<Job> = self.pending_at_drain.take().unwrap_or_default();
            if let Some(more) = self.ingest.flush() {
                rest.extend(more);
            }
            if !rest.is_empty() {
                let permit = tokio::select! {
                    p = self.batch_permits.clone().acquire_owned() => p.ok(),
                    _ = tokio::time::sleep_until(deadline) => None,
                };
                match permit {
                    Some(p) => {
                        if let Err(e) = self.send_batch(rest, p) {
                            failure = Some(e);
                        }
                    }
                    None => tracing::warn!(
                        "drain timeout before the last batch could be sent: it stays uncommitted"
                    ),
                }
            }
        }
        // Closing the batch channel lets the inference threads, then the sink, finish.
        self.batch_tx = None;
        if failure.is_none() {
            loop {
                tokio::select! {
                    r = &mut self.sink => {
                        match r {
                            Ok(Ok(())) => drained = true,
                            Ok(Err(e)) => failure = Some(e),
                            Err(e) => failure = Some(PipelineError::SinkTask(e)),
                        }
                        break;
                    }
                    Some(Ack(holds)) = self.ack_rx.recv() => self.ingest.release(holds),
                    _ = tokio::time::sleep_until(deadline) => {
                        tracing::warn!(timeout_ms = timeout.as_millis() as u64, "drain timeout: outputs still unacknowledged stay uncommitted");
                        break;
                    }
                }
            }
            while !self.dead_letters.is_empty() {
                match tokio::time::timeout_at(deadline, self.dead_letters.join_next()).await {
                    Ok(Some(Ok(Err(e)))) => {
                        failure.get_or_insert(e);
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
            while let Ok(Ack(holds)) = self.ack_rx.try_recv() {
                self.ingest.release(holds);
            }
        }
        self.sink.abort();
        // No window comes any more: the remote writer sends what it holds,
        // by the deadline, while the offsets are committed.
        let remote_write_drained = self.remote_writer.take().map(|w| {
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::spawn(async move { w.shutdown(left).await })
        });
        self.dead_letters.abort_all();
        if failure.is_none() {
            self.final_commit(deadline).await;
        } else {
            tracing::error!("the pipeline failed: nothing more is committed; unacknowledged windows are replayed after the restart");
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let _ = self.producer.flush(Timeout::After(left));
        self.inference.join(deadline).await;
        if let Some(done) = remote_write_drained {
            // It ends by the deadline by itself; a panic there is logged by it.
            let _ = tokio::time::timeout_at(deadline, done).await;
        }
        self.summary.drained = drained;
        match failure {
            Some(e) => Err(ServeError::Pipeline(e)),
            None => Ok(self.summary),
        }
    }
}

/// Produces the original key, bytes and headers plus the reason headers;
/// releases the message's hold once the broker has it.
async fn dead_letter(
    producer: &FutureProducer,
    topic: &str,
    msg: DeadLetterCopy,
    dl: DeadLetter,
    acks: &mpsc::UnboundedSender<Ack>,
) -> Result<(), PipelineError> {
    let mut headers = msg.headers.unwrap_or_default();
    for (k, v) in dl.reason.pairs() {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_bytes()),
        });
    }
    let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).headers(headers);
    if let Some(k) = &msg.key {
        rec = rec.key(k.as_slice());
    }
    if let Some(p) = &msg.payload {
        rec = rec.payload(p.as_slice());
    }
    // The queue wait is bounded by the permits; the delivery by the
    // producer's message.timeout.ms.
    match producer.send(rec, Timeout::Never).await {
        Ok(_) => {
            let _ = acks.send(Ack(vec![dl.hold]));
            Ok(())
        }
        Err((source, _)) => Err(PipelineError::Produce {
            topic: topic.to_string(),
            source,
        }),
    }
}
