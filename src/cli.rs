//! Command-line interface: `train`, `retrain`, `recalibrate`, `models`,
//! `score`, `serve`, `demo`, `produce`, `healthcheck`, `inspect`, `eval nab`,
//! `eval labelled`. Argument parsing only: each command is in [`crate::app`],
//! which runs what [`Cli`] parsed (`app::main`).

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
    Serve(ServeArgs),
    /// Everything on one machine: an embedded Kafka, the default model, a
    /// labelled NAB series replayed through the daemon's pipeline.
    Demo(DemoArgs),
    /// Replay a CSV into a Kafka topic in one of the daemon's input formats.
    Produce(ProduceArgs),
    /// GET the daemon's /healthz (or --path) on serve.metrics_listen; exit 0
    /// on 200 (the container image's HEALTHCHECK).
    Healthcheck(HealthcheckArgs),
    /// Print a bundle's manifest for humans.
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

/// How a CSV is read: flags over the `[data]` settings of --config (one
/// flag per setting, same meaning).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DataArgs {
    /// Timestamp column (data.timestamp_column) [default: the first named
    /// timestamp, time, ts, datetime or date, else the first column].
    #[arg(long, value_name = "NAME")]
    pub timestamp_column: Option<String>,
    /// Feature columns, comma-separated, e.g. cpu,memory
    /// (data.feature_columns) [default: every column but the timestamp].
    #[arg(long, value_name = "A,B,…", value_delimiter = ',')]
    pub features: Option<Vec<String>>,
    /// Field separator: one character, or tab (data.separator) [default: ,].
    #[arg(long, value_name = "CHAR")]
    pub separator: Option<String>,
    /// Empty or NaN values: error | previous | linear (data.fill) [default: error].
    #[arg(long, value_parser = parse_fill)]
    pub fill: Option<crate::data::FillRule>,
    /// increasing | file: keep rows in file order even where a timestamp
    /// repeats or steps back (data.timestamp_order) [default: increasing].
    #[arg(long, value_parser = parse_timestamp_order)]
    pub timestamp_order: Option<crate::data::TimestampOrder>,
}

/// Where `retrain` and `recalibrate` read recent history.
#[derive(clap::Args)]
pub struct SourceArgs {
    /// A CSV (as `train` reads it).
    #[arg(long, conflicts_with = "from_kafka")]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub csv: DataArgs,
    /// The daemon's input topics (`[kafka]` in --config), read without a
    /// consumer group: the daemon's committed offsets never move.
    #[arg(long)]
    pub from_kafka: bool,
    /// Start of the range (event time): `7d`, `12h`, a timestamp or epoch ms.
    #[arg(long)]
    pub since: Option<String>,
    /// End of the range (exclusive), same forms; default: now.
    #[arg(long)]
    pub until: Option<String>,
    /// Only this series key (default: all keys pooled).
    #[arg(long, conflicts_with = "keys")]
    pub key: Option<String>,
    /// Only keys matching this glob (`*`, `?`).
    #[arg(long)]
    pub keys: Option<String>,
    /// With --from-kafka: read only this partition over [FROM, TO)
    /// (`[TOPIC:]PARTITION=FROM..TO`, an end may be left out); repeat for
    /// more partitions. --since/--until still filter by event time.
    #[arg(long, requires = "from_kafka")]
    pub offsets: Vec<String>,
    /// Operator marks (docs/feedback.md) from this file instead of
    /// kafka.feedback_topic: windows marked incident or maintenance are left
    /// out, flagged windows marked false_positive are kept.
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
    /// TOML settings: [kafka] inputs, [retrain] gate, [training], [calibration].
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
    /// Maximum epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Seed: same data, settings and seed give the same model.onnx.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Hidden size H of a store's first version (later versions keep the live one's).
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Window length T of a store's first version.
    #[arg(long)]
    pub window: Option<usize>,
    /// Adam's step size.
    #[arg(long)]
    pub learning_rate: Option<f32>,
    /// Threads per batch (0 = every core).
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
    /// TOML settings: [kafka] inputs, [calibration] rule.
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
    Nab(EvalNabArgs),
    /// Your own labelled CSVs: per file, train on the leading rows, score the
    /// rest, report precision/recall/F1, AUCs, range recall and delay, as a
    /// state (threshold rule) and as alerts (likelihood rule).
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
    /// calibration, anomalies, postprocess).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Train on the first N rows of each file.
    #[arg(long, conflicts_with = "train_fraction")]
    pub train_rows: Option<usize>,
    /// Train on this leading fraction of each file's rows.
    #[arg(long, default_value_t = 0.5)]
    pub train_fraction: f64,
    /// Name of the label column (non-zero = anomalous), case-insensitive.
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// NAB-style windows (`{"file.csv": [[start, end], …]}`, keys relative to
    /// --data); default: <data>/windows.json when it exists.
    #[arg(long)]
    pub windows: Option<PathBuf>,
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
    /// Labelled windows; default: the corpus's combined_windows.json. Only
    /// the series listed there are evaluated.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// TOML evaluation settings: [model], [training], [retrain] and
    /// [postprocess] (docs/configuration.md, "eval nab --config").
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Series evaluated in parallel (0 = every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(clap::Args)]
pub struct ProduceArgs {
    /// CSV: a timestamp column and numeric columns.
    pub file: PathBuf,
    /// Bootstrap servers (default: kafka.brokers of --config).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Topic (default: the first of kafka.inputs).
    #[arg(long)]
    pub topic: Option<String>,
    /// points | windows | binary_windows (default: that input's format).
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
    /// Series key (default: the file name without extension).
    #[arg(long)]
    pub key: Option<String>,
    /// Window length T (windows formats; the model's window).
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Rows between window starts (windows formats).
    #[arg(long, default_value_t = 1)]
    pub stride: usize,
    /// TOML settings: [kafka] brokers, inputs, and the `common` and `producer` properties (TLS, SASL).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Training data: a CSV with a timestamp column and numeric columns.
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
    /// TOML settings (see deploy/train.default.toml); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Window length T.
    #[arg(long)]
    pub window: Option<usize>,
    /// Hidden size H.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Prediction horizon P.
    #[arg(long)]
    pub horizon: Option<usize>,
    /// Use only the first N rows of the file.
    #[arg(long)]
    pub rows: Option<usize>,
    /// Windows per gradient step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Maximum epochs (early stopping may end sooner).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Adam's step size (training.learning_rate).
    #[arg(long)]
    pub learning_rate: Option<f32>,
    /// Seed of initialisation and shuffling: same seed, same model.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Threads per batch (0 = every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// reconstruct | predict | composite.
    #[arg(long, value_parser = parse_mode)]
    pub mode: Option<Mode>,
    /// tanh | relu.
    #[arg(long, value_parser = parse_activation)]
    pub activation: Option<Activation>,
    /// repeat | state | conditional.
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
    /// CSV to score (same feature columns as the training data).
    pub file: PathBuf,
    #[command(flatten)]
    pub csv: DataArgs,
    /// Output CSV; default: <file stem>.scored.csv next to the input.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// TOML settings ([data]: timestamp column, fill rule, timestamp order;
    /// [runtime]: ONNX Runtime library and threads).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// NAB-style labels (`{"category/file.csv": [[start, end], …]}`): report
    /// which labelled windows the detections fall in.
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct ServeArgs {
    /// TOML settings (see deploy/serve.example.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model bundle folder (overrides serve.model).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

#[derive(clap::Args)]
pub struct DemoArgs {
    /// TOML settings; Kafka brokers are replaced by the embedded cluster.
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
    /// TOML settings (serve.metrics_listen; LSTM_AE__ variables apply).
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
    /// A file of marks, one JSON object per line, instead of the topic.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// TOML settings: [kafka] brokers, feedback_topic, and the `common`
    /// properties (TLS, SASL).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum FeedbackCommand {
    /// Add a mark (a mark with the same --id replaces it).
    ///
    /// Example: lstm-ae feedback add --verdict maintenance --key 'host-*'
    /// --from 2026-12-07T22:00:00Z --to 2026-12-07T23:00:00Z --comment "kernel update"
    Add(FeedbackAddArgs),
    /// Every mark, in id order.
    ///
    /// Example: lstm-ae feedback list --file marks.jsonl
    List {
        #[command(flatten)]
        target: FeedbackTarget,
        /// One JSON object per line, as stored.
        #[arg(long)]
        json: bool,
    },
    /// Delete the mark with this id.
    ///
    /// Example: lstm-ae feedback delete maintenance-3f2a9c01d4e5
    Delete {
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
    /// --from and --to, and its incident id the mark's id.
    #[arg(long)]
    pub from_anomaly: Option<String>,
    /// Series key, or a glob over keys (`host-*`).
    #[arg(long)]
    pub key: Option<String>,
    /// Start of the range (included): a timestamp, epoch ms, or a duration
    /// back from now (2h).
    #[arg(long)]
    pub from: Option<String>,
    /// End of the range (excluded), in the same forms.
    #[arg(long)]
    pub to: Option<String>,
    /// The mark's id (default: derived from verdict, key and range, so the
    /// same mark added twice is kept once).
    #[arg(long)]
    pub id: Option<String>,
    /// Why: shown by `feedback list`.
    #[arg(long)]
    pub comment: Option<String>,
    /// Who (default: $USER).
    #[arg(long)]
    pub author: Option<String>,
}
