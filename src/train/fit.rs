//! The training loop: mini-batches, Adam, early stopping on validation loss,
//! progress reporting and cooperative stop (Ctrl-C keeps the best epoch).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use ndarray::{s, Array3, ArrayView3, Axis};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

pub use crate::model::manifest::{EpochStats, LossRecord, StopReason};
use crate::model::{ModelSpec, Params};
use crate::train::adam::Adam;
use crate::train::composite::{self, Loss};

/// How to train. Units are in the names; defaults follow the Keras tutorial
/// where it has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainOptions {
    /// Maximum passes over the training windows.
    pub epochs: usize,
    /// Windows per gradient step.
    pub batch_size: usize,
    /// Adam's step size.
    pub learning_rate: f32,
    /// Global gradient-norm clipping; 0 disables it.
    pub clip_norm: f32,
    /// Stop after this many epochs without a better validation loss; 0 never stops early.
    pub patience: usize,
    /// An improvement smaller than this does not count (absolute, loss units).
    pub min_delta: f64,
    /// Seeds initialisation and shuffling: the same seed gives the same model.
    pub seed: u64,
    /// Threads a batch is split across; 0 = every core.
    pub threads: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            epochs: 50,
            batch_size: 64,
            learning_rate: 1e-3,
            clip_norm: 1.0,
            patience: 5,
            min_delta: 0.0,
            seed: 42,
            threads: 0,
        }
    }
}

impl TrainOptions {
    /// Threads to actually use.
    pub fn thread_count(&self) -> usize {
        crate::threads_or_cores(self.threads)
    }
}

/// Windows ready for the trainer: scaled, time-major.
pub struct Dataset {
    /// `[T, N, F]`.
    pub x: Array3<f32>,
    /// `[P, N, F]`; empty (`P = 0`) when the model does not predict.
    pub future: Array3<f32>,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.x.len_of(Axis(1))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn future_view(&self) -> Option<ArrayView3<'_, f32>> {
        (self.future.len_of(Axis(0)) > 0).then(|| self.future.view())
    }
}

impl From<Loss> for LossRecord {
    fn from(l: Loss) -> Self {
        LossRecord {
            total: l.total,
            reconstruction: l.reconstruction,
            prediction: l.prediction,
        }
    }
}

/// The result of [`fit`]: the parameters of the best epoch and the history.
pub struct Fitted {
    pub params: Params<f32>,
    pub history: Vec<EpochStats>,
    /// 1-based epoch whose parameters were kept.
    pub best_epoch: usize,
    pub stopped: StopReason,
}

/// Progress callbacks, so the CLI can draw a bar and tests can stay quiet.
pub trait Progress {
    fn batch(&mut self, _epoch: usize, _batch: usize, _batches: usize) {}
    fn epoch(&mut self, _stats: &EpochStats, _best: bool) {}
}

/// A progress sink that reports nothing.
pub struct Quiet;
impl Progress for Quiet {}

/// Loss over a whole dataset without gradients, in chunks split across threads.
pub fn evaluate(params: &Params<f32>, spec: &ModelSpec, data: &Dataset, threads: usize) -> Loss {
    evaluate_with_scores(params, spec, data, threads).0
}

/// [`evaluate`], plus each window's anomaly score (mean squared
/// reconstruction error, scaled units; empty without a reconstruction decoder).
pub fn evaluate_with_scores(
    params: &Params<f32>,
    spec: &ModelSpec,
    data: &Dataset,
    threads: usize,
) -> (Loss, Vec<f64>) {
    let n = data.len();
    if n == 0 {
        return (Loss::default(), vec![]);
    }
    let chunk = 256usize;
    let starts: Vec<usize> = (0..n).step_by(chunk).collect();
    let threads = threads.clamp(1, starts.len());
    let per_thread = starts.len().div_ceil(threads);
    let parts: Vec<(f64, f64, Vec<f64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = starts
            .chunks(per_thread)
            .map(|mine| {
                scope.spawn(move || {
                    let (mut rec_sse, mut pred_sse, mut scores) = (0.0, 0.0, vec![]);
                    for &lo in mine {
                        let hi = (lo + chunk).min(n);
                        let x = data.x.slice(s![.., lo..hi, ..]);
                        let fw = composite::forward(params, spec, x);
                        if let Some(r) = &fw.reconstruction {
                            let sc = composite::window_scores(x, r.view());
                            rec_sse += sc.iter().sum::<f64>();
                            scores.extend(sc);
                        }
                        if let (Some(p), Some(f)) = (&fw.prediction, data.future_view()) {
                            let f = f.slice_move(s![.., lo..hi, ..]);
                            pred_sse += p
                                .iter()
                                .zip(f.iter())
                                .map(|(&a, &b)| ((a - b) as f64).powi(2))
                                .sum::<f64>();
                        }
                    }
                    (rec_sse, pred_sse, scores)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(v) => v,
                Err(e) => std::panic::resume_unwind(e),
            })
            .collect()
    });
    let mut loss = Loss::default();
    let mut scores = Vec::with_capacity(n);
    for (r, p, sc) in parts {
        loss.reconstruction += r;
        loss.prediction += p;
        scores.extend(sc);
    }
    // Window scores are already means over T·F; the prediction SSE is not.
    loss.reconstruction /= n as f64;
    let p_elems = (n * spec.horizon * spec.features).max(1) as f64;
    loss.prediction /= p_elems;
    if !spec.mode.has_reconstruction() {
        loss.reconstruction = 0.0;
    }
    loss.total = spec.reconstruction_weight as f64 * loss.reconstruction
        + spec.prediction_weight as f64 * loss.prediction;
    (loss, scores)
}

/// Trains from `Params::init(spec, opts.seed)`; see [`fit_from`].
pub fn fit(
    spec: &ModelSpec,
    train: &Dataset,
    validation: &Dataset,
    opts: &TrainOptions,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Fitted {
    fit_from(
        Params::init(spec, opts.seed),
        spec,
        train,
        validation,
        opts,
        progress,
        stop,
    )
}

/// Mini-batch Adam from the given parameters, keeping the parameters of the
/// epoch with the lowest validation loss. `stop` is checked between batches:
/// setting it ends training with the best epoch so far.
#[allow(clippy::too_many_arguments)]
pub fn fit_from(
    mut params: Params<f32>,
    spec: &ModelSpec,
    train: &Dataset,
    validation: &Dataset,
    opts: &TrainOptions,
    progress: &mut dyn Progress,
    stop: &AtomicBool,
) -> Fitted {
    let threads = opts.thread_count();
    let mut adam = Adam::new(&params, opts.learning_rate);
    let mut rng = StdRng::seed_from_u64(opts.seed ^ 0x5eed_5eed);
    let n = train.len();
    let batch = opts.batch_size.clamp(1, n.max(1));
    let batches = n.div_ceil(batch);
    let mut order: Vec<usize> = (0..n).collect();
    let mut best: Option<(f64, usize, Params<f32>)> = None;
    let mut history = vec![];
    let mut since_best = 0;
    let mut stopped = StopReason::Epochs;
    'epochs: for epoch in 1..=opts.epochs {
        let started = Instant::now();
        order.shuffle(&mut rng);
        let mut train_loss = Loss::default();
        for (b, idx) in order.chunks(batch).enumerate() {
            if stop.load(Ordering::Relaxed) {
                stopped = StopReason::Interrupted;
                break 'epochs;
            }
            let x = train.x.select(Axis(1), idx);
            let f = train.future_view().map(|f| f.select(Axis(1), idx));
            let (loss, grads) = composite::loss_and_grad_parallel(
                &params,
                spec,
                x.view(),
                f.as_ref().map(|f| f.view()),
                threads,
            );
            adam.update(&mut params, &grads, opts.clip_norm);
            let w = idx.len() as f64 / n as f64;
            train_loss.total += loss.total * w;
            train_loss.reconstruction += loss.reconstruction * w;
            train_loss.prediction += loss.prediction * w;
            progress.batch(epoch, b + 1, batches);
        }
        let val_loss = if validation.is_empty() {
            train_loss
        } else {
            evaluate(&params, spec, validation, threads)
        };
        let stats = EpochStats {
            epoch,
            train: train_loss.into(),
            validation: val_loss.into(),
            seconds: started.elapsed().as_secs_f64(),
        };
        let improved = match &best {
            None => true,
            Some((b, _, _)) => val_loss.total < b - opts.min_delta,
        };
        // A diverged model (NaN loss) is never "best".
        let improved = improved && val_loss.total.is_finite();
        if improved {
            best = Some((val_loss.total, epoch, params.clone()));
            since_best = 0;
        } else {
            since_best += 1;
        }
        history.push(stats);
        progress.epoch(&stats, improved);
        if opts.patience > 0 && since_best >= opts.patience {
            stopped = StopReason::EarlyStopping;
            break;
        }
    }
    match best {
        Some((_, best_epoch, params)) => Fitted {
            params,
            history,
            best_epoch,
            stopped,
        },
        None => Fitted {
            params,
            history,
            best_epoch: 0,
            stopped,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Mode;

    fn sine_dataset(n: usize, t: usize, phase: f32) -> Dataset {
        let x = Array3::from_shape_fn((t, n, 1), |(s, b, _)| ((s + b) as f32 * 0.3 + phase).sin());
        Dataset {
            x,
            future: Array3::zeros((0, n, 1)),
        }
    }

    fn spec() -> ModelSpec {
        ModelSpec {
            window: 8,
            features: 1,
            hidden: 6,
            horizon: 0,
            mode: Mode::Reconstruct,
            ..ModelSpec::default()
        }
    }

    #[test]
    fn training_lowers_the_validation_loss() {
        let (train, val) = (sine_dataset(128, 8, 0.0), sine_dataset(32, 8, 0.1));
        let opts = TrainOptions {
            epochs: 30,
            batch_size: 16,
            learning_rate: 1e-2,
            patience: 0,
            ..TrainOptions::default()
        };
        let f = fit(
            &spec(),
            &train,
            &val,
            &opts,
            &mut Quiet,
            &AtomicBool::new(false),
        );
        let first = f.history[0].validation.total;
        let best = f.history[f.best_epoch - 1].validation.total;
        assert!(best < first / 5.0, "validation loss {first} → {best}");
        // The kept parameters are the best epoch's: evaluating them reproduces its loss.
        let again = evaluate(&f.params, &spec(), &val, 1).total;
        assert!((again - best).abs() < 1e-6 * best.max(1.0));
    }

    #[test]
    fn early_stopping_ends_after_patience_epochs_without_improvement() {
        // A zero learning rate never improves on epoch 1.
        let (train, val) = (sine_dataset(32, 8, 0.0), sine_dataset(8, 8, 0.1));
        let opts = TrainOptions {
            epochs: 50,
            learning_rate: 0.0,
            patience: 3,
            ..TrainOptions::default()
        };
        let f = fit(
            &spec(),
            &train,
            &val,
            &opts,
            &mut Quiet,
            &AtomicBool::new(false),
        );
        assert_eq!(f.stopped, StopReason::EarlyStopping);
        assert_eq!(f.history.len(), 4);
        assert_eq!(f.best_epoch, 1);
    }

    /// Sets the stop flag in the middle of epoch 3.
    struct StopAt<'a>(&'a AtomicBool);
    impl Progress for StopAt<'_> {
        fn batch(&mut self, epoch: usize, batch: usize, _: usize) {
            if epoch == 3 && batch == 2 {
                self.0.store(true, Ordering::Relaxed);
            }
        }
    }

    #[test]
    fn a_stop_request_keeps_the_best_finished_epoch() {
        let (train, val) = (sine_dataset(64, 8, 0.0), sine_dataset(16, 8, 0.1));
        let opts = TrainOptions {
            epochs: 20,
            batch_size: 8,
            learning_rate: 1e-2,
            patience: 0,
            ..TrainOptions::default()
        };
        let stop = AtomicBool::new(false);
        let f = fit(&spec(), &train, &val, &opts, &mut StopAt(&stop), &stop);
        assert_eq!(f.stopped, StopReason::Interrupted);
        assert_eq!(f.history.len(), 2, "epochs 1 and 2 finished");
        let best = f
            .history
            .iter()
            .min_by(|a, b| a.validation.total.total_cmp(&b.validation.total))
            .unwrap();
        assert_eq!(f.best_epoch, best.epoch);
        let again = evaluate(&f.params, &spec(), &val, 1).total;
        assert!((again - best.validation.total).abs() < 1e-6);
    }
}
