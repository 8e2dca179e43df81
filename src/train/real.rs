//! [`Real`]: the float types the trainer runs in. Training uses `f32`; the
//! finite-difference gradient check runs the same code in `f64`.

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
    /// Logistic sigmoid, written to stay finite for large |x|.
    #[inline(always)]
    fn sigmoid(self) -> Self {
        Self::one() / (Self::one() + (-self).exp())
    }
}

impl Real for f32 {}
impl Real for f64 {}
