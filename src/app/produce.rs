//! `lstm-ae produce`: replays a CSV into a Kafka topic in one of the
//! daemon's input formats, so users can try the daemon on their own Kafka
//! (and `docker compose` has a replayer). The wire formats are
//! [`crate::stream::codec`]'s encoders; this module only cuts rows into
//! messages and paces them.
//!
//! Every message is keyed by the series key (one partition per key, so a
//! key's points stay in order, as the daemon requires). Delivery is waited
//! for: the command exits 0 only when the broker acknowledged every message.
//! The demo replays its series with the same code ([`points`], [`send`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use crate::cli::ProduceArgs;
use crate::config::{KafkaSettings, Settings};
use crate::data::{self, CsvOptions, Series, TimestampOrder};
use crate::kafka::{self, Client};
use crate::stream::codec::{self, Format};

/// Deliveries awaited at most at once: a bound on memory for any file size.
const MAX_IN_FLIGHT: usize = 10_000;

/// `lstm-ae produce`: the settings, then the flags over them.
pub fn run(a: ProduceArgs) -> Result<()> {
    let mut s = Settings::load(a.config.as_deref())?;
    if let Some(b) = a.brokers {
        s.kafka.brokers = b;
    }
    let input = s.kafka.inputs.first().cloned();
    let topic = a
        .topic
        .or_else(|| input.as_ref().map(|i| i.topic.clone()))
        .context("no --topic and no kafka.inputs")?;
    let format = a
        .format
        .or_else(|| input.as_ref().map(|i| i.format))
        .unwrap_or(Format::Points);
    let opts = ProduceOptions {
        file: a.file,
        kafka: s.kafka,
        topic: topic.clone(),
        format,
        key: a.key,
        rate: a.rate,
        retime: a.retime,
        window: a.window,
        stride: a.stride,
    };
    let file = opts.file.display().to_string();
    let p = super::process::runtime()?.block_on(replay(opts))?;
    println!(
        "produced {} messages ({} rows of {file}) to {topic} in {:.1} s",
        p.messages, p.rows, p.seconds
    );
    Ok(())
}

/// What to replay, where, and how.
pub struct ProduceOptions {
    /// CSV: a timestamp column and numeric columns (as for `train`).
    pub file: PathBuf,
    /// Brokers and the clients' properties (TLS, SASL).
    pub kafka: KafkaSettings,
    pub topic: String,
    pub format: Format,
    /// Series key (in the body and as the Kafka key); default: the file stem.
    pub key: Option<String>,
    /// Messages per second; 0 = as fast as the broker takes them.
    pub rate: f64,
    /// Points stamped with the time each is due ([`retime`]), not the file's.
    pub retime: bool,
    /// Window length T (`windows`, `binary_windows`).
    pub window: usize,
    /// Rows between window starts (`windows`, `binary_windows`).
    pub stride: usize,
}

/// What was sent.
#[derive(Debug, PartialEq)]
pub struct ProduceSummary {
    pub rows: usize,
    pub messages: usize,
    pub seconds: f64,
}

/// The rows of the file and every message of the replay, in order.
pub fn messages(opts: &ProduceOptions) -> Result<(usize, Vec<Vec<u8>>)> {
    let mut series = load(&opts.file)?;
    if opts.retime {
        if opts.format != Format::Points {
            bail!("--retime stamps points: use it with --format points");
        }
        if !(opts.rate >= 1.0 && opts.rate <= 1000.0) {
            bail!("--retime needs --rate from 1 to 1000: a point is stamped with the millisecond it is due");
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("the system clock is before 1970")?
            .as_millis() as i64;
        retime(&mut series.timestamps, now, opts.rate);
    }
    let key = series_key(&opts.file, opts.key.as_deref());
    let rows = series.rows();
    let f = series.values.ncols();
    let row = |r: usize| series.values.row(r).to_vec();
    let out = match opts.format {
        Format::Points => points(&series, &key),
        Format::Windows | Format::BinaryWindows => {
            let (t, s) = (opts.window, opts.stride);
            if t == 0 || s == 0 {
                bail!("--window and --stride must be at least 1");
            }
            if rows < t {
                bail!(
                    "{} has {rows} rows, fewer than one window of {t}",
                    opts.file.display()
                );
            }
            let mut out = vec![];
            for start in (0..=rows - t).step_by(s) {
                let end = start + t - 1;
                let values: Vec<f32> = (start..=end).flat_map(row).collect();
                let (t0, t1) = (series.timestamps[start], series.timestamps[end]);
                out.push(if opts.format == Format::Windows {
                    codec::encode_window(&key, t0, t1, t, f, &values)?
                } else {
                    codec::encode_binary_window(&key, t1, t, f, &values)?
                });
            }
            out
        }
    };
    Ok((rows, out))
}

/// Row `i` stamped at `start_ms` + (i + 1) / `rate` s, when [`send`] sends
/// it: the replay's own clock instead of the file's. The file's order is
/// kept; its spacing is not.
pub fn retime(timestamps: &mut [i64], start_ms: i64, rate: f64) {
    for (i, ts) in timestamps.iter_mut().enumerate() {
        *ts = start_ms + ((i + 1) as f64 * 1000.0 / rate).floor() as i64;
    }
}

/// The CSV's rows as they are: the daemon counts out-of-order points.
pub fn load(file: &Path) -> Result<Series> {
    Ok(data::load_csv(
        file,
        &CsvOptions {
            timestamp_order: TimestampOrder::Unchecked,
            ..CsvOptions::default()
        },
    )?)
}

/// One `points` message per row of `series`, keyed `key`.
pub fn points(series: &Series, key: &str) -> Vec<Vec<u8>> {
    (0..series.rows())
        .map(|r| codec::encode_point(key, series.timestamps[r], &series.values.row(r).to_vec()))
        .collect()
}

/// `key`, or else the file name without extension.
pub fn series_key(file: &Path, key: Option<&str>) -> String {
    key.map(str::to_string).unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "series".into())
    })
}

/// Sends every message and waits for the broker's acknowledgements.
pub async fn replay(opts: ProduceOptions) -> Result<ProduceSummary> {
    if !(opts.rate >= 0.0 && opts.rate.is_finite()) {
        bail!("--rate must be a number ≥ 0 (0 = as fast as possible)");
    }
    let (rows, payloads) = messages(&opts)?;
    let key = series_key(&opts.file, opts.key.as_deref());
    let producer: FutureProducer = kafka::config(&opts.kafka, Client::Replay)
        .create()
        .context("creating the Kafka producer")?;
    let started = Instant::now();
    send(&producer, &opts.topic, &key, &payloads, opts.rate).await?;
    Ok(ProduceSummary {
        rows,
        messages: payloads.len(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Sends `payloads` to `topic` under `key`, `rate` a second (0: as fast as
/// the broker takes them), and waits until the broker has acknowledged
/// every one.
pub async fn send(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payloads: &[Vec<u8>],
    rate: f64,
) -> Result<()> {
    let started = Instant::now();
    let mut pending = Vec::with_capacity(MAX_IN_FLIGHT.min(payloads.len()));
    for (i, payload) in payloads.iter().enumerate() {
        let send = producer
            .send_result(FutureRecord::to(topic).key(key).payload(payload))
            .map_err(|(e, _)| e)
            .with_context(|| format!("queueing message {i} for {topic}"))?;
        pending.push(send);
        if pending.len() >= MAX_IN_FLIGHT {
            settle(&mut pending, topic).await?;
        }
        if rate > 0.0 {
            let due = Duration::from_secs_f64((i + 1) as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    settle(&mut pending, topic).await
}

async fn settle(pending: &mut Vec<DeliveryFuture>, topic: &str) -> Result<()> {
    for d in pending.drain(..) {
        d.await
            .context("the producer was dropped before delivery")?
            .map_err(|(e, _)| e)
            .with_context(|| format!("delivering to {topic}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(file: PathBuf, format: Format) -> ProduceOptions {
        ProduceOptions {
            file,
            kafka: KafkaSettings::default(),
            topic: "t".into(),
            format,
            key: None,
            rate: 0.0,
            retime: false,
            window: 3,
            stride: 2,
        }
    }

    #[test]
    fn retimed_points_are_due_one_per_rate_interval_from_the_start() {
        let mut ts = vec![1_000, 5_000, 2_000, 9_000];
        retime(&mut ts, 1_700_000_000_000, 50.0);
        assert_eq!(ts, [20, 40, 60, 80].map(|d| 1_700_000_000_000 + d).to_vec());
        // At the highest rate the stamps still increase by a millisecond.
        let mut ts = vec![0; 3];
        retime(&mut ts, 0, 1000.0);
        assert_eq!(ts, [1, 2, 3]);
    }

    #[test]
    fn retime_refuses_windows_and_rates_it_cannot_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pump.csv");
        std::fs::write(&file, "timestamp,a\n2026-01-01 00:00:00,1\n").unwrap();
        let mut o = opts(file, Format::Windows);
        o.retime = true;
        o.rate = 50.0;
        let e = messages(&o).unwrap_err().to_string();
        assert!(e.contains("--format points"), "{e}");
        o.format = Format::Points;
        for rate in [0.0, 0.5, 2000.0] {
            o.rate = rate;
            let e = messages(&o).unwrap_err().to_string();
            assert!(e.contains("--rate from 1 to 1000"), "{rate}: {e}");
        }
    }

    #[test]
    fn windows_are_cut_from_the_rows_by_window_and_stride() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pump.csv");
        let mut csv = String::from("timestamp,a,b\n");
        for r in 0..7 {
            csv.push_str(&format!("2026-01-01 00:00:0{r},{r},{}\n", 10 * r));
        }
        std::fs::write(&file, csv).unwrap();
        let (rows, msgs) = messages(&opts(file.clone(), Format::Windows)).unwrap();
        assert_eq!(rows, 7);
        // Starts 0, 2, 4: three windows of 3 rows (rows 5 and 6 start none).
        assert_eq!(msgs.len(), 3);
        let last: serde_json::Value = serde_json::from_slice(&msgs[2]).unwrap();
        assert_eq!(last["key"], "pump");
        assert_eq!(
            last["values"],
            serde_json::json!([[4.0, 40.0], [5.0, 50.0], [6.0, 60.0]])
        );
        let (_, bin) = messages(&opts(file.clone(), Format::BinaryWindows)).unwrap();
        assert_eq!(bin.len(), 3);
        let d = codec::decode(Format::BinaryWindows, None, Some(&bin[1]), 2, 3, 1 << 20).unwrap();
        assert_eq!(
            d,
            codec::Decoded::Window {
                key: "pump".into(),
                // 2026-01-01T00:00:04Z
                end_ts_ms: 1_767_225_604_000,
                start_ts_ms: None,
                values: vec![2.0, 20.0, 3.0, 30.0, 4.0, 40.0],
            }
        );
        let (_, points) = messages(&opts(file, Format::Points)).unwrap();
        assert_eq!(points.len(), 7);
    }

    #[test]
    fn a_file_shorter_than_a_window_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("short.csv");
        std::fs::write(&file, "timestamp,v\n1,1\n2,2\n").unwrap();
        let e = messages(&opts(file, Format::Windows)).unwrap_err();
        assert!(e.to_string().contains("fewer than one window of 3"), "{e}");
    }
}
