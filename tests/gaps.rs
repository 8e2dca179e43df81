//! Gaps in time, offline: `lstm-ae score` with the committed default model
//! on a stretch of its NAB series whose second half resumes two hours after
//! the first (24 steps of 5 minutes): no window spans the pause, unless
//! `windowing.max_gap_steps = 0` says to window across it.

mod common;

use common::{run, text};

const ROWS: usize = 600;
const RESUME: usize = 300;
const T: usize = 64; // the default model's window (checked below)

/// Rows 0..ROWS of the NAB series, rows from RESUME on moved two hours
/// later.
fn csv_with_a_pause(path: &std::path::Path) {
    let src = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/nab/realKnownCause/machine_temperature_system_failure.csv"),
    )
    .unwrap();
    let mut out = String::from("timestamp,value\n");
    for (r, line) in src.lines().skip(1).take(ROWS).enumerate() {
        let (ts, value) = line.split_once(',').unwrap();
        let mut ms = lstm_ae::data::parse_timestamp(ts).unwrap();
        if r >= RESUME {
            ms += 2 * 3_600_000;
        }
        out.push_str(&format!(
            "{},{value}\n",
            lstm_ae::data::format_timestamp(ms)
        ));
    }
    std::fs::write(path, out).unwrap();
}

/// Per row of the scored CSV: whether it has a score.
fn scored_rows(path: &std::path::Path) -> Vec<bool> {
    let body = std::fs::read_to_string(path).unwrap();
    let mut lines = body.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|c| *c == "score").unwrap();
    lines
        .map(|l| !l.split(',').nth(col).unwrap().is_empty())
        .collect()
}

#[test]
fn score_windows_no_pause_and_says_so_unless_told_to() {
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(m["spec"]["window"], T);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("paused.csv");
    csv_with_a_pause(&data);
    let out_csv = dir.path().join("paused.scored.csv");
    let score = |envs: &[(&str, &str)]| {
        let out = run(
            &[
                "score",
                "--model",
                model.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--out",
                out_csv.to_str().unwrap(),
            ],
            envs,
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), scored_rows(&out_csv))
    };

    let (stdout, rows) = score(&[]);
    assert_eq!(rows.len(), ROWS);
    // The first window of each side ends at its T-th row.
    let want: Vec<bool> = (0..ROWS)
        .map(|r| (T - 1..RESUME).contains(&r) || r >= RESUME + T - 1)
        .collect();
    assert_eq!(rows, want, "{stdout}");
    assert!(stdout.contains("1 gap in time"), "{stdout}");
    assert!(
        stdout.contains(&format!("scored {} windows", ROWS - 2 * (T - 1))),
        "{stdout}"
    );

    // Off: every row from the T-th on is scored, across the pause.
    let (stdout, rows) = score(&[("LSTM_AE__WINDOWING__MAX_GAP_STEPS", "0")]);
    let want: Vec<bool> = (0..ROWS).map(|r| r >= T - 1).collect();
    assert_eq!(rows, want, "{stdout}");
    assert!(!stdout.contains("gap in time"), "{stdout}");

    // A limit above the pause (24 steps) finds no gap either.
    let (_, rows) = score(&[("LSTM_AE__WINDOWING__MAX_GAP_STEPS", "30")]);
    assert_eq!(rows, want);

    // Pauses closer together than a window: a clear error naming the
    // setting, not a scores file without scores.
    let choppy = dir.path().join("choppy.csv");
    let body = std::fs::read_to_string(&data).unwrap();
    let mut lines = vec!["timestamp,value".to_string()];
    for (r, line) in body.lines().skip(1).take(RESUME).enumerate() {
        let (ts, value) = line.split_once(',').unwrap();
        let ms = lstm_ae::data::parse_timestamp(ts).unwrap() + (r / 50) as i64 * 7_200_000;
        lines.push(format!("{},{value}", lstm_ae::data::format_timestamp(ms)));
    }
    std::fs::write(&choppy, lines.join("\n") + "\n").unwrap();
    let out = run(
        &[
            "score",
            "--model",
            model.to_str().unwrap(),
            choppy.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("choppy.csv") && err.contains("5 gaps") && err.contains("MAX_GAP_STEPS"),
        "{err}"
    );
}
