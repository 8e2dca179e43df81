//! The inference thread: ONNX Runtime runs here, never on a tokio worker.
//! Batches arrive over a bounded channel; scored windows leave over another.

use std::time::Instant;

use ndarray::Array3;
use tokio::sync::mpsc;

use super::{Job, Scored};
use crate::infer::Backend;
use crate::telemetry::Metrics;

/// Runs until the batch channel closes. An inference error is fatal: it is
/// returned, and the daemon stops without committing the batch's offsets.
pub fn run(
    mut backend: Box<dyn Backend>,
    window: usize,
    features: usize,
    mut batches: mpsc::Receiver<Vec<Job>>,
    scored: mpsc::Sender<Vec<Scored>>,
    metrics: Metrics,
) -> Result<(), crate::infer::InferError> {
    while let Some(batch) = batches.blocking_recv() {
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
        if scored.blocking_send(results).is_err() {
            break; // the sink is gone: shutting down
        }
    }
    Ok(())
}
