//! The trainable tensors of a composite LSTM autoencoder, their shapes and
//! their initialisation.
//!
//! Layout conventions shared by the trainer and the ONNX exporter:
//! - an LSTM's gates are stacked in ONNX order `[i, o, f, c]` along the last
//!   axis of `w_x` `[I, 4H]`, `w_h` `[H, 4H]` and `b` `[4H]`, so a whole batch
//!   computes all four gates with one product `x·w_x + h·w_h + b`;
//! - a decoder's per-step dense layer is `y = h·w_out + b_out`.

use ndarray::{Array1, Array2, ArrayViewD, ArrayViewMutD};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::spec::{DecoderInput, ModelSpec};
use crate::model::real::Real;

/// One LSTM layer. `w_x` has zero rows for a decoder without input.
#[derive(Debug, Clone, PartialEq)]
pub struct LstmParams<A> {
    pub w_x: Array2<A>,
    pub w_h: Array2<A>,
    pub b: Array1<A>,
}

/// A decoder: its LSTM and the per-step dense layer (`TimeDistributed(Dense(F))`).
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderParams<A> {
    pub lstm: LstmParams<A>,
    pub w_out: Array2<A>,
    pub b_out: Array1<A>,
}

/// All parameters of one model.
#[derive(Debug, Clone, PartialEq)]
pub struct Params<A> {
    pub encoder: LstmParams<A>,
    pub reconstruction: Option<DecoderParams<A>>,
    pub prediction: Option<DecoderParams<A>>,
}

/// Input width of a decoder's LSTM for a given way of feeding it.
pub fn decoder_input_width(spec: &ModelSpec) -> usize {
    match spec.decoder_input {
        DecoderInput::Repeat => spec.hidden,
        DecoderInput::State => 0,
        DecoderInput::Conditional => spec.features,
    }
}

fn glorot<A: Real>(rng: &mut StdRng, rows: usize, cols: usize) -> Array2<A> {
    // Keras' glorot_uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)).
    let limit = (6.0 / (rows + cols).max(1) as f64).sqrt();
    Array2::from_shape_fn((rows, cols), |_| {
        A::from_f64(rng.random_range(-limit..limit)).unwrap_or(A::zero())
    })
}

impl<A: Real> LstmParams<A> {
    fn init(rng: &mut StdRng, input: usize, hidden: usize) -> Self {
        let mut b = Array1::zeros(4 * hidden);
        // Forget-gate bias 1 (Keras' unit_forget_bias): remember by default,
        // which keeps early gradients from vanishing through time.
        b.slice_mut(ndarray::s![2 * hidden..3 * hidden])
            .fill(A::one());
        LstmParams {
            w_x: glorot(rng, input, 4 * hidden),
            w_h: glorot(rng, hidden, 4 * hidden),
            b,
        }
    }

    fn zeros_like(&self) -> Self {
        LstmParams {
            w_x: Array2::zeros(self.w_x.raw_dim()),
            w_h: Array2::zeros(self.w_h.raw_dim()),
            b: Array1::zeros(self.b.raw_dim()),
        }
    }

    pub fn hidden(&self) -> usize {
        self.w_h.nrows()
    }
}

impl<A: Real> DecoderParams<A> {
    fn init(rng: &mut StdRng, input: usize, hidden: usize, features: usize) -> Self {
        DecoderParams {
            lstm: LstmParams::init(rng, input, hidden),
            w_out: glorot(rng, hidden, features),
            b_out: Array1::zeros(features),
        }
    }

    fn zeros_like(&self) -> Self {
        DecoderParams {
            lstm: self.lstm.zeros_like(),
            w_out: Array2::zeros(self.w_out.raw_dim()),
            b_out: Array1::zeros(self.b_out.raw_dim()),
        }
    }
}

impl<A: Real> Params<A> {
    /// Random initial parameters; the same spec and seed give the same model.
    pub fn init(spec: &ModelSpec, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let (f, h) = (spec.features, spec.hidden);
        let input = decoder_input_width(spec);
        let encoder = LstmParams::init(&mut rng, f, h);
        let reconstruction = spec
            .mode
            .has_reconstruction()
            .then(|| DecoderParams::init(&mut rng, input, h, f));
        let prediction = spec
            .mode
            .has_prediction()
            .then(|| DecoderParams::init(&mut rng, input, h, f));
        Params {
            encoder,
            reconstruction,
            prediction,
        }
    }

    /// Same shapes, all zeros: the gradient accumulator.
    pub fn zeros_like(&self) -> Self {
        Params {
            encoder: self.encoder.zeros_like(),
            reconstruction: self.reconstruction.as_ref().map(DecoderParams::zeros_like),
            prediction: self.prediction.as_ref().map(DecoderParams::zeros_like),
        }
    }

    /// Every tensor with a stable name, in a fixed order.
    pub fn tensors(&self) -> Vec<(String, ArrayViewD<'_, A>)> {
        let mut out = vec![
            (
                "encoder.w_x".to_string(),
                self.encoder.w_x.view().into_dyn(),
            ),
            (
                "encoder.w_h".to_string(),
                self.encoder.w_h.view().into_dyn(),
            ),
            ("encoder.b".to_string(), self.encoder.b.view().into_dyn()),
        ];
        for (name, d) in [
            ("reconstruction", &self.reconstruction),
            ("prediction", &self.prediction),
        ] {
            if let Some(d) = d {
                out.push((format!("{name}.w_x"), d.lstm.w_x.view().into_dyn()));
                out.push((format!("{name}.w_h"), d.lstm.w_h.view().into_dyn()));
                out.push((format!("{name}.b"), d.lstm.b.view().into_dyn()));
                out.push((format!("{name}.w_out"), d.w_out.view().into_dyn()));
                out.push((format!("{name}.b_out"), d.b_out.view().into_dyn()));
            }
        }
        out
    }

    /// Mutable views of every tensor, in the order of [`Params::tensors`].
    pub fn tensors_mut(&mut self) -> Vec<ArrayViewMutD<'_, A>> {
        let mut out = vec![
            self.encoder.w_x.view_mut().into_dyn(),
            self.encoder.w_h.view_mut().into_dyn(),
            self.encoder.b.view_mut().into_dyn(),
        ];
        for d in [&mut self.reconstruction, &mut self.prediction]
            .into_iter()
            .flatten()
        {
            out.push(d.lstm.w_x.view_mut().into_dyn());
            out.push(d.lstm.w_h.view_mut().into_dyn());
            out.push(d.lstm.b.view_mut().into_dyn());
            out.push(d.w_out.view_mut().into_dyn());
            out.push(d.b_out.view_mut().into_dyn());
        }
        out
    }

    /// Adds `other` into `self` (gradient accumulation across threads).
    pub fn add_assign(&mut self, other: &Params<A>) {
        for (mut a, (_, b)) in self.tensors_mut().into_iter().zip(other.tensors()) {
            a += &b;
        }
    }

    pub fn count(&self) -> usize {
        self.tensors().iter().map(|(_, t)| t.len()).sum()
    }

    /// Converts the element type (f64 for gradient checks, f32 for export).
    pub fn cast<B: Real>(&self) -> Params<B> {
        let c2 =
            |a: &Array2<A>| a.mapv(|v| B::from_f64(v.to_f64().unwrap_or(0.0)).unwrap_or(B::zero()));
        let c1 =
            |a: &Array1<A>| a.mapv(|v| B::from_f64(v.to_f64().unwrap_or(0.0)).unwrap_or(B::zero()));
        let lstm = |l: &LstmParams<A>| LstmParams {
            w_x: c2(&l.w_x),
            w_h: c2(&l.w_h),
            b: c1(&l.b),
        };
        let dec = |d: &DecoderParams<A>| DecoderParams {
            lstm: lstm(&d.lstm),
            w_out: c2(&d.w_out),
            b_out: c1(&d.b_out),
        };
        Params {
            encoder: lstm(&self.encoder),
            reconstruction: self.reconstruction.as_ref().map(dec),
            prediction: self.prediction.as_ref().map(dec),
        }
    }
}
