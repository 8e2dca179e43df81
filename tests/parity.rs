//! ONNX Runtime's outputs equal the trainer's own forward pass on random
//! windows (max abs difference ≤ 1e-4 on every output) for each model option.

use lstm_ae::infer::{BackendOptions, OnnxBackend};
use lstm_ae::model::onnx::{export_bytes, ExportInfo};
use lstm_ae::model::{Activation, DecoderInput, Mode, ModelSpec, Params};
use lstm_ae::train::composite;
use ndarray::{Array2, Array3, ArrayView3, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const TOL: f32 = 1e-4;

fn max_abs_diff(a: ArrayView3<'_, f32>, b: ArrayView3<'_, f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Trainer outputs in the ONNX layout `[B, S, F]`, raw units.
fn to_raw_batch_major(y: &Array3<f32>, offset: &[f32], scale: &[f32]) -> Array3<f32> {
    let mut out = y.view().permuted_axes([1, 0, 2]).to_owned();
    for mut lane in out.lanes_mut(Axis(2)) {
        for (f, v) in lane.iter_mut().enumerate() {
            *v = *v / scale[f] + offset[f];
        }
    }
    out
}

fn check(spec: &ModelSpec, seed: u64) {
    spec.validate().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let f = spec.features;
    let offset: Vec<f32> = (0..f).map(|_| rng.random_range(-5.0..5.0)).collect();
    let scale: Vec<f32> = (0..f).map(|_| rng.random_range(0.2..3.0)).collect();
    // Random weights, perturbed so biases and dense layers are not at their init.
    let mut params: Params<f32> = Params::init(spec, seed);
    for mut t in params.tensors_mut() {
        t.mapv_inplace(|v| v + rng.random_range(-0.2..0.2));
    }
    let info = ExportInfo {
        spec,
        scaler_offset: &offset,
        scaler_scale: &scale,
        model_id: "parity",
        model_version: 1,
        metadata: vec![],
    };
    let mut backend =
        OnnxBackend::load_from_memory(&export_bytes(&params, &info), &BackendOptions::default())
            .expect(
                "ONNX Runtime loads the export (run scripts/setup.sh if the library is missing)",
            );
    let batch = 5;
    let raw = Array3::from_shape_fn((batch, spec.window, f), |(_, _, k)| {
        offset[k] + rng.random_range(-2.0..2.0) / scale[k]
    });
    let out = backend.run(raw.view()).expect("inference runs");

    // The trainer's forward pass on the same windows, scaled and time-major.
    let mut scaled = raw.clone();
    for mut lane in scaled.lanes_mut(Axis(2)) {
        for (k, v) in lane.iter_mut().enumerate() {
            *v = (*v - offset[k]) * scale[k];
        }
    }
    let x = scaled.view().permuted_axes([1, 0, 2]);
    let fw = composite::forward(&params, spec, x);
    let what = format!("{spec:?}");

    let emb: &Array2<f32> = out.embedding.as_ref().expect("embedding");
    let d = emb
        .iter()
        .zip(fw.embedding.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(d <= TOL, "embedding differs by {d}: {what}");

    match (&fw.reconstruction, &out.reconstruction) {
        (Some(r), Some(onnx_r)) => {
            let d = max_abs_diff(to_raw_batch_major(r, &offset, &scale).view(), onnx_r.view());
            assert!(d <= TOL, "reconstruction differs by {d}: {what}");
            let se = out.squared_error.as_ref().expect("squared_error");
            let r_bm = r.view().permuted_axes([1, 0, 2]);
            let ours = Array3::from_shape_fn(se.dim(), |(b, t, k)| {
                (scaled[[b, t, k]] - r_bm[[b, t, k]]).powi(2)
            });
            let d = max_abs_diff(ours.view(), se.view());
            assert!(d <= TOL, "squared_error differs by {d}: {what}");
            let scores = composite::window_scores(x, r.view());
            let onnx_scores = out.score.as_ref().expect("score");
            for (a, b) in scores.iter().zip(onnx_scores.iter()) {
                assert!((*a as f32 - b).abs() <= TOL, "score {a} vs {b}: {what}");
            }
        }
        (None, None) => assert!(out.score.is_none() && out.squared_error.is_none()),
        _ => panic!("reconstruction present on one side only: {what}"),
    }
    match (&fw.prediction, &out.prediction) {
        (Some(p), Some(onnx_p)) => {
            let d = max_abs_diff(to_raw_batch_major(p, &offset, &scale).view(), onnx_p.view());
            assert!(d <= TOL, "prediction differs by {d}: {what}");
        }
        (None, None) => {}
        _ => panic!("prediction present on one side only: {what}"),
    }
}

#[test]
fn onnx_runtime_matches_the_trainer_for_every_option() {
    let mut seed = 0;
    for activation in [Activation::Tanh, Activation::Relu] {
        for decoder_input in [
            DecoderInput::Repeat,
            DecoderInput::State,
            DecoderInput::Conditional,
        ] {
            for reverse_reconstruction in [false, true] {
                for mode in [Mode::Composite, Mode::Reconstruct, Mode::Predict] {
                    seed += 1;
                    let spec = ModelSpec {
                        window: 7,
                        features: 3,
                        hidden: 6,
                        horizon: if mode == Mode::Reconstruct { 0 } else { 4 },
                        activation,
                        decoder_input,
                        reverse_reconstruction,
                        mode,
                        reconstruction_weight: 1.0,
                        prediction_weight: 0.5,
                    };
                    check(&spec, seed);
                }
            }
        }
    }
}

#[test]
fn onnx_runtime_matches_the_trainer_at_the_default_size() {
    // T = 64, H = 64, P = 8: long recurrences accumulate rounding differences.
    check(&ModelSpec::default(), 99);
    check(
        &ModelSpec {
            decoder_input: DecoderInput::Conditional,
            ..ModelSpec::default()
        },
        100,
    );
}

#[test]
fn a_one_step_conditional_decoder_exports() {
    let spec = ModelSpec {
        window: 3,
        features: 1,
        hidden: 4,
        horizon: 1,
        decoder_input: DecoderInput::Conditional,
        ..ModelSpec::default()
    };
    check(&spec, 5);
}
