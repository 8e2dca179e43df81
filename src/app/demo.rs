//! `lstm-ae demo`: the whole daemon on one machine with nothing installed
//! but ONNX Runtime. An embedded Kafka (librdkafka's mock cluster, which
//! speaks the real protocol on 127.0.0.1) gets a labelled NAB series
//! replayed into its input topic as `produce` replays one; the same daemon
//! as `serve` scores it; incidents are printed as they open and close,
//! beside the labelled windows.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Result;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::FutureProducer;
use rdkafka::Message;

use super::produce;
use crate::cli::DemoArgs;
use crate::config::Settings;
use crate::data;
use crate::kafka::{self, Client};
use crate::serve::{Daemon, DaemonConfig};
use crate::telemetry::Metrics;

/// `lstm-ae demo`: the settings with the demo's model and metrics address,
/// the replay, and a summary line.
pub fn run(a: DemoArgs) -> Result<()> {
    let mut s = Settings::load(a.config.as_deref())?;
    s.serve.model = a.model.to_string_lossy().into_owned();
    s.serve.metrics_listen = a.metrics_listen;
    s.validate()?;
    crate::telemetry::logging::init(s.log.format, &s.log.level);
    let opts = DemoOptions {
        labels: a.labels.exists().then_some(a.labels),
        data: a.data,
        speed: a.speed,
        settings: s,
    };
    let d = super::process::runtime()?.block_on(replay(opts))?;
    println!(
        "summary: {} rows → {} windows scored, {} anomalous in {} incidents ({} records published), labelled windows caught: {} of {}, {:.0} windows/s",
        d.rows,
        d.windows,
        d.anomalous_windows,
        d.incidents.len(),
        d.records,
        d.labelled_caught,
        d.labelled,
        d.windows as f64 / d.seconds.max(1e-9)
    );
    for i in &d.incidents {
        println!(
            "  incident {} .. {}  {}, peak {} at {}{}",
            i.start,
            i.end,
            super::count(i.windows, "anomalous window", "anomalous windows"),
            i.peak,
            i.peak_ts,
            if i.closed {
                ""
            } else {
                " (open when the demo stopped)"
            }
        );
    }
    Ok(())
}

/// What to replay and how fast.
pub struct DemoOptions {
    pub data: PathBuf,
    pub labels: Option<PathBuf>,
    /// Rows per second; 0 = as fast as the pipeline takes them.
    pub speed: f64,
    pub settings: Settings,
}

/// The demo's closing figures.
#[derive(Debug)]
pub struct DemoSummary {
    pub rows: usize,
    pub windows: u64,
    pub anomalous_windows: u64,
    /// Records read from the anomalies topic.
    pub records: usize,
    /// The incidents, in the order they opened.
    pub incidents: Vec<DemoIncident>,
    pub labelled: usize,
    pub labelled_caught: usize,
    pub seconds: f64,
}

/// One incident as its records on the anomalies topic tell it.
#[derive(Debug, Clone)]
pub struct DemoIncident {
    pub id: String,
    /// First and last anomalous windows' ends, RFC 3339.
    pub start: String,
    pub end: String,
    pub windows: u64,
    /// The peak as the rule rates it (`2.10× threshold`, `likelihood 0.912`).
    pub peak: String,
    pub peak_ts: String,
    pub closed: bool,
}

impl DemoIncident {
    /// The incident as of one of its records.
    fn from_record(v: &serde_json::Value) -> Self {
        let text = |f: &str| v[f].as_str().unwrap_or_default().to_string();
        let peak = match v["peak_anomaly_likelihood"].as_f64() {
            Some(l) => format!("likelihood {l:.3}"),
            None => format!(
                "{:.2}× threshold",
                v["peak_normalized_score"].as_f64().unwrap_or(0.0)
            ),
        };
        DemoIncident {
            id: text("incident_id"),
            start: text("first_window_end_ts"),
            end: text("last_window_end_ts"),
            windows: v["windows"].as_u64().unwrap_or(0),
            peak,
            peak_ts: text("peak_ts"),
            closed: v["state"] == "close",
        }
    }
}

fn labelled_windows(labels: &std::path::Path, data: &std::path::Path) -> Result<Vec<(i64, i64)>> {
    let all = data::labels::load_windows(labels)?;
    Ok(data::labels::windows_for(&all, data)
        .map(|(_, w)| w.to_vec())
        .unwrap_or_default())
}

/// Replays the series through the daemon on an embedded Kafka and
/// prints the incidents as they open and close.
pub async fn replay(opts: DemoOptions) -> Result<DemoSummary> {
    let series = produce::load(&opts.data)?;
    let labelled = match &opts.labels {
        Some(l) => labelled_windows(l, &opts.data)?,
        None => vec![],
    };
    let cluster = MockCluster::new(1)?;
    let brokers = cluster.bootstrap_servers();
    let mut settings = opts.settings;
    settings.kafka.brokers = brokers.clone();
    settings.kafka.group_id = "lstm-ae-demo".into();
    settings.kafka.statistics_interval_ms = 1000;
    let input = settings.kafka.inputs[0].topic.clone();
    for t in [
        &input,
        &settings.kafka.embeddings_topic,
        &settings.kafka.anomalies_topic,
        &settings.kafka.dead_letter_topic,
    ] {
        cluster.create_topic(t, 1, 1)?;
    }
    println!(
        "embedded Kafka (librdkafka mock cluster) at {brokers}; replaying {} rows of {}",
        series.rows(),
        opts.data.display()
    );
    for (a, b) in &labelled {
        println!(
            "  labelled anomaly window {} .. {}",
            data::format_timestamp(*a),
            data::format_timestamp(*b)
        );
    }

    let metrics = Metrics::new();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let pipeline = {
        let metrics = metrics.clone();
        tokio::spawn(
            Daemon::new(DaemonConfig::from(&settings))
                .metrics(metrics)
                .on_listen(|addr| println!("metrics: http://{addr}/metrics"))
                .run(async {
                    let _ = stop_rx.await;
                }),
        )
    };

    // Print incidents as they open and close.
    let printer: StreamConsumer = kafka::config(&settings.kafka, Client::Printer).create()?;
    printer.subscribe(&[settings.kafka.anomalies_topic.as_str()])?;
    let labelled_for_printer = labelled.clone();
    let (stop_printer, mut printer_stop) = tokio::sync::oneshot::channel::<()>();
    let printed = tokio::spawn(async move {
        let mut caught = vec![false; labelled_for_printer.len()];
        let mut records = 0usize;
        let mut incidents: Vec<DemoIncident> = vec![];
        loop {
            let m = tokio::select! {
                _ = &mut printer_stop => break,
                m = printer.recv() => match m {
                    Ok(m) => m,
                    Err(_) => break,
                },
            };
            let Some(Ok(v)) = m.payload().map(serde_json::from_slice::<serde_json::Value>) else {
                continue;
            };
            records += 1;
            let i = DemoIncident::from_record(&v);
            let ms = |t: &str| data::parse_timestamp(t).unwrap_or(i64::MIN);
            let (from, to) = (ms(&i.start), ms(&i.end));
            // A labelled window is caught when an incident overlaps it.
            let mut inside = false;
            for (c, &(a, b)) in caught.iter_mut().zip(&labelled_for_printer) {
                if from <= b && to >= a {
                    *c = true;
                    inside = true;
                }
            }
            let mark = if inside {
                "  [overlaps a labelled window]"
            } else {
                ""
            };
            match v["state"].as_str().unwrap_or_default() {
                "open" => println!(
                    "incident open   {}  from window ending {}  {}{mark}",
                    v["key"].as_str().unwrap_or_default(),
                    i.start,
                    i.peak
                ),
                "close" => println!(
                    "incident close  {}  {} .. {}  {}, peak {} at {}{mark}",
                    v["key"].as_str().unwrap_or_default(),
                    i.start,
                    i.end,
                    super::count(i.windows, "anomalous window", "anomalous windows"),
                    i.peak,
                    i.peak_ts
                ),
                _ => {}
            }
            match incidents.iter_mut().find(|o| o.id == i.id) {
                Some(o) => *o = i,
                None => incidents.push(i),
            }
        }
        (records, incidents, caught)
    });

    // Replay the series as points.
    let producer: FutureProducer = kafka::config(&settings.kafka, Client::Replay).create()?;
    let key = produce::series_key(&opts.data, None);
    let started = Instant::now();
    produce::send(
        &producer,
        &input,
        &key,
        &produce::points(&series, &key),
        opts.speed,
    )
    .await?;
    // Done when every row was consumed and every window acknowledged.
    let consumed = metrics
        .messages_consumed
        .with_label_values(&[input.as_str()]);
    let give_up = Instant::now() + Duration::from_secs(600);
    while consumed.get() < series.rows() as u64 || metrics.windows_in_flight.get() > 0 {
        if Instant::now() > give_up {
            anyhow::bail!(
                "the pipeline did not finish within 10 minutes ({} of {} rows consumed)",
                consumed.get(),
                series.rows()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    let summary = pipeline.await??;
    // Let the printer catch up with the last published records.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = stop_printer.send(());
    let (records, incidents, caught) = printed.await?;
    Ok(DemoSummary {
        rows: series.rows(),
        windows: summary.windows,
        anomalous_windows: metrics.anomalies.get(),
        records,
        incidents,
        labelled: labelled.len(),
        labelled_caught: caught.iter().filter(|&&c| c).count(),
        seconds,
    })
}
