//! The load generator: KEYS one-feature series, produced as `points` JSON or
//! pre-cut `binary_windows`, as a backlog or paced; and the embeddings read
//! back with the producer timestamps that throughput and latency come from.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lstm_ae::stream::codec::encode_binary_window;
use lstm_ae::stream::records::format_ts_ms;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::common::broker::TopicReader;
use super::common::now_ms;
use super::opts::{Mode, Opts};
use super::{Res, EMB_TOPIC, POINTS_TOPIC, STEP_MS, T0, WINDOWS_TOPIC};

pub(crate) fn key(k: usize) -> String {
    format!("machine-{k:04}")
}

pub(crate) fn ts(i: usize) -> i64 {
    T0 + STEP_MS * i as i64
}

pub(crate) fn value(k: usize, i: usize) -> f32 {
    (86.0 + 5.0 * ((i as f64) * 0.13 + k as f64).sin() + 0.3 * ((i * 7 + k) % 11) as f64 / 11.0)
        as f32
}

pub(crate) fn point_json(k: usize, i: usize) -> Vec<u8> {
    format!(
        "{{\"key\":\"{}\",\"ts\":{},\"value\":{}}}",
        key(k),
        ts(i),
        value(k, i)
    )
    .into_bytes()
}

pub(crate) fn producer(brokers: &str, linger_ms: u32) -> Res<BaseProducer> {
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
pub(crate) fn send(
    p: &BaseProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    ts_ms: i64,
) -> Res<()> {
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
pub(crate) type Completions = HashMap<(String, String), i64>;

/// Loads the whole input as fast as the broker takes it; returns the
/// completion timestamps and the seconds taken.
pub(crate) fn load(brokers: &str, mode: Mode, o: &Opts, t: usize) -> Res<(Completions, f64)> {
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
pub(crate) fn paced(
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

/// An embeddings record: (key, window end, producer timestamp).
pub(crate) type Output = (String, String, i64);

/// Every embeddings record on the topic, read to its end.
pub(crate) fn read_outputs(brokers: &str) -> Res<Vec<Output>> {
    let mut reader = TopicReader::new(brokers, EMB_TOPIC);
    let mut out = Vec::new();
    let mut bad = None;
    reader.read_to_end(Duration::from_secs(60), |r| {
        match serde_json::from_slice::<serde_json::Value>(&r.payload) {
            Ok(v) => {
                let end = v["window_end_ts"].as_str().unwrap_or_default().to_string();
                let k = v["key"].as_str().unwrap_or_default().to_string();
                out.push((k, end, r.timestamp_ms.unwrap_or(0)));
            }
            Err(e) => bad = Some(e.to_string()),
        }
    });
    match bad {
        Some(e) => Err(format!("an embeddings record is not JSON: {e}")),
        None => Ok(out),
    }
}

/// Distinct (key, window end) pairs among `outputs`.
pub(crate) fn distinct(outputs: &[Output]) -> usize {
    let mut s: Vec<_> = outputs.iter().map(|(k, e, _)| (k, e)).collect();
    s.sort();
    s.dedup();
    s.len()
}

/// Windows/s: (outputs − 1) / (last − first producer timestamp).
pub(crate) fn windows_per_s(outputs: &[Output]) -> f64 {
    let lo = outputs.iter().map(|o| o.2).min().unwrap_or(0);
    let hi = outputs.iter().map(|o| o.2).max().unwrap_or(0);
    let span_s = (hi - lo) as f64 / 1000.0;
    if span_s > 0.0 {
        (outputs.len() - 1) as f64 / span_s
    } else {
        f64::NAN
    }
}
