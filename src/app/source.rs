//! Where `retrain` and `recalibrate` read recent history: a CSV (as
//! `train` reads it) or the daemon's input topics ([`crate::kafka::history`]),
//! cut to a time range and a key selection.

use std::path::PathBuf;

use anyhow::{bail, Result};
use ndarray::Axis;

use crate::cli::SourceArgs;
use crate::config::Settings;
use crate::data::{self, Series};
use crate::kafka::history::{self, Keys};
use crate::model::manifest::DataSource;

/// Where the history comes from.
#[derive(Debug, Clone, Default)]
pub struct SourceOptions {
    /// A CSV file.
    pub csv: Option<PathBuf>,
    /// The input topics of `[kafka]`.
    pub from_kafka: bool,
    /// `--since` / `--until` (see [`data::time::parse_instant`]).
    pub since: Option<String>,
    pub until: Option<String>,
    /// One key (`--key`) or a glob (`--keys`); neither = all keys pooled.
    pub key: Option<String>,
    pub keys: Option<String>,
    /// `--offsets [TOPIC:]PARTITION=FROM..TO` (see [`history::parse_offsets`]).
    pub offsets: Vec<String>,
    /// `--feedback FILE`: operator marks from a file.
    pub feedback: Option<PathBuf>,
}

impl From<&SourceArgs> for SourceOptions {
    fn from(a: &SourceArgs) -> SourceOptions {
        SourceOptions {
            csv: a.data.clone(),
            from_kafka: a.from_kafka,
            since: a.since.clone(),
            until: a.until.clone(),
            key: a.key.clone(),
            keys: a.keys.clone(),
            offsets: a.offsets.clone(),
            feedback: a.feedback.clone(),
        }
    }
}

/// Training data, loaded.
pub struct Loaded {
    pub series: Vec<Series>,
    pub source: DataSource,
    /// `training_data.file` in the manifest.
    pub name: String,
}

/// Loads the series a retrain or recalibration uses; `features` is the
/// live model's F (Kafka points carry no column names).
pub fn load(settings: &Settings, src: &SourceOptions, features: usize) -> Result<Loaded> {
    let now = chrono::Utc::now().timestamp_millis();
    let time = |s: &Option<String>, what: &str| -> Result<Option<i64>> {
        s.as_deref()
            .map(|v| data::time::parse_instant(v, now))
            .transpose()
            .map_err(|e| anyhow::anyhow!("--{what}: {e}"))
    };
    let (since_ms, until_ms) = (time(&src.since, "since")?, time(&src.until, "until")?);
    match (&src.csv, src.from_kafka) {
        (Some(_), true) => bail!("give --data or --from-kafka, not both"),
        (None, false) => bail!("give the history: --data FILE.csv or --from-kafka"),
        (Some(path), false) => {
            if src.key.is_some() || src.keys.is_some() {
                bail!("--key/--keys select Kafka keys; a CSV is one series");
            }
            let mut s = data::load_csv(path, &settings.data.csv_options())?;
            // The same [since, until) rule as for Kafka, on the CSV's timestamps.
            let keep: Vec<usize> = (0..s.rows())
                .filter(|&r| {
                    let t = s.timestamps[r];
                    since_ms.is_none_or(|x| t >= x) && until_ms.is_none_or(|x| t < x)
                })
                .collect();
            if keep.len() != s.rows() {
                s.values = s.values.select(Axis(0), &keep);
                s.timestamps = keep.iter().map(|&r| s.timestamps[r]).collect();
            }
            Ok(Loaded {
                name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                source: DataSource::Csv {
                    path: path.display().to_string(),
                },
                series: vec![s],
            })
        }
        (None, true) => {
            let keys = match (&src.key, &src.keys) {
                (Some(_), Some(_)) => bail!("give --key or --keys, not both"),
                (Some(k), None) => Keys::One(k.clone()),
                (None, Some(g)) => Keys::Glob(g.clone()),
                (None, None) => Keys::All,
            };
            let req = history::Request {
                keys: keys.clone(),
                since_ms,
                until_ms,
                offsets: src
                    .offsets
                    .iter()
                    .map(|o| history::parse_offsets(o))
                    .collect::<Result<_, _>>()?,
                features,
                timeout: std::time::Duration::from_millis(settings.retrain.kafka_timeout_ms),
            };
            let h = history::read(&settings.kafka, &req)?;
            tracing::info!(
                messages = h.messages,
                skipped = h.skipped,
                series = h.series.len(),
                "history read from kafka"
            );
            Ok(Loaded {
                name: format!("kafka:{}", h.topics.join(",")),
                source: DataSource::Kafka {
                    topics: h.topics,
                    keys: match keys {
                        Keys::All => "all".into(),
                        Keys::One(k) => k,
                        Keys::Glob(g) => g,
                    },
                    since_ms,
                    until_ms,
                    partitions: h.partitions,
                    series: h.series.len(),
                },
                series: h.series,
            })
        }
    }
}
