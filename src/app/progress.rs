//! The training progress bar (`train`, `retrain`): one bar over all
//! batches of all epochs with the latest losses, or nothing but the
//! per-epoch log lines when no terminal is attached or `--quiet` is given.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use crate::train::fit::{EpochStats, Progress};

pub struct Bar {
    pub bar: ProgressBar,
    epochs: usize,
}

impl Bar {
    /// A bar on stderr when it is a terminal and `quiet` is off.
    pub fn new(epochs: usize, quiet: bool) -> Bar {
        let bar = if quiet || !std::io::stderr().is_terminal() {
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
        Bar { bar, epochs }
    }
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

/// A flag Ctrl-C sets: training finishes the current batch and keeps the
/// best epoch so far; a second Ctrl-C exits at once (code 130).
pub fn stop_on_ctrl_c() -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: stopping after this batch and keeping the best epoch (Ctrl-C again to abort)");
    });
    stop
}
