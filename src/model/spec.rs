//! [`ModelSpec`]: the architecture and loss of one composite LSTM autoencoder.
//!
//! The spec is what the trainer, the ONNX exporter and the manifest agree on;
//! every option here changes the graph, so it is validated once, up front.

use serde::{Deserialize, Serialize};

/// Nonlinearity of the LSTM cell candidate and of the cell output
/// (`g` and `h` in the ONNX LSTM notation). Gates are always sigmoid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// The LSTM default, and the paper's.
    Tanh,
    /// What the Keras tutorial uses (`LSTM(..., activation='relu')`).
    Relu,
}

/// How a decoder receives the encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecoderInput {
    /// The embedding is the input at every step, zero initial state
    /// (the tutorial's `RepeatVector`).
    Repeat,
    /// The encoder's final state initialises the decoder, which gets no input
    /// (the paper's unconditioned decoder).
    State,
    /// The encoder's final state initialises the decoder and each step is fed
    /// the decoder's own previous output (zeros at the first step): the paper's
    /// conditional decoder.
    Conditional,
}

/// Which decoders exist and contribute to the loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Reconstruction decoder only.
    Reconstruct,
    /// Prediction decoder only (no reconstruction score: cannot be served).
    Predict,
    /// Both decoders, loss = reconstruction + λ·prediction.
    Composite,
}

impl Mode {
    pub fn has_reconstruction(self) -> bool {
        matches!(self, Mode::Reconstruct | Mode::Composite)
    }
    pub fn has_prediction(self) -> bool {
        matches!(self, Mode::Predict | Mode::Composite)
    }
}

/// The architecture and loss of a composite LSTM autoencoder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Window length T (time steps the encoder reads).
    pub window: usize,
    /// Features per time step F.
    pub features: usize,
    /// LSTM hidden size H, also the embedding length.
    pub hidden: usize,
    /// Prediction horizon P: steps after the window the prediction decoder
    /// forecasts. Ignored (0) in `reconstruct` mode.
    pub horizon: usize,
    pub activation: Activation,
    pub decoder_input: DecoderInput,
    /// Train the reconstruction decoder to emit the window last step first,
    /// as the paper recommends (short-range dependencies first). Outputs are
    /// always reported in natural order.
    pub reverse_reconstruction: bool,
    pub mode: Mode,
    /// Weight of the reconstruction MSE in the loss.
    pub reconstruction_weight: f32,
    /// Weight λ of the prediction MSE in the loss.
    pub prediction_weight: f32,
}

/// A spec that cannot be built, with the field at fault.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid model spec: {field}: {reason}")]
pub struct SpecError {
    pub field: &'static str,
    pub reason: String,
}

impl ModelSpec {
    /// Checks the spec is buildable; every other module relies on this.
    pub fn validate(&self) -> Result<(), SpecError> {
        let err = |field, reason: &str| {
            Err(SpecError {
                field,
                reason: reason.to_string(),
            })
        };
        if self.window == 0 {
            return err("window", "must be at least 1");
        }
        if self.features == 0 {
            return err("features", "must be at least 1");
        }
        if self.hidden == 0 {
            return err("hidden", "must be at least 1");
        }
        if self.mode.has_prediction() && self.horizon == 0 {
            return err("horizon", "must be at least 1 when the mode predicts");
        }
        if !self.mode.has_prediction() && self.horizon != 0 {
            return err("horizon", "must be 0 in reconstruct mode");
        }
        for (field, w) in [
            ("reconstruction_weight", self.reconstruction_weight),
            ("prediction_weight", self.prediction_weight),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return err(field, "must be a finite number >= 0");
            }
        }
        Ok(())
    }

    /// This spec for data with `features` columns. The horizon of a mode
    /// without a prediction decoder becomes 0, so a settings file can switch
    /// `mode` without also zeroing `horizon`.
    pub fn for_features(&self, features: usize) -> ModelSpec {
        ModelSpec {
            features,
            horizon: self.target_horizon(),
            ..self.clone()
        }
    }

    /// Steps of future targets a training sample needs after its window.
    pub fn target_horizon(&self) -> usize {
        if self.mode.has_prediction() {
            self.horizon
        } else {
            0
        }
    }
}

impl Default for ModelSpec {
    /// The tutorial-style composite model used for the default bundle and the
    /// speed targets: T = 64, H = 64, P = 8, one feature, tanh.
    fn default() -> Self {
        ModelSpec {
            window: 64,
            features: 1,
            hidden: 64,
            horizon: 8,
            activation: Activation::Tanh,
            decoder_input: DecoderInput::Repeat,
            reverse_reconstruction: true,
            mode: Mode::Composite,
            reconstruction_weight: 1.0,
            prediction_weight: 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_is_valid() {
        assert_eq!(ModelSpec::default().validate(), Ok(()));
    }

    #[test]
    fn invalid_specs_name_their_field() {
        let mut s = ModelSpec {
            hidden: 0,
            ..ModelSpec::default()
        };
        assert_eq!(s.validate().unwrap_err().field, "hidden");
        s.hidden = 4;
        s.mode = Mode::Reconstruct;
        assert_eq!(s.validate().unwrap_err().field, "horizon");
        s.horizon = 0;
        assert_eq!(s.validate(), Ok(()));
        s.prediction_weight = f32::NAN;
        assert_eq!(s.validate().unwrap_err().field, "prediction_weight");
    }
}
