//! Reports for training and scoring runs: SVG charts ([`svg`]) of losses,
//! scores against the threshold, and score distributions.
//!
//! The charts are plain SVG text written without a plotting dependency, so a
//! model bundle's `report/*.svg` opens in any browser and diffs in review.

pub mod svg;

pub use svg::{decimate, histogram, histogram_counts, line_chart, Histogram, LineChart, PALETTE};
