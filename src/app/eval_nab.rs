//! `lstm-ae eval nab`: the NAB benchmark ([`crate::eval`]) as a command:
//! settings and flags in, the results tree and report written, the three
//! profile scores printed.

use anyhow::{Context, Result};

use crate::cli::EvalNabArgs;
use crate::eval::nab::run::{run_nab, EvaluatedSeries, NabEvalConfig};
use crate::eval::nab::{self, report};

/// `lstm-ae eval nab`: runs the evaluation, writes NAB's results tree and
/// the report, prints the profile scores.
pub fn run(a: EvalNabArgs) -> Result<()> {
    let mut cfg = match &a.config {
        Some(path) => NabEvalConfig::load(path)?,
        None => NabEvalConfig::default(),
    };
    if let Some(t) = a.threads {
        cfg.threads = t;
    }
    let labels = a
        .labels
        .clone()
        .unwrap_or_else(|| nab::NabLayout::locate(&a.data).windows);
    let progress = |ev: &EvaluatedSeries, done: usize, total: usize| {
        tracing::info!(
            series = %ev.key,
            rows = ev.values.len(),
            seconds = format!("{:.1}", ev.seconds),
            "{done}/{total} scored"
        );
    };
    let result = run_nab(&a.data, &labels, &a.out, &cfg, &progress)
        .with_context(|| format!("evaluating on {}", a.data.display()))?;
    let written = report::write(&a.out, &result, &cfg)
        .with_context(|| format!("writing the report into {}", a.out.display()))?;
    for line in report::console_lines(&result) {
        println!("{line}");
    }
    println!(
        "{} series in {:.1} s; results in {}, report {}",
        result.series.len(),
        result.seconds,
        a.out.join("results").join(&result.detector).display(),
        written
            .first()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}
