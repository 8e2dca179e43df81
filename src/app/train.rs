//! `lstm-ae train`: trains a bundle on a CSV with the shared pipeline
//! ([`super::pipeline`]), writes its report and prints a summary.

use std::path::Path;

use anyhow::{Context, Result};

use super::pipeline;
use crate::config::Settings;

/// `lstm-ae train`: trains, writes the bundle and its report, prints a summary.
pub fn run(s: &Settings, data_path: &Path, out: &Path, quiet: bool) -> Result<()> {
    let stop = super::progress::stop_on_ctrl_c();
    let mut progress = super::progress::Bar::new(s.training.epochs, quiet);
    let trained = pipeline::train_bundle(s, data_path, out, &mut progress, &stop)
        .with_context(|| format!("training on {}", data_path.display()))?;
    progress.bar.finish_and_clear();
    let report = super::train_report::write(&trained, &pipeline::report_dir(out))
        .with_context(|| format!("writing the report into {}", out.display()))?;
    let m = &trained.bundle.manifest;
    println!(
        "wrote {} (model {} v{}): best epoch {} of {} ({:?}), validation loss {:.5}, threshold {:.5} ({} rule), {:.1} s, {:.2} s per epoch",
        out.display(),
        m.model_id,
        m.model_version,
        m.training.best_epoch,
        m.training.epochs_run,
        m.training.stopped,
        m.training.best_validation_loss.total,
        m.threshold.value,
        match &m.threshold.fallback {
            None => m.threshold.rule.name().to_string(),
            Some(f) => format!("{}, fallback", f.rule.name()),
        },
        m.training.seconds,
        m.training.history.iter().map(|h| h.seconds).sum::<f64>() / m.training.history.len().max(1) as f64
    );
    println!(
        "report: {}",
        report
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
