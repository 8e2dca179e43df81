//! Bare ONNX Runtime: the reference the daemon's throughput is compared with.

use std::time::Instant;

use lstm_ae::infer::{BackendOptions, OnnxBackend};
use lstm_ae::model::Bundle;
use ndarray::Array3;

use super::load::value;
use super::Res;

/// Windows/s of the model through ONNX Runtime alone at `batch`:
/// `sessions` sessions of `threads` intra-op threads each, each running
/// batches on its own thread, for `secs` after a warm-up.
pub(crate) fn bare_ort(
    bundle: &Bundle,
    sessions: usize,
    threads: usize,
    batch: usize,
    secs: f64,
) -> Res<f64> {
    let opts = BackendOptions {
        intra_threads: threads,
        ..BackendOptions::default()
    };
    let t = bundle.manifest.spec.window;
    let f = bundle.manifest.spec.features;
    let x = Array3::from_shape_fn((batch, t, f), |(i, j, _)| value(i % 100, j));
    let run = |b: &mut OnnxBackend, d: f64| -> Res<usize> {
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed().as_secs_f64() < d {
            b.run(x.view()).map_err(|e| e.to_string())?;
            n += batch;
        }
        Ok(n)
    };
    let mut backends = (0..sessions)
        .map(|_| OnnxBackend::load_from_memory(&bundle.onnx, &opts).map_err(|e| e.to_string()))
        .collect::<Res<Vec<_>>>()?;
    let started = Instant::now();
    let counts = std::thread::scope(|s| {
        let handles: Vec<_> = backends
            .iter_mut()
            .map(|b| {
                s.spawn(|| {
                    run(b, 0.5)?; // warm-up
                    run(b, secs)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect::<Res<Vec<usize>>>()
    })?;
    let wall = started.elapsed().as_secs_f64() - 0.5;
    Ok(counts.iter().sum::<usize>() as f64 / wall)
}
