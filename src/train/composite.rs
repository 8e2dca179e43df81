//! The composite model: encoder, reconstruction decoder and prediction
//! decoder, their loss, and its gradient.
//!
//! Inputs are scaled and time-major: the window `x` is `[T, B, F]`, the
//! prediction target (the `P` steps after the window) `[P, B, F]`.
//! The loss is `w_r · MSE(reconstruction) + λ · MSE(prediction)`, each MSE a
//! mean over every element of the whole batch.

use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, Array3, ArrayView3, Axis};

use crate::model::params::{DecoderParams, Params};
use crate::model::real::Real;
use crate::model::{DecoderInput, ModelSpec};
use crate::train::lstm::{self, Input, Trace};

/// What the model computes for a batch of windows (scaled units).
#[derive(Debug, Clone)]
pub struct Forward<A> {
    /// The encoder's final hidden state, `[B, H]`.
    pub embedding: Array2<A>,
    /// The reconstructed window in natural order, `[T, B, F]`.
    pub reconstruction: Option<Array3<A>>,
    /// The next `P` steps, `[P, B, F]`.
    pub prediction: Option<Array3<A>>,
}

/// The loss and its parts (unweighted MSEs), for progress reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Loss {
    pub total: f64,
    pub reconstruction: f64,
    pub prediction: f64,
}

impl std::ops::AddAssign for Loss {
    fn add_assign(&mut self, o: Loss) {
        self.total += o.total;
        self.reconstruction += o.reconstruction;
        self.prediction += o.prediction;
    }
}

struct DecoderRun<A> {
    trace: Trace<A>,
    /// Outputs in decoder order, `[S, B, F]`.
    y: Array3<A>,
}

fn decoder_forward<A: Real>(
    d: &DecoderParams<A>,
    spec: &ModelSpec,
    enc: &Trace<A>,
    steps: usize,
) -> DecoderRun<A> {
    let batch = enc.h.len_of(Axis(1));
    let a = spec.activation;
    let emb = enc.last_h();
    let trace = match spec.decoder_input {
        DecoderInput::Repeat => {
            lstm::forward(&d.lstm, a, &Input::Constant(emb), steps, batch, None, None)
        }
        DecoderInput::State => lstm::forward(
            &d.lstm,
            a,
            &Input::Nothing,
            steps,
            batch,
            Some(emb),
            Some(enc.last_c()),
        ),
        DecoderInput::Conditional => {
            let (trace, y) = lstm::forward_feedback(
                &d.lstm,
                a,
                &d.w_out,
                &d.b_out,
                steps,
                batch,
                emb,
                enc.last_c(),
            );
            return DecoderRun { trace, y };
        }
    };
    let y = dense(d, trace.outputs());
    DecoderRun { trace, y }
}

/// The per-step dense layer over all steps at once.
fn dense<A: Real>(d: &DecoderParams<A>, h: ArrayView3<'_, A>) -> Array3<A> {
    let (steps, batch, _) = h.dim();
    let features = d.w_out.ncols();
    let h2 = lstm::step_rows(h);
    let mut y = d
        .b_out
        .broadcast((steps * batch, features))
        .expect("bias broadcasts")
        .to_owned();
    general_mat_mul(A::one(), &h2, &d.w_out, A::one(), &mut y);
    y.into_shape_with_order((steps, batch, features))
        .expect("contiguous")
}

/// Backward through one decoder; returns the gradients on the encoder's final
/// `(h, c)`.
fn decoder_backward<A: Real>(
    d: &DecoderParams<A>,
    g: &mut DecoderParams<A>,
    spec: &ModelSpec,
    enc: &Trace<A>,
    run: &DecoderRun<A>,
    dy: ArrayView3<'_, A>,
) -> (Array2<A>, Option<Array2<A>>) {
    let a = spec.activation;
    if spec.decoder_input == DecoderInput::Conditional {
        let b = lstm::backward_feedback(
            &d.lstm,
            a,
            &d.w_out,
            &run.trace,
            &run.y,
            dy,
            &mut g.lstm,
            &mut g.w_out,
            &mut g.b_out,
        );
        return (b.dh0, Some(b.dc0));
    }
    let (steps, batch, features) = dy.dim();
    let hidden = d.lstm.hidden();
    let dy2 = dy
        .into_shape_with_order((steps * batch, features))
        .expect("loss gradient is contiguous");
    let h = run.trace.outputs();
    let h2 = lstm::step_rows(h);
    general_mat_mul(A::one(), &h2.t(), &dy2, A::one(), &mut g.w_out);
    g.b_out += &dy2.sum_axis(Axis(0));
    // Row-major on purpose: `dot` may pick column-major output for thin
    // operands, which would not reshape to time-major steps.
    let mut dh_out = Array2::<A>::zeros((steps * batch, hidden));
    general_mat_mul(A::one(), &dy2, &d.w_out.t(), A::zero(), &mut dh_out);
    let dh_out = dh_out
        .into_shape_with_order((steps, batch, hidden))
        .expect("row-major array reshapes");
    let emb = enc.last_h();
    match spec.decoder_input {
        DecoderInput::Repeat => {
            let b = lstm::backward(
                &d.lstm,
                a,
                &Input::Constant(emb),
                &run.trace,
                Some(dh_out.view()),
                None,
                None,
                &mut g.lstm,
            );
            (b.dinput.expect("a constant input has a gradient"), None)
        }
        _ => {
            let b = lstm::backward(
                &d.lstm,
                a,
                &Input::Nothing,
                &run.trace,
                Some(dh_out.view()),
                None,
                None,
                &mut g.lstm,
            );
            (b.dh0, Some(b.dc0))
        }
    }
}

/// The reconstruction target in decoder order: reversed when the spec asks.
fn reconstruction_target<'a, A>(spec: &ModelSpec, x: ArrayView3<'a, A>) -> ArrayView3<'a, A> {
    if spec.reverse_reconstruction {
        x.slice_move(s![..;-1, .., ..])
    } else {
        x
    }
}

/// Inference: embedding, reconstruction (natural order) and prediction.
pub fn forward<A: Real>(params: &Params<A>, spec: &ModelSpec, x: ArrayView3<'_, A>) -> Forward<A> {
    let (steps, batch, _) = x.dim();
    let enc = lstm::forward(
        &params.encoder,
        spec.activation,
        &Input::Sequence(x),
        steps,
        batch,
        None,
        None,
    );
    let reconstruction = params.reconstruction.as_ref().map(|d| {
        let run = decoder_forward(d, spec, &enc, steps);
        reconstruction_target(spec, run.y.view()).to_owned()
    });
    let prediction = params
        .prediction
        .as_ref()
        .map(|d| decoder_forward(d, spec, &enc, spec.horizon).y);
    Forward {
        embedding: enc.last_h().to_owned(),
        reconstruction,
        prediction,
    }
}

/// Sum of squared errors and the gradient `scale · 2 · (y − target)`.
fn sse_and_grad<A: Real>(y: &Array3<A>, target: ArrayView3<'_, A>, scale: A) -> (f64, Array3<A>) {
    let mut sse = 0.0f64;
    let two = A::one() + A::one();
    let mut grad = Array3::zeros(y.raw_dim());
    ndarray::Zip::from(&mut grad)
        .and(y)
        .and(&target)
        .for_each(|g, &yv, &tv| {
            let d = yv - tv;
            sse += (d * d).to_f64().unwrap_or(f64::NAN);
            *g = two * d * scale;
        });
    (sse, grad)
}

/// Loss of a (part of a) batch and its gradient. `total_batch` is the size of
/// the whole batch the MSE is taken over, so that the parts of a batch split
/// across threads add up to the loss and gradient of the whole.
pub fn loss_and_grad<A: Real>(
    params: &Params<A>,
    spec: &ModelSpec,
    x: ArrayView3<'_, A>,
    future: Option<ArrayView3<'_, A>>,
    total_batch: usize,
) -> (Loss, Params<A>) {
    let (steps, batch, features) = x.dim();
    let mut grads = params.zeros_like();
    let mut loss = Loss::default();
    let enc = lstm::forward(
        &params.encoder,
        spec.activation,
        &Input::Sequence(x),
        steps,
        batch,
        None,
        None,
    );
    let hidden = params.encoder.hidden();
    let mut dh_last = Array2::<A>::zeros((batch, hidden));
    let mut dc_last = Array2::<A>::zeros((batch, hidden));
    let jobs = [
        (
            &params.reconstruction,
            grads.reconstruction.as_mut(),
            steps,
            spec.reconstruction_weight,
            true,
        ),
        (
            &params.prediction,
            grads.prediction.as_mut(),
            spec.horizon,
            spec.prediction_weight,
            false,
        ),
    ];
    for (d, g, len, weight, is_recon) in jobs {
        let (Some(d), Some(g)) = (d, g) else { continue };
        let target = if is_recon {
            reconstruction_target(spec, x)
        } else {
            match future {
                Some(f) => f,
                None => panic!("broken invariant: a predicting model was given no future targets"),
            }
        };
        let n = (total_batch * len * features) as f64;
        let run = decoder_forward(d, spec, &enc, len);
        let scale = A::from_f64(weight as f64 / n).unwrap_or(A::zero());
        let (sse, dy) = sse_and_grad(&run.y, target, scale);
        let mse = sse / n;
        loss.total += weight as f64 * mse;
        if is_recon {
            loss.reconstruction = mse;
        } else {
            loss.prediction = mse;
        }
        let (dh, dc) = decoder_backward(d, g, spec, &enc, &run, dy.view());
        dh_last += &dh;
        if let Some(dc) = dc {
            dc_last += &dc;
        }
    }
    lstm::backward(
        &params.encoder,
        spec.activation,
        &Input::Sequence(x),
        &enc,
        None,
        Some(dh_last.view()),
        Some(dc_last.view()),
        &mut grads.encoder,
    );
    (loss, grads)
}

/// [`loss_and_grad`] over a whole batch, split across `threads` threads by
/// rows of the batch; the parts' gradients are summed.
pub fn loss_and_grad_parallel<A: Real>(
    params: &Params<A>,
    spec: &ModelSpec,
    x: ArrayView3<'_, A>,
    future: Option<ArrayView3<'_, A>>,
    threads: usize,
) -> (Loss, Params<A>) {
    let batch = x.len_of(Axis(1));
    let threads = threads.clamp(1, batch.max(1));
    if threads == 1 {
        return loss_and_grad(params, spec, x, future, batch);
    }
    let chunk = batch.div_ceil(threads);
    let parts: Vec<(Loss, Params<A>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..batch.div_ceil(chunk))
            .map(|k| {
                let lo = (k * chunk).min(batch);
                let hi = ((k + 1) * chunk).min(batch);
                let xs = x.slice(s![.., lo..hi, ..]);
                let fs = future.map(|f| f.slice_move(s![.., lo..hi, ..]));
                scope.spawn(move || loss_and_grad(params, spec, xs, fs, batch))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(part) => part,
                Err(e) => std::panic::resume_unwind(e),
            })
            .collect()
    });
    let mut iter = parts.into_iter();
    let (mut loss, mut grads) = iter.next().expect("at least one part");
    for (l, g) in iter {
        loss += l;
        grads.add_assign(&g);
    }
    (loss, grads)
}

/// Per-window anomaly score: mean squared reconstruction error over the
/// window's steps and features (scaled units). Inputs `[T, B, F]`; one score
/// per window of the batch.
pub fn window_scores<A: Real>(x: ArrayView3<'_, A>, reconstruction: ArrayView3<'_, A>) -> Vec<f64> {
    let (steps, batch, features) = x.dim();
    let n = (steps * features) as f64;
    (0..batch)
        .map(|b| {
            let xs = x.slice(s![.., b, ..]);
            let rs = reconstruction.slice(s![.., b, ..]);
            let sse: f64 = xs
                .iter()
                .zip(rs.iter())
                .map(|(&a, &r)| {
                    let d = (a - r).to_f64().unwrap_or(f64::NAN);
                    d * d
                })
                .sum();
            sse / n
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Activation, Mode};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random3(rng: &mut StdRng, shape: (usize, usize, usize)) -> Array3<f64> {
        Array3::from_shape_fn(shape, |_| rng.random_range(-1.0..1.0))
    }

    /// Central finite differences of the loss against the analytic gradient,
    /// for every element of every parameter tensor. Runs in f64 with
    /// eps = 1e-6, where the finite difference itself carries ~1e-10 of
    /// rounding error. Tolerance: relative error < 1e-6, or absolute error
    /// < 1e-9 for gradients so small that rounding dominates. A wrong
    /// gradient term shows up as relative errors of 1e-2 and more.
    fn gradient_check(spec: &ModelSpec) {
        spec.validate().unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let batch = 3;
        let x = random3(&mut rng, (spec.window, batch, spec.features));
        let fut = random3(&mut rng, (spec.horizon.max(1), batch, spec.features));
        let future = spec.mode.has_prediction().then(|| fut.view());
        let mut params: Params<f64> = Params::init(spec, 11);
        // Non-zero biases everywhere, so that no gradient is trivially zero.
        for mut t in params.tensors_mut() {
            t.mapv_inplace(|v| v + rng.random_range(-0.3..0.3));
        }
        let (_, grads) = loss_and_grad(&params, spec, x.view(), future, batch);
        let names: Vec<String> = params.tensors().into_iter().map(|(n, _)| n).collect();
        let analytic: Vec<Vec<f64>> = grads
            .tensors()
            .into_iter()
            .map(|(_, t)| t.iter().copied().collect())
            .collect();
        let eps = 1e-6;
        for (k, name) in names.iter().enumerate() {
            let len = analytic[k].len();
            for (i, &a) in analytic[k].iter().enumerate() {
                let mut p = params.clone();
                let bump = |p: &mut Params<f64>, d: f64| {
                    let mut ts = p.tensors_mut();
                    let v = ts[k].iter_mut().nth(i).unwrap();
                    *v += d;
                };
                bump(&mut p, eps);
                let lp = loss_and_grad(&p, spec, x.view(), future, batch).0.total;
                bump(&mut p, -2.0 * eps);
                let lm = loss_and_grad(&p, spec, x.view(), future, batch).0.total;
                let numeric = (lp - lm) / (2.0 * eps);
                let rel = (a - numeric).abs() / (a.abs() + numeric.abs()).max(1e-7);
                assert!(
                    rel < 1e-6 || (a - numeric).abs() < 1e-9,
                    "{spec:?}\n{name}[{i}]: analytic {a:e} vs numeric {numeric:e} (relative error {rel:e})"
                );
            }
            assert!(len > 0 || name.ends_with("w_x"), "{name} has no elements");
        }
    }

    fn small(
        activation: Activation,
        decoder_input: DecoderInput,
        reverse: bool,
        mode: Mode,
    ) -> ModelSpec {
        ModelSpec {
            window: 4,
            features: 2,
            hidden: 3,
            horizon: if mode == Mode::Reconstruct { 0 } else { 2 },
            activation,
            decoder_input,
            reverse_reconstruction: reverse,
            mode,
            reconstruction_weight: 1.0,
            prediction_weight: 0.7,
        }
    }

    #[test]
    fn gradients_match_finite_differences_for_every_option() {
        for activation in [Activation::Tanh, Activation::Relu] {
            for decoder_input in [
                DecoderInput::Repeat,
                DecoderInput::State,
                DecoderInput::Conditional,
            ] {
                for reverse in [false, true] {
                    gradient_check(&small(activation, decoder_input, reverse, Mode::Composite));
                }
            }
        }
    }

    #[test]
    fn gradients_match_finite_differences_for_single_decoder_modes() {
        for mode in [Mode::Reconstruct, Mode::Predict] {
            gradient_check(&small(
                Activation::Tanh,
                DecoderInput::Conditional,
                true,
                mode,
            ));
            gradient_check(&small(Activation::Relu, DecoderInput::Repeat, false, mode));
        }
    }

    #[test]
    fn splitting_a_batch_across_threads_gives_the_same_gradient() {
        let spec = small(
            Activation::Tanh,
            DecoderInput::Repeat,
            true,
            Mode::Composite,
        );
        let mut rng = StdRng::seed_from_u64(3);
        let x = random3(&mut rng, (4, 7, 2));
        let f = random3(&mut rng, (2, 7, 2));
        let params: Params<f64> = Params::init(&spec, 1);
        let (l1, g1) = loss_and_grad_parallel(&params, &spec, x.view(), Some(f.view()), 1);
        let (l3, g3) = loss_and_grad_parallel(&params, &spec, x.view(), Some(f.view()), 3);
        assert!((l1.total - l3.total).abs() < 1e-12);
        for ((n, a), (_, b)) in g1.tensors().into_iter().zip(g3.tensors()) {
            let diff = (&a - &b).mapv(f64::abs).fold(0.0f64, |m, &v| m.max(v));
            assert!(diff < 1e-12, "{n} differs by {diff}");
        }
    }

    #[test]
    fn reversed_reconstruction_is_reported_in_natural_order() {
        // A model trained on reversed targets emits its outputs last step first;
        // `forward` must undo that. With identical parameters, the reversed
        // spec's output is the plain spec's output flipped in time.
        let plain = small(
            Activation::Tanh,
            DecoderInput::State,
            false,
            Mode::Reconstruct,
        );
        let rev = ModelSpec {
            reverse_reconstruction: true,
            ..plain.clone()
        };
        let mut rng = StdRng::seed_from_u64(5);
        let x = random3(&mut rng, (4, 2, 2));
        let params: Params<f64> = Params::init(&plain, 2);
        let a = forward(&params, &plain, x.view()).reconstruction.unwrap();
        let b = forward(&params, &rev, x.view()).reconstruction.unwrap();
        let flipped = a.slice(s![..;-1, .., ..]);
        assert!((&b - &flipped).mapv(f64::abs).sum() < 1e-12);
        assert!(
            (&b - &a).mapv(f64::abs).sum() > 1e-6,
            "outputs differ over time"
        );
    }
}
