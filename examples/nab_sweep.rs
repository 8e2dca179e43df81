//! Post-processing sweep over NAB without retraining: the model's errors of
//! every series are computed once (and cached), then each setting of a sweep
//! file is post-processed and scored like `eval nab` scores it (full corpus,
//! tuning half, report half at the tuning half's threshold).
//!
//! ```sh
//! cargo run --release --example nab_sweep -- data/nab /tmp/nab-cache sweep.txt
//! ```
//!
//! Each non-empty line of the sweep file not starting with `#` is
//! `tag | toml`, the TOML overriding `NabEvalConfig`'s defaults with `;` for
//! line breaks, e.g. `rearm | postprocess.rearm_level = 0.2`. Only
//! `[postprocess]` and `warm_up_on_training_rows` may differ from the first
//! line's model, training and retraining settings (the cached errors are
//! theirs). Prints one tab-separated row per line: standard full, tuning,
//! report (at the tuning threshold), report with its own sweep, full at
//! `fire_level`, the thresholds, windows hit / counted and false positives
//! at the full threshold, and the low-FP / low-FN full scores.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use lstm_ae::data::{self, CsvOptions, TimestampOrder};
use lstm_ae::eval::nab::run::{self, NabEvalConfig, SeriesScores};
use lstm_ae::eval::nab::{self, split, FileScores};

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Loaded {
    key: String,
    timestamps: Vec<i64>,
    values: Vec<f32>,
    errors: SeriesScores,
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn read_cache(path: &Path) -> Option<SeriesScores> {
    let text = std::fs::read_to_string(path).ok()?;
    let (mut rec, mut pred) = (vec![], vec![]);
    for line in text.lines() {
        let (r, p) = line.split_once(',')?;
        rec.push(r.parse().ok()?);
        pred.push(p.parse().ok()?);
    }
    Some(SeriesScores {
        scores: vec![0.0; rec.len()],
        reconstruction: rec,
        prediction: pred,
    })
}

fn write_cache(path: &Path, e: &SeriesScores) -> Result<(), Error> {
    let mut text = String::new();
    for (r, p) in e.reconstruction.iter().zip(&e.prediction) {
        writeln!(text, "{r},{p}")?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)?;
    Ok(())
}

fn load(root: &Path, cache: &Path, cfg: &NabEvalConfig) -> Result<Vec<Loaded>, Error> {
    let layout = nab::NabLayout::locate(root);
    let windows = nab::load_windows(&layout.windows)?;
    let id = fnv(&serde_json::to_string(&(
        &cfg.model,
        &cfg.training,
        &cfg.retrain,
    ))?);
    let dir = cache.join(format!("{id:016x}"));
    let csv = CsvOptions {
        timestamp_order: TimestampOrder::Unchecked,
        ..CsvOptions::default()
    };
    let keys: Vec<&String> = windows.keys().collect();
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<Option<Loaded>>> = Mutex::new((0..keys.len()).map(|_| None).collect());
    let failed: Mutex<Vec<String>> = Mutex::new(vec![]);
    std::thread::scope(|scope| {
        for _ in 0..lstm_ae::threads_or_cores(cfg.threads) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(key) = keys.get(i) else { break };
                let run = || -> Result<Loaded, Error> {
                    let s = data::load_csv(&layout.series.join(key), &csv)?;
                    let values: Vec<f32> = s.values.column(0).to_vec();
                    let file = dir.join(key.replace('/', "__"));
                    let errors = match read_cache(&file) {
                        Some(e) if e.reconstruction.len() == values.len() => e,
                        _ => {
                            let e = run::model_errors(&values, cfg)?;
                            write_cache(&file, &e)?;
                            eprintln!("trained {key}");
                            e
                        }
                    };
                    Ok(Loaded {
                        key: key.to_string(),
                        timestamps: s.timestamps,
                        values,
                        errors,
                    })
                };
                match run() {
                    Ok(l) => {
                        if let Ok(mut o) = out.lock() {
                            o[i] = Some(l);
                        }
                    }
                    Err(e) => {
                        if let Ok(mut f) = failed.lock() {
                            f.push(format!("{key}: {e}"));
                        }
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().unwrap_or_else(|e| e.into_inner());
    if !failed.is_empty() {
        return Err(failed.join("\n").into());
    }
    Ok(out
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, cache, sweep] = args.as_slice() else {
        return Err("usage: nab_sweep NAB_ROOT CACHE_DIR SWEEP_FILE".into());
    };
    let root = PathBuf::from(root);
    let layout = nab::NabLayout::locate(&root);
    let windows: BTreeMap<String, Vec<(i64, i64)>> = nab::load_windows(&layout.windows)?;
    let profiles = nab::load_profiles(&layout.profiles)?;
    let mut lines = vec![];
    for line in std::fs::read_to_string(sweep)?.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (tag, toml) = line.split_once('|').unwrap_or((line, ""));
        let cfg = NabEvalConfig::from_toml(&toml.replace(';', "\n"), tag.trim())?;
        lines.push((tag.trim().to_string(), cfg));
    }
    let Some((_, first)) = lines.first() else {
        return Err("the sweep file has no settings".into());
    };
    let series = load(&root, Path::new(cache), first)?;
    println!(
        "tag\tstd_full\ttuning\treport\treport_own\tfull_fixed\tthr_full\tthr_tuning\thit\twindows\tfp\tlowFN\tlowFP"
    );
    for (tag, cfg) in &lines {
        if (&cfg.model, &cfg.training, &cfg.retrain)
            != (&first.model, &first.training, &first.retrain)
        {
            return Err(
                format!("{tag}: only post-processing may differ from the first line").into(),
            );
        }
        let mut files = Vec::with_capacity(series.len());
        for s in &series {
            let mut e = s.errors.clone();
            run::postprocess_series(&s.values, &mut e, cfg)?;
            files.push(FileScores {
                key: s.key.clone(),
                timestamps: s.timestamps.clone(),
                scores: e.scores,
            });
        }
        let mut row = tag.clone();
        let mut others = vec![];
        for p in &profiles {
            let sp = split::split_scores(&files, &windows, p, cfg.postprocess.fire_level)?;
            if p.name == "standard" {
                let full = nab::evaluate(&files, &windows, p)?;
                let hit: usize = full.files.iter().map(|f| f.windows_hit).sum();
                let counted: usize = full.files.iter().map(|f| f.counted_windows).sum();
                let fp: usize = full.files.iter().map(|f| f.fp).sum();
                write!(
                    row,
                    "\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{:.1}\t{:.4}\t{:.4}\t{hit}\t{counted}\t{fp}",
                    sp.full,
                    sp.tuning,
                    sp.report,
                    sp.report_swept,
                    sp.full_at_fixed,
                    sp.full_threshold,
                    sp.tuning_threshold
                )?;
            } else {
                others.push((p.name.clone(), sp.full));
            }
        }
        others.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, v) in others {
            write!(row, "\t{v:.1}")?;
        }
        println!("{row}");
    }
    Ok(())
}
