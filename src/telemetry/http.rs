//! The daemon's HTTP endpoints: `GET /metrics` (Prometheus text format),
//! `GET /healthz` (the process is alive) and `GET /readyz` (the model is
//! loaded, partitions are assigned and inference is not stalled: traffic
//! can flow).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use prometheus::IntGauge;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

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

/// Bounds of the endpoint. It may listen on 0.0.0.0 (the Kubernetes kit
/// does), so no client may hold a connection, a slot or the shutdown.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request's headers must arrive within this time of the connection
    /// waiting for them; then the connection is closed.
    pub header_read_timeout: Duration,
    /// Connections served at once; further clients wait in the listen
    /// backlog until one closes.
    pub max_connections: usize,
    /// After shutdown, how long open connections may finish their
    /// response before they are closed.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(5),
            max_connections: 64,
            shutdown_grace: Duration::from_secs(1),
        }
    }
}

/// Counts a connection in `lstm_ae_http_connections` for as long as it
/// lives, including when its task is aborted at the shutdown deadline.
struct Open(IntGauge);

impl Open {
    fn new(g: IntGauge) -> Open {
        g.inc();
        Open(g)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Serves until `shutdown` completes, then gives open connections
/// `limits.shutdown_grace` to finish before closing them.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics_: Metrics,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: Limits,
) -> std::io::Result<()> {
    let open = metrics_.http_connections.clone();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            metrics: metrics_,
            health,
        });
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (closing_tx, closing) = watch::channel(false);
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
        let slot = tokio::select! {
            _ = &mut shutdown => break,
            s = slots.clone().acquire_owned() => s.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: pass, don't spin.
                    tracing::warn!(%error, "metrics endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(app.clone());
        let counted = Open::new(open.clone());
        let mut closing = closing.clone();
        let header_read_timeout = limits.header_read_timeout;
        conns.spawn(async move {
            let _held = (slot, counted);
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = async { closing.wait_for(|c| *c).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = conns.len(),
            "metrics endpoint: connections still open at the shutdown deadline are closed"
        );
        conns.shutdown().await;
    }
    Ok(())
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
        let server = tokio::spawn(serve(
            listener,
            Metrics::new(),
            health.clone(),
            async {
                let _ = stopped.await;
            },
            Limits::default(),
        ));
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

    /// Sends the head of a request without the blank line that ends it.
    async fn half_request(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        c
    }

    #[tokio::test]
    async fn a_half_sent_request_does_not_hold_the_shutdown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = Limits {
            // Longer than the test: the shutdown deadline must end it.
            header_read_timeout: Duration::from_secs(600),
            max_connections: 4,
            shutdown_grace: Duration::from_millis(300),
        };
        let metrics = Metrics::new();
        let server = tokio::spawn(serve(
            listener,
            metrics.clone(),
            Arc::new(Health::default()),
            async {
                let _ = stopped.await;
            },
            limits,
        ));
        let c = half_request(addr).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(metrics.http_connections.get(), 1);
        stop.send(()).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(5), server).await;
        assert!(ended.is_ok(), "the server still runs 5 s after shutdown");
        assert_eq!(metrics.http_connections.get(), 0);
        drop(c);
    }

    #[tokio::test]
    async fn a_connection_without_its_headers_is_closed_and_frees_its_slot() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = Limits {
            header_read_timeout: Duration::from_millis(500),
            max_connections: 1,
            shutdown_grace: Duration::from_secs(1),
        };
        tokio::spawn(serve(
            listener,
            Metrics::new(),
            Arc::new(Health::default()),
            async {
                let _ = stopped.await;
            },
            limits,
        ));
        let mut slow = half_request(addr).await;
        // The one slot is taken: a second client is not served meanwhile...
        let waiting = tokio::spawn(async move { get(addr, "/healthz").await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "served beyond the connection cap");
        // ...until the header timeout closes the slow one.
        let mut rest = vec![];
        let closed =
            tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "a half-sent request is still open after 5 s"
        );
        let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the waiting client is served once the slot is free")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    }
}
