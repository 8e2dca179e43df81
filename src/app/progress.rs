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
            "epoch {}/{} loss {} val {}{}",
            s.epoch,
            self.epochs,
            loss(s.train.total),
            loss(s.validation.total),
            if best { " *" } else { "" }
        ));
        self.bar.suspend(|| {
            tracing::info!(
                epoch = s.epoch,
                loss = %loss(s.train.total),
                val_loss = %loss(s.validation.total),
                seconds = format!("{:.2}", s.seconds),
                best,
                "epoch"
            )
        });
    }
}

/// A loss as every command prints it: 4 significant digits (`0.001234`,
/// `12.35`, `1.234e-7`), enough to compare epochs and versions; the
/// manifest keeps the full value.
pub fn loss(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return x.to_string();
    }
    // Rounded first, so that 9.9996 counts as the 10.00 it prints as.
    let rounded: f64 = format!("{x:.3e}").parse().unwrap_or(x);
    let magnitude = rounded.abs().log10().floor() as i32;
    if (-4..6).contains(&magnitude) {
        let decimals = (3 - magnitude).max(0) as usize;
        format!("{rounded:.decimals$}")
    } else {
        format!("{rounded:.3e}")
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

#[cfg(test)]
mod tests {
    use super::loss;

    #[test]
    fn losses_print_with_four_significant_digits() {
        for (x, printed) in [
            (0.123456789, "0.1235"),
            (0.0012345678, "0.001235"),
            (12.3456, "12.35"),
            (9.99961, "10.00"),
            (1234.5678, "1235"),
            (0.00001234567, "1.235e-5"),
            (0.0, "0"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(loss(x), printed, "{x}");
        }
    }
}
