//! Histograms: score distributions with labelled vertical lines such as
//! the threshold.

use std::fmt::Write;

use super::{
    draw_ticks, escape, frame, linear_ticks, no_data, open_svg, Mapping, Range, PLOT_Y0, PLOT_Y1,
};

/// Bin counts of a histogram over `[lo, hi]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub lo: f64,
    pub hi: f64,
    /// Equal-width bins; the last one includes `hi`.
    pub counts: Vec<usize>,
}

impl Histogram {
    pub fn bin_width(&self) -> f64 {
        (self.hi - self.lo) / self.counts.len() as f64
    }
}

/// Counts the finite `values` into `bins` equal-width bins spanning their
/// range (non-finite values are skipped). `bins == 0` picks ⌈√n⌉, at most
/// 60. All-equal values get a unit-wide range around them; no finite value
/// gives the range [0, 1] with zero counts.
pub fn histogram_counts(values: &[f64], bins: usize) -> Histogram {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let bins = if bins == 0 {
        ((finite.len() as f64).sqrt().ceil() as usize).clamp(1, 60)
    } else {
        bins
    };
    let mut range = Range::empty();
    for &v in &finite {
        range.add(v);
    }
    let (lo, hi) = range.or_unit(0.5);
    let mut counts = vec![0; bins];
    for v in finite {
        let i = ((v - lo) / (hi - lo) * bins as f64).floor();
        // v ∈ [lo, hi], so i ∈ [0, bins]; i = bins only for v = hi.
        let i = (i.max(0.0) as usize).min(bins - 1);
        counts[i] += 1;
    }
    Histogram { lo, hi, counts }
}

/// Renders a histogram of `values` (see [`histogram_counts`]) with labelled
/// vertical lines, e.g. the threshold; the x range stretches to show them.
pub fn histogram(
    title: &str,
    x_label: &str,
    values: &[f64],
    bins: usize,
    vlines: &[(f64, String)],
) -> String {
    let h = histogram_counts(values, bins);
    let total: usize = h.counts.iter().sum();
    let mut xr = Range::empty();
    xr.add(h.lo);
    xr.add(h.hi);
    for (v, _) in vlines {
        if v.is_finite() {
            xr.add(*v);
        }
    }
    let (x_lo, x_hi) = xr.or_unit(0.5);
    // A little air so bars and lines at the ends are not on the frame.
    let pad = (x_hi - x_lo) * 0.02;
    let (x_lo, x_hi) = (x_lo - pad, x_hi + pad);
    let max_count = h.counts.iter().copied().max().unwrap_or(0).max(1);
    let (y_ticks, y_lo, y_hi) = linear_ticks(0.0, max_count as f64, true);
    let x_ticks = linear_ticks(x_lo, x_hi, false).0;
    let map = Mapping {
        x_lo,
        x_hi,
        y_lo,
        y_hi,
    };

    let mut out = String::with_capacity(8 * 1024);
    open_svg(&mut out, title, x_label, "count");
    draw_ticks(&mut out, &map, &x_ticks, &y_ticks);
    let width = h.bin_width();
    for (i, &count) in h.counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let a = map.px(h.lo + i as f64 * width);
        let b = map.px(h.lo + (i + 1) as f64 * width);
        let top = map.py(count as f64);
        let _ = writeln!(
            out,
            r##"<rect x="{a:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="#1f77b4" stroke="#fff" stroke-width="0.5"><title>{count}</title></rect>"##,
            (b - a).max(0.5),
            PLOT_Y1 - top
        );
    }
    frame(&mut out);
    for (v, label) in vlines {
        if !v.is_finite() {
            continue;
        }
        let px = map.px(*v);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{PLOT_Y0:.1}" x2="{px:.1}" y2="{PLOT_Y1:.1}" stroke="#d62728" stroke-dasharray="6 4"/>"##
        );
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#d62728" stroke="#fff" stroke-width="3" paint-order="stroke">{}</text>"##,
            px - 4.0,
            PLOT_Y0 + 14.0,
            escape(label)
        );
    }
    if total == 0 {
        no_data(&mut out);
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::tests::assert_well_formed;
    use super::*;

    #[test]
    fn histogram_counts_bins() {
        // 0..=10 in 5 bins of width 2; 10 falls in the last bin.
        let values: Vec<f64> = (0..=10).map(f64::from).collect();
        let h = histogram_counts(&values, 5);
        assert_eq!((h.lo, h.hi), (0.0, 10.0));
        assert_eq!(h.counts, vec![2, 2, 2, 2, 3]);
        assert_eq!(h.bin_width(), 2.0);
        // Non-finite values are skipped, the rest all counted.
        let mut values: Vec<f64> = (0..1000).map(|i| ((i * 37) % 101) as f64 * 0.3).collect();
        values.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
        for bins in [0, 1, 7, 50] {
            let h = histogram_counts(&values, bins);
            assert_eq!(h.counts.iter().sum::<usize>(), 1000, "bins {bins}");
        }
        // Automatic bin count: ⌈√1000⌉ = 32.
        assert_eq!(histogram_counts(&values, 0).counts.len(), 32);
        // All equal: one unit-wide range around the value.
        let h = histogram_counts(&[3.0, 3.0, 3.0], 4);
        assert_eq!((h.lo, h.hi), (2.5, 3.5));
        assert_eq!(h.counts.iter().sum::<usize>(), 3);
        let h = histogram_counts(&[], 4);
        assert_eq!(h.counts, vec![0; 4]);
    }

    #[test]
    fn histogram_draws_bars_and_vlines() {
        let values: Vec<f64> = (0..=10).map(f64::from).collect();
        let svg = histogram("scores", "score", &values, 5, &[(25.0, "threshold".into())]);
        assert_well_formed(&svg);
        // One bar per non-empty bin, its count as a tooltip.
        assert_eq!(svg.matches("<title>").count(), 5);
        assert!(svg.contains("<title>3</title>"));
        assert!(svg.contains(">threshold</text>"));
        // The x axis stretches to the threshold at 25.
        assert!(svg.contains(">25</text>"), "{svg}");
    }
}
