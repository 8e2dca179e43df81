//! Real Prometheus remote-write receivers for the tests, on 127.0.0.1 and a
//! free port, each with its own data folder, killed on drop: Debian's
//! `prometheus` started with `--web.enable-remote-write-receiver` (no
//! scrapes), and Debian's `victoria-metrics` (scripts/setup.sh --test
//! installs both). Both take writes at `/api/v1/write`; samples are read back
//! as they are stored (Prometheus: a range selector over the query API;
//! VictoriaMetrics: its export API).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::procs;
use super::prometheus::urlencode;

/// A series' labels (`__name__` included) → its samples, (Unix ms, value),
/// oldest first.
pub type Stored = BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prometheus,
    VictoriaMetrics,
}

/// TLS for Prometheus's listener: PEM files.
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

pub struct Receiver {
    pub kind: Kind,
    pub port: u16,
    dir: PathBuf,
    tls: bool,
    child: Option<Child>,
}

impl Receiver {
    /// Prometheus receiving remote writes, in `dir`.
    pub fn prometheus(dir: &Path) -> Receiver {
        Self::start(Kind::Prometheus, dir, None)
    }

    /// Prometheus receiving remote writes over HTTPS only (its web config's
    /// `tls_server_config`). Ready when it listens: its HTTP API is HTTPS
    /// too, so it is not queried.
    pub fn prometheus_tls(dir: &Path, tls: &Tls) -> Receiver {
        Self::start(Kind::Prometheus, dir, Some(tls))
    }

    /// VictoriaMetrics, in `dir`.
    pub fn victoria_metrics(dir: &Path) -> Receiver {
        Self::start(Kind::VictoriaMetrics, dir, None)
    }

    fn start(kind: Kind, dir: &Path, tls: Option<&Tls>) -> Receiver {
        let dir = dir.join(match kind {
            Kind::Prometheus => "prometheus",
            Kind::VictoriaMetrics => "victoria-metrics",
        });
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(t) = tls {
            std::fs::write(
                dir.join("web.yml"),
                format!(
                    "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                    t.cert_file.display(),
                    t.key_file.display()
                ),
            )
            .unwrap();
        }
        let mut r = Receiver {
            kind,
            port: procs::free_port().unwrap(),
            dir,
            tls: tls.is_some(),
            child: None,
        };
        r.restart();
        r
    }

    /// `http[s]://127.0.0.1:PORT/api/v1/write`.
    pub fn write_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/api/v1/write", self.port)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// Stops the server as an operator would (SIGTERM: it writes what it
    /// holds in memory to disk), killing it after 30 s; its data stay for
    /// [`Receiver::restart`].
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
    }

    /// Starts the server (again) on the same port and data, and waits until
    /// it is ready.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut c = match self.kind {
            Kind::Prometheus => {
                // An empty configuration: no scrapes, only what is written.
                std::fs::write(self.dir.join("prometheus.yml"), "global: {}\n").unwrap();
                let mut c = Command::new("prometheus");
                c.arg(format!(
                    "--config.file={}",
                    self.dir.join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    self.dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
                .arg("--web.enable-remote-write-receiver");
                if self.tls {
                    c.arg(format!(
                        "--web.config.file={}",
                        self.dir.join("web.yml").display()
                    ));
                }
                c
            }
            Kind::VictoriaMetrics => {
                let mut c = Command::new("victoria-metrics");
                c.arg(format!("-httpListenAddr=127.0.0.1:{}", self.port))
                    .arg(format!(
                        "-storageDataPath={}",
                        self.dir.join("data").display()
                    ))
                    .arg("-retentionPeriod=10y")
                    // Queries see samples at once (not only 30 s later).
                    .arg("-search.latencyOffset=0s")
                    .arg("-search.disableCache");
                c
            }
        };
        let what = match self.kind {
            Kind::Prometheus => "prometheus (Debian package prometheus: scripts/setup.sh --test)",
            Kind::VictoriaMetrics => {
                "victoria-metrics (Debian package victoria-metrics: scripts/setup.sh --test)"
            }
        };
        let child = c
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("{what} starts: {e}"));
        self.child = Some(child);
        let ready_path = match self.kind {
            Kind::Prometheus => "/-/ready",
            Kind::VictoriaMetrics => "/health",
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = if self.tls {
                std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
            } else {
                procs::http_get(self.port, ready_path).map(|r| r.0) == Ok(200)
            };
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{what} not ready in 60 s; see {}",
                self.log_path().display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn get(&self, path: &str) -> String {
        assert!(!self.tls, "an HTTPS receiver is not queried");
        let (status, body) = procs::http_get(self.port, path).unwrap();
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The API's `data` of a Prometheus-style JSON answer (both servers
    /// answer the query API so).
    fn api(&self, path: &str) -> Value {
        let body = self.get(path);
        let v: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"));
        assert_eq!(v["status"], "success", "GET {path}: {body}");
        v["data"].clone()
    }

    /// An instant query at `time` (Unix seconds; `None` = now): the result
    /// of a vector (or matrix), or `[ts, value]` of a scalar.
    pub fn query_at(&self, expr: &str, time: Option<f64>) -> Vec<Value> {
        let mut path = format!("/api/v1/query?query={}", urlencode(expr));
        if let Some(t) = time {
            path += &format!("&time={t:.3}");
        }
        let data = self.api(&path);
        match data["result"].as_array() {
            Some(a) if data["resultType"] == "vector" || data["resultType"] == "matrix" => {
                a.clone()
            }
            _ => vec![data["result"].clone()],
        }
    }

    pub fn query(&self, expr: &str) -> Vec<Value> {
        self.query_at(expr, None)
    }

    /// Every stored sample of the series matching `selector` (e.g.
    /// `{__name__=~"lstm_ae_series_.*"}`) with timestamps in
    /// `[from_ms, to_ms]`.
    pub fn stored(&self, selector: &str, from_ms: i64, to_ms: i64) -> Stored {
        let labels = |m: &Value| -> BTreeMap<String, String> {
            m.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect()
        };
        let mut out = Stored::new();
        match self.kind {
            Kind::Prometheus => {
                // A range selector returns the raw samples; its range ends
                // at the query time, inclusive.
                let range_s = ((to_ms - from_ms) / 1000 + 1).max(1);
                let expr = format!("{selector}[{range_s}s]");
                let at = to_ms as f64 / 1000.0;
                for s in self.query_at(&expr, Some(at)) {
                    let samples = s["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| {
                            let ms = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                            (ms, p[1].as_str().unwrap().parse::<f64>().unwrap())
                        })
                        .filter(|(ms, _)| *ms >= from_ms)
                        .collect();
                    out.insert(labels(&s["metric"]), samples);
                }
            }
            Kind::VictoriaMetrics => {
                // What was written is searchable once flushed from memory.
                self.get("/internal/force_flush");
                let path = format!(
                    "/api/v1/export?match[]={}&start={}&end={}",
                    urlencode(selector),
                    from_ms as f64 / 1000.0,
                    to_ms as f64 / 1000.0
                );
                for line in self.get(&path).lines().filter(|l| !l.trim().is_empty()) {
                    let v: Value = serde_json::from_str(line).unwrap();
                    let ts = v["timestamps"].as_array().unwrap();
                    let vals = v["values"].as_array().unwrap();
                    let samples = ts
                        .iter()
                        .zip(vals)
                        .map(|(t, x)| (t.as_i64().unwrap(), x.as_f64().unwrap()))
                        .collect();
                    out.insert(labels(&v["metric"]), samples);
                }
            }
        }
        out
    }

    /// Polls [`Receiver::stored`] until it holds `samples` samples in all
    /// (for up to 30 s), and returns it.
    pub fn wait_for(&self, selector: &str, from_ms: i64, to_ms: i64, samples: usize) -> Stored {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.stored(selector, from_ms, to_ms);
            let n: usize = s.values().map(Vec::len).sum();
            if n >= samples || Instant::now() > deadline {
                return s;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One request as a [`Recorder`] received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub at: Instant,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

/// A small local HTTP listener standing in for a receiver where a test
/// needs to see the requests themselves (headers, bodies, timing) or
/// script the answers: it records every POST to `/api/v1/write` and answers
/// with the given statuses in turn, then 204. Runs on the test's Tokio
/// runtime.
pub struct Recorder {
    pub url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Clone)]
struct RecorderState {
    requests: std::sync::Arc<std::sync::Mutex<Vec<Recorded>>>,
    answers: std::sync::Arc<std::sync::Mutex<std::collections::VecDeque<u16>>>,
}

async fn record(
    axum::extract::State(s): axum::extract::State<RecorderState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    s.requests.lock().unwrap().push(Recorded {
        at: Instant::now(),
        headers,
        body: body.to_vec(),
    });
    let status = s.answers.lock().unwrap().pop_front().unwrap_or(204);
    axum::http::StatusCode::from_u16(status).unwrap()
}

impl Recorder {
    pub async fn start(answers: &[u16]) -> Recorder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = RecorderState {
            requests: Default::default(),
            answers: std::sync::Arc::new(std::sync::Mutex::new(answers.iter().copied().collect())),
        };
        let requests = state.requests.clone();
        let app = axum::Router::new()
            .route("/api/v1/write", axum::routing::post(record))
            .with_state(state);
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Recorder {
            url: format!("http://127.0.0.1:{port}/api/v1/write"),
            requests,
            server,
        }
    }

    /// The requests so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.server.abort();
    }
}
