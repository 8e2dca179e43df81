//! The reload stage: hot reload of the model while the daemon runs.
//!
//! When `serve.model` names a model store, the daemon polls the store's
//! `current` file every `serve.model_poll_ms`; SIGHUP asks for a check at
//! once (and, for a fixed bundle folder, re-reads the folder). A new version
//! is loaded **beside** the old one, on a blocking thread, while the old one
//! keeps scoring (reading the store included: a store on a hung network
//! volume stops reloads, never the loop; a check has
//! `serve.model_check_timeout_ms`):
//!
//! 1. the bundle is opened and cross-checked ([`Bundle::open`]: manifest ↔
//!    ONNX graph, checksum, shapes, threshold);
//! 2. its input contract must be the live model's: the same window length,
//!    feature count and feature names (the per-key buffers are filled for
//!    them, and the input topics carry them);
//! 3. a backend is built and a warm-up batch must give finite outputs of the
//!    right shapes.
//!
//! Only then is it swapped into the [`ModelSlot`]: every inference thread
//! builds its own session of the new model before its next batch, and the
//! sink switches the scorer (threshold, scaler, likelihood history rescaled,
//! see [`crate::score::Scorer::set_model`]) at the first window the new model
//! scored. Nothing is paused or dropped: batches in flight finish with the
//! model that took them, and each window is scored by exactly one version,
//! named in its records (`model_version`).
//!
//! A version that fails any step is refused with a logged reason and counted
//! (`lstm_ae_model_reloads_total{result="refused"}`); the old one keeps
//! serving, and the refused version is not tried again until `current`
//! changes or a SIGHUP comes. A new window length or feature set is refused
//! the same way: restart the daemon to serve it (the restart replays from
//! the committed offsets, so the new buffers fill from the points still
//! uncommitted; nothing is lost).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ndarray::Array3;
use tokio::sync::oneshot;

use super::backend::{BackendFactory, ModelSlot, Served};
use crate::infer::InferError;
use crate::model::store::{ModelSource, StoreError};
use crate::model::{Bundle, BundleError, Manifest};
use crate::telemetry::Metrics;

/// Makes a backend factory for a model's ONNX bytes (ONNX Runtime in the
/// daemon; tests may inject another).
pub type Loader = Arc<dyn Fn(Arc<Vec<u8>>) -> BackendFactory + Send + Sync>;

/// Where the daemon's model comes from, and how to load a new version.
#[derive(Clone)]
pub struct Reload {
    pub source: ModelSource,
    /// The bundle folder of the live version.
    pub live_dir: PathBuf,
    pub loader: Loader,
}

/// A validated new version, ready to swap in.
pub struct Candidate {
    dir: PathBuf,
    factory: BackendFactory,
    served: Arc<Served>,
}

/// What a finished check found.
pub enum Checked {
    /// The folder holds the live version (SIGHUP with nothing new, or a
    /// rollback to the version that is live).
    Unchanged(PathBuf),
    New(Candidate),
}

/// A version that cannot replace the live one, and why.
pub struct Refused {
    dir: PathBuf,
    reason: ReloadError,
}

/// Why a version cannot replace the live one.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("{}: {source}", .dir.display())]
    Incompatible { dir: PathBuf, source: Incompatible },
    #[error("{}: {source}", .dir.display())]
    Load { dir: PathBuf, source: InferError },
    #[error("{}: warm-up batch: {source}", .dir.display())]
    WarmUp { dir: PathBuf, source: WarmUpError },
}

/// How a new version's input contract differs from the live one's.
#[derive(Debug, thiserror::Error)]
pub enum Incompatible {
    #[error("the model has no reconstruction decoder, so no anomaly score")]
    NoScore,
    #[error("window {window} × {features} features, the live model has {live_window} × {live_features}: a new window length or feature set needs a restart")]
    Shape {
        window: usize,
        features: usize,
        live_window: usize,
        live_features: usize,
    },
    #[error("features {new:?}, the live model reads {live:?}: the input topics carry the live model's features")]
    Features { new: Vec<String>, live: Vec<String> },
}

/// What the warm-up batch of a new version found wrong.
#[derive(Debug, thiserror::Error)]
pub enum WarmUpError {
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error("the model gave no {0}")]
    Missing(&'static str),
    #[error("{name} has {got} values, expected {expected}")]
    Length {
        name: &'static str,
        got: usize,
        expected: usize,
    },
    #[error("{0} is not finite")]
    NonFinite(&'static str),
}

/// What starts a check.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Trigger {
    Poll,
    Hangup,
}

/// What a check found, or how it ended without an answer.
pub enum Outcome {
    /// A poll found `current` naming the folder last tried: nothing to do.
    Tried,
    /// `current` could not be read.
    Unreadable(StoreError),
    /// The version was checked (valid, the live one, or refused).
    Checked(Result<Checked, Refused>),
    /// `current` changed while the version it named was checked.
    Moved {
        checked: PathBuf,
        current: Result<PathBuf, StoreError>,
    },
    /// The check passed `serve.model_check_timeout_ms`.
    TimedOut,
    /// The check's thread ended without an answer (it panicked).
    Lost,
}

/// A check running on its own thread.
pub(super) struct Running {
    answer: oneshot::Receiver<Outcome>,
    thread: std::thread::JoinHandle<()>,
    started: Instant,
    deadline: tokio::time::Instant,
    trigger: Trigger,
}

/// The reload stage's state, driven by the daemon's loop. Everything that
/// touches the store (reading `current`, opening the bundle) runs on a
/// check's own thread, never on the loop: a store on a hung network volume
/// stops reloads, not consumption, commits or shutdown. One check runs at a
/// time; a poll or SIGHUP meanwhile is skipped and counted.
pub struct Reloader {
    reload: Reload,
    slot: Arc<ModelSlot>,
    metrics: Metrics,
    timeout: Duration,
    /// The folder last tried (live, or refused): polling skips it.
    tried: PathBuf,
    pub(super) running: Option<Running>,
    /// A check past its time limit, still blocked: a thread cannot be
    /// interrupted, so it is left to finish, and none other starts before.
    stuck: Option<std::thread::JoinHandle<()>>,
}

impl Reloader {
    pub fn new(
        reload: Reload,
        slot: Arc<ModelSlot>,
        metrics: Metrics,
        timeout: Duration,
    ) -> Reloader {
        Reloader {
            tried: reload.live_dir.clone(),
            reload,
            slot,
            metrics,
            timeout,
            running: None,
            stuck: None,
        }
    }

    /// Whether polling can see new versions (a store, not a fixed bundle).
    pub fn polls(&self) -> bool {
        matches!(self.reload.source, ModelSource::Store(_))
    }

    /// A poll tick: starts a check, which goes on only if `current` names
    /// a folder not tried yet.
    pub fn poll(&mut self) {
        if !self.skipped(Trigger::Poll) {
            self.start(Trigger::Poll, Some(self.tried.clone()));
        }
    }

    /// SIGHUP: checks the current version even if it was tried before.
    pub fn hangup(&mut self) {
        if !self.skipped(Trigger::Hangup) {
            tracing::info!("SIGHUP: checking the model for a new version");
            self.start(Trigger::Hangup, None);
        }
    }

    /// Forgets a timed-out check whose thread has returned since (the
    /// daemon's housekeeping tick), so the gauge falls back to 0.
    pub fn refresh(&mut self) {
        if self.stuck.as_ref().is_some_and(|t| t.is_finished()) {
            self.stuck = None;
        }
        self.metrics
            .model_reload_in_progress
            .set(i64::from(self.running.is_some() || self.stuck.is_some()));
    }

    /// Whether a check still runs: then `trigger` is skipped, logged and
    /// counted.
    fn skipped(&mut self, trigger: Trigger) -> bool {
        self.refresh();
        let reason = if self.running.is_some() {
            "check_running"
        } else if self.stuck.is_some() {
            "check_timed_out"
        } else {
            return false;
        };
        self.metrics
            .model_reload_skipped
            .with_label_values(&[reason])
            .inc();
        match trigger {
            Trigger::Poll => tracing::debug!(reason, "model poll skipped: a check still runs"),
            Trigger::Hangup => {
                tracing::warn!(reason, "SIGHUP skipped: a model reload check still runs")
            }
        }
        true
    }

    fn start(&mut self, trigger: Trigger, tried: Option<PathBuf>) {
        let (tx, answer) = oneshot::channel();
        let source = self.reload.source.clone();
        let live = self.slot.served();
        let loader = self.reload.loader.clone();
        // A thread of its own, not tokio's blocking pool: a check blocked
        // for good would hold the runtime's shutdown.
        let spawned = std::thread::Builder::new()
            .name("lstm-ae-model-check".into())
            .spawn(move || {
                let _ = tx.send(run_check(&source, tried.as_deref(), &live, &loader));
            });
        match spawned {
            Ok(thread) => {
                self.running = Some(Running {
                    answer,
                    thread,
                    started: Instant::now(),
                    deadline: tokio::time::Instant::now() + self.timeout,
                    trigger,
                });
                self.metrics.model_reload_in_progress.set(1);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a model reload check; the live version keeps serving")
            }
        }
    }

    /// Takes a finished check's outcome: swaps a valid new version in, or
    /// logs and counts the refusal.
    pub fn finish(&mut self, outcome: Outcome) {
        let running = self.running.take();
        let took_ms = running
            .as_ref()
            .map_or(0, |r| r.started.elapsed().as_millis() as u64);
        let trigger = running.as_ref().map_or(Trigger::Poll, |r| r.trigger);
        let refused = || {
            self.metrics
                .model_reloads
                .with_label_values(&["refused"])
                .inc()
        };
        match outcome {
            Outcome::Tried => {}
            // A store being edited by hand can be unreadable for a moment;
            // the next poll looks again.
            Outcome::Unreadable(e) if trigger == Trigger::Poll => {
                tracing::warn!(error = %e, "model store: cannot read the current version; keeping the live one")
            }
            Outcome::Unreadable(e) => {
                refused();
                tracing::warn!(error = %e, "model reload refused: the old version keeps serving");
            }
            Outcome::Moved { checked, current } => {
                tracing::info!(checked = %checked.display(), current = ?current.map(|d| d.display().to_string()), took_ms, "model reload: `current` changed during the check; the checked version is dropped");
            }
            Outcome::Checked(Ok(Checked::Unchanged(dir))) => {
                self.tried = dir;
                tracing::info!("model reload: the live version is current; nothing to do");
            }
            Outcome::Checked(Ok(Checked::New(c))) => {
                let (from, to) = (self.slot.served().version.clone(), c.served.version.clone());
                set_model_info(&self.metrics, &c.served.manifest);
                self.slot.swap(c.factory, c.served);
                self.tried = c.dir;
                self.metrics.model_reloads.with_label_values(&["ok"]).inc();
                tracing::info!(%from, %to, took_ms, "model reloaded: new batches are scored by the new version");
            }
            Outcome::Checked(Err(r)) => {
                self.tried = r.dir;
                refused();
                tracing::warn!(reason = %r.reason, took_ms, "model reload refused: the old version keeps serving");
            }
            Outcome::TimedOut => {
                refused();
                self.stuck = running.map(|r| r.thread);
                tracing::warn!(limit_ms = self.timeout.as_millis() as u64, "model reload check passed serve.model_check_timeout_ms (a hung store?): the old version keeps serving, and no other check starts until this one returns");
            }
            Outcome::Lost => {
                refused();
                tracing::warn!("model reload check failed: the old version keeps serving");
            }
        }
        self.refresh();
    }
}

/// Waits for the running check, if any (never resolves otherwise), at most
/// until its time limit, for the daemon's `select!`.
pub async fn finished(reloader: Option<&mut Reloader>) -> Outcome {
    match reloader.and_then(|r| r.running.as_mut()) {
        Some(run) => match tokio::time::timeout_at(run.deadline, &mut run.answer).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::Lost,
            Err(_) => Outcome::TimedOut,
        },
        None => std::future::pending().await,
    }
}

/// A check, on its own thread: reads `current` (a poll stops there if it
/// names `tried`), then checks the version it names.
fn run_check(
    source: &ModelSource,
    tried: Option<&Path>,
    live: &Served,
    loader: &Loader,
) -> Outcome {
    let dir = match source.resolve() {
        Ok(dir) => dir,
        Err(e) => return Outcome::Unreadable(e),
    };
    if tried == Some(dir.as_path()) {
        return Outcome::Tried;
    }
    match check(dir, live, loader) {
        Ok(Checked::New(c)) => confirm(source, c),
        checked => Outcome::Checked(checked),
    }
}

/// A rollback (or another promotion) during the check must win: only what
/// `current` names now goes live. The next poll checks whatever that is.
fn confirm(source: &ModelSource, c: Candidate) -> Outcome {
    if matches!(source, ModelSource::Store(_)) {
        let now = source.resolve();
        if now.as_ref().ok() != Some(&c.dir) {
            return Outcome::Moved {
                checked: c.dir,
                current: now,
            };
        }
    }
    Outcome::Checked(Ok(Checked::New(c)))
}

/// SIGHUP, as a stream of requests to check the model.
pub struct Hangup(#[cfg(unix)] Option<tokio::signal::unix::Signal>);

impl Hangup {
    /// Listens for SIGHUP (where the platform has it).
    pub fn new() -> Hangup {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let sig = signal(SignalKind::hangup())
                .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP; model reloads come from polling only"))
                .ok();
            Hangup(sig)
        }
        #[cfg(not(unix))]
        Hangup()
    }

    /// The next SIGHUP (never, without one).
    pub async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.0.as_mut() {
            if s.recv().await.is_some() {
                return;
            }
        }
        std::future::pending::<()>().await
    }
}

/// Opens, checks and warms up the bundle in `dir` (blocking).
fn check(dir: PathBuf, live: &Served, loader: &Loader) -> Result<Checked, Refused> {
    match new_version(&dir, live, loader) {
        Ok(checked) => Ok(checked),
        Err(reason) => Err(Refused { dir, reason }),
    }
}

fn new_version(dir: &Path, live: &Served, loader: &Loader) -> Result<Checked, ReloadError> {
    let bundle = Bundle::open(dir)?;
    let (m, l) = (&bundle.manifest, &live.manifest);
    if m.model_version == l.model_version && m.onnx.sha256 == l.onnx.sha256 {
        return Ok(Checked::Unchanged(dir.to_path_buf()));
    }
    compatible(m, l).map_err(|source| ReloadError::Incompatible {
        dir: dir.to_path_buf(),
        source,
    })?;
    let factory = loader(Arc::new(bundle.onnx));
    let mut backend = factory().map_err(|source| ReloadError::Load {
        dir: dir.to_path_buf(),
        source,
    })?;
    warm_up(backend.as_mut(), m).map_err(|source| ReloadError::WarmUp {
        dir: dir.to_path_buf(),
        source,
    })?;
    Ok(Checked::New(Candidate {
        dir: dir.to_path_buf(),
        factory,
        served: Served::new(bundle.manifest),
    }))
}

/// The new model must read the same windows as the live one.
fn compatible(new: &Manifest, live: &Manifest) -> Result<(), Incompatible> {
    let (n, l) = (&new.spec, &live.spec);
    if !n.mode.has_reconstruction() {
        return Err(Incompatible::NoScore);
    }
    if (n.window, n.features) != (l.window, l.features) {
        return Err(Incompatible::Shape {
            window: n.window,
            features: n.features,
            live_window: l.window,
            live_features: l.features,
        });
    }
    if new.feature_names != live.feature_names {
        return Err(Incompatible::Features {
            new: new.feature_names.clone(),
            live: live.feature_names.clone(),
        });
    }
    Ok(())
}

/// Runs two windows of plausible values (the middle of the training range)
/// and checks every output is there, finite and of the right shape.
fn warm_up(backend: &mut dyn crate::infer::Backend, m: &Manifest) -> Result<(), WarmUpError> {
    let (t, f) = (m.spec.window, m.spec.features);
    let s = &m.scaler;
    let x = Array3::from_shape_fn((2, t, f), |(b, i, j)| {
        let wave = 0.5 + 0.25 * ((i + 7 * b) as f32 * 0.3).sin();
        s.offset.get(j).copied().unwrap_or(0.0) + s.scale.get(j).copied().unwrap_or(1.0) * wave
    });
    let out = backend.infer(x.view())?;
    let finite = |name: &'static str, v: Option<&[f32]>, len: usize| match v {
        None => Err(WarmUpError::Missing(name)),
        Some(v) if v.len() != len => Err(WarmUpError::Length {
            name,
            got: v.len(),
            expected: len,
        }),
        Some(v) if v.iter().any(|x| !x.is_finite()) => Err(WarmUpError::NonFinite(name)),
        Some(_) => Ok(()),
    };
    let score = out
        .score
        .as_ref()
        .map(|a| a.iter().copied().collect::<Vec<_>>());
    finite("score", score.as_deref(), 2)?;
    let emb = out
        .embedding
        .as_ref()
        .map(|a| a.iter().copied().collect::<Vec<_>>());
    finite("embedding", emb.as_deref(), 2 * m.spec.hidden)?;
    let se = out
        .squared_error
        .as_ref()
        .map(|a| a.iter().copied().collect::<Vec<_>>());
    finite("squared_error", se.as_deref(), 2 * t * f)?;
    Ok(())
}

/// `lstm_ae_model_info`: one series, for the live model.
pub fn set_model_info(metrics: &Metrics, m: &Manifest) {
    let spec = &m.spec;
    metrics.model_info.reset();
    metrics
        .model_info
        .with_label_values(&[
            m.model_id.as_str(),
            &m.model_version.to_string(),
            &spec.window.to_string(),
            &spec.features.to_string(),
            &spec.hidden.to_string(),
            &format!("{:?}", spec.mode).to_lowercase(),
        ])
        .set(1.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never_built() -> BackendFactory {
        Arc::new(|| Err(InferError::Contract("not built in this test".into())))
    }

    /// A store whose versions 1 and 2 exist as folders, 1 live, and a
    /// finished check of version 2.
    fn checked_2(root: &Path) -> (Reloader, Arc<ModelSlot>, Metrics, Candidate) {
        for v in ["1", "2"] {
            std::fs::create_dir(root.join(v)).unwrap();
        }
        let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/machine_temperature");
        let mut m = Bundle::open(&bundle).unwrap().manifest;
        m.model_version = 1;
        let slot = ModelSlot::new(never_built(), Served::new(m.clone()));
        let metrics = Metrics::new();
        let reload = Reload {
            source: ModelSource::Store(root.to_path_buf()),
            live_dir: root.join("1"),
            loader: Arc::new(|_| never_built()),
        };
        let r = Reloader::new(
            reload,
            slot.clone(),
            metrics.clone(),
            Duration::from_secs(60),
        );
        m.model_version = 2;
        let c = Candidate {
            dir: root.join("2"),
            factory: never_built(),
            served: Served::new(m),
        };
        (r, slot, metrics, c)
    }

    #[test]
    fn a_version_rolled_back_during_its_check_does_not_go_live() {
        let d = tempfile::tempdir().unwrap();
        let (mut r, slot, metrics, c) = checked_2(d.path());
        // Promoted, checked, then rolled back before the check finished.
        std::fs::write(d.path().join("current"), "1\n").unwrap();
        r.finish(confirm(&r.reload.source, c));
        assert_eq!(slot.served().manifest.model_version, 1);
        assert_eq!(metrics.model_reloads.with_label_values(&["ok"]).get(), 0);

        // Still current when the check ends: it goes live.
        let d = tempfile::tempdir().unwrap();
        let (mut r, slot, metrics, c) = checked_2(d.path());
        std::fs::write(d.path().join("current"), "2\n").unwrap();
        r.finish(confirm(&r.reload.source, c));
        assert_eq!(slot.served().manifest.model_version, 2);
        assert_eq!(metrics.model_reloads.with_label_values(&["ok"]).get(), 1);
    }
}
