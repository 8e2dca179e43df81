//! The daemon acting on operator marks: a real `lstm-ae serve` process, a
//! real Kafka-protocol broker (tansu, sqlite storage), marks written with
//! `lstm-ae feedback add` or as raw records, outputs read to their end.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::broker::{produce, test_dir, Broker, Daemon, Record, TopicReader};

const FEEDBACK: &str = "lstm-ae.feedback";
const SCORES: &str = "lstm-ae.scores";
const ANOMALIES: &str = "lstm-ae.anomalies";
const DEAD_LETTERS: &str = "lstm-ae.dead-letters";
const KEYS: usize = 3;
const T: usize = 64; // the default model's window
const T0: i64 = 1_700_000_000_000;

fn ts(i: usize) -> i64 {
    T0 + 300_000 * i as i64
}

/// Row `i` of key `k`: a smooth sine, and +100 on the rows of `spike` (a
/// window holding one is far above the model's threshold).
fn value(k: usize, i: usize, spike: &std::ops::Range<usize>) -> f64 {
    80.0 + 10.0 * ((i as f64) * 0.15 + k as f64).sin()
        + if spike.contains(&i) { 100.0 } else { 0.0 }
}

/// Rows `from..to` of every key, interleaved, as (Kafka key, JSON body).
fn points(from: usize, to: usize, spike: std::ops::Range<usize>) -> Vec<(String, Vec<u8>)> {
    let mut out = vec![];
    for i in from..to {
        for k in 0..KEYS {
            let body = serde_json::json!({"key": format!("pump-{k}"), "ts": ts(i), "value": value(k, i, &spike)});
            out.push((format!("pump-{k}"), body.to_string().into_bytes()));
        }
    }
    out
}

fn env(broker: &Broker) -> Vec<(&'static str, String)> {
    vec![
        ("LSTM_AE__KAFKA__BROKERS", broker.brokers()),
        ("LSTM_AE__KAFKA__FEEDBACK_TOPIC", FEEDBACK.to_string()),
        ("LSTM_AE__KAFKA__SCORES_TOPIC", SCORES.to_string()),
    ]
}

fn start(dir: &Path, broker: &Broker) -> Daemon {
    let env = env(broker);
    let extra: Vec<(&str, &str)> = env[1..].iter().map(|(k, v)| (*k, v.as_str())).collect();
    let d = Daemon::start(dir, &broker.brokers(), None, &extra);
    // Ready only once the marks are read and the pipeline consumes.
    d.wait_until(120, "the daemon ready", |d| d.get("/readyz").0 == 200);
    d
}

fn setup(dir: &Path) -> Broker {
    let b = Broker::with_daemon_topics(dir, 1);
    b.create_topic(FEEDBACK, 1);
    b.create_topic(SCORES, 1);
    b
}

/// Every record of `topic`, read to its end offsets.
fn read_to_end(broker: &Broker, topic: &str) -> Vec<Record> {
    let mut out = vec![];
    TopicReader::new(&broker.brokers(), topic)
        .read_to_end(Duration::from_secs(60), |r| out.push(r));
    out
}

/// Per key, the scores records' `anomalous` and `suppressed` fields.
fn scores_by_key(broker: &Broker) -> BTreeMap<String, Vec<(String, bool, Option<String>)>> {
    let mut m: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in read_to_end(broker, SCORES) {
        let v = r.json();
        m.entry(v["key"].as_str().unwrap().to_string())
            .or_default()
            .push((
                v["window_end_ts"].as_str().unwrap().to_string(),
                v["anomalous"].as_bool().unwrap(),
                v["suppressed"].as_str().map(str::to_string),
            ));
    }
    m
}

/// Waits until the scores topic holds window end `ts(last)` of every key.
fn wait_for_window(
    broker: &Broker,
    last: usize,
) -> BTreeMap<String, Vec<(String, bool, Option<String>)>> {
    let want = lstm_ae::stream::records::format_ts_ms(ts(last));
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let got = scores_by_key(broker);
        let done = (0..KEYS).all(|k| {
            got.get(&format!("pump-{k}"))
                .is_some_and(|w| w.iter().any(|(end, _, _)| *end == want))
        });
        if done {
            return got;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "window {want} of every key not scored in time"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn anomaly_keys(broker: &Broker) -> Vec<serde_json::Value> {
    read_to_end(broker, ANOMALIES)
        .iter()
        .map(Record::json)
        .collect()
}

#[test]
fn a_maintenance_mark_published_while_running_suppresses_its_key_and_survives_a_sigkill() {
    let dir = test_dir();
    let broker = setup(dir.path());
    let daemon = start(dir.path(), &broker);
    assert_eq!(daemon.metric("lstm_ae_feedback_marks"), 0.0);

    // The operator's command, against the running daemon's topic.
    let env = env(&broker);
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (from, to) = (ts(0).to_string(), ts(10_000).to_string());
    let out = common::run(
        &[
            "feedback",
            "add",
            "--verdict",
            "maintenance",
            "--key",
            "pump-1*",
            "--from",
            &from,
            "--to",
            &to,
            "--comment",
            "pump swap",
        ],
        &envs,
    );
    assert!(out.status.success(), "{}", common::text(&out.stderr));
    daemon.wait_until(30, "the mark followed", |d| {
        d.metric("lstm_ae_feedback_marks") == 1.0
    });

    // Every key gets the same spike; only pump-1 is in maintenance.
    let n = 150;
    produce(&broker.brokers(), "lstm-ae.points", &points(0, n, 100..103));
    let scores = wait_for_window(&broker, n - 1);
    let anomalous = |k: &str| scores[k].iter().filter(|(_, a, _)| *a).count();
    for k in ["pump-0", "pump-1", "pump-2"] {
        assert!(anomalous(k) > 0, "{k}: the spike gives anomalous windows");
    }
    for (end, a, suppressed) in &scores["pump-1"] {
        let want = a.then(|| "maintenance".to_string());
        assert_eq!(suppressed, &want, "pump-1 window {end}");
    }
    for k in ["pump-0", "pump-2"] {
        assert!(
            scores[k].iter().all(|(_, _, s)| s.is_none()),
            "{k}: nothing suppressed"
        );
    }
    let records = anomaly_keys(&broker);
    assert!(
        records.iter().all(|r| r["key"] != "pump-1"),
        "no record of pump-1 on the anomalies topic: {records:?}"
    );
    for k in ["pump-0", "pump-2"] {
        assert!(
            records
                .iter()
                .any(|r| r["key"] == k && r["state"] == "open"),
            "{k}'s incident is published"
        );
    }
    assert_eq!(
        daemon.metric("lstm_ae_anomalies_suppressed_total{reason=\"maintenance\"}"),
        anomalous("pump-1") as f64
    );
    assert_eq!(
        daemon.metric("lstm_ae_anomalies_suppressed_total{reason=\"false_positive\"}"),
        0.0
    );

    let opens_before = opens(&records, "pump-0");

    // A crash: the mark is read again from the topic before any window.
    daemon.signal("-KILL");
    drop(daemon);
    produce(
        &broker.brokers(),
        "lstm-ae.points",
        &points(n, 2 * n, 250..253),
    );
    let daemon = start(dir.path(), &broker);
    assert_eq!(daemon.metric("lstm_ae_feedback_marks"), 1.0);
    let scores = wait_for_window(&broker, 2 * n - 1);
    let spike_end = lstm_ae::stream::records::format_ts_ms(ts(250));
    let late = |k: &str| {
        scores[k]
            .iter()
            .filter(|(end, a, _)| *a && *end >= spike_end)
            .count()
    };
    assert!(late("pump-1") > 0 && late("pump-0") > 0);
    for (end, a, suppressed) in &scores["pump-1"] {
        let want = a.then(|| "maintenance".to_string());
        assert_eq!(suppressed, &want, "pump-1 window {end} after the restart");
    }
    let records = anomaly_keys(&broker);
    assert!(
        records.iter().all(|r| r["key"] != "pump-1"),
        "still no record of pump-1 after the restart: {records:?}"
    );
    // The restarted daemon starts with no incident state: pump-0's
    // anomalies open one again, and it is published.
    assert!(
        opens(&records, "pump-0") > opens_before,
        "pump-0's incidents after the restart are published"
    );
    assert!(
        daemon.metric("lstm_ae_anomalies_suppressed_total{reason=\"maintenance\"}")
            >= late("pump-1") as f64
    );
}

fn opens(records: &[serde_json::Value], key: &str) -> usize {
    records
        .iter()
        .filter(|r| r["key"] == key && r["state"] == "open")
        .count()
}

/// A valid mark's record, keyed by its id.
fn mark(id: &str, key: &str) -> (String, Vec<u8>) {
    let body = serde_json::json!({"id": id, "key": key, "from": ts(0), "to": ts(10_000), "verdict": "maintenance"});
    (id.to_string(), body.to_string().into_bytes())
}

/// Two false-positive marks of pump-1, made now over an old stretch (so
/// they suppress nothing new), with `feedback.raise_after = 2`: pump-1's
/// threshold, as its per-series gauge shows it, is 1.5 times the others'.
/// An incident mark made after them puts it back after a restart.
#[test]
fn false_positive_marks_raise_a_keys_threshold_until_a_later_incident_mark() {
    let dir = test_dir();
    let broker = setup(dir.path());
    let now = common::now_ms();
    let mark = |id: &str, verdict: &str, created: i64| {
        let created = lstm_ae::stream::records::format_ts_ms(created);
        let body = serde_json::json!({"id": id, "key": "pump-1", "from": T0 - 86_400_000, "to": T0 - 3_600_000, "verdict": verdict, "created": created});
        (id.to_string(), body.to_string().into_bytes())
    };
    broker.produce(
        FEEDBACK,
        &[
            mark("fp1", "false_positive", now - 1_000),
            mark("fp2", "false_positive", now),
        ],
    );
    produce(&broker.brokers(), "lstm-ae.points", &points(0, T + 5, 0..0));
    let env = env(&broker);
    let mut extra: Vec<(&str, &str)> = env[1..].iter().map(|(k, v)| (*k, v.as_str())).collect();
    extra.extend([
        ("LSTM_AE__FEEDBACK__RAISE_AFTER", "2"),
        ("LSTM_AE__FEEDBACK__RAISE_FACTOR", "1.5"),
        ("LSTM_AE__SERIES_METRICS__ENABLED", "true"),
    ]);
    let threshold = |d: &Daemon, k: usize| {
        common::procs::metric(
            &d.get("/metrics").1,
            &format!("lstm_ae_series_threshold{{key=\"pump-{k}\"}}"),
        )
    };
    let d = Daemon::start(dir.path(), &broker.brokers(), None, &extra);
    d.wait_until(120, "every key's threshold gauge", |d| {
        (0..KEYS).all(|k| threshold(d, k) > 0.0)
    });
    assert_eq!(d.metric("lstm_ae_feedback_raised_keys"), 1.0);
    let (plain, raised) = (threshold(&d, 0), threshold(&d, 1));
    assert!(
        (raised / plain - 1.5).abs() < 1e-5,
        "pump-1 {raised}, pump-0 {plain}"
    );
    assert_eq!(threshold(&d, 2), plain);
    d.signal("-KILL");
    drop(d);

    // An incident mark of pump-1, made after both: the raise is gone.
    broker.produce(FEEDBACK, &[mark("i1", "incident", now + 1_000)]);
    produce(
        &broker.brokers(),
        "lstm-ae.points",
        &points(T + 5, T + 10, 0..0),
    );
    let d = Daemon::start(dir.path(), &broker.brokers(), None, &extra);
    d.wait_until(120, "every key's threshold gauge", |d| {
        (0..KEYS).all(|k| threshold(d, k) > 0.0)
    });
    assert_eq!(d.metric("lstm_ae_feedback_raised_keys"), 0.0);
    assert_eq!(threshold(&d, 1), threshold(&d, 0));
}

#[test]
fn bad_feedback_records_are_dead_lettered_with_a_reason_and_the_daemon_keeps_scoring() {
    let dir = test_dir();
    let broker = setup(dir.path());
    let brokers = broker.brokers();
    // Before the start: a valid mark and a malformed record.
    let malformed = ("m-bad".to_string(), b"{\"id\":\"m-bad\",".to_vec());
    produce(
        &brokers,
        FEEDBACK,
        &[mark("m1", "pump-9"), malformed.clone()],
    );
    let daemon = start(dir.path(), &broker);
    assert_eq!(daemon.metric("lstm_ae_feedback_marks"), 1.0);
    // While it runs: oversized, an unknown field, a key that is not the id.
    let (_, valid) = mark("m2", "pump-8");
    let mut big: serde_json::Value = serde_json::from_slice(&valid).unwrap();
    big["comment"] = "c".repeat(5_000).into();
    let oversized = ("m2".to_string(), big.to_string().into_bytes());
    let mut typo: serde_json::Value = serde_json::from_slice(&valid).unwrap();
    typo["verdcit"] = "incident".into();
    let unknown = ("m2".to_string(), typo.to_string().into_bytes());
    let wrong_key = ("m3".to_string(), valid.clone());
    let bad = [oversized.clone(), unknown.clone(), wrong_key.clone()];
    produce(&brokers, FEEDBACK, &bad);
    daemon.wait_until(30, "four records refused", |d| {
        d.metric("lstm_ae_feedback_records_total{result=\"refused\"}") == 4.0
    });
    assert_eq!(
        daemon.metric("lstm_ae_feedback_records_total{result=\"applied\"}"),
        1.0
    );
    // Nothing applied half: the one valid mark only.
    assert_eq!(daemon.metric("lstm_ae_feedback_marks"), 1.0);

    // The copies are queued without waiting for the broker: wait for them.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut dlq = read_to_end(&broker, DEAD_LETTERS);
    while dlq.len() < 4 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        dlq = read_to_end(&broker, DEAD_LETTERS);
    }
    let got: Vec<(String, Vec<u8>, String, String)> = dlq
        .iter()
        .map(|r| {
            assert_eq!(r.header("lstm_ae.source.topic"), Some(FEEDBACK));
            (
                r.key.clone().unwrap(),
                r.payload.clone(),
                r.header("lstm_ae.error.kind").unwrap().to_string(),
                r.header("lstm_ae.error.message").unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        (&malformed, "feedback_invalid_record", "EOF"),
        (&oversized, "feedback_oversized", "at most 4096"),
        (&unknown, "feedback_invalid_record", "verdcit"),
        (&wrong_key, "feedback_key_is_not_id", "is not its id"),
    ];
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((key, payload, kind, message), ((k, v), want_kind, says)) in got.iter().zip(want) {
        assert_eq!((key, payload), (k, v), "the record's own bytes");
        assert_eq!(kind, want_kind);
        assert!(message.contains(says), "{message:?} does not say {says:?}");
    }
    assert_eq!(
        daemon.metric("lstm_ae_dead_letters_total{reason=\"feedback_invalid_record\"}"),
        2.0
    );

    // It keeps scoring.
    produce(&brokers, "lstm-ae.points", &points(0, T + 9, 0..0));
    daemon.wait_until(120, "windows scored", |d| {
        d.metric("lstm_ae_windows_scored_total") >= (KEYS * 10) as f64
    });
    assert_eq!(daemon.get("/healthz").0, 200);
}

/// Counts the bytes each thread holds, for the memory bound of the marks.
/// (jemalloc's per-thread counters need its `stats` build, which the
/// daemon does not use.)
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! {
        // Const-initialised and without a destructor: reading it never
        // allocates, so the allocator may use it.
        static LIVE: Cell<i64> = const { Cell::new(0) };
    }

    fn add(n: i64) {
        // Unavailable while a thread is torn down: not counted then.
        let _ = LIVE.try_with(|c| c.set(c.get() + n));
    }

    pub struct Counting;

    // SAFETY: every call is passed on unchanged to the system allocator;
    // the wrapper only counts sizes.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            add(l.size() as i64);
            System.alloc(l)
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            add(-(l.size() as i64));
            System.dealloc(p, l)
        }
        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            add(l.size() as i64);
            System.alloc_zeroed(l)
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            add(new as i64 - l.size() as i64);
            System.realloc(p, l, new)
        }
    }

    /// Bytes allocated and not freed by the current thread: the other tests
    /// of this binary run on threads of their own.
    pub fn live() -> i64 {
        LIVE.with(Cell::get)
    }
}

#[global_allocator]
static ALLOC: counting::Counting = counting::Counting;

/// The bound docs/feedback.md gives for a mark of a plain series key with
/// a short comment (the bound for any mark is `MAX_BYTES_PER_MARK`).
const BYTES_PER_PLAIN_MARK: usize = 1024;

/// Builds `n` marks from `make(i)` and returns the bytes they hold.
fn held(n: usize, make: impl Fn(usize) -> lstm_ae::feedback::Mark) -> usize {
    use lstm_ae::feedback::{Applied, Change, Marks};
    let before = counting::live();
    let mut marks = Marks::new(n);
    for i in 0..n {
        assert_eq!(marks.apply(Change::Put(make(i))), Applied::Added);
    }
    let bytes = (counting::live() - before) as usize;
    assert_eq!(marks.len(), n);
    drop(marks);
    bytes
}

#[test]
fn marks_stay_within_the_documented_bytes_per_mark() {
    use lstm_ae::feedback::{
        Mark, Verdict, MAX_AUTHOR_BYTES, MAX_BYTES_PER_MARK, MAX_COMMENT_BYTES, MAX_ID_BYTES,
        MAX_KEY_BYTES,
    };
    const H: i64 = 3_600_000;
    // 10^5 plain marks: a series key each, an id as `feedback add` makes it.
    let n = 100_000;
    let plain = held(n, |i| {
        Mark::new(
            &format!("maintenance-{i:012x}"),
            &format!("pump-{i:06}"),
            T0,
            T0 + H,
            Verdict::Maintenance,
            Some("kernel update".into()),
            Some("ops".into()),
            Some(T0),
        )
        .unwrap()
    });
    assert!(
        plain <= n * BYTES_PER_PLAIN_MARK,
        "{n} plain marks hold {plain} bytes"
    );
    // The largest marks there are: every field at its longest, a glob key
    // of one token per byte.
    let m = 2_000;
    let largest = held(m, |i| {
        let id = format!("{i:0w$}", w = MAX_ID_BYTES);
        let key = "h?".repeat(MAX_KEY_BYTES / 2);
        Mark::new(
            &id,
            &key,
            T0,
            T0 + H,
            Verdict::FalsePositive,
            Some("c".repeat(MAX_COMMENT_BYTES)),
            Some("a".repeat(MAX_AUTHOR_BYTES)),
            Some(T0),
        )
        .unwrap()
    });
    assert!(
        largest <= m * MAX_BYTES_PER_MARK,
        "{m} largest marks hold {largest} bytes: {} per mark",
        largest / m
    );
}

#[test]
fn a_feedback_topic_that_cannot_be_read_stops_the_start_with_a_clear_error() {
    let dir = test_dir();
    let broker = setup(dir.path());
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
    let port = common::broker::free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let mut c = std::process::Command::new(common::bin());
    c.arg("serve")
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in [
        ("LSTM_AE__KAFKA__BROKERS", broker.brokers().as_str()),
        ("LSTM_AE__KAFKA__FEEDBACK_TOPIC", "no-such-topic"),
        ("LSTM_AE__FEEDBACK__START_TIMEOUT_MS", "5000"),
        ("LSTM_AE__SERVE__MODEL", model.to_str().unwrap()),
        ("LSTM_AE__SERVE__METRICS_LISTEN", listen.as_str()),
        ("LSTM_AE__KAFKA__STATIC_MEMBERSHIP", "false"),
    ] {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon started without its feedback topic");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let err = common::text(&out.stderr);
    assert!(!out.status.success(), "it does not start: {err}");
    assert!(
        err.contains("kafka.feedback_topic") && err.contains("no-such-topic"),
        "{err}"
    );
}
