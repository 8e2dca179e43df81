//! Reading training data back from the daemon's own input topics, for
//! `lstm-ae retrain --from-kafka` and `lstm-ae recalibrate --from-kafka`.
//!
//! The reader **never joins or commits for a consumer group**: it uses a
//! private throwaway `group.id` (librdkafka's assign needs one), assigns
//! partitions explicitly and stores or commits no offsets, so the
//! daemon's committed offsets cannot move (`tests/retrain.rs` reads them
//! before and after). It reads each partition from the offset of the first
//! message at or after `since` (ListOffsets by time, or the log start) to
//! the end offset taken when it starts, so a topic that keeps growing still
//! ends the read. Points are then kept by their *event* time (the body's
//! `ts`), in `[since, until)`, so the range is exact whatever the broker's
//! message timestamps say.
//!
//! Only the `points` format is read: a `windows` message carries no row
//! timestamps, so its rows cannot be placed in a series.
//!
//! The reader is built like every other client ([`super::config`],
//! [`Client::HistoryReader`]): a cluster secured by `[kafka.common]` and the
//! SASL password is read with them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ndarray::Array2;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use sha2::{Digest, Sha256};

use super::clients::{config, Client};
use super::read_to_end::{read_to_end, ReadError, Span};
use crate::config::KafkaSettings;
use crate::data::Series;
use crate::model::manifest::PartitionRange;
use crate::stream::codec::{self, Decoded, Format};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("input topic {topic} has format {format:?}; reading history needs `points` (a window message has no row timestamps)")]
    Format { topic: String, format: Format },
    #[error("input topic {0} does not exist or has no partitions")]
    NoTopic(String),
    #[error("reading history: {0}")]
    Read(#[from] ReadError),
    #[error("no points in the requested range ({0}) of {1}")]
    Empty(String, String),
    #[error("--offsets names partition {partition} of {topic}, which has partitions {have:?}")]
    NoPartition {
        topic: String,
        partition: i32,
        have: Vec<i32>,
    },
}

/// `--offsets`: read only these partitions, each over `[from, to)` (an
/// open end is the partition's start or its end offset when the read
/// starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetRange {
    /// `None`: the partition of every input topic.
    pub topic: Option<String>,
    pub partition: i32,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

/// An `--offsets` range that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OffsetsError {
    #[error("--offsets {0:?}: expected [TOPIC:]PARTITION=FROM..TO, e.g. 0=1000..5000 or lstm-ae.points:1=..900")]
    Syntax(String),
    #[error("--offsets {spec:?}: the range {from}..{to} is empty")]
    Empty { spec: String, from: i64, to: i64 },
}

/// Parses `[TOPIC:]PARTITION=FROM..TO` (either end may be left out).
pub fn parse_offsets(spec: &str) -> Result<OffsetRange, OffsetsError> {
    let bad = || OffsetsError::Syntax(spec.to_string());
    let (part, range) = spec.split_once('=').ok_or_else(bad)?;
    let (topic, partition) = match part.rsplit_once(':') {
        Some((t, p)) => (Some(t.to_string()), p),
        None => (None, part),
    };
    let partition: i32 = partition.trim().parse().map_err(|_| bad())?;
    let (from, to) = range.split_once("..").ok_or_else(bad)?;
    let end = |e: &str| -> Result<Option<i64>, OffsetsError> {
        match e.trim() {
            "" => Ok(None),
            v => v
                .parse::<i64>()
                .ok()
                .filter(|o| *o >= 0)
                .map(Some)
                .ok_or_else(bad),
        }
    };
    let (from, to) = (end(from)?, end(to)?);
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(OffsetsError::Empty {
                spec: spec.to_string(),
                from: f,
                to: t,
            });
        }
    }
    Ok(OffsetRange {
        topic,
        partition,
        from,
        to,
    })
}

/// Which series to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keys {
    /// Every key, pooled into one training set.
    All,
    /// One key.
    One(String),
    /// Keys matching a glob (`*` any run, `?` one character).
    Glob(String),
}

impl Keys {
    pub fn matches(&self, key: &str) -> bool {
        match self {
            Keys::All => true,
            Keys::One(k) => k == key,
            Keys::Glob(g) => glob(g.as_bytes(), key.as_bytes()),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Keys::All => "all".into(),
            Keys::One(k) => format!("key {k}"),
            Keys::Glob(g) => format!("keys {g}"),
        }
    }
}

/// Whether the whole of `s` matches the glob `p`. On a mismatch it goes
/// back only to the last `*` (which then takes one more byte): a later
/// star can absorb whatever an earlier one would have, so no earlier
/// choice needs trying again, and the steps stay within `|p| × |s|` where
/// trying every split among the stars is exponential.
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    // The last star's position in `p`, and where in `s` its run ends.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                pi += 1;
                si += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    star = Some((sp, ss + 1));
                    pi = sp + 1;
                    si = ss + 1;
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// What to read.
#[derive(Debug, Clone)]
pub struct Request {
    pub keys: Keys,
    /// Event time, epoch ms: keep points with `since <= ts < until`.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// Only these partitions and offsets (empty: every partition, to its end).
    pub offsets: Vec<OffsetRange>,
    /// Values per point (the model's F).
    pub features: usize,
    /// Longest the whole read may take.
    pub timeout: Duration,
}

/// The history read: one series per key, in key order.
pub struct History {
    pub series: Vec<Series>,
    pub partitions: Vec<PartitionRange>,
    pub topics: Vec<String>,
    /// Messages read, and those left out (other keys, outside the range,
    /// undecodable).
    pub messages: usize,
    pub skipped: usize,
}

/// Reads the points of `kafka.inputs` in the requested range.
pub fn read(kafka: &KafkaSettings, req: &Request) -> Result<History, HistoryError> {
    for input in &kafka.inputs {
        if input.format != Format::Points {
            return Err(HistoryError::Format {
                topic: input.topic.clone(),
                format: input.format,
            });
        }
    }
    let consumer: BaseConsumer = config(kafka, Client::HistoryReader).create()?;
    let started = Instant::now();
    let meta_timeout = Duration::from_secs(10);
    let mut ranges: Vec<PartitionRange> = vec![];
    for input in &kafka.inputs {
        let md = consumer.fetch_metadata(Some(&input.topic), meta_timeout)?;
        let parts: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == input.topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if parts.is_empty() {
            return Err(HistoryError::NoTopic(input.topic.clone()));
        }
        let asked: Vec<&OffsetRange> = req
            .offsets
            .iter()
            .filter(|o| o.topic.as_ref().is_none_or(|t| *t == input.topic))
            .collect();
        if let Some(o) = asked.iter().find(|o| !parts.contains(&o.partition)) {
            return Err(HistoryError::NoPartition {
                topic: input.topic.clone(),
                partition: o.partition,
                have: parts.clone(),
            });
        }
        for p in parts {
            let only = asked.iter().find(|o| o.partition == p);
            if !req.offsets.is_empty() && only.is_none() {
                continue;
            }
            let (low, high) = consumer.fetch_watermarks(&input.topic, p, meta_timeout)?;
            let high = only.and_then(|o| o.to).map_or(high, |t| t.clamp(low, high));
            // The first offset at or after `since` by message time, when the
            // broker answers; else the log start. Event times are filtered
            // below either way, so this only saves reading.
            let from = match req.since_ms {
                Some(since) => offset_for_time(&consumer, &input.topic, p, since, meta_timeout)
                    .map(|o| o.clamp(low, high))
                    .unwrap_or(low),
                None => low,
            };
            let from = only
                .and_then(|o| o.from)
                .map_or(from, |f| f.clamp(low, high).max(from));
            ranges.push(PartitionRange {
                topic: input.topic.clone(),
                partition: p,
                from,
                to: high,
            });
        }
    }
    let mut points: BTreeMap<String, Vec<(i64, Vec<f32>)>> = BTreeMap::new();
    let (mut messages, mut skipped) = (0usize, 0usize);
    let mut hasher = Sha256::new();
    let deadline = started + req.timeout;
    for input in &kafka.inputs {
        let spans: Vec<Span> = ranges
            .iter()
            .filter(|r| r.topic == input.topic)
            .map(|r| Span {
                partition: r.partition,
                from: r.from,
                to: r.to,
            })
            .collect();
        read_to_end(
            &consumer,
            &input.topic,
            &spans,
            deadline,
            req.timeout,
            |m| {
                messages += 1;
                let decoded = codec::decode(
                    Format::Points,
                    m.key(),
                    m.payload(),
                    req.features,
                    0,
                    kafka.max_message_bytes,
                );
                match decoded {
                    Ok(Decoded::Point { key, ts_ms, values })
                        if req.keys.matches(&key)
                            && req.since_ms.is_none_or(|s| ts_ms >= s)
                            && req.until_ms.is_none_or(|u| ts_ms < u) =>
                    {
                        hasher.update(key.as_bytes());
                        hasher.update(ts_ms.to_le_bytes());
                        for v in &values {
                            hasher.update(v.to_le_bytes());
                        }
                        points.entry(key).or_default().push((ts_ms, values));
                    }
                    _ => skipped += 1,
                }
            },
        )?;
    }
    let sha: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let topics: Vec<String> = kafka.inputs.iter().map(|i| i.topic.clone()).collect();
    if points.is_empty() {
        let range = format!(
            "{}, since {:?}, until {:?}",
            req.keys.describe(),
            req.since_ms.map(crate::data::format_timestamp),
            req.until_ms.map(crate::data::format_timestamp)
        );
        return Err(HistoryError::Empty(range, topics.join(", ")));
    }
    let feature_names: Vec<String> = if req.features == 1 {
        vec!["value".into()]
    } else {
        (0..req.features).map(|i| format!("value{i}")).collect()
    };
    let series = points
        .into_iter()
        .map(|(key, mut pts)| {
            // Partitions interleave; a key's points are ordered by event time,
            // and a repeated timestamp keeps the point read last.
            pts.sort_by_key(|(ts, _)| *ts);
            pts.dedup_by(|later, earlier| {
                if later.0 == earlier.0 {
                    std::mem::swap(later, earlier);
                    true
                } else {
                    false
                }
            });
            let flat: Vec<f32> = pts.iter().flat_map(|(_, v)| v.iter().copied()).collect();
            let values = Array2::from_shape_vec((pts.len(), req.features), flat)
                .unwrap_or_else(|_| Array2::zeros((0, req.features)));
            Series {
                path: PathBuf::from(format!("kafka:{key}")),
                timestamps: pts.iter().map(|(t, _)| *t).collect(),
                feature_names: feature_names.clone(),
                values,
                sha256: sha.clone(),
                filled: 0,
            }
        })
        .collect();
    Ok(History {
        series,
        partitions: ranges,
        topics,
        messages,
        skipped,
    })
}

fn offset_for_time(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    ts_ms: i64,
    timeout: Duration,
) -> Option<i64> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(ts_ms))
        .ok()?;
    let got = consumer.offsets_for_times(tpl, timeout).ok()?;
    let e = got.find_partition(topic, partition)?;
    match e.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_ranges_name_a_partition_and_optional_ends() {
        assert_eq!(
            parse_offsets("0=1000..5000"),
            Ok(OffsetRange {
                topic: None,
                partition: 0,
                from: Some(1000),
                to: Some(5000)
            })
        );
        assert_eq!(
            parse_offsets("lstm-ae.points:3=..900"),
            Ok(OffsetRange {
                topic: Some("lstm-ae.points".into()),
                partition: 3,
                from: None,
                to: Some(900)
            })
        );
        assert_eq!(parse_offsets("2=7..").unwrap().from, Some(7));
        for bad in ["0", "x=1..2", "0=5..5", "0=9..3", "0=-1..4", "0=1-2"] {
            assert!(parse_offsets(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_globs_match_whole_keys() {
        let g = Keys::Glob("pump-*".into());
        assert!(g.matches("pump-1") && g.matches("pump-") && !g.matches("xpump-1"));
        let q = Keys::Glob("m?c*t".into());
        assert!(q.matches("machine_t") && !q.matches("mct"));
        assert!(Keys::One("a".into()).matches("a") && !Keys::One("a".into()).matches("ab"));
    }

    /// Fifteen stars before a byte the key lacks, on a key of 200 bytes: a
    /// matcher that tries every split of the key among the stars takes
    /// about C(200, 15) ≈ 10²³ steps and never ends; backtracking to the
    /// last star only answers at once.
    #[test]
    fn a_pathological_key_glob_is_answered_in_linear_steps() {
        let pattern = format!("{}b", "*a".repeat(15));
        let key = "a".repeat(200);
        assert!(!Keys::Glob(pattern.clone()).matches(&key));
        assert!(Keys::Glob(pattern).matches(&format!("{key}b")));
        // The usual cases still hold under backtracking.
        assert!(Keys::Glob("*x*y".into()).matches("axbxcy"));
        assert!(!Keys::Glob("*x*y".into()).matches("axbxcyz"));
        assert!(Keys::Glob("a*".into()).matches("a") && Keys::Glob("*".into()).matches(""));
        assert!(!Keys::Glob("?".into()).matches(""));
    }
}
