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

/// A sensor that is flat through training is common. Every validation
/// score is then (close to) 0: the threshold is the documented floor, the
/// bundle loads and scores, a later departure from the constant is
/// flagged, and the POT warning says the scores are tied rather than
/// suggesting a quantile that would not help.
#[test]
fn a_flat_series_trains_a_bundle_that_loads_and_flags_a_departure() {
    let dir = tempfile::tempdir().unwrap();
    let flat = dir.path().join("flat.csv");
    let mut csv = String::from("timestamp,value\n");
    for r in 0..600 {
        csv.push_str(&format!("{},5.0\n", 1_767_225_600 + 60 * r));
    }
    std::fs::write(&flat, &csv).unwrap();
    let bundle = dir.path().join("flat");
    let out = run(
        &[
            "train",
            "--data",
            s(&flat),
            "--out",
            s(&bundle),
            "--window",
            "16",
            "--hidden",
            "4",
            "--horizon",
            "2",
            "--epochs",
            "2",
            "--quiet",
        ],
        &[],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let t = &manifest(&bundle)["threshold"];
    // lstm_ae::train::calibrate::THRESHOLD_FLOOR, as docs/configuration.md states it.
    assert_eq!(t["value"].as_f64().map(|v| v as f32), Some(1e-4), "{t}");
    assert!(!err.contains("lower initial_quantile"), "{err}");
    assert!(err.contains("tied"), "{err}");
    assert!(err.contains("floor"), "{err}");

    // The same constant scores below the threshold; a step of 3 is flagged.
    let mut csv = String::from("timestamp,value\n");
    for r in 0..100 {
        let v = if (60..64).contains(&r) { 8.0 } else { 5.0 };
        csv.push_str(&format!("{},{v}\n", 1_767_225_600 + 60 * r));
    }
    let probe = dir.path().join("probe.csv");
    std::fs::write(&probe, csv).unwrap();
    let scores = dir.path().join("scores.csv");
    let out = run(
        &[
            "score",
            "--model",
            s(&bundle),
            s(&probe),
            "--out",
            s(&scores),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(said.contains("anomalous windows in 1 incident ("), "{said}");
    let scored = std::fs::read_to_string(&scores).unwrap();
    let header: Vec<&str> = scored.lines().next().unwrap().split(',').collect();
    let col = header
        .iter()
        .position(|h| *h == "is_anomaly")
        .expect("an is_anomaly column");
    let flagged: Vec<usize> = scored
        .lines()
        .skip(1)
        .enumerate()
        .filter(|(_, l)| l.split(',').nth(col) == Some("true"))
        .map(|(i, _)| i)
        .collect();
    // Each row is scored by the window of 16 ending at it: the windows
    // holding a stepped row (60..=63) end at rows 60..=78; no other is.
    assert_eq!(flagged, (60..=78).collect::<Vec<_>>(), "{scored}");
}

/// Bad input, one row each: what is written (a settings file, or a CSV),
/// and what the one error line must name so the user knows the fix.
struct Bad {
    what: &'static str,
    toml: &'static str,
    csv: Option<&'static str>,
    /// `LSTM_AE__…` variables set.
    env: &'static [(&'static str, &'static str)],
    /// More `train` flags.
    args: &'static [&'static str],
    /// Each must appear in stderr.
    names: &'static [&'static str],
    /// None may appear in stderr (jargon, a wrong suggestion).
    not: &'static [&'static str],
}

const BAD: &[Bad] = &[
    Bad {
        what: "a fractional epoch count is refused, not rounded",
        toml: "[training]\nepochs = 2.5\n",
        csv: None,
        env: &[],
        args: &[],
        names: &["training.epochs", "2.5", "whole number"],
        not: &[],
    },
    Bad {
        what: "a negative count is refused in plain words",
        toml: "[training]\nepochs = -1\n",
        csv: None,
        env: &[],
        args: &[],
        names: &["training.epochs", "-1", "whole number"],
        not: &["64 bit"],
    },
    Bad {
        what: "a key of another rule inside an inline table is refused",
        toml: "calibration = { rule = \"pot\", q = 0.99 }\n",
        csv: None,
        env: &[],
        args: &[],
        names: &["calibration", "`q`", "initial_quantile", "risk"],
        not: &[],
    },
    Bad {
        what: "a misspelt enumerated value lists the valid ones",
        toml: "[data]\nfill = \"prev\"\n",
        csv: None,
        env: &[],
        args: &[],
        names: &["data.fill", "prev", "error", "previous", "linear"],
        not: &["variant constructor", "FillRule"],
    },
    Bad {
        what: "a misspelt model mode lists the valid ones",
        toml: "[model]\nmode = \"recon\"\n",
        csv: None,
        env: &[],
        args: &[],
        names: &["model.mode", "recon", "reconstruct", "predict", "composite"],
        not: &["variant constructor"],
    },
    Bad {
        what: "a misspelt two-valued setting names both",
        toml: "[model]\nactivation = \"sigmoid\"\n",
        csv: None,
        env: &[],
        args: &[],
        names: &["model.activation", "sigmoid", "`tanh` or `relu`"],
        not: &["variant constructor"],
    },
    Bad {
        what: "a fractional value from the environment is refused too",
        toml: "",
        csv: None,
        env: &[("LSTM_AE__TRAINING__BATCH_SIZE", "2.5")],
        args: &[],
        names: &["training.batch_size", "2.5", "whole number"],
        not: &[],
    },
    Bad {
        what: "two columns of the same name are refused by train as by score",
        toml: "",
        csv: Some("timestamp,value,value\n"),
        env: &[],
        args: &[],
        names: &["'value'", "twice", "data.feature_columns", "--features"],
        not: &[],
    },
    Bad {
        what: "a file without a header row is refused, not trained on",
        toml: "",
        // The "header" is a data row: an epoch-seconds timestamp and a value.
        csv: Some("1767225540,3\n"),
        env: &[],
        args: &[],
        names: &["line 1", "1767225540,3", "header row", "timestamp,value"],
        not: &[],
    },
    Bad {
        what: "a semicolon-separated file is told about the separator",
        toml: "",
        csv: Some("timestamp;value\n"),
        env: &[],
        args: &[],
        names: &["';'", "separat", "--separator"],
        not: &[],
    },
    Bad {
        what: "a hole in the data says how to set data.fill",
        toml: "",
        csv: Some("timestamp,value,spare\n"),
        env: &[],
        args: &[],
        names: &["data.fill", "LSTM_AE__DATA__FILL", "[data]", "--fill"],
        not: &[],
    },
    Bad {
        what: "a file shorter than one window names the flag",
        toml: "[data]\nmax_rows = 5\n",
        csv: None,
        env: &[],
        args: &[],
        names: &["--window", "model.window"],
        not: &[],
    },
    Bad {
        what: "a text column names the setting that leaves it out",
        toml: "",
        csv: Some("timestamp,host,value\n"),
        env: &[],
        args: &[],
        names: &[
            "'host'",
            "not a number",
            "data.feature_columns",
            "--features",
        ],
        not: &[],
    },
    Bad {
        what: "a separator flag of more than one character is refused",
        toml: "",
        csv: None,
        env: &[],
        args: &["--separator", ";;"],
        names: &["--separator", "one character", "tab"],
        not: &[],
    },
    Bad {
        what: "a feature flag naming no column lists the columns",
        toml: "",
        csv: None,
        env: &[],
        args: &["--features", "valu"],
        names: &["'valu'", "the columns are", "value"],
        not: &[],
    },
];

#[test]
fn bad_input_stops_with_one_error_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let sine = dir.path().join("sine.csv");
    sine_csv(&sine, 300, None);
    let mut failures = vec![];
    for (i, bad) in BAD.iter().enumerate() {
        let config = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&config, bad.toml).unwrap();
        let data = match bad.csv {
            None => sine.clone(),
            Some(header) => {
                // The header given, then 300 rows of a timestamp and as many
                // numbers as the header has other columns.
                let columns = header.trim_end().split(',').count();
                let mut body = String::from(header);
                for r in 0..300 {
                    body.push_str(&(1_767_225_600 + 60 * r).to_string());
                    for c in 1..columns {
                        // A column named `spare` has a hole in row 10.
                        let hole = header.split(',').nth(c) == Some("spare\n") && r == 10;
                        // A column named `host` holds text.
                        let host = header.split(',').nth(c) == Some("host");
                        match (hole, host) {
                            (true, _) => body.push(','),
                            (_, true) => body.push_str(",web-1"),
                            _ => body.push_str(&format!(",{}", (r * c) % 7)),
                        }
                    }
                    body.push('\n');
                }
                let path = dir.path().join(format!("bad{i}.csv"));
                std::fs::write(&path, body).unwrap();
                path
            }
        };
        let bundle = dir.path().join(format!("bundle{i}"));
        let out = run(
            &[
                "train",
                "--data",
                s(&data),
                "--out",
                s(&bundle),
                "--config",
                s(&config),
                "--window",
                "8",
                "--hidden",
                "2",
                "--quiet",
            ]
            .into_iter()
            .chain(bad.args.iter().copied())
            .collect::<Vec<_>>(),
            bad.env,
        );
        let err = text(&out.stderr);
        let missing: Vec<_> = bad.names.iter().filter(|n| !err.contains(*n)).collect();
        let jargon: Vec<_> = bad.not.iter().filter(|n| err.contains(*n)).collect();
        if out.status.code() != Some(1) || !missing.is_empty() || !jargon.is_empty() {
            failures.push(format!(
                "{}: exit {:?}, missing {missing:?}, unwanted {jargon:?}:\n{err}",
                bad.what,
                out.status.code()
            ));
        }
        if bundle.exists() && out.status.code() == Some(1) {
            failures.push(format!("{}: a bundle was written", bad.what));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Writes `header`, then 300 rows of `row(r)` under it.
fn write_rows(path: &Path, header: &str, row: impl Fn(usize) -> String) {
    let mut body = format!("{header}\n");
    for r in 0..300 {
        body.push_str(&row(r));
        body.push('\n');
    }
    std::fs::write(path, body).unwrap();
}

/// Trains a one-epoch bundle on `data` with `flags`; the stderr on failure.
fn train_with(data: &Path, bundle: &Path, flags: &[&str]) -> Result<(), String> {
    let mut args = vec![
        "train",
        "--data",
        s(data),
        "--out",
        s(bundle),
        "--window",
        "8",
        "--hidden",
        "2",
        "--epochs",
        "1",
        "--quiet",
    ];
    args.extend_from_slice(flags);
    let out = run(&args, &[]);
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out.stderr))
    }
}

/// What is written, the header, each row, the flags, the features expected.
type FlagCase = (
    &'static str,
    String,
    Box<dyn Fn(usize) -> String>,
    Vec<&'static str>,
    Vec<&'static str>,
);

/// Each fix an error names is a flag that works: the file the error was
/// about trains with it, and the bundle reads the columns the flags chose.
#[test]
fn the_data_flags_read_the_files_the_errors_are_about() {
    let dir = tempfile::tempdir().unwrap();
    let ts = |r: usize| 1_767_225_600 + 60 * r;
    let wave = |r: usize| ((r as f64) / 5.0).sin();
    let cases: Vec<FlagCase> = vec![
        (
            "semicolons",
            "timestamp;value".into(),
            Box::new(move |r| format!("{};{}", ts(r), wave(r))),
            vec!["--separator", ";"],
            vec!["value"],
        ),
        (
            "tabs",
            "timestamp\tvalue".into(),
            Box::new(move |r| format!("{}\t{}", ts(r), wave(r))),
            vec!["--separator", "tab"],
            vec!["value"],
        ),
        (
            "pipes, a hole and a text column",
            "ts|host|cpu|memory".into(),
            Box::new(move |r| {
                let cpu = if r == 10 {
                    String::new()
                } else {
                    wave(r).to_string()
                };
                format!("{}|web-1|{cpu}|{}", ts(r), r % 7)
            }),
            vec![
                "--separator",
                "|",
                "--fill",
                "linear",
                "--features",
                "memory,cpu",
            ],
            vec!["memory", "cpu"],
        ),
        (
            "a timestamp column named elsewhere",
            "value,reading_time".into(),
            Box::new(move |r| format!("{},{}", wave(r), ts(r))),
            vec!["--timestamp-column", "reading_time"],
            vec!["value"],
        ),
        (
            "a timestamp column called time, not first",
            "value,time".into(),
            Box::new(move |r| format!("{},{}", wave(r), ts(r))),
            vec![],
            vec!["value"],
        ),
        (
            "an hour repeated",
            "timestamp,value".into(),
            Box::new(move |r| format!("{},{}", ts(if r == 100 { 99 } else { r }), wave(r))),
            vec!["--timestamp-order", "file"],
            vec!["value"],
        ),
    ];
    let mut failures = vec![];
    // Without the flag, the timestamps in the second column of cases[3]
    // are not found: the error names the flag.
    let data = dir.path().join("elsewhere.csv");
    write_rows(&data, &cases[3].1, &cases[3].2);
    match train_with(&data, &dir.path().join("elsewhere"), &[]) {
        Ok(()) => failures.push("value,reading_time trained without --timestamp-column".into()),
        Err(e) if !e.contains("--timestamp-column") || !e.contains("data.timestamp_column") => {
            failures.push(format!("value,reading_time: {e}"))
        }
        Err(_) => {}
    }
    for (i, (what, header, row, flags, features)) in cases.into_iter().enumerate() {
        let data = dir.path().join(format!("f{i}.csv"));
        write_rows(&data, &header, row);
        let bundle = dir.path().join(format!("b{i}"));
        match train_with(&data, &bundle, &flags) {
            Err(e) => failures.push(format!("{what}: {e}")),
            Ok(()) => {
                let got = manifest(&bundle)["feature_names"].clone();
                if got != serde_json::json!(features) {
                    failures.push(format!("{what}: feature_names {got}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A misspelt value of a data flag is a usage error (exit 2) that lists
/// the valid values, on every command that reads a CSV.
#[test]
fn a_misspelt_data_flag_lists_the_valid_values() {
    for (command, flag, bad, valid) in [
        (
            &["train", "--data", "x.csv", "--out", "b"][..],
            "--fill",
            "prev",
            &["error", "previous", "linear"][..],
        ),
        (
            &["score", "--model", "b", "x.csv"][..],
            "--timestamp-order",
            "sorted",
            &["increasing", "file"][..],
        ),
        (
            &["eval", "labelled", "--data", "d", "--out", "o"][..],
            "--fill",
            "zero",
            &["previous", "linear"][..],
        ),
    ] {
        let mut args = command.to_vec();
        args.extend([flag, bad]);
        let out = run(&args, &[]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {err}");
        for word in std::iter::once(&flag).chain(valid) {
            assert!(err.contains(word), "{command:?}: no {word}: {err}");
        }
    }
}

fn root() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const MACHINE_TEMPERATURE: &str = "data/nab/realKnownCause/machine_temperature_system_failure.csv";

/// Copies the default bundle into `dir` with `manifest` as its manifest.json.
fn default_bundle_with(dir: &Path, manifest: &Path) -> std::path::PathBuf {
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(&bundle).unwrap();
    let from = root().join("models/machine_temperature");
    std::fs::copy(from.join("model.onnx"), bundle.join("model.onnx")).unwrap();
    std::fs::copy(manifest, bundle.join("manifest.json")).unwrap();
    bundle
}

/// The default model was trained with `timestamp_order = "file"` (its
/// series repeats an hour at line 10151); its bundle remembers that, so
/// `score` reads the series to its end with no settings, says where the
/// settings came from, and writes one line per row.
#[test]
fn the_default_model_scores_its_own_series_with_no_settings() {
    let dir = tempfile::tempdir().unwrap();
    let scores = dir.path().join("scores.csv");
    let model = root().join("models/machine_temperature");
    let data = root().join(MACHINE_TEMPERATURE);
    let out = run(
        &["score", "--model", s(&model), s(&data), "--out", s(&scores)],
        &[("RUST_LOG", "info")],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("timestamp_order = file (bundle)"), "{err}");
    let rows = std::fs::read_to_string(&data).unwrap().lines().count();
    let scored = std::fs::read_to_string(&scores).unwrap().lines().count();
    assert_eq!(scored, rows, "one line per row, the header included");
}

/// A manifest written before bundles recorded their data settings still
/// loads, with the built-in defaults: the default model's series stops at
/// its repeated hour, naming the flag, and scores with it.
#[test]
fn an_old_manifest_without_data_settings_reads_with_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = default_bundle_with(
        dir.path(),
        &root().join("tests/fixtures/machine_temperature.format1.manifest.json"),
    );
    let data = root().join(MACHINE_TEMPERATURE);
    let scores = dir.path().join("scores.csv");
    let out = run(
        &[
            "score",
            "--model",
            s(&bundle),
            s(&data),
            "--out",
            s(&scores),
        ],
        &[],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("line 10151"), "{err}");
    assert!(err.contains("--timestamp-order file"), "{err}");

    let out = run(
        &[
            "score",
            "--model",
            s(&bundle),
            s(&data),
            "--out",
            s(&scores),
            "--timestamp-order",
            "file",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A model trained with `--fill previous` scores the file it was trained
/// on with no flags; `--fill error` overrides what the bundle remembers.
#[test]
fn a_model_trained_with_a_fill_rule_scores_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("holes.csv");
    write_rows(&data, "timestamp;value", |r| {
        let v = if r % 50 == 7 {
            String::new()
        } else {
            ((r as f64) / 5.0).sin().to_string()
        };
        format!("{};{v}", 1_767_225_600 + 60 * r)
    });
    let bundle = dir.path().join("holes");
    train_with(&data, &bundle, &["--fill", "previous", "--separator", ";"]).unwrap();
    let recorded = &manifest(&bundle)["data"];
    assert_eq!(recorded["fill"], "previous", "{recorded}");
    assert_eq!(recorded["separator"], ";", "{recorded}");

    let scores = dir.path().join("scores.csv");
    let out = run(
        &[
            "score",
            "--model",
            s(&bundle),
            s(&data),
            "--out",
            s(&scores),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The `filled` column marks the rows whose cell was filled: every row
    // r with r % 50 == 7, and no other.
    let scored = std::fs::read_to_string(&scores).unwrap();
    let header: Vec<&str> = scored.lines().next().unwrap().split(',').collect();
    // `filled`, then `peak_row_ts` last.
    assert_eq!(
        header[header.len() - 2..],
        ["filled", "peak_row_ts"],
        "{header:?}"
    );
    let marked: Vec<usize> = scored
        .lines()
        .skip(1)
        .enumerate()
        .filter(|(_, l)| l.rsplit(',').nth(1) != Some("0"))
        .map(|(r, _)| r)
        .collect();
    assert_eq!(marked, (0..300).filter(|r| r % 50 == 7).collect::<Vec<_>>());

    let out = run(
        &[
            "score",
            "--model",
            s(&bundle),
            s(&data),
            "--out",
            s(&scores),
            "--fill",
            "error",
        ],
        &[],
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("line 9"), "{err}");
}

/// `train --out` into a folder that already holds a bundle refuses before
/// training, naming `--force`, and leaves that bundle as it was; with
/// `--force` the bundle is replaced. A new or empty folder needs no flag.
#[test]
fn train_does_not_overwrite_a_bundle_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sine.csv");
    sine_csv(&data, 300, None);
    let bundle = dir.path().join("bundle");
    std::fs::create_dir(&bundle).unwrap();
    train_with(&data, &bundle, &["--seed", "1"]).expect("an empty folder takes a bundle");
    let before = std::fs::read(bundle.join("model.onnx")).unwrap();

    let err = train_with(&data, &bundle, &["--seed", "2"]).expect_err("overwrote a bundle");
    assert!(err.contains("--force"), "{err}");
    assert!(err.contains("already holds a bundle"), "{err}");
    assert!(
        !err.contains("training on"),
        "refused only after training: {err}"
    );
    assert_eq!(std::fs::read(bundle.join("model.onnx")).unwrap(), before);

    // A folder of other files is not a bundle, but not written into either.
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("notes.txt"), "mine").unwrap();
    let err = train_with(&data, &other, &[]).expect_err("wrote into a folder of other files");
    assert!(err.contains("--force"), "{err}");
    assert!(!other.join("manifest.json").exists());

    train_with(&data, &bundle, &["--seed", "2", "--force"]).expect("--force replaces it");
    assert_ne!(std::fs::read(bundle.join("model.onnx")).unwrap(), before);
    assert_eq!(manifest(&bundle)["training"]["seed"], 2);
}

/// The significant digits of a printed number (`0.001230` has 4).
fn significant_digits(number: &str) -> usize {
    let mantissa = number.split(['e', 'E']).next().unwrap_or_default();
    mantissa
        .chars()
        .filter(char::is_ascii_digit)
        .skip_while(|&c| c == '0')
        .count()
}

/// Every number printed after `marker` in `text`.
fn numbers_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    text.match_indices(marker)
        .map(|(i, _)| {
            let rest = &text[i + marker.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || ".e-+".contains(c)))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .collect()
}

/// Losses are printed to 4 significant digits: the per-epoch lines, the
/// `train` summary (the manifest's best validation loss, rounded) and the
/// `retrain` gate's comparison; not the 16 digits of an f64.
#[test]
fn losses_are_printed_to_four_significant_digits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sine.csv");
    sine_csv(&data, 600, None);
    let bundle = dir.path().join("bundle");
    let out = run(
        &[
            "train",
            "--data",
            s(&data),
            "--out",
            s(&bundle),
            "--window",
            "8",
            "--hidden",
            "2",
            "--epochs",
            "2",
            "--quiet",
        ],
        &[("RUST_LOG", "info")],
    );
    let (said, log) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{log}");
    let mut printed = numbers_after(&log, " loss=");
    printed.extend(numbers_after(&log, " val_loss="));
    assert_eq!(printed.len(), 4, "two epochs, two losses each: {log}");
    let summary = numbers_after(&said, "validation loss ");
    assert_eq!(summary.len(), 1, "{said}");
    printed.extend(&summary);
    for n in &printed {
        assert_eq!(significant_digits(n), 4, "{n:?} in {log}\n{said}");
    }
    let best = manifest(&bundle)["training"]["best_validation_loss"]["total"]
        .as_f64()
        .unwrap();
    let shown: f64 = summary[0].parse().unwrap();
    assert!((shown - best).abs() <= best * 5e-4, "{shown} for {best}");

    // The second version is gated against the first: "loss X vs live Y".
    let store = dir.path().join("store");
    let mut said = String::new();
    for _ in 0..2 {
        let out = run(
            &[
                "retrain",
                "--store",
                s(&store),
                "--data",
                s(&data),
                "--window",
                "8",
                "--hidden",
                "2",
                "--epochs",
                "1",
                "--quiet",
                "--force",
            ],
            &[],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        said = text(&out.stdout);
    }
    let pairs: Vec<(&str, &str)> = numbers_after(&said, "loss ")
        .into_iter()
        .filter_map(|a| {
            let at = said.find(&format!("loss {a} vs live "))?;
            let b = numbers_after(&said[at..], " vs live ").into_iter().next()?;
            Some((a, b))
        })
        .collect();
    assert_eq!(pairs.len(), 1, "{said}");
    let (candidate, live) = pairs[0];
    for n in [candidate, live] {
        assert_eq!(significant_digits(n), 4, "{n:?} in {said}");
    }

    // `models list`: the validation-loss column (before the threshold, last).
    let out = run(&["models", "list", s(&store)], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = text(&out.stdout);
    let losses: Vec<&str> = listed
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().rev().nth(1))
        .collect();
    assert_eq!(losses.len(), 2, "{listed}");
    for n in losses {
        assert_eq!(significant_digits(n), 4, "{n:?} in {listed}");
    }
}

/// `inspect` is for a person: the model, the data settings the bundle
/// reads files with, the threshold with its rule, the training, and for a
/// store version its lineage, in words and settings' names; never a Rust
/// type name or a JSON object. `--json` prints the manifest itself.
#[test]
fn inspect_prints_a_summary_a_person_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("holes.csv");
    write_rows(&data, "timestamp;value", |r| {
        let v = if r == 7 {
            String::new()
        } else {
            ((r as f64) / 5.0).sin().to_string()
        };
        format!("{};{v}", 1_767_225_600 + 60 * r)
    });
    let bundle = dir.path().join("holes");
    train_with(&data, &bundle, &["--fill", "linear", "--separator", ";"]).unwrap();
    let m = manifest(&bundle);
    let out = run(&["inspect", s(&bundle)], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    let threshold = m["threshold"]["value"].as_f64().unwrap();
    for expected in [
        format!("model        holes v{}", m["model_version"]),
        format!("created {}", m["created_at"].as_str().unwrap()),
        "composite: window T=8, features F=1 (value), hidden H=2".into(),
        "activation tanh, decoder input repeat".into(),
        "separator ';'".into(),
        "feature columns every column but the timestamp".into(),
        "fill linear, timestamp order increasing".into(),
        format!("threshold    {threshold:.6}, rule "),
        "1 epoch (ran every epoch), best epoch 1".into(),
    ] {
        assert!(shown.contains(&expected), "no {expected:?} in\n{shown}");
    }
    let rule = &m["threshold"]["fallback"]["rule"];
    let rule = if rule.is_null() {
        &m["threshold"]["rule"]
    } else {
        rule
    };
    assert!(
        shown.contains(&format!("rule {} (", rule["rule"].as_str().unwrap())),
        "{shown}"
    );
    for jargon in [
        "Composite",
        "Tanh",
        "Repeat",
        "Standard",
        "Linear",
        "Increasing",
        "Epochs",
        "Some(",
        "None",
        "{\"",
        "Pot {",
    ] {
        assert!(!shown.contains(jargon), "{jargon:?} in\n{shown}");
    }

    let out = run(&["inspect", s(&bundle), "--json"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, m);

    // A store version made by retrain tells where it came from.
    let store = dir.path().join("store");
    let out = run(
        &[
            "retrain",
            "--store",
            s(&store),
            "--data",
            s(&data),
            "--window",
            "8",
            "--hidden",
            "2",
            "--epochs",
            "1",
            "--quiet",
            "--separator",
            ";",
            "--fill",
            "linear",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = run(&["inspect", s(&store.join("1"))], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("lineage      retrain (the store's first version), fresh weights, on CSV"),
        "{shown}"
    );
    assert!(shown.contains("windows left out as anomalous"), "{shown}");
    assert!(!shown.contains("{\""), "{shown}");
}

/// Every `<text x=… y=…>label</text>` of `svg` whose label satisfies `pick`:
/// (label, x, y).
fn svg_texts(svg: &str, pick: impl Fn(&str) -> bool) -> Vec<(String, f64, f64)> {
    let mut out = vec![];
    for part in svg.split("<text ").skip(1) {
        let Some((attrs, rest)) = part.split_once('>') else {
            continue;
        };
        let label = rest.split("</text>").next().unwrap_or_default();
        let attr = |name: &str| -> Option<f64> {
            let at = attrs.find(&format!("{name}=\""))? + name.len() + 2;
            attrs[at..at + attrs[at..].find('"')?].parse().ok()
        };
        if let (true, Some(x), Some(y)) = (pick(label), attr("x"), attr("y")) {
            out.push((label.to_string(), x, y));
        }
    }
    out
}

/// What a person reads after training and scoring: the reconstructions
/// chart's legend (six long entries) lies inside the picture; the chart of
/// a multivariate file draws every feature, with a legend.
#[test]
fn charts_show_every_feature_and_their_whole_legend() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("three.csv");
    write_rows(&data, "timestamp,a,b,c", |r| {
        let x = r as f64 / 5.0;
        // Three scales: b alone would flatten a and c on one axis.
        format!(
            "{},{},{},{}",
            1_767_225_600 + 60 * r,
            x.sin(),
            1000.0 * x.cos(),
            (x / 3.0).sin()
        )
    });
    let bundle = dir.path().join("three");
    train_with(&data, &bundle, &[]).unwrap();
    let svg = std::fs::read_to_string(bundle.join("report/reconstructions.svg")).unwrap();
    let legend = svg_texts(&svg, |l| {
        l.ends_with(": input") || l.ends_with(": reconstruction")
    });
    assert_eq!(legend.len(), 6, "{svg}");
    for (label, x, y) in legend {
        // 7 px per character at font-size 12, as the layout assumes; the
        // picture is 960 × 400.
        let right = x + 7.0 * label.chars().count() as f64;
        assert!(
            right <= 960.0 && y > 0.0 && y < 400.0,
            "{label}: x {x}..{right}, y {y}"
        );
    }

    let scores = dir.path().join("scores.csv");
    let out = run(
        &[
            "score",
            "--model",
            s(&bundle),
            "--data",
            s(&data),
            "--out",
            s(&scores),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let svg = std::fs::read_to_string(scores.with_extension("svg")).unwrap();
    for feature in ["a", "b", "c"] {
        assert_eq!(
            svg_texts(&svg, |l| l == feature).len(),
            1,
            "no legend {feature}: {svg}"
        );
    }
    assert!(
        svg.matches("<polyline").count() >= 3,
        "one line per feature: {svg}"
    );
}

/// A row is scored by the window ending at it, so a 2-row spike flags a
/// stretch up to T rows long; the scores say where in the window the
/// error is (`peak_row_ts`, the last column) and the incident line says
/// where it peaks: at the spike, not at the end of the stretch.
#[test]
fn a_short_spike_is_located_inside_its_stretch() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.csv");
    sine_csv(&data, 3000, None);
    let bundle = dir.path().join("bundle");
    let mut args = vec!["train", "--data", s(&data), "--out", s(&bundle)];
    args.extend_from_slice(common::SMALL);
    let out = run(&args, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let probe = dir.path().join("probe.csv");
    sine_csv(&probe, 2000, Some(1500..1502));
    let scores = dir.path().join("scores.csv");
    let out = run(
        &[
            "score",
            "--model",
            s(&bundle),
            "--data",
            s(&probe),
            "--out",
            s(&scores),
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let ts = |r: i64| {
        chrono::DateTime::from_timestamp(1_767_225_600 + 60 * r, 0)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let spike = [ts(1500), ts(1501)];
    let scored = std::fs::read_to_string(&scores).unwrap();
    let mut lines = scored.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header.last(), Some(&"peak_row_ts"), "{header:?}");
    let flagged: Vec<(usize, String)> = lines
        .enumerate()
        .filter(|(_, l)| l.split(',').nth(5) == Some("true"))
        .map(|(r, l)| (r, l.rsplit(',').next().unwrap_or_default().to_string()))
        .collect();
    // The windows ending at rows 1500 ..= 1516 hold a spike row (T = 16).
    let stretch: Vec<&(usize, String)> = flagged
        .iter()
        .filter(|(r, _)| (1500..=1516).contains(r))
        .collect();
    assert!(
        stretch.len() > 2,
        "the stretch is longer than the spike: {flagged:?}"
    );
    assert!(
        stretch.iter().all(|(_, p)| spike.contains(p)),
        "each window of the stretch peaks at the spike: {stretch:?}"
    );
    let said = text(&out.stdout);
    assert!(
        spike
            .iter()
            .any(|t| said.contains(&format!("error peaks at {t}"))),
        "{said}"
    );
}
