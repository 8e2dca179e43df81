//! The daemon's HTTP endpoints: `GET /metrics` (Prometheus text format),
//! `GET /healthz` (the process is alive) and `GET /readyz` (the model is
//! loaded and partitions are assigned: traffic can flow).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::metrics::Metrics;

/// Readiness, set by the pipeline.
#[derive(Default)]
pub struct Health {
    pub model_loaded: AtomicBool,
    pub partitions_assigned: AtomicBool,
}

impl Health {
    pub fn ready(&self) -> bool {
        self.model_loaded.load(Ordering::Relaxed)
            && self.partitions_assigned.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    health: Arc<Health>,
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, String) {
    let h = &s.health;
    if h.ready() {
        (StatusCode::OK, "ready\n".into())
    } else {
        let mut why = vec![];
        if !h.model_loaded.load(Ordering::Relaxed) {
            why.push("model not loaded");
        }
        if !h.partitions_assigned.load(Ordering::Relaxed) {
            why.push("no partitions assigned");
        }
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", why.join(", ")),
        )
    }
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics_: Metrics,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            metrics: metrics_,
            health,
        });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
