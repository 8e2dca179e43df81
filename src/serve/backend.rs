//! The inference threads: ONNX Runtime runs here, never on a tokio worker.
//! Batches arrive over a bounded channel shared by the threads (each takes
//! the next batch when it is free); scored windows leave over another, with
//! their batch number, so the sink can restore the order.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use ndarray::Array3;
use tokio::sync::mpsc;

use super::{Job, Scored};
use crate::infer::Backend;
use crate::telemetry::Metrics;

/// The batch channel's receiving end, shared by the inference threads.
pub type SharedBatches = Arc<Mutex<mpsc::Receiver<(u64, Vec<Job>)>>>;

/// Runs until the batch channel closes. An inference error is fatal: it is
/// returned, and the daemon stops without committing the batch's offsets —
/// the shared channel is closed so that the ingest loop sees it at its next
/// batch and the other threads stop.
pub fn run(
    backend: Box<dyn Backend>,
    window: usize,
    features: usize,
    batches: SharedBatches,
    scored: mpsc::Sender<(u64, Vec<Scored>)>,
    metrics: Metrics,
) -> Result<(), crate::infer::InferError> {
    let r = serve_batches(backend, window, features, &batches, scored, metrics);
    if r.is_err() {
        if let Ok(mut rx) = batches.lock() {
            rx.close();
        }
    }
    r
}

fn serve_batches(
    mut backend: Box<dyn Backend>,
    window: usize,
    features: usize,
    batches: &Mutex<mpsc::Receiver<(u64, Vec<Job>)>>,
    scored: mpsc::Sender<(u64, Vec<Scored>)>,
    metrics: Metrics,
) -> Result<(), crate::infer::InferError> {
    loop {
        // The lock is held only while waiting for the next batch.
        let next = match batches.lock() {
            Ok(mut rx) => rx.blocking_recv(),
            Err(_) => None, // another inference thread panicked: stop too
        };
        let Some((seq, batch)) = next else { break };
        let b = batch.len();
        let mut x = Array3::<f32>::zeros((b, window, features));
        for (i, job) in batch.iter().enumerate() {
            for (dst, src) in x
                .index_axis_mut(ndarray::Axis(0), i)
                .iter_mut()
                .zip(&job.values)
            {
                *dst = *src;
            }
        }
        let started = Instant::now();
        let out = backend.infer(x.view())?;
        metrics
            .inference_duration
            .observe(started.elapsed().as_secs_f64());
        metrics.inference_batch_size.observe(b as f64);
        let (Some(score), Some(emb), Some(se)) = (out.score, out.embedding, out.squared_error)
        else {
            return Err(crate::infer::InferError::Contract(
                "the model lacks score, embedding or squared_error".into(),
            ));
        };
        let mut results = Vec::with_capacity(b);
        for (i, job) in batch.into_iter().enumerate() {
            results.push(Scored {
                score: score[i],
                embedding: emb.row(i).to_vec(),
                squared_error: se.index_axis(ndarray::Axis(0), i).iter().copied().collect(),
                prediction: out
                    .prediction
                    .as_ref()
                    .map(|p| p.index_axis(ndarray::Axis(0), i).iter().copied().collect()),
                job,
            });
        }
        if scored.blocking_send((seq, results)).is_err() {
            break; // the sink is gone: shutting down
        }
    }
    Ok(())
}
