//! `lstm-ae models list | show | promote | rollback | import`: the model
//! store for humans (and scripts: `list` prints one line per version); and
//! `lstm-ae inspect`, which prints one bundle's manifest the same way.

use std::path::Path;

use anyhow::Result;

use crate::cli::{InspectArgs, ModelsCommand};
use crate::model::manifest::StopReason;
use crate::model::store::Store;
use crate::model::{onnx, Bundle, Manifest};

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
                    "{v:<8} {live:<5} {origin:<12} {parent:<7} {gate:<9} {:<21} {:<16.5} {:.5}",
                    m.created_at, m.training.best_validation_loss.total, m.threshold.value
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
/// then its lineage.
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
    if let Some(l) = &b.manifest.lineage {
        println!("lineage      {}", serde_json::to_string(l)?);
    }
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

/// A manifest for humans (`inspect`, `models show`).
pub fn print_manifest(m: &Manifest) {
    let s = &m.spec;
    println!(
        "model        {} v{} (format {}, trainer {})",
        m.model_id, m.model_version, m.format_version, m.trainer_version
    );
    println!("created      {}", m.created_at);
    println!(
        "architecture {:?}: window T={}, features F={} [{}], hidden H={}, horizon P={}",
        s.mode,
        s.window,
        s.features,
        m.feature_names.join(", "),
        s.hidden,
        s.horizon
    );
    println!(
        "             activation {:?}, decoder input {:?}, reversed reconstruction {}, loss = {}·recon + {}·pred",
        s.activation, s.decoder_input, s.reverse_reconstruction, s.reconstruction_weight, s.prediction_weight
    );
    println!(
        "scaler       {:?}: offset {:?}, scale {:?}",
        m.scaler.kind, m.scaler.offset, m.scaler.scale
    );
    let rule = |r| serde_json::to_string(r).unwrap_or_default();
    match &m.threshold.fallback {
        None => println!(
            "threshold    {:.6} ({})",
            m.threshold.value,
            rule(&m.threshold.rule)
        ),
        Some(f) => {
            println!(
                "threshold    {:.6} ({}, a fallback: the configured {} could not be applied)",
                m.threshold.value,
                rule(&f.rule),
                rule(&m.threshold.rule)
            );
            println!("             because {}", f.reason);
        }
    }
    let q: Vec<String> = m
        .validation_scores
        .quantiles
        .iter()
        .map(|(q, v)| format!("q{q}={v:.5}"))
        .collect();
    println!(
        "val scores   {} windows, mean {:.5}; {}",
        m.validation_scores.count,
        m.validation_scores.mean,
        q.join(" ")
    );
    let d = &m.training_data;
    println!(
        "data         {} ({} rows, {} .. {}), sha256 {}",
        d.file, d.rows, d.first_timestamp, d.last_timestamp, d.sha256
    );
    println!(
        "             {} training rows → {} windows, {} validation rows → {} windows, stride {}",
        d.train_rows, d.train_windows, d.validation_rows, d.validation_windows, d.stride
    );
    let t = &m.training;
    println!(
        "training     {} epochs ({:?}), best {}: loss {:.5}, validation {:.5}; {:.1} s, seed {}",
        t.epochs_run,
        t.stopped,
        t.best_epoch,
        t.final_train_loss.total,
        t.best_validation_loss.total,
        t.seconds,
        t.seed
    );
    println!(
        "onnx         {} opset {}, outputs [{}], sha256 {}",
        m.onnx.file,
        m.onnx.opset,
        m.onnx.outputs.join(", "),
        m.onnx.sha256
    );
}
