//! Adam (Kingma & Ba 2015) with global gradient-norm clipping.

use crate::model::Params;

/// Optimiser state: first and second moment estimates per parameter.
pub struct Adam {
    m: Params<f32>,
    v: Params<f32>,
    step: i32,
    pub learning_rate: f32,
    pub beta1: f32,
    pub beta2: f32,
    /// Keras' default epsilon, so results compare with the tutorial's.
    pub epsilon: f32,
}

impl Adam {
    pub fn new(params: &Params<f32>, learning_rate: f32) -> Self {
        Adam {
            m: params.zeros_like(),
            v: params.zeros_like(),
            step: 0,
            learning_rate,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-7,
        }
    }

    /// One update. Returns the gradient's global L2 norm before clipping.
    /// With `clip_norm > 0`, a gradient longer than that is scaled down to it:
    /// recurrent nets occasionally produce exploding gradients, and one bad
    /// batch must not wreck the weights.
    pub fn update(&mut self, params: &mut Params<f32>, grads: &Params<f32>, clip_norm: f32) -> f32 {
        let norm = grads
            .tensors()
            .iter()
            .flat_map(|(_, t)| t.iter())
            .map(|&g| (g as f64) * (g as f64))
            .sum::<f64>()
            .sqrt() as f32;
        let clip = if clip_norm > 0.0 && norm > clip_norm {
            clip_norm / norm
        } else {
            1.0
        };
        self.step += 1;
        let (b1, b2) = (self.beta1, self.beta2);
        let lr_t =
            self.learning_rate * (1.0 - b2.powi(self.step)).sqrt() / (1.0 - b1.powi(self.step));
        let eps = self.epsilon;
        let grads = grads.tensors();
        for (((mut p, mut m), mut v), (_, g)) in params
            .tensors_mut()
            .into_iter()
            .zip(self.m.tensors_mut())
            .zip(self.v.tensors_mut())
            .zip(grads)
        {
            ndarray::Zip::from(&mut p)
                .and(&mut m)
                .and(&mut v)
                .and(&g)
                .for_each(|p, m, v, &g| {
                    let g = g * clip;
                    *m = b1 * *m + (1.0 - b1) * g;
                    *v = b2 * *v + (1.0 - b2) * g * g;
                    *p -= lr_t * *m / (v.sqrt() + eps);
                });
        }
        norm
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Mode, ModelSpec};

    #[test]
    fn first_step_moves_each_weight_by_the_learning_rate_against_its_gradient() {
        // Adam's first step is lr · g/|g| per element (bias-corrected moments).
        let spec = ModelSpec {
            window: 2,
            features: 1,
            hidden: 2,
            horizon: 0,
            mode: Mode::Reconstruct,
            ..ModelSpec::default()
        };
        let p0: Params<f32> = Params::init(&spec, 1);
        let mut grads = p0.zeros_like();
        for (k, mut t) in grads.tensors_mut().into_iter().enumerate() {
            t.iter_mut()
                .enumerate()
                .for_each(|(i, g)| *g = if (i + k) % 2 == 0 { 0.5 } else { -2.0 });
        }
        let mut p = p0.clone();
        let mut adam = Adam::new(&p, 0.01);
        adam.update(&mut p, &grads, 0.0);
        for ((_, a), ((_, b), (_, g))) in p
            .tensors()
            .into_iter()
            .zip(p0.tensors().into_iter().zip(grads.tensors()))
        {
            for ((a, b), g) in a.iter().zip(b.iter()).zip(g.iter()) {
                assert!((a - (b - 0.01 * g.signum())).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn clipping_bounds_the_applied_gradient() {
        let spec = ModelSpec {
            window: 2,
            features: 1,
            hidden: 2,
            horizon: 0,
            mode: Mode::Reconstruct,
            ..ModelSpec::default()
        };
        let p0: Params<f32> = Params::init(&spec, 1);
        let mut grads = p0.zeros_like();
        grads.encoder.b.fill(100.0);
        let mut p = p0.clone();
        let mut adam = Adam::new(&p, 0.01);
        let norm = adam.update(&mut p, &grads, 1.0);
        assert!(
            (norm - 100.0 * (8.0f32).sqrt()).abs() < 1e-2,
            "reports the unclipped norm"
        );
        // The second moment saw the clipped gradient: v = (1-β2)·(g·clip)².
        let clipped = 100.0 / norm;
        let expected_v = (1.0 - 0.999) * clipped * clipped;
        assert!((adam.v.encoder.b[0] - expected_v).abs() < 1e-9);
    }
}
