//! The daemon's Kafka-independent core: everything `lstm-ae serve` decides
//! about messages, windows, batches and offsets, as plain synchronous code.
//!
//! The Kafka glue (consumer, producer, tokio tasks) lives elsewhere and only
//! moves data between these pieces; keeping the decisions here means they are
//! unit-tested without a broker, and the at-least-once argument can be read
//! in one place.
//!
//! - [`codec`]: decoding and validating input messages (JSON points, JSON
//!   windows, a compact binary window encoding).
//! - [`records`]: the output records (embeddings, anomalies, scores).
//! - [`dead_letter`]: the headers that say why a message was rejected.
//! - [`windower`]: per-key sliding windows over points, with bounded memory
//!   (TTL and max-keys eviction) and the offsets its buffers still need.
//! - [`offsets`]: the commit rule: per partition, the offset that is safe to
//!   commit given in-flight outputs and windower buffers.
//! - [`batcher`]: the batching policy (full batch or deadline) for the
//!   inference backend.
//!
//! ## How the pieces meet (the contract for the glue)
//!
//! For every consumed message at `(partition, offset)`:
//!
//! 1. [`offsets::OffsetTracker::consumed`] registers it; the returned
//!    [`offsets::Hold`] keeps the offset uncommitted while the message is
//!    being handled.
//! 2. [`codec::decode`] turns it into a point or a window, or a
//!    [`codec::CodecError`] → dead letter ([`dead_letter::DeadLetterHeaders`]);
//!    the message's hold is released once the dead letter is acknowledged.
//! 3. A point goes to [`windower::Windower::push`]. Each emitted window's
//!    [`windower::Window::holds`] are turned into tracker holds *before* the
//!    message's own hold is released, so there is no instant at which the
//!    offset is held by nobody. A point the windower keeps in a buffer is
//!    covered by [`windower::Windower::min_held_offset`]; a late or skipped
//!    point needs nothing, so its hold is released at once.
//! 4. A window (decoded or emitted) goes through the [`batcher::Batcher`] to
//!    the backend; its holds are released when every output for it has been
//!    acknowledged by the broker.
//! 5. Periodically, [`offsets::OffsetTracker::committable`] with the
//!    windower's minimum gives the offset to commit.

pub mod batcher;
pub mod codec;
pub mod dead_letter;
pub mod offsets;
pub mod records;
pub mod windower;

/// A parameter of a stream component is out of range. Returned by
/// constructors so a bad configuration fails at start-up, not mid-stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ParamError {
    /// The parameter, as named in the constructor's config.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ParamError {
    pub(crate) fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}
