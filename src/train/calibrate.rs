//! Threshold calibration: turning the anomaly scores of validation windows
//! (which are assumed normal) into the threshold the daemon alerts above.
//!
//! Three rules: an empirical quantile, mean + k·σ, and peaks over threshold
//! (POT, Siffer et al. 2017, "Anomaly Detection in Streams with Extreme
//! Value Theory"). POT is the default because it extrapolates: with 1,000
//! validation windows an empirical quantile cannot say where the 1-in-10,000
//! score lies, while a generalized Pareto tail fitted to the largest scores
//! can.

use crate::model::{Fallback, ThresholdRule};

/// Fewest excesses POT fits a tail to: below this the shape estimate is
/// mostly noise and the extrapolated threshold can land anywhere.
pub const MIN_EXCESSES: usize = 10;

/// Lowest threshold a rule may set, in squared scaled units (a window's
/// score is its mean squared reconstruction error after scaling). On a
/// series that was flat through validation every score is about 0 and
/// every rule would put the threshold there, flagging float noise; with
/// the floor a window is flagged only when its root-mean-square error
/// reaches 0.01 (standard deviations of the training data, or raw units
/// for a feature that was constant). docs/configuration.md, *Threshold*.
pub const THRESHOLD_FLOOR: f32 = 1e-4;

/// Why no threshold could be calibrated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    #[error("no scores to calibrate a threshold on")]
    Empty,
    #[error("score #{index} is {value}; every score must be finite")]
    NonFinite { index: usize, value: f32 },
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        name: &'static str,
        value: f64,
        reason: &'static str,
    },
    #[error(
        "POT needs at least {needed} scores above the initial threshold {threshold} \
         (the {initial_quantile} quantile) but only {excesses} of {n} are; {hint}"
    )]
    TooFewExcesses {
        excesses: usize,
        needed: usize,
        n: usize,
        initial_quantile: f64,
        threshold: f64,
        hint: String,
    },
    #[error(
        "POT risk {risk} is not below the fraction of scores above the initial \
         threshold ({fraction}), so the threshold would fall under the initial \
         quantile; use a smaller risk or a lower initial_quantile"
    )]
    RiskTooHigh { risk: f64, fraction: f64 },
    #[error("POT tail fit failed: {reason}")]
    FitFailed { reason: &'static str },
}

/// A calibrated threshold and, when the configured rule could not be
/// applied, the rule that was.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibrated {
    pub value: f32,
    pub fallback: Option<Fallback>,
}

/// [`calibrate`], except that when POT cannot fit a tail to these scores
/// ([`CalibrationError::TooFewExcesses`] or [`CalibrationError::FitFailed`]:
/// typically a small file with few validation windows) the threshold is the
/// empirical `1 − risk` quantile of the scores instead, with one warning.
///
/// Why that rule: it keeps the configured meaning of `risk` ("a normal
/// window scores above the threshold about this often") and only gives up
/// the extrapolation; with fewer than `1 / risk` scores it lies between the
/// two largest, i.e. no validation window is flagged. Invalid parameters and
/// a `risk` that is too high for the initial quantile stay errors: those are
/// settings to fix, not a property of the data.
pub fn calibrate_or_fall_back(
    scores: &[f32],
    rule: &ThresholdRule,
) -> Result<Calibrated, CalibrationError> {
    match (calibrate(scores, rule), rule) {
        (Ok(value), _) => Ok(Calibrated {
            value,
            fallback: None,
        }),
        (
            Err(e @ (CalibrationError::TooFewExcesses { .. } | CalibrationError::FitFailed { .. })),
            ThresholdRule::Pot { risk, .. },
        ) => {
            let fallback_rule = ThresholdRule::Quantile { q: 1.0 - risk };
            let value = calibrate(scores, &fallback_rule)?;
            let reason = e.to_string();
            tracing::warn!(
                windows = scores.len(),
                threshold = value,
                "POT cannot calibrate on these validation scores ({reason}); \
                 using the empirical {} quantile instead (recorded in the manifest)",
                1.0 - risk
            );
            Ok(Calibrated {
                value,
                fallback: Some(Fallback {
                    rule: fallback_rule,
                    reason,
                }),
            })
        }
        (Err(e), _) => Err(e),
    }
    .map(floored)
}

/// Raises a threshold below [`THRESHOLD_FLOOR`] to it, with one warning.
fn floored(mut c: Calibrated) -> Calibrated {
    if c.value < THRESHOLD_FLOOR {
        tracing::warn!(
            threshold = c.value,
            floor = THRESHOLD_FLOOR,
            "the validation scores put the threshold at {}, below the floor: the threshold is \
             the floor {THRESHOLD_FLOOR} (is the series flat through the validation rows?)",
            c.value
        );
        c.value = THRESHOLD_FLOOR;
    }
    c
}

/// Calibrates a threshold on `scores` (validation windows' anomaly scores).
pub fn calibrate(scores: &[f32], rule: &ThresholdRule) -> Result<f32, CalibrationError> {
    if scores.is_empty() {
        return Err(CalibrationError::Empty);
    }
    if let Some((index, &value)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(CalibrationError::NonFinite { index, value });
    }
    let mut sorted: Vec<f64> = scores.iter().map(|&s| f64::from(s)).collect();
    sorted.sort_by(f64::total_cmp);
    let threshold = match *rule {
        ThresholdRule::Quantile { q } => {
            if !(q > 0.0 && q <= 1.0) {
                return Err(invalid("q", q, "must be in (0, 1]"));
            }
            quantile(&sorted, q)
        }
        ThresholdRule::MeanStd { k } => {
            if !(k.is_finite() && k >= 0.0) {
                return Err(invalid("k", k, "must be a finite number >= 0"));
            }
            let n = sorted.len() as f64;
            let mean = sorted.iter().sum::<f64>() / n;
            let var = sorted.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
            mean + k * var.sqrt()
        }
        ThresholdRule::Pot {
            initial_quantile,
            risk,
        } => pot(&sorted, initial_quantile, risk)?,
    };
    Ok(threshold as f32)
}

fn invalid(name: &'static str, value: f64, reason: &'static str) -> CalibrationError {
    CalibrationError::InvalidParameter {
        name,
        value,
        reason,
    }
}

/// Peaks over threshold on sorted, finite scores.
fn pot(sorted: &[f64], initial_quantile: f64, risk: f64) -> Result<f64, CalibrationError> {
    if !(initial_quantile > 0.0 && initial_quantile < 1.0) {
        return Err(invalid(
            "initial_quantile",
            initial_quantile,
            "must be in (0, 1)",
        ));
    }
    if !(risk > 0.0 && risk < 1.0) {
        return Err(invalid("risk", risk, "must be in (0, 1)"));
    }
    let n = sorted.len();
    let t = quantile(sorted, initial_quantile);
    let excesses: Vec<f64> = sorted.iter().filter(|&&s| s > t).map(|s| s - t).collect();
    let n_t = excesses.len();
    if n_t < MIN_EXCESSES {
        // The quantile that leaves MIN_EXCESSES scores above it, if any.
        let max_q = 1.0 - (MIN_EXCESSES as f64 + 1.0) / n as f64;
        // Tied scores (a flat series scores every window alike) can leave
        // too few excesses over that quantile too: say so rather than
        // suggest it.
        let at_max_q = quantile(sorted, max_q.max(0.0));
        let tied = sorted.iter().filter(|&&s| s == at_max_q).count();
        let hint = if sorted.iter().filter(|&&s| s > at_max_q).count() < MIN_EXCESSES && tied > 1 {
            format!(
                "{tied} of the {n} scores are tied at {at_max_q}, so no initial_quantile \
                 leaves {MIN_EXCESSES} above it (is the series flat through the validation rows?)"
            )
        } else if max_q > 0.0 {
            format!(
                "lower initial_quantile to at most {:.4}, or calibrate on more windows",
                (max_q * 1e4).floor() / 1e4
            )
        } else {
            format!(
                "calibrate on more windows (with {n} scores no quantile leaves {MIN_EXCESSES} above it)"
            )
        };
        return Err(CalibrationError::TooFewExcesses {
            excesses: n_t,
            needed: MIN_EXCESSES,
            n,
            initial_quantile,
            threshold: t,
            hint,
        });
    }
    let ratio = risk * n as f64 / n_t as f64;
    if ratio >= 1.0 {
        return Err(CalibrationError::RiskTooHigh {
            risk,
            fraction: n_t as f64 / n as f64,
        });
    }
    let gpd = fit_gpd(&excesses).ok_or(CalibrationError::FitFailed {
        reason: "no finite likelihood for the excesses",
    })?;
    let z = t + gpd.quantile_excess(ratio);
    if !z.is_finite() {
        return Err(CalibrationError::FitFailed {
            reason: "the fitted tail puts the threshold at infinity",
        });
    }
    // z ≥ t holds mathematically for ratio < 1; max() guards rounding.
    Ok(z.max(t))
}

/// A generalized Pareto distribution of excesses over a threshold:
/// P(Y > y) = (1 + γ y / σ)^(−1/γ), or exp(−y/σ) when γ = 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gpd {
    /// γ: > 0 heavy tail, 0 exponential, < 0 bounded tail.
    pub shape: f64,
    /// σ > 0.
    pub scale: f64,
}

impl Gpd {
    /// The excess `y` with P(Y > y) = `p`, i.e. (σ/γ)(p^(−γ) − 1), with the
    /// γ → 0 limit −σ ln p.
    pub fn quantile_excess(&self, p: f64) -> f64 {
        let Gpd { shape: g, scale: s } = *self;
        if g.abs() < 1e-9 {
            -s * p.ln()
        } else {
            s / g * (p.powf(-g) - 1.0)
        }
    }
}

/// Maximum-likelihood fit of a [`Gpd`] to positive excesses; `None` if
/// there are none, or some are not positive and finite.
///
/// Grimshaw's reduction: with x = γ/σ, the likelihood is maximised over γ
/// in closed form, γ(x) = mean(ln(1 + x·y)), which leaves a profile
/// log-likelihood in the single variable x. Grimshaw (and Siffer's SPOT)
/// then solve for roots of its derivative; that needs brackets that small
/// or tied samples break, so here the profile itself is maximised: a
/// log-spaced grid over the whole domain x ∈ (−1/max y, ∞), refined by a
/// golden-section search around the best grid point, and compared with the
/// exponential fit (x = 0). Shapes below −1 are excluded because the
/// likelihood is unbounded there (σ → 0 at the sample maximum).
pub fn fit_gpd(excesses: &[f64]) -> Option<Gpd> {
    if excesses.is_empty() || !excesses.iter().all(|&y| y > 0.0 && y.is_finite()) {
        return None;
    }
    // Work in units of the mean excess so the grid does not depend on the
    // scores' scale.
    let mean = excesses.iter().sum::<f64>() / excesses.len() as f64;
    let u: Vec<f64> = excesses.iter().map(|y| y / mean).collect();
    let u_max = u.iter().copied().fold(0.0, f64::max);

    // Candidate x, in increasing order: negative side x = −s/u_max with
    // s ∈ (0, 1) (log-spaced, plus points crowding the domain edge), then
    // positive side x ∈ [1e-6, 1e6].
    let mut grid: Vec<f64> = Vec::new();
    let mut neg: Vec<f64> = (0..=120)
        .map(|i| 10f64.powf(-6.0 + 6.0 * i as f64 / 120.0))
        .collect();
    neg.retain(|&s| s < 1.0);
    neg.extend((1..=8).map(|j| 1.0 - 10f64.powi(-j)));
    neg.sort_by(f64::total_cmp);
    grid.extend(neg.iter().rev().map(|s| -s / u_max));
    grid.extend((0..=240).map(|i| 10f64.powf(-6.0 + 12.0 * i as f64 / 240.0)));

    let ll = |x: f64| profile_log_likelihood(&u, x);
    let (best_i, best_ll) = grid
        .iter()
        .enumerate()
        .map(|(i, &x)| (i, ll(x)))
        .filter(|(_, l)| l.is_finite())
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let lo = grid[best_i.saturating_sub(1)];
    let hi = grid[(best_i + 1).min(grid.len() - 1)];
    // Keep the refinement on one side of 0, where ll is undefined.
    let (lo, hi) = if grid[best_i] < 0.0 {
        (lo, hi.min(grid[best_i] / 2.0).max(grid[best_i]))
    } else {
        (lo.max(grid[best_i] / 2.0).min(grid[best_i]), hi)
    };
    let (x, l) = golden_max(&ll, lo, hi, grid[best_i], best_ll);

    // The exponential fit: γ = 0, σ = mean, log-likelihood −(ln 1 + 1) per
    // point in these units.
    if l <= -1.0 {
        return Some(Gpd {
            shape: 0.0,
            scale: mean,
        });
    }
    let g = mean_log1p(&u, x);
    Some(Gpd {
        shape: g,
        scale: g / x * mean,
    })
}

/// mean(ln(1 + x·u)).
fn mean_log1p(u: &[f64], x: f64) -> f64 {
    u.iter().map(|&v| (x * v).ln_1p()).sum::<f64>() / u.len() as f64
}

/// The GPD log-likelihood per point at x = γ/σ, with γ at its optimum for
/// that x: −ln(γ/x) − γ − 1. −∞ outside the domain or for γ < −1.
fn profile_log_likelihood(u: &[f64], x: f64) -> f64 {
    if x == 0.0 || u.iter().any(|&v| 1.0 + x * v <= 0.0) {
        return f64::NEG_INFINITY;
    }
    let g = mean_log1p(u, x);
    let sigma = g / x;
    if !(g >= -1.0 && sigma > 0.0 && sigma.is_finite()) {
        return f64::NEG_INFINITY;
    }
    -sigma.ln() - g - 1.0
}

/// Golden-section search for the maximum of `f` on [lo, hi]; returns the
/// best point seen, starting from (`x0`, `f0`).
fn golden_max(f: &impl Fn(f64) -> f64, lo: f64, hi: f64, x0: f64, f0: f64) -> (f64, f64) {
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (lo, hi);
    let mut best = (x0, f0);
    let mut c = b - phi * (b - a);
    let mut d = a + phi * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..100 {
        if fc > best.1 {
            best = (c, fc);
        }
        if fd > best.1 {
            best = (d, fd);
        }
        if (b - a).abs() <= 1e-12 * (a.abs() + b.abs()) {
            break;
        }
        if fc >= fd {
            b = d;
            d = c;
            fd = fc;
            c = b - phi * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + phi * (b - a);
            fd = f(d);
        }
    }
    best
}

/// The `q` quantile of sorted values with linear interpolation between
/// order statistics (numpy's default, "type 7"): position q·(n − 1).
/// `q` is clamped to [0, 1]; NaN for no values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    let h = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

/// The score quantiles a report shows: (q, value) at 0.5, 0.9, 0.95, 0.99,
/// 0.999 and 1.0 (the maximum). Non-finite scores are left out; no finite
/// score gives an empty list.
pub fn score_quantiles(scores: &[f32]) -> Vec<(f64, f64)> {
    let mut sorted: Vec<f64> = scores
        .iter()
        .filter(|s| s.is_finite())
        .map(|&s| f64::from(s))
        .collect();
    if sorted.is_empty() {
        return Vec::new();
    }
    sorted.sort_by(f64::total_cmp);
    [0.5, 0.9, 0.95, 0.99, 0.999, 1.0]
        .into_iter()
        .map(|q| (q, quantile(&sorted, q)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::Exp;

    fn exponential(n: usize, rate: f64, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        let exp = Exp::new(rate).unwrap();
        (0..n).map(|_| rng.sample(exp)).collect()
    }

    /// Inverse-CDF samples of a GPD(γ, σ).
    fn gpd_samples(n: usize, shape: f64, scale: f64, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let u: f64 = rng.random();
                scale / shape * ((1.0 - u).powf(-shape) - 1.0)
            })
            .collect()
    }

    fn f32s(v: &[f64]) -> Vec<f32> {
        v.iter().map(|&x| x as f32).collect()
    }

    #[test]
    fn quantile_interpolates_like_numpy() {
        let s = [1.0, 2.0, 3.0, 4.0];
        // Position q·(n−1) = 3q.
        assert_eq!(quantile(&s, 0.0), 1.0);
        assert_eq!(quantile(&s, 0.25), 1.75);
        assert_eq!(quantile(&s, 0.5), 2.5);
        assert!((quantile(&s, 0.9) - 3.7).abs() < 1e-12);
        assert_eq!(quantile(&s, 1.0), 4.0);
        assert_eq!(quantile(&[7.0], 0.3), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }

    #[test]
    fn quantile_rule_sorts_first() {
        let scores = [5.0, 1.0, 4.0, 2.0, 3.0];
        let q = |q| calibrate(&scores, &ThresholdRule::Quantile { q }).unwrap();
        assert_eq!(q(0.5), 3.0);
        assert_eq!(q(0.75), 4.0);
        assert_eq!(q(0.875), 4.5);
        assert_eq!(q(1.0), 5.0);
    }

    #[test]
    fn mean_std_rule() {
        // Mean 5, population std 2.
        let scores = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        assert_eq!(
            calibrate(&scores, &ThresholdRule::MeanStd { k: 1.5 }).unwrap(),
            8.0
        );
        assert_eq!(
            calibrate(&scores, &ThresholdRule::MeanStd { k: 0.0 }).unwrap(),
            5.0
        );
    }

    #[test]
    fn rejects_bad_input_and_parameters() {
        let rule = ThresholdRule::default();
        assert_eq!(calibrate(&[], &rule), Err(CalibrationError::Empty));
        let err = calibrate(&[1.0, 2.0, f32::NAN], &rule).unwrap_err();
        assert!(
            matches!(err, CalibrationError::NonFinite { index: 2, .. }),
            "{err:?}"
        );
        let err = calibrate(&[1.0, f32::INFINITY], &rule).unwrap_err();
        assert!(
            matches!(err, CalibrationError::NonFinite { index: 1, .. }),
            "{err:?}"
        );
        let scores = [1.0; 100];
        for (rule, name) in [
            (ThresholdRule::Quantile { q: 0.0 }, "q"),
            (ThresholdRule::Quantile { q: 1.5 }, "q"),
            (ThresholdRule::Quantile { q: f64::NAN }, "q"),
            (ThresholdRule::MeanStd { k: -1.0 }, "k"),
            (ThresholdRule::MeanStd { k: f64::INFINITY }, "k"),
            (
                ThresholdRule::Pot {
                    initial_quantile: 1.0,
                    risk: 1e-3,
                },
                "initial_quantile",
            ),
            (
                ThresholdRule::Pot {
                    initial_quantile: 0.0,
                    risk: 1e-3,
                },
                "initial_quantile",
            ),
            (
                ThresholdRule::Pot {
                    initial_quantile: 0.9,
                    risk: 0.0,
                },
                "risk",
            ),
            (
                ThresholdRule::Pot {
                    initial_quantile: 0.9,
                    risk: 1.0,
                },
                "risk",
            ),
        ] {
            let err = calibrate(&scores, &rule).unwrap_err();
            assert!(
                matches!(err, CalibrationError::InvalidParameter { name: n, .. } if n == name),
                "{rule:?}: {err:?}"
            );
        }
    }

    #[test]
    fn too_few_excesses_suggests_a_quantile_that_works() {
        // Scores 0..99: the 0.98 quantile is 97.02, leaving only 98 and 99.
        let scores: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let rule = ThresholdRule::Pot {
            initial_quantile: 0.98,
            risk: 1e-3,
        };
        let err = calibrate(&scores, &rule).unwrap_err();
        let CalibrationError::TooFewExcesses {
            excesses,
            needed,
            n,
            ref hint,
            ..
        } = err
        else {
            panic!("unexpected {err:?}");
        };
        assert_eq!((excesses, needed, n), (2, MIN_EXCESSES, 100));
        assert!(hint.contains("at most 0.8900"), "{hint}");
        assert!(err.to_string().contains("only 2 of 100"), "{err}");
        // The suggested quantile leaves 11 scores above it (88.11).
        let rule = ThresholdRule::Pot {
            initial_quantile: 0.89,
            risk: 1e-3,
        };
        assert!(calibrate(&scores, &rule).unwrap() >= 88.11);
        // With 5 scores no quantile can help.
        let err = calibrate(&[1.0, 2.0, 3.0, 4.0, 5.0], &ThresholdRule::default()).unwrap_err();
        assert!(err.to_string().contains("more windows"), "{err}");
    }

    #[test]
    fn too_few_excesses_fall_back_to_the_empirical_quantile() {
        // Scores 0..99 leave 2 excesses over the 0.98 quantile: POT refuses,
        // the fallback is the 1 − 1e-3 = 0.999 quantile, position
        // 0.999 · 99 = 98.901 between 98 and 99, i.e. 98.901.
        let scores: Vec<f32> = (0..100).map(|i| i as f32).collect();
        let c = calibrate_or_fall_back(&scores, &ThresholdRule::default()).unwrap();
        assert!((c.value - 98.901).abs() < 1e-4, "{c:?}");
        let f = c.fallback.expect("a fallback");
        assert_eq!(f.rule, ThresholdRule::Quantile { q: 1.0 - 1e-3 });
        assert!(f.reason.contains("only 2 of 100"), "{}", f.reason);
        // A single score: the threshold is that score.
        let c = calibrate_or_fall_back(&[0.25], &ThresholdRule::default()).unwrap();
        assert_eq!(c.value, 0.25);
        assert!(c.fallback.is_some());
    }

    #[test]
    fn tied_scores_get_the_floor_and_no_quantile_suggestion() {
        let zeros = vec![0.0f32; 300];
        for rule in [
            ThresholdRule::default(),
            ThresholdRule::Quantile { q: 0.99 },
            ThresholdRule::MeanStd { k: 4.0 },
        ] {
            let c = calibrate_or_fall_back(&zeros, &rule).unwrap();
            assert_eq!(c.value, THRESHOLD_FLOOR, "{rule:?}");
        }
        let err = calibrate(&zeros, &ThresholdRule::default()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("300 of the 300 scores are tied at 0"),
            "{text}"
        );
        assert!(!text.contains("lower initial_quantile"), "{text}");
        // A threshold above the floor is left alone.
        let c = calibrate_or_fall_back(&[0.5; 20], &ThresholdRule::Quantile { q: 0.5 }).unwrap();
        assert_eq!(c.value, 0.5);
    }

    #[test]
    fn enough_excesses_or_other_rules_need_no_fallback() {
        let scores = f32s(&exponential(1000, 1.0, 7));
        let c = calibrate_or_fall_back(&scores, &ThresholdRule::default()).unwrap();
        assert_eq!(c.fallback, None);
        assert_eq!(
            c.value,
            calibrate(&scores, &ThresholdRule::default()).unwrap()
        );
        let few: Vec<f32> = (0..20).map(|i| i as f32).collect();
        let c = calibrate_or_fall_back(&few, &ThresholdRule::MeanStd { k: 0.0 }).unwrap();
        assert_eq!((c.value, c.fallback), (9.5, None));
        // Settings to fix stay errors.
        let bad = ThresholdRule::Pot {
            initial_quantile: 0.98,
            risk: 0.05,
        };
        assert!(matches!(
            calibrate_or_fall_back(&scores, &bad),
            Err(CalibrationError::RiskTooHigh { .. })
        ));
        assert_eq!(
            calibrate_or_fall_back(&[], &ThresholdRule::default()),
            Err(CalibrationError::Empty)
        );
    }

    #[test]
    fn pot_risk_must_be_below_the_excess_fraction() {
        // 1,000 scores, 20 above the 0.98 quantile: risk 0.05 > 0.02.
        let scores = f32s(&exponential(1000, 1.0, 7));
        let rule = ThresholdRule::Pot {
            initial_quantile: 0.98,
            risk: 0.05,
        };
        let err = calibrate(&scores, &rule).unwrap_err();
        assert!(
            matches!(err, CalibrationError::RiskTooHigh { .. }),
            "{err:?}"
        );
    }

    #[test]
    fn pot_on_exponential_finds_the_true_quantile() {
        // Exp(λ = 1): the 1 − 1e-3 quantile is ln(1000) = 6.9078. With
        // 100,000 samples the fit uses ~2,000 excesses; the threshold's
        // sampling error is about 2%, the tolerance 5%.
        let truth = 1000f64.ln();
        for seed in [1, 2, 3] {
            let scores = f32s(&exponential(100_000, 1.0, seed));
            let z = f64::from(calibrate(&scores, &ThresholdRule::default()).unwrap());
            assert!(
                (z - truth).abs() < 0.05 * truth,
                "seed {seed}: {z} vs {truth}"
            );
        }
        // The rate only rescales: Exp(λ = 4) puts it at ln(1000)/4.
        let scores = f32s(&exponential(100_000, 4.0, 9));
        let z = f64::from(calibrate(&scores, &ThresholdRule::default()).unwrap());
        assert!((z - truth / 4.0).abs() < 0.05 * truth / 4.0, "{z}");
    }

    #[test]
    fn pot_extrapolates_beyond_the_data() {
        // 20,000 samples, risk 1e-5: the threshold lies past the largest
        // sample, where an empirical quantile cannot go. Truth ln(1e5) =
        // 11.51. Extrapolating 2,000-fold past the initial quantile magnifies
        // the shape estimate's sampling error (sd ≈ (1 + γ)/√400 = 0.05): two
        // sd either way move the threshold to about 9.2 or 15.3, hence the
        // asymmetric tolerance [0.75, 1.5] × truth.
        let truth = 1e5f64.ln();
        let scores = f32s(&exponential(20_000, 1.0, 11));
        let rule = ThresholdRule::Pot {
            initial_quantile: 0.98,
            risk: 1e-5,
        };
        let z = f64::from(calibrate(&scores, &rule).unwrap());
        let max = scores.iter().copied().fold(0.0f32, f32::max);
        assert!(z > f64::from(max), "{z} <= max {max}");
        assert!(z > 0.75 * truth && z < 1.5 * truth, "{z} vs {truth}");
    }

    #[test]
    fn pot_on_a_heavy_tail() {
        // GPD(γ = 0.3, σ = 1): the 1 − 1e-3 quantile is
        // (1/0.3)(1000^0.3 − 1) = 23.14. Heavy tails make the estimate
        // noisier: tolerance 15%.
        let truth = (1000f64.powf(0.3) - 1.0) / 0.3;
        let scores = f32s(&gpd_samples(100_000, 0.3, 1.0, 5));
        let z = f64::from(calibrate(&scores, &ThresholdRule::default()).unwrap());
        assert!((z - truth).abs() < 0.15 * truth, "{z} vs {truth}");
    }

    #[test]
    fn pot_threshold_never_below_the_initial_quantile() {
        let uniform: Vec<f64> = {
            let mut rng = StdRng::seed_from_u64(3);
            (0..20_000).map(|_| rng.random::<f64>()).collect()
        };
        for (name, data) in [
            ("exponential", exponential(2_000, 1.0, 4)),
            ("uniform", uniform),
            ("gpd", gpd_samples(3_000, 0.5, 2.0, 6)),
        ] {
            let mut sorted = data.clone();
            sorted.sort_by(f64::total_cmp);
            for (iq, risk) in [(0.9, 1e-2), (0.98, 1e-3), (0.95, 1e-4)] {
                let rule = ThresholdRule::Pot {
                    initial_quantile: iq,
                    risk,
                };
                let z = f64::from(calibrate(&f32s(&data), &rule).unwrap());
                let t = quantile(&sorted, iq);
                assert!(z >= t * (1.0 - 1e-6), "{name} {iq} {risk}: {z} < {t}");
            }
        }
    }

    #[test]
    fn pot_on_a_bounded_tail_stays_near_the_bound() {
        // Uniform(0, 1): excesses over t are uniform, a GPD with γ = −1,
        // and the 1 − 1e-3 quantile is 0.999.
        let mut rng = StdRng::seed_from_u64(8);
        let scores: Vec<f32> = (0..100_000).map(|_| rng.random::<f32>()).collect();
        let z = calibrate(&scores, &ThresholdRule::default()).unwrap();
        assert!((0.99..=1.001).contains(&z), "{z}");
    }

    #[test]
    fn fit_recovers_known_parameters() {
        let fit = fit_gpd(&exponential(20_000, 0.5, 12)).unwrap();
        assert!(fit.shape.abs() < 0.03, "{fit:?}");
        assert!((fit.scale - 2.0).abs() < 0.1, "{fit:?}");
        let fit = fit_gpd(&gpd_samples(20_000, 0.3, 2.0, 13)).unwrap();
        assert!((fit.shape - 0.3).abs() < 0.05, "{fit:?}");
        assert!((fit.scale - 2.0).abs() < 0.1, "{fit:?}");
        let fit = fit_gpd(&gpd_samples(20_000, -0.3, 1.0, 14)).unwrap();
        assert!((fit.shape + 0.3).abs() < 0.05, "{fit:?}");
        assert!((fit.scale - 1.0).abs() < 0.05, "{fit:?}");
        // Identical excesses: degenerate, but still a usable fit.
        let fit = fit_gpd(&[0.5; 20]).unwrap();
        assert!(fit.scale > 0.0 && fit.shape.is_finite(), "{fit:?}");
        assert_eq!(fit_gpd(&[]), None);
        assert_eq!(fit_gpd(&[1.0, 0.0]), None);
        assert_eq!(fit_gpd(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn gpd_quantile_excess() {
        // γ = 0: −σ ln p; p = e^−3, σ = 2 gives 6.
        let g = Gpd {
            shape: 0.0,
            scale: 2.0,
        };
        assert!((g.quantile_excess((-3f64).exp()) - 6.0).abs() < 1e-12);
        // γ = 0.5, σ = 1, p = 0.25: 2 (0.25^−0.5 − 1) = 2.
        let g = Gpd {
            shape: 0.5,
            scale: 1.0,
        };
        assert!((g.quantile_excess(0.25) - 2.0).abs() < 1e-12);
        // γ = −1, σ = 1: uniform on (0, 1), the excess is 1 − p.
        let g = Gpd {
            shape: -1.0,
            scale: 1.0,
        };
        assert!((g.quantile_excess(0.25) - 0.75).abs() < 1e-12);
    }

    #[test]
    fn rule_serialization() {
        let json = serde_json::to_string(&ThresholdRule::default()).unwrap();
        assert_eq!(
            json,
            r#"{"rule":"pot","initial_quantile":0.98,"risk":0.001}"#
        );
        let rule: ThresholdRule = serde_json::from_str(r#"{"rule":"mean_std","k":3.0}"#).unwrap();
        assert_eq!(rule, ThresholdRule::MeanStd { k: 3.0 });
        let rule: ThresholdRule = serde_json::from_str(r#"{"rule":"quantile","q":0.99}"#).unwrap();
        assert_eq!(rule, ThresholdRule::Quantile { q: 0.99 });
    }

    #[test]
    fn report_quantiles() {
        let mut scores: Vec<f32> = (0..=1000).map(|i| i as f32).collect();
        scores.push(f32::NAN);
        let q = score_quantiles(&scores);
        assert_eq!(
            q,
            vec![
                (0.5, 500.0),
                (0.9, 900.0),
                (0.95, 950.0),
                (0.99, 990.0),
                (0.999, 999.0),
                (1.0, 1000.0)
            ]
        );
        assert!(score_quantiles(&[f32::NAN]).is_empty());
    }
}
