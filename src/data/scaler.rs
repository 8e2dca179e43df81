//! Per-feature scaling: fitted on the training rows, stored in the model's
//! manifest, applied identically by training, offline scoring and the
//! daemon.
//!
//! An LSTM with tanh saturates on raw values like 70 °F or 10⁶ bytes, and
//! the reconstruction error of features on different scales is not
//! comparable; scaling fixes both.

use ndarray::{Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

/// How a [`Scaler`] is fitted.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "lowercase")]
pub enum ScalerKind {
    /// Zero mean, unit (population) standard deviation.
    Standard,
    /// The training range maps to [0, 1].
    MinMax,
}

/// `scaled = (raw - offset) * scale`, per feature.
///
/// Stored as offset and multiplier (not mean and std) so both kinds apply
/// with the same two operations, which the daemon and the ONNX graph can
/// reproduce without knowing the kind.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Scaler {
    pub kind: ScalerKind,
    pub offset: Vec<f32>,
    pub scale: Vec<f32>,
}

impl Scaler {
    /// Fits one offset and scale per column of `values` (`[rows, F]`).
    ///
    /// Statistics are accumulated in f64 so long series do not lose
    /// precision. A column whose spread is zero (constant) or too small to
    /// invert in f32 gets scale 1: dividing by its spread would be a
    /// division by zero, and with scale 1 its scaled training values are
    /// all 0, so a later departure from the constant still shows up, in raw
    /// units. With no rows at all the scaler is the identity.
    pub fn fit(kind: ScalerKind, values: ArrayView2<f32>) -> Scaler {
        let mut offset = Vec::with_capacity(values.ncols());
        let mut scale = Vec::with_capacity(values.ncols());
        for column in values.axis_iter(Axis(1)) {
            let (o, spread) = if column.is_empty() {
                (0.0, 0.0)
            } else {
                match kind {
                    ScalerKind::Standard => {
                        let n = column.len() as f64;
                        let mean = column.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
                        let var = column
                            .iter()
                            .map(|&v| (f64::from(v) - mean).powi(2))
                            .sum::<f64>()
                            / n;
                        (mean, var.sqrt())
                    }
                    ScalerKind::MinMax => {
                        let (lo, hi) = column
                            .iter()
                            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                                (lo.min(f64::from(v)), hi.max(f64::from(v)))
                            });
                        (lo, hi - lo)
                    }
                }
            };
            let s = (1.0 / spread) as f32;
            offset.push(o as f32);
            scale.push(if spread > 0.0 && s.is_finite() {
                s
            } else {
                1.0
            });
        }
        Scaler {
            kind,
            offset,
            scale,
        }
    }

    /// Number of features this scaler was fitted on.
    pub fn features(&self) -> usize {
        self.offset.len()
    }

    /// Scales raw values `[rows, F]`.
    ///
    /// # Panics
    /// If the number of columns differs from [`Scaler::features`]; callers
    /// check the series against the model's spec first.
    pub fn transform(&self, values: ArrayView2<f32>) -> Array2<f32> {
        self.check_columns(values.ncols());
        let mut out = values.to_owned();
        for (mut column, (&o, &s)) in out
            .axis_iter_mut(Axis(1))
            .zip(self.offset.iter().zip(&self.scale))
        {
            column.mapv_inplace(|v| (v - o) * s);
        }
        out
    }

    /// Maps scaled values back to raw units (e.g. to plot a reconstruction).
    ///
    /// # Panics
    /// If the number of columns differs from [`Scaler::features`].
    pub fn inverse(&self, values: ArrayView2<f32>) -> Array2<f32> {
        self.check_columns(values.ncols());
        let mut out = values.to_owned();
        for (mut column, (&o, &s)) in out
            .axis_iter_mut(Axis(1))
            .zip(self.offset.iter().zip(&self.scale))
        {
            column.mapv_inplace(|v| v / s + o);
        }
        out
    }

    fn check_columns(&self, columns: usize) {
        assert_eq!(
            columns,
            self.features(),
            "Scaler: values have {columns} columns but the scaler was fitted on {}",
            self.features()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr2, Array2};

    fn close(a: &[f32], b: &[f32], tol: f32) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol)
    }

    #[test]
    fn standard_uses_mean_and_population_std() {
        // Column 0: mean 2.5, population std sqrt(1.25) = 1.118034.
        // Column 1: mean 20, population std 10.
        let v = arr2(&[[1.0f32, 10.0], [2.0, 30.0], [3.0, 10.0], [4.0, 30.0]]);
        let s = Scaler::fit(ScalerKind::Standard, v.view());
        assert!(close(&s.offset, &[2.5, 20.0], 1e-6));
        assert!(close(&s.scale, &[1.0 / 1.118034, 0.1], 1e-6));
        let t = s.transform(v.view());
        let c0 = [
            -1.5 / 1.118034,
            -0.5 / 1.118034,
            0.5 / 1.118034,
            1.5 / 1.118034,
        ];
        assert!(close(&t.column(0).to_vec(), &c0, 1e-5));
        assert!(close(&t.column(1).to_vec(), &[-1.0, 1.0, -1.0, 1.0], 1e-5));
    }

    #[test]
    fn minmax_maps_the_range_to_unit_interval() {
        let v = arr2(&[[2.0f32], [4.0], [10.0]]);
        let s = Scaler::fit(ScalerKind::MinMax, v.view());
        assert_eq!((s.offset[0], s.scale[0]), (2.0, 0.125));
        assert_eq!(
            s.transform(v.view()).column(0).to_vec(),
            vec![0.0, 0.25, 1.0]
        );
        // Values outside the training range are not clipped.
        assert_eq!(s.transform(arr2(&[[18.0f32]]).view())[[0, 0]], 2.0);
    }

    #[test]
    fn constant_column_gets_scale_one() {
        let v = arr2(&[[5.0f32, 1.0], [5.0, 2.0], [5.0, 3.0]]);
        for kind in [ScalerKind::Standard, ScalerKind::MinMax] {
            let s = Scaler::fit(kind.clone(), v.view());
            assert_eq!((s.offset[0], s.scale[0]), (5.0, 1.0), "{kind:?}");
            let t = s.transform(v.view());
            assert!(t.column(0).iter().all(|&x| x == 0.0));
            assert!(t.iter().all(|x| x.is_finite()));
            // A departure from the constant shows in raw units.
            assert_eq!(s.transform(arr2(&[[7.0f32, 2.0]]).view())[[0, 0]], 2.0);
        }
    }

    #[test]
    fn large_offsets_keep_precision() {
        // 1e6 ± 1: an f32 running sum of squares would lose the spread.
        let v = Array2::from_shape_fn((10_000, 1), |(r, _)| {
            1.0e6 + if r % 2 == 0 { -1.0 } else { 1.0 }
        });
        let s = Scaler::fit(ScalerKind::Standard, v.view());
        assert_eq!(s.offset[0], 1.0e6);
        assert!((s.scale[0] - 1.0).abs() < 1e-6, "{}", s.scale[0]);
    }

    #[test]
    fn inverse_undoes_transform() {
        let v = Array2::from_shape_fn((50, 3), |(r, f)| ((r * 7 + f * 13) % 17) as f32 * 1.5 - 4.0);
        for kind in [ScalerKind::Standard, ScalerKind::MinMax] {
            let s = Scaler::fit(kind, v.view());
            let back = s.inverse(s.transform(v.view()).view());
            assert!(close(back.as_slice().unwrap(), v.as_slice().unwrap(), 1e-4));
        }
    }

    #[test]
    fn no_rows_gives_the_identity() {
        let s = Scaler::fit(ScalerKind::Standard, Array2::<f32>::zeros((0, 2)).view());
        assert_eq!((s.offset, s.scale), (vec![0.0, 0.0], vec![1.0, 1.0]));
    }

    #[test]
    fn serializes_with_lowercase_kind() {
        let s = Scaler {
            kind: ScalerKind::MinMax,
            offset: vec![1.0],
            scale: vec![0.5],
        };
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"kind":"minmax","offset":[1.0],"scale":[0.5]}"#);
        assert_eq!(serde_json::from_str::<Scaler>(&json).unwrap(), s);
    }

    #[test]
    #[should_panic(expected = "fitted on 1")]
    fn wrong_column_count_panics() {
        let s = Scaler::fit(ScalerKind::Standard, arr2(&[[1.0f32], [2.0]]).view());
        s.transform(arr2(&[[1.0f32, 2.0]]).view());
    }
}
