//! The training report written into a bundle's `report/` folder: loss
//! curves, the validation score histogram with the threshold, and a few
//! validation windows overlaid with their reconstructions.

use std::path::{Path, PathBuf};

use ndarray::{s, Axis};

use super::pipeline::Trained;
use crate::report::svg::{self, LineChart, Series};
use crate::train::composite;

const BLUE: &str = "#1f77b4";
const ORANGE: &str = "#ff7f0e";
const GREEN: &str = "#2ca02c";
const RED: &str = "#d62728";

/// Writes the report's SVG files; returns their paths.
pub fn write(trained: &Trained, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = vec![];
    let mut put = |name: &str, svg: String| -> std::io::Result<()> {
        let p = dir.join(name);
        std::fs::write(&p, svg)?;
        written.push(p);
        Ok(())
    };
    let m = &trained.bundle.manifest;
    let h = &m.training.history;
    let curve = |label: &str, color, f: &dyn Fn(&crate::train::fit::EpochStats) -> f64| Series {
        label: label.into(),
        points: h.iter().map(|e| (e.epoch as f64, f(e))).collect(),
        color,
    };
    put(
        "loss.svg",
        svg::line_chart(&LineChart {
            title: format!(
                "{}: loss per epoch (best epoch {})",
                m.model_id, m.training.best_epoch
            ),
            x_label: "epoch".into(),
            y_label: "loss (scaled units², log)".into(),
            series: vec![
                curve("training", BLUE, &|e| e.train.total),
                curve("validation", ORANGE, &|e| e.validation.total),
            ],
            log_y: true,
            ..LineChart::default()
        }),
    )?;
    if !trained.validation_scores.is_empty() {
        put(
            "validation_scores.svg",
            svg::histogram(
                &format!("{}: validation window scores", m.model_id),
                "score (mean squared reconstruction error, scaled units)",
                &trained.validation_scores,
                0,
                &[(
                    m.threshold.value as f64,
                    format!("threshold {:.4}", m.threshold.value),
                )],
            ),
        )?;
        put("reconstructions.svg", reconstructions(trained))?;
    }
    Ok(written)
}

/// Three validation windows — the most normal, a median one and the worst —
/// with their reconstructions, first feature, raw units.
fn reconstructions(trained: &Trained) -> String {
    let spec = &trained.bundle.manifest.spec;
    let scores = &trained.validation_scores;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let picks = [order[0], order[order.len() / 2], order[order.len() - 1]];
    let starts: Vec<usize> = picks
        .iter()
        .map(|&i| trained.validation_starts[i])
        .collect();
    let x = crate::data::gather_time_major(trained.scaled.view(), &starts, spec.window);
    let fw = composite::forward(&trained.fitted.params, spec, x.view());
    let scaler = &trained.bundle.manifest.scaler;
    let raw = |v: f32| (v / scaler.scale[0] + scaler.offset[0]) as f64;
    let mut series = vec![];
    // Each input in a strong colour, its reconstruction in the light variant.
    let colors = [
        (GREEN, "#98df8a", "lowest"),
        (BLUE, "#aec7e8", "median"),
        (RED, "#ff9896", "highest"),
    ];
    for (k, (&start, (color, light, what))) in starts.iter().zip(colors).enumerate() {
        let ts = &trained.series.timestamps[start..start + spec.window];
        let input: Vec<(f64, f64)> = ts
            .iter()
            .zip(x.slice(s![.., k, 0]))
            .map(|(&t, &v)| (t as f64, raw(v)))
            .collect();
        series.push(Series {
            label: format!("{what} score {:.3}: input", scores[picks[k]]),
            points: input,
            color,
        });
        if let Some(r) = &fw.reconstruction {
            let rec = r.index_axis(Axis(1), k);
            series.push(Series {
                label: format!("{what}: reconstruction"),
                points: ts
                    .iter()
                    .zip(rec.column(0))
                    .map(|(&t, &v)| (t as f64, raw(v)))
                    .collect(),
                color: light,
            });
        }
    }
    svg::line_chart(&LineChart {
        title: format!(
            "{}: validation windows and reconstructions ({})",
            trained.bundle.manifest.model_id, trained.bundle.manifest.feature_names[0]
        ),
        x_label: "time".into(),
        y_label: trained.bundle.manifest.feature_names[0].clone(),
        series,
        x_is_time_ms: true,
        ..LineChart::default()
    })
}
