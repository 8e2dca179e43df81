//! Settings: built-in defaults < TOML file (`--config FILE`) < environment
//! (`LSTM_AE__SECTION__KEY`, e.g. `LSTM_AE__TRAINING__EPOCHS=20`) < command
//! line flags. Every field is documented where it is defined; unknown keys
//! are errors that name the key, so a typo never silently falls back to a
//! default.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::{CsvOptions, FillRule, ScalerKind, TimestampOrder};
use crate::model::{ModelSpec, ThresholdRule};
use crate::train::TrainOptions;

/// Largest `serve.max_batch` accepted.
pub const MAX_BATCH_LIMIT: usize = 65_536;
/// Largest `serve.max_batches_in_flight` accepted.
pub const MAX_BATCHES_IN_FLIGHT_LIMIT: usize = 4_096;
/// Largest `serve.max_outputs_in_flight` accepted (librdkafka's own queue
/// holds 100,000 messages by default).
pub const MAX_OUTPUTS_IN_FLIGHT_LIMIT: usize = 1_000_000;

/// Whether librdkafka reads a boolean property as true: it takes `true`
/// and `t` in any case, and `1`. Surrounding spaces are ignored here: better
/// refuse a value librdkafka would reject anyway than let one through.
fn librdkafka_true(v: &str) -> bool {
    let v = v.trim();
    v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("t") || v == "1"
}

/// Settings could not be loaded or are invalid.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration: invalid {key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// How the training CSV is read and cut into windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSettings {
    /// Timestamp column; empty = the first named `timestamp`, `time`, `ts`,
    /// `datetime` or `date` (any case), else the first.
    pub timestamp_column: String,
    /// Feature columns; empty = every column but the timestamp, in file order.
    pub feature_columns: Vec<String>,
    /// What to do with empty or NaN values: `error`, `previous` or `linear`
    /// (see [`FillRule`]).
    pub fill: FillRule,
    /// `increasing`: a timestamp that does not increase is an error naming
    /// the line; `file`: keep rows in file order (some real exports repeat
    /// an hour at a daylight-saving change). See [`TimestampOrder`].
    pub timestamp_order: TimestampOrder,
    /// Train on the first this many rows only (0 = all): keeps the end of a
    /// file out of training, e.g. to score it as unseen data.
    pub max_rows: usize,
    /// Rows between the starts of consecutive training windows.
    pub stride: usize,
    /// Fraction of rows, at the end of the file, kept for validation and calibration.
    pub validation_fraction: f64,
    /// `standard` (zero mean, unit variance) or `minmax` (training range to [0, 1]).
    pub scaler: ScalerKind,
    /// The character between fields: `,` `;` `|`…, or `tab`.
    pub separator: String,
}

impl DataSettings {
    /// How `load_csv` reads a file under these settings.
    pub fn csv_options(&self) -> CsvOptions {
        CsvOptions {
            timestamp_column: (!self.timestamp_column.is_empty())
                .then(|| self.timestamp_column.clone()),
            feature_columns: (!self.feature_columns.is_empty())
                .then(|| self.feature_columns.clone()),
            fill: self.fill,
            timestamp_order: self.timestamp_order,
            // `validate` refuses any other separator.
            separator: crate::data::parse_separator(&self.separator).unwrap_or(b','),
        }
    }
}

impl Default for DataSettings {
    fn default() -> Self {
        DataSettings {
            timestamp_column: String::new(),
            feature_columns: vec![],
            fill: FillRule::Error,
            timestamp_order: TimestampOrder::Increasing,
            max_rows: 0,
            stride: 1,
            validation_fraction: 0.2,
            scaler: ScalerKind::Standard,
            separator: ",".into(),
        }
    }
}

/// Identity of the bundle a training run writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BundleSettings {
    /// Model id; empty = the training file's name without extension.
    pub model_id: String,
    /// Model version, an integer that increases with each retrain.
    pub model_version: i64,
}

impl Default for BundleSettings {
    fn default() -> Self {
        BundleSettings {
            model_id: String::new(),
            model_version: 1,
        }
    }
}

/// `lstm-ae retrain`: the held-back slice and the promotion gate (see
/// `app::retrain::gate` and docs/model-store.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainSettings {
    /// Fraction of each series' rows, at its end, held back from training
    /// and validation for the gate's comparison of candidate and live model.
    pub gate_fraction: f64,
    /// The candidate's loss on the held-back slice may exceed the live
    /// model's by this fraction (0.05 = 5 %).
    pub loss_tolerance: f64,
    /// The candidate's anomaly rate on the slice may exceed the live
    /// model's by this much, absolute (0.01 = one percentage point).
    pub anomaly_rate_tolerance: f64,
    /// `--from-kafka`: longest the history read may take.
    pub kafka_timeout_ms: u64,
}

impl Default for RetrainSettings {
    fn default() -> Self {
        RetrainSettings {
            gate_fraction: 0.1,
            loss_tolerance: 0.05,
            anomaly_rate_tolerance: 0.01,
            kafka_timeout_ms: 300_000,
        }
    }
}

/// How ONNX Runtime is found and run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSettings {
    /// Path of the ONNX Runtime shared library (or its folder). Empty =
    /// `ORT_DYLIB_PATH`, then `.local/onnxruntime/lib/`, then next to the
    /// executable.
    pub onnxruntime_library: String,
    /// Threads ONNX Runtime uses inside one inference call; 0 = its default.
    pub intra_threads: usize,
}

impl RuntimeSettings {
    pub fn backend_options(&self) -> crate::infer::BackendOptions {
        crate::infer::BackendOptions {
            intra_threads: self.intra_threads,
            library: (!self.onnxruntime_library.is_empty())
                .then(|| self.onnxruntime_library.clone().into()),
        }
    }
}

/// One input topic and its wire format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputTopic {
    pub topic: String,
    /// `points`, `windows` or `binary_windows` (see docs/daemon.md).
    pub format: crate::stream::codec::Format,
}

/// Kafka: where to read and write, group membership, and raw librdkafka
/// settings.
///
/// librdkafka properties come in three tables: `common` (applied to every
/// client the project builds: TLS, SASL, client.id…), then `consumer` (the
/// consumers: the daemon's, the history reader of `retrain` /
/// `recalibrate`, the demo's printer) and `producer` (the daemon's,
/// `produce`'s and the demo's), each of which may override `common`; see
/// `kafka::clients`. Secrets do not belong in a file that is checked in:
/// set [`KafkaSettings::sasl_password_file`] or the environment variable
/// [`SASL_PASSWORD_ENV`]; either reaches every client as `sasl.password`.
/// (The generic `LSTM_AE__KAFKA__CONSUMER__…` route cannot carry a
/// librdkafka key: the configuration layer reads `__` as nesting and `.` as
/// a path, so `sasl.password` would become a table.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaSettings {
    /// Bootstrap servers, comma-separated `host:port`.
    pub brokers: String,
    /// Consumer group; offsets are committed under it.
    pub group_id: String,
    /// Static group membership (librdkafka `group.instance.id`): a daemon
    /// that restarts under the same id gets its partitions back at once,
    /// without a rebalance, as long as it is back within
    /// `session_timeout_ms`. Empty = the `POD_NAME` environment variable,
    /// else `HOSTNAME`; if neither is set, dynamic membership (see
    /// `static_membership`). Each daemon of a group needs its own id: two
    /// live members with one id fence each other.
    pub instance_id: String,
    /// `false` = dynamic membership even when `instance_id` or the pod/host
    /// name is set. Dynamic members that die without leaving (SIGKILL, OOM)
    /// keep their partitions until the broker expires them; some brokers
    /// (tansu 0.6) hand a restarted consumer an empty assignment for minutes.
    pub static_membership: bool,
    /// Group session timeout (librdkafka `session.timeout.ms`): how long a
    /// silent member keeps its partitions. With static membership this is
    /// the window for a restart to resume without a rebalance, and the time
    /// the others wait before taking over a member that is gone for good.
    pub session_timeout_ms: u64,
    /// Input topics with their formats.
    pub inputs: Vec<InputTopic>,
    /// One message per scored window: key, times, embedding, score.
    pub embeddings_topic: String,
    /// Incidents: a record when a key's anomalous stretch opens, updates
    /// and closes.
    pub anomalies_topic: String,
    /// Optional: every window's score without the embedding; empty = off.
    pub scores_topic: String,
    /// Malformed input: original key, bytes and headers, plus the reason.
    pub dead_letter_topic: String,
    /// Larger input messages are dead-lettered as `oversized`.
    pub max_message_bytes: usize,
    /// How often offsets are committed.
    pub commit_interval_ms: u64,
    /// librdkafka statistics period (consumer lag metrics); 0 = off.
    pub statistics_interval_ms: u64,
    /// File whose content (trailing newline removed) is the SASL password
    /// of every client, e.g. a mounted Kubernetes secret; empty = none.
    /// [`SASL_PASSWORD_ENV`] wins when set. Never logged.
    pub sasl_password_file: String,
    /// Raw librdkafka properties for every client, e.g.
    /// `"security.protocol" = "SASL_SSL"`.
    pub common: std::collections::BTreeMap<String, String>,
    /// Raw librdkafka consumer properties (override `common`).
    pub consumer: std::collections::BTreeMap<String, String>,
    /// Raw librdkafka producer properties (override `common`).
    pub producer: std::collections::BTreeMap<String, String>,
    /// Operator marks (false positive, incident, maintenance), one record
    /// per mark keyed by its id, on a compacted topic; empty = off.
    pub feedback_topic: String,
    /// The SASL password from [`SASL_PASSWORD_ENV`] or
    /// `sasl_password_file`, resolved when the settings load.
    #[serde(skip)]
    pub sasl_password: Option<Secret>,
}

/// Environment variable holding the SASL password of every Kafka client
/// (wins over `kafka.sasl_password_file`).
pub const SASL_PASSWORD_ENV: &str = "LSTM_AE_KAFKA_SASL_PASSWORD";

/// A secret: shown as `***` by `Debug`, never serialized.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: "127.0.0.1:9092".into(),
            group_id: "lstm-ae".into(),
            instance_id: String::new(),
            static_membership: true,
            session_timeout_ms: 30_000,
            inputs: vec![InputTopic {
                topic: "lstm-ae.points".into(),
                format: crate::stream::codec::Format::Points,
            }],
            embeddings_topic: "lstm-ae.embeddings".into(),
            anomalies_topic: "lstm-ae.anomalies".into(),
            scores_topic: String::new(),
            dead_letter_topic: "lstm-ae.dead-letters".into(),
            max_message_bytes: 1 << 20,
            commit_interval_ms: 1000,
            statistics_interval_ms: 5000,
            sasl_password_file: String::new(),
            common: Default::default(),
            consumer: Default::default(),
            producer: Default::default(),
            feedback_topic: String::new(),
            sasl_password: None,
        }
    }
}

impl KafkaSettings {
    /// A librdkafka consumer property as the consumer will see it: its own
    /// table, then `common`.
    pub fn consumer_property(&self, key: &str) -> Option<&str> {
        self.consumer
            .get(key)
            .or_else(|| self.common.get(key))
            .map(String::as_str)
    }

    /// The group session timeout in effect: a raw `session.timeout.ms`
    /// wins over `session_timeout_ms`.
    pub fn effective_session_timeout_ms(&self) -> Result<u64, ConfigError> {
        match self.consumer_property("session.timeout.ms") {
            None => Ok(self.session_timeout_ms),
            Some(v) => v.trim().parse().map_err(|_| ConfigError::Invalid {
                key: "kafka.consumer.\"session.timeout.ms\"".into(),
                reason: format!("{v:?} is not a number of milliseconds"),
            }),
        }
    }

    /// Fills what the environment decides: the static-membership id
    /// (`POD_NAME`, then `HOSTNAME`, when `instance_id` is empty) and the
    /// SASL password ([`SASL_PASSWORD_ENV`], then `sasl_password_file`).
    fn resolve(
        &mut self,
        env: &std::collections::HashMap<String, String>,
    ) -> Result<(), ConfigError> {
        let raw_id = self.consumer_property("group.instance.id").is_some();
        if self.static_membership && self.instance_id.trim().is_empty() && !raw_id {
            self.instance_id = ["POD_NAME", "HOSTNAME"]
                .iter()
                .filter_map(|k| env.get(*k))
                .map(|v| v.trim())
                .find(|v| !v.is_empty())
                .unwrap_or_default()
                .to_string();
        }
        if !self.static_membership {
            self.instance_id.clear();
        }
        self.sasl_password = match env.get(SASL_PASSWORD_ENV) {
            Some(p) => Some(Secret::new(p.clone())),
            None if !self.sasl_password_file.is_empty() => {
                let text = std::fs::read_to_string(&self.sasl_password_file).map_err(|e| {
                    ConfigError::Invalid {
                        key: "kafka.sasl_password_file".into(),
                        reason: format!("cannot read {}: {e}", self.sasl_password_file),
                    }
                })?;
                Some(Secret::new(text.trim_end_matches(['\n', '\r'])))
            }
            None => None,
        };
        Ok(())
    }
}

/// The daemon's model, batching and shutdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeSettings {
    /// Model bundle folder (model.onnx + manifest.json), or a model store
    /// (numbered versions and a `current` file, see `model::store`): the
    /// daemon serves its current version.
    pub model: String,
    /// Most windows per inference call. 64 rather than more: with the
    /// default model a single-threaded session scores as many windows per
    /// second at 64 as at larger batches (more on some CPUs: the working
    /// set stays in cache), and ONNX Runtime's memory arena grows with the
    /// largest batch (docs/performance.md).
    pub max_batch: usize,
    /// Longest a window waits for its batch to fill.
    pub max_wait_ms: u64,
    /// Batches between intake and output at once (queued, in inference, or
    /// waiting for an earlier batch), on top of one per inference thread:
    /// beyond it, consumption pauses.
    pub max_batches_in_flight: usize,
    /// Inference threads, each with its own ONNX Runtime session, taking
    /// batches in turn (outputs stay in order); 0 = one per core. With more
    /// than one, each session runs single-threaded unless
    /// `runtime.intra_threads` says otherwise: independent sessions scale
    /// better than one session's threads, which wait for each other at every
    /// operator.
    pub inference_threads: usize,
    /// After SIGTERM/SIGINT: longest wait for in-flight work and acks; the
    /// process ends by then even if a stage is stuck (its windows stay
    /// uncommitted and are replayed after the restart).
    pub drain_timeout_ms: u64,
    /// An inference call running longer than this marks the daemon not
    /// ready (`/readyz` 503, `lstm_ae_inference_stalled` 1); intake stops
    /// by itself once the batches in flight are used up.
    pub inference_stall_ms: u64,
    /// Dead letters queued for the broker at once; beyond it, consumption
    /// waits (a flood of bad input on a slow broker cannot grow memory).
    pub max_dead_letters_in_flight: usize,
    /// Output messages (embeddings, scores, incident records) queued for
    /// the broker and not yet acknowledged, at once; beyond it the sink
    /// waits, and intake pauses once the batches in flight are used up (a
    /// slow broker cannot fill librdkafka's queue).
    pub max_outputs_in_flight: usize,
    /// When `model` is a store: how often its `current` version is checked
    /// for a hot reload (SIGHUP checks at once); 0 = only on SIGHUP.
    pub model_poll_ms: u64,
    /// Longest a reload check (reading the store, opening, checking and
    /// warming up the new version) may take; past it the check counts as
    /// refused and no other starts until its thread returns (a hung
    /// network volume cannot be interrupted).
    pub model_check_timeout_ms: u64,
    /// Address of /metrics, /healthz, /readyz.
    pub metrics_listen: String,
}

impl Default for ServeSettings {
    fn default() -> Self {
        ServeSettings {
            model: "models/machine_temperature".into(),
            max_batch: 64,
            max_wait_ms: 20,
            max_batches_in_flight: 2,
            inference_threads: 0,
            drain_timeout_ms: 10_000,
            inference_stall_ms: 30_000,
            max_dead_letters_in_flight: 1_000,
            max_outputs_in_flight: 10_000,
            model_poll_ms: 5_000,
            model_check_timeout_ms: 60_000,
            metrics_listen: "127.0.0.1:9898".into(),
        }
    }
}

/// Per-key windows over `points` inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowingSettings {
    /// Points between consecutive windows of a key; 1 scores every point.
    pub stride: usize,
    /// A key without points for this long (processing time) is dropped.
    pub key_ttl_ms: u64,
    /// Most keys in memory; the least recently updated makes room.
    pub max_keys: usize,
    /// A step longer than this many typical steps is a gap: the key's
    /// window restarts after it (and offline `score` cuts the file there).
    /// 0 windows across any step.
    pub max_gap_steps: u32,
    /// Points in a row from another partition, each later than the key's
    /// last, after which a key moves there (its later points arrive there
    /// after a partition-count increase); 0 = never.
    pub key_move_after: u32,
}

impl Default for WindowingSettings {
    fn default() -> Self {
        WindowingSettings {
            stride: 1,
            key_ttl_ms: 3_600_000,
            max_keys: 100_000,
            max_gap_steps: crate::data::DEFAULT_MAX_GAP_STEPS,
            key_move_after: 3,
        }
    }
}

/// Default `anomalies.likelihood_threshold`, the default
/// `postprocess.fire_level`: a label-free tail probability (a log-likelihood
/// of 0.35 is p ≤ 3.2·10⁻⁴, about one alarm per 3,000 windows of a
/// stationary error; docs/daemon.md). `lstm-ae eval nab` uses 0.45
/// with its own settings, chosen on NAB's tuning half; the daemon keeps the
/// label-free default rather than one fitted to NAB's labels.
pub const LIKELIHOOD_THRESHOLD: f64 = 0.35;

/// What makes a window anomalous (defined with the decision, in [`crate::score`]).
pub use crate::score::AnomalyRule;

/// What goes on the anomalies topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnomalySettings {
    /// `threshold` (calibrated reconstruction-error threshold, no per-key
    /// state) or `likelihood` (per-key anomaly likelihood from `[postprocess]`;
    /// constant memory per key, under 1 KB).
    pub rule: AnomalyRule,
    /// With `rule = "likelihood"`: the likelihood at or above which a window
    /// is anomalous.
    pub likelihood_threshold: f64,
    /// (step, feature) cells with the largest squared error, and features,
    /// listed per incident record.
    pub top_contributors: usize,
    /// Normal windows in a row that close a key's open incident (at least 1).
    pub close_after: usize,
    /// At most one update record per this many windows of an open
    /// incident; 0 = only open and close records.
    pub update_every: usize,
    /// Removed (the storm rule became the incident rule): accepted only to
    /// refuse it with its replacement named, never silently ignored.
    #[serde(default, skip_serializing)]
    pub min_consecutive: Option<serde::de::IgnoredAny>,
    /// Removed, as `min_consecutive`.
    #[serde(default, skip_serializing)]
    pub cooldown_windows: Option<serde::de::IgnoredAny>,
}

/// `anomalies.close_after` by default: three normal windows in a row end
/// an incident, so one or two windows just under the line inside an
/// anomalous stretch (a score hovering at the threshold) do not split it
/// into two pages, while an event a few windows after the last one ended
/// is a new incident (docs/daemon.md, *Incidents*).
pub const CLOSE_AFTER: usize = 3;

impl Default for AnomalySettings {
    fn default() -> Self {
        AnomalySettings {
            rule: AnomalyRule::Threshold,
            likelihood_threshold: LIKELIHOOD_THRESHOLD,
            top_contributors: 5,
            close_after: CLOSE_AFTER,
            update_every: 0,
            min_consecutive: None,
            cooldown_windows: None,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: crate::telemetry::logging::LogFormat,
    /// A tracing filter, e.g. `info` or `lstm_ae=debug`; `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: Default::default(),
            level: "info".into(),
        }
    }
}

/// Every setting of `lstm-ae`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub data: DataSettings,
    /// The architecture and loss ([`ModelSpec`]: `window`, `hidden`,
    /// `horizon`, `activation`, `decoder_input`, `reverse_reconstruction`,
    /// `mode`, `reconstruction_weight`, `prediction_weight`). `features`
    /// must be left at 1 or equal the data's feature column count: training
    /// takes it from the data and refuses a different value. `horizon` is
    /// ignored (0) in `reconstruct` mode.
    pub model: ModelSpec,
    pub training: TrainOptions,
    /// How the anomaly threshold is set from validation scores:
    /// `{ rule = "pot", initial_quantile = 0.98, risk = 0.001 }`,
    /// `{ rule = "quantile", q = 0.995 }` or `{ rule = "mean_std", k = 4.0 }`.
    pub calibration: ThresholdRule,
    pub bundle: BundleSettings,
    pub retrain: RetrainSettings,
    pub runtime: RuntimeSettings,
    pub kafka: KafkaSettings,
    pub serve: ServeSettings,
    pub windowing: WindowingSettings,
    pub anomalies: AnomalySettings,
    pub log: LogSettings,
    /// How the daemon turns each key's raw window errors into anomaly
    /// scores: the same state machine and defaults as `lstm-ae eval nab`.
    pub postprocess: crate::score::PostprocessConfig,
    /// Opt-in per-key gauges on `/metrics` (`lstm_ae_series_*`).
    pub series_metrics: crate::serve::series::SeriesMetricsSettings,
    /// The Prometheus remote-write sink of the per-key series; off while
    /// `url` is empty.
    pub remote_write: crate::serve::remote_write::RemoteWriteSettings,
    /// Operator feedback: how many marks a reader keeps.
    pub feedback: crate::feedback::FeedbackSettings,
}

impl Settings {
    /// Defaults, then the file (if any), then `LSTM_AE__…` variables.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// [`Settings::load`] with `data` in place of the built-in `[data]`
    /// defaults (a bundle's recorded data settings): the file and the
    /// environment still override them.
    pub fn load_with_data_defaults(
        file: Option<&Path>,
        data: &DataSettings,
    ) -> Result<Settings, ConfigError> {
        Self::load_over(file, std::env::vars(), Some(data))
    }

    /// [`Settings::load`] with an explicit environment (tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        Self::load_over(file, env, None)
    }

    fn load_over(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        data: Option<&DataSettings>,
    ) -> Result<Settings, ConfigError> {
        let file = match file {
            Some(f) if !f.exists() => {
                return Err(ConfigError::Invalid {
                    key: "--config".into(),
                    reason: format!("{} does not exist", f.display()),
                })
            }
            Some(f) => Some(config::File::from(f).format(config::FileFormat::Toml)),
            None => None,
        };
        let env: std::collections::HashMap<String, String> = env.into_iter().collect();
        let vars: std::collections::HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("LSTM_AE__"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let env_source = config::Environment::with_prefix("LSTM_AE")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("data.feature_columns")
            .source(Some(vars));
        let user_sources = |mut b: config::ConfigBuilder<config::builder::DefaultState>| {
            if let Some(f) = &file {
                b = b.add_source(f.clone());
            }
            b.add_source(env_source.clone())
        };
        // What the file and the environment set, as plain JSON.
        let user: Option<serde_json::Value> = user_sources(config::Config::builder())
            .build()
            .ok()
            .and_then(|c| c.try_deserialize().ok());
        let mut defaults = serde_json::to_value(Settings::default())
            .map_err(|e| config::ConfigError::Foreign(Box::new(e)))?;
        if let (Some(data), Some(o)) = (data, defaults.as_object_mut()) {
            let data = serde_json::to_value(data)
                .map_err(|e| config::ConfigError::Foreign(Box::new(e)))?;
            o.insert("data".into(), data);
        }
        // A calibration rule other than the default takes only its own keys:
        // the default rule's keys merged under it would be unknown fields.
        let mut base = defaults.clone();
        let rule = user.as_ref().and_then(|u| {
            u.get("calibration")?
                .get("rule")?
                .as_str()
                .map(String::from)
        });
        if rule.is_some_and(|r| r != Settings::default().calibration.name()) {
            if let Some(o) = base.as_object_mut() {
                o.remove("calibration");
            }
        }
        let built =
            user_sources(config::Config::builder().add_source(config::Config::try_from(&base)?))
                .build()?;
        // The merged settings as plain JSON, to refuse what the config
        // crate's own conversion would round.
        if let Ok(merged) = built.clone().try_deserialize::<serde_json::Value>() {
            whole_numbers(&defaults, &merged, &mut String::new())?;
        }
        let mut s: Settings = built
            .try_deserialize()
            .map_err(|e| plain_error(e, Some(&defaults)))?;
        s.kafka.resolve(&env)?;
        s.validate()?;
        Ok(s)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: &str| {
            Err(ConfigError::Invalid {
                key: key.into(),
                reason: reason.into(),
            })
        };
        if self.data.stride == 0 {
            return bad("data.stride", "must be at least 1");
        }
        if let Err(e) = crate::data::parse_separator(&self.data.separator) {
            return bad("data.separator (--separator)", &e);
        }
        if !(self.data.validation_fraction > 0.0 && self.data.validation_fraction < 1.0) {
            return bad(
                "data.validation_fraction",
                "must be between 0 and 1 (exclusive)",
            );
        }
        if !(self.retrain.gate_fraction >= 0.0 && self.retrain.gate_fraction < 1.0) {
            return bad("retrain.gate_fraction", "must be in [0, 1)");
        }
        for (key, v) in [
            ("retrain.loss_tolerance", self.retrain.loss_tolerance),
            (
                "retrain.anomaly_rate_tolerance",
                self.retrain.anomaly_rate_tolerance,
            ),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(key, "must be a finite number >= 0");
            }
        }
        if self.training.epochs == 0 {
            return bad("training.epochs", "must be at least 1");
        }
        if self.training.batch_size == 0 {
            return bad("training.batch_size", "must be at least 1");
        }
        if !(self.training.learning_rate > 0.0 && self.training.learning_rate.is_finite()) {
            return bad("training.learning_rate", "must be a positive number");
        }
        if self.kafka.inputs.is_empty() {
            return bad("kafka.inputs", "needs at least one input topic");
        }
        for (key, v) in [
            ("kafka.brokers", &self.kafka.brokers),
            ("kafka.group_id", &self.kafka.group_id),
            ("kafka.embeddings_topic", &self.kafka.embeddings_topic),
            ("kafka.anomalies_topic", &self.kafka.anomalies_topic),
            ("kafka.dead_letter_topic", &self.kafka.dead_letter_topic),
        ] {
            if v.trim().is_empty() {
                return bad(key, "must not be empty");
            }
        }
        // Upper bounds: both size buffers allocated up front (a batch's
        // windows, the channel and permits between stages), so a typo of a
        // few digits must be an error here, not an allocation panic later.
        for (key, v, max) in [
            ("serve.max_batch", self.serve.max_batch, MAX_BATCH_LIMIT),
            (
                "serve.max_batches_in_flight",
                self.serve.max_batches_in_flight,
                MAX_BATCHES_IN_FLIGHT_LIMIT,
            ),
            (
                "serve.max_outputs_in_flight",
                self.serve.max_outputs_in_flight,
                MAX_OUTPUTS_IN_FLIGHT_LIMIT,
            ),
        ] {
            if v == 0 || v > max {
                return bad(key, &format!("{v} is outside 1..={max}"));
            }
        }
        if self.serve.inference_stall_ms == 0 {
            // Every call would count as stalled: /readyz would flap.
            return bad("serve.inference_stall_ms", "must be at least 1");
        }
        // Zero would time every check out; beyond an hour a hung store
        // would hold reloads for good in all but name.
        let check = self.serve.model_check_timeout_ms;
        if !(1..=3_600_000).contains(&check) {
            return bad(
                "serve.model_check_timeout_ms",
                &format!("{check} is outside 1..=3600000"),
            );
        }
        if self.kafka.max_message_bytes == 0 {
            // Every message would be dead-lettered as oversized.
            return bad("kafka.max_message_bytes", "must be at least 1");
        }
        if self.windowing.stride == 0 {
            return bad("windowing.stride", "must be at least 1");
        }
        if self.windowing.max_keys == 0 {
            return bad("windowing.max_keys", "must be at least 1");
        }
        let lt = self.anomalies.likelihood_threshold;
        if !(lt > 0.0 && lt <= 1.0) {
            return bad(
                "anomalies.likelihood_threshold",
                "must be in (0, 1]: likelihoods are in [0, 1]",
            );
        }
        if self.anomalies.min_consecutive.is_some() {
            return bad(
                "anomalies.min_consecutive",
                "was removed: a key's anomalous windows now form one incident, published when it opens and when it closes; set anomalies.close_after (normal windows that close an incident) instead",
            );
        }
        if self.anomalies.cooldown_windows.is_some() {
            return bad(
                "anomalies.cooldown_windows",
                "was removed: a key's anomalous windows now form one incident, published when it opens and when it closes; set anomalies.close_after (normal windows that close an incident) and anomalies.update_every (windows between updates of an open incident) instead",
            );
        }
        if self.anomalies.close_after == 0 {
            return bad("anomalies.close_after", "must be at least 1");
        }
        if self
            .serve
            .metrics_listen
            .parse::<std::net::SocketAddr>()
            .is_err()
        {
            return bad(
                "serve.metrics_listen",
                "must be an address like 127.0.0.1:9898",
            );
        }
        self.validate_group()?;
        if let Err(e) = self.model.for_features(1).validate() {
            return bad(&format!("model.{}", e.field), &e.reason);
        }
        if let Err(e) = self.postprocess.validate() {
            return bad(&format!("postprocess.{}", e.field), e.reason);
        }
        if let Err(e) = self.series_metrics.validate() {
            return bad(&format!("series_metrics.{}", e.field), &e.reason);
        }
        if let Err(e) = self.remote_write.validate() {
            return bad(&format!("remote_write.{}", e.field), &e.reason);
        }
        if self.feedback.max_marks == 0 {
            return bad("feedback.max_marks", "must be at least 1");
        }
        if self.feedback.start_timeout_ms == 0 {
            return bad("feedback.start_timeout_ms", "must be at least 1");
        }
        if !(self.feedback.raise_factor.is_finite() && self.feedback.raise_factor > 1.0) {
            return bad(
                "feedback.raise_factor",
                "must be a finite number above 1 (the raised threshold is the threshold times it)",
            );
        }
        if self.feedback.raise_after > 0 && self.feedback.raise_period_ms == 0 {
            return bad(
                "feedback.raise_period_ms",
                "must be at least 1 when feedback.raise_after is set",
            );
        }
        Ok(())
    }
}

impl Settings {
    /// Cross-field checks of the consumer group against the daemon's
    /// timing, with errors that name both keys.
    fn validate_group(&self) -> Result<(), ConfigError> {
        let k = &self.kafka;
        let bad = |key: &str, reason: String| {
            Err(ConfigError::Invalid {
                key: key.into(),
                reason,
            })
        };
        let session = k.effective_session_timeout_ms()?;
        let session_key = if k.consumer_property("session.timeout.ms").is_some() {
            "kafka.consumer.\"session.timeout.ms\""
        } else {
            "kafka.session_timeout_ms"
        };
        if session == 0 {
            return bad(session_key, "must be at least 1".into());
        }
        // A member silent for longer than the session is expired and its
        // partitions handed on while it still drains and commits: the drain
        // would then race the new owner (duplicates, failed commits).
        if self.serve.drain_timeout_ms >= session {
            return bad(
                "serve.drain_timeout_ms",
                format!(
                    "{} ms must be below {session_key} ({session} ms): a member that drains longer than its session is expired mid-drain",
                    self.serve.drain_timeout_ms
                ),
            );
        }
        let ms = |key: &str| -> Result<Option<u64>, ConfigError> {
            match k.consumer_property(key) {
                None => Ok(None),
                Some(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| ConfigError::Invalid {
                        key: format!("kafka.consumer.\"{key}\""),
                        reason: format!("{v:?} is not a number of milliseconds"),
                    }),
            }
        };
        if let Some(hb) = ms("heartbeat.interval.ms")? {
            if hb >= session {
                return bad(
                    "kafka.consumer.\"heartbeat.interval.ms\"",
                    format!("{hb} ms must be below {session_key} ({session} ms)"),
                );
            }
        }
        if let Some(poll) = ms("max.poll.interval.ms")? {
            if poll < session {
                return bad(
                    "kafka.consumer.\"max.poll.interval.ms\"",
                    format!("{poll} ms must be at least {session_key} ({session} ms)"),
                );
            }
        }
        // The daemon commits only what is acknowledged; librdkafka's own
        // commits would pass points still buffered in windows.
        for key in ["enable.auto.commit", "enable.auto.offset.store"] {
            if k.consumer_property(key).is_some_and(librdkafka_true) {
                return bad(
                    &format!("kafka.consumer.\"{key}\""),
                    "must stay false: the daemon commits offsets itself, only once outputs are acknowledged".into(),
                );
            }
        }
        for (key, field, value) in [
            (
                "group.instance.id",
                "kafka.instance_id",
                k.instance_id.as_str(),
            ),
            ("group.id", "kafka.group_id", k.group_id.as_str()),
        ] {
            if let Some(v) = k.consumer_property(key) {
                if !value.is_empty() && v != value {
                    return bad(
                        &format!("kafka.consumer.\"{key}\""),
                        format!("{v:?} contradicts {field} ({value:?}): set one of them"),
                    );
                }
            }
        }
        Ok(())
    }
}

/// Refuses a fractional value (`epochs = 2.5`) for a setting whose default
/// is a whole number, which the config crate would silently round.
fn whole_numbers(
    default: &serde_json::Value,
    merged: &serde_json::Value,
    key: &mut String,
) -> Result<(), ConfigError> {
    use serde_json::Value;
    match (default, merged) {
        (Value::Object(d), Value::Object(m)) => {
            for (k, dv) in d {
                if let Some(mv) = m.get(k) {
                    let len = key.len();
                    if !key.is_empty() {
                        key.push('.');
                    }
                    key.push_str(k);
                    whole_numbers(dv, mv, key)?;
                    key.truncate(len);
                }
            }
        }
        (Value::Number(d), Value::Number(m)) if !d.is_f64() => {
            if let Some(v) = m.as_f64().filter(|v| m.is_f64() && v.fract() != 0.0) {
                return Err(ConfigError::Invalid {
                    key: key.clone(),
                    reason: format!("{v} is not a whole number"),
                });
            }
        }
        _ => {}
    }
    Ok(())
}

/// The config crate's conversion errors in plain words, naming the key:
/// a wrong type says what the key takes, a misspelt enumerated value lists
/// the valid ones (which the config crate leaves out). Other errors pass
/// through.
fn plain_error(e: config::ConfigError, defaults: Option<&serde_json::Value>) -> ConfigError {
    let in_origin = |origin: &Option<String>| {
        origin
            .as_ref()
            .map(|o| format!(" (in {o})"))
            .unwrap_or_default()
    };
    match &e {
        config::ConfigError::Type {
            origin,
            unexpected,
            expected,
            key: Some(key),
        } => {
            let found = unexpected.to_string();
            // `64-bit integer `-1``: the value is between the backticks.
            let value = found
                .split('`')
                .nth(1)
                .map(|v| format!("`{v}`"))
                .unwrap_or(found);
            let takes = if expected.contains("unsigned") {
                "a whole number, 0 or more"
            } else if expected.contains("integer") {
                "a whole number"
            } else if expected.contains("float") {
                "a number"
            } else if expected.contains("bool") {
                "true or false"
            } else if expected.contains("string") {
                "a string (in quotes)"
            } else {
                expected
            };
            ConfigError::Invalid {
                key: key.clone(),
                reason: format!("{value} is not {takes}{}", in_origin(origin)),
            }
        }
        config::ConfigError::At {
            error,
            origin,
            key: Some(key),
        } => match (error.as_ref(), defaults) {
            (config::ConfigError::Message(m), Some(defaults))
                if m.contains("does not have variant constructor") =>
            {
                let value = m.rsplit(' ').next().unwrap_or_default();
                ConfigError::Invalid {
                    key: key.clone(),
                    reason: format!(
                        "`{value}` is not one of {}{}",
                        valid_values(defaults, key, value)
                            .unwrap_or_else(|| "the valid values (docs/configuration.md)".into()),
                        in_origin(origin)
                    ),
                }
            }
            _ => ConfigError::Load(e),
        },
        _ => ConfigError::Load(e),
    }
}

/// The valid values of the enumerated setting at `key`, as serde lists them
/// when `value` is put there in the defaults: "`error`, `previous`, `linear`"
/// or "`tanh` or `relu`".
fn valid_values(defaults: &serde_json::Value, key: &str, value: &str) -> Option<String> {
    let mut settings = defaults.clone();
    let mut at = &mut settings;
    for part in key.split('.') {
        at = at.get_mut(part)?;
    }
    *at = serde_json::Value::String(value.into());
    let err = serde_json::from_value::<Settings>(settings)
        .err()?
        .to_string();
    // "unknown variant `x`, expected one of `a`, `b`" (or "expected `a` or `b`").
    let (_, list) = err
        .split_once("unknown variant")?
        .1
        .split_once(", expected ")?;
    Some(list.trim_start_matches("one of ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        vec![]
    }

    #[test]
    fn a_calibration_table_takes_only_its_rules_keys() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        let load = |toml: &str| {
            std::fs::write(&f, toml).unwrap();
            Settings::load_with_env(Some(&f), no_env())
        };
        // Without `rule`, the keys given override the default rule's.
        let s = load("[calibration]\nrisk = 0.01\n").unwrap();
        let ThresholdRule::Pot { risk, .. } = s.calibration else {
            panic!("{:?}", s.calibration)
        };
        assert_eq!(risk, 0.01);
        let s = load("calibration = { rule = \"mean_std\", k = 3.0 }\n").unwrap();
        assert_eq!(s.calibration, ThresholdRule::MeanStd { k: 3.0 });
        for bad in [
            "calibration = { rule = \"pot\", q = 0.99 }\n",
            "calibration = { rule = \"quantile\", q = 0.99, risk = 0.01 }\n",
        ] {
            let err = load(bad).unwrap_err().to_string();
            assert!(err.contains("unknown field"), "{bad}: {err}");
        }
    }

    #[test]
    fn built_in_defaults_load_and_validate() {
        let s = Settings::load_with_env(None, no_env()).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[model]\nhidden = 16\nactivation = \"relu\"\n[training]\nepochs = 7\n[calibration]\nrule = \"quantile\"\nq = 0.99\n",
        )
        .unwrap();
        let env = vec![("LSTM_AE__TRAINING__EPOCHS".to_string(), "9".to_string())];
        let s = Settings::load_with_env(Some(&f), env).unwrap();
        assert_eq!(s.model.hidden, 16);
        assert_eq!(s.model.activation, crate::model::Activation::Relu);
        assert_eq!(s.training.epochs, 9);
        assert_eq!(s.calibration, ThresholdRule::Quantile { q: 0.99 });
        assert_eq!(s.model.window, ModelSpec::default().window);
    }

    #[test]
    fn librdkafka_properties_pass_through_with_their_dots() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "[kafka]\nbrokers = \"b:1\"\n[[kafka.inputs]]\ntopic = \"t\"\nformat = \"binary_windows\"\n[kafka.consumer]\n\"fetch.min.bytes\" = \"1\"\n\"security.protocol\" = \"SASL_SSL\"\n",
        )
        .unwrap();
        let s = Settings::load_with_env(Some(&f), no_env()).unwrap();
        assert_eq!(s.kafka.brokers, "b:1");
        assert_eq!(
            s.kafka.inputs[0].format,
            crate::stream::codec::Format::BinaryWindows
        );
        assert_eq!(
            s.kafka.consumer.get("fetch.min.bytes").map(String::as_str),
            Some("1")
        );
        assert_eq!(
            s.kafka
                .consumer
                .get("security.protocol")
                .map(String::as_str),
            Some("SASL_SSL")
        );
    }

    #[test]
    fn the_serve_example_loads_and_documents_the_defaults() {
        let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/serve.example.toml");
        let s = Settings::load_with_env(Some(&f), no_env()).unwrap();
        let d = Settings::default();
        assert_eq!(s.anomalies, d.anomalies);
        assert_eq!(s.postprocess, d.postprocess);
        assert_eq!(s.windowing, d.windowing);
        let k = (
            &s.kafka.instance_id,
            s.kafka.static_membership,
            s.kafka.session_timeout_ms,
        );
        assert_eq!(
            k,
            (
                &d.kafka.instance_id,
                d.kafka.static_membership,
                d.kafka.session_timeout_ms
            )
        );
        assert_eq!(s.serve.drain_timeout_ms, d.serve.drain_timeout_ms);
    }

    #[test]
    fn the_anomaly_rule_is_chosen_by_name_and_its_threshold_checked() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let s =
            Settings::load_with_env(None, env("LSTM_AE__ANOMALIES__RULE", "likelihood")).unwrap();
        assert_eq!(s.anomalies.rule, AnomalyRule::Likelihood);
        let e = Settings::load_with_env(None, env("LSTM_AE__ANOMALIES__RULE", "fancy"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("fancy"), "{e}");
        let e =
            Settings::load_with_env(None, env("LSTM_AE__ANOMALIES__LIKELIHOOD_THRESHOLD", "1.5"))
                .unwrap_err()
                .to_string();
        assert!(e.contains("anomalies.likelihood_threshold"), "{e}");
    }

    #[test]
    fn postprocess_section_loads_and_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[postprocess]\nrefractory = 7\nshort_window = 3\n").unwrap();
        let s = Settings::load_with_env(Some(&f), no_env()).unwrap();
        assert_eq!(
            (s.postprocess.refractory, s.postprocess.short_window),
            (7, 3)
        );
        std::fs::write(&f, "[postprocess]\nshort_window = 0\n").unwrap();
        let e = Settings::load_with_env(Some(&f), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("postprocess.short_window"), "{e}");
    }

    #[test]
    fn fill_and_timestamp_order_are_named_values_and_others_are_refused() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let s = Settings::load_with_env(None, env("LSTM_AE__DATA__FILL", "linear")).unwrap();
        assert_eq!(s.data.csv_options().fill, FillRule::Linear);
        let s =
            Settings::load_with_env(None, env("LSTM_AE__DATA__TIMESTAMP_ORDER", "file")).unwrap();
        assert_eq!(
            s.data.csv_options().timestamp_order,
            TimestampOrder::Unchecked
        );
        // Once a misspelling fell back to `error` / `increasing` silently.
        for (k, v) in [
            ("LSTM_AE__DATA__FILL", "linaer"),
            ("LSTM_AE__DATA__TIMESTAMP_ORDER", "unchecked"),
        ] {
            let e = Settings::load_with_env(None, env(k, v))
                .unwrap_err()
                .to_string();
            assert!(e.contains(v), "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[model]\nhiden = 16\n").unwrap();
        let e = Settings::load_with_env(Some(&f), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("hiden"), "{e}");
        let env = vec![("LSTM_AE__TRAINING__EPOCS".to_string(), "3".to_string())];
        let e = Settings::load_with_env(None, env).unwrap_err().to_string();
        assert!(e.to_lowercase().contains("epocs"), "{e}");
    }

    #[test]
    fn the_storm_rule_keys_are_refused_naming_their_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[anomalies]\nmin_consecutive = 3\n").unwrap();
        let e = Settings::load_with_env(Some(&f), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("anomalies.min_consecutive") && e.contains("anomalies.close_after"),
            "{e}"
        );
        let env = vec![(
            "LSTM_AE__ANOMALIES__COOLDOWN_WINDOWS".to_string(),
            "5".to_string(),
        )];
        let e = Settings::load_with_env(None, env).unwrap_err().to_string();
        assert!(
            e.contains("anomalies.cooldown_windows") && e.contains("anomalies.update_every"),
            "{e}"
        );
        let env = vec![(
            "LSTM_AE__ANOMALIES__CLOSE_AFTER".to_string(),
            "0".to_string(),
        )];
        let e = Settings::load_with_env(None, env).unwrap_err().to_string();
        assert!(e.contains("anomalies.close_after"), "{e}");
        // Nor do they come back when the settings are written out.
        let s = Settings::default();
        let text = serde_json::to_string(&s.anomalies).unwrap();
        assert!(
            !text.contains("min_consecutive") && !text.contains("cooldown"),
            "{text}"
        );
    }

    #[test]
    fn invalid_values_are_named() {
        let env = vec![(
            "LSTM_AE__DATA__VALIDATION_FRACTION".to_string(),
            "1.5".to_string(),
        )];
        let e = Settings::load_with_env(None, env).unwrap_err().to_string();
        assert!(e.contains("data.validation_fraction"), "{e}");
        let env = vec![("LSTM_AE__MODEL__HIDDEN".to_string(), "0".to_string())];
        let e = Settings::load_with_env(None, env).unwrap_err().to_string();
        assert!(e.contains("model.hidden"), "{e}");
        let e = Settings::load_with_env(Some(Path::new("/nonexistent.toml")), no_env())
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent.toml"), "{e}");
    }

    #[test]
    fn the_threshold_raise_settings_are_checked_naming_the_key() {
        let load = |pairs: &[(&str, &str)]| {
            let env: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Settings::load_with_env(None, env)
        };
        for factor in ["1", "0.5", "NaN", "inf"] {
            let e = load(&[("LSTM_AE__FEEDBACK__RAISE_FACTOR", factor)])
                .unwrap_err()
                .to_string();
            assert!(e.contains("feedback.raise_factor"), "{factor}: {e}");
        }
        let e = load(&[
            ("LSTM_AE__FEEDBACK__RAISE_AFTER", "3"),
            ("LSTM_AE__FEEDBACK__RAISE_PERIOD_MS", "0"),
        ])
        .unwrap_err()
        .to_string();
        assert!(e.contains("feedback.raise_period_ms"), "{e}");
        let s = load(&[
            ("LSTM_AE__FEEDBACK__RAISE_AFTER", "3"),
            ("LSTM_AE__FEEDBACK__RAISE_FACTOR", "2"),
        ])
        .unwrap();
        assert_eq!((s.feedback.raise_after, s.feedback.raise_factor), (3, 2.0));
        assert_eq!(Settings::default().feedback.raise_after, 0);
    }

    #[test]
    fn the_drain_must_end_within_the_group_session_and_both_keys_are_named() {
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let e = Settings::load_with_env(
            None,
            env(&[
                ("LSTM_AE__SERVE__DRAIN_TIMEOUT_MS", "10000"),
                ("LSTM_AE__KAFKA__SESSION_TIMEOUT_MS", "6000"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("serve.drain_timeout_ms") && e.contains("kafka.session_timeout_ms"),
            "{e}"
        );
        // A raw session.timeout.ms is the one in effect, and is named.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[kafka.consumer]\n\"session.timeout.ms\" = \"5000\"\n").unwrap();
        let e = Settings::load_with_env(Some(&f), no_env())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("serve.drain_timeout_ms") && e.contains("session.timeout.ms"),
            "{e}"
        );
        let ok = Settings::load_with_env(
            Some(&f),
            env(&[("LSTM_AE__SERVE__DRAIN_TIMEOUT_MS", "4000")]),
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn group_settings_that_contradict_each_other_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        let refused = |toml: &str, words: &[&str]| {
            std::fs::write(&f, toml).unwrap();
            let e = Settings::load_with_env(Some(&f), no_env())
                .unwrap_err()
                .to_string();
            for w in words {
                assert!(e.contains(w), "{w} in {e}");
            }
        };
        refused(
            "[kafka.consumer]\n\"heartbeat.interval.ms\" = \"40000\"\n",
            &["heartbeat.interval.ms", "kafka.session_timeout_ms"],
        );
        refused(
            "[kafka.consumer]\n\"max.poll.interval.ms\" = \"1000\"\n",
            &["max.poll.interval.ms", "kafka.session_timeout_ms"],
        );
        refused(
            "[kafka.common]\n\"enable.auto.commit\" = \"true\"\n",
            &["enable.auto.commit"],
        );
        refused(
            "[kafka]\ninstance_id = \"a\"\n[kafka.consumer]\n\"group.instance.id\" = \"b\"\n",
            &["group.instance.id", "kafka.instance_id"],
        );
        refused(
            "[kafka.consumer]\n\"session.timeout.ms\" = \"soon\"\n",
            &["session.timeout.ms", "soon"],
        );
    }

    #[test]
    fn bad_serve_and_kafka_values_are_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        for (toml, key) in [
            (
                "[kafka.consumer]\n\"enable.auto.commit\" = \"TRUE\"\n",
                "enable.auto.commit",
            ),
            (
                "[kafka.consumer]\n\"enable.auto.commit\" = \"True\"\n",
                "enable.auto.commit",
            ),
            (
                "[kafka.common]\n\"enable.auto.commit\" = \"1\"\n",
                "enable.auto.commit",
            ),
            (
                "[kafka.consumer]\n\"enable.auto.commit\" = \" t \"\n",
                "enable.auto.commit",
            ),
            (
                "[kafka.consumer]\n\"enable.auto.offset.store\" = \"T\"\n",
                "enable.auto.offset.store",
            ),
            (
                "[serve]\nmodel_check_timeout_ms = 0\n",
                "serve.model_check_timeout_ms",
            ),
            (
                "[serve]\nmodel_check_timeout_ms = 3600001\n",
                "serve.model_check_timeout_ms",
            ),
            (
                "[serve]\ninference_stall_ms = 0\n",
                "serve.inference_stall_ms",
            ),
            (
                "[kafka]\nmax_message_bytes = 0\n",
                "kafka.max_message_bytes",
            ),
            ("[serve]\nmax_batch = 100000000000\n", "serve.max_batch"),
            (
                "[serve]\nmax_batches_in_flight = 100000000000\n",
                "serve.max_batches_in_flight",
            ),
            (
                "[serve]\nmax_batch = 9223372036854775807\n",
                "serve.max_batch",
            ),
        ] {
            std::fs::write(&f, toml).unwrap();
            let e = match Settings::load_with_env(Some(&f), no_env()) {
                Ok(_) => panic!("{toml:?} was accepted"),
                Err(e) => e.to_string(),
            };
            assert!(e.contains(key), "{toml:?}: {key} in {e}");
        }
        // librdkafka's false forms stay accepted.
        for v in ["false", "FALSE", "0", "f"] {
            std::fs::write(
                &f,
                format!("[kafka.consumer]\n\"enable.auto.commit\" = \"{v}\"\n"),
            )
            .unwrap();
            let ok = Settings::load_with_env(Some(&f), no_env());
            assert!(ok.is_ok(), "{v}: {ok:?}");
        }
    }
}
