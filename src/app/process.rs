//! What the commands that talk to Kafka (`serve`, `demo`, `produce`) share
//! as a process: their tokio runtime.

use anyhow::{Context, Result};

/// A multi-threaded tokio runtime with I/O and timers.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
