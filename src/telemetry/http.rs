//! The daemon's HTTP endpoints: `GET /metrics` (Prometheus text format),
//! `GET /healthz` (the process is alive) and `GET /readyz` (the model is
//! loaded, partitions are assigned and inference is not stalled: traffic
//! can flow).

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
    /// An inference call has run longer than `serve.inference_stall_ms`.
    pub inference_stalled: AtomicBool,
}

impl Health {
    pub fn ready(&self) -> bool {
        self.model_loaded.load(Ordering::Relaxed)
            && self.partitions_assigned.load(Ordering::Relaxed)
            && !self.inference_stalled.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    health: Arc<Health>,
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    // lstm_ae_ready mirrors /readyz at every scrape.
    s.metrics
        .ready
        .set(if s.health.ready() { 1.0 } else { 0.0 });
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
        if h.inference_stalled.load(Ordering::Relaxed) {
            why.push("inference stalled");
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = String::new();
        c.read_to_string(&mut buf).await.unwrap();
        buf
    }

    #[tokio::test]
    async fn the_ready_gauge_follows_readyz() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health = Arc::new(Health::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, Metrics::new(), health.clone(), async {
            let _ = stopped.await;
        }));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.0 503"));
        assert!(get(addr, "/metrics").await.contains("\nlstm_ae_ready 0\n"));
        health.model_loaded.store(true, Ordering::Relaxed);
        health.partitions_assigned.store(true, Ordering::Relaxed);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.0 200"));
        assert!(get(addr, "/metrics").await.contains("\nlstm_ae_ready 1\n"));
        health.partitions_assigned.store(false, Ordering::Relaxed);
        assert!(get(addr, "/metrics").await.contains("\nlstm_ae_ready 0\n"));
        health.partitions_assigned.store(true, Ordering::Relaxed);
        health.inference_stalled.store(true, Ordering::Relaxed);
        let r = get(addr, "/readyz").await;
        assert!(
            r.starts_with("HTTP/1.0 503") && r.contains("inference stalled"),
            "{r}"
        );
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
    }
}
