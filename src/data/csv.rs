//! Loading a time series from a CSV file into a [`Series`]: one timestamp
//! column and one or more numeric feature columns (the NAB layout is
//! `timestamp,value`).
//!
//! The loader is strict by default: the model must never silently train on
//! a hole or a typo, so the first bad cell stops the load with one error that
//! names the file, the line and the column. [`FillRule`] relaxes this for
//! *missing* values only (empty cells and NaN); text that is not a number is
//! always an error, because it usually means a wrong column or a corrupt
//! file rather than a gap in the measurements.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use sha2::{Digest, Sha256};

use super::time::parse_timestamp;
use super::{CellProblem, DataError};

/// A loaded time series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The file it came from.
    pub path: PathBuf,
    /// Epoch milliseconds, UTC; one per row. Strictly increasing unless
    /// loaded with [`TimestampOrder::Unchecked`].
    pub timestamps: Vec<i64>,
    /// Names of the feature columns, in the order of `values`' columns.
    pub feature_names: Vec<String>,
    /// `[rows, F]`; every value is finite.
    pub values: Array2<f32>,
    /// Lowercase hex SHA-256 of the file's bytes, so a model's manifest can
    /// record exactly which data it was trained on.
    pub sha256: String,
    /// How many cells [`FillRule`] filled in (0 with [`FillRule::Error`]).
    pub filled: usize,
}

impl Series {
    /// Number of rows (time steps).
    pub fn rows(&self) -> usize {
        self.values.nrows()
    }

    /// Number of features F.
    pub fn features(&self) -> usize {
        self.values.ncols()
    }
}

/// What to do with a missing value: an empty cell or NaN.
///
/// Text that is not a number, infinities and bad timestamps are errors under
/// every rule: filling them would hide a broken file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FillRule {
    /// Stop at the first missing value.
    #[default]
    Error,
    /// Carry the column's last good value forward. A missing value with no
    /// good value before it (e.g. in the first row) is still an error.
    Previous,
    /// Interpolate linearly in time between the nearest good values before
    /// and after (by row position where timestamps do not increase, see
    /// [`TimestampOrder::Unchecked`]). A gap at the start or end of the file, which has a
    /// neighbour on one side only, takes that neighbour's value. A column
    /// with no good value at all is an error.
    Linear,
}

/// Whether timestamps must strictly increase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimestampOrder {
    /// A timestamp equal to or before the previous one is an error: it
    /// usually means concatenated or shuffled files.
    #[default]
    Increasing,
    /// Keep rows in file order whatever their timestamps. Windows are
    /// counted in rows, so this is safe for data known to have clock
    /// glitches: 8 of the 58 NAB files repeat timestamps (daylight-saving
    /// changes, duplicated rows) or step back an hour, and NAB's labels and
    /// scoring assume the rows as they are. Named `file` in settings.
    #[serde(rename = "file")]
    Unchecked,
}

/// Which columns to read and how to treat missing values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// The timestamp column. Default: the first column named as in
    /// [`TIMESTAMP_NAMES`], else the first column.
    pub timestamp_column: Option<String>,
    /// The feature columns, in this order (names match exactly). Default:
    /// every column except the timestamp, in file order.
    pub feature_columns: Option<Vec<String>>,
    pub fill: FillRule,
    pub timestamp_order: TimestampOrder,
    /// The byte between fields (see [`parse_separator`]).
    pub separator: u8,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            timestamp_column: None,
            feature_columns: None,
            fill: FillRule::default(),
            timestamp_order: TimestampOrder::default(),
            separator: b',',
        }
    }
}

/// Names a timestamp column is found by when none is set, in this order
/// (case-insensitive); a file with none of them has it first.
pub const TIMESTAMP_NAMES: [&str; 5] = ["timestamp", "time", "ts", "datetime", "date"];

/// Reads a field separator as written in settings or on the command line:
/// one ASCII character, or `tab` / `\t` for a tab.
pub fn parse_separator(s: &str) -> Result<u8, String> {
    let b = match s {
        "tab" | "\\t" | "\t" => b'\t',
        _ => match s.as_bytes() {
            [b] if b.is_ascii() => *b,
            _ => {
                return Err(format!(
                    "'{s}' is not one character; use e.g. ',', ';', '|' or tab"
                ))
            }
        },
    };
    if matches!(b, b'"' | b'\n' | b'\r') || b.is_ascii_alphanumeric() {
        return Err(format!(
            "'{s}' cannot separate fields; use e.g. ',', ';', '|' or tab"
        ));
    }
    Ok(b)
}

/// Loads a series; see the module docs for the rules.
pub fn load_csv(path: &Path, opts: &CsvOptions) -> Result<Series, DataError> {
    load_csv_marking_filled(path, opts).map(|(series, _)| series)
}

/// [`load_csv`], and per row how many of its cells [`FillRule`] filled
/// (so that output derived from a filled cell can say so).
pub fn load_csv_marking_filled(
    path: &Path,
    opts: &CsvOptions,
) -> Result<(Series, Vec<u32>), DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let sha256 = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let mut parsed = parse_csv(path, body, opts)?;
    let rows = parsed.timestamps.len();
    let mut filled_per_row = vec![0u32; rows];
    for m in &parsed.missing {
        if let Some(n) = filled_per_row.get_mut(m.row) {
            *n += 1;
        }
    }
    let filled = fill(path, &mut parsed, opts.fill)?;
    let features = parsed.feature_names.len();
    let values = match Array2::from_shape_vec((rows, features), parsed.values) {
        Ok(values) => values,
        // The parser pushes exactly `features` values per row.
        Err(e) => unreachable!("load_csv: broken invariant, {rows} x {features} values: {e}"),
    };
    let series = Series {
        path: path.to_path_buf(),
        timestamps: parsed.timestamps,
        feature_names: parsed.feature_names,
        values,
        sha256,
        filled,
    };
    Ok((series, filled_per_row))
}

/// A missing value waiting for [`fill`]: its row, feature column and why.
struct Missing {
    row: usize,
    feature: usize,
    problem: CellProblem,
}

/// The file read row by row, before missing values are filled.
struct Parsed {
    timestamps: Vec<i64>,
    /// File line of each row, for error messages.
    lines: Vec<u64>,
    feature_names: Vec<String>,
    /// Row-major `[rows, F]`; missing values are NaN placeholders.
    values: Vec<f32>,
    missing: Vec<Missing>,
}

fn parse_csv(path: &Path, body: &[u8], opts: &CsvOptions) -> Result<Parsed, DataError> {
    let csv_err = |source: ::csv::Error| DataError::Csv {
        path: path.to_path_buf(),
        line: source
            .position()
            .map_or(0, |p| LineCounter::new(body).line_at(p.byte())),
        source,
    };
    let mut lines = LineCounter::new(body);
    let mut reader = ::csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(opts.separator)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(body);
    let mut records = reader.records();
    let header = match records.next() {
        None => {
            return Err(DataError::NoHeader {
                path: path.to_path_buf(),
            })
        }
        Some(r) => r.map_err(csv_err)?,
    };
    let header: Vec<String> = header.iter().map(str::to_string).collect();
    // A file without a header row would silently lose its first row to the
    // column names; numbers where the feature names belong mean data.
    let number = |h: &String| h.parse::<f64>().is_ok();
    if header.iter().skip(1).all(number) && (header.len() > 1 || number(&header[0])) {
        return Err(DataError::BadColumns {
            path: path.to_path_buf(),
            reason: format!(
                "line 1, '{}', is data, not a header row: add a first line naming the columns, \
                 e.g. timestamp,value (docs/guide.md, *Your CSV*)",
                header.join(&char::from(opts.separator).to_string())
            ),
        });
    }
    let (ts_col, feature_cols) = resolve_columns(path, &header, opts)?;
    let feature_names: Vec<String> = feature_cols.iter().map(|&c| header[c].clone()).collect();

    let mut parsed = Parsed {
        timestamps: Vec::new(),
        lines: Vec::new(),
        feature_names,
        values: Vec::new(),
        missing: Vec::new(),
    };
    // The first column, taken for want of a named one, may be the wrong one.
    let ts_by_default = opts.timestamp_column.is_none()
        && !TIMESTAMP_NAMES
            .iter()
            .any(|n| header[ts_col].eq_ignore_ascii_case(n));
    let ts_hint = super::timestamp_column_hint(ts_by_default);
    let mut previous: Option<(i64, String, u64)> = None;
    let mut last_good: Vec<Option<f32>> = vec![None; feature_cols.len()];
    for record in records {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |p| lines.line_at(p.byte()));
        if record.len() < header.len() {
            return Err(DataError::MissingField {
                path: path.to_path_buf(),
                line,
                column: header[record.len()].clone(),
                found: record.len(),
                expected: header.len(),
            });
        }
        if record.len() > header.len() {
            return Err(DataError::ExtraFields {
                path: path.to_path_buf(),
                line,
                found: record.len(),
                expected: header.len(),
            });
        }
        let bad_cell_hint = |column: usize, problem: CellProblem, hint| DataError::BadCell {
            path: path.to_path_buf(),
            line,
            column: header[column].clone(),
            value: record[column].to_string(),
            problem,
            hint,
        };
        let bad_cell = |column: usize, problem: CellProblem| bad_cell_hint(column, problem, "");

        let ts_text = &record[ts_col];
        let ts = parse_timestamp(ts_text).ok_or_else(|| {
            let problem = if ts_text.is_empty() {
                CellProblem::Empty
            } else {
                CellProblem::BadTimestamp
            };
            bad_cell_hint(ts_col, problem, ts_hint)
        })?;
        if let (TimestampOrder::Increasing, Some((prev, prev_text, prev_line))) =
            (opts.timestamp_order, &previous)
        {
            if ts <= *prev {
                return Err(DataError::NonIncreasing {
                    path: path.to_path_buf(),
                    line,
                    column: header[ts_col].clone(),
                    value: ts_text.to_string(),
                    previous: prev_text.clone(),
                    previous_line: *prev_line,
                    column_by_default: ts_by_default,
                });
            }
        }
        previous = Some((ts, ts_text.to_string(), line));

        let row = parsed.timestamps.len();
        for (feature, &col) in feature_cols.iter().enumerate() {
            match parse_value(&record[col]) {
                Ok(v) => {
                    last_good[feature] = Some(v);
                    parsed.values.push(v);
                }
                Err(problem @ (CellProblem::Empty | CellProblem::NaN)) => {
                    match opts.fill {
                        FillRule::Error => return Err(bad_cell_hint(
                            col,
                            problem,
                            "; set data.fill = \"previous\" or \"linear\" to fill missing values: \
                             --fill linear, or `[data]` then `fill = \"linear\"` in the --config \
                             file, or LSTM_AE__DATA__FILL=linear",
                        )),
                        FillRule::Previous => match last_good[feature] {
                            Some(v) => {
                                parsed.values.push(v);
                                parsed.missing.push(Missing {
                                    row,
                                    feature,
                                    problem,
                                });
                            }
                            None => {
                                return Err(DataError::CannotFill {
                                    path: path.to_path_buf(),
                                    line,
                                    column: header[col].clone(),
                                    problem,
                                    reason: "no earlier value in this column to carry forward \
                                         (fill = previous)",
                                })
                            }
                        },
                        FillRule::Linear => {
                            parsed.values.push(f32::NAN);
                            parsed.missing.push(Missing {
                                row,
                                feature,
                                problem,
                            });
                        }
                    }
                }
                // Every column but the timestamp is a feature by default: a
                // text column (a host name) needs the numeric ones listed.
                Err(problem @ CellProblem::NotANumber) if opts.feature_columns.is_none() => {
                    return Err(bad_cell_hint(
                        col,
                        problem,
                        "; to leave a text column out, list the numeric columns with \
                         --features cpu,memory (data.feature_columns, \
                         LSTM_AE__DATA__FEATURE_COLUMNS=cpu,memory)",
                    ))
                }
                Err(problem) => return Err(bad_cell(col, problem)),
            }
        }
        parsed.timestamps.push(ts);
        parsed.lines.push(line);
    }
    if parsed.timestamps.is_empty() {
        return Err(DataError::NoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(parsed)
}

/// Turns byte offsets into 1-based line numbers.
///
/// The csv crate's own line count does not count skipped blank lines, so
/// its numbers drift from what an editor shows; counting line breaks up to
/// the record's first byte does not. Offsets must be asked for in increasing order, which
/// keeps the whole count linear in the file size.
struct LineCounter<'a> {
    body: &'a [u8],
    pos: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(body: &'a [u8]) -> Self {
        LineCounter {
            body,
            pos: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, byte: u64) -> u64 {
        let mut end = usize::try_from(byte).map_or(self.body.len(), |b| b.min(self.body.len()));
        // A record's position is where the reader started looking for it,
        // which is before any blank lines it skipped; a record itself never
        // starts with a line break.
        while matches!(self.body.get(end), Some(b'\n' | b'\r')) {
            end += 1;
        }
        for i in self.pos..end.max(self.pos) {
            // "\n", "\r\n" and a lone "\r" each end one line.
            let b = self.body[i];
            if b == b'\n' || (b == b'\r' && self.body.get(i + 1) != Some(&b'\n')) {
                self.line += 1;
            }
        }
        self.pos = end.max(self.pos);
        self.line
    }
}

/// Picks the timestamp column and the feature columns (indices into the header).
fn resolve_columns(
    path: &Path,
    header: &[String],
    opts: &CsvOptions,
) -> Result<(usize, Vec<usize>), DataError> {
    let unknown = |role, name: &str| DataError::UnknownColumn {
        path: path.to_path_buf(),
        role,
        name: name.to_string(),
        available: header.to_vec(),
    };
    let ts_col = match &opts.timestamp_column {
        Some(name) => header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| unknown("timestamp", name))?,
        None => TIMESTAMP_NAMES
            .iter()
            .find_map(|n| header.iter().position(|h| h.eq_ignore_ascii_case(n)))
            .unwrap_or(0),
    };
    let feature_cols: Vec<usize> = match &opts.feature_columns {
        None => (0..header.len()).filter(|&c| c != ts_col).collect(),
        Some(names) => {
            let mut cols = Vec::with_capacity(names.len());
            for name in names {
                let c = header
                    .iter()
                    .position(|h| h == name)
                    .ok_or_else(|| unknown("feature", name))?;
                if c == ts_col {
                    return Err(DataError::BadColumns {
                        path: path.to_path_buf(),
                        reason: format!(
                            "column '{name}' is the timestamp column and cannot also be a feature"
                        ),
                    });
                }
                if cols.contains(&c) {
                    return Err(DataError::BadColumns {
                        path: path.to_path_buf(),
                        reason: format!("feature column '{name}' is listed twice"),
                    });
                }
                cols.push(c);
            }
            cols
        }
    };
    // Two columns of one name: which one a name means is a guess, and a
    // bundle's feature names must pick its columns out unambiguously.
    for &c in std::iter::once(&ts_col).chain(&feature_cols) {
        if let Some(other) = (0..header.len()).find(|&o| o != c && header[o] == header[c]) {
            let (a, b) = (c.min(other) + 1, c.max(other) + 1);
            return Err(DataError::BadColumns {
                path: path.to_path_buf(),
                reason: format!(
                    "the header names column '{}' twice (columns {a} and {b}): rename one, \
                     or pick the feature columns with --features (data.feature_columns)",
                    header[c]
                ),
            });
        }
    }
    if feature_cols.is_empty() {
        // Another separator in the lone column name is the likely cause.
        let separator = [(',', ","), (';', ";"), ('\t', "tab"), ('|', "|")]
            .into_iter()
            .find(|(c, _)| *c != char::from(opts.separator) && header[ts_col].contains(*c))
            .map(|(c, flag)| {
                format!(
                    "; the fields look separated by '{}': pass --separator '{flag}' \
                     (data.separator)",
                    c.escape_default()
                )
            })
            .unwrap_or_default();
        return Err(DataError::BadColumns {
            path: path.to_path_buf(),
            reason: format!(
                "no feature columns: the header has only the timestamp column '{}'{separator}",
                header[ts_col]
            ),
        });
    }
    Ok((ts_col, feature_cols))
}

/// Parses one feature cell (already trimmed) into a finite `f32`.
fn parse_value(s: &str) -> Result<f32, CellProblem> {
    if s.is_empty() {
        return Err(CellProblem::Empty);
    }
    let v: f64 = s.parse().map_err(|_| CellProblem::NotANumber)?;
    if v.is_nan() {
        return Err(CellProblem::NaN);
    }
    let v32 = v as f32;
    if !v32.is_finite() {
        return Err(CellProblem::Infinite);
    }
    Ok(v32)
}

/// Fills the NaN placeholders [`FillRule::Linear`] left (the other rules
/// fill while parsing); returns the number of filled cells.
fn fill(path: &Path, parsed: &mut Parsed, rule: FillRule) -> Result<usize, DataError> {
    if rule != FillRule::Linear {
        return Ok(parsed.missing.len());
    }
    let f = parsed.feature_names.len();
    let rows = parsed.timestamps.len();
    for feature in 0..f {
        let mut before: Option<usize> = None;
        let mut gap_start: Option<usize> = None;
        for r in 0..=rows {
            let good = r < rows && parsed.values[r * f + feature].is_finite();
            if r < rows && !good {
                gap_start.get_or_insert(r);
                continue;
            }
            if let Some(start) = gap_start.take() {
                let after = (r < rows).then_some(r);
                if before.is_none() && after.is_none() {
                    let first = parsed
                        .missing
                        .iter()
                        .find(|m| m.feature == feature && m.row == start);
                    return Err(DataError::CannotFill {
                        path: path.to_path_buf(),
                        line: parsed.lines[start],
                        column: parsed.feature_names[feature].clone(),
                        problem: first.map_or(CellProblem::Empty, |m| m.problem.clone()),
                        reason: "the column has no good value to interpolate from (fill = linear)",
                    });
                }
                fill_gap(parsed, feature, start..r, before, after);
            }
            before = Some(r);
        }
    }
    Ok(parsed.missing.len())
}

/// Fills rows `gap` of one feature column from the good rows around it,
/// linearly in time; with a neighbour on one side only, copies it.
fn fill_gap(
    parsed: &mut Parsed,
    feature: usize,
    gap: std::ops::Range<usize>,
    before: Option<usize>,
    after: Option<usize>,
) {
    let f = parsed.feature_names.len();
    let value = |row: usize| f64::from(parsed.values[row * f + feature]);
    let fills: Vec<f32> = gap
        .clone()
        .map(|r| match (before, after) {
            (Some(b), Some(a)) => {
                let t = |row: usize| parsed.timestamps[row] as f64;
                // By time; by row position if the timestamps around the gap
                // do not increase (possible with TimestampOrder::Unchecked).
                let w = if t(b) < t(r) && t(r) < t(a) {
                    (t(r) - t(b)) / (t(a) - t(b))
                } else {
                    (r - b) as f64 / (a - b) as f64
                };
                (value(b) + (value(a) - value(b)) * w) as f32
            }
            (Some(n), None) | (None, Some(n)) => value(n) as f32,
            (None, None) => f32::NAN,
        })
        .collect();
    for (r, v) in gap.zip(fills) {
        parsed.values[r * f + feature] = v;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// 2013-12-02T21:15:00Z in epoch seconds (computed with Python's
    /// `calendar.timegm`).
    const T0: i64 = 1_386_018_900;

    fn write(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.path().join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(bytes).unwrap();
        path
    }

    fn load(bytes: &str, opts: &CsvOptions) -> Result<Series, DataError> {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "series.csv", bytes.as_bytes());
        load_csv(&path, opts)
    }

    fn load_default(bytes: &str) -> Result<Series, DataError> {
        load(bytes, &CsvOptions::default())
    }

    fn fill_opts(fill: FillRule) -> CsvOptions {
        CsvOptions {
            fill,
            ..CsvOptions::default()
        }
    }

    #[test]
    fn loads_nab_layout() {
        let s = load_default(
            "timestamp,value\n2013-12-02 21:15:00,73.5\n2013-12-02 21:20:00,74.25\n\
             2013-12-02 21:25:00,-1e3\n",
        )
        .unwrap();
        assert_eq!(s.feature_names, vec!["value"]);
        assert_eq!(
            s.timestamps,
            vec![T0 * 1000, (T0 + 300) * 1000, (T0 + 600) * 1000]
        );
        assert_eq!(s.values.shape(), &[3, 1]);
        assert_eq!(s.values.column(0).to_vec(), vec![73.5, 74.25, -1000.0]);
        assert_eq!(s.filled, 0);
    }

    #[test]
    fn sha256_is_of_the_file_bytes() {
        // Expected digest from `sha256sum`.
        let s = load_default("timestamp,value\n2013-12-02 21:15:00,1.5\n").unwrap();
        assert_eq!(
            s.sha256,
            "475e9c1fa904f6226ac7951c1d1b90481d325dc5a355860b601e0ea50e30728e"
        );
    }

    #[test]
    fn crlf_and_bom_are_accepted() {
        let s = load_default(
            "\u{feff}timestamp,value\r\n2013-12-02 21:15:00,1\r\n2013-12-02 21:20:00,2\r\n",
        )
        .unwrap();
        // The BOM must not end up in the header, or "timestamp" would not be
        // recognised and "value" would not be the only feature.
        assert_eq!(s.feature_names, vec!["value"]);
        assert_eq!(s.timestamps, vec![T0 * 1000, (T0 + 300) * 1000]);
        assert_eq!(s.values.column(0).to_vec(), vec![1.0, 2.0]);
        let err = load_default("\u{feff}timestamp,value\r\n10,1\r\n\r\n20,x\r\n").unwrap_err();
        assert!(matches!(err, DataError::BadCell { line: 4, .. }), "{err:?}");
        // A quoted field spanning two lines: the next record is on line 4.
        let value_only = CsvOptions {
            feature_columns: Some(vec!["value".into()]),
            ..CsvOptions::default()
        };
        let err = load("timestamp,value,note\n10,1,\"a\nb\"\n20,x,c\n", &value_only).unwrap_err();
        assert!(matches!(err, DataError::BadCell { line: 4, .. }), "{err:?}");
    }

    #[test]
    fn timestamp_column_found_by_name_case_insensitively() {
        let s = load_default("a,TimeStamp,b\n1,2013-12-02 21:15:00,2\n3,2013-12-02 21:20:00,4\n")
            .unwrap();
        assert_eq!(s.feature_names, vec!["a", "b"]);
        assert_eq!(s.values.row(1).to_vec(), vec![3.0, 4.0]);
        assert_eq!(s.timestamps[0], T0 * 1000);
    }

    #[test]
    fn first_column_is_the_timestamp_by_default() {
        let s = load_default("time,x\n1386018900,5\n1386019200,6\n").unwrap();
        assert_eq!(s.feature_names, vec!["x"]);
        assert_eq!(s.timestamps, vec![T0 * 1000, (T0 + 300) * 1000]);
    }

    #[test]
    fn explicit_columns_in_requested_order() {
        let opts = CsvOptions {
            timestamp_column: Some("t".into()),
            feature_columns: Some(vec!["c".into(), "a".into()]),
            ..CsvOptions::default()
        };
        let s = load("a,t,b,c\n1,10,2,3\n4,20,5,6\n", &opts).unwrap();
        assert_eq!(s.feature_names, vec!["c", "a"]);
        assert_eq!(s.values.row(0).to_vec(), vec![3.0, 1.0]);
        assert_eq!(s.values.row(1).to_vec(), vec![6.0, 4.0]);
        assert_eq!(s.timestamps, vec![10_000, 20_000]);
    }

    #[test]
    fn unknown_column_names_the_available_ones() {
        let opts = CsvOptions {
            feature_columns: Some(vec!["valu".into()]),
            ..CsvOptions::default()
        };
        let err = load("timestamp,value\n10,1\n", &opts).unwrap_err();
        assert!(
            matches!(&err, DataError::UnknownColumn { role: "feature", name, available, .. }
                if name == "valu" && available == &["timestamp", "value"]),
            "{err:?}"
        );
        assert!(err.to_string().contains("timestamp, value"), "{err}");

        let opts = CsvOptions {
            timestamp_column: Some("time".into()),
            ..CsvOptions::default()
        };
        let err = load("timestamp,value\n10,1\n", &opts).unwrap_err();
        assert!(matches!(
            err,
            DataError::UnknownColumn {
                role: "timestamp",
                ..
            }
        ));
    }

    #[test]
    fn timestamp_column_cannot_be_a_feature_and_features_must_exist() {
        let opts = CsvOptions {
            feature_columns: Some(vec!["timestamp".into()]),
            ..CsvOptions::default()
        };
        let err = load("timestamp,value\n10,1\n", &opts).unwrap_err();
        assert!(matches!(err, DataError::BadColumns { .. }), "{err:?}");
        let err = load_default("timestamp\n10\n").unwrap_err();
        assert!(matches!(err, DataError::BadColumns { .. }), "{err:?}");
    }

    #[test]
    fn error_names_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "broken.csv",
            b"timestamp,value\n2013-12-02 21:15:00,1\n\n2013-12-02 21:20:00,abc\n",
        );
        let err = load_csv(&path, &CsvOptions::default()).unwrap_err();
        match &err {
            DataError::BadCell {
                line,
                column,
                value,
                problem,
                ..
            } => {
                // Line 4: the blank line 3 still counts.
                assert_eq!(*line, 4);
                assert_eq!(column, "value");
                assert_eq!(value, "abc");
                assert_eq!(*problem, CellProblem::NotANumber);
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("broken.csv"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
        assert!(msg.contains("'value'"), "{msg}");
    }

    fn cell_problem(csv: &str) -> (u64, String, CellProblem) {
        match load_default(csv).unwrap_err() {
            DataError::BadCell {
                line,
                column,
                problem,
                ..
            } => (line, column, problem),
            other => panic!("expected a bad cell, got {other:?}"),
        }
    }

    #[test]
    fn bad_values_are_rejected_by_default() {
        let head = "timestamp,value\n2013-12-02 21:15:00,1\n";
        for (cell, problem) in [
            ("", CellProblem::Empty),
            ("  ", CellProblem::Empty),
            ("NaN", CellProblem::NaN),
            ("nan", CellProblem::NaN),
            ("inf", CellProblem::Infinite),
            ("-Infinity", CellProblem::Infinite),
            ("1e39", CellProblem::Infinite),
            ("1,5", CellProblem::NotANumber),
            ("n/a", CellProblem::NotANumber),
        ] {
            let csv = if cell.contains(',') {
                format!("{head}2013-12-02 21:20:00,\"{cell}\"\n")
            } else {
                format!("{head}2013-12-02 21:20:00,{cell}\n")
            };
            assert_eq!(
                cell_problem(&csv),
                (3, "value".to_string(), problem),
                "cell {cell:?}"
            );
        }
    }

    #[test]
    fn missing_values_name_the_fill_setting_and_bad_text_does_not() {
        let head = "timestamp,value\n2013-12-02 21:15:00,1\n";
        let err = load_default(&format!("{head}2013-12-02 21:20:00,\n")).unwrap_err();
        assert!(
            err.to_string()
                .contains(r#"data.fill = "previous" or "linear""#),
            "{err}"
        );
        let err = load_default(&format!("{head}2013-12-02 21:20:00,n/a\n")).unwrap_err();
        assert!(!err.to_string().contains("data.fill"), "{err}");
        let err = load_default("timestamp,value\n,1\n").unwrap_err();
        assert!(!err.to_string().contains("data.fill"), "{err}");
    }

    #[test]
    fn bad_timestamps_are_rejected() {
        let (line, column, problem) =
            cell_problem("timestamp,value\n2013-12-02 21:15:00,1\n02/12/2013 21:20,2\n");
        assert_eq!((line, column.as_str()), (3, "timestamp"));
        assert_eq!(problem, CellProblem::BadTimestamp);
        let (line, _, problem) = cell_problem("timestamp,value\n,1\n");
        assert_eq!((line, problem), (2, CellProblem::Empty));
    }

    #[test]
    fn timestamps_must_strictly_increase() {
        let err = load_default(
            "timestamp,value\n2013-12-02 21:15:00,1\n2013-12-02 21:20:00,2\n2013-12-02 21:20:00,3\n",
        )
        .unwrap_err();
        match &err {
            DataError::NonIncreasing {
                line,
                previous,
                previous_line,
                ..
            } => {
                assert_eq!(*line, 4);
                assert_eq!(previous, "2013-12-02 21:20:00");
                assert_eq!(*previous_line, 3);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("line 3"), "{err}");
        // The setting that accepts such a file is named.
        assert!(
            err.to_string().contains(r#"data.timestamp_order = "file""#),
            "{err}"
        );
        let err = load_default("timestamp,value\n20,1\n10,2\n").unwrap_err();
        assert!(
            matches!(err, DataError::NonIncreasing { line: 3, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn unchecked_order_keeps_file_order() {
        // The NAB glitch: an hour repeated, then a duplicate row.
        let opts = CsvOptions {
            timestamp_order: TimestampOrder::Unchecked,
            fill: FillRule::Linear,
            ..CsvOptions::default()
        };
        let s = load("timestamp,a\n100,1\n200,2\n100,\n200,4\n200,5\n", &opts).unwrap();
        assert_eq!(
            s.timestamps,
            vec![100_000, 200_000, 100_000, 200_000, 200_000]
        );
        // Time goes back at the gap, so it is filled by row position.
        assert_eq!(s.values.column(0).to_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0]);
    }

    #[test]
    fn short_and_long_rows_are_rejected() {
        let err = load_default("timestamp,a,b\n10,1,2\n20,3\n").unwrap_err();
        assert!(
            matches!(&err, DataError::MissingField { line: 3, column, found: 2, expected: 3, .. }
                if column == "b"),
            "{err:?}"
        );
        let err = load_default("timestamp,a\n10,1\n20,3,4\n").unwrap_err();
        assert!(
            matches!(
                err,
                DataError::ExtraFields {
                    line: 3,
                    found: 3,
                    expected: 2,
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn empty_files_are_rejected() {
        assert!(matches!(
            load_default("timestamp,value\n").unwrap_err(),
            DataError::NoRows { .. }
        ));
        assert!(matches!(
            load_default("timestamp,value\r\n\r\n").unwrap_err(),
            DataError::NoRows { .. }
        ));
        assert!(matches!(
            load_default("").unwrap_err(),
            DataError::NoHeader { .. }
        ));
        let missing = Path::new("/nonexistent/dir/x.csv");
        let err = load_csv(missing, &CsvOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }));
        assert!(err.to_string().contains("/nonexistent/dir/x.csv"));
    }

    #[test]
    fn fill_previous_carries_values_forward() {
        let s = load(
            "timestamp,a,b\n10,1,5\n20,,6\n30,NaN,\n40,4,8\n",
            &fill_opts(FillRule::Previous),
        )
        .unwrap();
        assert_eq!(s.values.column(0).to_vec(), vec![1.0, 1.0, 1.0, 4.0]);
        assert_eq!(s.values.column(1).to_vec(), vec![5.0, 6.0, 6.0, 8.0]);
        assert_eq!(s.filled, 3);
    }

    #[test]
    fn fill_previous_cannot_fill_the_first_row() {
        let err = load("timestamp,a\n10,\n20,1\n", &fill_opts(FillRule::Previous)).unwrap_err();
        assert!(
            matches!(&err, DataError::CannotFill { line: 2, column, .. } if column == "a"),
            "{err:?}"
        );
    }

    #[test]
    fn fill_never_hides_text_or_infinity() {
        for rule in [FillRule::Previous, FillRule::Linear] {
            let err = load("timestamp,a\n10,1\n20,oops\n30,2\n", &fill_opts(rule)).unwrap_err();
            assert!(
                matches!(
                    err,
                    DataError::BadCell {
                        line: 3,
                        problem: CellProblem::NotANumber,
                        ..
                    }
                ),
                "{rule:?}: {err:?}"
            );
            let err = load("timestamp,a\n10,1\n20,inf\n30,2\n", &fill_opts(rule)).unwrap_err();
            assert!(
                matches!(
                    err,
                    DataError::BadCell {
                        line: 3,
                        problem: CellProblem::Infinite,
                        ..
                    }
                ),
                "{rule:?}: {err:?}"
            );
        }
    }

    #[test]
    fn fill_linear_interpolates_in_time() {
        // Rows at t = 0, 10, 40, 100 s: the gaps at 10 and 40 lie 1/10 and
        // 4/10 of the way from 0 (value 0) to 100 (value 100).
        let s = load(
            "timestamp,a,b\n0,0,1\n10,,2\n40,nan,3\n100,100,4\n",
            &fill_opts(FillRule::Linear),
        )
        .unwrap();
        assert_eq!(s.values.column(0).to_vec(), vec![0.0, 10.0, 40.0, 100.0]);
        assert_eq!(s.values.column(1).to_vec(), vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.filled, 2);
    }

    #[test]
    fn fill_linear_copies_the_only_neighbour_at_the_edges() {
        let s = load(
            "timestamp,a\n0,\n10,5\n20,7\n30,\n40,\n",
            &fill_opts(FillRule::Linear),
        )
        .unwrap();
        assert_eq!(s.values.column(0).to_vec(), vec![5.0, 5.0, 7.0, 7.0, 7.0]);
        assert_eq!(s.filled, 3);
        let err = load("timestamp,a,b\n0,1,\n10,2,\n", &fill_opts(FillRule::Linear)).unwrap_err();
        assert!(
            matches!(&err, DataError::CannotFill { line: 2, column, .. } if column == "b"),
            "{err:?}"
        );
    }
}
