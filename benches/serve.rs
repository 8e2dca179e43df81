//! Daemon throughput: windows/s and end-to-end latency of `lstm-ae serve`
//! between a tansu broker and ONNX Runtime, beside the bare ONNX Runtime
//! throughput of the same model on the same number of cores.
//!
//! For each inference thread count N (the daemon's `serve.inference_threads`,
//! one single-threaded ONNX Runtime session each) and each mode, a fresh
//! in-memory tansu broker is started, then:
//!
//! - `points`: KEYS × POINTS `points` JSON messages are loaded first (a
//!   backlog), then the release daemon is started and drains it;
//! - `binary`: the same series pre-windowed as `binary_windows` messages
//!   (one per window), loaded first, then drained;
//! - `paced`: the daemon is started first, then the points are produced
//!   at RATE points/s, below capacity, so latency is not queueing.
//!
//! Throughput is (outputs − 1) / (last − first output timestamp) on the
//! embeddings topic, the timestamps being set by the daemon's producer.
//! Latency is, per window, that output timestamp minus the timestamp of
//! the input message that completed the window (set by this program when
//! it produced the message). The daemon's own histogram (input timestamp
//! to the broker's acknowledgement) is shown beside it. With a backlog,
//! latency is mostly time spent queued, not processing time.
//!
//! Bare ONNX Runtime is the better of one session with N threads and N
//! single-threaded sessions side by side, at the daemon's largest batch.
//!
//! Memory (`keys100k` in `BENCH_MODES`, or `keys100k-threshold` /
//! `keys100k-likelihood` for one rule): RSS_KEYS keys × RSS_POINTS points
//! (default T + 1: every key has scored two windows and holds T − 1 points
//! in its window buffer — as full as a live key's buffer gets — and, under
//! the likelihood rule, its likelihood state, whose buffers are sized when
//! the key first scores) are loaded into one broker, interleaved by key; then
//! for each anomaly rule a fresh daemon (its own consumer group, every
//! other setting at its default) drains them, and once every window is
//! produced — all keys live at once — its VmRSS and VmHWM are read from
//! /proc/<pid>/status beside its gauges of live keys, and VmRSS again after
//! 15 s without input (what an idle daemon with every key gives back). "Per key" is the
//! growth of RSS from just after start-up (model loaded, no key yet)
//! divided by the live keys.
//!
//! CPU seconds of the daemon, of the broker and of the whole machine come
//! from /proc over the interval from the first to the last output, so the
//! table says who used the two cores; per-thread CPU of the daemon follows.
//!
//! Settings, from the environment: `BENCH_KEYS` (100), `BENCH_POINTS`
//! (1000), `BENCH_THREADS` (1,2), `BENCH_MODES` (points,binary,paced,paced-fetch10),
//! `BENCH_RATE` (paced points/s, 5000; `half`: half of the preceding
//! `points` backlog run's windows/s, i.e. half of the maximum rate), `BENCH_MAX_BATCH` (the daemon's default, 64),
//! `BENCH_PARTITIONS` (2, for input and embeddings topics), `BENCH_ORT_SECS`
//! (3), `BENCH_RSS_KEYS` (100000), `BENCH_RSS_POINTS` (T + 1), `TANSU_BIN`; `BENCH_SERVE_TOML`, TOML appended to the daemon's
//! configuration (e.g. a `[kafka.consumer]` table); `BENCH_PERF=DIR`, a
//! `perf record -g` of daemon and broker per run into DIR; `BENCH_SMAPS=DIR`,
//! the daemon's `/proc/<pid>/smaps` at the end of each memory run into
//! DIR/<rule>.smaps (which mappings hold the memory). Any other
//! `LSTM_AE__…` variable reaches the daemon. `BENCH_PYTHON=PYTHON` (or `1`
//! for `python3`): after each `points` backlog run, `benches/python_service.py`
//! (confluent-kafka + onnxruntime, the same work) drains the same backlog
//! on a fresh broker with the same number of ONNX Runtime threads, measured
//! the same way.
//!
//! Run with `scripts/bench-serve.sh` (or `cargo bench --bench serve`).

#[path = "../tests/common/procs.rs"]
mod procs;

use procs::{free_port, http_get, metric, rss_bytes, tansu_bin, tansu_broker, wait_for_port};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lstm_ae::config::ServeSettings;
use lstm_ae::infer::{BackendOptions, OnnxBackend};
use lstm_ae::model::Bundle;
use lstm_ae::stream::codec::encode_binary_window;
use lstm_ae::stream::records::format_ts_ms;
use ndarray::Array3;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

const T0: i64 = 1_700_000_000_000;
const STEP_MS: i64 = 300_000;
const POINTS_TOPIC: &str = "bench.points";
const WINDOWS_TOPIC: &str = "bench.windows";
const EMB_TOPIC: &str = "bench.embeddings";
const ANOM_TOPIC: &str = "bench.anomalies";
const DLQ_TOPIC: &str = "bench.dead-letters";

type Res<T> = Result<T, String>;

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    Points,
    Binary,
    Paced,
    /// Paced, with the daemon's consumer `fetch.wait.max.ms` at 10.
    PacedFetch10,
}

impl Mode {
    fn is_paced(self) -> bool {
        matches!(self, Mode::Paced | Mode::PacedFetch10)
    }

    fn file_name(self) -> &'static str {
        match self {
            Mode::Points => "points",
            Mode::Binary => "binary",
            Mode::Paced => "paced",
            Mode::PacedFetch10 => "paced-fetch10",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Points => "points backlog",
            Mode::Binary => "binary backlog",
            Mode::Paced => "points paced",
            Mode::PacedFetch10 => "points paced, fetch.wait.max.ms 10",
        }
    }
}

struct Opts {
    keys: usize,
    points: usize,
    threads: Vec<usize>,
    modes: Vec<Mode>,
    /// Paced points/s; `None`: half of the same thread count's `points`
    /// backlog windows/s (`BENCH_RATE=half`).
    rate: Option<f64>,
    max_batch: usize,
    partitions: usize,
    ort_secs: f64,
    model: PathBuf,
    /// Anomaly rules of the memory runs (`keys100k…` modes).
    rss_rules: Vec<&'static str>,
    rss_keys: usize,
    /// Points per key of the memory runs; `None`: T + 1.
    rss_points: Option<usize>,
    /// The interpreter that runs `benches/python_service.py` beside each
    /// `points` backlog run, if any.
    python: Option<String>,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> Res<T> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("{name}={v} is not valid")),
        Err(_) => Ok(default),
    }
}

impl Opts {
    fn from_env() -> Res<Opts> {
        let threads = std::env::var("BENCH_THREADS").unwrap_or_else(|_| "1,2".into());
        let threads = threads
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| format!("BENCH_THREADS={threads}: a list like 1,2"))?;
        let modes = std::env::var("BENCH_MODES")
            .unwrap_or_else(|_| "points,binary,paced,paced-fetch10".into());
        let mut rss_rules = vec![];
        let mut throughput = vec![];
        for m in modes.split(',') {
            match m.trim() {
                "points" => throughput.push(Mode::Points),
                "binary" => throughput.push(Mode::Binary),
                "paced" => throughput.push(Mode::Paced),
                "paced-fetch10" => throughput.push(Mode::PacedFetch10),
                "keys100k" => rss_rules.extend(["threshold", "likelihood"]),
                "keys100k-threshold" => rss_rules.push("threshold"),
                "keys100k-likelihood" => rss_rules.push("likelihood"),
                o => {
                    return Err(format!(
                        "BENCH_MODES: unknown mode {o} (points, binary, paced, paced-fetch10, \
                         keys100k, keys100k-threshold, keys100k-likelihood)"
                    ))
                }
            }
        }
        let rss_points = match std::env::var("BENCH_RSS_POINTS") {
            Ok(_) => Some(env_or("BENCH_RSS_POINTS", 0)?),
            Err(_) => None,
        };
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        Ok(Opts {
            keys: env_or("BENCH_KEYS", 100)?,
            points: env_or("BENCH_POINTS", 1000)?,
            threads,
            modes: throughput,
            rate: match std::env::var("BENCH_RATE").as_deref() {
                Ok("half") => None,
                _ => Some(env_or("BENCH_RATE", 5000.0)?),
            },
            max_batch: env_or("BENCH_MAX_BATCH", ServeSettings::default().max_batch)?,
            partitions: env_or("BENCH_PARTITIONS", 2)?,
            ort_secs: env_or("BENCH_ORT_SECS", 3.0)?,
            model: std::env::var("BENCH_MODEL")
                .map(PathBuf::from)
                .unwrap_or_else(|_| root.join("models/machine_temperature")),
            rss_rules,
            rss_keys: env_or("BENCH_RSS_KEYS", 100_000)?,
            rss_points,
            python: match std::env::var("BENCH_PYTHON").as_deref() {
                Err(_) | Ok("") | Ok("0") => None,
                Ok("1") => Some("python3".into()),
                Ok(p) => Some(p.into()),
            },
        })
    }
}

// ------------------------------------------------------------------ /proc

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (comm, utime + stime in ticks) from a /proc stat file.
fn stat_ticks(path: &Path) -> Option<(String, u64)> {
    let s = std::fs::read_to_string(path).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let f: Vec<&str> = s[close + 2..].split_whitespace().collect();
    // Fields 14 and 15 of stat(5); the list starts at field 3.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((comm, ticks))
}

fn process_ticks(pid: u32) -> u64 {
    stat_ticks(Path::new(&format!("/proc/{pid}/stat")))
        .map(|(_, t)| t)
        .unwrap_or(0)
}

/// Ticks per thread name (threads of one name summed).
fn thread_ticks(pid: u32) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    if let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for e in rd.flatten() {
            if let Some((comm, t)) = stat_ticks(&e.path().join("stat")) {
                *m.entry(comm).or_insert(0) += t;
            }
        }
    }
    m
}

/// (busy, total) ticks of the whole machine.
fn machine_ticks() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// CPU counters at one instant.
#[derive(Clone)]
struct CpuSnap {
    at: Instant,
    daemon: u64,
    broker: u64,
    bench: u64,
    machine: (u64, u64),
    threads: BTreeMap<String, u64>,
}

impl CpuSnap {
    fn take(daemon: u32, broker: u32) -> CpuSnap {
        CpuSnap {
            at: Instant::now(),
            daemon: process_ticks(daemon),
            broker: process_ticks(broker),
            bench: process_ticks(std::process::id()),
            machine: machine_ticks(),
            threads: thread_ticks(daemon),
        }
    }
}

// --------------------------------------------------------------- processes

/// A child process killed on drop.
struct Proc(Child);

impl Proc {
    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Broker {
    port: u16,
    proc: Proc,
    bin: PathBuf,
}

impl Broker {
    fn start(dir: &Path) -> Res<Broker> {
        let bin = tansu_bin()?;
        let port = free_port()?;
        let child = tansu_broker(&bin, dir, port, "memory://tansu/")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("tansu does not start: {e}"))?;
        let proc = Proc(child);
        wait_for_port(port, "tansu")?;
        Ok(Broker { port, proc, bin })
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn create_topic(&self, name: &str, partitions: usize) -> Res<()> {
        let st = Command::new(&self.bin)
            .args(["topic", "create", "--broker"])
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .args(["--partitions", &partitions.to_string(), name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| e.to_string())?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("tansu topic create {name} failed"))
        }
    }
}

/// `perf record` (call graphs) of the daemon and the broker into
/// `dir/perf-<name>.data`, until interrupted.
fn perf_record(dir: &Path, name: &str, pids: &[u32]) -> Res<Proc> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    let out = dir.join(format!("perf-{name}.data"));
    let child = Command::new("perf")
        .args(["record", "-F", "499", "-g", "-q", "-o"])
        .arg(&out)
        .args(["-p", &pids.join(",")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("BENCH_PERF is set but perf does not run: {e}"))?;
    println!("   perf: {}", out.display());
    Ok(Proc(child))
}

/// Quantile `q` of a Prometheus histogram, interpolated within its bucket.
fn histogram_quantile(body: &str, name: &str, labels: &str, q: f64) -> Option<f64> {
    let prefix = format!("{name}_bucket{{{labels}");
    let mut buckets: Vec<(f64, f64)> = body
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let le = rest.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            let n = rest.rsplit(' ').next()?.trim().parse().ok()?;
            Some((le, n))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let rank = q * total;
    let (mut lo, mut below) = (0.0, 0.0);
    for (le, n) in buckets {
        if n >= rank {
            if le.is_infinite() {
                return Some(lo);
            }
            let frac = if n > below {
                (rank - below) / (n - below)
            } else {
                1.0
            };
            return Some(lo + (le - lo) * frac);
        }
        lo = le;
        below = n;
    }
    None
}

// ------------------------------------------------------------------- data

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn key(k: usize) -> String {
    format!("machine-{k:04}")
}

fn ts(i: usize) -> i64 {
    T0 + STEP_MS * i as i64
}

fn value(k: usize, i: usize) -> f32 {
    (86.0 + 5.0 * ((i as f64) * 0.13 + k as f64).sin() + 0.3 * ((i * 7 + k) % 11) as f64 / 11.0)
        as f32
}

fn point_json(k: usize, i: usize) -> Vec<u8> {
    format!(
        "{{\"key\":\"{}\",\"ts\":{},\"value\":{}}}",
        key(k),
        ts(i),
        value(k, i)
    )
    .into_bytes()
}

fn producer(brokers: &str, linger_ms: u32) -> Res<BaseProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("linger.ms", linger_ms.to_string())
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()
        .map_err(|e| e.to_string())
}

/// Queues one message stamped `ts_ms`, waiting while the queue is full.
fn send(p: &BaseProducer, topic: &str, key: &str, payload: &[u8], ts_ms: i64) -> Res<()> {
    loop {
        let rec = BaseRecord::to(topic)
            .key(key)
            .payload(payload)
            .timestamp(ts_ms);
        match p.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                p.poll(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(format!("producing to {topic}: {e}")),
        }
    }
}

/// Input timestamps of the messages that complete windows, by (key, window end).
type Completions = HashMap<(String, String), i64>;

/// Loads the whole input as fast as the broker takes it; returns the
/// completion timestamps and the seconds taken.
fn load(brokers: &str, mode: Mode, o: &Opts, t: usize) -> Res<(Completions, f64)> {
    let p = producer(brokers, 20)?;
    let started = Instant::now();
    let mut done = Completions::new();
    for i in 0..o.points {
        for k in 0..o.keys {
            let now = now_ms();
            let name = key(k);
            match mode {
                Mode::Binary => {
                    if i + 1 < t {
                        continue;
                    }
                    let vals: Vec<f32> = (i + 1 - t..=i).map(|j| value(k, j)).collect();
                    let body = encode_binary_window(&name, ts(i), t, 1, &vals)
                        .map_err(|e| e.to_string())?;
                    send(&p, WINDOWS_TOPIC, &name, &body, now)?;
                }
                _ => send(&p, POINTS_TOPIC, &name, &point_json(k, i), now)?,
            }
            if i + 1 >= t {
                done.insert((name, format_ts_ms(ts(i))), now);
            }
        }
    }
    p.flush(Duration::from_secs(120))
        .map_err(|e| format!("loading the input: {e}"))?;
    Ok((done, started.elapsed().as_secs_f64()))
}

/// Produces the points at `rate` per second on a thread; returns the
/// completion timestamps when done.
fn paced(
    brokers: String,
    o: &Opts,
    t: usize,
    rate: f64,
) -> std::thread::JoinHandle<Res<Completions>> {
    let (keys, points) = (o.keys, o.points);
    std::thread::spawn(move || {
        let p = producer(&brokers, 2)?;
        let mut done = Completions::new();
        let started = Instant::now();
        let total = keys * points;
        let mut sent = 0usize;
        // Every 5 ms, send what is due by then: message n at n / rate s.
        while sent < total {
            let due = ((started.elapsed().as_secs_f64() * rate) as usize + 1).min(total);
            while sent < due {
                let (i, k) = (sent / keys, sent % keys);
                let now = now_ms();
                let name = key(k);
                send(&p, POINTS_TOPIC, &name, &point_json(k, i), now)?;
                if i + 1 >= t {
                    done.insert((name, format_ts_ms(ts(i))), now);
                }
                sent += 1;
            }
            p.poll(Duration::ZERO);
            std::thread::sleep(Duration::from_millis(5));
        }
        p.flush(Duration::from_secs(60))
            .map_err(|e| format!("paced producer: {e}"))?;
        Ok(done)
    })
}

/// Every embeddings record: (key, window end, producer timestamp).
fn read_outputs(
    brokers: &str,
    partitions: usize,
    expect: usize,
) -> Res<Vec<(String, String, i64)>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bench-reader")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| e.to_string())?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(EMB_TOPIC, p as i32, Offset::Beginning)
            .map_err(|e| e.to_string())?;
    }
    c.assign(&tpl).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(expect);
    let mut last = Instant::now();
    while out.len() < expect && last.elapsed() < Duration::from_secs(20) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            last = Instant::now();
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap_or_default())
                .map_err(|e| e.to_string())?;
            let end = v["window_end_ts"].as_str().unwrap_or_default().to_string();
            let k = v["key"].as_str().unwrap_or_default().to_string();
            out.push((k, end, m.timestamp().to_millis().unwrap_or(0)));
        }
    }
    Ok(out)
}

// --------------------------------------------------------------- ORT alone

/// Windows/s of the model through ONNX Runtime alone at `batch`:
/// `sessions` sessions of `threads` intra-op threads each, each running
/// batches on its own thread, for `secs` after a warm-up.
fn bare_ort(bundle: &Bundle, sessions: usize, threads: usize, batch: usize, secs: f64) -> Res<f64> {
    let opts = BackendOptions {
        intra_threads: threads,
        ..BackendOptions::default()
    };
    let t = bundle.manifest.spec.window;
    let f = bundle.manifest.spec.features;
    let x = Array3::from_shape_fn((batch, t, f), |(i, j, _)| value(i % 100, j));
    let run = |b: &mut OnnxBackend, d: f64| -> Res<usize> {
        let start = Instant::now();
        let mut n = 0;
        while start.elapsed().as_secs_f64() < d {
            b.run(x.view()).map_err(|e| e.to_string())?;
            n += batch;
        }
        Ok(n)
    };
    let mut backends = (0..sessions)
        .map(|_| OnnxBackend::load_from_memory(&bundle.onnx, &opts).map_err(|e| e.to_string()))
        .collect::<Res<Vec<_>>>()?;
    let started = Instant::now();
    let counts = std::thread::scope(|s| {
        let handles: Vec<_> = backends
            .iter_mut()
            .map(|b| {
                s.spawn(|| {
                    run(b, 0.5)?; // warm-up
                    run(b, secs)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("panicked".into())))
            .collect::<Res<Vec<usize>>>()
    })?;
    let wall = started.elapsed().as_secs_f64() - 0.5;
    Ok(counts.iter().sum::<usize>() as f64 / wall)
}

// -------------------------------------------------------------------- runs

struct RunResult {
    mode: Mode,
    threads: usize,
    windows: usize,
    unique: usize,
    per_s: f64,
    lat_p50: f64,
    lat_p99: f64,
    hist_p50: Option<f64>,
    hist_p99: Option<f64>,
    mean_batch: f64,
    ort_busy: f64,
    span_s: f64,
    load_s: f64,
    daemon_cpu: f64,
    broker_cpu: f64,
    bench_cpu: f64,
    machine_busy: f64,
    threads_cpu: Vec<(String, f64)>,
    load_avg: String,
    /// Bare ONNX Runtime windows/s just before the run (backlog runs).
    bare: Option<f64>,
    /// Points/s of a paced run.
    rate: f64,
    /// The daemon's VmRSS and VmHWM at the end, bytes.
    daemon_rss: u64,
    daemon_hwm: u64,
}

impl RunResult {
    fn input(&self) -> String {
        if self.mode.is_paced() {
            format!("{} at {:.0}/s", self.mode.name(), self.rate)
        } else {
            self.mode.name().to_string()
        }
    }
}

fn percentile(sorted: &[i64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i] as f64
}

fn write_config(
    dir: &Path,
    mode: Mode,
    o: &Opts,
    threads: usize,
    metrics_port: u16,
) -> Res<PathBuf> {
    let (topic, format) = match mode {
        Mode::Binary => (WINDOWS_TOPIC, "binary_windows"),
        _ => (POINTS_TOPIC, "points"),
    };
    let text = format!(
        "[serve]\nmodel = {model:?}\nmax_batch = {mb}\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n\
         inference_threads = {threads}\n\n\
         [kafka]\ngroup_id = \"bench\"\nembeddings_topic = \"{EMB_TOPIC}\"\n\
         anomalies_topic = \"{ANOM_TOPIC}\"\ndead_letter_topic = \"{DLQ_TOPIC}\"\n\n\
         [[kafka.inputs]]\ntopic = \"{topic}\"\nformat = \"{format}\"\n\n\
         [runtime]\nintra_threads = 1\n",
        model = o.model.display().to_string(),
        mb = o.max_batch,
    );
    let mut extra = std::env::var("BENCH_SERVE_TOML").unwrap_or_default();
    if mode == Mode::PacedFetch10 {
        extra.push_str("\n[kafka.consumer]\n\"fetch.wait.max.ms\" = \"10\"\n");
    }
    let path = dir.join("serve.toml");
    std::fs::write(&path, format!("{text}\n{extra}\n")).map_err(|e| e.to_string())?;
    Ok(path)
}

fn run_one(o: &Opts, mode: Mode, threads: usize, t: usize, tck: f64, rate: f64) -> Res<RunResult> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let broker = Broker::start(dir.path())?;
    let parts = o.partitions;
    for (name, n) in [
        (POINTS_TOPIC, parts),
        (WINDOWS_TOPIC, parts),
        (EMB_TOPIC, parts),
        (ANOM_TOPIC, 1),
        (DLQ_TOPIC, 1),
    ] {
        broker.create_topic(name, n)?;
    }
    let expect = o.keys * (o.points + 1).saturating_sub(t);
    let brokers = broker.brokers();

    let (mut completions, load_s) = if mode.is_paced() {
        (Completions::new(), 0.0)
    } else {
        load(&brokers, mode, o, t)?
    };

    let port = free_port()?;
    let cfg = write_config(dir.path(), mode, o, threads, port)?;
    let bin = env!("CARGO_BIN_EXE_lstm-ae");
    let daemon = Proc(
        Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&cfg)
            .env("LSTM_AE__KAFKA__BROKERS", &brokers)
            .env("LSTM_AE__LOG__LEVEL", "warn")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("lstm-ae serve does not start: {e}"))?,
    );
    wait_for_port(port, "lstm-ae serve")?;
    let perf = match std::env::var("BENCH_PERF") {
        Ok(d) if !d.is_empty() => Some(perf_record(
            Path::new(&d),
            &format!("{}-{threads}", mode.file_name()),
            &[daemon.pid(), broker.proc.pid()],
        )?),
        _ => None,
    };
    let producing = if mode.is_paced() {
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(port, "/readyz")?.0 != 200 {
            if Instant::now() > deadline {
                return Err("the daemon never became ready".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(paced(brokers.clone(), o, t, rate))
    } else {
        None
    };

    let produced = format!("lstm_ae_outputs_produced_total{{topic=\"{EMB_TOPIC}\"}}");
    let mut first: Option<CpuSnap> = None;
    let mut last_n = 0.0;
    let mut last_progress = Instant::now();
    let body = loop {
        std::thread::sleep(Duration::from_millis(20));
        let (_, body) = http_get(port, "/metrics")?;
        let n = metric(&body, &produced);
        if n > 0.0 && first.is_none() {
            first = Some(CpuSnap::take(daemon.pid(), broker.proc.pid()));
        }
        if n > last_n {
            last_n = n;
            last_progress = Instant::now();
        }
        if n as usize >= expect {
            break body;
        }
        if last_progress.elapsed() > Duration::from_secs(60) {
            return Err(format!("stalled at {n} of {expect} outputs"));
        }
    };
    let end = CpuSnap::take(daemon.pid(), broker.proc.pid());
    let first = first.unwrap_or_else(|| end.clone());
    if let Some(h) = producing {
        completions = h.join().map_err(|_| "the paced producer panicked")??;
    }

    if let Some(p) = perf {
        // SIGINT makes perf write its file and exit.
        let _ = Command::new("kill")
            .args(["-INT", &p.pid().to_string()])
            .status();
        let mut p = p;
        let _ = p.0.wait();
    }
    let outputs = read_outputs(&brokers, parts, expect)?;
    let (daemon_rss, daemon_hwm) = rss_bytes(daemon.pid());
    drop(daemon);
    let mut lat: Vec<i64> = outputs
        .iter()
        .filter_map(|(k, e, ts)| completions.get(&(k.clone(), e.clone())).map(|i| ts - i))
        .collect();
    lat.sort_unstable();
    let unique = {
        let mut s: Vec<_> = outputs.iter().map(|(k, e, _)| (k, e)).collect();
        s.sort();
        s.dedup();
        s.len()
    };
    let lo = outputs.iter().map(|o| o.2).min().unwrap_or(0);
    let hi = outputs.iter().map(|o| o.2).max().unwrap_or(0);
    let span_s = (hi - lo) as f64 / 1000.0;
    let per_s = if span_s > 0.0 {
        (outputs.len() - 1) as f64 / span_s
    } else {
        f64::NAN
    };
    let e2e = "lstm_ae_end_to_end_latency_seconds";
    let lbl = format!("topic=\"{EMB_TOPIC}\"");
    let batches = metric(&body, "lstm_ae_inference_batch_size_windows_count");
    let wall = end.at.duration_since(first.at).as_secs_f64();
    let secs = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / tck;
    let mut threads_cpu: Vec<(String, f64)> = end
        .threads
        .iter()
        .map(|(n, t)| {
            (
                n.clone(),
                secs(first.threads.get(n).copied().unwrap_or(0), *t),
            )
        })
        .filter(|(_, s)| *s > 0.0)
        .collect();
    threads_cpu.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (mb0, mt0) = first.machine;
    let (mb1, mt1) = end.machine;
    Ok(RunResult {
        mode,
        threads,
        windows: outputs.len(),
        unique,
        per_s,
        lat_p50: percentile(&lat, 0.5),
        lat_p99: percentile(&lat, 0.99),
        hist_p50: histogram_quantile(&body, e2e, &lbl, 0.5),
        hist_p99: histogram_quantile(&body, e2e, &lbl, 0.99),
        mean_batch: if batches > 0.0 {
            metric(&body, "lstm_ae_inference_batch_size_windows_sum") / batches
        } else {
            f64::NAN
        },
        ort_busy: metric(&body, "lstm_ae_inference_duration_seconds_sum"),
        span_s: wall,
        load_s,
        daemon_cpu: secs(first.daemon, end.daemon),
        broker_cpu: secs(first.broker, end.broker),
        bench_cpu: secs(first.bench, end.bench),
        machine_busy: if mt1 > mt0 {
            (mb1 - mb0) as f64 / (mt1 - mt0) as f64
        } else {
            f64::NAN
        },
        threads_cpu,
        load_avg: loadavg(),
        bare: None,
        rate,
        daemon_rss,
        daemon_hwm,
    })
}

// ------------------------------------------------------------------ Python

struct PyResult {
    windows: usize,
    unique: usize,
    per_s: f64,
}

/// `benches/python_service.py` over the same `points` backlog as the
/// daemon's run, on a fresh broker; windows/s measured the same way (the
/// embeddings' producer timestamps, first to last).
fn run_python(o: &Opts, python: &str, threads: usize, t: usize) -> Res<PyResult> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let broker = Broker::start(dir.path())?;
    let parts = o.partitions;
    for (name, n) in [(POINTS_TOPIC, parts), (EMB_TOPIC, parts), (ANOM_TOPIC, 1)] {
        broker.create_topic(name, n)?;
    }
    let expect = o.keys * (o.points + 1).saturating_sub(t);
    let brokers = broker.brokers();
    let (_, load_s) = load(&brokers, Mode::Points, o, t)?;
    println!("   input loaded in {load_s:.1} s before the Python service started");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_service.py");
    let mut child = Proc(
        Command::new(python)
            .arg(&script)
            .args(["--brokers", &brokers, "--topic", POINTS_TOPIC])
            .args([
                "--embeddings-topic",
                EMB_TOPIC,
                "--anomalies-topic",
                ANOM_TOPIC,
            ])
            .arg("--model")
            .arg(&o.model)
            .args(["--threads", &threads.to_string()])
            .args(["--max-batch", &o.max_batch.to_string()])
            .args(["--max-windows", &expect.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{python} does not start: {e}"))?,
    );
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        match child.0.try_wait().map_err(|e| e.to_string())? {
            Some(st) if st.success() => break,
            Some(st) => return Err(format!("the Python service failed: {st}")),
            None if Instant::now() > deadline => {
                return Err("the Python service did not finish in 15 minutes".into())
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let outputs = read_outputs(&brokers, parts, expect)?;
    let mut s: Vec<_> = outputs.iter().map(|(k, e, _)| (k, e)).collect();
    s.sort();
    s.dedup();
    let lo = outputs.iter().map(|o| o.2).min().unwrap_or(0);
    let hi = outputs.iter().map(|o| o.2).max().unwrap_or(0);
    let span_s = (hi - lo) as f64 / 1000.0;
    Ok(PyResult {
        windows: outputs.len(),
        unique: s.len(),
        per_s: if span_s > 0.0 {
            (outputs.len() - 1) as f64 / span_s
        } else {
            f64::NAN
        },
    })
}

// ------------------------------------------------------------------ memory

struct RssResult {
    rule: &'static str,
    keys: usize,
    points: usize,
    windows: f64,
    live_keys: f64,
    likelihood_keys: f64,
    storm_keys: f64,
    rss_start: u64,
    rss: u64,
    hwm: u64,
    /// VmRSS idle 15 s after the last window, every key still live.
    /// jemalloc purges freed pages (10 s of decay) as it allocates, so an
    /// idle daemon gives back little unless its background thread is on.
    rss_settled: u64,
    secs: f64,
}

/// A daemon of the memory runs, with its RSS once ready and before any input.
struct RssDaemon {
    rule: &'static str,
    proc: Proc,
    port: u16,
    rss_start: u64,
    done: Option<RssResult>,
}

/// The memory runs (module docs): one broker, one daemon per rule started
/// before the input is loaded, so each one's start-up RSS has no key in it.
fn rss_runs(o: &Opts, t: usize) -> Res<Vec<RssResult>> {
    let points = o.rss_points.unwrap_or(t + 1);
    let keys = o.rss_keys;
    let expect = keys * (points + 1).saturating_sub(t);
    println!(
        "== memory: {keys} keys × {points} points = {} points JSON, {expect} windows; rules {}",
        keys * points,
        o.rss_rules.join(", ")
    );
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let broker = Broker::start(dir.path())?;
    for (name, n) in [
        (POINTS_TOPIC, o.partitions),
        (EMB_TOPIC, o.partitions),
        (ANOM_TOPIC, 1),
        (DLQ_TOPIC, 1),
    ] {
        broker.create_topic(name, n)?;
    }
    let brokers = broker.brokers();
    let mut daemons = vec![];
    for &rule in &o.rss_rules {
        let port = free_port()?;
        let text = format!(
            "[serve]\nmodel = {model:?}\nmetrics_listen = \"127.0.0.1:{port}\"\n\n\
             [kafka]\ngroup_id = \"bench-rss-{rule}\"\nembeddings_topic = \"{EMB_TOPIC}\"\n\
             anomalies_topic = \"{ANOM_TOPIC}\"\ndead_letter_topic = \"{DLQ_TOPIC}\"\n\n\
             [[kafka.inputs]]\ntopic = \"{POINTS_TOPIC}\"\nformat = \"points\"\n\n\
             [anomalies]\nrule = \"{rule}\"\n\n{extra}\n",
            model = o.model.display().to_string(),
            extra = std::env::var("BENCH_SERVE_TOML").unwrap_or_default(),
        );
        let cfg = dir.path().join(format!("serve-{rule}.toml"));
        std::fs::write(&cfg, text).map_err(|e| e.to_string())?;
        let proc = Proc(
            Command::new(env!("CARGO_BIN_EXE_lstm-ae"))
                .arg("serve")
                .arg("--config")
                .arg(&cfg)
                .env("LSTM_AE__KAFKA__BROKERS", &brokers)
                .env("LSTM_AE__LOG__LEVEL", "warn")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("lstm-ae serve does not start: {e}"))?,
        );
        wait_for_port(port, "lstm-ae serve")?;
        daemons.push(RssDaemon {
            rule,
            proc,
            port,
            rss_start: 0,
            done: None,
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for d in &mut daemons {
        while http_get(d.port, "/readyz")?.0 != 200 {
            if Instant::now() > deadline {
                return Err(format!("the {} daemon never became ready", d.rule));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        d.rss_start = rss_bytes(d.proc.pid()).0;
    }

    // The input, interleaved by key so that every key is live at the end.
    let started = Instant::now();
    let p = producer(&brokers, 20)?;
    let names: Vec<String> = (0..keys).map(key).collect();
    for i in 0..points {
        let now = now_ms();
        for (k, name) in names.iter().enumerate() {
            let body = format!(
                "{{\"key\":\"{name}\",\"ts\":{},\"value\":{}}}",
                ts(i),
                value(k, i)
            );
            send(&p, POINTS_TOPIC, name, body.as_bytes(), now)?;
        }
        p.poll(Duration::ZERO);
    }
    p.flush(Duration::from_secs(300))
        .map_err(|e| format!("loading the input: {e}"))?;
    println!(
        "   input loaded in {:.0} s (the daemons consuming meanwhile)",
        started.elapsed().as_secs_f64()
    );

    let produced = format!("lstm_ae_outputs_produced_total{{topic=\"{EMB_TOPIC}\"}}");
    let consumed = format!("lstm_ae_messages_consumed_total{{topic=\"{POINTS_TOPIC}\"}}");
    let mut last = vec![(0.0, Instant::now()); daemons.len()];
    while daemons.iter().any(|d| d.done.is_none()) {
        std::thread::sleep(Duration::from_millis(200));
        for (d, last) in daemons.iter_mut().zip(&mut last) {
            if d.done.is_some() {
                continue;
            }
            let (_, body) = http_get(d.port, "/metrics")?;
            let n = metric(&body, &produced);
            let read = metric(&body, &consumed);
            if n + read > last.0 {
                *last = (n + read, Instant::now());
            }
            if (n as usize) < expect || (read as usize) < keys * points {
                if last.1.elapsed() > Duration::from_secs(120) {
                    return Err(format!(
                        "the {} daemon stalled at {n} of {expect} windows",
                        d.rule
                    ));
                }
                continue;
            }
            // Every point read and every window out: every key is live, with
            // T − 1 points (or all of its points, with fewer than T).
            let (rss, hwm) = rss_bytes(d.proc.pid());
            if let Ok(dir) = std::env::var("BENCH_SMAPS") {
                // Where the memory is, mapping by mapping, for a closer look.
                let to = Path::new(&dir).join(format!("{}.smaps", d.rule));
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::copy(format!("/proc/{}/smaps", d.proc.pid()), &to);
            }
            let r = RssResult {
                rule: d.rule,
                keys,
                points,
                windows: n,
                live_keys: metric(&body, "lstm_ae_live_series_keys"),
                likelihood_keys: metric(&body, "lstm_ae_likelihood_keys"),
                storm_keys: metric(&body, "lstm_ae_storm_keys"),
                rss_start: d.rss_start,
                rss,
                hwm,
                rss_settled: 0,
                secs: started.elapsed().as_secs_f64(),
            };
            println!(
                "-- anomalies.rule = {}: {:.0} windows after {:.0} s; live keys {:.0}, likelihood keys {:.0}, \
                 storm keys {:.0}; VmRSS {:.1} MB (at start {:.1} MB), VmHWM {:.1} MB; {:.0} bytes per key",
                r.rule,
                r.windows,
                r.secs,
                r.live_keys,
                r.likelihood_keys,
                r.storm_keys,
                mb(r.rss),
                mb(r.rss_start),
                mb(r.hwm),
                r.per_key()
            );
            d.done = Some(r);
        }
    }
    // Idle, the daemons keep their keys: is the figure above the backlog's
    // burst (fetched messages, batches in flight) or memory in use?
    std::thread::sleep(Duration::from_secs(15));
    for d in &mut daemons {
        let pid = d.proc.pid();
        if let Some(r) = &mut d.done {
            r.rss_settled = rss_bytes(pid).0;
            println!(
                "-- anomalies.rule = {}: VmRSS {:.1} MB after 15 s idle",
                r.rule,
                mb(r.rss_settled)
            );
        }
    }
    Ok(daemons.into_iter().filter_map(|d| d.done).collect())
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

impl RssResult {
    /// RSS growth from start-up per live key, bytes.
    fn per_key(&self) -> f64 {
        (self.rss as f64 - self.rss_start as f64) / self.live_keys.max(1.0)
    }
}

fn report_rss(results: &[RssResult]) {
    if results.is_empty() {
        return;
    }
    println!();
    println!(
        "| anomalies.rule | keys × points | live keys / likelihood keys | VmRSS MB (at start) | VmHWM MB | VmRSS MB 15 s idle | bytes per key |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for r in results {
        println!(
            "| {} | {} × {} | {:.0} / {:.0} | {:.1} ({:.1}) | {:.1} | {:.1} | {:.0} |",
            r.rule,
            r.keys,
            r.points,
            r.live_keys,
            r.likelihood_keys,
            mb(r.rss),
            mb(r.rss_start),
            mb(r.hwm),
            mb(r.rss_settled),
            r.per_key()
        );
    }
}

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`:
    // nothing is timed there.
    if !std::env::args().any(|a| a == "--bench") {
        println!("serve bench: run it with scripts/bench-serve.sh or cargo bench --bench serve");
        return;
    }
    if let Err(e) = bench() {
        eprintln!("serve bench failed: {e}");
        std::process::exit(1);
    }
}

fn bench() -> Res<()> {
    let o = Opts::from_env()?;
    tansu_bin()?;
    let bundle = Bundle::open(&o.model).map_err(|e| e.to_string())?;
    let spec = &bundle.manifest.spec;
    let t = spec.window;
    if spec.features != 1 {
        return Err("the serve bench generates one-feature series: use a one-feature model".into());
    }
    let expect = o.keys * (o.points + 1).saturating_sub(t);
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let tck = clk_tck();
    println!(
        "== lstm-ae serve: {} keys × {} points = {expect} windows; model {} (T={}, H={}, P={}, F={}); \
         max_batch {}; {} input and embeddings partitions; {nproc} CPUs; load average {}",
        o.keys,
        o.points,
        bundle.manifest.model_id,
        t,
        spec.hidden,
        spec.horizon,
        spec.features,
        o.max_batch,
        o.partitions,
        loadavg()
    );
    let mut results = vec![];
    let mut python = vec![];
    let throughput_threads = if o.modes.is_empty() {
        &[][..]
    } else {
        &o.threads[..]
    };
    for &threads in throughput_threads {
        // What the daemon does (one single-threaded session per inference
        // thread), and one session using every thread; the better of the
        // two is the reference.
        let side_by_side = if threads > 1 {
            let w = bare_ort(&bundle, threads, 1, o.max_batch, o.ort_secs)?;
            println!(
                "bare ONNX Runtime, {threads} sessions × 1 thread side by side, batch {}: {w:.0} windows/s",
                o.max_batch
            );
            w
        } else {
            0.0
        };
        let mut max_rate: Option<f64> = None;
        for &mode in &o.modes {
            // Just before the broker starts: ONNX Runtime alone on the same
            // cores, at the daemon's largest batch.
            let bare = if mode.is_paced() {
                None
            } else {
                let w = bare_ort(&bundle, 1, threads, o.max_batch, o.ort_secs)?;
                println!(
                    "bare ONNX Runtime, one session × {threads} thread(s), batch {}: {w:.0} windows/s",
                    o.max_batch
                );
                Some(w.max(side_by_side))
            };
            let rate = match (o.rate, max_rate) {
                (Some(r), _) => r,
                (None, Some(m)) => (m / 2.0).round(),
                (None, None) if mode.is_paced() => {
                    return Err(
                        "BENCH_RATE=half needs a points backlog run first in BENCH_MODES".into(),
                    )
                }
                (None, None) => 0.0,
            };
            if mode.is_paced() {
                println!("   paced at {rate:.0} points/s");
            }
            let mut r = run_one(&o, mode, threads, t, tck, rate)?;
            if mode == Mode::Points {
                max_rate = Some(r.per_s);
            }
            r.bare = bare;
            report_run(&r, nproc);
            if let (Mode::Points, Some(py)) = (mode, &o.python) {
                let p = run_python(&o, py, threads, t)?;
                println!(
                    "-- Python confluent-kafka + onnxruntime, points backlog, {threads} ORT thread(s): \
                     {} outputs ({} distinct windows) at {:.0} windows/s; the daemon is {:.2}× it",
                    p.windows,
                    p.unique,
                    p.per_s,
                    r.per_s / p.per_s
                );
                python.push((threads, r.per_s, p));
            }
            results.push(r);
        }
    }
    let rss = if o.rss_rules.is_empty() {
        vec![]
    } else {
        rss_runs(&o, t)?
    };
    if !results.is_empty() {
        report_throughput(&o, &results, nproc);
    }
    if !python.is_empty() {
        println!();
        println!(
            "| ORT threads | daemon, points backlog, windows/s | Python service, windows/s | daemon / Python |"
        );
        println!("| --- | --- | --- | --- |");
        for (threads, daemon, p) in &python {
            println!(
                "| {threads} | {daemon:.0} | {:.0} | {:.2}× |",
                p.per_s,
                daemon / p.per_s
            );
        }
    }
    report_rss(&rss);
    println!("load average at the end: {}", loadavg());
    Ok(())
}

fn report_throughput(o: &Opts, results: &[RunResult], nproc: usize) {
    println!();
    println!(
        "| input | ORT threads | windows/s | bare ORT (batch {}) | % of bare | p50 ms | p99 ms | \
         daemon histogram p50 / p99 ms | mean batch | CPU s daemon / tansu / other processes | wall s |",
        o.max_batch
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for r in results {
        let ms = |x: Option<f64>| x.map_or("–".to_string(), |s| format!("{:.0}", s * 1000.0));
        let (bare, pct) = match r.bare {
            Some(b) => (format!("{b:.0}"), format!("{:.0} %", 100.0 * r.per_s / b)),
            None => ("–".into(), "– (paced)".into()),
        };
        println!(
            "| {} | {} | {:.0} | {bare} | {pct} | {:.0} | {:.0} | {} / {} | {:.0} | {:.1} / {:.1} / {:.1} | {:.1} |",
            r.input(),
            r.threads,
            r.per_s,
            r.lat_p50,
            r.lat_p99,
            ms(r.hist_p50),
            ms(r.hist_p99),
            r.mean_batch,
            r.daemon_cpu,
            r.broker_cpu,
            r.other_cpu(nproc),
            r.span_s,
        );
    }
}

impl RunResult {
    /// CPU seconds of every other process on the machine over the interval.
    fn other_cpu(&self, nproc: usize) -> f64 {
        let busy = self.machine_busy * self.span_s * nproc as f64;
        (busy - self.daemon_cpu - self.broker_cpu - self.bench_cpu).max(0.0)
    }
}

fn report_run(r: &RunResult, nproc: usize) {
    let vs_bare = match r.bare {
        Some(b) => format!(" ({:.0} % of bare ONNX Runtime)", 100.0 * r.per_s / b),
        None => String::new(),
    };
    println!(
        "-- {}, {} ORT thread(s): {} outputs ({} distinct windows) at {:.0} windows/s{vs_bare}; \
         latency p50 {:.0} ms, p99 {:.0} ms{}",
        r.input(),
        r.threads,
        r.windows,
        r.unique,
        r.per_s,
        r.lat_p50,
        r.lat_p99,
        if r.mode.is_paced() {
            ""
        } else {
            " (backlog: mostly time queued)"
        },
    );
    if r.load_s > 0.0 {
        println!(
            "   input loaded in {:.1} s before the daemon started",
            r.load_s
        );
    }
    println!(
        "   first→last output {:.1} s: CPU s daemon {:.1}, tansu {:.1}, this program {:.1}, \
         other processes {:.1}; machine {:.0} % busy; inside ONNX Runtime {:.1} s (whole run); mean batch {:.0}; \
         load average {}",
        r.span_s,
        r.daemon_cpu,
        r.broker_cpu,
        r.bench_cpu,
        r.other_cpu(nproc),
        100.0 * r.machine_busy,
        r.ort_busy,
        r.mean_batch,
        r.load_avg
    );
    let top: Vec<String> = r
        .threads_cpu
        .iter()
        .take(8)
        .map(|(n, s)| format!("{n} {s:.1}"))
        .collect();
    println!("   daemon threads (CPU s): {}", top.join(", "));
    println!(
        "   daemon memory at the end: VmRSS {:.1} MB, VmHWM {:.1} MB",
        mb(r.daemon_rss),
        mb(r.daemon_hwm)
    );
}
