//! Minimal SVG charts: line charts (loss curves, scores over time with the
//! threshold and anomaly stretches) and histograms (score distributions).
//!
//! Written by hand rather than with a plotting crate: the charts need axes,
//! a legend and a few annotations, nothing more, and the output must stay
//! small enough to commit with a model. Long series are decimated to the
//! minimum and maximum per pixel column, which draws the same picture as
//! every point would (spikes included) at a fraction of the size.
//!
//! `line.rs` draws line charts, `histogram.rs` histograms; this module holds
//! what both draw with: the canvas, the data-to-pixel mapping, axis ticks,
//! the frame, the legend and text escaping.

mod histogram;
mod line;

pub use histogram::{histogram, histogram_counts, Histogram};
pub use line::{decimate, line_chart, LineChart, Series};

/// Line colours for charts with one line per feature, in order (matplotlib's
/// "tab10"); a chart with more features than colours repeats them.
pub const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

use std::fmt::Write;

use chrono::{DateTime, Utc};

/// Canvas size and plot-area margins, in pixels.
pub(super) const WIDTH: f64 = 960.0;
pub(super) const HEIGHT: f64 = 400.0;
pub(super) const LEFT: f64 = 76.0;
pub(super) const RIGHT: f64 = 24.0;
pub(super) const TOP: f64 = 52.0;
pub(super) const BOTTOM: f64 = 52.0;
pub(super) const PLOT_X0: f64 = LEFT;
pub(super) const PLOT_X1: f64 = WIDTH - RIGHT;
pub(super) const PLOT_Y0: f64 = TOP;
pub(super) const PLOT_Y1: f64 = HEIGHT - BOTTOM;
/// Pixel columns of the plot area: the decimation resolution.
pub(super) const PLOT_COLUMNS: usize = (PLOT_X1 - PLOT_X0) as usize;

/// Data-to-pixel mapping of the plot area.
pub(super) struct Mapping {
    pub(super) x_lo: f64,
    pub(super) x_hi: f64,
    pub(super) y_lo: f64,
    pub(super) y_hi: f64,
}

impl Mapping {
    pub(super) fn px(&self, x: f64) -> f64 {
        PLOT_X0 + (x - self.x_lo) / (self.x_hi - self.x_lo) * (PLOT_X1 - PLOT_X0)
    }
    /// `y` in axis units (log10 for a log axis).
    pub(super) fn py(&self, y: f64) -> f64 {
        PLOT_Y1 - (y - self.y_lo) / (self.y_hi - self.y_lo) * (PLOT_Y1 - PLOT_Y0)
    }
}

/// Running min/max.
pub(super) struct Range {
    lo: f64,
    hi: f64,
}

impl Range {
    pub(super) fn empty() -> Self {
        Range {
            lo: f64::INFINITY,
            hi: f64::NEG_INFINITY,
        }
    }
    pub(super) fn add(&mut self, v: f64) {
        self.lo = self.lo.min(v);
        self.hi = self.hi.max(v);
    }
    pub(super) fn is_empty(&self) -> bool {
        self.lo > self.hi
    }
    /// The range, widened by `pad` each way when it has zero width, and
    /// [0, 1] when empty, so an axis can always be drawn.
    pub(super) fn or_unit(&self, pad: f64) -> (f64, f64) {
        if self.is_empty() {
            (0.0, 1.0)
        } else if self.lo == self.hi {
            let pad = pad.max(self.lo.abs() * 0.05);
            (self.lo - pad, self.hi + pad)
        } else {
            (self.lo, self.hi)
        }
    }
}

/// About five "nice" ticks (1, 2 or 5 × 10^k apart) over [lo, hi]. With
/// `extend`, the range grows to the enclosing ticks, which is returned.
pub(super) fn linear_ticks(lo: f64, hi: f64, extend: bool) -> (Vec<(f64, String)>, f64, f64) {
    let step = nice_step((hi - lo) / 5.0);
    let (lo, hi) = if extend {
        ((lo / step).floor() * step, (hi / step).ceil() * step)
    } else {
        (lo, hi)
    };
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let ticks = (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            (v, format_number(v, step))
        })
        .collect();
    (ticks, lo, hi)
}

/// The 1, 2 or 5 × 10^k nearest `raw` (on a log scale, roughly), so a
/// range split for five ticks gets between four and seven.
pub(super) fn nice_step(raw: f64) -> f64 {
    if !(raw > 0.0 && raw.is_finite()) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    let f = raw / magnitude;
    let nice = if f < 1.5 {
        1.0
    } else if f < 3.0 {
        2.0
    } else if f < 7.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// A tick label with as many decimals as the tick step needs.
pub(super) fn format_number(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
    if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-4) {
        return format!("{v:e}");
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// Ticks for a log axis given in log10 units: integer decades, every k-th
/// one when there are many.
pub(super) fn log_ticks(lo: f64, hi: f64) -> (Vec<(f64, String)>, f64, f64) {
    let (lo, hi) = (lo.floor(), hi.ceil().max(lo.floor() + 1.0));
    let decades = (hi - lo) as i64;
    let every = (decades / 6 + 1).max(1);
    let ticks = (lo as i64..=hi as i64)
        .filter(|e| (e - lo as i64) % every == 0)
        .map(|e| {
            let label = if (-3..=5).contains(&e) {
                format_number(10f64.powi(e as i32), 10f64.powi(e.min(0) as i32))
            } else {
                format!("1e{e}")
            };
            (e as f64, label)
        })
        .collect();
    (ticks, lo, hi)
}

/// Ticks on round UTC times for an epoch-millisecond axis.
pub(super) fn time_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    const S: f64 = 1000.0;
    const MIN: f64 = 60.0 * S;
    const H: f64 = 60.0 * MIN;
    const D: f64 = 24.0 * H;
    const STEPS: [f64; 22] = [
        S,
        5.0 * S,
        15.0 * S,
        30.0 * S,
        MIN,
        5.0 * MIN,
        15.0 * MIN,
        30.0 * MIN,
        H,
        3.0 * H,
        6.0 * H,
        12.0 * H,
        D,
        2.0 * D,
        7.0 * D,
        14.0 * D,
        30.0 * D,
        91.0 * D,
        182.0 * D,
        365.0 * D,
        5.0 * 365.0 * D,
        10.0 * 365.0 * D,
    ];
    let span = hi - lo;
    let step = STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 6.0)
        .unwrap_or_else(|| nice_step(span / 5.0));
    let fmt = if step >= 365.0 * D {
        "%Y"
    } else if step >= D {
        "%Y-%m-%d"
    } else if span >= D {
        "%m-%d %H:%M"
    } else if step >= MIN {
        "%H:%M"
    } else {
        "%H:%M:%S"
    };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last)
        .filter_map(|k| {
            let ms = k as f64 * step;
            let dt = DateTime::<Utc>::from_timestamp_millis(ms as i64)?;
            Some((ms, dt.format(fmt).to_string()))
        })
        .collect()
}

/// Tick lines and labels of both axes.
pub(super) fn draw_ticks(
    out: &mut String,
    map: &Mapping,
    x_ticks: &[(f64, String)],
    y_ticks: &[(f64, String)],
) {
    for (v, label) in y_ticks {
        let py = map.py(*v);
        let _ = writeln!(
            out,
            r##"<line x1="{PLOT_X0:.1}" y1="{py:.1}" x2="{PLOT_X1:.1}" y2="{py:.1}" stroke="#e0e0e0"/>"##
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            PLOT_X0 - 6.0,
            py + 4.0,
            escape(label)
        );
    }
    for (v, label) in x_ticks {
        let px = map.px(*v);
        let _ = writeln!(
            out,
            r##"<line x1="{px:.1}" y1="{PLOT_Y1:.1}" x2="{px:.1}" y2="{:.1}" stroke="#333"/>"##,
            PLOT_Y1 + 5.0
        );
        let _ = writeln!(
            out,
            r#"<text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            PLOT_Y1 + 19.0,
            escape(label)
        );
    }
}

/// The document head: canvas, background, title and axis labels.
pub(super) fn open_svg(out: &mut String, title: &str, x_label: &str, y_label: &str) {
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        out,
        r##"<rect width="{WIDTH}" height="{HEIGHT}" fill="#fff"/>"##
    );
    let _ = writeln!(
        out,
        r#"<text x="{PLOT_X0:.1}" y="22" font-size="15" font-weight="bold">{}</text>"#,
        escape(title)
    );
    let _ = writeln!(
        out,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        (PLOT_X0 + PLOT_X1) / 2.0,
        HEIGHT - 10.0,
        escape(x_label)
    );
    let (cx, cy) = (18.0, (PLOT_Y0 + PLOT_Y1) / 2.0);
    let _ = writeln!(
        out,
        r#"<text x="{cx:.1}" y="{cy:.1}" text-anchor="middle" transform="rotate(-90 {cx:.1} {cy:.1})">{}</text>"#,
        escape(y_label)
    );
}

/// The plot-area border.
pub(super) fn frame(out: &mut String) {
    let _ = writeln!(
        out,
        r##"<rect x="{PLOT_X0:.1}" y="{PLOT_Y0:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
        PLOT_X1 - PLOT_X0,
        PLOT_Y1 - PLOT_Y0
    );
}

pub(super) fn no_data(out: &mut String) {
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#888" font-size="16">no data</text>"##,
        (PLOT_X0 + PLOT_X1) / 2.0,
        (PLOT_Y0 + PLOT_Y1) / 2.0
    );
}

/// One row of colour swatches and labels between the title and the plot.
pub(super) fn legend_row(out: &mut String, entries: &[(&str, &str)]) {
    // Roughly 7 px per character at font-size 12.
    let width = |label: &str| 24.0 + 7.0 * label.chars().count() as f64;
    // Entries that would pass the right edge go to a next row, drawn over
    // the top of the plot on a white band so that they stay readable.
    let mut rows: Vec<Vec<(&str, &str)>> = vec![vec![]];
    let mut x = PLOT_X0;
    for &(label, color) in entries {
        let w = width(label);
        let row_is_empty = rows.last().is_some_and(|r| r.is_empty());
        if x + w > WIDTH - 4.0 && !row_is_empty {
            rows.push(vec![]);
            x = PLOT_X0;
        }
        if let Some(r) = rows.last_mut() {
            r.push((label, color));
        }
        x += w + 18.0;
    }
    for (i, row) in rows.iter().enumerate() {
        let y = PLOT_Y0 - 12.0 + 16.0 * i as f64;
        if i > 0 {
            let _ = writeln!(
                out,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="16" fill="#fff" fill-opacity="0.85"/>"##,
                PLOT_X0 + 1.0,
                y - 12.0,
                PLOT_X1 - PLOT_X0 - 2.0
            );
        }
        legend_entries(out, row, y, width);
    }
}

/// One row of legend entries at baseline `y`.
fn legend_entries(out: &mut String, entries: &[(&str, &str)], y: f64, width: impl Fn(&str) -> f64) {
    let mut x = PLOT_X0;
    for (label, color) in entries {
        let _ = writeln!(
            out,
            r#"<line x1="{x:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="3"/>"#,
            y - 4.0,
            x + 18.0,
            y - 4.0,
            escape(color)
        );
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{y:.1}">{}</text>"#,
            x + 24.0,
            escape(label)
        );
        x += width(label) + 18.0;
    }
}

/// XML-escapes text and attribute values, dropping control characters.
pub(super) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 at all.
            c if c.is_control() && !matches!(c, '\t' | '\n') => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parse-free well-formedness: one root `<svg>`, every tag closed in
    /// order, and every `&` starting one of the five XML entities.
    pub(super) fn assert_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            let j = i + rest[i..].find('>').expect("unclosed '<'");
            let tag = &rest[i + 1..j];
            assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name), "mismatched </{name}>");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap());
            }
            rest = &rest[j + 1..];
            if stack.is_empty() {
                assert!(rest.trim().is_empty(), "content after the root element");
            }
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
        for (i, _) in svg.match_indices('&') {
            let tail = &svg[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| tail.starts_with(e)),
                "raw & at {i}"
            );
        }
    }

    #[test]
    fn nice_ticks() {
        let (ticks, lo, hi) = linear_ticks(0.0, 97.0, true);
        let labels: Vec<&str> = ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0", "20", "40", "60", "80", "100"]);
        assert_eq!((lo, hi), (0.0, 100.0));
        let (ticks, lo, hi) = linear_ticks(0.13, 0.87, false);
        let labels: Vec<&str> = ticks.iter().map(|t| t.1.as_str()).collect();
        // Step 0.74 / 5 = 0.148, nearest nice step 0.1.
        assert_eq!(labels, ["0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8"]);
        assert_eq!((lo, hi), (0.13, 0.87));
        let (ticks, _, _) = linear_ticks(-3.0, 2.0, true);
        let labels: Vec<&str> = ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["-3", "-2", "-1", "0", "1", "2"]);
    }

    pub(super) fn chart(points: Vec<(f64, f64)>) -> LineChart {
        LineChart {
            title: "scores".into(),
            x_label: "time".into(),
            y_label: "score".into(),
            series: vec![Series {
                label: "score".into(),
                points,
                color: "#1f77b4",
            }],
            ..LineChart::default()
        }
    }

    #[test]
    fn text_is_escaped() {
        let mut c = chart(vec![(0.0, 1.0), (1.0, 2.0)]);
        c.title = r#"a<b & c>"d" 'e'"#.into();
        c.series[0].label = "<script>".into();
        c.hlines.push((1.5, "x & y".into()));
        let svg = line_chart(&c);
        assert_well_formed(&svg);
        assert!(svg.contains("a&lt;b &amp; c&gt;&quot;d&quot; &apos;e&apos;"));
        assert!(svg.contains("&lt;script&gt;") && !svg.contains("<script"));
        assert!(svg.contains("x &amp; y"));
        let h = histogram("p < 0.5 & q", "<x>", &[1.0, 2.0], 2, &[(1.5, "t<".into())]);
        assert_well_formed(&h);
        assert!(h.contains("p &lt; 0.5 &amp; q") && h.contains("&lt;x&gt;") && h.contains("t&lt;"));
    }

    #[test]
    fn empty_and_non_finite_data_still_draw() {
        let svg = line_chart(&chart(vec![]));
        assert_well_formed(&svg);
        assert!(svg.contains("no data"));
        let svg = line_chart(&LineChart::default());
        assert_well_formed(&svg);
        let svg = line_chart(&chart(vec![(f64::NAN, 1.0), (1.0, f64::INFINITY)]));
        assert_well_formed(&svg);
        assert!(svg.contains("no data") && !svg.contains("NaN") && !svg.contains("inf"));
        // A NaN breaks the line in two; a lone point becomes a dot.
        let svg = line_chart(&chart(vec![
            (0.0, 1.0),
            (1.0, 2.0),
            (2.0, f64::NAN),
            (3.0, 1.0),
            (4.0, 3.0),
            (5.0, f64::NAN),
            (6.0, 2.0),
        ]));
        assert_well_formed(&svg);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(!svg.contains("NaN"));
        let h = histogram("empty", "x", &[f64::NAN], 10, &[]);
        assert_well_formed(&h);
        assert!(h.contains("no data"));
    }
}
