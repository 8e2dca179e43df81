//! The sender task: takes batches from the queue, encodes them as
//! remote-write requests and sends them, one at a time, with retries and
//! backoff (see the parent module's docs for the rules).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_openssl::client::legacy::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
use prost::Message as _;
use tokio::sync::watch;
use tokio::time::Instant;

use super::proto::{Label, TimeSeries, WriteRequest};
use super::{RemoteWriteError, RemoteWriteSettings, Shared};

/// Most bytes of a refusal's body kept for the log.
const MAX_ERROR_BODY_BYTES: usize = 4096;

/// The sender's clock: batching and backoff.
pub(super) struct Timing {
    flush: Duration,
    min_backoff: Duration,
    max_backoff: Duration,
}

impl From<&RemoteWriteSettings> for Timing {
    fn from(s: &RemoteWriteSettings) -> Timing {
        Timing {
            flush: Duration::from_millis(s.flush_interval_ms),
            min_backoff: Duration::from_millis(s.min_backoff_ms),
            max_backoff: Duration::from_millis(s.max_backoff_ms),
        }
    }
}

/// What became of one request.
#[derive(Debug)]
enum Outcome {
    Sent,
    /// Worth trying again: no answer, a 5xx or a 429.
    Retry(String),
    /// A final refusal (any other status).
    Refused(StatusCode, String),
}

/// The HTTP side: one pooled connection per receiver, TLS when `https`.
pub(super) struct Client {
    http: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    authorization: Option<HeaderValue>,
    extra_labels: Vec<Label>,
    timeout: Duration,
}

impl Client {
    pub(super) fn new(
        s: &RemoteWriteSettings,
        authorization: Option<HeaderValue>,
    ) -> Result<Client, RemoteWriteError> {
        let timeout = Duration::from_millis(s.timeout_ms);
        let tls = |e: openssl::error::ErrorStack| RemoteWriteError::Tls(e.to_string());
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(timeout));
        http.set_nodelay(true);
        let mut ssl = SslConnector::builder(SslMethod::tls_client()).map_err(tls)?;
        if !s.tls_ca_file.is_empty() {
            ssl.set_ca_file(&s.tls_ca_file).map_err(|e| {
                RemoteWriteError::Tls(format!("tls_ca_file {}: {e}", s.tls_ca_file))
            })?;
        }
        if s.tls_insecure_skip_verify {
            ssl.set_verify(SslVerifyMode::NONE);
        }
        let https = HttpsConnector::with_connector(http, ssl).map_err(tls)?;
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https);
        Ok(Client {
            http,
            uri: s.uri()?,
            authorization,
            extra_labels: s
                .extra_labels
                .iter()
                .map(|(name, value)| Label {
                    name: name.clone(),
                    value: value.clone(),
                })
                .collect(),
            timeout,
        })
    }

    /// The request body of `batch`: the extra labels added where a series
    /// has no label of that name, labels sorted by name, protobuf, snappy.
    fn encode(&self, batch: Vec<TimeSeries>) -> Result<Bytes, snap::Error> {
        let timeseries = batch
            .into_iter()
            .map(|mut s| {
                for extra in &self.extra_labels {
                    if !s.labels.iter().any(|l| l.name == extra.name) {
                        s.labels.push(extra.clone());
                    }
                }
                s.labels.sort_by(|a, b| a.name.cmp(&b.name));
                s
            })
            .collect();
        let raw = WriteRequest { timeseries }.encode_to_vec();
        snap::raw::Encoder::new()
            .compress_vec(&raw)
            .map(Bytes::from)
    }

    /// One POST of `body`, within the timeout.
    async fn send(&self, body: Bytes) -> Outcome {
        let mut req = Request::post(self.uri.clone())
            .header(CONTENT_ENCODING, "snappy")
            .header(CONTENT_TYPE, "application/x-protobuf")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .header(USER_AGENT, concat!("lstm-ae/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(body))
            .expect("a request of a parsed URI and constant headers is valid");
        if let Some(a) = &self.authorization {
            req.headers_mut().insert(AUTHORIZATION, a.clone());
        }
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|e| chain(&e))?;
            let status = resp.status();
            // Reading the body to its end lets the connection be reused;
            // only a refusal's first bytes are kept, for the log.
            let text = match Limited::new(resp.into_body(), MAX_ERROR_BODY_BYTES)
                .collect()
                .await
            {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
                Err(_) => String::from("(a long body)"),
            };
            Ok::<_, String>((status, text))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Outcome::Retry(format!("no answer in {} ms", self.timeout.as_millis())),
            Ok(Err(e)) => Outcome::Retry(e),
            Ok(Ok((status, _))) if status.is_success() => Outcome::Sent,
            Ok(Ok((status, text)))
                if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS =>
            {
                Outcome::Retry(format!("{status}: {text}"))
            }
            Ok(Ok((status, text))) => Outcome::Refused(status, text),
        }
    }
}

/// An error and its causes, one line (hyper's own message alone is terse).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// `fut`, unless the shutdown deadline (set now or while it runs) passes
/// first: then `None`.
async fn before_deadline<F: Future>(
    stop: &mut watch::Receiver<Option<Instant>>,
    fut: F,
) -> Option<F::Output> {
    tokio::pin!(fut);
    loop {
        let deadline = *stop.borrow_and_update();
        match deadline {
            Some(d) => return tokio::time::timeout_at(d, &mut fut).await.ok(),
            None => tokio::select! {
                out = &mut fut => return Some(out),
                changed = stop.changed() => {
                    if changed.is_err() {
                        // No handle can stop the sender any more.
                        return Some(fut.await);
                    }
                }
            },
        }
    }
}

/// The sender task: until shutdown, waits for a batch's worth of samples
/// or the flush interval, takes a batch and sends it; at shutdown, sends
/// what is queued by the deadline.
pub(super) async fn run(
    shared: Arc<Shared>,
    client: Client,
    timing: Timing,
    mut stop: watch::Receiver<Option<Instant>>,
) {
    let m = &shared.metrics;
    loop {
        let stopping = stop.borrow_and_update().is_some();
        if !stopping && shared.queue().len() < shared.max_samples_per_send {
            tokio::select! {
                _ = shared.batch_ready.notified() => {}
                _ = tokio::time::sleep(timing.flush) => {}
                _ = stop.changed() => {}
            }
        }
        let (batch, n, deadline) = {
            let mut q = shared.queue();
            // Read under the queue's lock, as `push` does.
            let deadline = *stop.borrow();
            let (batch, n) = q.take(shared.max_samples_per_send);
            m.remote_write_queue_samples.set(q.len() as i64);
            (batch, n, deadline)
        };
        if n == 0 {
            if deadline.is_some() {
                return;
            }
            continue;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let left = {
                let mut q = shared.queue();
                m.remote_write_queue_samples.set(0);
                n + q.clear()
            };
            m.remote_write_samples_dropped
                .with_label_values(&["shutdown"])
                .inc_by(left as u64);
            tracing::warn!(
                samples = left,
                "remote write: samples still queued at the shutdown deadline are dropped"
            );
            return;
        }
        match client.encode(batch) {
            Ok(body) => send_with_retries(&shared, &client, &timing, body, n, &mut stop).await,
            Err(e) => {
                // Only a body beyond snappy's size limit (4 GiB) fails; the
                // batch bound keeps requests far below it.
                m.remote_write_samples_failed.inc_by(n as u64);
                tracing::error!(error = %e, samples = n, "remote write: cannot compress a request");
            }
        }
    }
}

/// Sends one request until it is sent or refused, or the shutdown deadline
/// passes; counts its `n` samples by what became of them.
async fn send_with_retries(
    shared: &Shared,
    client: &Client,
    timing: &Timing,
    body: Bytes,
    n: usize,
    stop: &mut watch::Receiver<Option<Instant>>,
) {
    let m = &shared.metrics;
    let mut backoff = timing.min_backoff;
    let mut attempt = 1u64;
    loop {
        let started = Instant::now();
        let outcome = before_deadline(stop, client.send(body.clone())).await;
        if outcome.is_some() {
            m.remote_write_request_duration
                .observe(started.elapsed().as_secs_f64());
        }
        match outcome {
            Some(Outcome::Sent) => {
                m.remote_write_samples_sent.inc_by(n as u64);
                if attempt > 1 {
                    tracing::info!(
                        attempts = attempt,
                        "remote write: the receiver took the request"
                    );
                }
                return;
            }
            Some(Outcome::Refused(status, text)) => {
                m.remote_write_samples_failed.inc_by(n as u64);
                tracing::warn!(
                    %status,
                    message = %text,
                    samples = n,
                    "remote write: the receiver refused a request; its samples are lost"
                );
                return;
            }
            Some(Outcome::Retry(why)) => {
                m.remote_write_retries.inc();
                // The first failure and every tenth: a receiver that is down
                // for long does not flood the log.
                if attempt == 1 || attempt.is_multiple_of(10) {
                    tracing::warn!(
                        error = %why,
                        attempt,
                        retry_in_ms = backoff.as_millis() as u64,
                        samples = n,
                        "remote write failed; retrying"
                    );
                }
                if before_deadline(stop, tokio::time::sleep(backoff))
                    .await
                    .is_none()
                {
                    break;
                }
                backoff = (backoff * 2).min(timing.max_backoff);
                attempt += 1;
            }
            None => break,
        }
    }
    m.remote_write_samples_dropped
        .with_label_values(&["shutdown"])
        .inc_by(n as u64);
}

#[cfg(test)]
mod tests {
    use super::super::proto::Sample;
    use super::*;

    #[test]
    fn a_body_is_snappy_protobuf_with_extra_labels_added_and_labels_sorted() {
        let s = RemoteWriteSettings {
            url: "http://127.0.0.1:1/api/v1/write".into(),
            extra_labels: [("job", "lstm-ae"), ("key", "not-this"), ("Zone", "eu")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            ..Default::default()
        };
        let client = Client::new(&s, None).unwrap();
        let series = TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: "m".into(),
                },
                Label {
                    name: "key".into(),
                    value: "k".into(),
                },
            ],
            samples: vec![Sample {
                value: 1.5,
                timestamp: 7,
            }],
        };
        let body = client.encode(vec![series]).unwrap();
        let raw = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        let req = WriteRequest::decode(raw.as_slice()).unwrap();
        let labels: Vec<(&str, &str)> = req.timeseries[0]
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        // Byte order: upper case before `_` before lower case; the series'
        // own `key` wins over the extra one.
        assert_eq!(
            labels,
            [
                ("Zone", "eu"),
                ("__name__", "m"),
                ("job", "lstm-ae"),
                ("key", "k")
            ]
        );
        assert_eq!(
            req.timeseries[0].samples,
            [Sample {
                value: 1.5,
                timestamp: 7
            }]
        );
    }
}
