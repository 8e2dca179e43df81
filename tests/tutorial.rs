//! The examples of the Keras tutorial "A Gentle Introduction to LSTM
//! Autoencoders", trained by our trainer, exported to ONNX and run through
//! ONNX Runtime: one feature, the sequence 0.1 … 0.9, H = 100, relu, Adam,
//! 300 epochs.

use std::sync::atomic::AtomicBool;

use lstm_ae::infer::{BackendOptions, OnnxBackend, Outputs};
use lstm_ae::model::onnx::{export_bytes, ExportInfo};
use lstm_ae::model::{Activation, DecoderInput, Mode, ModelSpec};
use lstm_ae::train::{fit, Dataset, Quiet, TrainOptions};
use ndarray::Array3;

const SEQ: [f32; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

fn tutorial_spec(mode: Mode) -> ModelSpec {
    ModelSpec {
        window: 9,
        features: 1,
        hidden: 100,
        horizon: if mode == Mode::Reconstruct { 0 } else { 8 },
        activation: Activation::Relu,
        decoder_input: DecoderInput::Repeat,
        reverse_reconstruction: false,
        mode,
        reconstruction_weight: 1.0,
        prediction_weight: 1.0,
    }
}

/// Trains on the one tutorial sequence (the prediction target is the
/// tutorial's: the sequence's last 8 values) and runs the exported model.
fn train_and_run(mode: Mode) -> Outputs {
    let spec = tutorial_spec(mode);
    let x = Array3::from_shape_fn((9, 1, 1), |(t, _, _)| SEQ[t]);
    let future = if mode == Mode::Reconstruct {
        Array3::zeros((0, 1, 1))
    } else {
        Array3::from_shape_fn((8, 1, 1), |(t, _, _)| SEQ[t + 1])
    };
    let train = Dataset { x, future };
    let empty = Dataset {
        x: Array3::zeros((9, 0, 1)),
        future: Array3::zeros((0, 0, 1)),
    };
    let opts = TrainOptions {
        epochs: 300,
        batch_size: 1,
        learning_rate: 1e-3,
        clip_norm: 0.0,
        patience: 0,
        threads: 1,
        ..TrainOptions::default()
    };
    let fitted = fit(
        &spec,
        &train,
        &empty,
        &opts,
        &mut Quiet,
        &AtomicBool::new(false),
    );
    let info = ExportInfo {
        spec: &spec,
        scaler_offset: &[0.0],
        scaler_scale: &[1.0],
        model_id: "tutorial",
        model_version: 1,
        metadata: vec![],
    };
    let bytes = export_bytes(&fitted.params, &info);
    let mut backend = OnnxBackend::load_from_memory(&bytes, &BackendOptions::default())
        .expect("ONNX Runtime loads the model (run scripts/setup.sh if the library is missing)");
    let input = Array3::from_shape_fn((1, 9, 1), |(_, t, _)| SEQ[t]);
    backend.run(input.view()).expect("inference runs")
}

fn assert_reconstructs(out: &Outputs) {
    let rec = out
        .reconstruction
        .as_ref()
        .expect("a reconstruction output");
    assert_eq!(rec.dim(), (1, 9, 1));
    for (t, &want) in SEQ.iter().enumerate() {
        let got = rec[[0, t, 0]];
        assert!(
            (got - want).abs() <= 0.02,
            "step {t}: reconstructed {got}, input {want}"
        );
    }
}

fn assert_predicts(out: &Outputs) {
    let pred = out.prediction.as_ref().expect("a prediction output");
    assert_eq!(pred.dim(), (1, 8, 1));
    for t in 0..8 {
        let (got, want) = (pred[[0, t, 0]], SEQ[t + 1]);
        assert!(
            (got - want).abs() <= 0.05,
            "step {t}: predicted {got}, expected {want}"
        );
    }
}

#[test]
fn reconstruction_model_rebuilds_the_sequence() {
    let out = train_and_run(Mode::Reconstruct);
    assert_reconstructs(&out);
    assert!(out.prediction.is_none());
}

#[test]
fn prediction_model_forecasts_the_next_values() {
    let out = train_and_run(Mode::Predict);
    assert_predicts(&out);
    assert!(out.reconstruction.is_none());
}

#[test]
fn composite_model_does_both_and_its_encoder_stands_alone() {
    let out = train_and_run(Mode::Composite);
    assert_reconstructs(&out);
    assert_predicts(&out);
    // The standalone encoder of the tutorial: a 100-element vector per window.
    let emb = out.embedding.as_ref().expect("an embedding output");
    assert_eq!(emb.dim(), (1, 100));
    assert!(emb.iter().all(|v| v.is_finite()));
    assert!(
        emb.iter().any(|&v| v != 0.0),
        "a trained encoder does not emit all zeros"
    );
}
