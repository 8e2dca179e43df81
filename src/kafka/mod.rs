//! Every Kafka client the project builds, built in one place so that the
//! security settings (`[kafka.common]`, the SASL password secret) reach all
//! of them: the daemon's consumer and producer, the history reader of
//! `retrain` / `recalibrate --from-kafka`, the replay producer of `produce`
//! and the demo, and the demo's printer.
//!
//! - [`clients`]: each client's properties ([`Client`], [`config()`]): our
//!   defaults, then the user's tables, then the secret, then what a client
//!   must keep whatever the tables say.
//! - [`consumer`]: the daemon consumer's context (rebalances, statistics),
//!   the committer, and the copy of a message for the dead-letter topic.
//! - [`history`]: a time or offset range of the input topics read back
//!   outside any consumer group.
//! - [`read_to_end`]: reading partitions from given offsets to their end
//!   offsets, and knowing when that is done (transaction markers, holes).

pub mod clients;
pub mod consumer;
pub mod feedback;
pub mod history;
pub mod read_to_end;

pub use clients::{config, Client};
