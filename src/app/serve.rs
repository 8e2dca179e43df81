//! `lstm-ae serve`: the daemon ([`crate::serve`]) as a process: settings,
//! logging, a tokio runtime, and SIGINT/SIGTERM as the signal to drain.

use anyhow::Result;

use crate::cli::ServeArgs;
use crate::config::Settings;
use crate::serve::{Daemon, DaemonConfig};

/// `lstm-ae serve`: runs until SIGINT or SIGTERM, then drains.
pub fn run(a: ServeArgs) -> Result<()> {
    let mut s = Settings::load(a.config.as_deref())?;
    if let Some(m) = a.model {
        s.serve.model = m.to_string_lossy().into_owned();
    }
    crate::telemetry::logging::init(s.log.format, &s.log.level);
    let rt = super::process::runtime()?;
    let summary = rt.block_on(Daemon::new(DaemonConfig::from(&s)).run(termination()));
    // The drain has ended by its deadline; a blocking task still running
    // (a model check of a hot reload) must not hold the exit.
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    let summary = summary?;
    tracing::info!(
        messages = summary.messages,
        windows = summary.windows,
        dead_letters = summary.dead_letters,
        drained = summary.drained,
        "stopped"
    );
    Ok(())
}

/// The daemon's slice of the settings.
impl From<&Settings> for DaemonConfig {
    fn from(s: &Settings) -> DaemonConfig {
        DaemonConfig {
            kafka: s.kafka.clone(),
            serve: s.serve.clone(),
            windowing: s.windowing.clone(),
            anomalies: s.anomalies.clone(),
            postprocess: s.postprocess.clone(),
            runtime: s.runtime.clone(),
            series_metrics: s.series_metrics.clone(),
            remote_write: s.remote_write.clone(),
            feedback: s.feedback.clone(),
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn termination() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutdown requested: draining");
}
