//! `lstm-ae train`, `score` and `inspect` as a user runs them: the real
//! binary on CSV files, bundles on disk, ONNX Runtime underneath.

mod common;

use common::{run, sine_csv, text, SMALL};

fn train(data: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "train",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(SMALL);
    args.extend_from_slice(extra);
    run(&args, &[])
}

#[test]
fn train_then_score_finds_the_injected_anomaly_and_only_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.csv");
    sine_csv(&data, 3000, None);
    let bundle = dir.path().join("bundle");
    let out = train(&data, &bundle, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in [
        "model.onnx",
        "manifest.json",
        "report/loss.svg",
        "report/validation_scores.svg",
        "report/reconstructions.svg",
    ] {
        assert!(bundle.join(f).exists(), "{f} missing");
    }
    let onnx_len = std::fs::metadata(bundle.join("model.onnx")).unwrap().len();
    assert!(onnx_len < 1_000_000, "bundle model is {onnx_len} bytes");

    // A new series with a spike at rows 1500..1510.
    let test = dir.path().join("test.csv");
    sine_csv(&test, 2000, Some(1500..1510));
    let scored = dir.path().join("scored.csv");
    // `lstm-ae score` with extra settings in the environment: the CSV it wrote.
    let score = |env: &[(&str, &str)]| {
        let out = run(
            &[
                "score",
                "--model",
                bundle.to_str().unwrap(),
                test.to_str().unwrap(),
                "--out",
                scored.to_str().unwrap(),
            ],
            env,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        std::fs::read_to_string(&scored).unwrap()
    };
    let csv = score(&[]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("timestamp,value,score,normalized_score,anomaly_likelihood,is_anomaly,filled,peak_row_ts")
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    assert_eq!(rows.len(), 2000);
    // The first T-1 rows have no complete window.
    assert!(rows[..15].iter().all(|r| r[2].is_empty()));
    assert!(rows[15..].iter().all(|r| !r[2].is_empty()));
    let anomalous: Vec<usize> = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r[5] == "true")
        .map(|(i, _)| i)
        .collect();
    // Windows ending at rows 1500..1525 contain the spike.
    assert!(
        anomalous.iter().any(|&r| (1500..1525).contains(&r)),
        "the spike is detected"
    );
    let false_alarms = anomalous
        .iter()
        .filter(|&&r| !(1500..1525).contains(&r))
        .count();
    assert!(
        false_alarms <= 20,
        "{false_alarms} anomalous rows outside the spike"
    );
    // normalized = score / threshold, is_anomaly = normalized >= 1.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    let threshold = manifest["threshold"]["value"].as_f64().unwrap();
    for r in &rows[15..] {
        let (s, n): (f64, f64) = (r[2].parse().unwrap(), r[3].parse().unwrap());
        assert!((s / threshold - n).abs() <= 1e-4 * n.abs().max(1.0));
        assert_eq!(r[5] == "true", n >= 1.0);
        let l: f64 = r[4].parse().unwrap();
        assert!((0.0..=1.0).contains(&l), "likelihood {l}");
    }

    // Under the likelihood rule, is_anomaly follows the likelihood: the
    // spike stands out against the sine's own error history.
    let csv = score(&[("LSTM_AE__ANOMALIES__RULE", "likelihood")]);
    let rows: Vec<Vec<String>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let mut flagged = vec![];
    for (i, r) in rows.iter().enumerate().skip(15) {
        let l: f64 = r[4].parse().unwrap();
        assert_eq!(r[5] == "true", l >= 0.35, "row {i}: likelihood {l}");
        if l >= 0.35 {
            flagged.push(i);
        }
    }
    assert!(
        flagged.iter().any(|&r| (1500..1525).contains(&r)),
        "the likelihood flags the spike: {flagged:?}"
    );
    assert!(scored.with_extension("svg").exists());

    let out = run(&["inspect", bundle.to_str().unwrap()], &[]);
    assert!(out.status.success());
    let s = text(&out.stdout);
    assert!(
        s.contains("window T=16") && s.contains("hidden H=8") && s.contains("threshold"),
        "{s}"
    );
}

#[test]
fn the_same_seed_gives_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.csv");
    sine_csv(&data, 3000, None);
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    assert!(train(&data, &a, &["--seed", "7"]).status.success());
    assert!(train(&data, &b, &["--seed", "7"]).status.success());
    assert!(train(&data, &c, &["--seed", "8"]).status.success());
    let read = |d: &std::path::Path| std::fs::read(d.join("model.onnx")).unwrap();
    assert_eq!(read(&a), read(&b), "same seed, same weights");
    assert_ne!(read(&a), read(&c), "another seed, other weights");

    // train takes --learning-rate as retrain does: it changes the weights,
    // and a value the settings refuse is named.
    let d = dir.path().join("d");
    let out = train(&data, &d, &["--seed", "7", "--learning-rate", "0.05"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(read(&a), read(&d), "another learning rate, other weights");
    let out = train(&data, &dir.path().join("e"), &["--learning-rate", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("training.learning_rate"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_csvs_get_one_clear_error_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "missing.csv",
            "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00\n",
            "line 3",
        ),
        (
            "empty.csv",
            "timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:01:00,\n",
            "line 3, column 'value'",
        ),
        (
            "nan.csv",
            "timestamp,value\n2026-01-01 00:00:00,NaN\n",
            "line 2, column 'value'",
        ),
        (
            "text.csv",
            "timestamp,value\n2026-01-01 00:00:00,abc\n",
            "line 2, column 'value'",
        ),
        (
            "order.csv",
            "timestamp,value\n2026-01-01 00:01:00,1\n2026-01-01 00:00:00,2\n",
            "line 3, column 'timestamp'",
        ),
    ];
    for (name, body, want) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        let out = train(&p, &dir.path().join("out"), &[]);
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(err.contains(name) && err.contains(want), "{name}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    // Fewer rows than one window (+ horizon) per side of the split.
    let p = dir.path().join("short.csv");
    sine_csv(&p, 20, None);
    let err = text(&train(&p, &dir.path().join("out"), &[]).stderr);
    assert!(err.contains("short.csv") && err.contains("20"), "{err}");
    assert!(!dir.path().join("out").join("model.onnx").exists());
}

#[test]
fn scoring_a_csv_with_other_columns_names_both() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.csv");
    sine_csv(&data, 3000, None);
    let bundle = dir.path().join("bundle");
    assert!(train(&data, &bundle, &[]).status.success());
    let other = dir.path().join("other.csv");
    std::fs::write(&other, "timestamp,pressure\n2026-01-01 00:00:00,1\n").unwrap();
    let out = run(
        &[
            "score",
            "--model",
            bundle.to_str().unwrap(),
            other.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("other.csv") && err.contains("pressure") && err.contains("value"),
        "{err}"
    );
}

#[test]
fn a_bundle_whose_manifest_and_model_disagree_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.csv");
    sine_csv(&data, 3000, None);
    let bundle = dir.path().join("bundle");
    assert!(train(&data, &bundle, &[]).status.success());
    let manifest_path = bundle.join("manifest.json");
    let original = std::fs::read_to_string(&manifest_path).unwrap();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut m: serde_json::Value = serde_json::from_str(&original).unwrap();
        f(&mut m);
        std::fs::write(&manifest_path, serde_json::to_string(&m).unwrap()).unwrap();
        let out = run(&["inspect", bundle.to_str().unwrap()], &[]);
        assert!(!out.status.success());
        text(&out.stderr)
    };
    let err = edit(&|m| m["spec"]["window"] = 32.into());
    assert!(
        err.contains("input shape") && err.contains("32") && err.contains("16"),
        "{err}"
    );
    let err = edit(&|m| m["model_version"] = 9.into());
    assert!(err.contains("model version") && err.contains("9"), "{err}");
    let err = edit(&|m| {
        m["spec"]["features"] = 2.into();
        m["feature_names"] = serde_json::json!(["a", "b"]);
        m["scaler"]["offset"] = serde_json::json!([0.0, 0.0]);
        m["scaler"]["scale"] = serde_json::json!([1.0, 1.0]);
    });
    assert!(
        err.contains("input shape") && err.contains("features F = 2"),
        "{err}"
    );
    let err = edit(&|m| m["spec"]["hidden"] = 4.into());
    assert!(err.contains("embedding") || err.contains("spec"), "{err}");
    let err = edit(&|m| m["onnx"]["sha256"] = "00".into());
    assert!(err.contains("sha256"), "{err}");
    let err = edit(&|m| m["format_version"] = 99.into());
    assert!(err.contains("format version 99"), "{err}");
    std::fs::write(&manifest_path, &original).unwrap();
    assert!(run(&["inspect", bundle.to_str().unwrap()], &[])
        .status
        .success());
}

#[test]
fn ctrl_c_stops_training_and_keeps_the_best_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.csv");
    sine_csv(&data, 4000, None);
    let bundle = dir.path().join("bundle");
    let mut child = std::process::Command::new(common::bin())
        .args([
            "train",
            "--data",
            data.to_str().unwrap(),
            "--out",
            bundle.to_str().unwrap(),
        ])
        .args([
            "--window",
            "32",
            "--hidden",
            "16",
            "--epochs",
            "1000",
            "--batch-size",
            "8",
            "--quiet",
        ])
        .env("RUST_LOG", "info")
        // No early stopping: only the interrupt may end this run.
        .env("LSTM_AE__TRAINING__PATIENCE", "0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first finished epoch, then interrupt.
    use std::io::BufRead;
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    for line in lines.by_ref() {
        if line.unwrap().contains("epoch=1") {
            break;
        }
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let code = child.wait().unwrap();
    assert!(code.success(), "exit {code:?}: {rest:?}");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["training"]["stopped"], "interrupted");
    assert!(m["training"]["epochs_run"].as_u64().unwrap() < 1000);
    assert!(m["training"]["best_epoch"].as_u64().unwrap() >= 1);
}

#[test]
fn a_configured_onnx_runtime_path_is_used_and_a_wrong_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.csv");
    sine_csv(&data, 3000, None);
    let bundle = dir.path().join("bundle");
    assert!(train(&data, &bundle, &[]).status.success());
    let args = [
        "score",
        "--model",
        bundle.to_str().unwrap(),
        data.to_str().unwrap(),
    ];
    let out = run(
        &args,
        &[(
            "LSTM_AE__RUNTIME__ONNXRUNTIME_LIBRARY",
            "/nowhere/libonnxruntime.so",
        )],
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("/nowhere/libonnxruntime.so") && err.contains("scripts/setup.sh"),
        "{err}"
    );
    let lib = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".local/onnxruntime/lib/libonnxruntime.so");
    let out = run(
        &args,
        &[(
            "LSTM_AE__RUNTIME__ONNXRUNTIME_LIBRARY",
            lib.to_str().unwrap(),
        )],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Files under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// ONNX Runtime 1.32 writes a device id and an event store of telemetry
/// under the user's cache folder as it loads (and uploads them where it can
/// reach its host), whatever the API says afterwards: a run of `lstm-ae`
/// leaves nothing in the home or cache folders.
#[test]
fn onnx_runtime_telemetry_writes_nothing_to_home_or_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (home, cache) = (dir.path().join("home"), dir.path().join("cache"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&cache).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let scored = dir.path().join("scored.csv");
    let out = std::process::Command::new(common::bin())
        // A clean environment: CI markers (`CI`, `GITLAB_CI`, …) make ONNX
        // Runtime keep no event store, which would hide what a user's
        // machine gets; no `ORT_DISABLE_TELEMETRY` from the caller either.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("XDG_CACHE_HOME", &cache)
        .current_dir(dir.path())
        .arg("score")
        .arg("--model")
        .arg(root.join("models/machine_temperature"))
        .arg(root.join("data/nab/artificialNoAnomaly/art_daily_no_noise.csv"))
        .arg("--out")
        .arg(&scored)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // ONNX Runtime did run: one scored row per input row.
    let rows = std::fs::read_to_string(&scored).unwrap().lines().count();
    assert!(rows > 4000, "{rows} lines in the scored CSV");
    let mut left = files_under(&home);
    left.extend(files_under(&cache));
    assert!(left.is_empty(), "written outside the given paths: {left:?}");
}

/// `lstm-ae score`'s summary reports incidents: the default model's 477
/// anomalous windows of `machine_temperature` (the demo's series) are its 7
/// anomalous stretches, the closest two 5 normal windows apart; each
/// printed incident is a run of flagged rows in the scored CSV, grouped
/// here from the flags alone; a `close_after` beyond that gap merges them.
#[test]
fn score_reports_the_demo_series_stretches_as_incidents() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let data = root.join("data/nab/realKnownCause/machine_temperature_system_failure.csv");
    let out_csv = dir.path().join("scored.csv");
    let score = |env: &[(&str, &str)]| {
        let out = run(
            &[
                "score",
                "--model",
                root.join("models/machine_temperature").to_str().unwrap(),
                data.to_str().unwrap(),
                "--out",
                out_csv.to_str().unwrap(),
                "--config",
                root.join("deploy/train.default.toml").to_str().unwrap(),
            ],
            env,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    // (first, last) flagged timestamps of each incident, from the CSV.
    let grouped = |close_after: usize| -> Vec<(String, String)> {
        let csv = std::fs::read_to_string(&out_csv).unwrap();
        let mut out = vec![];
        let mut open: Option<(String, String, usize)> = None;
        for l in csv.lines().skip(1) {
            let f: Vec<&str> = l.split(',').collect();
            if f[2].is_empty() {
                continue;
            }
            let flagged = f[5] == "true";
            open = match (open, flagged) {
                (None, true) => Some((f[0].to_string(), f[0].to_string(), 0)),
                (Some((a, _, _)), true) => Some((a, f[0].to_string(), 0)),
                (Some((a, b, n)), false) if n + 1 >= close_after => {
                    out.push((a, b));
                    None
                }
                (Some((a, b, n)), false) => Some((a, b, n + 1)),
                (None, false) => None,
            };
        }
        out.extend(open.map(|(a, b, _)| (a, b)));
        out
    };
    let printed = |stdout: &str| -> Vec<(String, String)> {
        stdout
            .lines()
            .filter_map(|l| l.trim().strip_prefix("incident "))
            .map(|l| {
                let mut w = l.split_whitespace();
                let a = w.next().unwrap().to_string();
                assert_eq!(w.next(), Some(".."));
                (a, w.next().unwrap().to_string())
            })
            .collect()
    };
    let norm = |v: Vec<(String, String)>| -> Vec<(i64, i64)> {
        v.iter()
            .map(|(a, b)| {
                (
                    lstm_ae::data::parse_timestamp(a).unwrap(),
                    lstm_ae::data::parse_timestamp(b).unwrap(),
                )
            })
            .collect()
    };

    let stdout = score(&[]);
    assert!(
        stdout.contains(": 477 anomalous windows in 7 incidents"),
        "{stdout}"
    );
    let incidents = norm(printed(&stdout));
    assert_eq!(incidents.len(), 7, "{stdout}");
    assert_eq!(incidents, norm(grouped(3)), "{stdout}");

    // Two stretches 5 normal windows apart are one incident when 6 close it.
    let stdout = score(&[("LSTM_AE__ANOMALIES__CLOSE_AFTER", "6")]);
    assert!(stdout.contains(" in 6 incidents"), "{stdout}");
    assert_eq!(norm(printed(&stdout)), norm(grouped(6)), "{stdout}");
}

/// Every leaf command of the tree under `c`, with its path of names.
fn leaves(c: &clap::Command, path: Vec<String>, out: &mut Vec<(Vec<String>, clap::Command)>) {
    let subs: Vec<_> = c
        .get_subcommands()
        .filter(|s| s.get_name() != "help")
        .collect();
    if subs.is_empty() {
        out.push((path, c.clone()));
        return;
    }
    for s in subs {
        let mut p = path.clone();
        p.push(s.get_name().to_string());
        leaves(s, p, out);
    }
}

/// `--help` of every command a user can run says what it is for, shows
/// what each option defaults to when left out, and gives an example that
/// runs that very command.
#[test]
fn every_command_has_a_purpose_defaults_and_an_example() {
    use clap::CommandFactory;
    let mut all = vec![];
    leaves(&lstm_ae::cli::Cli::command(), vec![], &mut all);
    assert!(all.len() >= 19, "{} leaves", all.len());
    let mut failures = vec![];
    for (path, c) in &all {
        let name = path.join(" ");
        if c.get_about()
            .is_none_or(|a| a.to_string().trim().is_empty())
        {
            failures.push(format!("{name}: no purpose line"));
        }
        for a in c.get_arguments() {
            let takes_value = matches!(
                a.get_action(),
                clap::ArgAction::Set | clap::ArgAction::Append
            );
            if a.is_hide_set()
                || !takes_value
                || a.is_required_set()
                || !a.get_default_values().is_empty()
            {
                continue;
            }
            let help = a
                .get_long_help()
                .or(a.get_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            if !help.contains("[default") && !help.contains("required") {
                failures.push(format!(
                    "{name} --{}: no default shown: {help:?}",
                    a.get_id()
                ));
            }
        }
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let out = run(&args, &[]);
        let help = text(&out.stdout);
        if !out.status.success() {
            failures.push(format!("{name} --help: {}", text(&out.stderr)));
        } else if !help
            .lines()
            .any(|l| l.starts_with(&format!("Example: lstm-ae {name} ")))
        {
            failures.push(format!(
                "{name} --help: no \"Example: lstm-ae {name} …\" line"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `score` takes the CSV as `train` does, with `--data`; the positional
/// form still works and means the same.
#[test]
fn score_takes_data_like_train() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sine.csv");
    sine_csv(&data, 600, None);
    let bundle = dir.path().join("bundle");
    assert!(train(&data, &bundle, &[]).status.success());
    let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
    let m = bundle.to_str().unwrap();
    let d = data.to_str().unwrap();
    let out = run(
        &[
            "score",
            "--model",
            m,
            "--data",
            d,
            "--out",
            a.to_str().unwrap(),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(
        &["score", "--model", m, d, "--out", b.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let scored = std::fs::read_to_string(&a).unwrap();
    assert_eq!(scored.lines().count(), 601);
    assert_eq!(scored, std::fs::read_to_string(&b).unwrap());

    let out = run(&["score", "--model", m], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--data"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&["score", "--model", m, "--data", d, d], &[]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "both forms at once is a usage error"
    );
}
