//! `lstm-ae eval nab` on NAB's 2-file subset (`labels/combined_windows_tiny.json`):
//! the results tree is in NAB's layout and reads back, scores lie in [0, 1],
//! every profile is scored, the report is written, and no row's score
//! depends on later rows.
//!
//! The corpus is the repository's copy of NAB in `data/nab/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use lstm_ae::data::{self, CsvOptions, TimestampOrder};
use lstm_ae::eval::nab;
use lstm_ae::eval::nab::run::{run_nab, score_series, NabEvalConfig};

const TINY: &str = "combined_windows_tiny.json";

fn nab_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/nab")
}

fn load(root: &Path, key: &str) -> data::Series {
    let opts = CsvOptions {
        timestamp_order: TimestampOrder::Unchecked,
        ..CsvOptions::default()
    };
    data::load_csv(&root.join(key), &opts).unwrap()
}

#[test]
fn results_tree_is_nab_readable_and_scored() {
    let root = nab_root();
    let out = tempfile::tempdir().unwrap();
    let cfg = NabEvalConfig::default();
    let run = run_nab(&root, &root.join(TINY), out.path(), &cfg, &|_, _, _| {}).unwrap();

    let taxi = out
        .path()
        .join("results/lstmAe/realKnownCause/lstmAe_nyc_taxi.csv");
    let text = std::fs::read_to_string(&taxi).unwrap();
    assert_eq!(
        text.lines().next(),
        Some("timestamp,value,anomaly_score,label")
    );

    let files = nab::read_results_tree(out.path(), "lstmAe").unwrap();
    let keys: Vec<&str> = files.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "realKnownCause/nyc_taxi.csv",
            "realKnownCause/rogue_agent_key_hold.csv"
        ]
    );
    let windows = nab::load_windows(root.join(TINY)).unwrap();
    for f in &files {
        let series = load(&root, &f.key);
        assert_eq!(f.timestamps, series.timestamps, "{}", f.key);
        assert!(
            f.scores.iter().all(|s| (0.0..=1.0).contains(s)),
            "{}",
            f.key
        );
        // The detector responds after the probation: scores vary.
        let p = nab::probationary_rows(f.scores.len());
        let max = f.scores[p..].iter().cloned().fold(0.0, f64::max);
        let min = f.scores[p..].iter().cloned().fold(1.0, f64::min);
        assert!(max > min + 0.1, "{}: scores {min}..{max}", f.key);
        // The label column marks exactly the rows in labelled windows.
        let mut reader = csv::Reader::from_path(
            out.path()
                .join("results/lstmAe/realKnownCause")
                .join(format!("lstmAe_{}", f.key.split('/').nth(1).unwrap())),
        )
        .unwrap();
        let labels: Vec<u8> = reader
            .records()
            .map(|r| r.unwrap()[3].parse().unwrap())
            .collect();
        assert_eq!(labels, nab::window_labels(&f.timestamps, &windows[&f.key]));
        assert!(labels.contains(&1), "{}: no labelled row", f.key);
    }

    let names: Vec<&str> = run.reports.iter().map(|r| r.profile.as_str()).collect();
    assert_eq!(
        names,
        ["reward_low_FN_rate", "reward_low_FP_rate", "standard"]
    );
    for r in &run.reports {
        assert!(r.normalised.is_finite() && r.normalised <= 100.0, "{r:?}");
        assert_eq!(r.files.len(), 2);
        // The reported score is NAB's scoring of the tree read back.
        let again = nab::evaluate(
            &files,
            &windows,
            &nab::load_profiles(root.join("profiles.json"))
                .unwrap()
                .into_iter()
                .find(|p| p.name == r.profile)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(again.normalised, r.normalised);
    }
    // The halves: nyc_taxi tunes, rogue_agent_key_hold reports.
    assert_eq!(run.splits.len(), run.reports.len());
    for (s, r) in run.splits.iter().zip(&run.reports) {
        assert_eq!(
            (s.profile.as_str(), s.full),
            (r.profile.as_str(), r.normalised)
        );
    }
    let standard = run.splits.iter().find(|s| s.profile == "standard").unwrap();
    let profile = run.profiles.iter().find(|p| p.name == "standard").unwrap();
    let tuning = nab::evaluate(&files[..1], &windows, profile).unwrap();
    let report = nab::evaluate_at(&files[1..], &windows, profile, tuning.threshold).unwrap();
    assert_eq!(standard.tuning, tuning.normalised);
    assert_eq!(standard.report, report.normalised);
}

#[test]
fn no_score_depends_on_later_rows() {
    let root = nab_root();
    let mut cfg = NabEvalConfig::default();
    cfg.training.epochs = 5;
    // Retraining is where look-ahead would most easily creep in.
    cfg.retrain.every = 1000;
    cfg.retrain.epochs = 1;
    let series = load(&root, "realKnownCause/nyc_taxi.csv");
    let values: Vec<f32> = series.values.column(0).to_vec();
    // 10,320 rows: any length ≥ 5,000 keeps the 750-row probation, so the
    // truncated stream is the same stream, stopped early.
    let full = score_series(&values, &cfg).unwrap();
    for k in [5000, 7777] {
        let cut = score_series(&values[..k], &cfg).unwrap();
        assert_eq!(cut.scores[..], full.scores[..k], "truncated at {k}");
    }
}

#[test]
fn cli_writes_results_and_report() {
    let root = nab_root();
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_lstm-ae"))
        .args(["eval", "nab", "--data"])
        .arg(&root)
        .arg("--labels")
        .arg(root.join(TINY))
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    for profile in ["standard", "reward_low_FP_rate", "reward_low_FN_rate"] {
        assert!(stdout.contains(profile), "{stdout}");
    }
    assert!(stdout.contains("report half"), "{stdout}");
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(report.contains("Numenta HTM"), "{report}");
    assert!(report.contains("realKnownCause"), "{report}");
    assert!(report.contains("report half"), "{report}");
    assert!(report.contains("| realKnownCause | 2 |"), "{report}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    let standard = summary["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["profile"] == "standard")
        .unwrap();
    let category = &standard["categories"][0];
    assert_eq!(category["category"], "realKnownCause");
    // Every counted window is either hit or missed.
    let hit = category["windows_hit"].as_u64().unwrap();
    let missed = category["windows_missed"].as_u64().unwrap();
    assert_eq!(hit + missed, category["windows"].as_u64().unwrap());
    assert!(standard["split"]["report"].is_number(), "{standard}");
    let figures = std::fs::read_dir(out.path().join("figures"))
        .unwrap()
        .count();
    assert!(figures >= 2, "{figures} figures");

    // A bad config file is one readable error naming it.
    let bad = out.path().join("bad.toml");
    std::fs::write(&bad, "[model]\nhiden = 3\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_lstm-ae"))
        .args(["eval", "nab", "--data"])
        .arg(&root)
        .arg("--out")
        .arg(out.path())
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml") && stderr.contains("hiden"),
        "{stderr}"
    );
}
