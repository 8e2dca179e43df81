//! Model-store fixtures: versions of the default model that differ only in
//! what a test needs to tell them apart (threshold, feature names).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use lstm_ae::model::Bundle;

/// The default bundle (models/machine_temperature).
pub fn default_bundle() -> Bundle {
    Bundle::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature"))
        .expect("the default model opens")
}

/// Writes `<store>/<v>`: the default model's network under version `v`,
/// with `threshold` and, if given, other feature names (the weights stay
/// byte for byte, as `lstm-ae recalibrate` writes them).
pub fn write_version(store: &Path, v: i64, threshold: f32, names: Option<Vec<String>>) -> PathBuf {
    let base = default_bundle();
    let onnx = lstm_ae::model::onnx::restamp(&base.onnx, v, threshold).expect("restamp");
    let mut m = base.manifest.clone();
    m.model_version = v;
    m.threshold.value = threshold;
    if let Some(n) = names {
        m.feature_names = n;
    }
    let dir = store.join(v.to_string());
    Bundle::write(&dir, &mut m, &onnx).expect("the version is written");
    dir
}
