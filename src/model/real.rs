//! [`Real`]: the float types the trainer runs in. Training uses `f32`; the
//! finite-difference gradient check runs the same code in `f64`.
//!
//! The LSTM spends much of its time in sigmoid and tanh. `f32` uses a
//! branch-free rational approximation of tanh (the form Eigen uses, error
//! below 1e-6 over the whole range, checked by a test) that the compiler can
//! vectorise, where `f32::tanh`/`exp` are scalar library calls. `f64` keeps
//! the exact functions so the gradient check sees exact math.

use std::fmt::{Debug, Display};
use std::ops::{AddAssign, MulAssign, SubAssign};

use ndarray::{LinalgScalar, ScalarOperand};
use num_traits::{Float, FromPrimitive, ToPrimitive};

pub trait Real:
    LinalgScalar
    + Float
    + FromPrimitive
    + ToPrimitive
    + ScalarOperand
    + AddAssign
    + SubAssign
    + MulAssign
    + Send
    + Sync
    + Debug
    + Display
    + Default
    + 'static
{
    /// Logistic sigmoid.
    #[inline(always)]
    fn sigmoid(self) -> Self {
        Self::one() / (Self::one() + (-self).exp())
    }

    /// Hyperbolic tangent.
    #[inline(always)]
    fn act_tanh(self) -> Self {
        self.tanh()
    }
}

impl Real for f32 {
    #[inline(always)]
    fn sigmoid(self) -> f32 {
        0.5 * tanh_f32(0.5 * self) + 0.5
    }

    #[inline(always)]
    fn act_tanh(self) -> f32 {
        tanh_f32(self)
    }
}

impl Real for f64 {}

/// Rational approximation of tanh for f32: odd polynomial of degree 13 over
/// an even one of degree 6, on x clamped to ±7.905 (where tanh is 1 in f32).
/// Plain `a * b + c`, not `mul_add`: without the `fma` target feature
/// `mul_add` is a slow library call.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311;
    const A1: f32 = 4.893_524_6e-3;
    const A3: f32 = 6.372_619_3e-4;
    const A5: f32 = 1.485_722_4e-5;
    const A7: f32 = 5.122_297e-8;
    const A9: f32 = -8.604_672e-11;
    const A11: f32 = 2.000_188e-13;
    const A13: f32 = -2.760_768_5e-16;
    const B0: f32 = 4.893_525e-3;
    const B2: f32 = 2.268_434_7e-3;
    const B4: f32 = 1.185_347e-4;
    const B6: f32 = 1.198_258_4e-6;
    let x = x.clamp(-CLAMP, CLAMP);
    let x2 = x * x;
    let p = x2 * A13 + A11;
    let p = x2 * p + A9;
    let p = x2 * p + A7;
    let p = x2 * p + A5;
    let p = x2 * p + A3;
    let p = x2 * p + A1;
    let p = x * p;
    let q = x2 * B6 + B4;
    let q = x2 * q + B2;
    let q = x2 * q + B0;
    p / q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_f32_activations_match_exact_ones() {
        let mut worst_tanh = 0.0f64;
        let mut worst_sig = 0.0f64;
        let mut x = -30.0f64;
        while x <= 30.0 {
            let t = tanh_f32(x as f32) as f64;
            worst_tanh = worst_tanh.max((t - x.tanh()).abs());
            let s = (x as f32).sigmoid() as f64;
            worst_sig = worst_sig.max((s - 1.0 / (1.0 + (-x).exp())).abs());
            x += 0.001;
        }
        assert!(worst_tanh < 1e-6, "tanh error {worst_tanh:e}");
        assert!(worst_sig < 1e-6, "sigmoid error {worst_sig:e}");
        assert_eq!(tanh_f32(0.0), 0.0);
        assert_eq!(tanh_f32(100.0), tanh_f32(8.0));
    }
}
