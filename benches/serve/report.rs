//! The tables the bench prints, in the shape docs/performance.md keeps.

use super::memory::RssResult;
use super::opts::Opts;
use super::python::PyResult;
use super::run::RunResult;

pub(crate) fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

pub(crate) fn throughput(o: &Opts, results: &[RunResult], nproc: usize) {
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

pub(crate) fn run(r: &RunResult, nproc: usize) {
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

pub(crate) fn python(python: &[(usize, f64, PyResult)]) {
    if python.is_empty() {
        return;
    }
    println!();
    println!(
        "| ORT threads | daemon, points backlog, windows/s | Python service, windows/s | daemon / Python |"
    );
    println!("| --- | --- | --- | --- |");
    for (threads, daemon, p) in python {
        println!(
            "| {threads} | {daemon:.0} | {:.0} | {:.2}× |",
            p.per_s,
            daemon / p.per_s
        );
    }
}

pub(crate) fn rss(results: &[RssResult]) {
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
            r.label,
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

/// The per-series gauge runs: each key count's daemon with the gauges on
/// beside the one with them off.
pub(crate) fn series(results: &[RssResult]) {
    if results.is_empty() {
        return;
    }
    println!();
    println!(
        "| keys | series_metrics | VmRSS MB | VmRSS MB 15 s idle | /metrics bytes | lstm_ae_series_* samples | RSS bytes per key over off | scrape bytes per key |"
    );
    println!("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in results {
        let off = results
            .iter()
            .find(|o| o.keys == r.keys && o.label == "series-off");
        let (rss_per_key, scrape_per_key) = match off {
            Some(off) if r.label == "series-on" => (
                format!(
                    "{:.0}",
                    (r.rss_settled as f64 - off.rss_settled as f64) / r.keys as f64
                ),
                format!(
                    "{:.0}",
                    (r.scrape_bytes as f64 - off.scrape_bytes as f64) / r.keys as f64
                ),
            ),
            _ => ("".into(), "".into()),
        };
        println!(
            "| {} | {} | {:.1} | {:.1} | {} | {} | {} | {} |",
            r.keys,
            if r.label == "series-on" { "on" } else { "off" },
            mb(r.rss),
            mb(r.rss_settled),
            r.scrape_bytes,
            r.series_lines,
            rss_per_key,
            scrape_per_key
        );
    }
}
