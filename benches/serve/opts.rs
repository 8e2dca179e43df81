//! The bench's settings, from `BENCH_*` variables (main.rs lists them), and
//! its throughput modes.

use std::path::{Path, PathBuf};

use lstm_ae::config::ServeSettings;

use super::Res;

#[derive(Clone, Copy, PartialEq, Debug)]
pub(crate) enum Mode {
    Points,
    Binary,
    Paced,
    /// Paced, with the daemon's consumer `fetch.wait.max.ms` at 10.
    PacedFetch10,
}

impl Mode {
    pub(crate) fn is_paced(self) -> bool {
        matches!(self, Mode::Paced | Mode::PacedFetch10)
    }

    pub(crate) fn file_name(self) -> &'static str {
        match self {
            Mode::Points => "points",
            Mode::Binary => "binary",
            Mode::Paced => "paced",
            Mode::PacedFetch10 => "paced-fetch10",
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Points => "points backlog",
            Mode::Binary => "binary backlog",
            Mode::Paced => "points paced",
            Mode::PacedFetch10 => "points paced, fetch.wait.max.ms 10",
        }
    }
}

pub(crate) struct Opts {
    pub(crate) keys: usize,
    pub(crate) points: usize,
    pub(crate) threads: Vec<usize>,
    pub(crate) modes: Vec<Mode>,
    /// Paced points/s; `None`: half of the same thread count's `points`
    /// backlog windows/s (`BENCH_RATE=half`).
    pub(crate) rate: Option<f64>,
    pub(crate) max_batch: usize,
    pub(crate) partitions: u32,
    pub(crate) ort_secs: f64,
    pub(crate) model: PathBuf,
    /// Anomaly rules of the memory runs (`keys100k…` modes).
    pub(crate) rss_rules: Vec<&'static str>,
    pub(crate) rss_keys: usize,
    /// Points per key of the memory runs; `None`: T + 1.
    pub(crate) rss_points: Option<usize>,
    /// Key counts of the per-series gauge runs (`series-keys` mode).
    pub(crate) series_keys: Vec<usize>,
    /// The interpreter that runs `benches/python_service.py` beside each
    /// `points` backlog run, if any.
    pub(crate) python: Option<String>,
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
    pub(crate) fn from_env() -> Res<Opts> {
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
        let mut series_runs = false;
        for m in modes.split(',') {
            match m.trim() {
                "points" => throughput.push(Mode::Points),
                "binary" => throughput.push(Mode::Binary),
                "paced" => throughput.push(Mode::Paced),
                "paced-fetch10" => throughput.push(Mode::PacedFetch10),
                "keys100k" => rss_rules.extend(["threshold", "likelihood"]),
                "keys100k-threshold" => rss_rules.push("threshold"),
                "keys100k-likelihood" => rss_rules.push("likelihood"),
                "series-keys" => series_runs = true,
                o => {
                    return Err(format!(
                        "BENCH_MODES: unknown mode {o} (points, binary, paced, paced-fetch10, \
                         keys100k, keys100k-threshold, keys100k-likelihood, series-keys)"
                    ))
                }
            }
        }
        let rss_points = match std::env::var("BENCH_RSS_POINTS") {
            Ok(_) => Some(env_or("BENCH_RSS_POINTS", 0)?),
            Err(_) => None,
        };
        let series_keys = if series_runs {
            let list = std::env::var("BENCH_SERIES_KEYS").unwrap_or_else(|_| "1000,10000".into());
            list.split(',')
                .map(|s| s.trim().parse::<usize>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| format!("BENCH_SERIES_KEYS={list}: a list like 1000,10000"))?
        } else {
            vec![]
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
            series_keys,
            python: match std::env::var("BENCH_PYTHON").as_deref() {
                Err(_) | Ok("") | Ok("0") => None,
                Ok("1") => Some("python3".into()),
                Ok(p) => Some(p.into()),
            },
        })
    }
}
