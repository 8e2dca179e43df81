//! How a bundle's anomaly threshold was set: the rule, and the rule that
//! stood in when the configured one could not be applied. The manifest
//! records both; `train::calibrate` applies them to validation scores.

use serde::{Deserialize, Serialize};

/// How the threshold is derived from validation scores.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
// A key of another rule (`{ rule = "pot", q = 0.99 }`) is an error, not
// silently dropped.
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum ThresholdRule {
    /// The empirical `q` quantile of the scores, `q` in (0, 1].
    Quantile { q: f64 },
    /// mean + k·std (population std), `k` ≥ 0.
    MeanStd { k: f64 },
    /// Peaks over threshold: fit a generalized Pareto distribution to the
    /// scores above the `initial_quantile` quantile and put the threshold
    /// where the fitted probability of a normal window scoring higher is
    /// `risk`.
    Pot { initial_quantile: f64, risk: f64 },
}

impl Default for ThresholdRule {
    /// POT from the 0.98 quantile with risk 1e-3: a normal window scores
    /// above the threshold about once in a thousand. 0.98 keeps the tail
    /// fit on scores that are really extreme while leaving 20 excesses per
    /// 1,000 validation windows, above the fewest POT fits a tail to
    /// (`train::calibrate::MIN_EXCESSES`).
    fn default() -> Self {
        ThresholdRule::Pot {
            initial_quantile: 0.98,
            risk: 1e-3,
        }
    }
}

impl ThresholdRule {
    /// The rule's name as the settings spell it (`pot`, `quantile`,
    /// `mean_std`).
    pub fn name(&self) -> &'static str {
        match self {
            ThresholdRule::Quantile { .. } => "quantile",
            ThresholdRule::MeanStd { .. } => "mean_std",
            ThresholdRule::Pot { .. } => "pot",
        }
    }
}

/// The rule that set a threshold when the configured one could not: POT
/// with too few validation windows above its initial quantile to fit a
/// tail, or a tail fit that failed. Recorded in the manifest so a reader
/// knows the threshold is not the configured extrapolation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Fallback {
    /// The rule that set the threshold.
    pub rule: ThresholdRule,
    /// Why the configured rule was not applied.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rules_name_is_the_tag_the_settings_and_manifests_spell() {
        for rule in [
            ThresholdRule::Quantile { q: 0.99 },
            ThresholdRule::MeanStd { k: 3.0 },
            ThresholdRule::default(),
        ] {
            let v = serde_json::to_value(&rule).unwrap();
            assert_eq!(v["rule"].as_str(), Some(rule.name()), "{rule:?}");
        }
    }
}
