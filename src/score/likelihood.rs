//! The anomaly-likelihood state machine: one [`Postprocessor`] per series
//! (per key in the daemon) turns each row's raw model error into an anomaly
//! score in `[0, 1]`, using only errors seen so far.
//!
//! Why: a raw reconstruction error is not comparable across series (nor
//! across time on one series), and NAB sweeps one threshold over all 58
//! files. What is comparable is how surprising the *recent* errors are
//! against the series' own error history. Per pushed error `e`:
//!
//! 1. combine: `e = reconstruction + prediction_weight · prediction` (done by
//!    [`PostprocessConfig::combine`], so every caller combines alike);
//! 2. transform: `x = ln(e + error_floor)` when `log_errors` (errors are
//!    heavy-tailed; their logarithm is closer to Gaussian);
//! 3. short-term mean `m` of the last `short_window` values of `x`;
//! 4. long-term distribution: mean `μ` and standard deviation `σ` (floored at
//!    `std_floor`) of the previous short-term means, *before* adding `m`, so
//!    an anomaly does not dilute its own evidence. They are exponentially
//!    weighted moments ([`Moments`]): equal weights over the first
//!    `long_window` means (the plain mean and variance), then an exponential
//!    forgetting with `α = 1/long_window`, so a key's state is a few numbers
//!    whatever its history (keeping the means themselves would cost
//!    `8 × long_window` bytes a key);
//! 5. tail probability `p = Q((m − μ)/σ)` of the standard normal; the score
//!    is `1 − p`, or with `log_scale` Numenta's log-likelihood
//!    `min(1, −log10(p + 10^−d)/d)` (`d = log_decades`), which spreads the interesting
//!    `1 − p > 0.999` region across the scale;
//! 6. until `min_history` means are known the score is 0;
//! 7. refractory period: after a score `≥ fire_level`, the next
//!    `refractory` rows score 0; with `rearm_level`, the silence also lasts
//!    until the score has fallen below that level (an edge trigger: one
//!    alert per excursion), and with `override_level` a score rising
//!    through that level fires even while silent (a much stronger event).
//!    `fire_level` is a tail probability: on the log scale a score `s`
//!    means `p ≈ 10^(−s·log_decades)`, so the default 0.35 fires at
//!    `p ≤ 3.2e−4` — without labels, about one alarm per 3,000 rows of a
//!    stationary error process. With `coarse_factor`, a second, coarser
//!    view (the errors' exponentially weighted mean over `short_window ×
//!    coarse_factor` rows, against its own history) is scored alike, and
//!    the larger of the two scores is the row's score;
//! 8. range novelty (`range_check`): once `min_history` means are known, a
//!    row with a value outside the range of every value seen so far, widened
//!    by `range_tolerance` × its width on each side, scores 1 — a level the
//!    series never reached is an anomaly whatever the model's error says
//!    (the model can reconstruct a shifted level surprisingly well). It has
//!    its own refractory period of `refractory` rows, during which it is
//!    silent but the likelihood is not, and vice versa. NAB rewards only the earliest detection in a
//!    window and charges every false positive, so repeating an alarm for the
//!    same event only costs.

use std::collections::VecDeque;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// How raw errors become scores. The defaults are the daemon's; `eval nab`
/// reports with three of them changed on NAB's tuning half
/// (`eval::nab::run::nab_postprocess`: `long_window` 750, `fire_level` 0.45,
/// `range_tolerance` 0.02; docs/evaluation.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PostprocessConfig {
    /// Weight of the prediction error (mean squared error of the forecasts
    /// of the current row) added to the reconstruction error; 0 ignores it.
    pub prediction_weight: f64,
    /// Take `ln(error + error_floor)` before anything else.
    pub log_errors: bool,
    /// Added to errors before the logarithm (scaled units²), so a perfect
    /// reconstruction is not `−∞`.
    pub error_floor: f64,
    /// Rows averaged into the short-term mean.
    pub short_window: usize,
    /// Effective length of the long-term history, in short-term means: all
    /// means weigh alike up to this many, then older ones fade with
    /// `α = 1/long_window` per row (a mean `long_window` rows old weighs
    /// `1/e` of the newest).
    pub long_window: usize,
    /// Short-term means needed before any score other than 0.
    pub min_history: usize,
    /// Lower bound of the long-term standard deviation (transformed units).
    pub std_floor: f64,
    /// Report the log-likelihood `min(1, −log10(p + 10^−d)/d)`, `d =
    /// log_decades`, instead of `1 − p` (Numenta's detector uses `d = 10`).
    pub log_scale: bool,
    /// Decades of tail probability the log scale spans before it saturates
    /// at 1: more keeps extreme rows apart for the threshold sweep.
    pub log_decades: f64,
    /// Rows forced to 0 after a score reaches `fire_level`; 0 disables.
    pub refractory: usize,
    /// The score that starts a refractory period.
    pub fire_level: f64,
    /// Edge-triggered firing: after a fire the likelihood also stays silent
    /// (beyond `refractory` rows) until its score has fallen below this
    /// level once, so one long excursion alerts once; 0 disables.
    pub rearm_level: f64,
    /// Strong-event override: while silent, a score rising through this
    /// level (below it on the previous row) fires anyway and starts a new
    /// silence; 0 disables.
    pub override_level: f64,
    /// A second, coarser view: the errors' mean over about
    /// `short_window × coarse_factor` rows (exponentially weighted) against
    /// its own history; the score is the larger of the two. 0 or 1 disables.
    pub coarse_factor: usize,
    /// Score 1 for a value outside the range seen so far (step 8).
    pub range_check: bool,
    /// Widening of that range on each side, as a fraction of its width.
    pub range_tolerance: f64,
}

impl Default for PostprocessConfig {
    fn default() -> Self {
        PostprocessConfig {
            prediction_weight: 1.0,
            log_errors: false,
            error_floor: 1e-4,
            short_window: 20,
            long_window: 8000,
            min_history: 100,
            std_floor: 0.01,
            log_scale: true,
            log_decades: 10.0,
            refractory: 100,
            fire_level: 0.35,
            rearm_level: 0.0,
            override_level: 0.0,
            coarse_factor: 0,
            range_check: true,
            range_tolerance: 0.05,
        }
    }
}

/// A configuration that cannot work, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid postprocess.{field}: {reason}")]
pub struct PostprocessError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl PostprocessConfig {
    /// Checks the values types cannot.
    pub fn validate(&self) -> Result<(), PostprocessError> {
        let bad = |field, reason| Err(PostprocessError { field, reason });
        if self.short_window == 0 {
            return bad("short_window", "must be at least 1");
        }
        if self.min_history < 2 {
            return bad(
                "min_history",
                "must be at least 2 (a deviation needs two values)",
            );
        }
        if self.long_window < self.min_history {
            return bad("long_window", "must be at least min_history");
        }
        if !(self.prediction_weight.is_finite() && self.prediction_weight >= 0.0) {
            return bad("prediction_weight", "must be a finite number >= 0");
        }
        if !(self.error_floor.is_finite() && self.error_floor > 0.0) {
            return bad("error_floor", "must be a positive number");
        }
        if !(self.std_floor.is_finite() && self.std_floor >= 0.0) {
            return bad("std_floor", "must be a finite number >= 0");
        }
        if !(self.log_decades.is_finite() && self.log_decades > 0.0) {
            return bad("log_decades", "must be a positive number");
        }
        if !(self.range_tolerance.is_finite() && self.range_tolerance >= 0.0) {
            return bad("range_tolerance", "must be a finite number >= 0");
        }
        if !self.fire_level.is_finite() {
            return bad("fire_level", "must be finite");
        }
        if !(self.rearm_level.is_finite() && self.rearm_level >= 0.0) {
            return bad("rearm_level", "must be a finite number >= 0");
        }
        if !(self.override_level.is_finite() && self.override_level >= 0.0) {
            return bad("override_level", "must be a finite number >= 0");
        }
        Ok(())
    }

    /// The raw error of one row: reconstruction plus weighted prediction
    /// error when there is one.
    pub fn combine(&self, reconstruction: f64, prediction: Option<f64>) -> f64 {
        match prediction {
            Some(p) if self.prediction_weight > 0.0 => reconstruction + self.prediction_weight * p,
            _ => reconstruction,
        }
    }
}

/// Upper tail of the standard normal, `Q(z) = P(Z > z) = erfc(z/√2)/2`.
pub fn gaussian_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function by the classic Chebyshev fit of
/// `t·exp(−x² + P(t))`, relative error below 1.2e−7 everywhere: enough for
/// tail probabilities down to the 1e−10 the log scale resolves.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Exponentially weighted mean and (population) variance of a stream, in
/// constant space: the `n`-th value enters with weight
/// `α = 1/min(n, horizon)`, so up to `horizon` values these are the plain
/// mean and variance, and afterwards each older value's weight decays by
/// `1 − α` per new value. West's weighted update keeps it stable:
/// `δ = x − μ; μ += α·δ; v = (1 − α)·(v + α·δ²)`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    count: u64,
    mean: f64,
    variance: f64,
}

impl Moments {
    pub fn push(&mut self, x: f64, horizon: usize) {
        self.count = self.count.saturating_add(1);
        let alpha = 1.0 / self.count.min(horizon.max(1) as u64) as f64;
        let d = x - self.mean;
        self.mean += alpha * d;
        self.variance = (1.0 - alpha) * (self.variance + alpha * d * d);
    }

    /// The moments of `a·x + b` for the values `x` pushed so far.
    pub fn affine(&mut self, a: f64, b: f64) {
        self.mean = a * self.mean + b;
        self.variance *= a * a;
    }

    /// Values pushed.
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn mean(&self) -> f64 {
        self.mean
    }

    pub fn std_dev(&self) -> f64 {
        self.variance.max(0.0).sqrt()
    }

    /// Whether the mean and the variance are finite numbers.
    pub fn is_finite(&self) -> bool {
        self.mean.is_finite() && self.variance.is_finite()
    }
}

/// Streaming state of one series: feed it every row's raw error in order.
/// Its size is constant: [`Postprocessor::state_bytes`].
#[derive(Debug, Clone)]
pub struct Postprocessor {
    /// Shared by every key of a daemon: one copy, not one per key.
    cfg: Arc<PostprocessConfig>,
    /// The last `short_window` transformed errors.
    short: VecDeque<f64>,
    /// Moments of the short-term means seen so far.
    history: Moments,
    /// With `coarse_factor`: the coarse mean of the errors, and the moments
    /// of its past values (boxed: most configurations have none, and the
    /// daemon keeps one state per key).
    coarse: Option<Box<[Moments; 2]>>,
    quiet_left: u32,
    /// False after a fire until the score falls below `rearm_level`.
    armed: bool,
    /// The previous row's score before any silencing (for the override).
    last_score: f64,
    /// Refractory rows left after a range-novelty alarm.
    range_quiet: u32,
    /// Per feature, (lowest, highest) value seen.
    range: Box<[(f32, f32)]>,
}

impl Postprocessor {
    pub fn new(cfg: PostprocessConfig) -> Result<Self, PostprocessError> {
        Self::shared(Arc::new(cfg))
    }

    /// [`Postprocessor::new`] with a configuration shared with other
    /// series (the daemon's per-key states).
    pub fn shared(cfg: Arc<PostprocessConfig>) -> Result<Self, PostprocessError> {
        cfg.validate()?;
        Ok(Postprocessor {
            short: VecDeque::with_capacity(cfg.short_window),
            coarse: (cfg.coarse_factor > 1).then(Box::default),
            cfg,
            history: Moments::default(),
            quiet_left: 0,
            armed: true,
            last_score: 0.0,
            range_quiet: 0,
            range: Box::default(),
        })
    }

    /// Bytes this state holds, inline and on the heap: constant in the
    /// number of rows pushed — `size_of::<Postprocessor>()` (a few hundred)
    /// + 8 × (`short_window` + 1) + 8 × features (the range check).
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.short.capacity() * std::mem::size_of::<f64>()
            + std::mem::size_of_val(&*self.range)
    }

    pub fn config(&self) -> &PostprocessConfig {
        &self.cfg
    }

    /// Carries the history over to errors `ratio` times as large (a new
    /// model version whose error scale differs): the state becomes what it
    /// would be had every past raw error been `ratio` times its value —
    /// exactly without `log_errors`, and up to `error_floor` with it (a
    /// shift by `ln ratio`). Warm-up, silence and the range are kept.
    pub fn rescale(&mut self, ratio: f64) {
        if !(ratio.is_finite() && ratio > 0.0) {
            return;
        }
        let (a, b) = if self.cfg.log_errors {
            (1.0, ratio.ln())
        } else {
            (ratio, 0.0)
        };
        for x in &mut self.short {
            *x = a * *x + b;
        }
        self.history.affine(a, b);
        for m in self.coarse.iter_mut().flat_map(|c| c.iter_mut()) {
            m.affine(a, b);
        }
    }

    /// The score of the row whose raw error is `raw`, without the range
    /// check. A non-finite error (no window yet) changes nothing and scores 0.
    pub fn push(&mut self, raw: f64) -> f64 {
        self.push_window(raw, &[], 0)
    }

    /// The score of the window whose raw error is `raw` and whose raw values
    /// are `window` (rows × `features`, row-major, oldest first; the last row
    /// is the one scored). The range check compares that row with every
    /// value seen before it, this window's earlier rows included, so with
    /// windows of stride 1 every row counts once. A refused error
    /// ([`Postprocessor::try_push_window`]) changes nothing and scores 0.
    pub fn push_window(&mut self, raw: f64, window: &[f32], features: usize) -> f64 {
        self.try_push_window(raw, window, features).unwrap_or(0.0)
    }

    /// [`Postprocessor::push_window`], or `None` when the error is refused:
    /// it is not finite, or so large that the short-term mean or the
    /// moments would stop being finite. A refused error leaves the state as
    /// it was: one infinite mean would turn every later score into NaN.
    pub fn try_push_window(&mut self, raw: f64, window: &[f32], features: usize) -> Option<f64> {
        if !raw.is_finite() {
            return None;
        }
        let x = if self.cfg.log_errors {
            (raw.max(0.0) + self.cfg.error_floor).ln()
        } else {
            raw
        };
        // The short-term mean and the moments as they would be with `x`,
        // computed before any of the state changes. Summed afresh (a few
        // values): a running sum would carry the rounding of a huge error
        // long after it left the window.
        let full = self.short.len() >= self.cfg.short_window;
        let kept = self.short.iter().skip(usize::from(full));
        let m = (kept.clone().sum::<f64>() + x) / (kept.count() + 1) as f64;
        let mut history = self.history;
        history.push(m, self.cfg.long_window);
        let coarse = self.coarse.as_deref().map(|[coarse, history]| {
            let (mut coarse, before, mut after) = (*coarse, *history, *history);
            coarse.push(x, self.cfg.short_window * self.cfg.coarse_factor);
            after.push(coarse.mean(), self.cfg.long_window);
            (coarse, before, after)
        });
        let finite = m.is_finite()
            && history.is_finite()
            && coarse.is_none_or(|(c, _, h)| c.is_finite() && h.is_finite());
        if !finite {
            return None;
        }
        let novel = self.cfg.range_check && features > 0 && self.novel(window, features);
        if full {
            self.short.pop_front();
        }
        self.short.push_back(x);
        let warm = self.history.count() >= self.cfg.min_history as u64;
        let mut score = if warm {
            self.tail_score(m, &self.history)
        } else {
            0.0
        };
        let novel = novel && warm;
        self.history = history;
        if let (Some((c, before, after)), Some(state)) = (coarse, self.coarse.as_deref_mut()) {
            *state = [c, after];
            if warm {
                score = score.max(self.tail_score(c.mean(), &before));
            }
        }
        let likelihood = self.fire(score);
        // Range novelty has its own refractory period, so a likelihood alarm
        // and a level alarm do not silence each other (one shared period
        // scored lower on NAB; docs/evaluation.md).
        if self.range_quiet > 0 {
            self.range_quiet -= 1;
        } else if novel {
            self.range_quiet = self.refractory();
            return Some(1.0);
        }
        Some(likelihood)
    }

    /// The score of a mean `m` against the history of such means: its
    /// Gaussian tail probability `p`, as `1 − p` or on the log scale.
    fn tail_score(&self, m: f64, history: &Moments) -> f64 {
        let (mu, sd) = (history.mean(), history.std_dev().max(self.cfg.std_floor));
        let p = if sd > 0.0 {
            gaussian_tail((m - mu) / sd)
        } else if m > mu {
            0.0
        } else {
            0.5
        };
        if self.cfg.log_scale {
            let d = self.cfg.log_decades;
            (-(p + 10f64.powf(-d)).log10() / d).clamp(0.0, 1.0)
        } else {
            (1.0 - p).clamp(0.0, 1.0)
        }
    }

    /// `refractory` as the counters hold it (a silence of 2³² rows or more
    /// is as good as forever).
    fn refractory(&self) -> u32 {
        u32::try_from(self.cfg.refractory).unwrap_or(u32::MAX)
    }

    /// The likelihood output of a row's score: the score itself, or 0 while
    /// silent after a fire (the refractory rows, then, with `rearm_level`,
    /// until the score has fallen below it); a fire starts a silence.
    fn fire(&mut self, score: f64) -> f64 {
        let refractory = self.refractory();
        let cfg = &self.cfg;
        let rising_strong = cfg.override_level > 0.0
            && score >= cfg.override_level
            && self.last_score < cfg.override_level;
        self.last_score = score;
        if !self.armed && score < cfg.rearm_level {
            self.armed = true;
        }
        let silent = self.quiet_left > 0 || !self.armed;
        self.quiet_left = self.quiet_left.saturating_sub(1);
        if silent && !rising_strong {
            return 0.0;
        }
        if score >= cfg.fire_level {
            self.quiet_left = refractory;
            self.armed = cfg.rearm_level <= 0.0;
        }
        score
    }

    /// Whether the window's last row leaves the widened range of all values
    /// seen before it; the window's values join the range.
    fn novel(&mut self, window: &[f32], f: usize) -> bool {
        let Some(split) = window
            .len()
            .checked_sub(f)
            .filter(|_| window.len().is_multiple_of(f))
        else {
            return false;
        };
        if self.range.len() != f {
            self.range = vec![(f32::INFINITY, f32::NEG_INFINITY); f].into_boxed_slice();
        }
        let (earlier, last) = window.split_at(split);
        for (i, &v) in earlier.iter().enumerate() {
            let r = &mut self.range[i % f];
            *r = (r.0.min(v), r.1.max(v));
        }
        let tol = self.cfg.range_tolerance;
        let mut novel = false;
        for (r, &v) in self.range.iter_mut().zip(last) {
            if r.0 <= r.1 {
                let margin = tol * f64::from(r.1 - r.0);
                let v64 = f64::from(v);
                novel |= v64 > f64::from(r.1) + margin || v64 < f64::from(r.0) - margin;
            }
            *r = (r.0.min(v), r.1.max(v));
        }
        novel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(short: usize, long: usize, min: usize) -> PostprocessConfig {
        PostprocessConfig {
            prediction_weight: 0.0,
            log_errors: false,
            error_floor: 1e-4,
            short_window: short,
            long_window: long,
            min_history: min,
            std_floor: 0.0,
            log_scale: false,
            log_decades: 10.0,
            refractory: 0,
            fire_level: 0.5,
            rearm_level: 0.0,
            override_level: 0.0,
            coarse_factor: 0,
            range_check: false,
            range_tolerance: 0.05,
        }
    }

    /// A history rescaled by `r` scores the next errors as a history that
    /// saw `r` times every error did: a model swap with a different error
    /// scale keeps each key's likelihood warm.
    #[test]
    fn a_rescaled_history_scores_like_one_that_saw_the_scaled_errors() {
        let mut cfg = plain(5, 200, 20);
        cfg.coarse_factor = 3;
        let errors: Vec<f64> = (0..400)
            .map(|i| 0.01 + 0.005 * ((i * 7919 % 97) as f64 / 97.0))
            .collect();
        let r = 3.5;
        let mut carried = Postprocessor::new(cfg.clone()).unwrap();
        let mut fresh_scale = Postprocessor::new(cfg.clone()).unwrap();
        for &e in &errors[..300] {
            carried.push(e);
            fresh_scale.push(r * e);
        }
        carried.rescale(r);
        for &e in &errors[300..] {
            let e = if e > 0.0145 { 4.0 * e } else { e }; // some spikes
            let (a, b) = (carried.push(r * e), fresh_scale.push(r * e));
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        // Without the rescale the same errors would look like a level shift.
        let mut stale = Postprocessor::new(cfg).unwrap();
        for &e in &errors[..300] {
            stale.push(e);
        }
        assert!(stale.push(r * errors[300]) > 0.99);
    }

    #[test]
    fn a_value_beyond_the_widened_range_scores_1_once_history_is_there() {
        let cfg = PostprocessConfig {
            range_check: true,
            range_tolerance: 0.1,
            refractory: 3,
            fire_level: 0.9,
            ..plain(1, 10, 3)
        };
        let mut p = Postprocessor::new(cfg).unwrap();
        // Windows of 2 rows × 1 feature sliding over 0, 1, 2, …, 9 (range
        // 0..=9, widened to −0.9..=9.9), each with the same raw error, which
        // alone scores 0.5 (a tail probability of one half).
        let series: Vec<f32> = (0..10).map(|v| v as f32).collect();
        let mut scores = vec![];
        for w in series.windows(2) {
            scores.push(p.push_window(1.0, w, 1));
        }
        // Rising values are new maxima, but too early (history < 3 means)
        // only for the first three; after that each step of 1 leaves the
        // range widened by 10 %, except when the widening covers it.
        assert_eq!(&scores[..3], &[0.0, 0.0, 0.0]);
        assert_eq!(scores[3], 1.0, "4 > 3 + 0.3");
        assert_eq!(
            &scores[4..7],
            &[0.5, 0.5, 0.5],
            "the range's own refractory period; the likelihood still speaks"
        );
        assert_eq!(scores[7], 1.0, "8 > 7 + 0.7");
        // Inside the widened range: 9.8 ≤ 9 + 0.9, −0.8 ≥ −0.9.
        let mut q = p.clone();
        q.range_quiet = 0;
        assert_eq!(q.push_window(1.0, &[9.0, 9.8], 1), 0.5);
        assert_eq!(q.push_window(1.0, &[9.8, -0.8], 1), 0.5);
        // Beyond it, in either direction.
        let mut q2 = q.clone();
        assert_eq!(q2.push_window(1.0, &[0.0, 11.0], 1), 1.0);
        assert_eq!(q.push_window(1.0, &[0.0, -2.0], 1), 1.0);
        // Without values (push), no range check.
        let mut r = q.clone();
        r.range_quiet = 0;
        assert_eq!(r.push(1.0), 0.5);
    }

    /// Within `tol` absolutely, or within the tail fit's relative error
    /// (1.2e−7) of `b`.
    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol.max(2e-7 * b.abs())
    }

    /// Without the log transform a finite but huge error squares past
    /// f64::MAX in the variance; once in, every later score would be NaN.
    #[test]
    fn an_error_too_large_for_finite_moments_leaves_the_state_alone() {
        let mut p = Postprocessor::new(plain(3, 50, 5)).unwrap();
        let mut q = p.clone();
        let normal = |i: usize| 0.1 + 0.01 * (i % 7) as f64;
        for i in 0..30 {
            assert_eq!(p.push(normal(i)), q.push(normal(i)));
        }
        let refused: Vec<f64> = [1e308, f64::MAX, f64::INFINITY, f64::NAN]
            .into_iter()
            .map(|raw| p.push(raw))
            .collect();
        for i in 30..60 {
            let (a, b) = (p.push(normal(i)), q.push(normal(i)));
            assert!((0.0..=1.0).contains(&a), "row {i}: {a}");
            assert_eq!(a, b, "row {i}");
        }
        assert_eq!(refused, vec![0.0; 4]);
        for raw in [1e308, f64::INFINITY, f64::NAN] {
            assert_eq!(p.try_push_window(raw, &[], 0), None, "{raw}");
        }
        assert_eq!(
            p.try_push_window(0.1, &[], 0),
            q.try_push_window(0.1, &[], 0)
        );
        assert!(p.try_push_window(0.1, &[], 0).is_some());
    }

    #[test]
    fn gaussian_tail_matches_tables() {
        // Standard normal table values.
        assert!(close(gaussian_tail(0.0), 0.5, 1e-9));
        assert!(close(gaussian_tail(1.0), 0.158_655_253_9, 1e-8));
        assert!(close(gaussian_tail(1.959_963_985), 0.025, 1e-8));
        assert!(close(gaussian_tail(-1.0), 0.841_344_746_1, 1e-8));
        // Far tail: Q(6) = 9.8658765e−10, within the fit's relative accuracy.
        assert!((gaussian_tail(6.0) / 9.865_876_450e-10 - 1.0).abs() < 2e-7);
    }

    #[test]
    fn scores_by_hand_without_log_transforms() {
        let mut p = Postprocessor::new(plain(1, 4, 2)).unwrap();
        // Fewer than two past means: 0.
        assert_eq!(p.push(1.0), 0.0);
        assert_eq!(p.push(3.0), 0.0);
        // History {1, 3}: μ = 2, σ = 1; m = 2 → z = 0 → 1 − 0.5.
        assert!(close(p.push(2.0), 0.5, 1e-9));
        // History {1, 3, 2}: μ = 2, σ = √(2/3); m = 5 → z = 3.674235.
        // Q(3.674235) = 1.192817e−4.
        assert!(close(p.push(5.0), 1.0 - 1.192_817e-4, 1e-8));
        // History {1, 3, 2, 5}: μ = 2.75, σ² = (3.0625+0.0625+0.5625+5.0625)/4
        // = 2.1875; m = 2.75 → z = 0 → 0.5.
        assert!(close(p.push(2.75), 0.5, 1e-9));
        // Past 4 means the history forgets with α = 1/4: after 2.75,
        // μ = 2.75 + (2.75 − 2.75)/4 = 2.75, σ² = (3/4)·(2.1875 + 0) =
        // 1.640625; m = 3.1875 → z = 0.4375/1.2808689 = 0.3415650,
        // Q(z) = 0.3663391307 (Python's math.erfc).
        assert!(close(p.push(3.1875), 1.0 - 0.3663391307, 1e-8));
    }

    /// Weighted mean and population variance, two passes.
    fn weighted(x: &[f64], w: &[f64]) -> (f64, f64) {
        let mean: f64 = x.iter().zip(w).map(|(x, w)| x * w).sum();
        let var = x.iter().zip(w).map(|(x, w)| w * (x - mean).powi(2)).sum();
        (mean, var)
    }

    #[test]
    fn moments_are_the_plain_then_the_exponentially_weighted_ones() {
        // A deterministic, irregular stream.
        let x: Vec<f64> = (0..60)
            .map(|i| ((i * 37 % 23) as f64 - 11.0) * 0.7 + (i as f64) * 0.05)
            .collect();
        let h = 10;
        let mut m = Moments::default();
        for n in 1..=x.len() {
            m.push(x[n - 1], h);
            // The weights written out: 1/n each up to h values; after that
            // the first h share (1 − 1/h)^(n−h)/h each, and the i-th later
            // value (1-based) weighs (1/h)(1 − 1/h)^(n−i).
            let a = 1.0 / h as f64;
            let w: Vec<f64> = (1..=n)
                .map(|i| {
                    if n <= h {
                        1.0 / n as f64
                    } else if i <= h {
                        (1.0 - a).powi((n - h) as i32) / h as f64
                    } else {
                        a * (1.0 - a).powi((n - i) as i32)
                    }
                })
                .collect();
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            let (mean, var) = weighted(&x[..n], &w);
            assert!(
                (m.mean() - mean).abs() < 1e-9,
                "n {n}: {} vs {mean}",
                m.mean()
            );
            assert!(
                (m.std_dev() - var.sqrt()).abs() < 1e-9,
                "n {n}: {} vs {}",
                m.std_dev(),
                var.sqrt()
            );
            assert_eq!(m.count(), n as u64);
        }
    }

    #[test]
    fn state_is_constant_in_the_rows_pushed() {
        let cfg = PostprocessConfig::default();
        let mut p = Postprocessor::new(cfg.clone()).unwrap();
        let window = [0.5f32; 32];
        p.push_window(0.1, &window, 1);
        let after_one = p.state_bytes();
        for i in 0..100_000 {
            let e = 0.1 + (i % 97) as f64 * 1e-3;
            let v = (i % 50) as f32;
            p.push_window(e, &[v; 32], 1);
        }
        assert_eq!(p.state_bytes(), after_one);
        // The documented budget: the struct, the short window, one range.
        let budget = std::mem::size_of::<Postprocessor>() + 8 * (cfg.short_window + 1) + 8;
        assert!(p.state_bytes() <= budget, "{} > {budget}", p.state_bytes());
        assert!(p.state_bytes() < 512, "{}", p.state_bytes());
    }

    #[test]
    fn short_mean_averages_recent_errors() {
        // short 2: means 1, 2 (of 1,3), 2.5 (of 3,2)... check a hand case.
        let mut p = Postprocessor::new(plain(2, 10, 2)).unwrap();
        p.push(1.0); // m = 1
        p.push(3.0); // m = 2
                     // history {1, 2}: μ = 1.5, σ = 0.5; m = (3 + 2)/2 = 2.5 → z = 2,
                     // Q(2) = 0.0227501319.
        assert!(close(p.push(2.0), 1.0 - 0.022_750_131_9, 1e-8));
    }

    #[test]
    fn log_scale_and_log_errors() {
        let cfg = PostprocessConfig {
            log_errors: true,
            error_floor: 1.0,
            log_scale: true,
            ..plain(1, 10, 2)
        };
        let mut p = Postprocessor::new(cfg).unwrap();
        // x = ln(e + 1): e = e¹ − 1 → 1, e = e³ − 1 → 3.
        p.push(std::f64::consts::E - 1.0);
        p.push(3f64.exp() - 1.0);
        // History {1, 3}; x = 2 → p = 0.5 → −ln(0.5 + 1e−10)/ln(1e10).
        let s = p.push(2f64.exp() - 1.0);
        assert!(close(s, 2f64.ln() / 10f64.ln() / 10.0, 1e-8), "{s}");
        // A far outlier saturates at 1.
        assert_eq!(p.push(1e30), 1.0);
        // Non-finite errors score 0 and change nothing.
        assert_eq!(p.push(f64::NAN), 0.0);
    }

    #[test]
    fn log_decades_set_where_the_scale_saturates() {
        let cfg = PostprocessConfig {
            log_scale: true,
            log_decades: 2.0,
            ..plain(1, 10, 2)
        };
        let mut p = Postprocessor::new(cfg).unwrap();
        p.push(1.0);
        p.push(3.0);
        // μ = 2, σ = 1; m = 2 + 1.959964 → p = 0.025:
        // −log10(0.025 + 0.01)/2 = 0.727966.
        assert!(close(p.push(3.959_963_985), 0.727_966_0, 1e-6));
    }

    #[test]
    fn refractory_period_silences_rows_after_a_fire() {
        let cfg = PostprocessConfig {
            refractory: 2,
            fire_level: 0.9,
            ..plain(1, 100, 2)
        };
        let mut p = Postprocessor::new(cfg).unwrap();
        for e in [1.0, 3.0, 2.0] {
            p.push(e);
        }
        assert!(p.push(50.0) > 0.9);
        assert_eq!(p.push(100.0), 0.0);
        assert_eq!(p.push(200.0), 0.0);
        assert!(p.push(1000.0) > 0.9, "the period is over");
    }

    #[test]
    fn edge_triggered_firing_stays_silent_until_the_score_falls() {
        let cfg = PostprocessConfig {
            refractory: 0,
            fire_level: 0.9,
            rearm_level: 0.6,
            ..plain(1, 100, 2)
        };
        let mut p = Postprocessor::new(cfg.clone()).unwrap();
        let mut free = Postprocessor::new(PostprocessConfig {
            rearm_level: 0.0,
            ..cfg
        })
        .unwrap();
        for e in [1.0, 3.0, 2.0] {
            p.push(e);
            free.push(e);
        }
        // History {1, 3, 2}: 50 is z = 58.8 → fires.
        assert!(p.push(50.0) > 0.999);
        assert!(free.push(50.0) > 0.999);
        // History {1, 3, 2, 50}: μ 14, σ 20.797; 60 → z 2.212, 0.98651:
        // still above the re-arm level, so silent; without it, a second fire.
        assert_eq!(p.push(60.0), 0.0);
        assert!(close(free.push(60.0), 0.986_513_087, 1e-8));
        // μ 23.2, σ 26.164; 2 → z −0.810, 0.20889: below 0.6, re-armed,
        // and the score itself is reported.
        assert!(close(p.push(2.0), 0.208_892_324, 1e-8));
        // Armed again: the next excursion fires.
        assert!(p.push(200.0) > 0.999);
    }

    #[test]
    fn a_strong_rising_score_breaks_through_the_silence() {
        let cfg = PostprocessConfig {
            refractory: 100,
            fire_level: 0.9,
            override_level: 0.99,
            ..plain(1, 100, 2)
        };
        let mut p = Postprocessor::new(cfg).unwrap();
        for e in [1.0, 3.0, 2.0] {
            p.push(e);
        }
        assert!(p.push(50.0) > 0.999, "fires; 100 rows of silence follow");
        // 51 → 0.96239 and 2 → 0.20721: silent, neither is strong.
        assert_eq!(p.push(51.0), 0.0);
        assert_eq!(p.push(2.0), 0.0);
        // 1000 → z 42.9 rises through 0.99: it fires inside the silence.
        assert!(p.push(1000.0) > 0.999);
        // 1000 again → 0.99275, above 0.99 but not rising through it.
        assert_eq!(p.push(1000.0), 0.0);
    }

    #[test]
    fn std_floor_bounds_the_deviation() {
        let cfg = PostprocessConfig {
            std_floor: 1.0,
            ..plain(1, 10, 2)
        };
        let mut p = Postprocessor::new(cfg).unwrap();
        p.push(2.0);
        p.push(2.0);
        // σ = 0 floored to 1: m = 3 → z = 1.
        assert!(close(p.push(3.0), 1.0 - 0.158_655_253_9, 1e-8));
    }

    #[test]
    fn combine_and_validation() {
        let cfg = PostprocessConfig {
            prediction_weight: 0.5,
            ..PostprocessConfig::default()
        };
        assert_eq!(cfg.combine(1.0, Some(4.0)), 3.0);
        assert_eq!(cfg.combine(1.0, None), 1.0);
        assert!(Postprocessor::new(PostprocessConfig::default()).is_ok());
        let bad = PostprocessConfig {
            long_window: 5,
            min_history: 10,
            ..PostprocessConfig::default()
        };
        assert_eq!(Postprocessor::new(bad).unwrap_err().field, "long_window");
        let bad = PostprocessConfig {
            short_window: 0,
            ..PostprocessConfig::default()
        };
        assert_eq!(Postprocessor::new(bad).unwrap_err().field, "short_window");
    }
}
