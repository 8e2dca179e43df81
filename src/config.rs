//! Settings: built-in defaults < TOML file (`--config FILE`) < environment
//! (`LSTM_AE__SECTION__KEY`, e.g. `LSTM_AE__TRAINING__EPOCHS=20`) < command
//! line flags. Every field is documented where it is defined; unknown keys
//! are errors that name the key, so a typo never silently falls back to a
//! default.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::ScalerKind;
use crate::model::{Activation, DecoderInput, Mode, ModelSpec};
use crate::train::calibrate::ThresholdRule;
use crate::train::TrainOptions;

/// Settings could not be loaded or are invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: invalid {key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// How the training CSV is read and cut into windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSettings {
    /// Timestamp column; empty = the column named `timestamp`, else the first.
    pub timestamp_column: String,
    /// Feature columns; empty = every column but the timestamp, in file order.
    pub feature_columns: Vec<String>,
    /// What to do with empty or NaN values: `error`, `previous` or `linear`.
    pub fill: String,
    /// `increasing`: a timestamp that does not increase is an error naming
    /// the line; `file`: keep rows in file order (some real exports repeat
    /// an hour at a daylight-saving change).
    pub timestamp_order: String,
    /// Train on the first this many rows only (0 = all): keeps the end of a
    /// file out of training, e.g. to score it as unseen data.
    pub max_rows: usize,
    /// Rows between the starts of consecutive training windows.
    pub stride: usize,
    /// Fraction of rows, at the end of the file, kept for validation and calibration.
    pub validation_fraction: f64,
    /// `standard` (zero mean, unit variance) or `minmax` (training range to [0, 1]).
    pub scaler: ScalerKind,
}

impl Default for DataSettings {
    fn default() -> Self {
        DataSettings {
            timestamp_column: String::new(),
            feature_columns: vec![],
            fill: "error".into(),
            timestamp_order: "increasing".into(),
            max_rows: 0,
            stride: 1,
            validation_fraction: 0.2,
            scaler: ScalerKind::Standard,
        }
    }
}

/// The model architecture; see [`ModelSpec`] for what each option means.
/// The feature count comes from the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSettings {
    /// Window length T, in rows.
    pub window: usize,
    /// LSTM hidden size H (the embedding length).
    pub hidden: usize,
    /// Prediction horizon P, in rows (ignored in `reconstruct` mode).
    pub horizon: usize,
    /// `tanh` or `relu`.
    pub activation: Activation,
    /// `repeat`, `state` or `conditional`.
    pub decoder_input: DecoderInput,
    /// Reconstruct the window in reverse order, as the paper recommends.
    pub reverse_reconstruction: bool,
    /// `reconstruct`, `predict` or `composite`.
    pub mode: Mode,
    /// Weight of the reconstruction MSE in the loss.
    pub reconstruction_weight: f32,
    /// Weight λ of the prediction MSE in the loss.
    pub prediction_weight: f32,
}

impl Default for ModelSettings {
    fn default() -> Self {
        let s = ModelSpec::default();
        ModelSettings {
            window: s.window,
            hidden: s.hidden,
            horizon: s.horizon,
            activation: s.activation,
            decoder_input: s.decoder_input,
            reverse_reconstruction: s.reverse_reconstruction,
            mode: s.mode,
            reconstruction_weight: s.reconstruction_weight,
            prediction_weight: s.prediction_weight,
        }
    }
}

impl ModelSettings {
    /// The spec for data with `features` columns.
    pub fn spec(&self, features: usize) -> ModelSpec {
        ModelSpec {
            window: self.window,
            features,
            hidden: self.hidden,
            horizon: if self.mode.has_prediction() {
                self.horizon
            } else {
                0
            },
            activation: self.activation,
            decoder_input: self.decoder_input,
            reverse_reconstruction: self.reverse_reconstruction,
            mode: self.mode,
            reconstruction_weight: self.reconstruction_weight,
            prediction_weight: self.prediction_weight,
        }
    }
}

/// Identity of the bundle a training run writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BundleSettings {
    /// Model id; empty = the training file's name without extension.
    pub model_id: String,
    /// Model version, an integer that increases with each retrain.
    pub model_version: i64,
}

impl Default for BundleSettings {
    fn default() -> Self {
        BundleSettings {
            model_id: String::new(),
            model_version: 1,
        }
    }
}

/// Every setting of `lstm-ae`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub data: DataSettings,
    pub model: ModelSettings,
    pub training: TrainOptions,
    /// How the anomaly threshold is set from validation scores:
    /// `{ rule = "pot", initial_quantile = 0.98, risk = 0.001 }`,
    /// `{ rule = "quantile", q = 0.995 }` or `{ rule = "mean_std", k = 4.0 }`.
    pub calibration: ThresholdRule,
    pub bundle: BundleSettings,
    /// How the daemon turns each key's raw window errors into anomaly
    /// scores: the same state machine and defaults as `lstm-ae eval nab`.
    pub postprocess: crate::score::PostprocessConfig,
}

impl Settings {
    /// Defaults, then the file (if any), then `LSTM_AE__…` variables.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// [`Settings::load`] with an explicit environment (tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let mut b =
            config::Config::builder().add_source(config::Config::try_from(&Settings::default())?);
        if let Some(f) = file {
            if !f.exists() {
                return Err(ConfigError::Invalid {
                    key: "--config".into(),
                    reason: format!("{} does not exist", f.display()),
                });
            }
            b = b.add_source(config::File::from(f).format(config::FileFormat::Toml));
        }
        let vars: std::collections::HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("LSTM_AE__"))
            .collect();
        b = b.add_source(
            config::Environment::with_prefix("LSTM_AE")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("data.feature_columns")
                .source(Some(vars)),
        );
        let s: Settings = b.build()?.try_deserialize()?;
        s.validate()?;
        Ok(s)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                reason: reason.into(),
            })
        };
        if !["error", "previous", "linear"].contains(&self.data.fill.as_str()) {
            return bad("data.fill", "must be one of error, previous, linear");
        }
        if !["increasing", "file"].contains(&self.data.timestamp_order.as_str()) {
            return bad("data.timestamp_order", "must be increasing or file");
        }
        if self.data.stride == 0 {
            return bad("data.stride", "must be at least 1");
        }
        if !(self.data.validation_fraction > 0.0 && self.data.validation_fraction < 1.0) {
            return bad(
                "data.validation_fraction",
                "must be between 0 and 1 (exclusive)",
            );
        }
        if self.training.epochs == 0 {
            return bad("training.epochs", "must be at least 1");
        }
        if self.training.batch_size == 0 {
            return bad("training.batch_size", "must be at least 1");
        }
        if !(self.training.learning_rate > 0.0 && self.training.learning_rate.is_finite()) {
            return bad("training.learning_rate", "must be a positive number");
        }
        if let Err(e) = self.model.spec(1).validate() {
            return bad(&format!("model.{}", e.field), &e.reason);
        }
        if let Err(e) = self.postprocess.validate() {
            return bad(&format!("postprocess.{}", e.field), e.reason);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        vec![]
    }

    #[test]
    fn built_in_defaults_load_and_validate() {
        let s = Settings::load_with_env(None, no_env()).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[model]\nhidden = 16\nactivation = \"relu\"\n[training]\nepochs = 7\n[calibration]\nrule = \"quantile\"\nq = 0.99\n",
        )
        .unwrap();
        let env = vec![("LSTM_AE__TRAINING__EPOCHS".to_string(), "9".to_string())];
        let s = Settings::load_with_env(Some(&f), env).unwrap();
        assert_eq!(s.model.hidden, 16);
        assert_eq!(s.model.activation, Activation::Relu);
        assert_eq!(s.training.epochs, 9);
        assert_eq!(s.calibration, ThresholdRule::Quantile { q: 0.99 });
        assert_eq!(s.model.window, ModelSettings::default().window);
    }

    #[test]
    fn postprocess_section_loads_and_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[postprocess]\nrefractory = 7\nshort_window = 3\n").unwrap();
        let s = Settings::load_with_env(Some(&f), no_env()).unwrap();
        assert_eq!(
            (s.postprocess.refractory, s.postprocess.short_window),
            (7, 3)
        );
        std::fs::write(&f, "[postprocess]\nshort_window = 0\n").unwrap();
        let e = Settings::load_with_env(Some(&f), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("postprocess.short_window"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[model]\nhiden = 16\n").unwrap();
        let e = Settings::load_with_env(Some(&f), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("hiden"), "{e}");
        let env = vec![("LSTM_AE__TRAINING__EPOCS".to_string(), "3".to_string())];
        let e = Settings::load_with_env(None, env).unwrap_err().to_string();
        assert!(e.to_lowercase().contains("epocs"), "{e}");
    }

    #[test]
    fn invalid_values_are_named() {
        let env = vec![(
            "LSTM_AE__DATA__VALIDATION_FRACTION".to_string(),
            "1.5".to_string(),
        )];
        let e = Settings::load_with_env(None, env).unwrap_err().to_string();
        assert!(e.contains("data.validation_fraction"), "{e}");
        let env = vec![("LSTM_AE__MODEL__HIDDEN".to_string(), "0".to_string())];
        let e = Settings::load_with_env(None, env).unwrap_err().to_string();
        assert!(e.contains("model.hidden"), "{e}");
        let e = Settings::load_with_env(Some(Path::new("/nonexistent.toml")), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent.toml"), "{e}");
    }
}
