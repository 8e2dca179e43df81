//! `lstm-ae produce` against a real Kafka-protocol broker (tansu): what it
//! puts in the topic, read back to the topic's end, is the CSV's rows in the
//! daemon's input formats (points, windows, binary_windows), keyed by the
//! series key. The expected values come from the CSV text, parsed here.
//!
//! Needs the tansu binary that `scripts/setup.sh --test` installs.

mod common;

use std::time::Duration;

use common::broker::{Broker, Record};
use lstm_ae::stream::codec::{decode, Decoded, Format};

const ROWS: usize = 50;
const T: usize = 8;
const STRIDE: usize = 3;

/// (epoch ms, [a, b]) per row, from the text written to the CSV.
fn write_csv(path: &std::path::Path) -> Vec<(i64, Vec<f32>)> {
    let mut text = String::from("timestamp,a,b\n");
    let mut rows = vec![];
    for r in 0..ROWS {
        let ts = 1_767_225_600 + 60 * r as i64; // 2026-01-01T00:00:00Z + r minutes
        let when = chrono::DateTime::from_timestamp(ts, 0).unwrap();
        let (a, b) = (
            format!("{:.3}", 80.0 + (r as f64 * 0.3).sin()),
            format!("{}", r as f64 * -0.5),
        );
        text.push_str(&format!("{},{a},{b}\n", when.format("%Y-%m-%d %H:%M:%S")));
        rows.push((ts * 1000, vec![a.parse().unwrap(), b.parse().unwrap()]));
    }
    std::fs::write(path, text).unwrap();
    rows
}

fn produce(broker: &Broker, topic: &str, file: &std::path::Path, extra: &[&str]) {
    let brokers = broker.brokers();
    let mut args = vec![
        "produce",
        "--brokers",
        &brokers,
        "--topic",
        topic,
        "--key",
        "pump-7",
    ];
    args.extend_from_slice(extra);
    let f = file.to_str().unwrap();
    args.push(f);
    let out = common::run(&args, &[]);
    assert!(
        out.status.success(),
        "lstm-ae {}: {}",
        args.join(" "),
        common::text(&out.stderr)
    );
}

fn decoded(records: &[Record], format: Format, window: usize) -> Vec<Decoded> {
    records
        .iter()
        .map(|r| {
            assert_eq!(
                r.key.as_deref(),
                Some("pump-7"),
                "the Kafka key is the series key"
            );
            decode(format, None, Some(&r.payload), 2, window, 1 << 20).unwrap()
        })
        .collect()
}

#[test]
fn produce_puts_the_csv_rows_into_the_topic_in_each_input_format() {
    let dir = common::broker::test_dir();
    let broker = Broker::start(dir.path(), true);
    let csv = dir.path().join("pump.csv");
    let rows = write_csv(&csv);
    for t in ["points", "windows", "binary"] {
        broker.create_topic(t, 1);
    }
    let idle = Duration::from_secs(2);

    produce(
        &broker,
        "points",
        &csv,
        &["--format", "points", "--rate", "500"],
    );
    let got = decoded(&broker.read_all("points", idle), Format::Points, 0);
    let want: Vec<Decoded> = rows
        .iter()
        .map(|(ts, v)| Decoded::Point {
            key: "pump-7".into(),
            ts_ms: *ts,
            values: v.clone(),
        })
        .collect();
    assert_eq!(got, want, "one point per row, in order");

    // Windows of T rows every STRIDE rows: starts 0, 3, …, ≤ ROWS − T.
    let windows: Vec<(i64, i64, Vec<f32>)> = (0..=ROWS - T)
        .step_by(STRIDE)
        .map(|s| {
            (
                rows[s].0,
                rows[s + T - 1].0,
                rows[s..s + T].iter().flat_map(|(_, v)| v.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(windows.len(), 15);
    let w = T.to_string();
    let st = STRIDE.to_string();
    produce(
        &broker,
        "windows",
        &csv,
        &["--format", "windows", "--window", &w, "--stride", &st],
    );
    let got = decoded(&broker.read_all("windows", idle), Format::Windows, T);
    let want: Vec<Decoded> = windows
        .iter()
        .map(|(a, b, v)| Decoded::Window {
            key: "pump-7".into(),
            end_ts_ms: *b,
            start_ts_ms: Some(*a),
            values: v.clone(),
        })
        .collect();
    assert_eq!(got, want);

    produce(
        &broker,
        "binary",
        &csv,
        &[
            "--format",
            "binary_windows",
            "--window",
            &w,
            "--stride",
            &st,
        ],
    );
    let got = decoded(&broker.read_all("binary", idle), Format::BinaryWindows, T);
    let want: Vec<Decoded> = windows
        .iter()
        .map(|(_, b, v)| Decoded::Window {
            key: "pump-7".into(),
            end_ts_ms: *b,
            start_ts_ms: None,
            values: v.clone(),
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn produce_fails_clearly_when_the_broker_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("pump.csv");
    write_csv(&csv);
    let port = common::broker::free_port().to_string();
    let brokers = format!("127.0.0.1:{port}");
    // Raw producer properties come from --config: fail fast instead of
    // librdkafka's default 5-minute message timeout.
    let cfg = dir.path().join("p.toml");
    std::fs::write(
        &cfg,
        "[kafka.producer]\n\"message.timeout.ms\" = \"3000\"\n",
    )
    .unwrap();
    let out = common::run(
        &[
            "produce",
            "--config",
            cfg.to_str().unwrap(),
            "--brokers",
            &brokers,
            "--topic",
            "t",
            csv.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!out.status.success());
    let err = common::text(&out.stderr);
    assert!(err.contains("delivering to t"), "{err}");
}

#[test]
fn retime_stamps_each_point_with_the_time_it_is_due() {
    let dir = common::broker::test_dir();
    let broker = Broker::start(dir.path(), true);
    let csv = dir.path().join("pump.csv");
    let rows = write_csv(&csv);
    broker.create_topic("points", 1);
    let before = common::now_ms();
    produce(
        &broker,
        "points",
        &csv,
        &["--format", "points", "--rate", "200", "--retime"],
    );
    let after = common::now_ms();
    let got = decoded(
        &broker.read_all("points", Duration::from_secs(2)),
        Format::Points,
        0,
    );
    assert_eq!(got.len(), ROWS);
    let mut stamps = vec![];
    for (d, (_, values)) in got.iter().zip(&rows) {
        let Decoded::Point {
            key,
            ts_ms,
            values: v,
        } = d
        else {
            panic!("not a point: {d:?}");
        };
        assert_eq!((key.as_str(), v), ("pump-7", values), "the row's values");
        stamps.push(*ts_ms);
    }
    // The replay's clock, not the file's 2026-01-01: one point every 5 ms
    // (200 a second) from just after the start, none after the end.
    assert!(
        before < stamps[0] && stamps[ROWS - 1] <= after + 5,
        "stamps {}..{} outside the run {before}..{after}",
        stamps[0],
        stamps[ROWS - 1]
    );
    assert!(stamps.windows(2).all(|w| w[1] - w[0] == 5), "{stamps:?}");
}
