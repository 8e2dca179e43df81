//! NAB's file formats: the corpus layout, the cost profiles
//! (`config/profiles.json`), the labelled windows
//! (`labels/combined_windows.json`) and a detector's results tree
//! (`results/<detector>/<category>/<detector>_<file>.csv`), read and written
//! so that NAB's own scorer reads what this one writes.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::rule::{FileScores, Profile};
use super::NabError;
use crate::data::time::{format_naive, parse_timestamp};

/// One row of a NAB-layout result file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResultRow {
    pub timestamp: i64,
    pub value: f64,
    pub anomaly_score: f64,
    /// 1 inside a labelled window, else 0 (see [`window_labels`]).
    pub label: u8,
}

#[derive(Deserialize)]
struct RawProfile {
    #[serde(rename = "CostMatrix")]
    cost_matrix: RawCostMatrix,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCostMatrix {
    tp_weight: f64,
    fp_weight: f64,
    fn_weight: f64,
    tn_weight: f64,
}

fn read_text(path: &Path) -> Result<String, NabError> {
    fs::read_to_string(path).map_err(|source| NabError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn format_error(path: &Path, message: impl Into<String>) -> NabError {
    NabError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Where the parts of a NAB corpus lie under its root. Two layouts are
/// recognised: NAB's own checkout (`data/<category>/<file>.csv`,
/// `labels/combined_windows.json`, `config/profiles.json`) and the flat copy
/// this repository ships in `data/nab/` (`<category>/<file>.csv`,
/// `combined_windows.json` and `profiles.json` side by side).
#[derive(Debug, Clone, PartialEq)]
pub struct NabLayout {
    /// The folder label keys (`category/file.csv`) are relative to.
    pub series: PathBuf,
    /// The labelled windows, `combined_windows.json`.
    pub windows: PathBuf,
    /// The cost profiles, `profiles.json`.
    pub profiles: PathBuf,
}

impl NabLayout {
    /// NAB's layout when `root/config/profiles.json` exists, else the flat one.
    pub fn locate(root: &Path) -> NabLayout {
        if root.join("config/profiles.json").is_file() {
            NabLayout {
                series: root.join("data"),
                windows: root.join("labels/combined_windows.json"),
                profiles: root.join("config/profiles.json"),
            }
        } else {
            NabLayout {
                series: root.to_path_buf(),
                windows: root.join("combined_windows.json"),
                profiles: root.join("profiles.json"),
            }
        }
    }
}

/// Reads NAB's `config/profiles.json`; profiles come back sorted by name so
/// reports are reproducible whatever the file's key order.
pub fn load_profiles(path: impl AsRef<Path>) -> Result<Vec<Profile>, NabError> {
    let path = path.as_ref();
    let raw: BTreeMap<String, RawProfile> =
        serde_json::from_str(&read_text(path)?).map_err(|source| NabError::Json {
            path: path.to_path_buf(),
            source,
        })?;
    raw.into_iter()
        .map(|(name, p)| {
            let c = p.cost_matrix;
            if ![c.tp_weight, c.fp_weight, c.fn_weight, c.tn_weight]
                .iter()
                .all(|w| w.is_finite())
            {
                return Err(format_error(
                    path,
                    format!("profile {name}: weights must be finite"),
                ));
            }
            Ok(Profile {
                name,
                tp: c.tp_weight,
                fp: c.fp_weight,
                fn_: c.fn_weight,
                tn: c.tn_weight,
            })
        })
        .collect()
}

/// Reads NAB's `labels/combined_windows.json` ([`crate::data::labels`]): per
/// `category/file.csv`, its `[start, end]` windows as epoch milliseconds, sorted by start.
pub fn load_windows(path: impl AsRef<Path>) -> Result<BTreeMap<String, Vec<(i64, i64)>>, NabError> {
    Ok(crate::data::labels::load_windows(path.as_ref())?)
}

/// NAB's `label` column: 1 for rows inside any window (inclusive), else 0.
pub fn window_labels(timestamps: &[i64], windows: &[(i64, i64)]) -> Vec<u8> {
    timestamps
        .iter()
        .map(|t| u8::from(windows.iter().any(|(s, e)| s <= t && t <= e)))
        .collect()
}

/// Rejects names that would leave the results tree when used as a path part.
fn check_component(path: &Path, what: &str, name: &str) -> Result<(), NabError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\']) {
        return Err(format_error(path, format!("invalid {what} {name:?}")));
    }
    Ok(())
}

/// Splits `category/file.csv` into its two parts, checking both are plain names.
fn split_key<'a>(path: &Path, key: &'a str) -> Result<(&'a str, &'a str), NabError> {
    let (category, file) = key
        .split_once('/')
        .ok_or_else(|| format_error(path, format!("key {key:?} is not category/file.csv")))?;
    check_component(path, "category", category)?;
    check_component(path, "file name", file)?;
    Ok((category, file))
}

/// Where NAB keeps a detector's result for one series:
/// `nab_root/results/<detector>/<category>/<detector>_<file>`.
pub fn result_path(nab_root: &Path, detector: &str, key: &str) -> Result<PathBuf, NabError> {
    let base = nab_root.join("results");
    check_component(&base, "detector name", detector)?;
    let (category, file) = split_key(&base, key)?;
    Ok(base
        .join(detector)
        .join(category)
        .join(format!("{detector}_{file}")))
}

/// Reads one result CSV; the `timestamp` and `anomaly_score` columns are found
/// by name, so both NAB's full layout and the bare two-column one work.
pub fn read_result_csv(path: impl AsRef<Path>, key: &str) -> Result<FileScores, NabError> {
    let path = path.as_ref();
    let csv_error = |source| NabError::Csv {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(csv_error)?;
    let headers = reader.headers().map_err(csv_error)?.clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format_error(path, format!("no {name:?} column")))
    };
    let (t_col, s_col) = (column("timestamp")?, column("anomaly_score")?);
    let mut file = FileScores {
        key: key.to_string(),
        timestamps: Vec::new(),
        scores: Vec::new(),
    };
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        // The record index, not `line()`: csv's line count lags by one after
        // CRLF terminators, which 8 NAB files use.
        let row = record.position().map_or(0, |p| p.record());
        let field = |i: usize| record.get(i).unwrap_or("");
        let t = parse_timestamp(field(t_col)).ok_or_else(|| {
            format_error(
                path,
                format!("data row {row}: bad timestamp {:?}", field(t_col)),
            )
        })?;
        let s: f64 = field(s_col).parse().map_err(|_| {
            format_error(
                path,
                format!("data row {row}: bad anomaly_score {:?}", field(s_col)),
            )
        })?;
        file.timestamps.push(t);
        file.scores.push(s);
    }
    Ok(file)
}

/// Reads every series of one detector from a NAB tree
/// (`nab_root/results/<detector>/<category>/<detector>_<file>.csv`), sorted by
/// key. Files not named `<detector>_*.csv` (such as NAB's `*_scores.csv`
/// summaries one level up) are not series and are skipped.
pub fn read_results_tree(
    nab_root: impl AsRef<Path>,
    detector: &str,
) -> Result<Vec<FileScores>, NabError> {
    let dir = nab_root.as_ref().join("results").join(detector);
    check_component(&dir, "detector name", detector)?;
    let prefix = format!("{detector}_");
    let mut files = Vec::new();
    for category in sorted_entries(&dir)? {
        if !category.is_dir() {
            continue;
        }
        let Some(category_name) = category.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        for path in sorted_entries(&category)? {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(file) = name.strip_prefix(&prefix) else {
                continue;
            };
            if !path.is_file() || !file.ends_with(".csv") {
                continue;
            }
            files.push(read_result_csv(&path, &format!("{category_name}/{file}"))?);
        }
    }
    files.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(files)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, NabError> {
    let io_error = |source| NabError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths = fs::read_dir(dir)
        .map_err(io_error)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_error)?;
    paths.sort();
    Ok(paths)
}

/// Writes one series in NAB's result layout and header
/// (`timestamp,value,anomaly_score,label`) so NAB's own scorer can read it;
/// returns the path written.
pub fn write_result_csv(
    nab_root: impl AsRef<Path>,
    detector: &str,
    key: &str,
    rows: &[ResultRow],
) -> Result<PathBuf, NabError> {
    let path = result_path(nab_root.as_ref(), detector, key)?;
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|source| NabError::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let csv_error = |source| NabError::Csv {
        path: path.clone(),
        source,
    };
    let mut writer = csv::Writer::from_path(&path).map_err(csv_error)?;
    writer
        .write_record(["timestamp", "value", "anomaly_score", "label"])
        .map_err(csv_error)?;
    for row in rows {
        let t = format_naive(row.timestamp).ok_or_else(|| {
            format_error(
                &path,
                format!("timestamp {} ms out of range", row.timestamp),
            )
        })?;
        writer
            .write_record([
                t,
                row.value.to_string(),
                row.anomaly_score.to_string(),
                row.label.to_string(),
            ])
            .map_err(csv_error)?;
    }
    writer.flush().map_err(|source| NabError::Io {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::super::test_profiles::{profile, standard};
    use super::*;

    #[test]
    fn window_labels_are_inclusive() {
        let t: Vec<i64> = (0..6).collect();
        assert_eq!(window_labels(&t, &[(1, 2), (5, 9)]), vec![0, 1, 1, 0, 0, 1]);
    }

    #[test]
    fn profiles_and_windows_load_from_nab_json() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("profiles.json");
        fs::write(
            &p,
            r#"{"standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}},
                "reward_low_FN_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0}}}"#,
        )
        .unwrap();
        let profiles = load_profiles(&p).unwrap();
        assert_eq!(
            profiles,
            vec![profile("reward_low_FN_rate", 0.11, 2.0), standard()]
        );

        let w = dir.path().join("windows.json");
        fs::write(
            &w,
            r#"{"c/f.csv": [["2014-07-01 00:00:00.000000", "2014-07-01 00:01:00.000000"],
                            ["2014-04-10 07:15:00.000000", "2014-04-10 07:15:00.000000"]],
                "c/g.csv": []}"#,
        )
        .unwrap();
        let windows = load_windows(&w).unwrap();
        assert_eq!(
            windows["c/f.csv"],
            vec![
                (1_397_114_100_000, 1_397_114_100_000),
                (1_404_172_800_000, 1_404_172_860_000)
            ]
        );
        assert!(windows["c/g.csv"].is_empty());

        fs::write(
            &w,
            r#"{"c/f.csv": [["2014-07-02 00:00:00", "2014-07-01 00:00:00"]]}"#,
        )
        .unwrap();
        let err = load_windows(&w).unwrap_err().to_string();
        assert!(
            err.contains("windows.json") && err.contains("c/f.csv"),
            "{err}"
        );
        fs::write(&p, "{not json").unwrap();
        let err = load_profiles(&p).unwrap_err().to_string();
        assert!(err.contains("profiles.json"), "{err}");
    }

    #[test]
    fn result_csv_round_trips_through_the_nab_layout() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [
            ResultRow {
                timestamp: 1_404_172_800_000,
                value: 3.5,
                anomaly_score: 0.25,
                label: 0,
            },
            ResultRow {
                timestamp: 1_404_173_100_000,
                value: -1.0,
                anomaly_score: 1.0,
                label: 1,
            },
        ];
        let path =
            write_result_csv(dir.path(), "lstmAe", "realTraffic/speed_6005.csv", &rows).unwrap();
        assert_eq!(
            path,
            dir.path()
                .join("results/lstmAe/realTraffic/lstmAe_speed_6005.csv")
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "timestamp,value,anomaly_score,label\n\
             2014-07-01 00:00:00,3.5,0.25,0\n\
             2014-07-01 00:05:00,-1,1,1\n"
        );
        // A summary file beside the categories is not a series.
        fs::write(
            dir.path().join("results/lstmAe/lstmAe_standard_scores.csv"),
            "x\n",
        )
        .unwrap();
        let read = read_results_tree(dir.path(), "lstmAe").unwrap();
        assert_eq!(
            read,
            vec![FileScores {
                key: "realTraffic/speed_6005.csv".into(),
                timestamps: vec![1_404_172_800_000, 1_404_173_100_000],
                scores: vec![0.25, 1.0],
            }]
        );
        for key in ["speed_6005.csv", "../x.csv", "a/../b.csv", "a/b/c.csv"] {
            assert!(
                write_result_csv(dir.path(), "lstmAe", key, &rows).is_err(),
                "{key}"
            );
        }
        assert!(write_result_csv(dir.path(), "../up", "a/b.csv", &rows).is_err());
    }

    #[test]
    fn bad_result_rows_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("det_f.csv");
        fs::write(
            &p,
            "timestamp,anomaly_score\r\n2014-07-01 00:00:00,0.5\r\n2014-07-01 00:05:00,high\r\n",
        )
        .unwrap();
        let err = read_result_csv(&p, "c/f.csv").unwrap_err().to_string();
        assert!(
            err.contains("det_f.csv") && err.contains("data row 2"),
            "{err}"
        );
        fs::write(&p, "timestamp,value\n2014-07-01 00:00:00,0.5\n").unwrap();
        let err = read_result_csv(&p, "c/f.csv").unwrap_err().to_string();
        assert!(err.contains("anomaly_score"), "{err}");
    }
}
