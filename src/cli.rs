//! Command-line interface: `train`, `score`, `inspect`, `eval nab`. Errors end the
//! process with one readable line (and its causes) and exit code 1; usage
//! errors exit 2.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::{AnomalyRule, Settings};
use crate::infer::{score, OnnxBackend};
use crate::model::{Activation, Bundle, DecoderInput, Mode};
use crate::train::fit::{EpochStats, Progress};
use crate::train::pipeline;

#[derive(Parser)]
#[command(
    name = "lstm-ae",
    version,
    about = "Composite LSTM autoencoder: train, export to ONNX, score"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on a CSV series and write a bundle (model.onnx, manifest.json, report/).
    Train(TrainArgs),
    /// Score every window of a CSV with a bundle; writes a CSV and charts.
    Score(ScoreArgs),
    /// Run the daemon: Kafka in, ONNX Runtime, Kafka out, /metrics.
    Serve {
        /// TOML settings (see deploy/serve.example.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Model bundle folder (overrides serve.model).
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Everything on one machine: an embedded Kafka, the default model, a
    /// labelled NAB series replayed through the daemon's pipeline.
    Demo {
        /// TOML settings; Kafka brokers are replaced by the embedded cluster.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Model bundle folder.
        #[arg(long, default_value = "models/machine_temperature")]
        model: PathBuf,
        /// Series to replay.
        #[arg(
            long,
            default_value = "data/nab/realKnownCause/machine_temperature_system_failure.csv"
        )]
        data: PathBuf,
        /// NAB windows file with the series' labelled anomalies.
        #[arg(long, default_value = "data/nab/combined_windows.json")]
        labels: PathBuf,
        /// Rows per second to replay; 0 = as fast as the pipeline goes.
        #[arg(long, default_value_t = 0.0)]
        speed: f64,
        /// Address of the metrics endpoint.
        #[arg(long, default_value = "127.0.0.1:9898")]
        metrics_listen: String,
    },
    /// Print a bundle's manifest for humans.
    Inspect {
        /// Bundle folder.
        dir: PathBuf,
        /// Print the raw manifest.json instead.
        #[arg(long)]
        json: bool,
    },
    /// Evaluate the detector on a benchmark.
    Eval {
        #[command(subcommand)]
        bench: EvalCommand,
    },
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Stream every NAB series (train on the probation, score causally),
    /// write NAB's results tree and a report, print the three profile scores.
    Nab(EvalNabArgs),
}

#[derive(clap::Args)]
struct EvalNabArgs {
    /// NAB corpus: a NAB checkout (data/, labels/, config/) or the flat
    /// copy in this repository (data/nab: <category>/*.csv,
    /// combined_windows.json, profiles.json).
    #[arg(long)]
    data: PathBuf,
    /// Output folder: results/<detector>/…, report.md, summary.json, figures/.
    #[arg(long)]
    out: PathBuf,
    /// Labelled windows; default: the corpus's combined_windows.json. Only
    /// the series listed there are evaluated.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// TOML evaluation settings (model, training, retrain, postprocess); see
    /// `eval::run::NabEvalConfig`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Series evaluated in parallel (0 = every core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Training data: a CSV with a timestamp column and numeric columns.
    #[arg(long)]
    data: PathBuf,
    /// Bundle folder to write.
    #[arg(long)]
    out: PathBuf,
    /// TOML settings (see deploy/train.default.toml); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Window length T.
    #[arg(long)]
    window: Option<usize>,
    /// Hidden size H.
    #[arg(long)]
    hidden: Option<usize>,
    /// Prediction horizon P.
    #[arg(long)]
    horizon: Option<usize>,
    /// Use only the first N rows of the file.
    #[arg(long)]
    rows: Option<usize>,
    /// Windows per gradient step.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Maximum epochs (early stopping may end sooner).
    #[arg(long)]
    epochs: Option<usize>,
    /// Seed of initialisation and shuffling: same seed, same model.
    #[arg(long)]
    seed: Option<u64>,
    /// Threads per batch (0 = every core).
    #[arg(long)]
    threads: Option<usize>,
    /// reconstruct | predict | composite.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<Mode>,
    /// tanh | relu.
    #[arg(long, value_parser = parse_activation)]
    activation: Option<Activation>,
    /// repeat | state | conditional.
    #[arg(long, value_parser = parse_decoder_input)]
    decoder_input: Option<DecoderInput>,
    /// No progress bar (per-epoch log lines only).
    #[arg(long)]
    quiet: bool,
}

fn parse_enum<T: serde::de::DeserializeOwned>(s: &str) -> std::result::Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| e.to_string())
}
fn parse_mode(s: &str) -> std::result::Result<Mode, String> {
    parse_enum(s)
}
fn parse_activation(s: &str) -> std::result::Result<Activation, String> {
    parse_enum(s)
}
fn parse_decoder_input(s: &str) -> std::result::Result<DecoderInput, String> {
    parse_enum(s)
}

#[derive(clap::Args)]
struct ScoreArgs {
    /// Bundle folder.
    #[arg(long)]
    model: PathBuf,
    /// CSV to score (same feature columns as the training data).
    file: PathBuf,
    /// Output CSV; default: <file stem>.scored.csv next to the input.
    #[arg(long)]
    out: Option<PathBuf>,
    /// TOML settings ([data]: timestamp column, fill rule, timestamp order;
    /// [runtime]: ONNX Runtime library and threads).
    #[arg(long)]
    config: Option<PathBuf>,
    /// NAB-style labels (`{"category/file.csv": [[start, end], …]}`): report
    /// which labelled windows the detections fall in.
    #[arg(long)]
    labels: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // `serve` and `demo` log as their settings say (`[log]`), so they set
    // up logging once those are loaded; until then an error is one line on
    // stderr (below), readable whatever the format.
    if !matches!(cli.command, Command::Serve { .. } | Command::Demo { .. }) {
        init_tracing();
    }
    let result = match cli.command {
        Command::Train(a) => train(a),
        Command::Score(a) => score_cmd(a),
        Command::Inspect { dir, json } => inspect(&dir, json),
        Command::Serve { config, model } => serve(config, model),
        Command::Demo {
            config,
            model,
            data,
            labels,
            speed,
            metrics_listen,
        } => demo(config, model, data, labels, speed, metrics_listen),
        Command::Eval {
            bench: EvalCommand::Nab(a),
        } => eval_nab(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text the
/// message already contains (many messages embed their source).
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let c = cause.to_string();
        if !msg.contains(&c) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&c);
        }
    }
    msg
}

fn init_tracing() {
    crate::telemetry::logging::init(crate::telemetry::logging::LogFormat::Text, "info");
}

/// A progress bar over all batches of all epochs, with the latest losses.
struct Bar {
    bar: ProgressBar,
    epochs: usize,
}

impl Progress for Bar {
    fn batch(&mut self, epoch: usize, batch: usize, batches: usize) {
        if self.bar.length() != Some((self.epochs * batches) as u64) {
            self.bar.set_length((self.epochs * batches) as u64);
        }
        self.bar
            .set_position(((epoch - 1) * batches + batch) as u64);
    }

    fn epoch(&mut self, s: &EpochStats, best: bool) {
        self.bar.set_message(format!(
            "epoch {}/{} loss {:.5} val {:.5}{}",
            s.epoch,
            self.epochs,
            s.train.total,
            s.validation.total,
            if best { " *" } else { "" }
        ));
        self.bar.suspend(|| {
            tracing::info!(
                epoch = s.epoch,
                loss = s.train.total,
                val_loss = s.validation.total,
                seconds = format!("{:.2}", s.seconds),
                best,
                "epoch"
            )
        });
    }
}

fn train(a: TrainArgs) -> Result<()> {
    let mut s = Settings::load(a.config.as_deref())?;
    let m = &mut s.model;
    if let Some(v) = a.window {
        m.window = v;
    }
    if let Some(v) = a.hidden {
        m.hidden = v;
    }
    if let Some(v) = a.horizon {
        m.horizon = v;
    }
    if let Some(v) = a.mode {
        m.mode = v;
    }
    if let Some(v) = a.activation {
        m.activation = v;
    }
    if let Some(v) = a.decoder_input {
        m.decoder_input = v;
    }
    if let Some(v) = a.rows {
        s.data.max_rows = v;
    }
    let t = &mut s.training;
    if let Some(v) = a.batch_size {
        t.batch_size = v;
    }
    if let Some(v) = a.epochs {
        t.epochs = v;
    }
    if let Some(v) = a.seed {
        t.seed = v;
    }
    if let Some(v) = a.threads {
        t.threads = v;
    }
    s.validate()?;

    // Ctrl-C: finish the current batch, keep the best epoch so far.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: stopping after this batch and keeping the best epoch (Ctrl-C again to abort)");
    });
    let bar = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {percent:>3}% ETA {eta} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut progress = Bar {
        bar,
        epochs: s.training.epochs,
    };
    let trained = pipeline::train_bundle(&s, &a.data, &a.out, &mut progress, &stop)
        .with_context(|| format!("training on {}", a.data.display()))?;
    progress.bar.finish_and_clear();
    let report = crate::report::training::write(&trained, &pipeline::report_dir(&a.out))
        .with_context(|| format!("writing the report into {}", a.out.display()))?;
    let m = &trained.bundle.manifest;
    println!(
        "wrote {} (model {} v{}): best epoch {} of {} ({:?}), validation loss {:.5}, threshold {:.5} ({} rule), {:.1} s, {:.2} s per epoch",
        a.out.display(),
        m.model_id,
        m.model_version,
        m.training.best_epoch,
        m.training.epochs_run,
        m.training.stopped,
        m.training.best_validation_loss.total,
        m.threshold.value,
        rule_name(&m.threshold.rule),
        m.training.seconds,
        m.training.history.iter().map(|h| h.seconds).sum::<f64>() / m.training.history.len().max(1) as f64
    );
    println!(
        "report: {}",
        report
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn serve(config: Option<PathBuf>, model: Option<PathBuf>) -> Result<()> {
    let mut s = Settings::load(config.as_deref())?;
    if let Some(m) = model {
        s.serve.model = m.to_string_lossy().into_owned();
    }
    crate::telemetry::logging::init(s.log.format, &s.log.level);
    let summary = runtime()?.block_on(crate::serve::run::serve_with(
        s,
        crate::telemetry::Metrics::new(),
        crate::serve::run::termination(),
        |_| {},
    ))?;
    tracing::info!(
        messages = summary.messages,
        windows = summary.windows,
        dead_letters = summary.dead_letters,
        drained = summary.drained,
        "stopped"
    );
    Ok(())
}

fn demo(
    config: Option<PathBuf>,
    model: PathBuf,
    data: PathBuf,
    labels: PathBuf,
    speed: f64,
    metrics_listen: String,
) -> Result<()> {
    let mut s = Settings::load(config.as_deref())?;
    s.serve.model = model.to_string_lossy().into_owned();
    s.serve.metrics_listen = metrics_listen;
    s.validate()?;
    crate::telemetry::logging::init(s.log.format, &s.log.level);
    let opts = crate::serve::demo::DemoOptions {
        data,
        labels: labels.exists().then_some(labels),
        speed,
        settings: s,
    };
    let d = runtime()?.block_on(crate::serve::demo::run(opts))?;
    println!(
        "summary: {} rows → {} windows scored, {} anomalies published, labelled windows caught: {} of {}, {:.0} windows/s",
        d.rows,
        d.windows,
        d.anomalies,
        d.labelled_caught,
        d.labelled,
        d.windows as f64 / d.seconds.max(1e-9)
    );
    Ok(())
}

fn rule_name(r: &crate::train::calibrate::ThresholdRule) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.get("rule").and_then(|x| x.as_str()).map(str::to_string))
        .unwrap_or_default()
}

fn score_cmd(a: ScoreArgs) -> Result<()> {
    let s = Settings::load(a.config.as_deref())?;
    let bundle = Bundle::open(&a.model)?;
    let series = score::load_for_bundle(&bundle, &a.file, &pipeline::csv_options(&s))?;
    let mut backend = OnnxBackend::load_from_memory(&bundle.onnx, &s.runtime.backend_options())?;
    let rule = score::Rule {
        rule: s.anomalies.rule,
        likelihood_threshold: s.anomalies.likelihood_threshold,
    };
    let scored = score::score_series(&bundle, &mut backend, series, &s.postprocess, rule)?;
    let out = a.out.unwrap_or_else(|| {
        let stem = a
            .file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        a.file.with_file_name(format!("{stem}.scored.csv"))
    });
    score::write_csv(&scored, &out).with_context(|| format!("writing {}", out.display()))?;
    let title = a
        .file
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (series_svg, score_svg) = score::charts(&scored, &title);
    let svg_path = out.with_extension("svg");
    let score_path = out.with_extension("score.svg");
    std::fs::write(&svg_path, series_svg)
        .with_context(|| format!("writing {}", svg_path.display()))?;
    std::fs::write(&score_path, score_svg)
        .with_context(|| format!("writing {}", score_path.display()))?;
    let windows = scored.scores.iter().flatten().count();
    let anomalous = (0..scored.scores.len())
        .filter(|&r| scored.is_anomaly(r) == Some(true))
        .count();
    let stretches = scored.anomalous_stretches();
    let rule = match s.anomalies.rule {
        AnomalyRule::Threshold => format!("score ≥ threshold {:.5}", scored.threshold),
        AnomalyRule::Likelihood => format!("likelihood ≥ {}", s.anomalies.likelihood_threshold),
    };
    println!(
        "scored {windows} windows of {} with model {} v{}: {anomalous} anomalous in {} stretches ({rule})",
        a.file.display(),
        bundle.manifest.model_id,
        bundle.manifest.model_version,
        stretches.len(),
    );
    for (from, to) in stretches.iter().take(20) {
        let peak = match s.anomalies.rule {
            AnomalyRule::Threshold => {
                let p = (*from..=*to)
                    .filter_map(|r| scored.normalized(r))
                    .fold(0.0f32, f32::max);
                format!("peak {p:.2}× threshold")
            }
            AnomalyRule::Likelihood => {
                let p = (*from..=*to)
                    .filter_map(|r| scored.likelihood[r])
                    .fold(0.0f64, f64::max);
                format!("peak likelihood {p:.3}")
            }
        };
        println!(
            "  {} .. {}  {peak}",
            crate::data::format_timestamp(scored.series.timestamps[*from]),
            crate::data::format_timestamp(scored.series.timestamps[*to]),
        );
    }
    if stretches.len() > 20 {
        println!("  … {} more in {}", stretches.len() - 20, out.display());
    }
    if let Some(labels) = &a.labels {
        print_labelled(&scored, &a.file, labels)?;
    }
    println!(
        "wrote {}, {}, {}",
        out.display(),
        svg_path.display(),
        score_path.display()
    );
    Ok(())
}

/// Prints each labelled window of `file` and whether a detection fell in it.
fn print_labelled(scored: &score::Scored, file: &Path, labels: &Path) -> Result<()> {
    let raw = std::fs::read(labels).with_context(|| format!("reading {}", labels.display()))?;
    let all: std::collections::BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_slice(&raw)
            .with_context(|| format!("{}: not a NAB windows file", labels.display()))?;
    let path = file.to_string_lossy().replace('\\', "/");
    let Some((key, windows)) = all.iter().find(|(k, _)| path.ends_with(k.as_str())) else {
        println!(
            "labels: {} has no entry for {}",
            labels.display(),
            file.display()
        );
        return Ok(());
    };
    let ts = &scored.series.timestamps;
    let mut caught = 0;
    for (start, end) in windows {
        let (Some(a), Some(b)) = (
            crate::data::parse_timestamp(start),
            crate::data::parse_timestamp(end),
        ) else {
            anyhow::bail!(
                "{}: {key}: unreadable window [{start}, {end}]",
                labels.display()
            );
        };
        let hit =
            (0..ts.len()).find(|&r| ts[r] >= a && ts[r] <= b && scored.is_anomaly(r) == Some(true));
        if hit.is_some() {
            caught += 1;
        }
        println!(
            "  labelled {} .. {}: {}",
            crate::data::format_timestamp(a),
            crate::data::format_timestamp(b),
            match hit {
                Some(r) => format!("detected at {}", crate::data::format_timestamp(ts[r])),
                None => "missed".into(),
            }
        );
    }
    println!("labelled windows detected: {caught} of {}", windows.len());
    Ok(())
}

fn eval_nab(a: EvalNabArgs) -> Result<()> {
    use crate::eval::{nab, report, run};
    let mut cfg = match &a.config {
        Some(path) => run::NabEvalConfig::load(path)?,
        None => run::NabEvalConfig::default(),
    };
    if let Some(t) = a.threads {
        cfg.threads = t;
    }
    let labels = a
        .labels
        .clone()
        .unwrap_or_else(|| nab::NabLayout::locate(&a.data).windows);
    let progress = |ev: &run::EvaluatedSeries, done: usize, total: usize| {
        tracing::info!(
            series = %ev.key,
            rows = ev.values.len(),
            seconds = format!("{:.1}", ev.seconds),
            "{done}/{total} scored"
        );
    };
    let result = run::run_nab(&a.data, &labels, &a.out, &cfg, &progress)
        .with_context(|| format!("evaluating on {}", a.data.display()))?;
    let written = report::write(&a.out, &result, &cfg)
        .with_context(|| format!("writing the report into {}", a.out.display()))?;
    for line in report::console_lines(&result) {
        println!("{line}");
    }
    println!(
        "{} series in {:.1} s; results in {}, report {}",
        result.series.len(),
        result.seconds,
        a.out.join("results").join(&result.detector).display(),
        written
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}

fn inspect(dir: &Path, json: bool) -> Result<()> {
    let b = Bundle::open(dir)?;
    let m = &b.manifest;
    if json {
        println!("{}", serde_json::to_string_pretty(m)?);
        return Ok(());
    }
    let s = &m.spec;
    println!(
        "model        {} v{} (format {}, trainer {})",
        m.model_id, m.model_version, m.format_version, m.trainer_version
    );
    println!("created      {}", m.created_at);
    println!(
        "architecture {:?}: window T={}, features F={} [{}], hidden H={}, horizon P={}",
        s.mode,
        s.window,
        s.features,
        m.feature_names.join(", "),
        s.hidden,
        s.horizon
    );
    println!(
        "             activation {:?}, decoder input {:?}, reversed reconstruction {}, loss = {}·recon + {}·pred",
        s.activation, s.decoder_input, s.reverse_reconstruction, s.reconstruction_weight, s.prediction_weight
    );
    println!(
        "scaler       {:?}: offset {:?}, scale {:?}",
        m.scaler.kind, m.scaler.offset, m.scaler.scale
    );
    println!(
        "threshold    {:.6} ({})",
        m.threshold.value,
        serde_json::to_string(&m.threshold.rule)?
    );
    let q: Vec<String> = m
        .validation_scores
        .quantiles
        .iter()
        .map(|(q, v)| format!("q{q}={v:.5}"))
        .collect();
    println!(
        "val scores   {} windows, mean {:.5}; {}",
        m.validation_scores.count,
        m.validation_scores.mean,
        q.join(" ")
    );
    let d = &m.training_data;
    println!(
        "data         {} ({} rows, {} .. {}), sha256 {}",
        d.file, d.rows, d.first_timestamp, d.last_timestamp, d.sha256
    );
    println!(
        "             {} training rows → {} windows, {} validation rows → {} windows, stride {}",
        d.train_rows, d.train_windows, d.validation_rows, d.validation_windows, d.stride
    );
    let t = &m.training;
    println!(
        "training     {} epochs ({:?}), best {}: loss {:.5}, validation {:.5}; {:.1} s, seed {}",
        t.epochs_run,
        t.stopped,
        t.best_epoch,
        t.final_train_loss.total,
        t.best_validation_loss.total,
        t.seconds,
        t.seed
    );
    println!(
        "onnx         {} opset {}, outputs [{}], sha256 {}",
        m.onnx.file,
        m.onnx.opset,
        m.onnx.outputs.join(", "),
        m.onnx.sha256
    );
    Ok(())
}
