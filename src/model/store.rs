//! The versioned model store: `<root>/<version>/{model.onnx, manifest.json,
//! report/}` plus a `current` file naming the live version and an
//! append-only `history.jsonl` of promotions and rollbacks.
//!
//! The layout follows TensorFlow Serving's numbered version folders, with
//! an explicit pointer instead of "highest number wins", so a rejected
//! candidate can sit in the store without going live and a rollback needs
//! no deleting.
//!
//! Atomicity, so a daemon polling the store never sees half a version:
//! - a version is written into a hidden `.tmp-<version>-<random>` folder of
//!   its writer's own, its files and folders synced, and renamed to its
//!   number when complete;
//! - `current` is written to a hidden `.current-<random>` file, synced, then
//!   renamed over `current` (a rename within one folder is atomic on POSIX
//!   filesystems);
//! - after each rename the store folder is synced, so the rename survives a
//!   power loss.
//!
//! `serve.model` may name a store (the daemon follows `current`) or a bundle
//! folder (`manifest.json` at the top, as `lstm-ae train` writes):
//! [`resolve`] tells them apart.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bundle::{Bundle, BundleError, MANIFEST_FILE};

/// The file naming the live version.
pub const CURRENT_FILE: &str = "current";
/// One JSON line per promotion or rollback.
pub const HISTORY_FILE: &str = "history.jsonl";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model store {}: no version is current yet (train one with `lstm-ae retrain --store {}`)", root.display(), root.display())]
    NoCurrent { root: PathBuf },
    #[error("model store {}: `current` holds {text:?}, not a version number", root.display())]
    BadCurrent { root: PathBuf, text: String },
    #[error("model store {}: no version {version} (versions: {available})", root.display())]
    NoVersion {
        root: PathBuf,
        version: i64,
        available: String,
    },
    #[error("model store {}: version {version} was rejected by the promotion gate ({reason}); promote it with --force to override", root.display())]
    Rejected {
        root: PathBuf,
        version: i64,
        reason: String,
    },
    #[error("model store {}: nothing to roll back to (promotion history: {history})", root.display())]
    NothingToRollBack { root: PathBuf, history: String },
    #[error("{} is neither a model bundle (no manifest.json) nor a model store (no `current` file)", .0.display())]
    NotAModel(PathBuf),
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, source }
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// RFC 3339 UTC.
    pub at: String,
    pub action: Action,
    /// The version that became current.
    pub version: i64,
    /// The version that was current before, if any.
    pub previous: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Promote,
    Rollback,
}

/// A model store folder.
#[derive(Debug, Clone)]
pub struct Store {
    pub root: PathBuf,
}

impl Store {
    /// The store at `root`, created (empty) if it does not exist.
    pub fn create(root: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(root).map_err(io(root))?;
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    /// An existing store.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        if !root.is_dir() || root.join(MANIFEST_FILE).exists() {
            return Err(StoreError::NotAModel(root.to_path_buf()));
        }
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    pub fn version_dir(&self, version: i64) -> PathBuf {
        self.root.join(version.to_string())
    }

    /// Every version folder, ascending.
    pub fn versions(&self) -> Result<Vec<i64>, StoreError> {
        let mut out = vec![];
        for entry in std::fs::read_dir(&self.root).map_err(io(&self.root))? {
            let entry = entry.map_err(io(&self.root))?;
            let name = entry.file_name();
            if let Some(v) = name.to_str().and_then(|n| n.parse::<i64>().ok()) {
                if v > 0 && entry.path().is_dir() {
                    out.push(v);
                }
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The number the next version gets.
    pub fn next_version(&self) -> Result<i64, StoreError> {
        Ok(self.versions()?.last().copied().unwrap_or(0) + 1)
    }

    /// The live version, if one was promoted.
    pub fn current(&self) -> Result<Option<i64>, StoreError> {
        let path = self.root.join(CURRENT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        text.trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| StoreError::BadCurrent {
                root: self.root.clone(),
                text: text.trim().to_string(),
            })
    }

    fn no_version(&self, version: i64) -> StoreError {
        let available = self
            .versions()
            .map(|v| {
                v.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        StoreError::NoVersion {
            root: self.root.clone(),
            version,
            available: if available.is_empty() {
                "none".into()
            } else {
                available
            },
        }
    }

    /// Opens (and cross-checks) one version.
    pub fn open_version(&self, version: i64) -> Result<Bundle, StoreError> {
        let dir = self.version_dir(version);
        if !dir.is_dir() {
            return Err(self.no_version(version));
        }
        Ok(Bundle::open(&dir)?)
    }

    /// Opens the live version.
    pub fn open_current(&self) -> Result<Bundle, StoreError> {
        let v = self.current()?.ok_or_else(|| StoreError::NoCurrent {
            root: self.root.clone(),
        })?;
        self.open_version(v)
    }

    /// Writes a new version: `write` fills a hidden folder of this writer's
    /// own, which is synced and renamed to the version's number only when
    /// complete. Of writers racing for one number, one wins; the others get
    /// an `AlreadyExists` error and leave nothing behind.
    pub fn add_version<T, E: From<StoreError>>(
        &self,
        version: i64,
        write: impl FnOnce(&Path) -> Result<T, E>,
    ) -> Result<(PathBuf, T), E> {
        let tmp = self.unique_temporary(&format!(".tmp-{version}"), |p| std::fs::create_dir(p))?;
        let value = match write(&tmp) {
            Ok(v) => v,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let dir = self.version_dir(version);
        let exists = || StoreError::Io {
            path: dir.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "version exists (another writer added it meanwhile?)",
            ),
        };
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(exists().into());
        }
        if let Err(e) = sync_tree(&tmp) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e.into());
        }
        // rename(2) onto an existing non-empty folder fails, so a writer
        // that lost the race after the check above cannot replace the
        // winner's files.
        if let Err(e) = std::fs::rename(&tmp, &dir) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(if dir.exists() { exists() } else { io(&dir)(e) }.into());
        }
        sync_dir(&self.root)?;
        Ok((dir, value))
    }

    /// A new temporary `<prefix>-<random>` in the store, made by `create`,
    /// which must fail if the path exists. Random, not the process id: that
    /// is 1 in every container, and init containers share one volume.
    fn unique_temporary(
        &self,
        prefix: &str,
        create: impl Fn(&Path) -> std::io::Result<()>,
    ) -> Result<PathBuf, StoreError> {
        loop {
            let path = self
                .root
                .join(format!("{prefix}-{:016x}", rand::random::<u64>()));
            match create(&path) {
                Ok(()) => return Ok(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(&path)(e)),
            }
        }
    }

    /// Makes `version` current. A version the gate rejected needs `force`.
    pub fn promote(&self, version: i64, force: bool) -> Result<(), StoreError> {
        let bundle = self.open_version(version)?;
        if let Some(g) = bundle
            .manifest
            .lineage
            .as_ref()
            .and_then(|l| l.gate.as_ref())
        {
            if !g.passed && !force {
                return Err(StoreError::Rejected {
                    root: self.root.clone(),
                    version,
                    reason: g.reason.clone(),
                });
            }
        }
        self.switch(version, Action::Promote)
    }

    /// Makes the version that was current before the last promotion current
    /// again; returns it. Repeated rollbacks walk further back.
    pub fn rollback(&self) -> Result<i64, StoreError> {
        let stack = self.live_stack()?;
        let Some(&target) = stack.len().checked_sub(2).and_then(|i| stack.get(i)) else {
            return Err(StoreError::NothingToRollBack {
                root: self.root.clone(),
                history: format!("{stack:?}"),
            });
        };
        self.open_version(target)?;
        self.switch(target, Action::Rollback)?;
        Ok(target)
    }

    /// The versions that were live, oldest first, with rolled-back ones
    /// removed: a promotion pushes, a rollback pops.
    fn live_stack(&self) -> Result<Vec<i64>, StoreError> {
        let mut stack: Vec<i64> = vec![];
        for e in self.history()? {
            match e.action {
                Action::Promote => stack.push(e.version),
                Action::Rollback => {
                    stack.pop();
                }
            }
        }
        Ok(stack)
    }

    /// Promotions and rollbacks, oldest first.
    pub fn history(&self) -> Result<Vec<HistoryEntry>, StoreError> {
        let path = self.root.join(HISTORY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io(&path)(e)),
        };
        // A line that does not parse (say, a torn write) is skipped rather
        // than making the store unusable; `current` is the source of truth.
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    fn switch(&self, version: i64, action: Action) -> Result<(), StoreError> {
        let previous = self.current()?;
        let tmp = self.unique_temporary(&format!(".{CURRENT_FILE}"), |p| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p)
                .map(drop)
        })?;
        let written = (|| {
            let mut f = std::fs::OpenOptions::new().write(true).open(&tmp)?;
            writeln!(f, "{version}")?;
            f.sync_all()
        })();
        let cur = self.root.join(CURRENT_FILE);
        if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &cur)) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&cur)(e));
        }
        // The rename is durable only once the folder holding it is synced:
        // before, a power loss can bring back the old `current`.
        sync_dir(&self.root)?;
        let entry = HistoryEntry {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            action,
            version,
            previous,
        };
        let hpath = self.root.join(HISTORY_FILE);
        let mut h = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&hpath)
            .map_err(io(&hpath))?;
        // One write(2) per line: appends of concurrent promoters then
        // never interleave (writeln! may split a line into several writes).
        let line = serde_json::to_string(&entry).unwrap_or_default() + "\n";
        h.write_all(line.as_bytes()).map_err(io(&hpath))?;
        h.sync_data().map_err(io(&hpath))?;
        tracing::info!(store = %self.root.display(), version, ?previous, ?action, "current version switched");
        Ok(())
    }
}

/// Syncs every file under `dir`, then the folders themselves (deepest
/// first), so a version renamed into place never has empty files after a
/// power loss.
fn sync_tree(dir: &Path) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        let kind = std::fs::symlink_metadata(&path)
            .map_err(io(&path))?
            .file_type();
        if kind.is_dir() {
            sync_tree(&path)?;
        } else if kind.is_file() {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io(&path))?;
        }
    }
    sync_dir(dir)
}

/// fsync of a folder: makes the creations and renames in it durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(dir))
}

/// What `serve.model` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A fixed bundle folder.
    Bundle(PathBuf),
    /// A store: follow its `current` version.
    Store(PathBuf),
}

impl ModelSource {
    /// A folder with `manifest.json` is a bundle; one with a `current` file
    /// (or numbered versions) is a store.
    pub fn of(path: &Path) -> Result<ModelSource, StoreError> {
        if path.join(MANIFEST_FILE).is_file() {
            return Ok(ModelSource::Bundle(path.to_path_buf()));
        }
        if path.join(CURRENT_FILE).is_file() {
            return Ok(ModelSource::Store(path.to_path_buf()));
        }
        Err(StoreError::NotAModel(path.to_path_buf()))
    }

    /// The bundle folder to load now.
    pub fn resolve(&self) -> Result<PathBuf, StoreError> {
        match self {
            ModelSource::Bundle(p) => Ok(p.clone()),
            ModelSource::Store(root) => {
                let s = Store::open(root)?;
                let v = s
                    .current()?
                    .ok_or_else(|| StoreError::NoCurrent { root: root.clone() })?;
                let dir = s.version_dir(v);
                if !dir.is_dir() {
                    return Err(s.no_version(v));
                }
                Ok(dir)
            }
        }
    }
}

/// The bundle folder `serve.model` (a bundle or a store) points at now.
pub fn resolve(path: &Path) -> Result<PathBuf, StoreError> {
    ModelSource::of(path)?.resolve()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch_version(store: &Store, v: i64) {
        store
            .add_version(v, |dir| {
                std::fs::write(dir.join("marker"), v.to_string()).map_err(io(dir))
            })
            .unwrap();
    }

    #[test]
    fn versions_are_listed_numerically_and_hidden_folders_ignored() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::create(d.path()).unwrap();
        for v in [2, 10, 1] {
            touch_version(&s, v);
        }
        std::fs::create_dir(d.path().join(".tmp-11-1")).unwrap();
        assert_eq!(s.versions().unwrap(), vec![1, 2, 10]);
        assert_eq!(s.next_version().unwrap(), 11);
        assert_eq!(s.current().unwrap(), None);
    }

    #[test]
    fn a_failed_write_leaves_no_version_behind() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::create(d.path()).unwrap();
        let e = s.add_version(1, |dir| -> Result<(), StoreError> {
            std::fs::write(dir.join("half"), "x").map_err(io(dir))?;
            Err(StoreError::NoCurrent {
                root: dir.to_path_buf(),
            })
        });
        assert!(e.is_err());
        assert_eq!(s.versions().unwrap(), Vec::<i64>::new());
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn rollback_walks_back_through_promotions() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::create(d.path()).unwrap();
        for v in 1..=3 {
            touch_version(&s, v);
            // The marker folders are not bundles: promote would refuse them,
            // so this exercises the pointer and history directly.
            s.switch(v, Action::Promote).unwrap();
        }
        assert_eq!(s.current().unwrap(), Some(3));
        assert_eq!(
            std::fs::read_to_string(d.path().join(CURRENT_FILE)).unwrap(),
            "3\n"
        );
        // rollback() opens the target as a bundle; these are markers, so
        // check the stack it would use.
        assert_eq!(s.live_stack().unwrap(), vec![1, 2, 3]);
        s.switch(2, Action::Rollback).unwrap();
        assert_eq!(s.live_stack().unwrap(), vec![1, 2]);
        s.switch(1, Action::Rollback).unwrap();
        assert_eq!(s.live_stack().unwrap(), vec![1]);
        let h = s.history().unwrap();
        assert_eq!(h.len(), 5);
        assert_eq!(h[4].previous, Some(2));
        assert!(matches!(
            s.rollback(),
            Err(StoreError::NothingToRollBack { .. })
        ));
    }

    #[test]
    fn a_store_and_a_bundle_are_told_apart() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            ModelSource::of(d.path()),
            Err(StoreError::NotAModel(_))
        ));
        std::fs::write(d.path().join(CURRENT_FILE), "4\n").unwrap();
        assert_eq!(
            ModelSource::of(d.path()).unwrap(),
            ModelSource::Store(d.path().to_path_buf())
        );
        // `current` names a version that is not there: a clear error.
        let e = resolve(d.path()).unwrap_err().to_string();
        assert!(e.contains("no version 4"), "{e}");
        std::fs::write(d.path().join(CURRENT_FILE), "four\n").unwrap();
        let e = resolve(d.path()).unwrap_err().to_string();
        assert!(e.contains("four"), "{e}");
        let b = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
        assert_eq!(resolve(&b).unwrap(), b);
    }

    #[test]
    fn concurrent_writers_all_succeed_and_leave_no_temporaries() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::create(d.path()).unwrap();
        touch_version(&s, 1);
        s.switch(1, Action::Promote).unwrap();
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            // A reader: `current` always names a complete version.
            let reader = scope.spawn(|| {
                let mut seen = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let v = s.current().unwrap().expect("a version stays current");
                    let marker = s.version_dir(v).join("marker");
                    assert_eq!(std::fs::read_to_string(marker).unwrap(), v.to_string());
                    seen += 1;
                }
                seen
            });
            let writers: Vec<_> = (2..=7)
                .map(|v| {
                    let s = &s;
                    scope.spawn(move || -> Result<(), StoreError> {
                        s.add_version(v, |dir| {
                            std::fs::write(dir.join("marker"), v.to_string()).map_err(io(dir))
                        })?;
                        for _ in 0..20 {
                            s.switch(v, Action::Promote)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            // Every writer ends (with its result) before the reader is
            // stopped, so a failure cannot leave the reader spinning.
            let done: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            for r in done {
                r.expect("no writer panics").expect("every writer succeeds");
            }
            assert!(reader.join().expect("current stays readable") > 0);
        });
        // Seeders racing for one version number: one wins, the others are
        // told the version exists, and nothing of theirs is left.
        let results: Vec<_> = std::thread::scope(|scope| {
            let hs: Vec<_> = (0..4)
                .map(|i| {
                    let s = &s;
                    scope.spawn(move || {
                        s.add_version(100, |dir| {
                            std::fs::write(dir.join("marker"), "100").map_err(io(dir))?;
                            std::fs::write(dir.join("writer"), i.to_string()).map_err(io(dir))
                        })
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        for r in results.iter().filter_map(|r| r.as_ref().err()) {
            assert!(r.to_string().contains("version exists"), "{r}");
        }
        let mut names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "1",
                "100",
                "2",
                "3",
                "4",
                "5",
                "6",
                "7",
                CURRENT_FILE,
                HISTORY_FILE
            ]
        );
        assert_eq!(s.history().unwrap().len(), 1 + 6 * 20);
        let v = s.current().unwrap().unwrap();
        assert!((2..=7).contains(&v), "{v}");
    }
}
