//! The model store as an operator drives it: `lstm-ae retrain` from a CSV
//! (gate, exit codes, exclusions, warm start, determinism), `models
//! list | promote | rollback` and `recalibrate` — the real binary, ONNX
//! Runtime underneath, small models.

mod common;

use std::path::Path;

use common::{run, sine_csv, text};

/// Small and fast: T = 16, H = 8, P = 8 (default), batch 32, 1 thread.
const SMALL: &[&str] = &[
    "--window",
    "16",
    "--hidden",
    "8",
    "--threads",
    "1",
    "--quiet",
];

fn retrain(store: &Path, csv: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "retrain",
        "--store",
        store.to_str().unwrap(),
        "--data",
        csv.to_str().unwrap(),
    ];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    run(&args, &[("LSTM_AE__TRAINING__BATCH_SIZE", "32")])
}

fn current(store: &Path) -> String {
    std::fs::read_to_string(store.join("current"))
        .unwrap()
        .trim()
        .to_string()
}

fn manifest(store: &Path, v: u32) -> serde_json::Value {
    let raw = std::fs::read(store.join(v.to_string()).join("manifest.json")).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

#[test]
fn retrain_gates_promotes_rolls_back_and_excludes_what_the_live_model_flags() {
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.csv");
    sine_csv(&clean, 3000, None);
    let store = dir.path().join("models/sine");

    // First version: no live model to compare with, promoted.
    let out = retrain(&store, &clean, &["--epochs", "6"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        line.contains("v1 promoted") && line.contains("parent none"),
        "{line}"
    );
    assert_eq!(current(&store), "1");
    let m1 = manifest(&store, 1);
    assert_eq!(m1["lineage"]["origin"], "retrain");
    assert_eq!(m1["lineage"]["parent_version"], serde_json::Value::Null);
    assert_eq!(m1["model_version"], 1);
    for f in ["model.onnx", "manifest.json", "report/loss.svg"] {
        assert!(store.join("1").join(f).exists(), "{f}");
    }

    // A deliberately worse candidate: one epoch at a vanishing learning
    // rate from a fresh initialisation. The gate rejects it: exit 3, the
    // version is kept with its verdict, the live version does not change.
    let out = retrain(
        &store,
        &clean,
        &["--epochs", "1", "--learning-rate", "1e-9", "--seed", "7"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        line.contains("v2 rejected") && line.contains("worse loss"),
        "{line}"
    );
    assert_eq!(current(&store), "1");
    let g = &manifest(&store, 2)["lineage"]["gate"];
    assert_eq!(g["passed"], false);
    assert!(g["candidate_loss"].as_f64().unwrap() > 1.05 * g["current_loss"].as_f64().unwrap());

    // Promoting the rejected version needs --force.
    let s = store.to_str().unwrap();
    let out = run(&["models", "promote", s, "2"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("rejected by the promotion gate"));
    assert_eq!(current(&store), "1");
    let out = run(&["models", "promote", s, "2", "--force"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(current(&store), "2");
    let out = run(&["models", "rollback", s], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(current(&store), "1");
    let out = run(&["models", "list", s], &[]);
    let list = text(&out.stdout);
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(rows[0].starts_with("1") && rows[0].contains('*'), "{list}");
    assert!(
        rows[1].contains("rejected") && !rows[1].contains('*'),
        "{list}"
    );

    // History with an anomaly in it: the live model flags the windows that
    // contain the +8 spike (rows 1000..1010), and they are left out. On the
    // clean history it flags (almost) nothing.
    let spiky = dir.path().join("spiky.csv");
    sine_csv(&spiky, 3000, Some(1000..1010));
    let out = retrain(&store, &spiky, &["--epochs", "3", "--warm-start"]);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(3),
        "{}",
        text(&out.stderr)
    );
    let m3 = manifest(&store, 3);
    let l = &m3["lineage"];
    assert_eq!(l["parent_version"], 1);
    assert_eq!(l["warm_start"], true);
    let excluded = l["excluded_windows"].as_u64().unwrap();
    // Windows of T = 16 rows that contain a spike row start at rows
    // 985..=1009: 25 of them, all in the training part (split at row 2160
    // of the 2700 rows before the gate slice).
    assert!((20..=45).contains(&excluded), "{excluded} windows excluded");
    let live = current(&store);
    let out = retrain(&store, &clean, &["--epochs", "1", "--no-promote"]);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(3),
        "{}",
        text(&out.stderr)
    );
    let clean_excluded = manifest(&store, 4)["lineage"]["excluded_windows"]
        .as_u64()
        .unwrap();
    assert!(
        clean_excluded + 20 <= excluded,
        "{clean_excluded} vs {excluded}"
    );
    assert_eq!(current(&store), live, "--no-promote keeps the live version");
}

#[test]
fn the_same_seed_gives_the_same_model_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("s.csv");
    // Enough validation windows for the default POT calibration.
    sine_csv(&csv, 3000, None);
    // The same store name (it is the model id, which the ONNX file carries).
    let (a, b) = (dir.path().join("a/m"), dir.path().join("b/m"));
    for s in [&a, &b] {
        let out = retrain(s, &csv, &["--epochs", "2", "--seed", "11"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = retrain(
        &dir.path().join("c"),
        &csv,
        &["--epochs", "2", "--seed", "12"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let bytes = |p: &Path| std::fs::read(p.join("1/model.onnx")).unwrap();
    assert_eq!(bytes(&a), bytes(&b), "same seed, same bytes");
    assert_ne!(
        bytes(&a),
        bytes(&dir.path().join("c")),
        "another seed differs"
    );
}

#[test]
fn recalibrate_refits_the_threshold_on_recent_scores_and_keeps_the_weights() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("s.csv");
    sine_csv(&csv, 3000, None);
    let store = dir.path().join("m");
    let out = retrain(&store, &csv, &["--epochs", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The median of the live model's scores over the recent CSV, computed
    // by `lstm-ae score` (the offline scorer), is what a q = 0.5 quantile
    // rule must give.
    let recent = dir.path().join("recent.csv");
    sine_csv(&recent, 800, Some(500..505));
    let scored = dir.path().join("scored.csv");
    let out = run(
        &[
            "score",
            "--model",
            store.join("1").to_str().unwrap(),
            recent.to_str().unwrap(),
            "--out",
            scored.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut scores: Vec<f64> = std::fs::read_to_string(&scored)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(2).and_then(|s| s.parse().ok()))
        .collect();
    assert_eq!(scores.len(), 800 - 15);
    scores.sort_by(f64::total_cmp);

    let out = run(
        &[
            "recalibrate",
            "--store",
            store.to_str().unwrap(),
            "--data",
            recent.to_str().unwrap(),
        ],
        &[
            ("LSTM_AE__CALIBRATION__RULE", "quantile"),
            ("LSTM_AE__CALIBRATION__Q", "0.5"),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("v2 promoted"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(current(&store), "2");
    let m2 = manifest(&store, 2);
    let thr = m2["threshold"]["value"].as_f64().unwrap();
    let (lo, hi) = (scores[scores.len() / 2 - 1], scores[scores.len() / 2 + 1]);
    assert!(
        thr >= lo * 0.999 && thr <= hi * 1.001,
        "{thr} not in [{lo}, {hi}]"
    );
    assert_eq!(m2["lineage"]["origin"], "recalibrate");
    assert_eq!(m2["lineage"]["parent_version"], 1);
    // The network is the parent's: same weights, same spec.
    let m1 = manifest(&store, 1);
    assert_eq!(m1["spec"], m2["spec"]);
    assert_eq!(m1["scaler"], m2["scaler"]);
    // `inspect` re-checks manifest ↔ ONNX (version and hash) for the new version.
    let out = run(&["inspect", store.join("2").to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
