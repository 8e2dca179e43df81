//! The inference stage: ONNX Runtime (or any [`Backend`]) runs on its own
//! threads, never on a tokio worker, one backend per thread (a session is
//! not safe to run from two threads at once). A dispatcher thread hands the
//! numbered batches of one bounded channel, in order, to the thread that
//! asks first (each asks when it is free), and the threads send the scored
//! windows, with their batch number, to the sink, which restores the order.
//! No thread holds a lock while it waits for work, so a thread that fails
//! reports at once however many others wait.
//!
//! Backends are built by an injected [`BackendFactory`], so tests run the
//! whole pipeline with a fake (slow, stuck, failing) model. The factory sits
//! in a [`ModelSlot`]: with each batch a thread reads the slot and rebuilds
//! its backend when the slot holds a newer model, so a model swap (hot
//! reload, [`super::reload`]) happens between batches, and every scored
//! window carries the model ([`Served`]) that scored it. The dispatcher
//! reads the slot as it takes each batch, i.e. in batch order: once a batch
//! is scored by the new model, no later batch is scored by the old one,
//! whichever thread takes it.
//!
//! Each thread publishes when its current call started, so a watchdog can
//! tell a stuck backend ([`Inference::stalled`]).
//!
//! Once the daemon has caught up with its input (a batch sent before it
//! was full, none waiting behind it), a thread asks its backend to give
//! back its working memory after the batch, at most once a second
//! ([`Backend::infer_and_release`]; ONNX Runtime's arena otherwise keeps
//! the peak of the largest batch for good).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ndarray::Array3;
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use super::error::PipelineError;
use super::ingest::Job;
use crate::infer::{Backend, InferError};
use crate::model::Manifest;
use crate::telemetry::Metrics;

/// How often at most an inference thread asks its backend to give back its
/// working memory (see `Worker::serve`).
const RELEASE_INTERVAL: Duration = Duration::from_secs(1);

/// Whether a batch of `size` windows, with none waiting behind it
/// (`last`), is followed by a release of the backend's working memory; the
/// previous release was `since` ago (see `Worker::serve`).
fn release_memory(last: bool, size: usize, max_batch: usize, since: Option<Duration>) -> bool {
    let caught_up = last && size < max_batch;
    caught_up && since.is_none_or(|d| d >= RELEASE_INTERVAL)
}

/// Builds one backend; called on the inference thread that will run it.
pub type BackendFactory = Arc<dyn Fn() -> Result<Box<dyn Backend>, InferError> + Send + Sync>;

/// A numbered batch of windows. The permit bounds the batches between the
/// ingest stage and the sink (in the channel, in inference, waiting in the
/// sink's reorder buffer); it is given back when the sink has taken the
/// batch.
pub struct Batch {
    pub seq: u64,
    pub jobs: Vec<Job>,
    pub permit: OwnedSemaphorePermit,
}

/// A window with the model's outputs.
pub struct Scored {
    pub job: Job,
    pub score: f32,
    pub embedding: Vec<f32>,
    pub squared_error: Vec<f32>,
    /// `P × F` raw forecast of the next points, when the model predicts.
    pub prediction: Option<Vec<f32>>,
    /// `F` raw values: the model's reconstruction of the window's last
    /// point (`WindowScore::expected`).
    pub expected: Vec<f32>,
    /// The model that scored it.
    pub model: Arc<Served>,
}

/// A model as the pipeline serves it: its manifest (threshold, scaler,
/// names for the scorer) and its version as written in output records.
#[derive(Debug)]
pub struct Served {
    pub version: Arc<str>,
    pub manifest: Manifest,
}

impl Served {
    pub fn new(manifest: Manifest) -> Arc<Served> {
        Arc::new(Served {
            version: Arc::from(manifest.model_version.to_string()),
            manifest,
        })
    }
}

/// A scored batch, with its number and permit.
pub struct ScoredBatch {
    pub seq: u64,
    pub windows: Vec<Scored>,
    pub permit: OwnedSemaphorePermit,
}

/// What the inference threads send the sink: a scored batch, or the error
/// that stopped a thread (fatal: the daemon stops without committing it).
pub type ScoredMsg = Result<ScoredBatch, PipelineError>;

/// The model the inference threads run, swapped between batches.
pub struct ModelSlot {
    current: RwLock<Arc<Loaded>>,
}

/// What the slot holds: a generation number (raised by each swap), how to
/// build a backend, and the model it serves.
struct Loaded {
    generation: u64,
    factory: BackendFactory,
    served: Arc<Served>,
}

/// A backend built from the slot: the generation it was built at, the
/// backend, and the model it serves.
struct Built {
    generation: u64,
    backend: Box<dyn Backend>,
    served: Arc<Served>,
}

impl ModelSlot {
    pub fn new(factory: BackendFactory, served: Arc<Served>) -> Arc<ModelSlot> {
        Arc::new(ModelSlot {
            current: RwLock::new(Arc::new(Loaded {
                generation: 0,
                factory,
                served,
            })),
        })
    }

    /// Makes `factory` the model of every batch taken from now on.
    pub fn swap(&self, factory: BackendFactory, served: Arc<Served>) {
        let mut c = match self.current.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        *c = Arc::new(Loaded {
            generation: c.generation + 1,
            factory,
            served,
        });
    }

    /// The model served now.
    pub fn served(&self) -> Arc<Served> {
        self.loaded().served.clone()
    }

    fn loaded(&self) -> Arc<Loaded> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }
}

impl Loaded {
    fn build(&self) -> Result<Built, InferError> {
        Ok(Built {
            generation: self.generation,
            backend: (self.factory)()?,
            served: self.served.clone(),
        })
    }
}

/// A batch as the dispatcher hands it to a thread: with the model read
/// from the slot when it was taken, and whether none waited behind it.
struct Work {
    batch: Batch,
    loaded: Arc<Loaded>,
    last: bool,
}

/// Hands each batch, in order, to the thread that asked first: `free`
/// carries the index of a thread waiting for work, `workers` its one-batch
/// channel. Only a free thread gets a batch, so the dispatcher holds none
/// while every thread is busy (the batch waits in the bounded channel).
/// Ends when the batch channel closes (dropping `workers` stops the
/// threads) or when every thread has stopped.
fn dispatch(
    mut batches: mpsc::Receiver<Batch>,
    free: std_mpsc::Receiver<usize>,
    workers: Vec<std_mpsc::SyncSender<Work>>,
    slot: Arc<ModelSlot>,
) {
    while let Ok(i) = free.recv() {
        let Some(batch) = batches.blocking_recv() else {
            return;
        };
        let work = Work {
            batch,
            loaded: slot.loaded(),
            last: batches.is_empty(),
        };
        // A thread asks only while it waits on its channel, so this fails
        // only if it panicked since: stopping here closes the batch
        // channel, which stops the daemon.
        if workers[i].send(work).is_err() {
            return;
        }
    }
}

/// The running inference threads.
pub struct Inference {
    threads: Vec<JoinHandle<()>>,
    /// Per thread, when its current call started (ms since `epoch`, +1), 0 when idle.
    busy_since: Arc<Vec<AtomicU64>>,
    /// Threads waiting for a batch (the channel is empty for them).
    waiting: Arc<AtomicUsize>,
    epoch: Instant,
}

impl Inference {
    /// Starts `threads` threads, each building its backend from `slot`
    /// first; returns once every backend is built (or the first error).
    pub fn start(
        threads: usize,
        slot: Arc<ModelSlot>,
        dims: (usize, usize),
        max_batch: usize,
        batches: mpsc::Receiver<Batch>,
        scored: mpsc::Sender<ScoredMsg>,
        metrics: Metrics,
    ) -> Result<Inference, PipelineError> {
        let (free_tx, free_rx) = std_mpsc::channel::<usize>();
        let mut workers = Vec::with_capacity(threads);
        let busy_since: Arc<Vec<AtomicU64>> =
            Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect());
        let waiting = Arc::new(AtomicUsize::new(0));
        let epoch = Instant::now();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), InferError>>();
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let (work_tx, work_rx) = std_mpsc::sync_channel::<Work>(1);
            workers.push(work_tx);
            let ctx = Worker {
                index: i,
                slot: slot.clone(),
                dims,
                max_batch,
                free: free_tx.clone(),
                work: work_rx,
                scored: scored.clone(),
                metrics: metrics.clone(),
                busy_since: busy_since.clone(),
                waiting: waiting.clone(),
                epoch,
            };
            let ready = ready_tx.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("lstm-ae-inference-{i}"))
                    .spawn(move || ctx.run(ready))
                    .map_err(PipelineError::Spawn)?,
            );
        }
        drop(ready_tx);
        drop(free_tx);
        handles.push(
            std::thread::Builder::new()
                .name("lstm-ae-dispatch".into())
                .spawn(move || dispatch(batches, free_rx, workers, slot))
                .map_err(PipelineError::Spawn)?,
        );
        for _ in 0..threads {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    return Err(PipelineError::Inference {
                        thread: 0,
                        source: e,
                    })
                }
                Err(_) => return Err(PipelineError::InferenceStopped),
            }
        }
        Ok(Inference {
            threads: handles,
            busy_since,
            waiting,
            epoch,
        })
    }

    /// Whether every thread waits for a batch: one sent now is scored at
    /// once, so waiting for a fuller batch would only add latency. (Not
    /// "some thread": with two threads on two cores, sending whenever one
    /// is free gave batches of 13 windows at half the maximum rate, which
    /// cost more CPU and a worse p99 than waiting.)
    pub fn is_idle(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) >= self.busy_since.len()
    }

    /// Whether some thread's current call has run longer than `limit`.
    pub fn stalled(&self, limit: Duration) -> bool {
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let limit = limit.as_millis() as u64;
        self.busy_since.iter().any(|b| {
            let since = b.load(Ordering::Relaxed);
            since != 0 && now.saturating_sub(since) > limit
        })
    }

    /// Waits for the threads to end, at most until `deadline`; a thread
    /// still running then (a stuck backend) is left behind: it is blocked
    /// in a call that cannot be interrupted, and the process exits anyway.
    pub async fn join(self, deadline: tokio::time::Instant) -> bool {
        let mut left = self.threads;
        loop {
            let (done, running): (Vec<_>, Vec<_>) = left.into_iter().partition(|h| h.is_finished());
            for h in done {
                let _ = h.join();
            }
            if running.is_empty() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    threads = running.len(),
                    "inference threads still busy at the drain deadline: left behind"
                );
                return false;
            }
            left = running;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

struct Worker {
    index: usize,
    slot: Arc<ModelSlot>,
    dims: (usize, usize),
    /// `serve.max_batch`: a smaller batch went early, the daemon keeping up.
    max_batch: usize,
    /// Where the thread asks for work (sends its index).
    free: std_mpsc::Sender<usize>,
    /// Where its work comes.
    work: std_mpsc::Receiver<Work>,
    scored: mpsc::Sender<ScoredMsg>,
    metrics: Metrics,
    busy_since: Arc<Vec<AtomicU64>>,
    waiting: Arc<AtomicUsize>,
    epoch: Instant,
}

impl Worker {
    /// Runs until the dispatcher stops. An error is sent to the sink, which
    /// stops the daemon; the other threads stop when it closes the batch
    /// channel.
    fn run(self, ready: std::sync::mpsc::Sender<Result<(), InferError>>) {
        let mut live = match self.slot.loaded().build() {
            Ok(l) => {
                let _ = ready.send(Ok(()));
                l
            }
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        drop(ready);
        if let Err(e) = self.serve(&mut live) {
            let _ = self.scored.blocking_send(Err(e));
        }
    }

    fn serve(&self, live: &mut Built) -> Result<(), PipelineError> {
        let (window, features) = self.dims;
        let fail = |source| PipelineError::Inference {
            thread: self.index,
            source,
        };
        let mut released_at: Option<Instant> = None;
        loop {
            self.waiting.fetch_add(1, Ordering::Relaxed);
            let next = match self.free.send(self.index) {
                Ok(()) => self.work.recv().ok(),
                Err(_) => None, // the dispatcher stopped
            };
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            let Some(Work {
                batch: Batch { seq, jobs, permit },
                loaded,
                last,
            }) = next
            else {
                return Ok(());
            };
            // A new model is picked up between batches.
            if loaded.generation != live.generation {
                *live = loaded.build().map_err(fail)?;
            }
            let b = jobs.len();
            let mut x = Array3::<f32>::zeros((b, window, features));
            for (i, job) in jobs.iter().enumerate() {
                for (dst, src) in x
                    .index_axis_mut(ndarray::Axis(0), i)
                    .iter_mut()
                    .zip(&job.values)
                {
                    *dst = *src;
                }
            }
            let busy = &self.busy_since[self.index];
            busy.store(
                self.epoch.elapsed().as_millis() as u64 + 1,
                Ordering::Relaxed,
            );
            let started = Instant::now();
            // The daemon has caught up with its input: the batch went before
            // it was full and none waits behind it. The runtime then gives
            // back its working memory after this batch
            // (`Backend::infer_and_release`), so a daemon whose input slows
            // down or stops holds what its keys need, not the peak of its
            // largest batch. Not under a backlog: there the queue is empty
            // at most batches too (the batch permits are few), and the next
            // batch would grow the arena again, page by page, which costs
            // throughput (docs/performance.md). At most once every
            // `RELEASE_INTERVAL`, for the same reason, as a daemon that
            // keeps up finds the queue empty at nearly every batch.
            let release = release_memory(last, b, self.max_batch, released_at.map(|t| t.elapsed()));
            if release {
                released_at = Some(started);
            }
            let out = if release {
                live.backend.infer_and_release(x.view())
            } else {
                live.backend.infer(x.view())
            };
            busy.store(0, Ordering::Relaxed);
            let out = out.map_err(fail)?;
            self.metrics
                .inference_duration
                .observe(started.elapsed().as_secs_f64());
            self.metrics.inference_batch_size.observe(b as f64);
            let score = out.score.ok_or(PipelineError::MissingOutput("score"))?;
            let emb = out
                .embedding
                .ok_or(PipelineError::MissingOutput("embedding"))?;
            let se = out
                .squared_error
                .ok_or(PipelineError::MissingOutput("squared_error"))?;
            let rec = out
                .reconstruction
                .ok_or(PipelineError::MissingOutput("reconstruction"))?;
            if score.len() < b || emb.nrows() < b || se.shape()[0] < b || rec.shape()[0] < b {
                return Err(PipelineError::MissingOutput("one row per window"));
            }
            let mut windows = Vec::with_capacity(b);
            for (i, job) in jobs.into_iter().enumerate() {
                windows.push(Scored {
                    score: score[i],
                    embedding: emb.row(i).to_vec(),
                    squared_error: se.index_axis(ndarray::Axis(0), i).iter().copied().collect(),
                    prediction: out
                        .prediction
                        .as_ref()
                        .map(|p| p.index_axis(ndarray::Axis(0), i).iter().copied().collect()),
                    // The reconstruction is in natural row order (the export
                    // undoes a reversed decoder), so the last row is the
                    // last point's.
                    expected: rec
                        .index_axis(ndarray::Axis(0), i)
                        .outer_iter()
                        .last()
                        .map(|row| row.to_vec())
                        .unwrap_or_default(),
                    model: live.served.clone(),
                    job,
                });
            }
            let batch = ScoredBatch {
                seq,
                windows,
                permit,
            };
            if self.scored.blocking_send(Ok(batch)).is_err() {
                return Ok(()); // the sink is gone: shutting down
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_is_released_only_after_a_batch_sent_early_with_none_behind() {
        let s = |ms| Some(Duration::from_millis(ms));
        // Caught up: a batch sent before it was full, none waiting.
        assert!(release_memory(true, 3, 64, None));
        assert!(release_memory(true, 63, 64, s(1_000)));
        // A backlog: a batch waits behind, or the batch is full.
        assert!(!release_memory(false, 3, 64, None));
        assert!(!release_memory(true, 64, 64, None));
        // At most once a second.
        assert!(!release_memory(true, 3, 64, s(999)));
    }
}
