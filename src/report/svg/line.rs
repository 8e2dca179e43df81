//! Line charts: loss curves, and scores over time with the threshold and
//! anomaly stretches; long series decimated per pixel column.

use std::fmt::Write;

use super::{
    draw_ticks, escape, frame, legend_row, linear_ticks, log_ticks, no_data, open_svg, time_ticks,
    Mapping, Range, PLOT_COLUMNS, PLOT_X0, PLOT_X1, PLOT_Y0, PLOT_Y1,
};

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

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_well_formed, chart};
    use super::*;

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
}
