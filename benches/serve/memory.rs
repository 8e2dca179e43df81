//! The memory runs: RSS_KEYS keys live at once in one daemon per anomaly
//! rule, and what each holds per key; and the cost of the per-series gauges
//! (`series_metrics`) at SERIES_KEYS keys: RSS and scrape size with them on
//! beside a daemon with them off.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::producer::Producer;

use super::common::broker::Broker;
use super::common::now_ms;
use super::common::procs::{free_port, http_get, metric, rss_bytes, wait_for_port};
use super::load::{key, producer, send, ts, value};
use super::opts::Opts;
use super::report::mb;
use super::{Proc, Res, ANOM_TOPIC, DLQ_TOPIC, EMB_TOPIC, POINTS_TOPIC};

pub(crate) struct RssResult {
    /// The daemon's variant: its anomaly rule, or `series-off` / `series-on`.
    pub(crate) label: String,
    pub(crate) keys: usize,
    pub(crate) points: usize,
    pub(crate) windows: f64,
    pub(crate) live_keys: f64,
    pub(crate) likelihood_keys: f64,
    pub(crate) open_incidents: f64,
    pub(crate) rss_start: u64,
    pub(crate) rss: u64,
    pub(crate) hwm: u64,
    /// VmRSS idle 15 s after the last window, every key still live.
    /// jemalloc purges freed pages (10 s of decay) as it allocates, so an
    /// idle daemon gives back little unless its background thread is on.
    pub(crate) rss_settled: u64,
    pub(crate) secs: f64,
    /// Bytes of one `/metrics` scrape once every key is live.
    pub(crate) scrape_bytes: usize,
    /// Of which `lstm_ae_series_*` samples (lines).
    pub(crate) series_lines: usize,
}

/// One daemon of a memory run: its label and the TOML it adds to the
/// common configuration.
pub(crate) struct Variant {
    pub(crate) label: String,
    pub(crate) toml: String,
}

/// A daemon of the memory runs, with its RSS once ready and before any input.
pub(crate) struct RssDaemon {
    label: String,
    proc: Proc,
    port: u16,
    rss_start: u64,
    done: Option<RssResult>,
}

/// The memory runs (module docs): one broker, one daemon per rule started
/// before the input is loaded, so each one's start-up RSS has no key in it.
pub(crate) fn rss_runs(o: &Opts, t: usize) -> Res<Vec<RssResult>> {
    let variants: Vec<Variant> = o
        .rss_rules
        .iter()
        .map(|rule| Variant {
            label: rule.to_string(),
            toml: format!("[anomalies]\nrule = \"{rule}\"\n"),
        })
        .collect();
    load_and_measure(o, t, o.rss_keys, o.rss_points.unwrap_or(t + 1), &variants)
}

/// The cost of the per-series gauges: for each of SERIES_KEYS key counts,
/// a daemon with `series_metrics` off and one with it on for every key
/// (`max_keys` = the key count), under the threshold rule.
pub(crate) fn series_runs(o: &Opts, t: usize) -> Res<Vec<RssResult>> {
    let mut out = vec![];
    for &keys in &o.series_keys {
        let variants = [
            Variant {
                label: "series-off".into(),
                toml: String::new(),
            },
            Variant {
                label: "series-on".into(),
                toml: format!("[series_metrics]\nenabled = true\nmax_keys = {keys}\n"),
            },
        ];
        out.extend(load_and_measure(o, t, keys, t + 1, &variants)?);
    }
    Ok(out)
}

/// Loads `keys` × `points` points into a fresh broker while one daemon per
/// variant drains them, and reads each daemon's memory and scrape once
/// every key is live.
fn load_and_measure(
    o: &Opts,
    t: usize,
    keys: usize,
    points: usize,
    variants: &[Variant],
) -> Res<Vec<RssResult>> {
    let expect = keys * (points + 1).saturating_sub(t);
    println!(
        "== memory: {keys} keys × {points} points = {} points JSON, {expect} windows; daemons {}",
        keys * points,
        variants
            .iter()
            .map(|v| v.label.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let broker = Broker::start(dir.path(), false);
    for (name, n) in [
        (POINTS_TOPIC, o.partitions),
        (EMB_TOPIC, o.partitions),
        (ANOM_TOPIC, 1),
        (DLQ_TOPIC, 1),
    ] {
        broker.create_topic(name, n);
    }
    let brokers = broker.brokers();
    let mut daemons = vec![];
    for v in variants {
        let label = &v.label;
        let port = free_port()?;
        let text = format!(
            "[serve]\nmodel = {model:?}\nmetrics_listen = \"127.0.0.1:{port}\"\n\n\
             [kafka]\ngroup_id = \"bench-rss-{label}\"\nembeddings_topic = \"{EMB_TOPIC}\"\n\
             anomalies_topic = \"{ANOM_TOPIC}\"\ndead_letter_topic = \"{DLQ_TOPIC}\"\n\n\
             [[kafka.inputs]]\ntopic = \"{POINTS_TOPIC}\"\nformat = \"points\"\n\n\
             {variant}\n{extra}\n",
            model = o.model.display().to_string(),
            variant = v.toml,
            extra = std::env::var("BENCH_SERVE_TOML").unwrap_or_default(),
        );
        let cfg = dir.path().join(format!("serve-{label}.toml"));
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
            label: label.clone(),
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
                return Err(format!("the {} daemon never became ready", d.label));
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
                        d.label
                    ));
                }
                continue;
            }
            // Every point read and every window out: every key is live, with
            // T − 1 points (or all of its points, with fewer than T).
            let (rss, hwm) = rss_bytes(d.proc.pid());
            if let Ok(dir) = std::env::var("BENCH_SMAPS") {
                // Where the memory is, mapping by mapping, for a closer look.
                let to = Path::new(&dir).join(format!("{}.smaps", d.label));
                let _ = std::fs::create_dir_all(&dir);
                let _ = std::fs::copy(format!("/proc/{}/smaps", d.proc.pid()), &to);
            }
            let r = RssResult {
                label: d.label.clone(),
                keys,
                points,
                windows: n,
                live_keys: metric(&body, "lstm_ae_live_series_keys"),
                likelihood_keys: metric(&body, "lstm_ae_likelihood_keys"),
                open_incidents: metric(&body, "lstm_ae_open_incidents"),
                rss_start: d.rss_start,
                rss,
                hwm,
                rss_settled: 0,
                secs: started.elapsed().as_secs_f64(),
                scrape_bytes: body.len(),
                series_lines: body
                    .lines()
                    .filter(|l| l.starts_with("lstm_ae_series_"))
                    .count(),
            };
            println!(
                "-- {}: {:.0} windows after {:.0} s; live keys {:.0}, likelihood keys {:.0}, \
                 open incidents {:.0}; VmRSS {:.1} MB (at start {:.1} MB), VmHWM {:.1} MB; {:.0} bytes per key; \
                 /metrics {} bytes, {} lstm_ae_series_* samples",
                r.label,
                r.windows,
                r.secs,
                r.live_keys,
                r.likelihood_keys,
                r.open_incidents,
                mb(r.rss),
                mb(r.rss_start),
                mb(r.hwm),
                r.per_key(),
                r.scrape_bytes,
                r.series_lines
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
                "-- {}: VmRSS {:.1} MB after 15 s idle",
                r.label,
                mb(r.rss_settled)
            );
        }
    }
    Ok(daemons.into_iter().filter_map(|d| d.done).collect())
}
impl RssResult {
    /// RSS growth from start-up per live key, bytes.
    pub(crate) fn per_key(&self) -> f64 {
        (self.rss as f64 - self.rss_start as f64) / self.live_keys.max(1.0)
    }
}
