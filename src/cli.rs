//! Command-line interface: `train`, `retrain`, `recalibrate`, `models`,
//! `score`, `serve`, `demo`, `produce`, `healthcheck`, `inspect`, `eval nab`,
//! `eval labelled`. Argument parsing only: each command is in [`crate::app`].
//! Errors end the process with one readable line (and its causes) and exit
//! code 1; usage errors exit 2; `retrain` exits 3 when the promotion gate
//! rejects the candidate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::app::retrain::Promotion;
use crate::app::source::SourceOptions;
use crate::config::{AnomalyRule, Settings};
use crate::infer::{score, OnnxBackend};
use crate::model::{Activation, Bundle, DecoderInput, Mode};

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
    /// A new version of a model store from recent history (CSV or the
    /// daemon's Kafka input), gated before promotion. Exit 0: promoted (or
    /// kept with --no-promote); 3: rejected by the gate; 1: error.
    Retrain(RetrainArgs),
    /// Re-fit the live version's threshold on recent scores (no retraining);
    /// writes and promotes a new version.
    Recalibrate(RecalibrateArgs),
    /// The versioned model store: list, show, promote, rollback.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
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
    /// Replay a CSV into a Kafka topic in one of the daemon's input formats.
    Produce(ProduceArgs),
    /// GET the daemon's /healthz (or --path) on serve.metrics_listen; exit 0
    /// on 200 (the container image's HEALTHCHECK).
    Healthcheck {
        /// TOML settings (serve.metrics_listen; LSTM_AE__ variables apply).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Path to GET: /healthz (alive) or /readyz (ready).
        #[arg(long, default_value = "/healthz")]
        path: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 3)]
        timeout_s: u64,
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
enum ModelsCommand {
    /// Every version: live marker, origin, parent, gate verdict.
    List {
        /// Store folder (models/<name>).
        store: PathBuf,
    },
    /// A version's manifest and lineage (default: the live version).
    Show {
        store: PathBuf,
        version: Option<i64>,
        /// Print the raw manifest.json instead.
        #[arg(long)]
        json: bool,
    },
    /// Make VERSION live (running daemons reload it).
    Promote {
        store: PathBuf,
        version: i64,
        /// Also a version the gate rejected.
        #[arg(long)]
        force: bool,
    },
    /// Make the version live before the last promotion live again.
    Rollback { store: PathBuf },
    /// Add a bundle folder (e.g. `lstm-ae train`'s output) as the store's
    /// next version and promote it; creates the store if needed.
    Import {
        store: PathBuf,
        bundle: PathBuf,
        /// Add it without making it live.
        #[arg(long)]
        no_promote: bool,
        /// Do nothing if the store already has a live version.
        #[arg(long)]
        if_empty: bool,
    },
}

/// Where `retrain` and `recalibrate` read recent history.
#[derive(clap::Args)]
struct SourceArgs {
    /// A CSV (as `train` reads it).
    #[arg(long, conflicts_with = "from_kafka")]
    data: Option<PathBuf>,
    /// The daemon's input topics (`[kafka]` in --config), read without a
    /// consumer group: the daemon's committed offsets never move.
    #[arg(long)]
    from_kafka: bool,
    /// Start of the range (event time): `7d`, `12h`, a timestamp or epoch ms.
    #[arg(long)]
    since: Option<String>,
    /// End of the range (exclusive), same forms; default: now.
    #[arg(long)]
    until: Option<String>,
    /// Only this series key (default: all keys pooled).
    #[arg(long, conflicts_with = "keys")]
    key: Option<String>,
    /// Only keys matching this glob (`*`, `?`).
    #[arg(long)]
    keys: Option<String>,
    /// With --from-kafka: read only this partition over [FROM, TO)
    /// (`[TOPIC:]PARTITION=FROM..TO`, an end may be left out); repeat for
    /// more partitions. --since/--until still filter by event time.
    #[arg(long, requires = "from_kafka")]
    offsets: Vec<String>,
}

impl SourceArgs {
    fn options(&self) -> SourceOptions {
        SourceOptions {
            csv: self.data.clone(),
            from_kafka: self.from_kafka,
            since: self.since.clone(),
            until: self.until.clone(),
            key: self.key.clone(),
            keys: self.keys.clone(),
            offsets: self.offsets.clone(),
        }
    }
}

#[derive(clap::Args)]
struct RetrainArgs {
    /// Model store folder (models/<name>); created with its first version.
    #[arg(long)]
    store: PathBuf,
    #[command(flatten)]
    source: SourceArgs,
    /// TOML settings: [kafka] inputs, [retrain] gate, [training], [calibration].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Start from the live version's weights instead of a fresh initialisation.
    #[arg(long)]
    warm_start: bool,
    /// Promote when the gate passes (the default).
    #[arg(long, conflicts_with_all = ["no_promote", "force"])]
    promote: bool,
    /// Keep the new version as a candidate; never promote.
    #[arg(long, conflicts_with = "force")]
    no_promote: bool,
    /// Promote even if the gate fails (recorded in the manifest).
    #[arg(long)]
    force: bool,
    /// Maximum epochs.
    #[arg(long)]
    epochs: Option<usize>,
    /// Seed: same data, settings and seed give the same model.onnx.
    #[arg(long)]
    seed: Option<u64>,
    /// Hidden size H of a store's first version (later versions keep the live one's).
    #[arg(long)]
    hidden: Option<usize>,
    /// Window length T of a store's first version.
    #[arg(long)]
    window: Option<usize>,
    /// Adam's step size.
    #[arg(long)]
    learning_rate: Option<f32>,
    /// Threads per batch (0 = every core).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

#[derive(clap::Args)]
struct RecalibrateArgs {
    #[arg(long)]
    store: PathBuf,
    #[command(flatten)]
    source: SourceArgs,
    /// TOML settings: [kafka] inputs, [calibration] rule.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write the version but do not promote it.
    #[arg(long)]
    no_promote: bool,
}

#[derive(Subcommand)]
enum EvalCommand {
    /// Stream every NAB series (train on the probation, score causally),
    /// write NAB's results tree and a report, print the three profile scores.
    Nab(EvalNabArgs),
    /// Your own labelled CSVs: per file, train on the leading rows, score the
    /// rest, report precision/recall/F1, AUCs, range recall and delay, as a
    /// state (threshold rule) and as alerts (likelihood rule).
    Labelled(EvalLabelledArgs),
}

#[derive(clap::Args)]
struct EvalLabelledArgs {
    /// Folder of CSV files (searched recursively), each with a label column
    /// or an entry in a windows file.
    #[arg(long)]
    data: PathBuf,
    /// Output folder: report.md, summary.json, figures/, models/.
    #[arg(long)]
    out: PathBuf,
    /// TOML settings, as for `train` and `score` (model, training,
    /// calibration, anomalies, postprocess).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Train on the first N rows of each file.
    #[arg(long, conflicts_with = "train_fraction")]
    train_rows: Option<usize>,
    /// Train on this leading fraction of each file's rows.
    #[arg(long, default_value_t = 0.5)]
    train_fraction: f64,
    /// Name of the label column (non-zero = anomalous), case-insensitive.
    #[arg(long, default_value = "label")]
    label_column: String,
    /// NAB-style windows (`{"file.csv": [[start, end], …]}`, keys relative to
    /// --data); default: <data>/windows.json when it exists.
    #[arg(long)]
    windows: Option<PathBuf>,
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
struct ProduceArgs {
    /// CSV: a timestamp column and numeric columns.
    file: PathBuf,
    /// Bootstrap servers (default: kafka.brokers of --config).
    #[arg(long)]
    brokers: Option<String>,
    /// Topic (default: the first of kafka.inputs).
    #[arg(long)]
    topic: Option<String>,
    /// points | windows | binary_windows (default: that input's format).
    #[arg(long, value_parser = parse_format)]
    format: Option<crate::stream::codec::Format>,
    /// Messages per second; 0 = as fast as the broker takes them.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Series key (default: the file name without extension).
    #[arg(long)]
    key: Option<String>,
    /// Window length T (windows formats; the model's window).
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// Rows between window starts (windows formats).
    #[arg(long, default_value_t = 1)]
    stride: usize,
    /// TOML settings: [kafka] brokers, inputs, and raw `producer` properties (TLS, SASL).
    #[arg(long)]
    config: Option<PathBuf>,
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
fn parse_format(s: &str) -> std::result::Result<crate::stream::codec::Format, String> {
    parse_enum(s)
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
    // Before any thread starts (see the function).
    crate::infer::runtime::keep_telemetry_off();
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
        Command::Retrain(a) => return exit(retrain(a)),
        Command::Recalibrate(a) => recalibrate(a),
        Command::Models { command } => models(command),
        Command::Train(a) => train(a),
        Command::Score(a) => score_cmd(a),
        Command::Inspect { dir, json } => inspect(&dir, json),
        Command::Produce(a) => produce(a),
        Command::Healthcheck {
            config,
            path,
            timeout_s,
        } => healthcheck(config, &path, timeout_s),
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
        Command::Eval {
            bench: EvalCommand::Labelled(a),
        } => eval_labelled(a),
    };
    exit(result.map(|()| ExitCode::SUCCESS))
}

fn exit(result: Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// `retrain`'s exit code when the gate rejected the candidate.
pub const EXIT_REJECTED: u8 = 3;

fn retrain(a: RetrainArgs) -> Result<ExitCode> {
    let mut s = Settings::load(a.config.as_deref())?;
    if let Some(v) = a.epochs {
        s.training.epochs = v;
    }
    if let Some(v) = a.seed {
        s.training.seed = v;
    }
    if let Some(v) = a.hidden {
        s.model.hidden = v;
    }
    if let Some(v) = a.window {
        s.model.window = v;
    }
    if let Some(v) = a.learning_rate {
        s.training.learning_rate = v;
    }
    if let Some(v) = a.threads {
        s.training.threads = v;
    }
    s.validate()?;
    let opts = crate::app::retrain::RetrainOptions {
        store: a.store.clone(),
        source: a.source.options(),
        warm_start: a.warm_start,
        promotion: if a.force {
            Promotion::Force
        } else if a.no_promote && !a.promote {
            Promotion::Never
        } else {
            Promotion::IfGatePasses
        },
    };
    let stop = crate::app::progress::stop_on_ctrl_c();
    let mut bar = crate::app::progress::Bar::new(s.training.epochs, a.quiet);
    let outcome = crate::app::retrain::retrain(&s, &opts, &mut bar, &stop)
        .with_context(|| format!("retraining {}", a.store.display()))?;
    bar.bar.finish_and_clear();
    println!("{}", outcome.summary(&a.store));
    let rejected = outcome.gate.as_ref().is_some_and(|g| !g.passed) && !outcome.promoted;
    Ok(if rejected {
        ExitCode::from(EXIT_REJECTED)
    } else {
        ExitCode::SUCCESS
    })
}

fn recalibrate(a: RecalibrateArgs) -> Result<()> {
    let s = Settings::load(a.config.as_deref())?;
    let opts = crate::app::recalibrate::RecalibrateOptions {
        store: a.store.clone(),
        source: a.source.options(),
        promotion: if a.no_promote {
            Promotion::Never
        } else {
            Promotion::IfGatePasses
        },
    };
    let r = crate::app::recalibrate::recalibrate(&s, &opts)
        .with_context(|| format!("recalibrating {}", a.store.display()))?;
    println!(
        "recalibrate: {} v{} {} (parent v{}): threshold {:.5} → {:.5} ({} rule) on {} recent windows",
        a.store.display(),
        r.version,
        if r.promoted { "promoted" } else { "kept as candidate" },
        r.parent,
        r.old_threshold,
        r.threshold,
        s.calibration.name(),
        r.windows
    );
    Ok(())
}

fn models(c: ModelsCommand) -> Result<()> {
    use crate::app::models;
    match c {
        ModelsCommand::List { store } => models::list(&store),
        ModelsCommand::Show {
            store,
            version,
            json,
        } => models::show(&store, version, json),
        ModelsCommand::Promote {
            store,
            version,
            force,
        } => models::promote(&store, version, force),
        ModelsCommand::Rollback { store } => models::rollback(&store),
        ModelsCommand::Import {
            store,
            bundle,
            no_promote,
            if_empty,
        } => models::import(&store, &bundle, no_promote, if_empty),
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

    crate::app::train::run(&s, &a.data, &a.out, a.quiet)
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
    let rt = runtime()?;
    let summary = rt.block_on(
        crate::serve::Daemon::new(crate::serve::DaemonConfig::from(&s))
            .run(crate::app::serve::termination()),
    );
    // The drain has ended by its deadline; a blocking task still running
    // (a model check of a hot reload) must not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    let summary = summary?;
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
    let opts = crate::app::demo::DemoOptions {
        data,
        labels: labels.exists().then_some(labels),
        speed,
        settings: s,
    };
    let d = runtime()?.block_on(crate::app::demo::run(opts))?;
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

fn produce(a: ProduceArgs) -> Result<()> {
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
        .unwrap_or(crate::stream::codec::Format::Points);
    let opts = crate::app::produce::ProduceOptions {
        file: a.file,
        kafka: s.kafka,
        topic: topic.clone(),
        format,
        key: a.key,
        rate: a.rate,
        window: a.window,
        stride: a.stride,
    };
    let file = opts.file.display().to_string();
    let p = runtime()?.block_on(crate::app::produce::run(opts))?;
    println!(
        "produced {} messages ({} rows of {file}) to {topic} in {:.1} s",
        p.messages, p.rows, p.seconds
    );
    Ok(())
}

fn healthcheck(config: Option<PathBuf>, path: &str, timeout_s: u64) -> Result<()> {
    let s = Settings::load(config.as_deref())?;
    let addr = crate::app::healthcheck::target(&s.serve.metrics_listen)?;
    let status = crate::app::healthcheck::check(
        addr,
        path,
        std::time::Duration::from_secs(timeout_s.max(1)),
    )?;
    println!("{status}");
    Ok(())
}

fn score_cmd(a: ScoreArgs) -> Result<()> {
    let s = Settings::load(a.config.as_deref())?;
    let bundle = Bundle::open(&a.model)?;
    let series = score::load_for_bundle(&bundle, &a.file, &s.data.csv_options())?;
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
    let all = crate::data::labels::load_windows(labels)?;
    let Some((_, windows)) = crate::data::labels::windows_for(&all, file) else {
        println!(
            "labels: {} has no entry for {}",
            labels.display(),
            file.display()
        );
        return Ok(());
    };
    let ts = &scored.series.timestamps;
    let mut caught = 0;
    for &(a, b) in windows {
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

fn eval_labelled(a: EvalLabelledArgs) -> Result<()> {
    use crate::app::eval_labelled::{run, Options, TrainSpan};
    let settings = Settings::load(a.config.as_deref())?;
    if !(a.train_fraction > 0.0 && a.train_fraction < 1.0) {
        anyhow::bail!("--train-fraction must be between 0 and 1 (exclusive)");
    }
    let opts = Options {
        data: a.data,
        out: a.out,
        settings,
        train: a
            .train_rows
            .map_or(TrainSpan::Fraction(a.train_fraction), TrainSpan::Rows),
        label_column: a.label_column,
        windows: a.windows,
    };
    let (summary, written) = run(&opts)?;
    let f = |v: Option<f64>| v.map_or_else(|| "–".to_string(), |v| format!("{v:.3}"));
    for (name, r) in [
        ("state (threshold rule)", &summary.pooled_state),
        ("alert (likelihood rule)", &summary.pooled_alert),
    ] {
        println!(
            "{name:<24} precision {} recall {} F1 {} ROC-AUC {} PR-AUC {}; stretches detected {}/{}, mean delay {} rows",
            f(r.precision),
            f(r.recall),
            f(r.f1),
            f(r.roc_auc),
            f(r.pr_auc),
            r.ranges.detected,
            r.ranges.stretches,
            f(r.mean_delay_rows)
        );
    }
    println!(
        "{} files; report {}",
        summary.files.len(),
        written
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}

fn inspect(dir: &Path, json: bool) -> Result<()> {
    let b = Bundle::open(dir)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&b.manifest)?);
    } else {
        crate::app::models::print_manifest(&b.manifest);
    }
    Ok(())
}
