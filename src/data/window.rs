//! Cutting a series into windows: which rows start a window, the
//! chronological train/validation split, and gathering windows into the
//! tensors the trainer (time-major) and ONNX Runtime (batch-major) consume.
//!
//! A window is `window` (T) consecutive rows; a training sample also needs
//! the `horizon` (P) rows after it as prediction targets. Windows are
//! identified by their start row, so the same start list drives inputs and
//! targets and they cannot drift apart.
//!
//! (ndarray's `s!` macro expands to `#[allow(unsafe_code)]`, which the
//! crate-wide `forbid(unsafe_code)` rejects, hence `slice_axis`.)

use ndarray::{Array3, ArrayView2, Axis, Slice};

use super::DataError;

/// Start rows of windows of `window` rows that also have `horizon` rows
/// after them, every `stride` rows, inside rows `[from, to)`.
///
/// # Panics
/// If `stride` is 0: there would be infinitely many windows, so it is a
/// caller bug ([`chronological_split`] validates it for user input).
pub fn window_starts(
    from: usize,
    to: usize,
    window: usize,
    horizon: usize,
    stride: usize,
) -> Vec<usize> {
    assert!(stride > 0, "window_starts: stride must be at least 1");
    let span = window + horizon;
    if to < from || to - from < span {
        return Vec::new();
    }
    (from..=to - span).step_by(stride).collect()
}

/// Default `windowing.max_gap_steps`: a step longer than this many typical
/// steps is a gap that no window spans. Ten tolerates jitter and a few
/// missed readings, and still splits at a stopped sensor or an outage.
pub const DEFAULT_MAX_GAP_STEPS: u32 = 10;

/// The median step between consecutive `timestamps` (the typical step of a
/// series); `None` with fewer than two. The median, not the mean, so that
/// the gaps being looked for do not stretch the yardstick.
pub fn median_step(timestamps: &[i64]) -> Option<i64> {
    let mut steps: Vec<i64> = timestamps
        .windows(2)
        .map(|p| p[1].saturating_sub(p[0]))
        .collect();
    lower_median(&mut steps)
}

/// The median of `steps` (reordered), the lower one of an even count: with
/// few steps the smaller one is the cadence, the larger may already be a
/// pause. `None` when empty.
pub fn lower_median(steps: &mut [i64]) -> Option<i64> {
    if steps.is_empty() {
        return None;
    }
    let mid = (steps.len() - 1) / 2;
    Some(*steps.select_nth_unstable(mid).1)
}

/// Whether a `step` between two points is a gap in time: longer than
/// `max_gap_steps` times the `typical` step. `max_gap_steps = 0` turns the
/// rule off; an unknown (non-positive) typical step finds no gap.
pub fn is_gap(step: i64, typical: i64, max_gap_steps: u32) -> bool {
    max_gap_steps > 0 && typical > 0 && step > typical.saturating_mul(i64::from(max_gap_steps))
}

/// The row ranges of a series between its gaps in time ([`is_gap`] against
/// the series' [`median_step`]): windows are cut inside each range, so no
/// window spans a gap. One range when there is none.
pub fn gapless_runs(timestamps: &[i64], max_gap_steps: u32) -> Vec<std::ops::Range<usize>> {
    let typical = median_step(timestamps).unwrap_or(0);
    let mut runs = vec![];
    let mut start = 0;
    for (i, p) in timestamps.windows(2).enumerate() {
        if is_gap(p[1].saturating_sub(p[0]), typical, max_gap_steps) {
            runs.push(start..i + 1);
            start = i + 1;
        }
    }
    runs.push(start..timestamps.len());
    runs
}

/// Window start rows on either side of a chronological split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Starts of training windows; each window and its horizon end at or
    /// before `split_row`.
    pub train: Vec<usize>,
    /// Starts of validation windows; each starts at or after `split_row`.
    pub validation: Vec<usize>,
    /// First row of the validation part.
    pub split_row: usize,
    /// The validation part was made larger than `validation_fraction` asks
    /// because the series is short (see [`chronological_split`]).
    pub widened: bool,
}

/// Fewest validation windows [`chronological_split`] aims for: the
/// threshold is calibrated on their scores, and fewer than this leaves it
/// set by one or two windows.
pub const MIN_VALIDATION_WINDOWS: usize = 10;

/// Chronological split: the first `1 - validation_fraction` of the rows for
/// training, the rest for validation; no window (with its horizon) straddles
/// `split_row`.
///
/// Chronological rather than shuffled, because neighbouring windows overlap:
/// a shuffled split would validate on rows the model trained on, and the
/// threshold calibrated on validation scores would be too low.
///
/// The split row is `round(rows × (1 − validation_fraction))`, except on a
/// short series where that leaves fewer than [`MIN_VALIDATION_WINDOWS`]
/// validation windows: the validation part then grows (one warning) until it
/// holds that many, as long as training keeps at least one window, so the
/// default fraction does not refuse a small file. [`Split::widened`] says so.
pub fn chronological_split(
    rows: usize,
    window: usize,
    horizon: usize,
    stride: usize,
    validation_fraction: f64,
) -> Result<Split, DataError> {
    if window == 0 {
        return Err(DataError::InvalidParameter {
            name: "window",
            value: window.to_string(),
            reason: "must be at least 1",
        });
    }
    if stride == 0 {
        return Err(DataError::InvalidParameter {
            name: "stride",
            value: stride.to_string(),
            reason: "must be at least 1",
        });
    }
    if !(validation_fraction > 0.0 && validation_fraction < 1.0) {
        return Err(DataError::InvalidParameter {
            name: "validation_fraction",
            value: validation_fraction.to_string(),
            reason: "must be strictly between 0 and 1 (both parts need windows)",
        });
    }
    if rows < window + horizon {
        return Err(DataError::TooShort {
            rows,
            window,
            horizon,
        });
    }
    let split_row = ((rows as f64) * (1.0 - validation_fraction)).round() as usize;
    let mut split_row = split_row.min(rows);
    let span = window + horizon;
    let count = |from: usize, to: usize| {
        if to < from + span {
            0
        } else {
            (to - from - span) / stride + 1
        }
    };
    let mut widened = false;
    if count(split_row, rows) < MIN_VALIDATION_WINDOWS && split_row >= span {
        // The latest split row that gives MIN_VALIDATION_WINDOWS windows,
        // but never one that leaves training without a window.
        let wanted = span + (MIN_VALIDATION_WINDOWS - 1) * stride;
        let widest = rows.saturating_sub(wanted).max(span);
        if widest < split_row && count(widest, rows) > 0 {
            tracing::warn!(
                rows,
                validation_rows = rows - widest,
                configured_rows = rows - split_row,
                "data.validation_fraction = {validation_fraction} leaves {} validation windows on this \
                 short series; validating on the last {} rows instead",
                count(split_row, rows),
                rows - widest
            );
            split_row = widest;
            widened = true;
        }
    }
    let train = window_starts(0, split_row, window, horizon, stride);
    if train.is_empty() {
        return Err(DataError::EmptySplit {
            side: "training",
            from: 0,
            to: split_row,
            window,
            horizon,
            hint: "lower data.validation_fraction, or use a shorter model.window or model.horizon",
        });
    }
    let validation = window_starts(split_row, rows, window, horizon, stride);
    if validation.is_empty() {
        return Err(DataError::EmptySplit {
            side: "validation",
            from: split_row,
            to: rows,
            window,
            horizon,
            hint: "raise data.validation_fraction, or use a shorter model.window or model.horizon",
        });
    }
    Ok(Split {
        train,
        validation,
        split_row,
        widened,
    })
}

/// Gathers the windows starting at `starts` into a time-major tensor
/// `[T, B, F]`, the trainer's layout (one time step is a contiguous batch).
///
/// # Panics
/// If a window runs past the last row: starts come from [`window_starts`],
/// so that is a caller bug.
pub fn gather_time_major(values: ArrayView2<f32>, starts: &[usize], window: usize) -> Array3<f32> {
    gather_time_major_at(values, starts, 0, window)
}

/// Gathers the `horizon` rows after each window into the prediction targets
/// `[P, B, F]`, time-major like [`gather_time_major`].
///
/// # Panics
/// If a horizon runs past the last row.
pub fn gather_horizon_time_major(
    values: ArrayView2<f32>,
    starts: &[usize],
    window: usize,
    horizon: usize,
) -> Array3<f32> {
    gather_time_major_at(values, starts, window, horizon)
}

fn gather_time_major_at(
    values: ArrayView2<f32>,
    starts: &[usize],
    offset: usize,
    len: usize,
) -> Array3<f32> {
    let mut out = Array3::zeros((len, starts.len(), values.ncols()));
    for (b, &start) in starts.iter().enumerate() {
        let from = start + offset;
        out.index_axis_mut(Axis(1), b)
            .assign(&values.slice_axis(Axis(0), Slice::from(from..from + len)));
    }
    out
}

/// Gathers the windows starting at `starts` into `[B, T, F]`, the layout of
/// the ONNX model's input.
///
/// # Panics
/// If a window runs past the last row.
pub fn gather_batch_major(values: ArrayView2<f32>, starts: &[usize], window: usize) -> Array3<f32> {
    let mut out = Array3::zeros((starts.len(), window, values.ncols()));
    for (b, &start) in starts.iter().enumerate() {
        out.index_axis_mut(Axis(0), b)
            .assign(&values.slice_axis(Axis(0), Slice::from(start..start + window)));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn gaps_split_a_series_where_a_step_exceeds_the_typical_step_times_the_limit() {
        // Steps of 60 s, then 11 minutes (a gap at 10 steps), then 10
        // minutes (not one), then 60 s.
        let ts = [0, 60, 120, 780, 840, 1440, 1500].map(|s: i64| s * 1000);
        assert_eq!(super::median_step(&ts), Some(60_000));
        assert_eq!(super::gapless_runs(&ts, 10), vec![0..3, 3..7]);
        assert_eq!(super::gapless_runs(&ts, 9), vec![0..3, 3..5, 5..7]);
        assert_eq!(
            super::gapless_runs(&ts, 0),
            vec![0..7],
            "0 turns the rule off"
        );
        assert_eq!(super::gapless_runs(&ts[..1], 10), vec![0..1]);
        assert_eq!(super::gapless_runs(&[], 10), vec![0..0]);
        assert!(!super::is_gap(i64::MAX, 0, 10), "no typical step, no gap");
        assert!(
            !super::is_gap(i64::MAX, i64::MAX / 2, 10),
            "the limit saturates instead of overflowing"
        );
    }

    use super::*;
    use ndarray::Array2;

    #[test]
    fn starts_leave_room_for_the_horizon() {
        // Windows of 3 + 1 rows in [0, 10): last start is 6.
        assert_eq!(window_starts(0, 10, 3, 1, 2), vec![0, 2, 4, 6]);
        assert_eq!(window_starts(0, 10, 3, 1, 3), vec![0, 3, 6]);
        assert_eq!(window_starts(5, 9, 4, 0, 1), vec![5]);
        assert_eq!(window_starts(5, 8, 4, 0, 1), Vec::<usize>::new());
        assert_eq!(window_starts(9, 5, 1, 0, 1), Vec::<usize>::new());
    }

    #[test]
    #[should_panic(expected = "stride")]
    fn zero_stride_is_a_bug() {
        window_starts(0, 10, 2, 0, 0);
    }

    #[test]
    fn split_is_chronological_and_nothing_straddles() {
        let s = chronological_split(100, 10, 2, 1, 0.25).unwrap();
        assert_eq!(s.split_row, 75);
        assert!(!s.widened);
        // Training windows of 12 rows fit in [0, 75): starts 0..=63.
        assert_eq!(s.train, (0..=63).collect::<Vec<_>>());
        // Validation windows fit in [75, 100): starts 75..=88.
        assert_eq!(s.validation, (75..=88).collect::<Vec<_>>());
        let s = chronological_split(1000, 64, 8, 5, 0.25).unwrap();
        assert_eq!(s.split_row, 750);
        assert!(s.train.iter().all(|&t| t + 72 <= 750));
        assert!(s.validation.iter().all(|&v| v >= 750 && v + 72 <= 1000));
        assert!(s.train.windows(2).all(|w| w[1] - w[0] == 5));
    }

    #[test]
    fn split_errors_say_why_with_numbers() {
        let err = chronological_split(5, 4, 2, 1, 0.2).unwrap_err();
        assert!(matches!(
            err,
            DataError::TooShort {
                rows: 5,
                window: 4,
                horizon: 2
            }
        ));
        assert_eq!(
            err.to_string(),
            "the series has 5 rows, a window needs T + P = 4 + 2 = 6 rows; \
             use a shorter --window or --horizon (model.window, model.horizon)"
        );
        // 11 rows, 10% validation, windows of 6: the split row 10 leaves the
        // part [10, 11) too short, and no split leaves a window on each side.
        let err = chronological_split(11, 5, 1, 1, 0.1).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::EmptySplit {
                    side: "validation",
                    from: 10,
                    to: 11,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("rows 10..11, 1 rows"), "{err}");
        assert!(
            err.to_string().contains("data.validation_fraction"),
            "{err}"
        );
        let err = chronological_split(20, 5, 1, 1, 0.9).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::EmptySplit {
                    side: "training",
                    from: 0,
                    to: 2,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn a_short_series_gets_enough_validation_windows() {
        // 20 rows, 10% validation, windows of T + P = 6: the split row 18
        // leaves no validation window. Ten windows need 6 + 9 = 15 rows, but
        // training needs 6: the split moves to row 6, giving training the one
        // window [0, 6) and validation the 9 starts 6..=14.
        let s = chronological_split(20, 5, 1, 1, 0.1).unwrap();
        assert!(s.widened);
        assert_eq!(s.split_row, 6);
        assert_eq!(s.train, vec![0]);
        assert_eq!(s.validation, (6..=14).collect::<Vec<_>>());
        // 400 rows, T + P = 72, 20%: 80 validation rows hold 9 windows;
        // ten need 81 rows, so the split moves from 320 to 319.
        let s = chronological_split(400, 64, 8, 1, 0.2).unwrap();
        assert!(s.widened);
        assert_eq!((s.split_row, s.validation.len()), (319, 10));
        // Enough windows already: the fraction decides.
        let s = chronological_split(1200, 64, 8, 1, 0.2).unwrap();
        assert!(!s.widened);
        assert_eq!(s.split_row, 960);
        // Stride 5: ten windows need 72 + 45 = 117 rows.
        let s = chronological_split(500, 64, 8, 5, 0.2).unwrap();
        assert_eq!((s.split_row, s.validation.len()), (383, 10));
    }

    #[test]
    fn split_rejects_bad_parameters() {
        for (window, stride, fraction, name) in [
            (0, 1, 0.2, "window"),
            (4, 0, 0.2, "stride"),
            (4, 1, 0.0, "validation_fraction"),
            (4, 1, 1.0, "validation_fraction"),
            (4, 1, f64::NAN, "validation_fraction"),
        ] {
            let err = chronological_split(100, window, 1, stride, fraction).unwrap_err();
            assert!(
                matches!(err, DataError::InvalidParameter { name: n, .. } if n == name),
                "{err:?}"
            );
        }
    }

    /// values[r, f] = 10 r + f, so every gathered element says where it came from.
    fn ramp(rows: usize, features: usize) -> Array2<f32> {
        Array2::from_shape_fn((rows, features), |(r, f)| (10 * r + f) as f32)
    }

    #[test]
    fn gathers_time_major_windows_and_targets() {
        let v = ramp(6, 2);
        let x = gather_time_major(v.view(), &[0, 3], 2);
        assert_eq!(x.shape(), &[2, 2, 2]);
        for t in 0..2 {
            for (b, start) in [0, 3].into_iter().enumerate() {
                for f in 0..2 {
                    assert_eq!(x[[t, b, f]], (10 * (start + t) + f) as f32);
                }
            }
        }
        let y = gather_horizon_time_major(v.view(), &[0, 3], 2, 1);
        assert_eq!(y.shape(), &[1, 2, 2]);
        assert_eq!(
            y.index_axis(Axis(0), 0).to_owned(),
            ndarray::arr2(&[[20., 21.], [50., 51.]])
        );
    }

    #[test]
    fn batch_major_is_the_transpose_of_time_major() {
        let v = ramp(20, 3);
        let starts = [1, 4, 9, 13];
        let bm = gather_batch_major(v.view(), &starts, 5);
        assert_eq!(bm.shape(), &[4, 5, 3]);
        assert_eq!(bm[[2, 4, 1]], 131.0); // row 9 + 4, feature 1
        let tm = gather_time_major(v.view(), &starts, 5);
        assert_eq!(bm, tm.permuted_axes([1, 0, 2]));
    }

    #[test]
    #[should_panic]
    fn gathering_past_the_end_panics() {
        gather_batch_major(ramp(5, 1).view(), &[3], 3);
    }
}
