//! Anomaly likelihood per series key, for the daemon: one
//! [`Postprocessor`] per key, fed each scored window's raw error
//! (reconstruction + weighted prediction error), with memory bounded by a
//! key TTL and a maximum key count.
//!
//! The prediction error of a window is that of the forecasts earlier windows
//! of the same key made for the window's last point: the window ending `k`
//! points before it (`1 ≤ k ≤ P`) forecast that point as its step `k`. How
//! many points a window moves on is read from its timestamps (where the
//! previous window's last point is among them), not from counting windows,
//! so it works for any stride and for whole-window input — and for stride 1
//! it is exactly the row-indexed [`prediction_errors`] of `lstm-ae eval nab`
//! and `lstm-ae score`.

use std::sync::Arc;

use ndarray::ArrayView2;

use super::{KeyEvictions, PostprocessConfig, PostprocessError, Postprocessor, RecentKeys};

/// Mean squared difference between each row and the forecasts made for it
/// by the windows ending 1..=`horizon` rows before it, in scaled units, over
/// every (step, feature) pair available; NaN where there is none.
/// `forecasts[e]` is the `horizon × F` forecast (row-major) of the window
/// ending at row `e`, if any.
pub fn prediction_errors(
    forecasts: &[Option<Vec<f32>>],
    rows: ArrayView2<f32>,
    horizon: usize,
) -> Vec<f64> {
    let f = rows.ncols();
    (0..rows.nrows())
        .map(|row| {
            let mut sum = 0.0;
            let mut count = 0usize;
            for k in 1..=horizon {
                let Some(end) = row.checked_sub(k) else { break };
                if let Some(fc) = forecasts.get(end).and_then(Option::as_ref) {
                    for j in 0..f {
                        let d = f64::from(fc[(k - 1) * f + j] - rows[[row, j]]);
                        sum += d * d;
                        count += 1;
                    }
                }
            }
            if count > 0 {
                sum / count as f64
            } else {
                f64::NAN
            }
        })
        .collect()
}

/// One scored window as the likelihood needs it, in scaled units.
pub struct WindowErrors<'a> {
    /// Mean squared reconstruction error of the window.
    pub reconstruction: f64,
    /// The window's timestamps (ms), oldest first.
    pub timestamps: &'a [i64],
    /// The window's last point, `F` values.
    pub last_point: Vec<f32>,
    /// The window's raw values, `T × F` row-major (for the range check).
    pub values: &'a [f32],
    /// The window's forecast of the next `P` points, `P × F` row-major.
    pub forecast: Option<Vec<f32>>,
}

/// The forecasts a key's recent windows made for the points still to come,
/// kept by point: slot `d` is the point `d + 1` points after the last
/// window's last point and holds up to `P − d` forecasts of `F` values
/// (from the windows ending 0 … `P − d − 1` points before that last point),
/// oldest window first — the order the error sums them in. The slots form a
/// triangle, `P(P + 1)/2 × F` values in one buffer: half of keeping each
/// window's whole `P × F` forecast, and no timestamps but the last.
///
/// Points are counted from the last window's last point: a window whose
/// timestamps hold it at `k` points from the end is `k` points on (its
/// stride); one that does not hold it (a gap, or a window from elsewhere in
/// the series) starts the forecasts over.
struct Forecasts {
    /// Slot `d` starts at `F × d × (2P − d + 1) / 2`.
    values: Box<[f32]>,
    /// Forecasts held per slot.
    counts: Box<[u16]>,
    /// Event time of the last window's last point.
    last_end: Option<i64>,
    features: usize,
}

impl Forecasts {
    fn new(horizon: usize, features: usize) -> Self {
        // A horizon beyond u16 counts would be a model of 65,535 steps.
        let horizon = horizon.min(usize::from(u16::MAX));
        Forecasts {
            values: vec![0.0; horizon * (horizon + 1) / 2 * features].into_boxed_slice(),
            counts: vec![0; horizon].into_boxed_slice(),
            last_end: None,
            features,
        }
    }

    fn horizon(&self) -> usize {
        self.counts.len()
    }

    /// First value of slot `d`.
    fn start(&self, d: usize) -> usize {
        self.features * d * (2 * self.horizon() - d + 1) / 2
    }

    /// Moves on to the window ending at `timestamps`' last point and
    /// returns the slot of that point, if any forecast can reach it. Slots
    /// of points passed over (a stride) are dropped.
    fn advance(&mut self, timestamps: &[i64]) -> Option<usize> {
        let last = self.last_end.replace(*timestamps.last()?);
        let Some(k) = last.and_then(|end| {
            let i = timestamps.iter().rposition(|ts| *ts == end)?;
            Some(timestamps.len() - 1 - i)
        }) else {
            self.clear_slots();
            return None;
        };
        // k = 0: the same last point again; nothing moves.
        if k == 0 {
            return None;
        }
        if k > self.horizon() {
            self.clear_slots();
            return None;
        }
        // The caller reads slot k − 1 (`error`), then moves the slots on
        // past it (`shift(k)`).
        Some(k - 1)
    }

    /// Mean squared error of slot `d`'s forecasts against `point`; `None`
    /// when the slot holds none.
    fn error(&self, d: usize, point: &[f32]) -> Option<f64> {
        let f = self.features;
        let n = usize::from(self.counts[d]);
        let at = self.start(d);
        let mut sum = 0.0;
        let mut count = 0usize;
        for fc in self.values[at..at + n * f].chunks_exact(f) {
            for (v, x) in fc.iter().zip(point) {
                let e = f64::from(v - x);
                sum += e * e;
                count += 1;
            }
        }
        (count > 0).then(|| sum / count as f64)
    }

    /// Slots move `k` points nearer: slot `d + k` becomes slot `d`.
    fn shift(&mut self, k: usize) {
        let (p, f) = (self.horizon(), self.features);
        for d in 0..p {
            let n = if d + k < p {
                let n = usize::from(self.counts[d + k]);
                let (from, to) = (self.start(d + k), self.start(d));
                self.values.copy_within(from..from + n * f, to);
                n
            } else {
                0
            };
            self.counts[d] = n as u16;
        }
    }

    /// Adds the forecast of the window ending at the last point: its step
    /// `k` goes to slot `k − 1`. A forecast of another length than `P × F`
    /// (the backend checks the model's shapes) is not kept.
    fn add(&mut self, forecast: &[f32]) {
        let (p, f) = (self.horizon(), self.features);
        if forecast.len() != p * f || f == 0 {
            return;
        }
        for (d, step) in forecast.chunks_exact(f).enumerate() {
            let n = usize::from(self.counts[d]);
            // Full only if one last point came twice (k = 0 above).
            if n < p - d {
                let at = self.start(d) + n * f;
                self.values[at..at + f].copy_from_slice(step);
                self.counts[d] += 1;
            }
        }
    }

    fn clear_slots(&mut self) {
        self.counts.fill(0);
    }

    fn clear(&mut self) {
        self.clear_slots();
        self.last_end = None;
    }

    fn bytes(&self) -> usize {
        std::mem::size_of_val(&*self.values) + std::mem::size_of_val(&*self.counts)
    }
}

struct KeyState {
    post: Postprocessor,
    forecasts: Forecasts,
}

impl KeyState {
    /// Bytes held for the key besides its name and the map's own slot:
    /// constant in the key's history — the post-processor
    /// ([`Postprocessor::state_bytes`], under 512 bytes by default), the
    /// forecasts still to be used, `P(P + 1)/2 × F` values, and the time
    /// of its last window that [`RecentKeys`] keeps beside it.
    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() - std::mem::size_of::<Postprocessor>()
            + self.post.state_bytes()
            + self.forecasts.bytes()
            + std::mem::size_of::<u64>()
    }
}

/// Per-key likelihood state with bounded memory: each key's state is
/// constant-size (about 0.5 KB at the defaults with P = 8, whatever
/// its history), keys idle for `ttl_ms` (processing time; `u64::MAX`:
/// never) are dropped, and a new key beyond `max_keys` makes room by
/// dropping the least recently scored one ([`RecentKeys`]). A dropped key
/// starts again with no history, so it scores 0 until `min_history`
/// windows are seen again.
pub struct KeyedLikelihood {
    cfg: Arc<PostprocessConfig>,
    horizon: usize,
    features: usize,
    keys: RecentKeys<KeyState>,
    /// Errors refused by a key's history since the last call to
    /// [`KeyedLikelihood::take_refused`].
    refused: u64,
}

impl KeyedLikelihood {
    pub fn new(
        cfg: PostprocessConfig,
        horizon: usize,
        features: usize,
        max_keys: usize,
        ttl_ms: u64,
    ) -> Result<Self, PostprocessError> {
        cfg.validate()?;
        Ok(KeyedLikelihood {
            cfg: Arc::new(cfg),
            horizon,
            features,
            keys: RecentKeys::new(max_keys, ttl_ms),
            refused: 0,
        })
    }

    /// Keys dropped since the last call.
    pub fn take_evictions(&mut self) -> KeyEvictions {
        self.keys.take_evictions()
    }

    /// Errors that did not enter a key's history since the last call
    /// (non-finite, or too large for finite moments; they scored 0).
    pub fn take_refused(&mut self) -> u64 {
        std::mem::take(&mut self.refused)
    }

    /// Bytes held for `key`'s state (see `KeyState::bytes`), if it has one.
    pub fn key_state_bytes(&self, key: &str) -> Option<usize> {
        self.keys.get(key).map(KeyState::bytes)
    }

    /// Keys with state.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A new model version: every key's history is carried over to errors
    /// `ratio` times as large ([`Postprocessor::rescale`]); forecasts made
    /// by the old model are dropped (their errors are the old model's).
    /// Returns the keys carried over.
    pub fn rescale(&mut self, ratio: f64) -> usize {
        for s in self.keys.states_mut() {
            s.post.rescale(ratio);
            s.forecasts.clear();
        }
        self.keys.len()
    }

    /// The anomaly likelihood of `key`'s next window, in `[0, 1]`; windows
    /// of a key must come in event-time order. `now_ms` is processing time
    /// and does not go back.
    pub fn push(&mut self, key: &str, w: WindowErrors<'_>, now_ms: u64) -> f64 {
        self.keys.expire(now_ms);
        let (cfg, horizon, features) = (&self.cfg, self.horizon, self.features);
        let state = self.keys.touch(key, now_ms, || KeyState {
            post: Postprocessor::shared(cfg.clone())
                .expect("the configuration was validated in KeyedLikelihood::new"),
            forecasts: Forecasts::new(horizon, features),
        });
        let fc = &mut state.forecasts;
        let prediction = match fc.advance(w.timestamps) {
            Some(d) => {
                let e = fc.error(d, &w.last_point);
                fc.shift(d + 1);
                e
            }
            None => None,
        };
        let raw = cfg.combine(w.reconstruction, prediction);
        let score = state.post.try_push_window(raw, w.values, features);
        if let Some(forecast) = &w.forecast {
            state.forecasts.add(forecast);
        }
        if score.is_none() {
            self.refused += 1;
        }
        score.unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn cfg() -> PostprocessConfig {
        PostprocessConfig {
            min_history: 5,
            long_window: 50,
            short_window: 3,
            refractory: 0,
            ..PostprocessConfig::default()
        }
    }

    /// A deterministic series and "forecasts" of it that are off by a
    /// known, varying amount.
    fn series(n: usize, f: usize) -> (Array2<f32>, Vec<Option<Vec<f32>>>, Vec<f64>) {
        let rows = Array2::from_shape_fn((n, f), |(i, j)| ((i * 7 + j * 3) % 11) as f32 / 10.0);
        let p = 3;
        let forecasts = (0..n)
            .map(|e| {
                (e % 5 != 2).then(|| {
                    (0..p * f)
                        .map(|c| ((e + c) % 4) as f32 / 8.0)
                        .collect::<Vec<f32>>()
                })
            })
            .collect();
        let recon = (0..n)
            .map(|i| 0.01 + ((i * 13) % 17) as f64 / 100.0)
            .collect();
        (rows, forecasts, recon)
    }

    #[test]
    fn row_indexed_errors_average_the_forecasts_made_for_each_row() {
        let rows = Array2::from_shape_vec((4, 1), vec![0.0f32, 1.0, 2.0, 3.0]).unwrap();
        // The window ending at row 0 forecasts rows 1 and 2 as 1.5 and 2.0;
        // the one ending at row 1 forecasts rows 2 and 3 as 2.0 and 5.0.
        let fc = vec![Some(vec![1.5, 2.0]), Some(vec![2.0, 5.0]), None, None];
        let e = prediction_errors(&fc, rows.view(), 2);
        assert!(e[0].is_nan());
        assert!((e[1] - 0.25).abs() < 1e-12);
        assert!((e[2] - 0.0).abs() < 1e-12);
        assert!((e[3] - 4.0).abs() < 1e-12);
    }

    #[test]
    fn streaming_windows_score_like_the_row_indexed_series() {
        let (t, p) = (4, 3);
        for (f, stride) in [(1, 1), (2, 1), (1, 2), (2, 3)] {
            let (rows, forecasts, recon) = series(60, f);
            // Windows exist only from row t − 1 on.
            let forecasts: Vec<_> = forecasts
                .into_iter()
                .enumerate()
                .map(|(e, fc)| fc.filter(|_| e + 1 >= t))
                .collect();
            let c = cfg();
            // Offline, row-indexed: every window (stride 1), then the rows
            // the stride scores.
            let pred = prediction_errors(&forecasts, rows.view(), p);
            let mut offline = Postprocessor::new(c.clone()).unwrap();
            let mut keyed = KeyedLikelihood::new(c.clone(), p, f, 10, u64::MAX).unwrap();
            let ts: Vec<i64> = (0..60).map(|i| 1000 * i as i64).collect();
            let flat: Vec<f32> = rows.iter().copied().collect();
            for e in (t - 1..60).step_by(stride) {
                let window = &flat[(e + 1 - t) * f..(e + 1) * f];
                let want = offline.push_window(
                    if stride == 1 {
                        c.combine(recon[e], Some(pred[e]).filter(|v| v.is_finite()))
                    } else {
                        // With a stride, only forecasts from scored windows count.
                        let mut sum = 0.0;
                        let mut n = 0;
                        for k in 1..=p {
                            let Some(end) = e.checked_sub(k) else { break };
                            if (end + 1) % stride != t % stride || end < t - 1 {
                                continue;
                            }
                            if let Some(fc) = &forecasts[end] {
                                for j in 0..f {
                                    sum += f64::from(fc[(k - 1) * f + j] - rows[[e, j]]).powi(2);
                                    n += 1;
                                }
                            }
                        }
                        c.combine(recon[e], (n > 0).then(|| sum / n as f64))
                    },
                    window,
                    f,
                );
                let last: Vec<f32> = rows.row(e).to_vec();
                let got = keyed.push(
                    "k",
                    WindowErrors {
                        reconstruction: recon[e],
                        timestamps: &ts[e + 1 - t..=e],
                        last_point: last,
                        forecast: forecasts[e].clone(),
                        values: window,
                    },
                    0,
                );
                assert!(
                    (got - want).abs() < 1e-12,
                    "f {f} stride {stride} row {e}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn keys_are_independent() {
        let c = cfg();
        let mut keyed = KeyedLikelihood::new(c.clone(), 0, 1, 10, u64::MAX).unwrap();
        let mut a = Postprocessor::new(c.clone()).unwrap();
        let mut b = Postprocessor::new(c).unwrap();
        for i in 0..40i64 {
            let (ea, eb) = (0.1 + (i % 3) as f64, if i > 30 { 9.0 } else { 0.2 });
            let ts = [i];
            let w = |e| WindowErrors {
                reconstruction: e,
                timestamps: &ts,
                last_point: vec![0.0],
                forecast: None,
                values: &[],
            };
            assert_eq!(keyed.push("a", w(ea), 0), a.push(ea));
            assert_eq!(keyed.push("b", w(eb), 0), b.push(eb));
        }
    }

    #[test]
    fn refused_errors_are_counted_and_score_0() {
        let mut keyed = KeyedLikelihood::new(cfg(), 0, 1, 10, u64::MAX).unwrap();
        let w = |e| WindowErrors {
            reconstruction: e,
            timestamps: &[],
            last_point: vec![0.0],
            forecast: None,
            values: &[],
        };
        assert_eq!(keyed.push("a", w(0.1), 0), 0.0);
        assert_eq!(keyed.take_refused(), 0);
        assert_eq!(keyed.push("a", w(f64::INFINITY), 0), 0.0);
        assert_eq!(keyed.push("b", w(f64::NAN), 0), 0.0);
        assert_eq!(keyed.take_refused(), 2);
        assert_eq!(keyed.take_refused(), 0);
    }

    #[test]
    fn memory_is_bounded_by_max_keys_and_the_ttl() {
        fn w(ts: &[i64]) -> WindowErrors<'_> {
            WindowErrors {
                reconstruction: 0.1,
                timestamps: ts,
                last_point: vec![0.0],
                forecast: Some(vec![0.0; 3]),
                values: &[],
            }
        }
        let mut keyed = KeyedLikelihood::new(cfg(), 3, 1, 100, u64::MAX).unwrap();
        for k in 0..10_000 {
            keyed.push(&k.to_string(), w(&[0]), k);
            assert!(keyed.len() <= 100);
        }
        // Exactly the 100 most recent keys are left, and every drop counted.
        assert_eq!(keyed.len(), 100);
        assert!(keyed.keys.get("9900").is_some() && keyed.keys.get("9999").is_some());
        assert!(keyed.keys.get("9899").is_none());
        let ev = keyed.take_evictions();
        assert_eq!((ev.capacity_keys, ev.expired_keys), (9_900, 0));
        assert_eq!(keyed.take_evictions(), KeyEvictions::default());

        let mut keyed = KeyedLikelihood::new(cfg(), 3, 1, 1000, 1000).unwrap();
        for k in 0..50 {
            keyed.push(&k.to_string(), w(&[0]), 0);
        }
        keyed.push("late", w(&[0]), 1001);
        assert_eq!(keyed.len(), 1, "idle keys dropped after the TTL");
        assert_eq!(keyed.take_evictions().expired_keys, 50);
    }

    #[test]
    fn a_new_key_at_the_limit_drops_only_the_least_recently_scored_one() {
        // A dropped key loses its history (it scores 0 for `min_history`
        // windows), so making room must cost one key, not a tenth of them.
        let w = |ts: &'static [i64]| WindowErrors {
            reconstruction: 0.1,
            timestamps: ts,
            last_point: vec![0.0],
            forecast: None,
            values: &[],
        };
        let mut keyed = KeyedLikelihood::new(cfg(), 3, 1, 20, u64::MAX).unwrap();
        for k in 0..20 {
            keyed.push(&k.to_string(), w(&[0]), k);
        }
        keyed.push("0", w(&[1]), 20); // 0 is now the most recent
        keyed.push("new", w(&[0]), 21);
        assert_eq!(keyed.len(), 20);
        assert!(
            keyed.keys.get("1").is_none(),
            "1 was the least recently scored"
        );
        assert!(keyed.keys.get("0").is_some() && keyed.keys.get("2").is_some());
        assert_eq!(keyed.take_evictions().capacity_keys, 1);
    }

    #[test]
    fn a_key_state_does_not_grow_with_its_history() {
        // The daemon's defaults (long_window 8,000) with T = 32, P = 4, F = 1.
        let (t, p) = (32, 4);
        let mut keyed =
            KeyedLikelihood::new(PostprocessConfig::default(), p, 1, 10, u64::MAX).unwrap();
        let n = 20_000;
        let ts: Vec<i64> = (0..n as i64).collect();
        let values: Vec<f32> = (0..n).map(|i| (i % 37) as f32).collect();
        let mut after_warm_up = 0;
        for e in t - 1..n {
            keyed.push(
                "k",
                WindowErrors {
                    reconstruction: 0.1 + (e % 13) as f64 * 0.01,
                    timestamps: &ts[e + 1 - t..=e],
                    last_point: vec![values[e]],
                    forecast: Some(vec![0.0; p]),
                    values: &values[e + 1 - t..=e],
                },
                0,
            );
            if e == t - 1 + 1000 {
                after_warm_up = keyed.key_state_bytes("k").unwrap();
            }
        }
        let bytes = keyed.key_state_bytes("k").unwrap();
        assert_eq!(bytes, after_warm_up, "grew after 1,000 windows");
        // Constant and small: the forecasts are kept by point (a triangle,
        // not P + 1 whole forecasts and their timestamps), the coarse
        // moments boxed, the counters 32-bit.
        assert!(bytes <= 400, "{bytes} bytes");
    }

    #[test]
    fn old_forecasts_are_not_kept() {
        let mut keyed = KeyedLikelihood::new(cfg(), 2, 1, 10, u64::MAX).unwrap();
        let ts: Vec<i64> = (0..100).collect();
        for e in 3..100 {
            keyed.push(
                "k",
                WindowErrors {
                    reconstruction: 0.1,
                    timestamps: &ts[e - 3..=e],
                    last_point: vec![0.0],
                    forecast: Some(vec![0.0; 2]),
                    values: &[],
                },
                0,
            );
            // P = 2: from the second window on, slot 0 (the next point)
            // holds the forecasts of the last two windows, slot 1 that of
            // the last one; nothing older.
            let want: &[u16] = if e == 3 { &[1, 1] } else { &[2, 1] };
            assert_eq!(&*keyed.keys.get("k").unwrap().forecasts.counts, want);
        }
    }

    #[test]
    fn a_window_past_a_gap_uses_no_forecast_from_before_it() {
        // T = 3, P = 2, whole windows: stride 1 ending at ts 2 … 9, then
        // stride 1 again ending at 102 … 109. The window ending at 102
        // (ts 100, 101, 102) does not hold 9, the last point before it, so
        // no forecast made before the gap reaches it.
        let c = cfg();
        let mut keyed = KeyedLikelihood::new(c.clone(), 2, 1, 10, u64::MAX).unwrap();
        let mut plain = Postprocessor::new(c.clone()).unwrap();
        let window = [1.0f32; 3];
        for end in (2..10).chain(102..110) {
            let ts = [end - 2, end - 1, end];
            let got = keyed.push(
                "k",
                WindowErrors {
                    reconstruction: 0.1,
                    timestamps: &ts,
                    last_point: vec![1.0],
                    values: &window,
                    // Each window forecasts 3.0 for its next two points: an
                    // error of 4 wherever one is used.
                    forecast: Some(vec![3.0, 3.0]),
                },
                0,
            );
            let prediction = (end != 2 && end != 102).then_some(4.0);
            let want = plain.push_window(c.combine(0.1, prediction), &window, 1);
            assert_eq!(got, want, "window ending at {end}");
        }
    }
}
