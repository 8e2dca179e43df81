//! One throughput run: a fresh broker, the input, the release daemon, and
//! what it did (windows/s, latency, CPU, memory) read from its outputs, its
//! /metrics and /proc.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::common::broker::Broker;
use super::common::procs::{free_port, http_get, metric, rss_bytes, wait_for_port};
use super::cpu::{loadavg, CpuSnap};
use super::load::{distinct, load, paced, read_outputs, windows_per_s, Completions};
use super::opts::{Mode, Opts};
use super::{Proc, Res, ANOM_TOPIC, DLQ_TOPIC, EMB_TOPIC, POINTS_TOPIC, WINDOWS_TOPIC};

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
pub(crate) struct RunResult {
    pub(crate) mode: Mode,
    pub(crate) threads: usize,
    pub(crate) windows: usize,
    pub(crate) unique: usize,
    pub(crate) per_s: f64,
    pub(crate) lat_p50: f64,
    pub(crate) lat_p99: f64,
    pub(crate) hist_p50: Option<f64>,
    pub(crate) hist_p99: Option<f64>,
    pub(crate) mean_batch: f64,
    pub(crate) ort_busy: f64,
    pub(crate) span_s: f64,
    pub(crate) load_s: f64,
    pub(crate) daemon_cpu: f64,
    pub(crate) broker_cpu: f64,
    pub(crate) bench_cpu: f64,
    pub(crate) machine_busy: f64,
    pub(crate) threads_cpu: Vec<(String, f64)>,
    pub(crate) load_avg: String,
    /// Bare ONNX Runtime windows/s just before the run (backlog runs).
    pub(crate) bare: Option<f64>,
    /// Points/s of a paced run.
    pub(crate) rate: f64,
    /// The daemon's VmRSS and VmHWM at the end, bytes.
    pub(crate) daemon_rss: u64,
    pub(crate) daemon_hwm: u64,
}

impl RunResult {
    pub(crate) fn input(&self) -> String {
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

pub(crate) fn run_one(
    o: &Opts,
    mode: Mode,
    threads: usize,
    t: usize,
    tck: f64,
    rate: f64,
) -> Res<RunResult> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let broker = Broker::start(dir.path(), false);
    let parts = o.partitions;
    for (name, n) in [
        (POINTS_TOPIC, parts),
        (WINDOWS_TOPIC, parts),
        (EMB_TOPIC, parts),
        (ANOM_TOPIC, 1),
        (DLQ_TOPIC, 1),
    ] {
        broker.create_topic(name, n);
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
            &[daemon.pid(), broker.pid()],
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
            first = Some(CpuSnap::take(daemon.pid(), broker.pid()));
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
    let end = CpuSnap::take(daemon.pid(), broker.pid());
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
    let outputs = read_outputs(&brokers)?;
    let (daemon_rss, daemon_hwm) = rss_bytes(daemon.pid());
    drop(daemon);
    let mut lat: Vec<i64> = outputs
        .iter()
        .filter_map(|(k, e, ts)| completions.get(&(k.clone(), e.clone())).map(|i| ts - i))
        .collect();
    lat.sort_unstable();
    let unique = distinct(&outputs);
    let per_s = windows_per_s(&outputs);
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
