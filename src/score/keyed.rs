//! Anomaly likelihood per series key, for the daemon: one
//! [`Postprocessor`] per key, fed each scored window's raw error
//! (reconstruction + weighted prediction error), with memory bounded by a
//! key TTL and a maximum key count.
//!
//! The prediction error of a window is that of the forecasts earlier windows
//! of the same key made for the window's last point: the window ending `k`
//! points before it (`1 ≤ k ≤ P`) forecast that point as its step `k`. Points
//! are matched by timestamp, not by counting windows, so it works for any
//! stride and for whole-window input — and for stride 1 it is exactly the
//! row-indexed [`prediction_errors`] of `lstm-ae eval nab` and `lstm-ae
//! score`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use ndarray::ArrayView2;

use super::{PostprocessConfig, PostprocessError, Postprocessor};

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

/// The forecasts of a key's latest windows that can still reach a future
/// window's last point: (end timestamp, `P × F` values) per window, oldest
/// first, kept flat in two buffers sized once for `P + 1` windows — not a
/// vector per window, which cost about twice the values in headers and
/// allocations at 100,000 keys.
struct Forecasts {
    ends: VecDeque<i64>,
    /// `width` values per entry of `ends`.
    values: VecDeque<f32>,
    /// `P × F`.
    width: usize,
    /// `P`.
    horizon: usize,
}

impl Forecasts {
    fn new(horizon: usize, features: usize) -> Self {
        let width = horizon * features;
        Forecasts {
            ends: VecDeque::with_capacity(horizon + 1),
            values: VecDeque::with_capacity((horizon + 1) * width),
            width,
            horizon,
        }
    }

    /// Adds the forecast of the window ending at `end`. At most `P + 1` are
    /// kept (the oldest goes), so the buffers never grow; a forecast of
    /// another length than `P × F` (the backend checks the model's shapes)
    /// is not kept.
    fn push(&mut self, end: i64, forecast: &[f32]) {
        if forecast.len() != self.width || self.width == 0 {
            return;
        }
        if self.ends.len() > self.horizon {
            self.pop_front();
        }
        self.ends.push_back(end);
        self.values.extend(forecast.iter().copied());
    }

    fn pop_front(&mut self) {
        if self.ends.pop_front().is_some() {
            self.values.drain(..self.width);
        }
    }

    fn clear(&mut self) {
        self.ends.clear();
        self.values.clear();
    }

    /// Value `i` (row-major within `P × F`) of entry `n`.
    fn value(&self, n: usize, i: usize) -> f32 {
        self.values[n * self.width + i]
    }

    fn bytes(&self) -> usize {
        self.ends.capacity() * std::mem::size_of::<i64>()
            + self.values.capacity() * std::mem::size_of::<f32>()
    }
}

struct KeyState {
    post: Postprocessor,
    forecasts: Forecasts,
    /// Processing time of the last window, for the TTL.
    last_seen_ms: u64,
}

impl KeyState {
    /// Bytes held for the key besides its name and the map's own slot:
    /// constant in the key's history — the post-processor
    /// ([`Postprocessor::state_bytes`], under 512 bytes by default) and
    /// `P + 1` forecasts of `P × F` values.
    fn bytes(&self) -> usize {
        std::mem::size_of::<Self>() - std::mem::size_of::<Postprocessor>()
            + self.post.state_bytes()
            + self.forecasts.bytes()
    }
}

/// Per-key likelihood state with bounded memory: each key's state is
/// constant-size (about 0.5 KB plus `P` forecasts at the defaults, whatever
/// its history), keys idle for `ttl_ms` (processing time) are dropped, and
/// beyond `max_keys` the least recently scored keys make room. A dropped key starts again with no history, so it
/// scores 0 until `min_history` windows are seen again.
pub struct KeyedLikelihood {
    cfg: Arc<PostprocessConfig>,
    horizon: usize,
    features: usize,
    max_keys: usize,
    ttl_ms: u64,
    keys: HashMap<String, KeyState>,
    last_sweep_ms: u64,
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
            max_keys: max_keys.max(1),
            ttl_ms,
            keys: HashMap::new(),
            last_sweep_ms: 0,
        })
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
        for s in self.keys.values_mut() {
            s.post.rescale(ratio);
            s.forecasts.clear();
        }
        self.keys.len()
    }

    /// The anomaly likelihood of `key`'s next window, in `[0, 1]`; windows
    /// of a key must come in event-time order. `now_ms` is processing time.
    pub fn push(&mut self, key: &str, w: WindowErrors<'_>, now_ms: u64) -> f64 {
        self.evict(now_ms);
        if !self.keys.contains_key(key) {
            if self.keys.len() >= self.max_keys {
                self.make_room();
            }
            let post = Postprocessor::shared(self.cfg.clone())
                .expect("the configuration was validated in KeyedLikelihood::new");
            self.keys.insert(
                key.to_string(),
                KeyState {
                    post,
                    forecasts: Forecasts::new(self.horizon, self.features),
                    last_seen_ms: now_ms,
                },
            );
        }
        let (horizon, f) = (self.horizon, self.features);
        let Some(state) = self.keys.get_mut(key) else {
            return 0.0; // unreachable: inserted above
        };
        state.last_seen_ms = now_ms;
        let prediction = forecast_error(&state.forecasts, &w, horizon, f);
        let raw = self.cfg.combine(w.reconstruction, prediction);
        let score = state.post.push_window(raw, w.values, f);
        if let (Some(fc), Some(&end)) = (&w.forecast, w.timestamps.last()) {
            state.forecasts.push(end, fc);
        }
        // Only forecasts made at one of the last P points can reach a later
        // window's last point (one past this window at the earliest).
        match w.timestamps.get(w.timestamps.len().saturating_sub(horizon)) {
            Some(&from) => {
                while state.forecasts.ends.front().is_some_and(|ts| *ts < from) {
                    state.forecasts.pop_front();
                }
            }
            None => state.forecasts.clear(),
        }
        score
    }

    /// Drops keys idle for longer than the TTL; sweeps at most every TTL/4.
    fn evict(&mut self, now_ms: u64) {
        if self.ttl_ms == 0 || now_ms.saturating_sub(self.last_sweep_ms) < self.ttl_ms / 4 {
            return;
        }
        self.last_sweep_ms = now_ms;
        let ttl = self.ttl_ms;
        self.keys
            .retain(|_, s| now_ms.saturating_sub(s.last_seen_ms) <= ttl);
    }

    /// At the key limit: drops the least recently seen tenth of the keys at
    /// once, so the sort is paid once per `max_keys / 10` new keys.
    fn make_room(&mut self) {
        let mut seen: Vec<u64> = self.keys.values().map(|s| s.last_seen_ms).collect();
        let drop = (self.max_keys / 10).max(1).min(seen.len());
        let (_, cut, _) = seen.select_nth_unstable(drop - 1);
        let cut = *cut;
        let mut left = drop;
        self.keys.retain(|_, s| {
            if left > 0 && s.last_seen_ms <= cut {
                left -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// Mean squared error of the stored forecasts for the window's last point,
/// matched by timestamp; `None` when no forecast reaches it.
fn forecast_error(
    forecasts: &Forecasts,
    w: &WindowErrors<'_>,
    horizon: usize,
    f: usize,
) -> Option<f64> {
    let t = w.timestamps.len();
    let mut sum = 0.0;
    let mut count = 0usize;
    for (n, end) in forecasts.ends.iter().enumerate() {
        // The forecasting window ended at this window's point `i`, so this
        // window's last point is its step k = t − 1 − i.
        let Some(i) = w.timestamps.iter().rposition(|ts| ts == end) else {
            continue;
        };
        let k = t - 1 - i;
        if k == 0 || k > horizon {
            continue;
        }
        for j in 0..f {
            let d = f64::from(forecasts.value(n, (k - 1) * f + j) - w.last_point[j]);
            sum += d * d;
            count += 1;
        }
    }
    (count > 0).then(|| sum / count as f64)
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
            let mut keyed = KeyedLikelihood::new(c.clone(), p, f, 10, 0).unwrap();
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
        let mut keyed = KeyedLikelihood::new(c.clone(), 0, 1, 10, 0).unwrap();
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
        let mut keyed = KeyedLikelihood::new(cfg(), 3, 1, 100, 0).unwrap();
        for k in 0..10_000 {
            keyed.push(&k.to_string(), w(&[0]), k);
            assert!(keyed.len() <= 100);
        }
        // The most recent keys survive the cuts.
        assert!(keyed.keys.contains_key("9999") && keyed.keys.contains_key("9950"));

        let mut keyed = KeyedLikelihood::new(cfg(), 3, 1, 1000, 1000).unwrap();
        for k in 0..50 {
            keyed.push(&k.to_string(), w(&[0]), 0);
        }
        keyed.push("late", w(&[0]), 1001);
        assert_eq!(keyed.len(), 1, "idle keys dropped after the TTL");
    }

    #[test]
    fn a_key_state_does_not_grow_with_its_history() {
        // The daemon's defaults (long_window 8,000) with T = 32, P = 4, F = 1.
        let (t, p) = (32, 4);
        let mut keyed = KeyedLikelihood::new(PostprocessConfig::default(), p, 1, 10, 0).unwrap();
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
        // Under 1 KB, against 64 KB for the 8,000 kept means before; with
        // the configuration shared and the forecasts flat, under 640 (it
        // was about 820 with a configuration and a vector per forecast).
        assert!(bytes < 640, "{bytes} bytes");
    }

    #[test]
    fn old_forecasts_are_not_kept() {
        let mut keyed = KeyedLikelihood::new(cfg(), 2, 1, 10, 0).unwrap();
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
            assert!(keyed.keys["k"].forecasts.ends.len() <= 2);
        }
    }
}
