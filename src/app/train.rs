//! `lstm-ae train`: trains a bundle on a CSV with the shared pipeline
//! ([`super::pipeline`]), writes its report and prints a summary.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::pipeline;
use crate::cli::TrainArgs;
use crate::config::Settings;

/// `lstm-ae train`: the settings, then the flags over them.
pub fn run(a: TrainArgs) -> Result<()> {
    let mut s = super::settings::load(a.config.as_deref(), &a.csv)?;
    let m = &mut s.model;
    if let Some(v) = a.window {
        m.window = v;
    }
    if let Some(v) = a.hidden {
        m.hidden = v;
    }
    if let Some(v) = a.horizon {
        m.horizon = v;
    }
    if let Some(v) = a.mode {
        m.mode = v;
    }
    if let Some(v) = a.activation {
        m.activation = v;
    }
    if let Some(v) = a.decoder_input {
        m.decoder_input = v;
    }
    if let Some(v) = a.rows {
        s.data.max_rows = v;
    }
    let t = &mut s.training;
    if let Some(v) = a.batch_size {
        t.batch_size = v;
    }
    if let Some(v) = a.epochs {
        t.epochs = v;
    }
    if let Some(v) = a.learning_rate {
        t.learning_rate = v;
    }
    if let Some(v) = a.seed {
        t.seed = v;
    }
    if let Some(v) = a.threads {
        t.threads = v;
    }
    s.validate()?;
    check_out(&a.out, a.force)?;
    train_and_report(&s, &a.data, &a.out, a.quiet)
}

/// Refuses, before any training, to write into a folder that holds
/// something unless `force`: a bundle that took hours to train is
/// otherwise lost to a repeated command or a typo.
fn check_out(out: &Path, force: bool) -> Result<()> {
    if force {
        return Ok(());
    }
    let mut entries = match std::fs::read_dir(out) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(_) if out.exists() => {
            bail!(
                "--out {} exists and is not a folder; choose another --out",
                out.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("reading --out {}", out.display())),
    };
    if entries.next().is_none() {
        return Ok(());
    }
    if out.join(crate::model::bundle::MANIFEST_FILE).exists() {
        bail!(
            "--out {} already holds a bundle; pass --force to replace it, or choose another --out",
            out.display()
        )
    }
    bail!(
        "--out {} is a folder that is not empty; pass --force to write the bundle into it anyway, \
         or choose another --out",
        out.display()
    )
}

/// Trains, writes the bundle and its report, prints a summary.
fn train_and_report(s: &Settings, data_path: &Path, out: &Path, quiet: bool) -> Result<()> {
    let stop = super::progress::stop_on_ctrl_c();
    let mut progress = super::progress::Bar::new(s.training.epochs, quiet);
    let trained = pipeline::train_bundle(s, data_path, out, &mut progress, &stop)
        .with_context(|| format!("training on {}", data_path.display()))?;
    progress.bar.finish_and_clear();
    let report = super::train_report::write(&trained, &pipeline::report_dir(out))
        .with_context(|| format!("writing the report into {}", out.display()))?;
    let m = &trained.bundle.manifest;
    let threshold = if m.spec.mode.has_reconstruction() {
        format!(
            "threshold {:.5} ({} rule)",
            m.threshold.value,
            match &m.threshold.fallback {
                None => m.threshold.rule.name().to_string(),
                Some(f) => format!("{}, fallback", f.rule.name()),
            }
        )
    } else {
        "no threshold (a predict-only model has no anomaly score)".to_string()
    };
    println!(
        "wrote {} (model {} v{}): best epoch {} of {} ({}), validation loss {}, {threshold}, {:.1} s, {:.2} s per epoch",
        out.display(),
        m.model_id,
        m.model_version,
        m.training.best_epoch,
        m.training.epochs_run,
        super::models::stop_text(m.training.stopped),
        super::progress::loss(m.training.best_validation_loss.total),
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
