//! What goes wrong in the daemon: inside the running pipeline
//! ([`PipelineError`], shared by the stages) and for the run as a whole
//! ([`ServeError`]).

use crate::infer::InferError;

/// What goes wrong inside the running pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("inference thread {thread}: {source}")]
    Inference { thread: usize, source: InferError },
    #[error("an inference thread stopped")]
    InferenceStopped,
    #[error("cannot start an inference thread: {0}")]
    Spawn(std::io::Error),
    #[error("cannot start the offset commit thread: {0}")]
    CommitThread(std::io::Error),
    #[error("the model did not return {0}")]
    MissingOutput(&'static str),
    #[error("producing to {topic} failed: {source}")]
    Produce {
        topic: String,
        source: rdkafka::error::KafkaError,
    },
    #[error("the producer dropped a message for {topic}")]
    Dropped { topic: String },
    #[error("encoding an output record: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("a pipeline task failed: {0}")]
    SinkTask(tokio::task::JoinError),
    #[error("the sink stopped before the input did")]
    SinkStopped,
    #[error(
        "{0} scored batches waited for an earlier batch that an inference thread never finished"
    )]
    OrderLost(usize),
    #[error(transparent)]
    Param(#[from] crate::stream::ParamError),
    #[error(transparent)]
    Postprocess(#[from] crate::score::PostprocessError),
    #[error(transparent)]
    ModelChange(#[from] crate::score::ModelChange),
}

/// Why a run of the daemon did not start or did not end cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Bundle(#[from] crate::model::BundleError),
    #[error(transparent)]
    Store(#[from] crate::model::store::StoreError),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error("model {0} has no reconstruction decoder, so no anomaly score: serve a composite or reconstruct model")]
    NoScore(String),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("metrics listener on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    SeriesMetrics(#[from] super::series::SeriesSettingsError),
    #[error(transparent)]
    RemoteWrite(#[from] super::remote_write::RemoteWriteError),
    #[error("feedback topic (kafka.feedback_topic): {0}")]
    Feedback(String),
}
