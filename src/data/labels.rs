//! Labelled anomaly windows in NAB's format, the one reader of it for
//! `eval nab`, `eval labelled`, `score --labels` and `demo`:
//!
//! ```json
//! {"realKnownCause/machine_temperature_system_failure.csv":
//!     [["2013-12-10 06:25:00.000000", "2013-12-12 05:35:00.000000"], …]}
//! ```
//!
//! Keys are file paths relative to the data folder (`/`-separated); each
//! window is `[start, end]`, inclusive, in any form
//! [`super::time::parse_timestamp`] reads. A data file takes the windows of
//! the key its path ends with, compared by whole path components
//! ([`windows_for`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::time::parse_timestamp;

/// `[start, end]` windows (epoch ms, inclusive) per file key, each list
/// sorted by start.
pub type LabelledWindows = BTreeMap<String, Vec<(i64, i64)>>;

/// A windows file could not be read; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum LabelsError {
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
    /// The JSON parsed but a window is not a readable `[start, end]`.
    #[error("{}: {message}", .path.display())]
    Format { path: PathBuf, message: String },
}

/// Reads a windows file; a timestamp that does not parse or a window that
/// ends before it starts is an error naming the key.
pub fn load_windows(path: &Path) -> Result<LabelledWindows, LabelsError> {
    let text = std::fs::read_to_string(path).map_err(|source| LabelsError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let raw: BTreeMap<String, Vec<(String, String)>> =
        serde_json::from_str(&text).map_err(|source| LabelsError::Json {
            path: path.to_path_buf(),
            source,
        })?;
    let format = |message: String| LabelsError::Format {
        path: path.to_path_buf(),
        message,
    };
    let mut out = BTreeMap::new();
    for (key, list) in raw {
        let mut windows = Vec::with_capacity(list.len());
        for (start, end) in &list {
            let parse = |text: &str| {
                parse_timestamp(text)
                    .ok_or_else(|| format(format!("{key}: bad timestamp {text:?}")))
            };
            let (s, e) = (parse(start)?, parse(end)?);
            if s > e {
                return Err(format(format!(
                    "{key}: window starts after it ends: {start} > {end}"
                )));
            }
            windows.push((s, e));
        }
        windows.sort_unstable();
        out.insert(key, windows);
    }
    Ok(out)
}

/// The key and windows for `data_file`: the key that `data_file` ends with,
/// component by component (so `x.csv` never matches `max.csv`), the longest
/// such key if several do; `None` if no key matches.
/// A `./` in a key is the folder itself (`./x.csv` is `x.csv`).
pub fn windows_for<'a>(
    all: &'a LabelledWindows,
    data_file: &Path,
) -> Option<(&'a str, &'a [(i64, i64)])> {
    let path = |key: &str| -> PathBuf {
        Path::new(key)
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect()
    };
    all.iter()
        .map(|(key, windows)| (key, windows, path(key)))
        .filter(|(_, _, p)| p.components().count() > 0 && data_file.ends_with(p))
        .max_by_key(|(_, _, p)| p.components().count())
        .map(|(key, windows, _)| (key.as_str(), windows.as_slice()))
}

/// Per row, whether its timestamp lies in any window (inclusive).
pub fn row_labels(timestamps: &[i64], windows: &[(i64, i64)]) -> Vec<bool> {
    timestamps
        .iter()
        .map(|t| windows.iter().any(|(s, e)| s <= t && t <= e))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("windows.json");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_nab_windows_sorted_in_epoch_ms() {
        // 2014-04-10 07:15:00 UTC = 1397114100 s; 2014-07-01 = 1404172800 s.
        let (_d, p) = write(
            r#"{"c/f.csv": [["2014-07-01 00:00:00.000000", "2014-07-01 00:01:00.000000"],
                            ["2014-04-10 07:15:00", "2014-04-10T07:15:00Z"]],
                "g.csv": []}"#,
        );
        let w = load_windows(&p).unwrap();
        assert_eq!(
            w["c/f.csv"],
            vec![
                (1_397_114_100_000, 1_397_114_100_000),
                (1_404_172_800_000, 1_404_172_860_000)
            ]
        );
        assert!(w["g.csv"].is_empty());
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let (_d, p) = write(r#"{"c/f.csv": [["2014-07-02 00:00:00", "2014-07-01 00:00:00"]]}"#);
        let e = load_windows(&p).unwrap_err().to_string();
        assert!(
            e.contains("windows.json") && e.contains("c/f.csv") && e.contains("after"),
            "{e}"
        );
        let (_d, p) = write(r#"{"c/f.csv": [["soon", "2014-07-01 00:00:00"]]}"#);
        let e = load_windows(&p).unwrap_err().to_string();
        assert!(e.contains("c/f.csv") && e.contains("soon"), "{e}");
        let (_d, p) = write("{not json");
        assert!(matches!(load_windows(&p), Err(LabelsError::Json { .. })));
        assert!(matches!(
            load_windows(Path::new("/nonexistent/windows.json")),
            Err(LabelsError::Io { .. })
        ));
    }

    #[test]
    fn a_file_takes_the_key_it_ends_with_by_components() {
        let mut all = LabelledWindows::new();
        all.insert("a.csv".into(), vec![(1, 2)]);
        all.insert("cat/a.csv".into(), vec![(3, 4)]);
        all.insert("x.csv".into(), vec![(5, 6)]);
        let get =
            |p: &str| windows_for(&all, Path::new(p)).map(|(k, w)| (k.to_string(), w.to_vec()));
        assert_eq!(
            get("data/cat/a.csv"),
            Some(("cat/a.csv".into(), vec![(3, 4)]))
        );
        assert_eq!(
            get("data/other/a.csv"),
            Some(("a.csv".into(), vec![(1, 2)]))
        );
        assert_eq!(get("a.csv"), Some(("a.csv".into(), vec![(1, 2)])));
        // "max.csv" ends with the characters "x.csv" but not the component.
        assert_eq!(get("data/max.csv"), None);
    }

    #[test]
    fn rows_inside_a_window_are_labelled_inclusively() {
        let t: Vec<i64> = (0..7).collect();
        assert_eq!(
            row_labels(&t, &[(1, 2), (5, 9)]),
            vec![false, true, true, false, false, true, true]
        );
    }
}
