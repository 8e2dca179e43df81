//! Minimal SVG charts: line charts (loss curves, scores over time with the
//! threshold and anomaly stretches) and histograms (score distributions).
//!
//! Written by hand rather than with a plotting crate: the charts need axes,
//! a legend and a few annotations, nothing more, and the output must stay
//! small enough to commit with a model. Long series are decimated to the
//! minimum and maximum per pixel column, which draws the same picture as
//! every point would (spikes included) at a fraction of the size.

use std::fmt::Write;

use chrono::{DateTime, Utc};

/// Canvas size and plot-area margins, in pixels.
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 76.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 52.0;
const BOTTOM: f64 = 52.0;
const PLOT_X0: f64 = LEFT;
const PLOT_X1: f64 = WIDTH - RIGHT;
const PLOT_Y0: f64 = TOP;
const PLOT_Y1: f64 = HEIGHT - BOTTOM;
/// Pixel columns of the plot area: the decimation resolution.
const PLOT_COLUMNS: usize = (PLOT_X1 - PLOT_X0) as usize;

/// One line of a [`LineChart`].
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    /// (x, y) in data units, in drawing order (normally increasing x).
    /// Non-finite points break the line.
    pub points: Vec<(f64, f64)>,
    /// Any SVG colour, e.g. `"#1f77b4"`.
    pub color: &'static str,
}

/// A line chart description; see [`line_chart`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LineChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    /// x ranges to shade, e.g. labelled or detected anomaly stretches.
    pub shaded_x: Vec<(f64, f64)>,
    /// Horizontal reference lines with a label, e.g. the threshold. They
    /// are kept inside the y range.
    pub hlines: Vec<(f64, String)>,
    /// Logarithmic y axis (loss curves); points with y ≤ 0 are skipped.
    pub log_y: bool,
    /// x values are epoch milliseconds: ticks are labelled as UTC dates.
    pub x_is_time_ms: bool,
}

/// Renders a line chart as a standalone SVG document.
pub fn line_chart(c: &LineChart) -> String {
    let usable = |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!c.log_y || y > 0.0);
    let fy = |y: f64| if c.log_y { y.log10() } else { y };

    // Data ranges.
    let mut xr = Range::empty();
    let mut yr = Range::empty();
    for p in c
        .series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|p| usable(p))
    {
        xr.add(p.0);
        yr.add(fy(p.1));
    }
    let has_data = !xr.is_empty();
    for (v, _) in &c.hlines {
        if v.is_finite() && (!c.log_y || *v > 0.0) {
            yr.add(fy(*v));
        }
    }
    let (x_lo, x_hi) = xr.or_unit(if c.x_is_time_ms { 3_600_000.0 } else { 0.5 });
    let (y_ticks, y_lo, y_hi) = if c.log_y {
        let (lo, hi) = yr.or_unit(0.5);
        log_ticks(lo, hi)
    } else {
        let (lo, hi) = yr.or_unit(0.5);
        linear_ticks(lo, hi, true)
    };
    let x_ticks = if c.x_is_time_ms {
        time_ticks(x_lo, x_hi)
    } else {
        linear_ticks(x_lo, x_hi, false).0
    };
    let map = Mapping {
        x_lo,
        x_hi,
        y_lo,
        y_hi,
    };

    let mut out = String::with_capacity(16 * 1024);
    open_svg(&mut out, &c.title, &c.x_label, &c.y_label);

    // Shaded x ranges, under everything else.
    for &(a, b) in &c.shaded_x {
        let (a, b) = (a.min(b), a.max(b));
        if !(a.is_finite() && b.is_finite()) || b < x_lo || a > x_hi {
            continue;
        }
        let (pa, pb) = (map.px(a.max(x_lo)), map.px(b.min(x_hi)));
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{PLOT_Y0:.1}" width="{:.1}" height="{:.1}" fill="#d62728" fill-opacity="0.15"/>"##,
            pa,
            (pb - pa).max(1.0),
            PLOT_Y1 - PLOT_Y0
        );
    }

    // Axes and grid.
    draw_ticks(&mut out, &map, &x_ticks, &y_ticks);
    frame(&mut out);

    // Series: one polyline per run of usable points.
    for s in &c.series {
        let color = escape(s.color);
        for run in s.points.split(|p| !usable(p)) {
            let pts: Vec<(f64, f64)> = run.iter().map(|&(x, y)| (x, fy(y))).collect();
            let pts = decimate(&pts, x_lo, x_hi, PLOT_COLUMNS);
            match pts.as_slice() {
                [] => {}
                [(x, y)] => {
                    let _ = writeln!(
                        out,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="2" fill="{color}"/>"#,
                        map.px(*x),
                        map.py(*y)
                    );
                }
                _ => {
                    out.push_str(r#"<polyline fill="none" stroke=""#);
                    out.push_str(&color);
                    out.push_str(r#"" stroke-width="1.2" points=""#);
                    for (i, (x, y)) in pts.iter().enumerate() {
                        let sep = if i == 0 { "" } else { " " };
                        let _ = write!(out, "{sep}{:.1},{:.1}", map.px(*x), map.py(*y));
                    }
                    out.push_str("\"/>\n");
                }
            }
        }
    }

    // Reference lines on top of the data.
    for (v, label) in &c.hlines {
        if !(v.is_finite() && (!c.log_y || *v > 0.0)) {
            continue;
        }
        let py = map.py(fy(*v));
        let _ = writeln!(
            out,
            r##"<line x1="{PLOT_X0:.1}" y1="{py:.1}" x2="{PLOT_X1:.1}" y2="{py:.1}" stroke="#d62728" stroke-dasharray="6 4"/>"##
        );
        let _ = writeln!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="#d62728" stroke="#fff" stroke-width="3" paint-order="stroke">{}</text>"##,
            PLOT_X1 - 4.0,
            py - 4.0,
            escape(label)
        );
    }

    if !has_data {
        no_data(&mut out);
    }
    let legend: Vec<(&str, &str)> = c
        .series
        .iter()
        .map(|s| (s.label.as_str(), s.color))
        .collect();
    legend_row(&mut out, &legend);
    out.push_str("</svg>\n");
    out
}

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

/// Reduces `points` to at most two per column, the lowest and the highest
/// y, in their original order, with columns splitting `[x_lo, x_hi]` into
/// `columns` equal parts. Drawn at one column per pixel this looks the same
/// as the full series, spikes included. Series with at most two points per
/// column on average are returned unchanged. Points should be in increasing
/// x; otherwise less is removed, but nothing extreme is lost.
pub fn decimate(points: &[(f64, f64)], x_lo: f64, x_hi: f64, columns: usize) -> Vec<(f64, f64)> {
    let span = x_hi - x_lo;
    if points.len() <= 2 * columns || columns == 0 || !(span.is_finite() && span > 0.0) {
        return points.to_vec();
    }
    let column_of = |x: f64| {
        let c = ((x - x_lo) / span * columns as f64).floor();
        c.clamp(0.0, (columns - 1) as f64) as usize
    };
    let mut out = Vec::with_capacity(2 * columns + 2);
    let mut i = 0;
    while i < points.len() {
        // The run of consecutive points in the same column.
        let col = column_of(points[i].0);
        let mut j = i;
        let (mut lo, mut hi) = (i, i);
        while j < points.len() && column_of(points[j].0) == col {
            if points[j].1 < points[lo].1 {
                lo = j;
            }
            if points[j].1 > points[hi].1 {
                hi = j;
            }
            j += 1;
        }
        out.push(points[lo.min(hi)]);
        if lo != hi {
            out.push(points[lo.max(hi)]);
        }
        i = j;
    }
    out
}

/// Data-to-pixel mapping of the plot area.
struct Mapping {
    x_lo: f64,
    x_hi: f64,
    y_lo: f64,
    y_hi: f64,
}

impl Mapping {
    fn px(&self, x: f64) -> f64 {
        PLOT_X0 + (x - self.x_lo) / (self.x_hi - self.x_lo) * (PLOT_X1 - PLOT_X0)
    }
    /// `y` in axis units (log10 for a log axis).
    fn py(&self, y: f64) -> f64 {
        PLOT_Y1 - (y - self.y_lo) / (self.y_hi - self.y_lo) * (PLOT_Y1 - PLOT_Y0)
    }
}

/// Running min/max.
struct Range {
    lo: f64,
    hi: f64,
}

impl Range {
    fn empty() -> Self {
        Range {
            lo: f64::INFINITY,
            hi: f64::NEG_INFINITY,
        }
    }
    fn add(&mut self, v: f64) {
        self.lo = self.lo.min(v);
        self.hi = self.hi.max(v);
    }
    fn is_empty(&self) -> bool {
        self.lo > self.hi
    }
    /// The range, widened by `pad` each way when it has zero width, and
    /// [0, 1] when empty, so an axis can always be drawn.
    fn or_unit(&self, pad: f64) -> (f64, f64) {
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
fn linear_ticks(lo: f64, hi: f64, extend: bool) -> (Vec<(f64, String)>, f64, f64) {
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
fn nice_step(raw: f64) -> f64 {
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
fn format_number(v: f64, step: f64) -> String {
    let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
    if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-4) {
        return format!("{v:e}");
    }
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    format!("{v:.decimals$}")
}

/// Ticks for a log axis given in log10 units: integer decades, every k-th
/// one when there are many.
fn log_ticks(lo: f64, hi: f64) -> (Vec<(f64, String)>, f64, f64) {
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
fn time_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
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
fn draw_ticks(
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
fn open_svg(out: &mut String, title: &str, x_label: &str, y_label: &str) {
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
fn frame(out: &mut String) {
    let _ = writeln!(
        out,
        r##"<rect x="{PLOT_X0:.1}" y="{PLOT_Y0:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
        PLOT_X1 - PLOT_X0,
        PLOT_Y1 - PLOT_Y0
    );
}

fn no_data(out: &mut String) {
    let _ = writeln!(
        out,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#888" font-size="16">no data</text>"##,
        (PLOT_X0 + PLOT_X1) / 2.0,
        (PLOT_Y0 + PLOT_Y1) / 2.0
    );
}

/// One row of colour swatches and labels between the title and the plot.
fn legend_row(out: &mut String, entries: &[(&str, &str)]) {
    let mut x = PLOT_X0;
    let y = PLOT_Y0 - 12.0;
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
        // Roughly 7 px per character at font-size 12.
        x += 24.0 + 7.0 * label.chars().count() as f64 + 18.0;
    }
}

/// XML-escapes text and attribute values, dropping control characters.
fn escape(s: &str) -> String {
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
    fn assert_well_formed(svg: &str) {
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

    fn chart(points: Vec<(f64, f64)>) -> LineChart {
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
    fn line_chart_is_well_formed_with_legend_and_axes() {
        let mut c = chart(
            (0..100)
                .map(|i| (i as f64, (i as f64 / 10.0).sin()))
                .collect(),
        );
        c.series.push(Series {
            label: "prediction".into(),
            points: vec![(0.0, 0.5), (99.0, -0.5)],
            color: "#ff7f0e",
        });
        c.hlines.push((0.8, "threshold 0.8".into()));
        c.shaded_x.push((20.0, 30.0));
        let svg = line_chart(&c);
        assert_well_formed(&svg);
        assert!(svg.contains(">prediction</text>"));
        assert!(svg.contains(">threshold 0.8</text>"));
        assert!(svg.contains(">time</text>") && svg.contains(">score</text>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("fill-opacity").count(), 1);
        assert!(!svg.contains("no data"));
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

    #[test]
    fn decimation_keeps_the_extremes() {
        let mut points: Vec<(f64, f64)> = (0..25_000)
            .map(|i| (i as f64, (i as f64 / 50.0).sin()))
            .collect();
        points[12_345].1 = 1000.0;
        points[20_000].1 = -1000.0;
        let d = decimate(&points, 0.0, 24_999.0, 800);
        assert!(d.len() <= 1600, "{}", d.len());
        assert!(d.contains(&(12_345.0, 1000.0)));
        assert!(d.contains(&(20_000.0, -1000.0)));
        assert!(d.windows(2).all(|w| w[0].0 < w[1].0), "order kept");
        // Every column keeps its own min and max: the sine's ±1 survive.
        assert!(d.iter().filter(|p| p.1 > 0.999 && p.1 <= 1.0).count() >= 10);
        // Short series are left alone.
        assert_eq!(
            decimate(&points[..100], 0.0, 99.0, 800),
            points[..100].to_vec()
        );
    }

    #[test]
    fn large_series_make_small_files() {
        let mut points: Vec<(f64, f64)> = (0..25_000)
            .map(|i| {
                (
                    1.386e12 + i as f64 * 300_000.0,
                    (i as f64 / 7.0).sin() * 3.0 + 70.0,
                )
            })
            .collect();
        points[777].1 = 500.0;
        let mut c = chart(points.clone());
        c.x_is_time_ms = true;
        c.series.push(Series {
            label: "reconstruction".into(),
            points,
            color: "#2ca02c",
        });
        let svg = line_chart(&c);
        assert_well_formed(&svg);
        assert!(svg.len() < 200_000, "{} bytes", svg.len());
        // The spike sets the top of the y range: its tick is drawn.
        assert!(svg.contains(">500</text>"), "spike lost");
    }

    #[test]
    fn hlines_stretch_the_y_range() {
        let mut c = chart(vec![(0.0, 0.0), (1.0, 1.0)]);
        c.hlines.push((5.0, "threshold".into()));
        let svg = line_chart(&c);
        // Range [0, 5], step 1: ticks 0..5.
        for t in ["0", "1", "2", "3", "4", "5"] {
            assert!(svg.contains(&format!(">{t}</text>")), "tick {t}");
        }
    }

    #[test]
    fn log_axis_uses_decades_and_skips_non_positive() {
        let mut c = chart(vec![
            (0.0, 1.0),
            (1.0, 0.1),
            (2.0, 0.0),
            (3.0, 0.002),
            (4.0, -1.0),
        ]);
        c.log_y = true;
        let svg = line_chart(&c);
        assert_well_formed(&svg);
        for t in ["0.001", "0.01", "0.1", "1"] {
            assert!(svg.contains(&format!(">{t}</text>")), "tick {t}");
        }
        // y = 0 and y = −1 are dropped, breaking the line after (1, 0.1).
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1);
    }

    #[test]
    fn time_axis_has_date_labels() {
        // 2013-12-02T00:00Z to 2013-12-05T00:00Z: 3 days, ticks every 12 h.
        let start = 1_385_942_400_000.0;
        let day = 86_400_000.0;
        let mut c = chart(vec![(start, 1.0), (start + 3.0 * day, 2.0)]);
        c.x_is_time_ms = true;
        let svg = line_chart(&c);
        assert!(svg.contains(">12-02 00:00</text>"), "{svg}");
        assert!(svg.contains(">12-03 12:00</text>"));
        assert!(svg.contains(">12-05 00:00</text>"));
        // Two months: whole dates.
        let c2 = LineChart {
            series: vec![Series {
                label: "s".into(),
                points: vec![(start, 1.0), (start + 60.0 * day, 2.0)],
                color: "black",
            }],
            x_is_time_ms: true,
            ..LineChart::default()
        };
        assert!(line_chart(&c2).contains(">2014-01-"), "date labels");
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
