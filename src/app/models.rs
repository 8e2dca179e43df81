//! `lstm-ae models list | show | promote | rollback | import`: the model
//! store for humans (and scripts: `list` prints one line per version); and
//! `lstm-ae inspect`, which prints one bundle's manifest the same way.

use std::path::Path;

use anyhow::Result;

use super::settings::name;
use crate::cli::{InspectArgs, ModelsCommand};
use crate::model::manifest::{DataSource, Lineage, Origin, StopReason};
use crate::model::store::Store;
use crate::model::{onnx, Bundle, Manifest, ThresholdRule};

/// `lstm-ae models …`.
pub fn run(c: ModelsCommand) -> Result<()> {
    match c {
        ModelsCommand::List { store } => list(&store),
        ModelsCommand::Show {
            store,
            version,
            json,
        } => show(&store, version, json),
        ModelsCommand::Promote {
            store,
            version,
            force,
        } => promote(&store, version, force),
        ModelsCommand::Rollback { store } => rollback(&store),
        ModelsCommand::Import {
            store,
            bundle,
            no_promote,
            if_empty,
        } => import(&store, &bundle, no_promote, if_empty),
    }
}

/// `lstm-ae inspect`: a bundle's manifest, for humans or as JSON.
pub fn inspect(a: InspectArgs) -> Result<()> {
    let b = Bundle::open(&a.dir)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&b.manifest)?);
    } else {
        print_manifest(&b.manifest);
    }
    Ok(())
}

/// One line per version: number, live marker, origin, parent, gate, created.
pub fn list(root: &Path) -> Result<()> {
    let store = Store::open(root)?;
    let current = store.current()?;
    let versions = store.versions()?;
    if versions.is_empty() {
        println!("{}: no versions", root.display());
        return Ok(());
    }
    println!("version  live  origin       parent  gate      created               validation-loss  threshold");
    for v in versions {
        let live = if Some(v) == current { "*" } else { "" };
        match store.open_version(v) {
            Ok(b) => {
                let m = &b.manifest;
                let (origin, parent, gate) = match &m.lineage {
                    None => ("train".to_string(), "-".to_string(), "-".to_string()),
                    Some(l) => (
                        serde_json::to_value(l.origin)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_string))
                            .unwrap_or_default(),
                        l.parent_version
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| "-".into()),
                        match &l.gate {
                            None => "-".into(),
                            Some(g) if g.forced => "forced".into(),
                            Some(g) if g.passed => "passed".into(),
                            Some(_) => "rejected".into(),
                        },
                    ),
                };
                println!(
                    "{v:<8} {live:<5} {origin:<12} {parent:<7} {gate:<9} {:<21} {:<16} {:.5}",
                    m.created_at,
                    super::progress::loss(m.training.best_validation_loss.total),
                    m.threshold.value
                );
            }
            // A broken version is listed with its reason: it is exactly what
            // an operator looking at the store needs to see.
            Err(e) => println!("{v:<8} {live:<5} BROKEN: {e}"),
        }
    }
    Ok(())
}

/// A version's manifest (the live one by default), as `inspect` prints it,
/// then whether it is live.
pub fn show(root: &Path, version: Option<i64>, json: bool) -> Result<()> {
    let store = Store::open(root)?;
    let b = match version {
        Some(v) => store.open_version(v)?,
        None => store.open_current()?,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&b.manifest)?);
        return Ok(());
    }
    print_manifest(&b.manifest);
    println!(
        "live         {}",
        if store.current()? == Some(b.manifest.model_version) {
            "yes"
        } else {
            "no"
        }
    );
    Ok(())
}

pub fn promote(root: &Path, version: i64, force: bool) -> Result<()> {
    let store = Store::open(root)?;
    let before = store.current()?;
    store.promote(version, force)?;
    println!(
        "models: {} current v{version} (was {})",
        root.display(),
        before
            .map(|v| format!("v{v}"))
            .unwrap_or_else(|| "none".into())
    );
    Ok(())
}

/// Adds the bundle in `bundle` (e.g. `lstm-ae train`'s output) to the store
/// at `root` (created if missing) as its next version, restamped with that
/// version number (weights and threshold byte for byte); promotes it unless
/// `no_promote`. This is how a store starts from a trained bundle. With
/// `if_empty`, a store that already has a live version is left as it is (an
/// init container seeding a shared store on every pod start).
pub fn import(root: &Path, bundle: &Path, no_promote: bool, if_empty: bool) -> Result<()> {
    let src = Bundle::open(bundle)?;
    let store = Store::create(root)?;
    if let (true, Some(v)) = (if_empty, store.current()?) {
        println!(
            "models: {} already serves v{v}; nothing imported",
            root.display()
        );
        return Ok(());
    }
    let version = store.next_version()?;
    let bytes = onnx::restamp(&src.onnx, version, src.manifest.threshold.value)?;
    let mut manifest = src.manifest;
    manifest.model_version = version;
    store.add_version(version, |dir| -> Result<()> {
        Bundle::write(dir, &mut manifest, &bytes)?;
        Bundle::open(dir)?;
        Ok(())
    })?;
    if no_promote {
        println!(
            "models: {} v{version} imported from {} (not promoted)",
            root.display(),
            bundle.display()
        );
        return Ok(());
    }
    let before = store.current()?;
    store.promote(version, false)?;
    println!(
        "models: {} v{version} imported from {} and promoted (was {})",
        root.display(),
        bundle.display(),
        before
            .map(|v| format!("v{v}"))
            .unwrap_or_else(|| "none".into())
    );
    Ok(())
}

pub fn rollback(root: &Path) -> Result<()> {
    let store = Store::open(root)?;
    let before = store.current()?;
    let v = store.rollback()?;
    println!(
        "models: {} rolled back to v{v} (was {})",
        root.display(),
        before
            .map(|v| format!("v{v}"))
            .unwrap_or_else(|| "none".into())
    );
    Ok(())
}

/// Why training ended, in words.
pub fn stop_text(s: StopReason) -> &'static str {
    match s {
        StopReason::Epochs => "ran every epoch",
        StopReason::EarlyStopping => "stopped early",
        StopReason::Interrupted => "interrupted",
    }
}

/// A manifest for humans (`inspect`, `models show`). Settings are spelt
/// as in the settings files and flags, so what is read here can be
/// written there; `--json` has the rest.
pub fn print_manifest(m: &Manifest) {
    let loss = super::progress::loss;
    let s = &m.spec;
    println!(
        "model        {} v{}, created {}",
        m.model_id, m.model_version, m.created_at
    );
    println!(
        "             trainer {}, manifest format {}",
        m.trainer_version, m.format_version
    );
    println!(
        "network      {}: window T={}, features F={} ({}), hidden H={}, horizon P={}",
        name(&s.mode),
        s.window,
        s.features,
        m.feature_names.join(", "),
        s.hidden,
        s.horizon
    );
    println!(
        "             activation {}, decoder input {}, reversed reconstruction {}, loss = {}·reconstruction + {}·prediction",
        name(&s.activation),
        name(&s.decoder_input),
        if s.reverse_reconstruction { "yes" } else { "no" },
        s.reconstruction_weight,
        s.prediction_weight
    );
    match &m.data {
        None => println!(
            "data         not recorded (an older bundle): files are read with the [data] settings"
        ),
        Some(d) => {
            println!(
                "data         timestamp column {}, feature columns {}, separator '{}'",
                if d.timestamp_column.is_empty() {
                    "found by name".to_string()
                } else {
                    format!("'{}'", d.timestamp_column)
                },
                if d.feature_columns.is_empty() {
                    "every column but the timestamp".to_string()
                } else {
                    d.feature_columns.join(", ")
                },
                d.separator
            );
            println!(
                "             fill {}, timestamp order {}",
                name(&d.fill),
                name(&d.timestamp_order)
            );
        }
    }
    let numbers = |v: &[f32]| {
        v.iter()
            .map(|x| format!("{x:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "scaler       {}: offset [{}], scale [{}]",
        name(&m.scaler.kind),
        numbers(&m.scaler.offset),
        numbers(&m.scaler.scale)
    );
    let t = &m.threshold;
    match &t.fallback {
        _ if !t.value.is_finite() => {
            println!("threshold    none (a predict-only model has no anomaly score)")
        }
        None => println!("threshold    {:.6}, rule {}", t.value, rule_text(&t.rule)),
        Some(f) => {
            println!(
                "threshold    {:.6}, rule {}, a fallback: the configured {} could not be applied",
                t.value,
                rule_text(&f.rule),
                rule_text(&t.rule)
            );
            println!("             because {}", f.reason);
        }
    }
    let q: Vec<String> = m
        .validation_scores
        .quantiles
        .iter()
        .map(|(q, v)| format!("q{q} {v:.5}"))
        .collect();
    println!(
        "val scores   {} windows, mean {:.5}; {}",
        m.validation_scores.count,
        m.validation_scores.mean,
        q.join(", ")
    );
    let d = &m.training_data;
    println!(
        "trained on   {} ({} rows, {} .. {}), sha256 {}",
        d.file, d.rows, d.first_timestamp, d.last_timestamp, d.sha256
    );
    println!(
        "             {} training rows → {} windows, {} validation rows → {} windows, stride {}",
        d.train_rows, d.train_windows, d.validation_rows, d.validation_windows, d.stride
    );
    let tr = &m.training;
    println!(
        "training     {} ({}), best epoch {}: loss {}, validation loss {}; {:.1} s, seed {}",
        super::count(tr.epochs_run, "epoch", "epochs"),
        stop_text(tr.stopped),
        tr.best_epoch,
        loss(tr.final_train_loss.total),
        loss(tr.best_validation_loss.total),
        tr.seconds,
        tr.seed
    );
    if let Some(l) = &m.lineage {
        print_lineage(l);
    }
    println!(
        "onnx         {} opset {}, outputs [{}], sha256 {}",
        m.onnx.file,
        m.onnx.opset,
        m.onnx.outputs.join(", "),
        m.onnx.sha256
    );
}

/// A threshold rule with its parameters, as `[calibration]` spells them.
fn rule_text(r: &ThresholdRule) -> String {
    match r {
        ThresholdRule::Quantile { q } => format!("quantile (q = {q})"),
        ThresholdRule::MeanStd { k } => format!("mean_std (k = {k})"),
        ThresholdRule::Pot {
            initial_quantile,
            risk,
        } => format!("pot (initial_quantile = {initial_quantile}, risk = {risk})"),
    }
}

/// How a store version was made: origin, parent, data, and the gate.
fn print_lineage(l: &Lineage) {
    let parent = match l.parent_version {
        Some(p) => format!("of v{p}"),
        None => "(the store's first version)".into(),
    };
    let start = match (l.origin, l.warm_start) {
        (Origin::Recalibrate, _) => "the parent's network, threshold refitted",
        (_, true) => "warm start from the parent's weights",
        (_, false) => "fresh weights",
    };
    let source = match &l.source {
        DataSource::Csv { path } => format!("CSV {path}"),
        DataSource::Kafka {
            topics,
            keys,
            series,
            ..
        } => format!(
            "Kafka topics {} (keys {keys}, {series} series)",
            topics.join(", ")
        ),
    };
    println!(
        "lineage      {} {parent}, {start}, on {source}",
        name(&l.origin)
    );
    let mut left_out = format!("{} windows left out as anomalous", l.excluded_windows);
    if l.marked_windows_excluded > 0 {
        left_out.push_str(&format!(
            ", {} marked incident or maintenance",
            l.marked_windows_excluded
        ));
    }
    if l.false_positive_windows_kept > 0 {
        left_out.push_str(&format!(
            ", {} flagged but kept as marked false positives",
            l.false_positive_windows_kept
        ));
    }
    println!("             {left_out}");
    if let Some(g) = &l.gate {
        let verdict = match (g.passed, g.forced) {
            (true, _) => "passed",
            (false, true) => "failed, promoted with --force",
            (false, false) => "rejected",
        };
        println!("             gate {verdict}: {}", g.reason);
    }
}
