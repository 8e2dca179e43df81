//! `lstm-ae serve`: the daemon ([`crate::serve`]) as a process: its slice
//! of the settings, and SIGINT/SIGTERM as the signal to drain.

use crate::config::Settings;
use crate::serve::DaemonConfig;

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
