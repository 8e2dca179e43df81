//! The Numenta Anomaly Benchmark (NAB): its scoring rule, its file formats,
//! the `lstm-ae eval nab` driver and its report.
//!
//! - `rule.rs`: the per-row weighting, the scoring of one file at one
//!   threshold, the corpus-wide threshold sweep and the normalisation to the
//!   0–100 scale, implemented from NAB's documented method and checked
//!   against NAB's published per-file and final scores ([`score_file`],
//!   [`evaluate`]).
//! - `files.rs`: NAB's file formats: labelled windows, cost profiles, the
//!   corpus layout ([`NabLayout`]) and the
//!   `results/<detector>/<category>/<detector>_<file>.csv` result layout.
//! - [`run`]: the streaming evaluation driver (train on the probation, score
//!   causally, write NAB's results tree).
//! - [`split`]: the fixed tuning/report split and the scores of each half.
//! - [`report`]: the evaluation report (per-category scores and windows hit,
//!   missed and false positives, scoreboard, charts of the worst series).

mod files;
pub mod report;
mod rule;
pub mod run;
pub mod split;

pub use files::{
    load_profiles, load_windows, read_result_csv, read_results_tree, result_path, window_labels,
    write_result_csv, NabLayout, ResultRow,
};
pub use rule::{
    baselines, evaluate, evaluate_at, normalised_score, optimise_threshold, probationary_rows,
    scaled_sigmoid, score_file, Baselines, FileResult, FileScores, Optimum, Profile, ProfileReport,
    MAX_PROBATIONARY_ROWS, NO_DETECTION_THRESHOLD, PROBATIONARY_PERCENT,
};

use std::path::PathBuf;

use crate::data::labels::LabelsError;

/// A failure to read, write or score NAB material; every variant names the file
/// (or the series key) at fault.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    /// The labelled windows could not be read.
    #[error(transparent)]
    Labels(#[from] LabelsError),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: invalid JSON: {source}", .path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: {source}", .path.display())]
    Csv { path: PathBuf, source: csv::Error },
    /// The file parsed but its content is not what NAB's format requires.
    #[error("{}: {message}", .path.display())]
    Format { path: PathBuf, message: String },
    /// A series (keyed `category/file.csv`) cannot be scored as given.
    #[error("{key}: {message}")]
    Series { key: String, message: String },
}

#[cfg(test)]
mod test_profiles {
    //! The profiles the rule's and the file readers' unit tests share.
    use super::Profile;

    pub(super) fn profile(name: &str, fp: f64, fn_: f64) -> Profile {
        Profile {
            name: name.into(),
            tp: 1.0,
            fp,
            fn_,
            tn: 1.0,
        }
    }

    pub(super) fn standard() -> Profile {
        profile("standard", 0.11, 1.0)
    }
}
