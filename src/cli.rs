//! Command-line interface: `train`, `retrain`, `recalibrate`, `models`,
//! `score`, `serve`, `demo`, `produce`, `healthcheck`, `inspect`, `eval nab`,
//! `eval labelled`. Argument parsing only: each command is in [`crate::app`],
//! which runs what [`Cli`] parsed (`app::main`).
//!
//! Every command's help has a one-line purpose, each option's default
//! (`[default: …]` from clap, or `[default from config: KEY (VALUE)]` when
//! the settings give it, so a flag left out can be looked up), and an
//! `Example:` line (tests/cli.rs walks the tree and checks all three).

// The doc comments below are the command-line help, which clap prints as
// written: `[kafka]` is a settings table and `<name>` a placeholder there,
// not a rustdoc link or an HTML tag.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::model::{Activation, DecoderInput, Mode};

#[derive(Parser)]
#[command(
    name = "lstm-ae",
    version,
    about = "Composite LSTM autoencoder: train, export to ONNX, score"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Train a model on a CSV series and write a bundle (model.onnx, manifest.json, report/).
    #[command(
        after_help = "Example: lstm-ae train --data metrics.csv --out models/metrics --window 32 --epochs 20"
    )]
    Train(TrainArgs),
    /// A new version of a model store from recent history (CSV or the
    /// daemon's Kafka input), gated before promotion. Exit 0: promoted (or
    /// kept with --no-promote); 3: rejected by the gate; 1: error.
    #[command(
        after_help = "Example: lstm-ae retrain --store models/pumps --data last-week.csv --warm-start"
    )]
    Retrain(RetrainArgs),
    /// Re-fit the live version's threshold on recent scores (no retraining);
    /// writes and promotes a new version.
    #[command(
        after_help = "Example: lstm-ae recalibrate --store models/pumps --from-kafka --since 7d --config serve.toml"
    )]
    Recalibrate(RecalibrateArgs),
    /// The versioned model store: list, show, promote, rollback.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Score every window of a CSV with a bundle; writes a CSV and charts.
    #[command(
        after_help = "Example: lstm-ae score --model models/metrics --data today.csv --out today.scored.csv"
    )]
    Score(ScoreArgs),
    /// Run the daemon: Kafka in, ONNX Runtime, Kafka out, /metrics.
    #[command(
        after_help = "Example: lstm-ae serve --config deploy/serve.example.toml --model models/metrics"
    )]
    Serve(ServeArgs),
    /// Everything on one machine: an embedded Kafka, the default model, a
    /// labelled NAB series replayed through the daemon's pipeline.
    #[command(after_help = "Example: lstm-ae demo --speed 500")]
    Demo(DemoArgs),
    /// Replay a CSV into a Kafka topic in one of the daemon's input formats.
    #[command(
        after_help = "Example: lstm-ae produce metrics.csv --topic lstm-ae.points --rate 100 --key host-1"
    )]
    Produce(ProduceArgs),
    /// GET the daemon's /healthz (or --path) on serve.metrics_listen; exit 0
    /// on 200 (the container image's HEALTHCHECK).
    #[command(after_help = "Example: lstm-ae healthcheck --config serve.toml --path /readyz")]
    Healthcheck(HealthcheckArgs),
    /// Print a bundle's summary: model, data settings, threshold, training, lineage.
    #[command(after_help = "Example: lstm-ae inspect models/metrics")]
    Inspect(InspectArgs),
    /// Evaluate the detector on a benchmark.
    Eval {
        #[command(subcommand)]
        bench: EvalCommand,
    },
    /// Operator feedback: mark a false positive, an incident or planned
    /// maintenance over a key and a time range (kafka.feedback_topic, or a
    /// file of marks with --file).
    Feedback {
        #[command(subcommand)]
        command: FeedbackCommand,
    },
}

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Every version: live marker, origin, parent, gate verdict.
    #[command(after_help = "Example: lstm-ae models list models/pumps")]
    List {
        /// Store folder (models/<name>).
        store: PathBuf,
    },
    /// A version's manifest and lineage (default: the live version).
    #[command(after_help = "Example: lstm-ae models show models/pumps 3")]
    Show {
        /// Store folder (models/<name>).
        store: PathBuf,
        /// Version number [default: the live version].
        version: Option<i64>,
        /// Print the raw manifest.json instead.
        #[arg(long)]
        json: bool,
    },
    /// Make VERSION live (running daemons reload it).
    #[command(after_help = "Example: lstm-ae models promote models/pumps 3")]
    Promote {
        /// Store folder (models/<name>).
        store: PathBuf,
        /// Version number.
        version: i64,
        /// Also a version the gate rejected.
        #[arg(long)]
        force: bool,
    },
    /// Make the version live before the last promotion live again.
    #[command(after_help = "Example: lstm-ae models rollback models/pumps")]
    Rollback {
        /// Store folder (models/<name>).
        store: PathBuf,
    },
    /// Add a bundle folder (e.g. `lstm-ae train`'s output) as the store's
    /// next version and promote it; creates the store if needed.
    #[command(after_help = "Example: lstm-ae models import models/pumps out/pumps-bundle")]
    Import {
        /// Store folder (models/<name>); created if missing.
        store: PathBuf,
        /// Bundle folder to add (model.onnx, manifest.json).
        bundle: PathBuf,
        /// Add it without making it live.
        #[arg(long)]
        no_promote: bool,
        /// Do nothing if the store already has a live version.
        #[arg(long)]
        if_empty: bool,
    },
}

/// How a CSV is read: flags over the `[data]` settings of --config (one
/// flag per setting, same meaning). A command that reads data with a
/// bundle (`score`) takes the bundle's recorded data settings as the
/// config defaults.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DataArgs {
    /// Timestamp column [default from config: data.timestamp_column (the
    /// first column named timestamp, time, ts, datetime or date, else the
    /// first column)].
    #[arg(long, value_name = "NAME")]
    pub timestamp_column: Option<String>,
    /// Feature columns, comma-separated, e.g. cpu,memory [default from
    /// config: data.feature_columns (every column but the timestamp)].
    #[arg(long, value_name = "A,B,…", value_delimiter = ',')]
    pub features: Option<Vec<String>>,
    /// Field separator: one character, or tab [default from config:
    /// data.separator (,)].
    #[arg(long, value_name = "CHAR")]
    pub separator: Option<String>,
    /// Empty or NaN values: error | previous | linear [default from config:
    /// data.fill (error)].
    #[arg(long, value_parser = parse_fill)]
    pub fill: Option<crate::data::FillRule>,
    /// increasing | file: keep rows in file order even where a timestamp
    /// repeats or steps back [default from config: data.timestamp_order
    /// (increasing)].
    #[arg(long, value_parser = parse_timestamp_order)]
    pub timestamp_order: Option<crate::data::TimestampOrder>,
}

/// Where `retrain` and `recalibrate` read recent history.
#[derive(clap::Args)]
pub struct SourceArgs {
    /// A CSV (as `train` reads it); this or --from-kafka is required.
    #[arg(long, conflicts_with = "from_kafka")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub csv: DataArgs,
    /// The daemon's input topics (`[kafka]` in --config), read without a
    /// consumer group: the daemon's committed offsets never move.
    #[arg(long)]
    pub from_kafka: bool,
    /// Start of the range (event time): `7d`, `12h`, a timestamp or epoch
    /// ms [default: the oldest data].
    #[arg(long)]
    pub since: Option<String>,
    /// End of the range (exclusive), same forms [default: now].
    #[arg(long)]
    pub until: Option<String>,
    /// Only this series key [default: all keys pooled].
    #[arg(long, conflicts_with = "keys")]
    pub key: Option<String>,
    /// Only keys matching this glob (`*`, `?`) [default: all keys].
    #[arg(long)]
    pub keys: Option<String>,
    /// With --from-kafka: read only this partition over [FROM, TO)
    /// (`[TOPIC:]PARTITION=FROM..TO`, an end may be left out); repeat for
    /// more partitions. --since/--until still filter by event time
    /// [default: every partition, from its start].
    #[arg(long, requires = "from_kafka")]
    pub offsets: Vec<String>,
    /// Operator marks (docs/feedback.md) from this file instead of
    /// kafka.feedback_topic: windows marked incident or maintenance are left
    /// out, flagged windows marked false_positive are kept [default from
    /// config: kafka.feedback_topic (none)].
    #[arg(long)]
    pub feedback: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct RetrainArgs {
    /// Model store folder (models/<name>); created with its first version.
    #[arg(long)]
    pub store: PathBuf,
    #[command(flatten)]
    pub source: SourceArgs,
    /// TOML settings: [kafka] inputs, [retrain] gate, [training],
    /// [calibration] [default: the built-in settings].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Start from the live version's weights instead of a fresh initialisation.
    #[arg(long)]
    pub warm_start: bool,
    /// Promote when the gate passes (the default).
    #[arg(long, conflicts_with_all = ["no_promote", "force"])]
    pub promote: bool,
    /// Keep the new version as a candidate; never promote.
    #[arg(long, conflicts_with = "force")]
    pub no_promote: bool,
    /// Promote even if the gate fails (recorded in the manifest).
    #[arg(long)]
    pub force: bool,
    /// Maximum epochs [default from config: training.epochs (50)].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed: same data, settings and seed give the same model.onnx
    /// [default from config: training.seed (42)].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Hidden size H of a store's first version (later versions keep the
    /// live one's) [default from config: model.hidden (64)].
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Window length T of a store's first version [default from config:
    /// model.window (64)].
    #[arg(long)]
    pub window: Option<usize>,
    /// Adam's step size [default from config: training.learning_rate (0.001)].
    #[arg(long)]
    pub learning_rate: Option<f32>,
    /// Threads per batch, 0 = every core [default from config:
    /// training.threads (0)].
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::Args)]
pub struct RecalibrateArgs {
    /// Model store folder (models/<name>): its live version is rescored
    /// and its threshold refitted.
    #[arg(long)]
    pub store: PathBuf,
    #[command(flatten)]
    pub source: SourceArgs,
    /// TOML settings: [kafka] inputs, [calibration] rule [default: the
    /// built-in settings].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Write the version but do not promote it.
    #[arg(long)]
    pub no_promote: bool,
}

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Stream every NAB series (train on the probation, score causally),
    /// write NAB's results tree and a report, print the three profile scores.
    #[command(after_help = "Example: lstm-ae eval nab --data data/nab --out out/nab")]
    Nab(EvalNabArgs),
    /// Your own labelled CSVs: per file, train on the leading rows, score the
    /// rest, report precision/recall/F1, AUCs, range recall and delay, as a
    /// state (threshold rule) and as alerts (likelihood rule).
    #[command(
        after_help = "Example: lstm-ae eval labelled --data my-labelled/ --out out/eval --train-fraction 0.4"
    )]
    Labelled(EvalLabelledArgs),
}

#[derive(clap::Args)]
pub struct EvalLabelledArgs {
    /// Folder of CSV files (searched recursively), each with a label column
    /// or an entry in a windows file.
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder: report.md, summary.json, figures/, models/.
    #[arg(long)]
    pub out: PathBuf,
    /// TOML settings, as for `train` and `score` (model, training,
    /// calibration, anomalies, postprocess) [default: the built-in settings].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Train on the first N rows of each file [default: --train-fraction].
    #[arg(long, conflicts_with = "train_fraction")]
    pub train_rows: Option<usize>,
    /// Train on this leading fraction of each file's rows.
    #[arg(long, default_value_t = 0.5)]
    pub train_fraction: f64,
    /// Name of the label column (non-zero = anomalous), case-insensitive.
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// NAB-style windows (`{"file.csv": [[start, end], …]}`, keys relative to
    /// --data) [default: <data>/windows.json when it exists].
    #[arg(long)]
    pub windows: Option<PathBuf>,
    /// Maximum epochs of each file's model [default from config:
    /// training.epochs (50)].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Operator marks as labels (docs/feedback.md): incident marks are
    /// anomalous, false_positive marks known normal, over the file's own
    /// labels; a file's series key is its name without extension
    /// [default: none].
    #[arg(long, value_name = "FILE")]
    pub feedback: Option<PathBuf>,
    #[command(flatten)]
    pub csv: DataArgs,
}

#[derive(clap::Args)]
pub struct EvalNabArgs {
    /// NAB corpus: a NAB checkout (data/, labels/, config/) or the flat
    /// copy in this repository (data/nab: <category>/*.csv,
    /// combined_windows.json, profiles.json).
    #[arg(long)]
    pub data: PathBuf,
    /// Output folder: results/<detector>/…, report.md, summary.json, figures/.
    #[arg(long)]
    pub out: PathBuf,
    /// Labelled windows; only the series listed there are evaluated
    /// [default: the corpus's combined_windows.json].
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// TOML evaluation settings: [model], [training], [retrain] and
    /// [postprocess] (docs/configuration.md, "eval nab --config")
    /// [default: the built-in evaluation settings].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Series evaluated in parallel, 0 = every core [default: 0].
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(clap::Args)]
pub struct ProduceArgs {
    /// CSV: a timestamp column and numeric columns.
    pub file: PathBuf,
    /// Bootstrap servers [default from config: kafka.brokers (127.0.0.1:9092)].
    #[arg(long)]
    pub brokers: Option<String>,
    /// Topic [default from config: the first of kafka.inputs (lstm-ae.points)].
    #[arg(long)]
    pub topic: Option<String>,
    /// points | windows | binary_windows [default from config: that
    /// input's format (points)].
    #[arg(long, value_parser = parse_format)]
    pub format: Option<crate::stream::codec::Format>,
    /// Messages per second; 0 = as fast as the broker takes them.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Stamp each point with the time it is due (the replay's start + its
    /// place / --rate), not the file's: a receiver that refuses old samples
    /// (Prometheus remote write) then takes the outputs. Points, --rate 1 to 1000.
    #[arg(long)]
    pub retime: bool,
    /// Series key [default: the file name without extension].
    #[arg(long)]
    pub key: Option<String>,
    /// Window length T (windows formats; the model's window).
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Rows between window starts (windows formats).
    #[arg(long, default_value_t = 1)]
    pub stride: usize,
    /// TOML settings: [kafka] brokers, inputs, and the `common` and
    /// `producer` properties (TLS, SASL) [default: the built-in settings].
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Training data: a CSV with a header row, a timestamp column and
    /// numeric columns.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub csv: DataArgs,
    /// Bundle folder to write: a new or empty folder, unless --force.
    #[arg(long)]
    pub out: PathBuf,
    /// Write the bundle into --out even if that folder is not empty (an
    /// earlier bundle there is replaced).
    #[arg(long)]
    pub force: bool,
    /// TOML settings (see deploy/train.default.toml); flags override it
    /// [default: the built-in settings].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Window length T [default from config: model.window (64)].
    #[arg(long)]
    pub window: Option<usize>,
    /// Hidden size H [default from config: model.hidden (64)].
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Prediction horizon P [default from config: model.horizon (8)].
    #[arg(long)]
    pub horizon: Option<usize>,
    /// Use only the first N rows of the file [default from config:
    /// data.max_rows (0 = all)].
    #[arg(long)]
    pub rows: Option<usize>,
    /// Windows per gradient step [default from config: training.batch_size (64)].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Maximum epochs, early stopping may end sooner [default from config:
    /// training.epochs (50)].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Adam's step size [default from config: training.learning_rate (0.001)].
    #[arg(long)]
    pub learning_rate: Option<f32>,
    /// Seed of initialisation and shuffling: same seed, same model [default
    /// from config: training.seed (42)].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Threads per batch, 0 = every core [default from config:
    /// training.threads (0)].
    #[arg(long)]
    pub threads: Option<usize>,
    /// reconstruct | predict | composite [default from config: model.mode
    /// (composite)].
    #[arg(long, value_parser = parse_mode)]
    pub mode: Option<Mode>,
    /// tanh | relu [default from config: model.activation (tanh)].
    #[arg(long, value_parser = parse_activation)]
    pub activation: Option<Activation>,
    /// repeat | state | conditional [default from config:
    /// model.decoder_input (repeat)].
    #[arg(long, value_parser = parse_decoder_input)]
    pub decoder_input: Option<DecoderInput>,
    /// No progress bar (per-epoch log lines only).
    #[arg(long)]
    pub quiet: bool,
}

fn parse_enum<T: serde::de::DeserializeOwned>(s: &str) -> std::result::Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|e| e.to_string())
}
fn parse_fill(s: &str) -> std::result::Result<crate::data::FillRule, String> {
    parse_enum(s)
}
fn parse_timestamp_order(s: &str) -> std::result::Result<crate::data::TimestampOrder, String> {
    parse_enum(s)
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
pub struct ScoreArgs {
    /// Bundle folder.
    #[arg(long)]
    pub model: PathBuf,
    /// CSV to score (the feature columns the model was trained on), as
    /// `train --data` takes it; required.
    #[arg(long, value_name = "FILE", required_unless_present = "file")]
    pub data: Option<PathBuf>,
    /// The CSV, given without --data (the same).
    #[arg(value_name = "FILE", conflicts_with = "data", hide = true)]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub csv: DataArgs,
    /// Output CSV [default: <file stem>.scored.csv next to the input].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// TOML settings ([data]: timestamp column, fill rule, timestamp order;
    /// [runtime]: ONNX Runtime library and threads) [default: the
    /// built-in settings, with the bundle's data settings].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// NAB-style labels (`{"category/file.csv": [[start, end], …]}`): report
    /// which labelled windows the detections fall in [default: none].
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML settings (see deploy/serve.example.toml) [default: the
    /// built-in settings].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model bundle or store folder [default from config: serve.model
    /// (models/machine_temperature)].
    #[arg(long)]
    pub model: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// TOML settings; Kafka brokers are replaced by the embedded cluster
    /// [default: the built-in settings].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model bundle folder.
    #[arg(long, default_value = "models/machine_temperature")]
    pub model: PathBuf,
    /// Series to replay.
    #[arg(
        long,
        default_value = "data/nab/realKnownCause/machine_temperature_system_failure.csv"
    )]
    pub data: PathBuf,
    /// NAB windows file with the series' labelled anomalies.
    #[arg(long, default_value = "data/nab/combined_windows.json")]
    pub labels: PathBuf,
    /// Rows per second to replay; 0 = as fast as the pipeline goes.
    #[arg(long, default_value_t = 0.0)]
    pub speed: f64,
    /// Address of the metrics endpoint.
    #[arg(long, default_value = "127.0.0.1:9898")]
    pub metrics_listen: String,
}

#[derive(clap::Args)]
pub struct HealthcheckArgs {
    /// TOML settings (serve.metrics_listen; LSTM_AE__ variables apply)
    /// [default: the built-in settings].
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Path to GET: /healthz (alive) or /readyz (ready).
    #[arg(long, default_value = "/healthz")]
    pub path: String,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 3)]
    pub timeout_s: u64,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// Bundle folder.
    pub dir: PathBuf,
    /// Print the raw manifest.json instead.
    #[arg(long)]
    pub json: bool,
}

/// Where the marks live.
#[derive(clap::Args)]
pub struct FeedbackTarget {
    /// A file of marks, one JSON object per line, instead of the topic
    /// [default from config: kafka.feedback_topic].
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// TOML settings: [kafka] brokers, feedback_topic, and the `common`
    /// properties (TLS, SASL) [default: the built-in settings].
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum FeedbackCommand {
    /// Add a mark (a mark with the same --id replaces it).
    #[command(
        after_help = "Example: lstm-ae feedback add --verdict maintenance --key 'host-*' --from 2026-12-07T22:00:00Z --to 2026-12-07T23:00:00Z --comment \"kernel update\""
    )]
    Add(FeedbackAddArgs),
    /// Every mark, in id order.
    #[command(after_help = "Example: lstm-ae feedback list --file marks.jsonl")]
    List {
        #[command(flatten)]
        target: FeedbackTarget,
        /// One JSON object per line, as stored.
        #[arg(long)]
        json: bool,
    },
    /// Delete the mark with this id.
    #[command(after_help = "Example: lstm-ae feedback delete maintenance-3f2a9c01d4e5")]
    Delete {
        /// The mark's id (`feedback list` shows it).
        id: String,
        #[command(flatten)]
        target: FeedbackTarget,
    },
}

#[derive(clap::Args)]
pub struct FeedbackAddArgs {
    #[command(flatten)]
    pub target: FeedbackTarget,
    /// false_positive | incident | maintenance.
    #[arg(long, value_parser = ["false_positive", "incident", "maintenance"])]
    pub verdict: String,
    /// A record copied from the anomalies topic (JSON, or `-` to read it
    /// from stdin): its key and the incident's windows so far give --key,
    /// --from and --to, and its incident id the mark's id [default: none].
    #[arg(long)]
    pub from_anomaly: Option<String>,
    /// Series key, or a glob over keys (`host-*`) [default: from
    /// --from-anomaly].
    #[arg(long)]
    pub key: Option<String>,
    /// Start of the range (included): a timestamp, epoch ms, or a duration
    /// back from now (2h) [default: from --from-anomaly].
    #[arg(long)]
    pub from: Option<String>,
    /// End of the range (excluded), in the same forms [default: from
    /// --from-anomaly].
    #[arg(long)]
    pub to: Option<String>,
    /// The mark's id [default: derived from verdict, key and range, so the
    /// same mark added twice is kept once].
    #[arg(long)]
    pub id: Option<String>,
    /// Why: shown by `feedback list` [default: none].
    #[arg(long)]
    pub comment: Option<String>,
    /// Who [default: $USER].
    #[arg(long)]
    pub author: Option<String>,
}
