//! Small files train with the default settings: `lstm-ae train` on short
//! series (where POT has too few validation scores above its initial
//! quantile, and the default validation fraction holds few windows) writes
//! a model, records the threshold rule it really used, and `inspect` shows
//! it. An input the settings could accept names the setting.

mod common;

use common::{run, sine_csv, text};

fn manifest(bundle: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn a_1200_row_series_with_window_64_trains_with_the_quantile_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("short.csv");
    sine_csv(&data, 1200, None);
    let bundle = dir.path().join("bundle");
    let out = run(
        &[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            bundle.to_str().unwrap(),
            "--window",
            "64",
            "--hidden",
            "8",
            "--epochs",
            "2",
            "--quiet",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m = manifest(&bundle);
    // 1,200 rows, 20 % validation: 240 rows hold 240 − 72 + 1 = 169 windows;
    // the 0.98 quantile (position 164.64) leaves 4 scores above it, fewer
    // than POT's 10, so the empirical 1 − 0.001 quantile sets the threshold.
    assert_eq!(m["training_data"]["validation_windows"], 169);
    let t = &m["threshold"];
    assert_eq!(t["rule"]["rule"], "pot", "{t}");
    assert_eq!(t["fallback"]["rule"]["rule"], "quantile", "{t}");
    assert!(
        (t["fallback"]["rule"]["q"].as_f64().unwrap() - 0.999).abs() < 1e-12,
        "{t}"
    );
    assert!(
        t["fallback"]["reason"]
            .as_str()
            .unwrap()
            .contains("only 4 of 169"),
        "{t}"
    );
    // The warning says what happened, once.
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.matches("POT cannot calibrate").count(),
        1,
        "{stderr}"
    );
    // The threshold is the 0.999 quantile of the validation scores the
    // manifest summarises: between the 0.99 quantile and the maximum.
    let q: Vec<(f64, f64)> =
        serde_json::from_value(m["validation_scores"]["quantiles"].clone()).unwrap();
    let value = t["value"].as_f64().unwrap();
    let (q99, max) = (q[3].1, q[5].1);
    assert!(
        q99 <= value + 1e-6 && value <= max + 1e-6,
        "{value} not in [{q99}, {max}]"
    );

    let out = run(&["inspect", bundle.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("rule quantile (q = 0.999), a fallback"),
        "{shown}"
    );
    assert!(shown.contains("only 4 of 169"), "{shown}");
}

/// `rows` rows of three features, one minute apart; the timestamp of row
/// `back` (if any) is one hour before its predecessor's.
fn multivariate_csv(path: &std::path::Path, rows: usize, back: Option<usize>) {
    let mut s = String::from("timestamp,a,b,c\n");
    let mut ts = 1_767_225_600i64;
    for r in 0..rows {
        ts += if Some(r) == back { -3600 } else { 60 };
        let x = r as f64 * std::f64::consts::TAU / 30.0;
        s.push_str(&format!(
            "{ts},{:.4},{:.4},{:.4}\n",
            x.sin(),
            2.0 * x.cos(),
            (x / 3.0).sin() + 0.5
        ));
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn a_400_row_multivariate_file_trains_and_a_step_back_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("machine-1.csv");
    // Data row 150 is file line 152 (the header is line 1).
    multivariate_csv(&data, 400, Some(150));
    let bundle = dir.path().join("bundle");
    let args = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        bundle.to_str().unwrap(),
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--quiet",
    ];
    let out = run(&args, &[]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("line 152"), "{err}");
    assert!(err.contains(r#"data.timestamp_order = "file""#), "{err}");

    // With that setting the file trains, with the default window of 64.
    let out = run(&args, &[("LSTM_AE__DATA__TIMESTAMP_ORDER", "file")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m = manifest(&bundle);
    assert_eq!(m["spec"]["window"], 64);
    assert_eq!(m["spec"]["features"], 3);
    // 20 % of 400 rows (80) holds 80 − 72 + 1 = 9 windows; validation
    // grows to 81 rows for 10 windows, and 10 scores leave POT 1 excess.
    assert_eq!(m["training_data"]["validation_rows"], 81);
    assert_eq!(m["training_data"]["validation_windows"], 10);
    assert_eq!(m["threshold"]["fallback"]["rule"]["rule"], "quantile");
    assert!(
        text(&out.stderr).contains("validating on the last 81 rows"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn nabs_machine_temperature_steps_back_at_line_10151_and_the_error_says_which_setting_accepts_it() {
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/nab/realKnownCause/machine_temperature_system_failure.csv");
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        &[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            dir.path().join("b").to_str().unwrap(),
            "--quiet",
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("line 10151")
            && err.contains("'2014-01-07 02:00:00' is not after the previous one, '2014-01-07 02:55:00' on line 10150")
            && err.contains(r#"set data.timestamp_order = "file""#),
        "{err}"
    );
}
