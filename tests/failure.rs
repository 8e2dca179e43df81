//! `lstm-ae serve` under failure, against a real Kafka-protocol broker
//! process (tansu, sqlite storage): SIGKILLs of the daemon mid-stream, a
//! broker crash and restart, and two daemons sharing a consumer group, one
//! of which dies.
//!
//! Each test produces a known stream of points and computes the windows it
//! must see from those points and the window length alone (stride 1: one
//! window per key for every point from the T-th on), never from the
//! daemon's output. It then reads the embeddings topic to its end offsets
//! and checks: every expected window is there, nothing else is, and how
//! many came more than once (at-least-once delivery: duplicates are allowed
//! after a crash, and counted in the test output).
//!
//! The tests take a lock so they run one at a time: each drives a broker
//! and one or two daemons, which is enough for a small machine. Wall times
//! and figures are printed (`cargo test --test failure -- --nocapture`).
//! Needs the tansu binary that `scripts/setup.sh` installs.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::broker::{produce, Broker, Daemon, TopicReader};

const T: usize = 64; // the default model's window
const T0: i64 = 1_700_000_000_000;
const STEP_MS: i64 = 60_000;
const POINTS: &str = "lstm-ae.points";
const EMBEDDINGS: &str = "lstm-ae.embeddings";
const DEAD_LETTERS: &str = "lstm-ae.dead-letters";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn ts(i: usize) -> i64 {
    T0 + STEP_MS * i as i64
}

fn key(k: usize) -> String {
    format!("sensor-{k:03}")
}

fn value(k: usize, i: usize) -> f64 {
    50.0 + 10.0 * ((i as f64) * 0.1 + k as f64 * 0.7).sin()
}

/// Points `from..to` of `keys` keys, round-robin over the keys (the order a
/// fleet of sensors would send them), as (Kafka key, JSON body).
fn points(keys: usize, from: usize, to: usize) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::with_capacity(keys * (to - from));
    for i in from..to {
        for k in 0..keys {
            let body = format!(
                r#"{{"key":"{}","ts":{},"value":{}}}"#,
                key(k),
                ts(i),
                value(k, i)
            );
            out.push((key(k), body.into_bytes()));
        }
    }
    out
}

/// The windows `keys` × `n` points must give: per key, one ending at every
/// point from the T-th on (stride 1), as (key, end timestamp in ms).
fn expected(keys: usize, n: usize) -> BTreeSet<(String, i64)> {
    (0..keys)
        .flat_map(|k| (T - 1..n).map(move |i| (key(k), ts(i))))
        .collect()
}

/// (key, end timestamp in ms) of an embeddings record.
fn window_of(r: &common::broker::Record) -> (String, i64) {
    #[derive(serde::Deserialize)]
    struct W {
        key: String,
        window_end_ts: String,
    }
    let w: W = serde_json::from_slice(&r.payload).expect("an embeddings record");
    let end = chrono::DateTime::parse_from_rfc3339(&w.window_end_ts)
        .expect("an RFC 3339 window_end_ts")
        .timestamp_millis();
    (w.key, end)
}

/// What the embeddings topic holds: how often each window was published.
#[derive(Default)]
struct Seen {
    count: HashMap<(String, i64), u32>,
    records: u64,
}

impl Seen {
    fn add(&mut self, r: common::broker::Record) {
        *self.count.entry(window_of(&r)).or_default() += 1;
        self.records += 1;
    }

    fn missing<'a>(&self, want: &'a BTreeSet<(String, i64)>) -> Vec<&'a (String, i64)> {
        want.iter()
            .filter(|w| !self.count.contains_key(*w))
            .collect()
    }

    fn extra(&self, want: &BTreeSet<(String, i64)>) -> Vec<(String, i64)> {
        self.count
            .keys()
            .filter(|w| !want.contains(*w))
            .cloned()
            .collect()
    }

    /// Records beyond the first of each window.
    fn duplicates(&self) -> u64 {
        self.records - self.count.len() as u64
    }

    /// Reads the topic to its end, then checks every expected window is
    /// there and nothing else; returns the duplicates.
    fn settle(
        &mut self,
        reader: &mut TopicReader,
        want: &BTreeSet<(String, i64)>,
        what: &str,
    ) -> u64 {
        reader.read_to_end(Duration::from_secs(120), |r| self.add(r));
        let missing = self.missing(want);
        assert!(
            missing.is_empty(),
            "{what}: {} of {} windows missing, e.g. {:?}",
            missing.len(),
            want.len(),
            &missing[..missing.len().min(5)]
        );
        let extra = self.extra(want);
        assert!(
            extra.is_empty(),
            "{what}: {} windows that no input makes, e.g. {:?}",
            extra.len(),
            &extra[..extra.len().min(5)]
        );
        self.duplicates()
    }
}

/// Reads the embeddings topic until every window of `want` was seen once,
/// calling `step` (with the count of distinct expected windows seen) after
/// each read; panics after `secs` with what is missing.
fn wait_for_windows(
    reader: &mut TopicReader,
    seen: &mut Seen,
    want: &BTreeSet<(String, i64)>,
    secs: u64,
    what: &str,
    mut step: impl FnMut(usize),
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        reader.poll_for(Duration::from_millis(500), |r| seen.add(r));
        let have = want.iter().filter(|w| seen.count.contains_key(*w)).count();
        if have == want.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: only {have} of {} windows after {secs} s; e.g. missing {:?}",
            want.len(),
            seen.missing(want).first()
        );
        step(have);
    }
}

/// A broker with sqlite storage and the daemon's topics: points on
/// `partitions` partitions.
fn setup(dir: &Path, partitions: u32) -> Broker {
    Broker::with_daemon_topics(dir, partitions)
}

/// xorshift64: reproducible random choices, seed printed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn seed() -> u64 {
    std::env::var("LSTM_AE_FAILURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        })
}

/// A malformed message on the points topic: it must reach the dead-letter
/// topic (at least once), and must not stop the stream.
fn bad_message(n: usize) -> (String, Vec<u8>) {
    ("bad".into(), format!("{{not json {n}").into_bytes())
}

/// The daemon is a static member (`group.instance.id`), so each restart
/// gets its partitions back at once. Its group session is 30 s: tansu 0.6
/// holds a static member's JoinGroup and SyncGroup 3 s each
/// (`PAUSE_MS`, tansu-broker `src/coordinator/group/administrator.rs`:810,
/// 939) and checks a member's last heartbeat before it records the new one
/// (:2676, :2689), so with the harness's 6 s session the first heartbeat
/// after every join expelled the member: an endless rebalance. Anomalies
/// are published as in production; the windows are checked on the
/// embeddings topic.
///
/// At-least-once alone would pass a daemon that never commits (each restart
/// replays the stream from the start), so the test also checks that the
/// group's committed offsets moved forward between kills that lie far
/// apart, and bounds the duplicates: what a crash replays is what was
/// processed since the last commit, a small share of the stream.
#[test]
fn ten_sigkills_mid_stream_lose_no_window() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let (keys, n) = (100, 2_000); // 200,000 points
    let seed = seed();
    let mut rng = Rng(seed);
    let dir = common::broker::test_dir();
    let broker = setup(dir.path(), 4);
    let want = expected(keys, n);

    // The stream goes on while the daemon is killed: a thread produces it
    // in chunks, with 12 malformed messages among the points.
    let brokers = broker.brokers();
    let feeder = std::thread::spawn(move || {
        let chunks = 20;
        for c in 0..chunks {
            let mut msgs = points(keys, c * n / chunks, (c + 1) * n / chunks);
            if c < 12 {
                let at = msgs.len() / 2;
                msgs.insert(at, bad_message(c));
            }
            produce(&brokers, POINTS, &msgs);
        }
    });

    let start = |dir: &Path| {
        Daemon::start(
            dir,
            &broker.brokers(),
            None,
            &[
                ("LSTM_AE__KAFKA__STATIC_MEMBERSHIP", "true"),
                ("LSTM_AE__KAFKA__INSTANCE_ID", "killed-daemon"),
                ("LSTM_AE__KAFKA__SESSION_TIMEOUT_MS", "30000"),
            ],
        )
    };
    let mut daemon = start(dir.path());
    // Kill when the distinct windows seen pass 10 random points of the stream.
    let mut kills: Vec<usize> = (0..10)
        .map(|_| (want.len() as u64 * (5 + rng.below(85)) / 100) as usize)
        .collect();
    kills.sort_unstable();
    kills.reverse();
    let mut reader = TopicReader::new(&broker.brokers(), EMBEDDINGS);
    let mut seen = Seen::default();
    let mut killed = 0;
    // (distinct windows seen, committed offsets summed) just before each kill.
    let mut at_kill: Vec<(usize, i64)> = vec![];
    let committed_sum = |brokers: &str| -> i64 {
        committed(brokers, "lstm-ae", POINTS, 4)
            .iter()
            .map(|&o| o.max(0))
            .sum()
    };
    wait_for_windows(
        &mut reader,
        &mut seen,
        &want,
        900,
        "after 10 SIGKILLs",
        |have| {
            if kills.last().is_some_and(|&k| have >= k) {
                kills.pop();
                std::thread::sleep(Duration::from_millis(rng.below(1_000)));
                at_kill.push((have, committed_sum(&broker.brokers())));
                daemon.signal("-KILL");
                let _ = daemon.child.wait();
                killed += 1;
                eprintln!(
                    "SIGKILL {killed} at {have} of {} windows ({:.0} s)",
                    want.len(),
                    started.elapsed().as_secs_f64()
                );
                daemon = start(dir.path());
            }
        },
    );
    feeder.join().expect("the feeder thread");
    assert_eq!(killed, 10, "10 SIGKILLs before the stream ended");
    let duplicates = seen.settle(&mut reader, &want, "after 10 SIGKILLs");
    // Between two kills 10,000 windows apart (5 % of the stream; seconds of
    // work at the 200 ms commit interval) the daemon must have committed.
    let far_apart = 10_000;
    let mut compared = 0;
    for pair in at_kill.windows(2) {
        let ((seen_a, committed_a), (seen_b, committed_b)) = (pair[0], pair[1]);
        if seen_b >= seen_a + far_apart {
            compared += 1;
            assert!(
                committed_b > committed_a,
                "no commit between the kills at {seen_a} and {seen_b} windows: committed {committed_a} then {committed_b} (all kills: {at_kill:?})"
            );
        }
    }
    let (first, last) = (at_kill[0], at_kill[at_kill.len() - 1]);
    assert!(
        last.1 > first.1,
        "committed offsets did not move from the first kill to the last: {at_kill:?}"
    );
    let share = duplicates as f64 / want.len() as f64;
    assert!(
        share <= 0.15,
        "{duplicates} duplicates, {:.1} % of {} windows: more than a crash's uncommitted work (bound 15 %)",
        100.0 * share,
        want.len()
    );

    let mut dlq = TopicReader::new(&broker.brokers(), DEAD_LETTERS);
    let mut bad = HashMap::<Vec<u8>, u32>::new();
    dlq.read_to_end(Duration::from_secs(60), |r| {
        *bad.entry(r.payload).or_default() += 1
    });
    for c in 0..12 {
        assert!(
            bad.contains_key(&bad_message(c).1),
            "malformed message {c} dead-lettered"
        );
    }
    assert_eq!(
        bad.len(),
        12,
        "only the malformed messages are dead letters"
    );
    println!(
        "10 SIGKILLs (seed {seed}): {} windows expected, all present, nothing else; {} records, {duplicates} duplicates ({:.1} %); commits moved between {compared} pairs of kills far apart; {} dead letters for 12 malformed messages; {:.0} s",
        want.len(),
        seen.records,
        100.0 * share,
        bad.values().sum::<u32>(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_broker_restart_mid_stream_loses_no_window_and_the_daemon_reconnects() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let (keys, n) = (20, 1_000);
    let dir = common::broker::test_dir();
    let mut broker = setup(dir.path(), 4);
    let want = expected(keys, n);
    let half = n / 2;
    broker.produce(POINTS, &points(keys, 0, half));
    let mut daemon = Daemon::start(dir.path(), &broker.brokers(), None, &[]);
    let mut reader = TopicReader::new(&broker.brokers(), EMBEDDINGS);
    let mut seen = Seen::default();
    let first = expected(keys, half);
    wait_for_windows(
        &mut reader,
        &mut seen,
        &first,
        300,
        "before the restart",
        |_| {},
    );
    // Mid-stream: more points arrive, and the broker dies under them.
    broker.produce(POINTS, &points(keys, half, half + 100));
    broker.restart();
    eprintln!(
        "broker restarted ({:.0} s)",
        started.elapsed().as_secs_f64()
    );
    broker.produce(POINTS, &points(keys, half + 100, n));
    // The reader's connection died with the broker too.
    let mut reader = TopicReader::new(&broker.brokers(), EMBEDDINGS);
    let mut seen = Seen::default();
    wait_for_windows(
        &mut reader,
        &mut seen,
        &want,
        300,
        "after the broker restart",
        |_| {},
    );
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the same daemon process, reconnected by itself"
    );
    let duplicates = seen.settle(&mut reader, &want, "after the broker restart");
    println!(
        "broker restart: {} windows expected, all present, nothing else; {duplicates} duplicates; {:.0} s",
        want.len(),
        started.elapsed().as_secs_f64()
    );
}

/// The group's committed offsets, per partition of `topic`, read from the
/// broker (OffsetFetch; the reader does not join the group).
fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("a consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("the committed offsets");
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(rdkafka::Offset::Offset(o)) => o,
            _ => -1,
        })
        .collect()
}

/// The daemon commits each offset once and waits for the broker's answer
/// before it sends the next commit. Sending the same commit again at every
/// tick would go on for ever (librdkafka reports no result of an
/// asynchronous commit to rdkafka, so none would ever be "confirmed"); on a
/// slow broker those commits queue up ahead of the heartbeats on the
/// coordinator connection and the group session expires.
#[test]
fn an_idle_daemon_has_committed_the_end_of_its_input_and_sends_no_more_commits() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (keys, n) = (20, 200);
    let dir = common::broker::test_dir();
    let broker = setup(dir.path(), 4);
    let msgs = points(keys, 0, n);
    broker.produce(POINTS, &msgs);
    let daemon = Daemon::start(dir.path(), &broker.brokers(), None, &[]);
    let mut reader = TopicReader::new(&broker.brokers(), EMBEDDINGS);
    let mut seen = Seen::default();
    let want = expected(keys, n);
    wait_for_windows(&mut reader, &mut seen, &want, 300, "idle daemon", |_| {});
    // Every point is scored and acknowledged; what the windower still
    // buffers (the last T − 1 points of each key, for its next window)
    // stays uncommitted. Points come round-robin over the keys, so on each
    // partition the oldest buffered point is T − 1 points of each of its
    // keys before the end: in all, (T − 1) × keys below the end offsets.
    let ends: Vec<i64> = (0..4).map(|p| reader.watermarks(POINTS, p).1).collect();
    assert_eq!(ends.iter().sum::<i64>(), msgs.len() as i64);
    let buffered = ((T - 1) * keys) as i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = committed(&broker.brokers(), "lstm-ae", POINTS, 4);
        if ends.iter().sum::<i64>() - c.iter().sum::<i64>() == buffered {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "committed {c:?}, end offsets {ends:?}: {buffered} points buffered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Idle, all confirmed: no commit goes out any more (the harness's
    // commit interval is 200 ms, so 3 s are 15 ticks).
    std::thread::sleep(Duration::from_millis(500));
    let sent = daemon.metric("lstm_ae_offsets_committed_total");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        daemon.metric("lstm_ae_offsets_committed_total"),
        sent,
        "commits sent while idle"
    );
    println!(
        "idle daemon: committed {:?} (end offsets {ends:?}) with {sent} commits",
        committed(&broker.brokers(), "lstm-ae", POINTS, 4)
    );
}

/// SIGTERM after the broker died: the drain cannot commit or flush, and
/// must still end by `serve.drain_timeout_ms` (5 s in the harness) instead
/// of waiting on librdkafka: the final commit, the flush and the joins each
/// get the deadline. (A daemon was once seen needing SIGKILL here, with
/// commits flooding a slow broker; this run passes with and without the
/// final commit's own deadline, which is there for brokers that hang
/// rather than refuse.)
#[test]
fn sigterm_with_the_broker_gone_still_exits_by_the_drain_deadline() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (keys, n) = (4, 150);
    let dir = common::broker::test_dir();
    let broker = setup(dir.path(), 2);
    broker.produce(POINTS, &points(keys, 0, n));
    let mut daemon = Daemon::start(dir.path(), &broker.brokers(), None, &[]);
    let windows = keys * (n - T + 1);
    daemon.wait_until(120, "every window scored", |d| {
        d.metric("lstm_ae_windows_scored_total") as usize >= windows
    });
    drop(broker); // SIGKILL
    std::thread::sleep(Duration::from_millis(500));
    daemon.signal("-TERM");
    let asked = Instant::now();
    let status = loop {
        if let Some(st) = daemon.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(30),
            "still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = asked.elapsed();
    println!("SIGTERM with the broker gone: exited in {took:?} ({status})");
    assert!(
        took <= Duration::from_millis(5_000 + 1_500),
        "exited {took:?} after SIGTERM; the drain timeout is 5 s"
    );
}

/// Needs the patched tansu that `scripts/setup.sh --test` builds
/// (`scripts/tansu-0.6.0-group-expiry.patch`): unpatched, tansu 0.6 drops a
/// member that missed its session inside the formed group, keeps its old
/// assignments (a formed group's SyncGroup ignores the leader's new ones)
/// and, when the dead member led the group, keeps it as leader, so no
/// SyncGroup succeeds again. Measured here unpatched: the live leader missed
/// one 15 s session while the two joined, and the group stayed formed with
/// it as leader and its two partitions unread for good. Group session 15 s
/// (under load a 6 s one expired between heartbeats); anomalies kept to
/// one record per key, as in the SIGKILL test.
#[test]
fn two_daemons_share_the_partitions_and_one_takes_over_when_the_other_dies() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let started = Instant::now();
    let (keys, n) = (20, 1_000);
    let dir = common::broker::test_dir();
    let broker = setup(dir.path(), 4);
    // Dynamic membership (the harness's default): a daemon that dies for
    // good is replaced after its session, as a static one would be, without
    // tansu's 3 s holds of every static join and sync.
    let consumed = |d: &Daemon| {
        d.metric(&format!(
            "lstm_ae_messages_consumed_total{{topic=\"{POINTS}\"}}"
        ))
    };
    let a = Daemon::start(
        dir.path(),
        &broker.brokers(),
        None,
        &[
            ("LSTM_AE__KAFKA__STATIC_MEMBERSHIP", "false"),
            ("LSTM_AE__KAFKA__SESSION_TIMEOUT_MS", "15000"),
            ("LSTM_AE__ANOMALIES__CLOSE_AFTER", "1000000000"),
        ],
    );
    let b = Daemon::start(
        dir.path(),
        &broker.brokers(),
        None,
        &[
            ("LSTM_AE__KAFKA__STATIC_MEMBERSHIP", "false"),
            ("LSTM_AE__KAFKA__SESSION_TIMEOUT_MS", "15000"),
            ("LSTM_AE__ANOMALIES__CLOSE_AFTER", "1000000000"),
        ],
    );
    // Both in the group before the data comes, so both get partitions.
    for d in [&a, &b] {
        d.wait_until(120, "a partition assignment", |d| d.get("/readyz").0 == 200);
    }
    let half = n / 2;
    broker.produce(POINTS, &points(keys, 0, half));
    let mut reader = TopicReader::new(&broker.brokers(), EMBEDDINGS);
    let mut seen = Seen::default();
    let first = expected(keys, half);
    wait_for_windows(
        &mut reader,
        &mut seen,
        &first,
        300,
        "while both run",
        |_| {},
    );
    let (ca, cb) = (consumed(&a), consumed(&b));
    assert!(
        ca > 0.0 && cb > 0.0,
        "both daemons consumed: {ca} and {cb} messages"
    );
    let mut a = a;
    a.signal("-KILL");
    let _ = a.child.wait();
    let killed_at = Instant::now();
    broker.produce(POINTS, &points(keys, half, n));
    let want = expected(keys, n);
    wait_for_windows(
        &mut reader,
        &mut seen,
        &want,
        300,
        "after one daemon died",
        |_| {},
    );
    let takeover = killed_at.elapsed().as_secs_f64();
    assert!(consumed(&b) > cb, "the survivor consumed the rest");
    let duplicates = seen.settle(&mut reader, &want, "after one daemon died");
    println!(
        "two daemons: {} windows expected, all present, nothing else; {} scored while both ran; {duplicates} duplicates; survivor done {takeover:.0} s after the kill; {:.0} s",
        want.len(),
        first.len(),
        started.elapsed().as_secs_f64()
    );
}

/// Under `cooperative-sticky` a daemon that joins takes some of the first
/// daemon's partitions away and nothing else: the first keeps the rest, so
/// its `/readyz` must stay 200 through the rebalance and after it.
#[test]
fn a_partial_revoke_under_cooperative_sticky_keeps_the_daemon_ready() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (keys, n) = (20, 200);
    let dir = common::broker::test_dir();
    let broker = setup(dir.path(), 4);
    let cfg = dir.path().join("cooperative.toml");
    std::fs::write(
        &cfg,
        "[kafka]\nsession_timeout_ms = 6000\n[kafka.consumer]\n\"heartbeat.interval.ms\" = \"500\"\n\"partition.assignment.strategy\" = \"cooperative-sticky\"\n",
    )
    .unwrap();
    let consumed = |d: &Daemon| {
        d.metric(&format!(
            "lstm_ae_messages_consumed_total{{topic=\"{POINTS}\"}}"
        ))
    };
    let a = Daemon::start(dir.path(), &broker.brokers(), Some(&cfg), &[]);
    a.wait_until(120, "the first daemon's assignment", |d| {
        d.get("/readyz").0 == 200
    });
    let b = Daemon::start(dir.path(), &broker.brokers(), Some(&cfg), &[]);
    // Watch the first daemon through the second one's join, and 3 s more.
    let mut not_ready = vec![];
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut settled: Option<Instant> = None;
    loop {
        let (status, body) = a.get("/readyz");
        if status != 200 {
            not_ready.push(body);
        }
        if settled.is_none() && b.get("/readyz").0 == 200 {
            settled = Some(Instant::now());
        }
        if settled.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second daemon never got partitions"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Both own partitions now: data on every partition reaches both.
    broker.produce(POINTS, &points(keys, 0, n));
    let mut reader = TopicReader::new(&broker.brokers(), EMBEDDINGS);
    let mut seen = Seen::default();
    wait_for_windows(
        &mut reader,
        &mut seen,
        &expected(keys, n),
        300,
        "after the cooperative rebalance",
        |_| {},
    );
    let (ca, cb) = (consumed(&a), consumed(&b));
    assert!(
        ca > 0.0 && cb > 0.0,
        "the partitions are shared: {ca} and {cb} messages"
    );
    assert!(
        not_ready.is_empty(),
        "the first daemon was not ready {} times while it kept partitions, e.g. {:?}",
        not_ready.len(),
        not_ready.first()
    );
    assert_eq!(a.get("/readyz").0, 200);
}

/// Sends `sig` (e.g. `-STOP`) to process `pid`.
fn signal(pid: u32, sig: &str) {
    let st = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "kill {sig} {pid}");
}

/// A broker that stops answering (SIGSTOP) holds at most
/// `serve.max_outputs_in_flight` of the daemon's outputs: the output queue
/// fills to that bound and stays there, intake pauses, and after SIGCONT
/// every window comes out.
#[test]
fn a_stopped_broker_holds_at_most_max_outputs_in_flight() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (keys, n) = (20, 1_000);
    let (bound, max_batch, batches) = (40.0, 16.0, 1.0);
    let dir = common::broker::test_dir();
    let broker = setup(dir.path(), 1);
    let want = expected(keys, n);
    broker.produce(POINTS, &points(keys, 0, n));
    let d = Daemon::start(
        dir.path(),
        &broker.brokers(),
        None,
        &[
            ("LSTM_AE__SERVE__MAX_OUTPUTS_IN_FLIGHT", "40"),
            ("LSTM_AE__SERVE__INFERENCE_THREADS", "1"),
            ("LSTM_AE__SERVE__MAX_BATCH", "16"),
            ("LSTM_AE__SERVE__MAX_BATCHES_IN_FLIGHT", "1"),
        ],
    );
    let scored = |d: &Daemon| d.metric("lstm_ae_windows_scored_total");
    d.wait_until(120, "scoring under way", |d| scored(d) >= 100.0);
    signal(broker.pid(), "-STOP");
    let at_stop = scored(&d);
    let stopped = Instant::now();
    let (mut outputs, mut windows) = (vec![], vec![]);
    while stopped.elapsed() < Duration::from_secs(4) {
        outputs.push(d.metric("lstm_ae_outputs_in_flight"));
        windows.push(d.metric("lstm_ae_windows_in_flight"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let after = scored(&d);
    signal(broker.pid(), "-CONT");
    println!(
        "broker stopped 4 s: windows scored {at_stop} -> {after} of {}; outputs in flight {:?}; windows in flight at most {:?}",
        want.len(),
        outputs.last(),
        windows.iter().cloned().fold(0.0, f64::max)
    );
    assert!(
        after < want.len() as f64,
        "the daemon scored everything before the broker stopped: the test proves nothing"
    );
    assert!(
        outputs.iter().all(|&o| o <= bound),
        "outputs in flight above the bound {bound}: {outputs:?}"
    );
    assert_eq!(
        outputs.last().copied(),
        Some(bound),
        "the output queue fills to its bound and stays there: {outputs:?}"
    );
    // The windows held: the unacknowledged ones (each has an output), the
    // batches in flight (one, plus one per thread), the batch waiting for
    // their permit and the batcher's.
    let held = bound + (batches + 1.0 + 2.0) * max_batch;
    assert!(
        windows.iter().all(|&w| w <= held),
        "windows in flight above {held}: {windows:?}"
    );
    let mut reader = TopicReader::new(&broker.brokers(), EMBEDDINGS);
    let mut seen = Seen::default();
    wait_for_windows(
        &mut reader,
        &mut seen,
        &want,
        300,
        "after the broker resumed",
        |_| {},
    );
    let duplicates = seen.settle(&mut reader, &want, "after the broker resumed");
    println!(
        "then every window: {} expected, {duplicates} duplicates",
        want.len()
    );
}

/// `messages` produced to partition `partition` of `topic`, whatever their
/// keys: what the default partitioner does to a key's later messages after
/// the topic's partitions are increased (tansu has no CreatePartitions).
fn produce_to(brokers: &str, topic: &str, partition: i32, messages: &[(String, Vec<u8>)]) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let p: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for (k, v) in messages {
        while p
            .send(BaseRecord::to(topic).key(k).payload(v).partition(partition))
            .is_err()
        {
            p.poll(Duration::from_millis(10));
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

/// A key whose later points arrive on another partition (a partition-count
/// increase) moves there after `windowing.key_move_after` of them: the
/// earlier ones are dead-lettered, and from the one that moves it the key
/// is windowed again, instead of every point being dead-lettered until the
/// key's TTL runs out.
#[test]
fn a_key_whose_points_move_to_another_partition_follows_them() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (keys, n, moved_at) = (3, 200, 100);
    let dir = common::broker::test_dir();
    let broker = setup(dir.path(), 2);
    let d = Daemon::start(dir.path(), &broker.brokers(), None, &[]);
    d.wait_until(120, "a partition assignment", |d| d.get("/readyz").0 == 200);
    // Before the increase every key is on partition 0.
    produce_to(&broker.brokers(), POINTS, 0, &points(keys, 0, moved_at));
    let mut reader = TopicReader::new(&broker.brokers(), EMBEDDINGS);
    let mut seen = Seen::default();
    let before = expected(keys, moved_at);
    wait_for_windows(
        &mut reader,
        &mut seen,
        &before,
        300,
        "before the move",
        |_| {},
    );
    // After it, every key's later points land on partition 1.
    produce_to(&broker.brokers(), POINTS, 1, &points(keys, moved_at, n));
    // The third point on partition 1 moves a key and starts it over: its
    // next window ends T points later.
    let restart = moved_at + 2;
    let after: BTreeSet<(String, i64)> = (0..keys)
        .flat_map(|k| (restart + T - 1..n).map(move |i| (key(k), ts(i))))
        .collect();
    let want: BTreeSet<(String, i64)> = before.union(&after).cloned().collect();
    wait_for_windows(&mut reader, &mut seen, &want, 300, "after the move", |_| {});
    let duplicates = seen.settle(&mut reader, &want, "after the move");
    let dead = broker.read_all(DEAD_LETTERS, Duration::from_secs(3));
    let reasons: Vec<&str> = dead
        .iter()
        .filter_map(|r| r.header("lstm_ae.error.kind"))
        .collect();
    assert_eq!(
        reasons,
        vec!["key_on_two_partitions"; 2 * keys],
        "the two points before each key's move, nothing else"
    );
    assert_eq!(
        d.metric("lstm_ae_window_keys_evicted_total{reason=\"moved\"}"),
        keys as f64
    );
    println!(
        "moved keys: {} windows expected, all present, nothing else; {duplicates} duplicates",
        want.len()
    );
}
