//! Series data shared by training and scoring: loading a CSV into a
//! [`Series`] ([`csv`]), timestamps ([`time`]: every parse and format of an
//! instant, CSV, NAB and Kafka alike), cutting it into windows ([`window`])
//! and scaling features ([`scaler`]); labelled anomaly windows ([`labels`]).
//!
//! Training and offline scoring must see exactly the same rows, windows and
//! scaled values, so all of that lives here and nowhere else. Every problem
//! with the input is reported once, as a [`DataError`] that names the file,
//! the line and the column, so a user can fix the file without a debugger.

pub mod csv;
pub mod labels;
pub mod scaler;
pub mod time;
pub mod window;

use std::path::PathBuf;

pub use self::csv::{
    load_csv, load_csv_marking_filled, parse_separator, CsvOptions, FillRule, Series,
    TimestampOrder, TIMESTAMP_NAMES,
};
pub use self::scaler::{Scaler, ScalerKind};
pub use self::time::{format_timestamp, parse_timestamp};
pub use self::window::{
    chronological_split, gapless_runs, gather_batch_major, gather_horizon_time_major,
    gather_time_major, is_gap, median_step, window_starts, Split, DEFAULT_MAX_GAP_STEPS,
};

/// Where a timestamp cell is wrong in a column picked by default, the
/// column may be the wrong one: the flag that names another.
pub(crate) fn timestamp_column_hint(column_by_default: bool) -> &'static str {
    if column_by_default {
        "; if the timestamps are in another column, name it with --timestamp-column \
         (data.timestamp_column)"
    } else {
        ""
    }
}

/// What is wrong with one cell of a CSV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellProblem {
    /// The cell is empty (or only whitespace).
    Empty,
    /// The cell reads as NaN.
    NaN,
    /// The cell reads as ±infinity, or overflows `f32`.
    Infinite,
    /// The cell is text that is not a number.
    NotANumber,
    /// The timestamp cell is in none of the accepted formats.
    BadTimestamp,
}

impl std::fmt::Display for CellProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CellProblem::Empty => "empty value",
            CellProblem::NaN => "value is NaN",
            CellProblem::Infinite => "value is infinite or too large for f32",
            CellProblem::NotANumber => "not a number",
            CellProblem::BadTimestamp => {
                "not a timestamp (expected \"YYYY-MM-DD HH:MM:SS\", RFC 3339, \
                 \"YYYY-MM-DD\", or integer epoch seconds or milliseconds)"
            }
        })
    }
}

/// Why a series could not be loaded or windowed.
///
/// Line numbers are 1-based lines of the file, the header being line 1, so
/// they match what an editor shows.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A structural CSV problem (bad quoting, invalid UTF-8…).
    #[error("{}: line {line}: malformed CSV: {source}", path.display())]
    Csv {
        path: PathBuf,
        line: u64,
        #[source]
        source: ::csv::Error,
    },
    #[error("{}: the file is empty (no header line)", path.display())]
    NoHeader { path: PathBuf },
    #[error("{}: no {role} column named '{name}'; the columns are: {}", path.display(), available.join(", "))]
    UnknownColumn {
        path: PathBuf,
        /// "timestamp" or "feature".
        role: &'static str,
        name: String,
        available: Vec<String>,
    },
    #[error("{}: {reason}", path.display())]
    BadColumns { path: PathBuf, reason: String },
    #[error("{}: line {line}: column '{column}' is missing (the row has {found} fields, the header {expected})", path.display())]
    MissingField {
        path: PathBuf,
        line: u64,
        column: String,
        found: usize,
        expected: usize,
    },
    #[error("{}: line {line}: the row has {found} fields but the header has {expected}", path.display())]
    ExtraFields {
        path: PathBuf,
        line: u64,
        found: usize,
        expected: usize,
    },
    #[error("{}: line {line}, column '{column}': {problem}: '{value}'{hint}", path.display())]
    BadCell {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
        problem: CellProblem,
        /// The setting that would accept the cell, as "; set …", or "".
        hint: &'static str,
    },
    #[error("{}: line {line}, column '{column}': timestamp '{value}' is not after the previous one, '{previous}' on line {previous_line} (timestamps must strictly increase); if the rows are in the right order (e.g. an hour repeated at a daylight-saving change), set data.timestamp_order = \"file\" (--timestamp-order file) to keep them in file order{}", path.display(), timestamp_column_hint(*column_by_default))]
    NonIncreasing {
        path: PathBuf,
        line: u64,
        column: String,
        value: String,
        previous: String,
        previous_line: u64,
        /// The timestamp column was picked by default, not named.
        column_by_default: bool,
    },
    #[error("{}: line {line}, column '{column}': cannot fill the {problem}: {reason}", path.display())]
    CannotFill {
        path: PathBuf,
        line: u64,
        column: String,
        problem: CellProblem,
        reason: &'static str,
    },
    #[error("{}: no data rows after the header", path.display())]
    NoRows { path: PathBuf },
    #[error("the series has {rows} rows, a window needs T + P = {window} + {horizon} = {} rows; use a shorter --window or --horizon (model.window, model.horizon)", window + horizon)]
    TooShort {
        rows: usize,
        window: usize,
        horizon: usize,
    },
    #[error("the {side} part (rows {from}..{to}, {} rows) holds no window of T + P = {window} + {horizon} = {} rows; {hint}", to - from, window + horizon)]
    EmptySplit {
        /// "training" or "validation".
        side: &'static str,
        from: usize,
        to: usize,
        window: usize,
        horizon: usize,
        hint: &'static str,
    },
    #[error("invalid {name} = {value}: {reason}")]
    InvalidParameter {
        name: &'static str,
        value: String,
        reason: &'static str,
    },
}
