//! `lstm-ae eval labelled` end to end on synthetic files whose anomalies
//! are known by construction: a univariate file with a label column and a
//! multivariate one labelled by a NAB-style windows file. The real binary
//! trains each model, ONNX Runtime scores it.

mod common;

use common::{run, text};

const T0: i64 = 1_767_225_600;
const ROWS: usize = 2000;
/// Model window T of the test config.
const T: usize = 16;

/// A noisy sine, period 40 rows; each spike adds +8 to `width` rows of
/// column `spiked`. Returns the file's text.
fn series(columns: &[&str], spiked: usize, spikes: &[usize], width: usize, label: bool) -> String {
    let mut s = format!(
        "timestamp,{}{}\n",
        columns.join(","),
        if label { ",label" } else { "" }
    );
    let mut state = 99u64;
    for r in 0..ROWS {
        s.push_str(&format!("{}", T0 + 60 * r as i64));
        for c in 0..columns.len() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state % 1000) as f64 / 1000.0 - 0.5;
            let x = r as f64 * std::f64::consts::TAU / 40.0 + c as f64;
            let mut v = 10.0 + 3.0 * x.sin() + 0.2 * noise;
            if c == spiked && spikes.iter().any(|&p| (p..p + width).contains(&r)) {
                v += 8.0;
            }
            s.push_str(&format!(",{v:.4}"));
        }
        if label {
            // The rows whose window (the T rows ending there) holds a spike
            // row: p ..= p + width − 1 + T − 1.
            let l = spikes.iter().any(|&p| (p..p + width + T - 1).contains(&r));
            s.push_str(if l { ",1" } else { ",0" });
        }
        s.push('\n');
    }
    s
}

#[test]
fn known_spikes_are_found_and_reported_per_file_and_pooled() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("multi")).unwrap();
    // Univariate, label column: spikes of 3 rows at 1200, 1500, 1800.
    std::fs::write(
        data.join("spikes.csv"),
        series(&["value"], 0, &[1200, 1500, 1800], 3, true),
    )
    .unwrap();
    // Multivariate, windows file: one spike of 3 rows in column b at 1600;
    // the labelled window covers rows 1600 ..= 1617 (time of row r = T0 + 60 r).
    std::fs::write(
        data.join("multi/machines.csv"),
        series(&["a", "b"], 1, &[1600], 3, false),
    )
    .unwrap();
    let start = T0 + 60 * 1600;
    let end = T0 + 60 * (1600 + 3 + T as i64 - 2);
    std::fs::write(
        data.join("windows.json"),
        format!(r#"{{"multi/machines.csv": [["{start}", "{end}"]]}}"#),
    )
    .unwrap();
    let config = dir.path().join("eval.toml");
    std::fs::write(
        &config,
        "[model]\nwindow = 16\nhidden = 8\nhorizon = 4\n[training]\nepochs = 6\nbatch_size = 32\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = run(
        &[
            "eval",
            "labelled",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--train-rows",
            "1000",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    let files = summary["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    // Sorted paths: data/multi/machines.csv before data/spikes.csv.
    let (multi, spikes) = (&files[0], &files[1]);
    assert_eq!(multi["key"], "multi/machines.csv");
    assert_eq!(spikes["key"], "spikes.csv");
    for f in files {
        // Rows 1000..2000 are evaluated: every one has a window.
        assert_eq!(f["train_rows"], 1000);
        assert_eq!(f["evaluated_rows"], 1000);
        assert_eq!(f["labelled_in_training"], 0);
    }
    // 3 spikes × (3 + 16 − 1) rows, and 1 × 18 rows.
    assert_eq!(spikes["labelled_rows"], 54);
    assert_eq!(multi["labelled_rows"], 18);
    assert_eq!(spikes["state"]["ranges"]["stretches"], 3);
    assert_eq!(multi["state"]["ranges"]["stretches"], 1);

    // The state reading marks every window holding a spike: all labelled
    // rows are found from their first row, and they outrank normal rows.
    for f in files {
        let s = &f["state"];
        assert_eq!(s["recall"], 1.0, "{}: {s}", f["key"]);
        assert_eq!(s["range_recall"], 1.0, "{}: {s}", f["key"]);
        assert_eq!(s["mean_delay_rows"], 0.0, "{}: {s}", f["key"]);
        assert_eq!(s["missed_alarm_rate"], 0.0, "{}: {s}", f["key"]);
        assert!(s["roc_auc"].as_f64().unwrap() > 0.99, "{}: {s}", f["key"]);
        assert!(s["precision"].as_f64().unwrap() > 0.5, "{}: {s}", f["key"]);
    }
    // Pooled = sums of the files.
    let pooled = &summary["pooled_state"];
    let sum = |k: &str| {
        files
            .iter()
            .map(|f| f["state"]["counts"][k].as_u64().unwrap())
            .sum::<u64>()
    };
    for k in ["tp", "fp", "fn_", "tn"] {
        assert_eq!(pooled["counts"][k].as_u64().unwrap(), sum(k), "{k}");
    }
    assert_eq!(pooled["counts"]["tp"], 72);
    assert_eq!(pooled["ranges"]["stretches"], 4);
    assert_eq!(pooled["ranges"]["detected"], 4);
    // The alert reading fires once per event, not on every anomalous row:
    // fewer detections than the state reading.
    let detections = |r: &serde_json::Value| {
        r["counts"]["tp"].as_u64().unwrap() + r["counts"]["fp"].as_u64().unwrap()
    };
    assert!(
        detections(&summary["pooled_alert"]) < detections(pooled),
        "{summary}"
    );

    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    for s in [
        "## State",
        "## Alert",
        "spikes.csv",
        "multi/machines.csv",
        "**pooled**",
    ] {
        assert!(report.contains(s), "{s} missing from\n{report}");
    }
    let figures: Vec<_> = std::fs::read_dir(out_dir.join("figures"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(figures.len(), 4, "{figures:?}");
    assert!(figures.iter().all(|f| f.ends_with(".svg")));
    // Each file's model is kept for inspection.
    assert!(out_dir.join("models/spikes_csv/model.onnx").exists());
}

#[test]
fn a_file_without_labels_is_refused_with_both_ways_to_label_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.csv"), series(&["v"], 0, &[], 1, false)).unwrap();
    let out = run(
        &[
            "eval",
            "labelled",
            "--data",
            dir.path().to_str().unwrap(),
            "--out",
            dir.path().join("out").to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("x.csv") && err.contains("--label-column") && err.contains("--windows"),
        "{err}"
    );
}

/// One file that cannot be evaluated (too short) is skipped and named with
/// why, in the output and the report, while the others are evaluated; a
/// windows-file entry `./x.csv` labels `x.csv`; `--epochs` bounds each
/// model's training. An entry naming no file is an error naming it, and a
/// run where no file can be evaluated fails with every file's reason.
#[test]
fn a_bad_file_is_skipped_and_named_the_others_are_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("spikes.csv"),
        series(&["value"], 0, &[1200, 1500], 3, true),
    )
    .unwrap();
    std::fs::write(
        data.join("windowed.csv"),
        series(&["value"], 0, &[1600], 3, false),
    )
    .unwrap();
    let short: String = series(&["value"], 0, &[], 1, true)
        .lines()
        .take(41)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(data.join("short.csv"), short).unwrap();
    let start = T0 + 60 * 1600;
    let end = T0 + 60 * (1600 + 3 + T as i64 - 2);
    let windows = |entry: &str| {
        std::fs::write(
            data.join("windows.json"),
            format!(r#"{{"{entry}": [["{start}", "{end}"]]}}"#),
        )
        .unwrap()
    };
    windows("./windowed.csv");
    let config = dir.path().join("eval.toml");
    std::fs::write(
        &config,
        "[model]\nwindow = 16\nhidden = 8\nhorizon = 4\n[training]\nepochs = 6\nbatch_size = 32\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let eval = || {
        run(
            &[
                "eval",
                "labelled",
                "--data",
                data.to_str().unwrap(),
                "--out",
                out_dir.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
                "--train-rows",
                "1000",
                "--epochs",
                "2",
            ],
            &[],
        )
    };
    let out = eval();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("skipped short.csv: "), "{said}");
    assert!(said.contains("2 files evaluated, 1 skipped"), "{said}");
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    let keys: Vec<&str> = summary["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["spikes.csv", "windowed.csv"]);
    assert_eq!(
        summary["files"][1]["labelled_rows"], 18,
        "./windowed.csv labels windowed.csv"
    );
    let skipped = &summary["skipped"];
    assert_eq!(skipped.as_array().map(Vec::len), Some(1), "{skipped}");
    assert_eq!(skipped[0]["key"], "short.csv");
    let reason = skipped[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("40 rows") && reason.contains("--train-rows"),
        "{reason}"
    );
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("## Skipped files"), "{report}");
    assert!(report.contains("- short.csv: "), "{report}");
    for model in ["spikes_csv", "windowed_csv"] {
        let m: serde_json::Value = serde_json::from_slice(
            &std::fs::read(out_dir.join("models").join(model).join("manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(m["training"]["epochs_run"], 2, "{model}: --epochs 2");
    }

    windows("elsewhere/windowed.csv");
    let out = eval();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("'elsewhere/windowed.csv'"), "{err}");
    assert!(err.contains("names no CSV file"), "{err}");

    std::fs::remove_file(data.join("windows.json")).unwrap();
    std::fs::remove_file(data.join("spikes.csv")).unwrap();
    let out = eval();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no file could be evaluated"), "{err}");
    assert!(
        err.contains("short.csv") && err.contains("windowed.csv"),
        "{err}"
    );
}

/// `--feedback FILE`: operator marks are labels. An incident mark over an
/// injected spike of a file without labels makes it a labelled anomaly the
/// report finds; a false_positive mark over a labelled, flagged spike makes
/// those rows known normal, counted apart; a maintenance mark changes
/// nothing. A file's marks are those of its name without extension.
#[test]
fn feedback_marks_act_as_labels() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("spike.csv"),
        series(&["value"], 0, &[1500], 3, false),
    )
    .unwrap();
    std::fs::write(
        data.join("calm.csv"),
        series(&["value"], 0, &[1500], 3, true),
    )
    .unwrap();
    let marks = dir.path().join("marks.jsonl");
    // Rows 1500 ..= 1517 (the windows holding the spike), as [from, to).
    let ms = |r: i64| ((T0 + 60 * r) * 1000).to_string();
    for (verdict, key, from, to) in [
        ("incident", "spike", 1500, 1518),
        ("false_positive", "calm", 1500, 1518),
        ("maintenance", "spike", 1100, 1200),
    ] {
        let out = run(
            &[
                "feedback",
                "add",
                "--file",
                marks.to_str().unwrap(),
                "--verdict",
                verdict,
                "--key",
                key,
                "--from",
                &ms(from),
                "--to",
                &ms(to),
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let config = dir.path().join("eval.toml");
    std::fs::write(
        &config,
        "[model]\nwindow = 16\nhidden = 8\nhorizon = 4\n[training]\nepochs = 6\nbatch_size = 32\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = run(
        &[
            "eval",
            "labelled",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--train-rows",
            "1000",
            "--feedback",
            marks.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["skipped"], serde_json::json!([]), "{summary}");
    let (calm, spike) = (&summary["files"][0], &summary["files"][1]);
    assert_eq!(spike["key"], "spike.csv");
    assert_eq!(
        spike["labelled_rows"], 18,
        "the incident mark's rows: {spike}"
    );
    assert_eq!(spike["state"]["ranges"]["stretches"], 1, "{spike}");
    assert_eq!(spike["state"]["ranges"]["detected"], 1, "{spike}");
    assert_eq!(spike["known_normal_rows"], 0, "{spike}");
    assert!(
        spike["labels_from"]
            .as_str()
            .unwrap()
            .contains("marks of 'spike'"),
        "{spike}"
    );
    assert_eq!(calm["key"], "calm.csv");
    assert_eq!(
        calm["labelled_rows"], 0,
        "the false_positive mark overrules the column: {calm}"
    );
    assert_eq!(calm["known_normal_rows"], 18, "{calm}");
    let flagged = calm["known_normal_flagged"].as_u64().unwrap();
    assert!(flagged > 0, "the spike is flagged: {calm}");
    assert!(
        calm["state"]["counts"]["fp"].as_u64().unwrap() >= flagged,
        "{calm}"
    );
    let report = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(report.contains("known normal rows (flagged)"), "{report}");
    assert!(report.contains(&format!("| 18 ({flagged}) |")), "{report}");
}
