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
//! Per-series gauges (`series-keys` in `BENCH_MODES`): for each key count
//! of `BENCH_SERIES_KEYS` (1000,10000), the same load of keys × (T + 1)
//! points into one broker, drained by two daemons under the threshold rule:
//! one with `series_metrics` off, one with it on for every key
//! (`max_keys` = the key count). Once every window is produced: VmRSS of
//! each, the size of one `/metrics` scrape and its `lstm_ae_series_*`
//! samples; the cost per key is the difference between the two daemons
//! divided by the keys.
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
//!
//! One file per part: `opts.rs` (the settings above and the modes),
//! `load.rs` (the series, producing them, reading the outputs back),
//! `cpu.rs` (CPU counters from /proc), `ort.rs` (bare ONNX Runtime),
//! `run.rs` (one daemon run), `python.rs` (the Python reference service),
//! `memory.rs` (the memory runs) and `report.rs` (the tables). The broker is
//! the integration tests' own (tests/common/broker.rs).

#[path = "../../tests/common/mod.rs"]
mod common;

mod cpu;
mod load;
mod memory;
mod opts;
mod ort;
mod python;
mod report;
mod run;

use std::process::Child;

use lstm_ae::model::Bundle;

use common::procs::tansu_bin;
use opts::{Mode, Opts};

pub(crate) const T0: i64 = 1_700_000_000_000;
pub(crate) const STEP_MS: i64 = 300_000;
pub(crate) const POINTS_TOPIC: &str = "bench.points";
pub(crate) const WINDOWS_TOPIC: &str = "bench.windows";
pub(crate) const EMB_TOPIC: &str = "bench.embeddings";
pub(crate) const ANOM_TOPIC: &str = "bench.anomalies";
pub(crate) const DLQ_TOPIC: &str = "bench.dead-letters";

pub(crate) type Res<T> = Result<T, String>;

/// A child process killed on drop.
pub(crate) struct Proc(pub(crate) Child);

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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
    let tck = cpu::clk_tck();
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
        cpu::loadavg()
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
            let w = ort::bare_ort(&bundle, threads, 1, o.max_batch, o.ort_secs)?;
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
                let w = ort::bare_ort(&bundle, 1, threads, o.max_batch, o.ort_secs)?;
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
            let mut r = run::run_one(&o, mode, threads, t, tck, rate)?;
            if mode == Mode::Points {
                max_rate = Some(r.per_s);
            }
            r.bare = bare;
            report::run(&r, nproc);
            if let (Mode::Points, Some(py)) = (mode, &o.python) {
                let p = python::run_python(&o, py, threads, t)?;
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
        memory::rss_runs(&o, t)?
    };
    let series = if o.series_keys.is_empty() {
        vec![]
    } else {
        memory::series_runs(&o, t)?
    };
    if !results.is_empty() {
        report::throughput(&o, &results, nproc);
    }
    report::python(&python);
    report::rss(&rss);
    report::series(&series);
    println!("load average at the end: {}", cpu::loadavg());
    Ok(())
}
