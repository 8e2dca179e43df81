//! The first hour with your own data: `lstm-ae` run as a newcomer would,
//! on the kinds of CSV people have. Each input either trains a model that
//! loads and scores, or stops with one error naming the flag or setting
//! that fixes it.

mod common;

use std::path::Path;

use common::{run, sine_csv, text};

fn manifest(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A predict-only model has no reconstruction score, hence no threshold:
/// its bundle records none, reads back, and `score` says why it cannot
/// score rather than failing on the manifest.
#[test]
fn a_predict_only_model_writes_a_bundle_that_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sine.csv");
    sine_csv(&data, 600, None);
    let bundle = dir.path().join("predict");
    let out = run(
        &[
            "train",
            "--data",
            s(&data),
            "--out",
            s(&bundle),
            "--mode",
            "predict",
            "--window",
            "16",
            "--hidden",
            "4",
            "--horizon",
            "2",
            "--epochs",
            "1",
            "--quiet",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(manifest(&bundle)["threshold"]["value"].is_null());

    let out = run(&["inspect", s(&bundle)], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = run(&["score", "--model", s(&bundle), s(&data)], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("predict-only"), "{err}");
    assert!(err.contains("--mode composite"), "{err}");
}
