//! Process-level wiring shared by `serve` and `demo`: logging, metrics
//! endpoint, signal handling, and a tokio runtime around [`super::run`].

use std::future::Future;
use std::sync::Arc;

use crate::config::Settings;
use crate::telemetry::http::{self, Health};
use crate::telemetry::Metrics;

use super::{ServeError, Summary};

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

/// Binds the metrics endpoint, runs the pipeline until `shutdown`, drains.
/// Returns the run's summary and the bound address.
pub async fn serve_with(
    settings: Settings,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send,
    on_listen: impl FnOnce(std::net::SocketAddr),
) -> Result<Summary, ServeError> {
    serve_model_with(settings, None, metrics, shutdown, on_listen).await
}

/// [`serve_with`] with the model given (a manifest and a backend factory,
/// e.g. a fake backend in tests) instead of the bundle of `serve.model`.
pub async fn serve_model_with(
    settings: Settings,
    model: Option<super::Model>,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send,
    on_listen: impl FnOnce(std::net::SocketAddr),
) -> Result<Summary, ServeError> {
    let health = Arc::new(Health::default());
    let addr = settings.serve.metrics_listen.clone();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: addr.clone(),
            source,
        })?;
    let bound = listener
        .local_addr()
        .map_err(|source| ServeError::Listen { addr, source })?;
    on_listen(bound);
    tracing::info!(address = %bound, "metrics endpoint: /metrics /healthz /readyz");
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http_task = tokio::spawn(http::serve(
        listener,
        metrics.clone(),
        health.clone(),
        async {
            let _ = http_stopped.await;
        },
    ));
    log_membership(&settings.kafka);
    let result = match model {
        Some(model) => super::run_with(settings, model, metrics, health, shutdown).await,
        None => super::run(settings, metrics, health, shutdown).await,
    };
    let _ = stop_http.send(());
    let _ = http_task.await;
    result
}

/// Says how this daemon is a member of its group: what a restart costs
/// depends on it (README, "Restarts and static membership").
fn log_membership(k: &crate::config::KafkaSettings) {
    let session_ms = k
        .effective_session_timeout_ms()
        .unwrap_or(k.session_timeout_ms);
    match k
        .consumer_property("group.instance.id")
        .unwrap_or(&k.instance_id)
    {
        "" => tracing::warn!(
            group = %k.group_id,
            session_timeout_ms = session_ms,
            "dynamic group membership: after a crash, this daemon's partitions wait for the broker to expire it; set kafka.instance_id (or POD_NAME/HOSTNAME) for static membership"
        ),
        id => tracing::info!(
            group = %k.group_id,
            instance_id = id,
            session_timeout_ms = session_ms,
            "static group membership: a restart within the session resumes its partitions"
        ),
    }
}
