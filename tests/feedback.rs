//! `lstm-ae feedback add | list | delete`, run as an operator would: on a
//! file of marks, and on a feedback topic of a real Kafka-protocol broker
//! (tansu, sqlite storage).

mod common;

use std::path::Path;

use common::broker::{test_dir, Broker};
use common::{run, text};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn ok(args: &[&str], envs: &[(&str, &str)]) -> String {
    let out = run(args, envs);
    assert!(
        out.status.success(),
        "lstm-ae {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

/// The open and the close record of one incident, as the daemon publishes
/// them (fields the command reads: key, incident id, the first window's
/// start and the latest window's end).
const OPEN: &str = r#"{"state":"open","incident_id":"5d1c0a4e-8f7b-4c2a-9e61-0b3f2d7a9c15","key":"machine-7","reason":"threshold","model_version":"3","threshold":0.2,"first_window_start_ts":"2026-12-07T10:00:00.000Z","first_window_end_ts":"2026-12-07T11:03:00.000Z","last_window_end_ts":"2026-12-07T11:03:00.000Z","windows":1,"peak_score":0.91,"peak_normalized_score":4.55,"peak_ts":"2026-12-07T11:03:00.000Z","top_features":[],"window_start_ts":"2026-12-07T10:00:00.000Z","window_end_ts":"2026-12-07T11:03:00.000Z","score":0.91,"normalized_score":4.55,"contributors":[]}"#;
const CLOSE: &str = r#"{"state":"close","incident_id":"5d1c0a4e-8f7b-4c2a-9e61-0b3f2d7a9c15","key":"machine-7","reason":"threshold","model_version":"3","threshold":0.2,"first_window_start_ts":"2026-12-07T10:00:00.000Z","first_window_end_ts":"2026-12-07T11:03:00.000Z","last_window_end_ts":"2026-12-07T11:40:00.000Z","windows":38,"peak_score":1.3,"peak_normalized_score":6.5,"peak_ts":"2026-12-07T11:20:00.000Z","top_features":[],"duration_ms":2220000,"close_reason":"normal"}"#;

#[test]
fn marks_in_a_file_are_added_listed_replaced_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("marks.jsonl");
    let f = s(&file);
    // The same mark added twice is kept once: the default id is derived
    // from verdict, key and range.
    for _ in 0..2 {
        ok(
            &[
                "feedback",
                "add",
                "--file",
                f,
                "--verdict",
                "maintenance",
                "--key",
                "host-*",
                "--from",
                "2026-12-07T22:00:00Z",
                "--to",
                "2026-12-07T23:00:00Z",
                "--comment",
                "kernel update",
                "--author",
                "ops",
            ],
            &[],
        );
    }
    // An incident marked from its open record, then from its close record,
    // is one mark covering the whole incident: its id comes from the
    // incident's.
    for record in [OPEN, CLOSE] {
        ok(
            &[
                "feedback",
                "add",
                "--file",
                f,
                "--verdict",
                "false_positive",
                "--from-anomaly",
                record,
            ],
            &[("USER", "alice")],
        );
    }
    let marks = json_lines(&ok(&["feedback", "list", "--file", f, "--json"], &[]));
    assert_eq!(marks.len(), 2, "{marks:?}");
    let fp = marks
        .iter()
        .find(|m| m["verdict"] == "false_positive")
        .unwrap();
    assert_eq!(fp["key"], "machine-7");
    assert_eq!(
        fp["id"],
        "false_positive-5d1c0a4e-8f7b-4c2a-9e61-0b3f2d7a9c15"
    );
    assert_eq!(fp["from"], "2026-12-07T10:00:00Z");
    // The last window's last instant is in the mark: it ends 1 ms after it.
    assert_eq!(fp["to"], "2026-12-07T11:40:00.001Z");
    assert_eq!(fp["author"], "alice");
    let mt = marks
        .iter()
        .find(|m| m["verdict"] == "maintenance")
        .unwrap();
    assert_eq!(mt["key"], "host-*");
    assert_eq!(mt["comment"], "kernel update");

    // A mark added with an existing id replaces it.
    let id = mt["id"].as_str().unwrap();
    ok(
        &[
            "feedback",
            "add",
            "--file",
            f,
            "--id",
            id,
            "--verdict",
            "maintenance",
            "--key",
            "host-*",
            "--from",
            "2026-12-07T22:00:00Z",
            "--to",
            "2026-12-08T01:00:00Z",
        ],
        &[],
    );
    let marks = json_lines(&ok(&["feedback", "list", "--file", f, "--json"], &[]));
    assert_eq!(marks.len(), 2);
    let mt = marks.iter().find(|m| m["id"] == id).unwrap();
    assert_eq!(mt["to"], "2026-12-08T01:00:00Z");

    // Refused input changes nothing.
    let before = std::fs::read(&file).unwrap();
    for (args, says) in [
        (
            vec![
                "--verdict",
                "incident",
                "--key",
                "k",
                "--from",
                "2026-12-07T10:00:00Z",
                "--to",
                "2026-12-07T09:00:00Z",
            ],
            "is not after from",
        ),
        (
            vec![
                "--verdict",
                "incident",
                "--key",
                "k",
                "--from",
                "last tuesday",
                "--to",
                "1h",
            ],
            "--from",
        ),
        (
            vec!["--verdict", "incident", "--from", "2h", "--to", "1h"],
            "--key is required",
        ),
        (
            vec!["--verdict", "incident", "--from-anomaly", "{\"key\":\"k\"}"],
            "first_window_start_ts",
        ),
        (
            vec![
                "--verdict",
                "incident",
                "--key",
                "[bad",
                "--from",
                "2h",
                "--to",
                "1h",
            ],
            "is not a glob",
        ),
    ] {
        let mut full = vec!["feedback", "add", "--file", f];
        full.extend(args);
        let out = run(&full, &[]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{full:?}: {err}");
        assert!(
            err.contains(says),
            "{full:?}: {err:?} does not say {says:?}"
        );
    }
    let out = run(&["feedback", "add", "--file", f, "--verdict", "wrong"], &[]);
    assert_eq!(out.status.code(), Some(2), "a verdict clap refuses");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "refused input changed the file"
    );

    let out = run(&["feedback", "delete", "no-such-id", "--file", f], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no mark \"no-such-id\""));
    ok(&["feedback", "delete", id, "--file", f], &[]);
    let marks = json_lines(&ok(&["feedback", "list", "--file", f, "--json"], &[]));
    assert_eq!(marks.len(), 1);
    assert_eq!(marks[0]["verdict"], "false_positive");

    // A hand-edited file with a bad line: the error names the line.
    std::fs::write(&file, format!("{}\n{{\"id\": 3}}\n", marks[0])).unwrap();
    let out = run(&["feedback", "list", "--file", f], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("marks.jsonl:2:"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn marks_on_the_topic_are_added_replaced_and_deleted_and_a_bad_record_is_skipped() {
    let dir = test_dir();
    let broker = Broker::start(dir.path(), true);
    broker.create_topic("lstm-ae.feedback", 1);
    let brokers = broker.brokers();
    let env = [
        ("LSTM_AE__KAFKA__BROKERS", brokers.as_str()),
        ("LSTM_AE__KAFKA__FEEDBACK_TOPIC", "lstm-ae.feedback"),
    ];
    let add = |id: &str, verdict: &str, to: &str| {
        ok(
            &[
                "feedback",
                "add",
                "--id",
                id,
                "--verdict",
                verdict,
                "--key",
                "pump-3",
                "--from",
                "2026-12-07T10:00:00Z",
                "--to",
                to,
            ],
            &env,
        )
    };
    add("a", "incident", "2026-12-07T11:00:00Z");
    // Someone wrote a record by hand that is not a mark: it is skipped with
    // a warning, and the marks around it still count.
    broker.produce(
        "lstm-ae.feedback",
        &[(
            "b".to_string(),
            b"{\"id\":\"b\",\"verdict\":\"oops\"}".to_vec(),
        )],
    );
    add("c", "maintenance", "2026-12-07T12:00:00Z");
    add("a", "incident", "2026-12-07T13:00:00Z");

    let out = run(&["feedback", "list", "--json"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let marks = json_lines(&text(&out.stdout));
    let ids: Vec<&str> = marks.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "c"], "{marks:?}");
    assert_eq!(
        marks[0]["to"], "2026-12-07T13:00:00Z",
        "the later record of a wins"
    );
    assert!(
        text(&out.stderr).contains("not a valid mark"),
        "{}",
        text(&out.stderr)
    );

    ok(&["feedback", "delete", "a"], &env);
    let marks = json_lines(&ok(&["feedback", "list", "--json"], &env));
    let ids: Vec<&str> = marks.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["c"]);
    // The delete is a tombstone: a record with the id as key and no value.
    let records = broker.read_all("lstm-ae.feedback", std::time::Duration::from_secs(3));
    let last = records.last().unwrap();
    assert_eq!(last.key.as_deref(), Some("a"));
    assert!(last.payload.is_empty(), "a tombstone has no value");

    let out = run(&["feedback", "delete", "a"], &env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "deleting twice names the missing id"
    );
    // Without a topic or a file there is nowhere to write: the error says how.
    let out = run(
        &["feedback", "list"],
        &[("LSTM_AE__KAFKA__BROKERS", brokers.as_str())],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("kafka.feedback_topic"));
}

/// Epoch ms of row `r` of [`common::sine_csv`].
fn row_ms(r: usize) -> i64 {
    (1_767_225_600 + 60 * r as i64) * 1000
}

fn mark_line(id: &str, key: &str, rows: std::ops::Range<usize>, verdict: &str) -> String {
    format!(
        "{}\n",
        serde_json::json!({"id": id, "key": key, "from": row_ms(rows.start), "to": row_ms(rows.end), "verdict": verdict})
    )
}

fn retrain(store: &Path, data: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "retrain",
        "--store",
        s(store),
        "--data",
        s(data),
        "--window",
        "16",
        "--hidden",
        "8",
        "--epochs",
        "3",
        "--threads",
        "1",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    ok(&args, &[])
}

fn lineage(store: &Path, v: u32) -> serde_json::Value {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join(format!("{v}/manifest.json"))).unwrap())
            .unwrap();
    m["lineage"].clone()
}

/// An incident mark takes its windows out of the next model's data; a
/// false-positive mark keeps windows the live model flags. The counts
/// come from the mark's rows and the window's span, not from the code.
#[test]
fn retrain_leaves_out_marked_incidents_and_keeps_marked_false_positives() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let clean = dir.path().join("pump.csv");
    common::sine_csv(&clean, 1000, None);
    let marks = dir.path().join("marks.jsonl");
    // Rows 200..230 of pump: an incident. The same rows of another key, or
    // of a glob that does not match pump, change nothing.
    std::fs::write(
        &marks,
        [
            mark_line("i1", "pump", 200..230, "incident"),
            mark_line("i2", "other", 200..230, "incident"),
            mark_line("m1", "pu?p-*", 200..230, "maintenance"),
        ]
        .concat(),
    )
    .unwrap();
    let out = retrain(&store, &clean, &["--feedback", s(&marks)]);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("1/manifest.json")).unwrap()).unwrap();
    let span =
        (m["spec"]["window"].as_u64().unwrap() + m["spec"]["horizon"].as_u64().unwrap()) as usize;
    // Every window with a row in 200..230: starts 200 − span + 1 ..= 229,
    // all in the training part (the first 70 % of rows).
    let overlapping = 30 + span - 1;
    assert_eq!(
        lineage(&store, 1)["marked_windows_excluded"],
        overlapping,
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "{overlapping} left out by incident or maintenance marks"
        )),
        "{out}"
    );

    // The live version (v1, trained on the clean series) flags a spike;
    // the same retrain with the spike marked a false positive keeps those
    // windows instead.
    let spiky = dir.path().join("spiky").join("pump.csv");
    std::fs::create_dir_all(spiky.parent().unwrap()).unwrap();
    common::sine_csv(&spiky, 1000, Some(400..440));
    let fp = dir.path().join("fp.jsonl");
    std::fs::write(&fp, mark_line("fp1", "pump", 380..470, "false_positive")).unwrap();
    let empty = dir.path().join("none.jsonl");
    std::fs::write(&empty, "").unwrap();
    retrain(&store, &spiky, &["--no-promote", "--feedback", s(&empty)]);
    retrain(&store, &spiky, &["--no-promote", "--feedback", s(&fp)]);
    let (plain, marked) = (lineage(&store, 2), lineage(&store, 3));
    assert_eq!(plain["parent_version"], 1);
    assert_eq!(marked["parent_version"], 1);
    let flagged = plain["excluded_windows"].as_u64().unwrap();
    let kept = marked["false_positive_windows_kept"].as_u64().unwrap();
    assert!(flagged > 0, "the live model flags the spike: {plain}");
    assert!(
        kept > 0,
        "flagged windows in the marked range are kept: {marked}"
    );
    assert_eq!(
        marked["excluded_windows"].as_u64().unwrap() + kept,
        flagged,
        "every flagged window is either excluded or kept as a false positive"
    );
    assert!(
        plain.get("false_positive_windows_kept").is_none(),
        "{plain}"
    );

    // recalibrate: the spike marked an incident leaves the threshold's data
    // (every window of T rows with a row in 400..440); marked a false
    // positive, its flagged windows are counted.
    let incident = dir.path().join("incident.jsonl");
    std::fs::write(&incident, mark_line("i9", "pump", 400..440, "incident")).unwrap();
    let recalibrate = |marks: &Path| {
        ok(
            &[
                "recalibrate",
                "--store",
                s(&store),
                "--data",
                s(&spiky),
                "--no-promote",
                "--feedback",
                s(marks),
            ],
            &[],
        )
    };
    let out = recalibrate(&incident);
    let window = m["spec"]["window"].as_u64().unwrap();
    assert_eq!(
        lineage(&store, 4)["marked_windows_excluded"],
        40 + window - 1,
        "{out}"
    );
    recalibrate(&fp);
    let v5 = lineage(&store, 5);
    assert!(v5.get("marked_windows_excluded").is_none(), "{v5}");
    assert!(
        v5["false_positive_windows_kept"].as_u64().unwrap() > 0,
        "the live threshold flags the spike inside the false-positive mark: {v5}"
    );
}

/// `retrain --from-kafka` takes its marks from the feedback topic when no
/// `--feedback` file is given: an incident mark added with `feedback add`
/// leaves its windows out, a false-positive mark added later keeps the
/// windows the live model flags, and a mark of another key changes
/// nothing.
#[test]
fn retrain_from_kafka_reads_the_marks_on_the_feedback_topic() {
    const POINTS: &str = "lstm-ae.points";
    const FEEDBACK: &str = "lstm-ae.feedback";
    let dir = test_dir();
    let broker = Broker::start(dir.path(), true);
    broker.create_topic(POINTS, 1);
    broker.create_topic(FEEDBACK, 1);
    let brokers = broker.brokers();

    // Two series from the CSV generator the file test uses: "clean", and
    // "spiky" with +8 on rows 400..440.
    let mut msgs = vec![];
    for (key, spike) in [("clean", None), ("spiky", Some(400..440))] {
        let csv = dir.path().join(format!("{key}.csv"));
        common::sine_csv(&csv, 1000, spike);
        let text = std::fs::read_to_string(&csv).unwrap();
        for (r, line) in text.lines().skip(1).enumerate() {
            let value: f64 = line.split(',').nth(1).unwrap().parse().unwrap();
            let body = serde_json::json!({"key": key, "ts": row_ms(r), "value": value});
            msgs.push((key.to_string(), body.to_string().into_bytes()));
        }
    }
    broker.produce(POINTS, &msgs);

    let cfg = dir.path().join("retrain.toml");
    std::fs::write(
        &cfg,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\nfeedback_topic = \"{FEEDBACK}\"\n[[kafka.inputs]]\ntopic = \"{POINTS}\"\nformat = \"points\"\n[training]\nbatch_size = 32\n"
        ),
    )
    .unwrap();
    let env = [
        ("LSTM_AE__KAFKA__BROKERS", brokers.as_str()),
        ("LSTM_AE__KAFKA__FEEDBACK_TOPIC", FEEDBACK),
    ];
    let ts = |r: usize| lstm_ae::stream::records::format_ts_ms(row_ms(r));
    let add = |id: &str, key: &str, rows: std::ops::Range<usize>, verdict: &str| {
        ok(
            &[
                "feedback",
                "add",
                "--id",
                id,
                "--verdict",
                verdict,
                "--key",
                key,
                "--from",
                &ts(rows.start),
                "--to",
                &ts(rows.end),
            ],
            &env,
        )
    };
    add("i1", "clean", 200..230, "incident");
    add("i2", "spiky", 300..301, "maintenance");

    let store = dir.path().join("store");
    let retrain = |key: &str, extra: &[&str]| {
        let mut args = vec![
            "retrain",
            "--store",
            s(&store),
            "--from-kafka",
            "--config",
            s(&cfg),
            "--key",
            key,
            "--window",
            "16",
            "--hidden",
            "8",
            "--epochs",
            "3",
            "--threads",
            "1",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        let out = run(&args, &[]);
        assert!(
            matches!(out.status.code(), Some(0) | Some(3)),
            "{}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };

    let out = retrain("clean", &[]);
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("1/manifest.json")).unwrap()).unwrap();
    assert_eq!(m["lineage"]["source"]["kind"], "kafka", "{m}");
    let span =
        (m["spec"]["window"].as_u64().unwrap() + m["spec"]["horizon"].as_u64().unwrap()) as usize;
    // Every window with a row in 200..230 of "clean"; the marks of
    // "spiky" do not count.
    assert_eq!(
        lineage(&store, 1)["marked_windows_excluded"],
        30 + span - 1,
        "{out}"
    );

    // "spiky" with the live model v1: it flags the spike. Only the
    // one-row maintenance mark of "spiky" is on the topic for it.
    retrain("spiky", &["--no-promote"]);
    let plain = lineage(&store, 2);
    assert_eq!(plain["parent_version"], 1);
    assert_eq!(plain["marked_windows_excluded"], span, "{plain}");
    let flagged = plain["excluded_windows"].as_u64().unwrap();
    assert!(flagged > 0, "the live model flags the spike: {plain}");
    assert!(
        plain.get("false_positive_windows_kept").is_none(),
        "{plain}"
    );

    // The operator marks the spike a false positive on the topic; the next
    // retrain keeps what the live model flags inside it.
    add("fp1", "spiky", 380..470, "false_positive");
    retrain("spiky", &["--no-promote"]);
    let marked = lineage(&store, 3);
    assert_eq!(marked["parent_version"], 1);
    let kept = marked["false_positive_windows_kept"].as_u64().unwrap();
    assert!(kept > 0, "{marked}");
    assert_eq!(
        marked["excluded_windows"].as_u64().unwrap() + kept,
        flagged,
        "every flagged window is either excluded or kept as a false positive: {marked}"
    );
}
