//! `lstm-ae retrain --from-kafka` against a real broker (tansu): it trains
//! on exactly the requested range and keys, and it never moves the
//! daemon's committed consumer-group offsets.
//!
//! Needs the tansu binary that `scripts/setup.sh` installs.

mod common;

use std::path::Path;
use std::time::Duration;

use common::broker::{self, Broker};
use common::{run, text};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const TOPIC: &str = "lstm-ae.points";
const GROUP: &str = "lstm-ae";
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const STEP: i64 = 60_000;
const N: usize = 1200;

fn value(key: usize, i: usize) -> f64 {
    let spike = if key == 2 && (600..606).contains(&i) {
        8.0
    } else {
        0.0
    };
    10.0 + 3.0 * ((i as f64) * std::f64::consts::TAU / 40.0 + key as f64).sin() + spike
}

fn group_consumer(b: &Broker) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", b.brokers())
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap()
}

/// The group's committed offsets of both partitions.
fn committed(b: &Broker) -> Vec<(i32, Offset)> {
    let c = group_consumer(b);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(TOPIC, 0);
    tpl.add_partition(TOPIC, 1);
    let got = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    got.elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect()
}

fn retrain(dir: &Path, store: &Path, extra: &[&str]) -> std::process::Output {
    let cfg = dir.join("retrain.toml");
    let mut args = vec![
        "retrain",
        "--store",
        store.to_str().unwrap(),
        "--from-kafka",
        "--config",
        cfg.to_str().unwrap(),
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
    run(&args, &[])
}

fn manifest(store: &Path, v: u32) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(store.join(format!("{v}/manifest.json"))).unwrap())
        .unwrap()
}

#[test]
fn from_kafka_trains_on_exactly_the_range_and_leaves_the_group_offsets_alone() {
    let dir = broker::test_dir();
    let b = Broker::start(dir.path(), true);
    b.create_topic(TOPIC, 2);
    let keys = ["a", "b", "c"];
    let mut msgs = vec![];
    for i in 0..N {
        for (k, key) in keys.iter().enumerate() {
            let body =
                serde_json::json!({"key": key, "ts": T0 + STEP * i as i64, "value": value(k, i)});
            msgs.push((key.to_string(), body.to_string().into_bytes()));
        }
    }
    b.produce(TOPIC, &msgs);

    // The daemon's group has committed somewhere in the middle.
    let c = group_consumer(&b);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Offset(100))
        .unwrap();
    tpl.add_partition_offset(TOPIC, 1, Offset::Offset(250))
        .unwrap();
    c.commit(&tpl, CommitMode::Sync).unwrap();
    drop(c);
    let before = committed(&b);
    assert_eq!(
        before,
        vec![(0, Offset::Offset(100)), (1, Offset::Offset(250))]
    );

    std::fs::write(
        dir.path().join("retrain.toml"),
        format!(
            "[kafka]\nbrokers = \"{}\"\ngroup_id = \"{GROUP}\"\n[[kafka.inputs]]\ntopic = \"{TOPIC}\"\nformat = \"points\"\n[training]\nbatch_size = 32\n",
            b.brokers()
        ),
    )
    .unwrap();
    let store = dir.path().join("models/pumps");

    // One key, an absolute range: rows 100..1000 of key a.
    let (since, until) = (T0 + 100 * STEP, T0 + 1000 * STEP);
    let out = retrain(
        dir.path(),
        &store,
        &[
            "--key",
            "a",
            "--since",
            &since.to_string(),
            "--until",
            &lstm_ae::stream::records::format_ts_ms(until),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let m = manifest(&store, 1);
    let d = &m["training_data"];
    assert_eq!(d["rows"], 900);
    assert_eq!(d["first_timestamp"], lstm_ae::data::format_timestamp(since));
    assert_eq!(
        d["last_timestamp"],
        lstm_ae::data::format_timestamp(until - STEP)
    );
    let src = &m["lineage"]["source"];
    assert_eq!(src["kind"], "kafka");
    assert_eq!(src["keys"], "a");
    assert_eq!(src["series"], 1);
    // Both partitions were read up to their end offsets, which sum to
    // every message produced.
    let parts = src["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    let ends: i64 = parts.iter().map(|p| p["to"].as_i64().unwrap()).sum();
    assert_eq!(ends as usize, N * keys.len());
    assert_eq!(committed(&b), before, "the group's offsets did not move");

    // Every key pooled (a glob), with the live model v1 leaving out the
    // windows around key c's spike.
    let out = retrain(dir.path(), &store, &["--keys", "?"]);
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "{}",
        text(&out.stderr)
    );
    let m = manifest(&store, 2);
    assert_eq!(m["training_data"]["rows"], N * keys.len());
    assert_eq!(m["lineage"]["source"]["series"], 3);
    assert_eq!(m["lineage"]["parent_version"], 1);
    let excluded = m["lineage"]["excluded_windows"].as_u64().unwrap();
    // 16-row windows that contain one of rows 600..606 of key c start at
    // rows 585..=605 (21 windows), all in its training part.
    assert!(excluded >= 15, "{excluded} windows excluded");
    assert!(m["lineage"]["gate"]["windows"].as_u64().unwrap() > 0);
    assert_eq!(committed(&b), before, "the group's offsets did not move");

    // A key with no points in range: a clear error, exit 1, nothing written.
    let out = retrain(dir.path(), &store, &["--key", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no points"),
        "{}",
        text(&out.stderr)
    );
    assert!(!store.join("3").exists());

    // Offset ranges: partition 0 from 40 to 640, partition 1 from 100 to
    // its end; exactly those messages are read (each one point).
    let ends: Vec<i64> = parts.iter().map(|p| p["to"].as_i64().unwrap()).collect();
    let out = retrain(
        dir.path(),
        &store,
        &[
            "--keys",
            "?",
            "--offsets",
            "0=40..640",
            "--offsets",
            "1=100..",
        ],
    );
    assert!(
        matches!(out.status.code(), Some(0) | Some(3)),
        "{}",
        text(&out.stderr)
    );
    let m = manifest(&store, 3);
    let read: Vec<(i64, i64, i64)> = m["lineage"]["source"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["partition"].as_i64().unwrap(),
                p["from"].as_i64().unwrap(),
                p["to"].as_i64().unwrap(),
            )
        })
        .collect();
    let want = [
        (0, 40.min(ends[0]), 640.min(ends[0])),
        (1, 100.min(ends[1]), ends[1]),
    ];
    assert_eq!(read, want);
    let rows: i64 = want.iter().map(|(_, f, t)| t - f).sum();
    assert_eq!(m["training_data"]["rows"].as_i64().unwrap(), rows);
    assert_eq!(committed(&b), before, "the group's offsets did not move");

    // A partition the topic does not have: a clear error.
    let out = retrain(dir.path(), &store, &["--offsets", "7=0..10"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("partition 7"),
        "{}",
        text(&out.stderr)
    );
}
