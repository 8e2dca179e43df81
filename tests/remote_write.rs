//! The remote-write client (`serve::remote_write`) and the per-series
//! samples (`serve::series`) against real receivers: a Prometheus server
//! with its remote-write receiver and a VictoriaMetrics server store what
//! the client writes, read back equal; a receiver that is down for a while
//! costs only what the bounded queue cannot hold, and writing resumes by
//! itself; HTTPS with a CA file. A small local listener checks what real
//! receivers do not show: the protocol and auth headers, a 4xx that is not
//! retried, 5xx and 429 retried with backoff, and the shutdown. The series
//! dashboard's queries are evaluated against a Prometheus filled by the
//! client. Needs `scripts/setup.sh --test` (prometheus, victoria-metrics).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::receivers::{Receiver, Recorder, Stored, Tls};
use common::series_dashboard::{
    dashboard, json, metric_names, panel, promql, queries, root, substitute, variable,
};
use lstm_ae::serve::remote_write::proto::WriteRequest;
use lstm_ae::serve::remote_write::{RemoteWriteSettings, RemoteWriter};
use lstm_ae::serve::series::{remote_write_series, WindowFacts};
use lstm_ae::telemetry::Metrics;
use prost::Message as _;

// ---------------------------------------------------------------------------
// Windows with known facts

/// One scored window's facts, owned.
#[derive(Debug, Clone)]
struct Window {
    key: String,
    end_ts_ms: i64,
    score: f32,
    anomalous: bool,
    threshold: f32,
    values: Vec<f32>,
    expected: Vec<f32>,
}

impl Window {
    fn facts<'a>(&'a self, features: &'a [String]) -> WindowFacts<'a> {
        WindowFacts {
            key: &self.key,
            end_ts_ms: self.end_ts_ms,
            normalized_score: self.score,
            anomalous: self.anomalous,
            threshold: self.threshold,
            features,
            values: &self.values,
            expected: &self.expected,
        }
    }
}

fn features() -> Vec<String> {
    vec!["temp".into(), "rpm".into()]
}

/// `per_key` windows of each key, one a second, the last ending `end_ms`;
/// values from a xorshift (arbitrary `f32`s, not round numbers); every 7th
/// window of the first key is anomalous.
fn windows(keys: &[&str], per_key: usize, end_ms: i64) -> Vec<Window> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 1_000_000) as f32 / 997.0
    };
    let mut out = vec![];
    for i in 0..per_key {
        for (k, key) in keys.iter().enumerate() {
            let anomalous = k == 0 && i % 7 == 3;
            out.push(Window {
                key: key.to_string(),
                end_ts_ms: end_ms - 1000 * (per_key - 1 - i) as i64,
                score: if anomalous {
                    1.0 + next()
                } else {
                    next() / 1000.0
                },
                anomalous,
                threshold: 0.0421,
                values: vec![next(), next() * 10.0],
                expected: vec![next(), next() * 10.0],
            });
        }
    }
    out
}

/// Samples of `windows` under the series names and labels the dashboard
/// reads, written out here independently of `remote_write_series`.
fn expected(windows: &[Window], features: &[String]) -> Stored {
    let mut out = Stored::new();
    let mut add = |name: &str, key: &str, feature: Option<&str>, ts: i64, v: f64| {
        let mut labels = BTreeMap::from([
            ("__name__".to_string(), name.to_string()),
            ("key".to_string(), key.to_string()),
        ]);
        if let Some(f) = feature {
            labels.insert("feature".into(), f.into());
        }
        out.entry(labels).or_default().push((ts, v));
    };
    for w in windows {
        let (k, ts) = (w.key.as_str(), w.end_ts_ms);
        add(
            "lstm_ae_series_normalized_score",
            k,
            None,
            ts,
            w.score as f64,
        );
        add(
            "lstm_ae_series_anomalous",
            k,
            None,
            ts,
            if w.anomalous { 1.0 } else { 0.0 },
        );
        add("lstm_ae_series_threshold", k, None, ts, w.threshold as f64);
        for (i, f) in features.iter().enumerate() {
            add("lstm_ae_series_value", k, Some(f), ts, w.values[i] as f64);
            add(
                "lstm_ae_series_expected_value",
                k,
                Some(f),
                ts,
                w.expected[i] as f64,
            );
        }
        if w.anomalous {
            add(
                "lstm_ae_series_last_anomaly_timestamp_seconds",
                k,
                None,
                ts,
                ts as f64 / 1000.0,
            );
        }
    }
    for samples in out.values_mut() {
        samples.sort_by_key(|s| s.0);
    }
    out
}

fn samples_of(windows: &[Window], features: &[String]) -> usize {
    windows
        .iter()
        .map(|w| remote_write_series(&w.facts(features)).len())
        .sum()
}

// ---------------------------------------------------------------------------
// Client helpers

fn settings(url: &str) -> RemoteWriteSettings {
    RemoteWriteSettings {
        url: url.into(),
        max_samples_per_send: 100,
        flush_interval_ms: 50,
        queue_capacity_samples: 10_000,
        timeout_ms: 5_000,
        min_backoff_ms: 20,
        max_backoff_ms: 200,
        ..Default::default()
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn push_all(w: &RemoteWriter, windows: &[Window], features: &[String]) {
    for win in windows {
        assert!(
            w.push(remote_write_series(&win.facts(features))),
            "the queue takes it"
        );
    }
}

/// Waits up to 30 s for `cond`.
async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "not within 30 s: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sent(m: &Metrics) -> u64 {
    m.remote_write_samples_sent.get()
}

fn dropped(m: &Metrics, reason: &str) -> u64 {
    m.remote_write_samples_dropped
        .with_label_values(&[reason])
        .get()
}

fn now_ms() -> i64 {
    common::now_ms()
}

/// Every stored sample equals the expected one, by series and timestamp;
/// `f32_values`: compared at `f32` precision (the data's own; VictoriaMetrics
/// keeps about 14 significant digits), except the anomaly times, exact.
fn assert_stored_equal(what: &str, got: &Stored, want: &Stored, f32_values: bool) {
    let got_series: BTreeSet<_> = got.keys().collect();
    let want_series: BTreeSet<_> = want.keys().collect();
    assert_eq!(got_series, want_series, "{what}: the series");
    for (labels, want_samples) in want {
        let got_samples = &got[labels];
        let ts = |s: &[(i64, f64)]| s.iter().map(|p| p.0).collect::<Vec<_>>();
        assert_eq!(
            ts(got_samples),
            ts(want_samples),
            "{what}: timestamps of {labels:?}"
        );
        let exact = !f32_values || labels["__name__"].ends_with("_timestamp_seconds");
        for ((t, g), (_, w)) in got_samples.iter().zip(want_samples) {
            let equal = if exact {
                g == w
            } else {
                *g as f32 == *w as f32
            };
            assert!(equal, "{what}: {labels:?} at {t}: stored {g}, written {w}");
        }
    }
}

// ---------------------------------------------------------------------------
// Real receivers

const SERIES: &str = r#"{__name__=~"lstm_ae_series_.*"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_written_to_prometheus_and_victoria_metrics_read_back_equal() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Receiver::prometheus(dir.path());
    let victoria = Receiver::victoria_metrics(dir.path());
    let f = features();
    // Keys as the input may name them: a label value is any UTF-8.
    let keys = ["pump-1", "fan \"7\" \\ ünïcödé", "line/3{a=b}"];
    let end = now_ms() - 5_000;
    let ws = windows(&keys, 40, end);
    let want = expected(&ws, &f);
    let total = samples_of(&ws, &f);
    assert_eq!(
        total,
        want.values().map(Vec::len).sum::<usize>(),
        "the writer offers what the test expects"
    );
    for r in [&prometheus, &victoria] {
        let m = Metrics::new();
        let w = RemoteWriter::start(&settings(&r.write_url()), no_env, &m).unwrap();
        push_all(&w, &ws, &f);
        eventually("every sample sent", || sent(&m) == total as u64).await;
        w.shutdown(Duration::from_secs(5)).await;
        assert_eq!(m.remote_write_samples_failed.get(), 0);
        assert_eq!(dropped(&m, "queue_full") + dropped(&m, "shutdown"), 0);
        assert_eq!(m.remote_write_queue_samples.get(), 0);
        let from = end - 60_000;
        let got = r.wait_for(SERIES, from, end + 1_000, total);
        assert_stored_equal(
            &format!("{:?}", r.kind),
            &got,
            &want,
            r.kind == common::receivers::Kind::VictoriaMetrics,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_costs_only_what_the_queue_cannot_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut victoria = Receiver::victoria_metrics(dir.path());
    let f = features();
    let capacity = 300;
    let s = RemoteWriteSettings {
        queue_capacity_samples: capacity,
        max_samples_per_send: 50,
        ..settings(&victoria.write_url())
    };
    let m = Metrics::new();
    let w = RemoteWriter::start(&s, no_env, &m).unwrap();
    let end = now_ms() - 1_000;
    let ws = windows(&["pump-1", "pump-2"], 150, end);
    let (before, rest) = ws.split_at(20);
    let (during, after) = rest.split_at(240);

    push_all(&w, before, &f);
    let n_before = samples_of(before, &f) as u64;
    eventually("the first windows sent", || sent(&m) == n_before).await;
    let stored = victoria.wait_for(SERIES, end - 600_000, end + 1_000, n_before as usize);
    assert_eq!(
        stored.values().map(Vec::len).sum::<usize>() as u64,
        n_before
    );

    victoria.stop();
    let mut offered = 0u64;
    let mut refused = 0u64;
    for win in during {
        let series = remote_write_series(&win.facts(&f));
        let n = series.len() as u64;
        offered += n;
        if !w.push(series) {
            refused += n;
        }
        // The bound holds at every step, in the queue and in its gauge.
        assert!(w.queued_samples() <= capacity);
        assert!(m.remote_write_queue_samples.get() as usize <= capacity);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(refused > 0, "the outage outlasted the queue");
    assert!(m.remote_write_retries.get() > 0, "the sender kept trying");
    assert_eq!(sent(&m), n_before, "nothing sent while down");
    // Refused offers are counted whole; what was taken is queued or in the
    // one request being retried.
    assert_eq!(
        dropped(&m, "queue_full"),
        refused,
        "refused windows counted"
    );
    assert_eq!(m.remote_write_samples_failed.get(), 0);

    victoria.restart();
    eventually("the queue drained by itself", || {
        sent(&m) + dropped(&m, "queue_full") == n_before + offered && w.queued_samples() == 0
    })
    .await;
    // Writing goes on as before.
    push_all(&w, after, &f);
    let n_after = samples_of(after, &f) as u64;
    eventually("the later windows sent", || {
        sent(&m) + dropped(&m, "queue_full") == n_before + offered + n_after
    })
    .await;
    w.shutdown(Duration::from_secs(5)).await;
    assert_eq!(m.remote_write_samples_failed.get(), 0);

    // VictoriaMetrics holds exactly what was counted as sent, all of the
    // windows before and after the outage among it.
    let stored = victoria.wait_for(SERIES, end - 600_000, end + 1_000, sent(&m) as usize);
    let n_stored: usize = stored.values().map(Vec::len).sum();
    assert_eq!(n_stored as u64, sent(&m));
    let have: BTreeSet<(String, i64)> = stored
        .iter()
        .filter(|(l, _)| l["__name__"] == "lstm_ae_series_normalized_score")
        .flat_map(|(l, s)| s.iter().map(|(t, _)| (l["key"].clone(), *t)))
        .collect();
    for win in before.iter().chain(after) {
        assert!(
            have.contains(&(win.key.clone(), win.end_ts_ms)),
            "{} at {} stored",
            win.key,
            win.end_ts_ms
        );
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files
/// in `dir`: (CA file, server TLS files).
fn certificates(dir: &Path) -> (PathBuf, Tls) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    use openssl::x509::{X509NameBuilder, X509};

    let name = |cn: &str| {
        let mut n = X509NameBuilder::new().unwrap();
        n.append_entry_by_text("CN", cn).unwrap();
        n.build()
    };
    let key = || PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let cert = |subject: &str, key: &PKey<_>, issuer: Option<(&X509, &PKey<_>)>, ca: bool| {
        let mut b = X509::builder().unwrap();
        b.set_version(2).unwrap();
        b.set_serial_number(
            &BigNum::from_u32(if ca { 1 } else { 2 })
                .unwrap()
                .to_asn1_integer()
                .unwrap(),
        )
        .unwrap();
        b.set_subject_name(&name(subject)).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        if ca {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
                .unwrap();
        } else {
            let san = SubjectAlternativeName::new()
                .ip("127.0.0.1")
                .build(&b.x509v3_context(issuer.map(|i| &**i.0), None))
                .unwrap();
            b.append_extension(san).unwrap();
        }
        let (issuer_name, signer) = match issuer {
            Some((c, k)) => (c.subject_name().to_owned().unwrap(), k),
            None => (name(subject), key),
        };
        b.set_issuer_name(&issuer_name).unwrap();
        b.sign(signer, MessageDigest::sha256()).unwrap();
        b.build()
    };
    let ca_key = key();
    let ca = cert("lstm-ae test CA", &ca_key, None, true);
    let server_key = key();
    let server = cert("127.0.0.1", &server_key, Some((&ca, &ca_key)), false);
    let write = |name: &str, pem: Vec<u8>| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    let ca_file = write("ca.pem", ca.to_pem().unwrap());
    let tls = Tls {
        cert_file: write("server.pem", server.to_pem().unwrap()),
        key_file: write("server.key", server_key.private_key_to_pem_pkcs8().unwrap()),
    };
    (ca_file, tls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_verified_against_the_ca_file_or_skipped_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, tls) = certificates(dir.path());
    let prometheus = Receiver::prometheus_tls(dir.path(), &tls);
    let url = prometheus.write_url();
    assert!(url.starts_with("https://"));
    let f = features();
    let ws = windows(&["pump-1"], 3, now_ms() - 2_000);
    let n = samples_of(&ws, &f) as u64;

    // An unknown CA: the handshake fails, which is retried, never sent.
    let m = Metrics::new();
    let w = RemoteWriter::start(&settings(&url), no_env, &m).unwrap();
    push_all(&w, &ws, &f);
    eventually("retries of the failed handshake", || {
        m.remote_write_retries.get() >= 2
    })
    .await;
    assert_eq!(sent(&m), 0);
    w.shutdown(Duration::from_millis(100)).await;
    assert_eq!(dropped(&m, "shutdown"), n, "unsent at the deadline");

    // The CA file makes the receiver's certificate trusted.
    let m = Metrics::new();
    let s = RemoteWriteSettings {
        tls_ca_file: ca_file.display().to_string(),
        ..settings(&url)
    };
    let w = RemoteWriter::start(&s, no_env, &m).unwrap();
    push_all(&w, &ws, &f);
    eventually("sent over verified TLS", || sent(&m) == n).await;
    assert_eq!(m.remote_write_retries.get(), 0);
    w.shutdown(Duration::from_secs(1)).await;

    // Or verification is off.
    let m = Metrics::new();
    let s = RemoteWriteSettings {
        tls_insecure_skip_verify: true,
        ..settings(&url)
    };
    let w = RemoteWriter::start(&s, no_env, &m).unwrap();
    let later = windows(&["pump-2"], 3, now_ms() - 1_000);
    push_all(&w, &later, &f);
    eventually("sent without verification", || {
        sent(&m) == samples_of(&later, &f) as u64
    })
    .await;
    w.shutdown(Duration::from_secs(1)).await;

    // A CA file that cannot be read stops the start, naming it.
    let s = RemoteWriteSettings {
        tls_ca_file: dir.path().join("missing.pem").display().to_string(),
        ..settings(&url)
    };
    let e = RemoteWriter::start(&s, no_env, &Metrics::new())
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("missing.pem"), "{e}");
}

#[test]
fn prometheus_parses_the_gauges_of_awkward_keys_and_lints_them_clean() {
    use lstm_ae::serve::series::{SeriesGauges, SeriesMetricsSettings};
    use std::io::Write;
    let m = Metrics::new();
    let settings = SeriesMetricsSettings {
        enabled: true,
        ..Default::default()
    };
    let mut g = SeriesGauges::new(&settings, &m).unwrap();
    let f = features();
    let keys = [
        "pump-1",
        "a \"quoted\" key",
        "back\\slash",
        "line\nbreak",
        "tab\tand ünïcödé",
        "{braces}=,",
    ];
    let ws = windows(&keys, 2, 1_700_000_000_000);
    for (i, w) in ws.iter().enumerate() {
        g.record(&w.facts(&f), i as u64);
    }
    let text = m.render();
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus: scripts/setup.sh --test) runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics: {said}\n{text}"
    );
    // promtool names each metric it has a complaint about.
    assert!(!said.contains("lstm_ae_"), "{said}");
    // Every key is there, once per key-level gauge.
    for k in keys {
        let escaped = k
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        assert!(
            text.contains(&format!("lstm_ae_series_anomalous{{key=\"{escaped}\"}}")),
            "{k:?} in\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------
// The requests themselves (a recording listener)

fn header<'a>(r: &'a common::receivers::Recorded, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

fn decode(body: &[u8]) -> WriteRequest {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .expect("a snappy block");
    WriteRequest::decode(raw.as_slice()).expect("a protobuf WriteRequest")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_carry_the_protocol_headers_and_the_configured_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "file-token\n").unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "pa:ss word\r\n").unwrap();
    let env = |name: &str| match name {
        "RW_TOKEN" => Some("env-token".to_string()),
        "RW_PASSWORD" => Some("env-password".to_string()),
        _ => None,
    };
    let f = features();
    type Configure<'a> = Box<dyn Fn(&mut RemoteWriteSettings) + 'a>;
    let cases: Vec<(&str, Configure, Option<&str>)> = vec![
        ("no credentials", Box::new(|_| {}), None),
        (
            "bearer token file",
            Box::new(|s| s.bearer_token_file = token_file.display().to_string()),
            Some("Bearer file-token"),
        ),
        (
            "bearer token variable (wins over the file)",
            Box::new(|s| {
                s.bearer_token_file = token_file.display().to_string();
                s.bearer_token_env = "RW_TOKEN".into();
            }),
            Some("Bearer env-token"),
        ),
        (
            "basic auth, password file",
            Box::new(|s| {
                s.basic_auth_username = "writer".into();
                s.basic_auth_password_file = password_file.display().to_string();
            }),
            // base64("writer:pa:ss word")
            Some("Basic d3JpdGVyOnBhOnNzIHdvcmQ="),
        ),
        (
            "basic auth, password variable",
            Box::new(|s| {
                s.basic_auth_username = "writer".into();
                s.basic_auth_password_env = "RW_PASSWORD".into();
            }),
            // base64("writer:env-password")
            Some("Basic d3JpdGVyOmVudi1wYXNzd29yZA=="),
        ),
    ];
    for (what, configure, authorization) in cases {
        let rec = Recorder::start(&[]).await;
        let mut s = settings(&rec.url);
        s.extra_labels
            .insert("cluster".to_string(), "eu-1".to_string());
        configure(&mut s);
        let m = Metrics::new();
        let w = RemoteWriter::start(&s, env, &m).unwrap();
        let ws = windows(&["pump-9"], 1, 1_700_000_000_000);
        push_all(&w, &ws, &f);
        w.shutdown(Duration::from_secs(5)).await;
        let reqs = rec.requests();
        assert_eq!(reqs.len(), 1, "{what}");
        let r = &reqs[0];
        assert_eq!(header(r, "content-encoding"), Some("snappy"), "{what}");
        assert_eq!(
            header(r, "content-type"),
            Some("application/x-protobuf"),
            "{what}"
        );
        assert_eq!(
            header(r, "x-prometheus-remote-write-version"),
            Some("0.1.0"),
            "{what}"
        );
        assert!(
            header(r, "user-agent").is_some_and(|u| u.starts_with("lstm-ae/")),
            "{what}"
        );
        assert_eq!(header(r, "authorization"), authorization, "{what}");
        // The body: the window's series with the extra label, sorted.
        let req = decode(&r.body);
        assert_eq!(req.timeseries.len(), 3 + 2 * 2, "{what}");
        for ts in &req.timeseries {
            let names: Vec<&str> = ts.labels.iter().map(|l| l.name.as_str()).collect();
            let mut sorted = names.clone();
            sorted.sort();
            assert_eq!(names, sorted, "{what}: labels sorted");
            assert!(
                ts.labels
                    .iter()
                    .any(|l| l.name == "cluster" && l.value == "eu-1"),
                "{what}"
            );
            assert!(
                ts.labels
                    .iter()
                    .any(|l| l.name == "key" && l.value == "pump-9"),
                "{what}"
            );
            assert_eq!(ts.samples.len(), 1);
            assert_eq!(ts.samples[0].timestamp, 1_700_000_000_000);
        }
        assert_eq!(sent(&m), 7, "{what}");
    }
    // A variable that is named but not set stops the start, naming it.
    let s = RemoteWriteSettings {
        bearer_token_env: "RW_UNSET".into(),
        ..settings("http://127.0.0.1:1/api/v1/write")
    };
    let e = RemoteWriter::start(&s, env, &Metrics::new())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("remote_write.bearer_token_env") && e.contains("RW_UNSET"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_final_and_counted_while_5xx_and_429_are_retried_with_growing_backoff() {
    let f = features();
    let ws = windows(&["pump-1"], 2, 1_700_000_000_000);
    let per_window = samples_of(&ws[..1], &f) as u64;

    // 400: failed at once, never retried; the next request goes on.
    let rec = Recorder::start(&[400]).await;
    let m = Metrics::new();
    let w = RemoteWriter::start(&settings(&rec.url), no_env, &m).unwrap();
    push_all(&w, &ws[..1], &f);
    eventually("the refusal counted", || {
        m.remote_write_samples_failed.get() == per_window
    })
    .await;
    // Several backoffs' time: no retry comes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rec.requests().len(), 1);
    assert_eq!(m.remote_write_retries.get(), 0);
    push_all(&w, &ws[1..], &f);
    eventually("the next window sent", || sent(&m) == per_window).await;
    assert_eq!(rec.requests().len(), 2);
    w.shutdown(Duration::from_secs(1)).await;

    // 503, 429, 500, 503, 503, then 204: five retries of the same request,
    // after 40, 80, 160, 160, 160 ms (doubling, capped by max_backoff_ms).
    let rec = Recorder::start(&[503, 429, 500, 503, 503]).await;
    let m = Metrics::new();
    let s = RemoteWriteSettings {
        min_backoff_ms: 40,
        max_backoff_ms: 160,
        ..settings(&rec.url)
    };
    let w = RemoteWriter::start(&s, no_env, &m).unwrap();
    push_all(&w, &ws[..1], &f);
    eventually("sent after the retries", || sent(&m) == per_window).await;
    w.shutdown(Duration::from_secs(1)).await;
    let reqs = rec.requests();
    assert_eq!(reqs.len(), 6);
    assert_eq!(m.remote_write_retries.get(), 5);
    assert_eq!(m.remote_write_samples_failed.get(), 0);
    assert!(
        reqs.iter().all(|r| r.body == reqs[0].body),
        "the same request each time"
    );
    for (i, min_ms) in [40u64, 80, 160, 160, 160].into_iter().enumerate() {
        let gap = reqs[i + 1].at - reqs[i].at;
        assert!(
            gap >= Duration::from_millis(min_ms),
            "retry {} after {gap:?}, before its backoff of {min_ms} ms",
            i + 1
        );
    }
    // Uncapped, the waits would add up to 1,240 ms.
    let all = reqs[5].at - reqs[0].at;
    assert!(
        all < Duration::from_millis(1_000),
        "waits capped at max_backoff_ms: {all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_what_is_queued_and_counts_what_it_cannot_send() {
    let f = features();
    let ws = windows(&["pump-1", "pump-2"], 3, 1_700_000_000_000);
    let n = samples_of(&ws, &f) as u64;

    // A receiver that answers: what waits for the flush interval is sent
    // at shutdown, at once.
    let rec = Recorder::start(&[]).await;
    let m = Metrics::new();
    let s = RemoteWriteSettings {
        flush_interval_ms: 60_000,
        ..settings(&rec.url)
    };
    let w = RemoteWriter::start(&s, no_env, &m).unwrap();
    push_all(&w, &ws, &f);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(rec.requests().is_empty(), "waiting for the flush interval");
    let started = Instant::now();
    w.shutdown(Duration::from_secs(10)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!((sent(&m), dropped(&m, "shutdown")), (n, 0));
    assert_eq!(decode(&rec.requests()[0].body).timeseries.len() as u64, n);

    // Nothing listens: the request in flight and the queue are dropped at
    // the deadline, and so is what is offered after it.
    let port = common::procs::free_port().unwrap();
    let m = Metrics::new();
    let s = RemoteWriteSettings {
        max_samples_per_send: 7,
        ..settings(&format!("http://127.0.0.1:{port}/api/v1/write"))
    };
    let w = RemoteWriter::start(&s, no_env, &m).unwrap();
    push_all(&w, &ws, &f);
    eventually("retrying", || m.remote_write_retries.get() > 0).await;
    let started = Instant::now();
    w.shutdown(Duration::from_millis(300)).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!((sent(&m), dropped(&m, "shutdown")), (0, n));
    assert_eq!(m.remote_write_queue_samples.get(), 0);
    assert!(!w.push(remote_write_series(&ws[0].facts(&f))));
    assert_eq!(dropped(&m, "shutdown"), n + per_window(&ws, &f));
    w.shutdown(Duration::from_secs(1)).await; // a second call returns at once
}

fn per_window(ws: &[Window], f: &[String]) -> u64 {
    samples_of(&ws[..1], f) as u64
}

// ---------------------------------------------------------------------------
// The series dashboard

#[test]
fn the_series_dashboard_has_its_variables_panels_and_a_way_to_the_health_dashboard() {
    let d = dashboard();
    assert!(d["id"].is_null(), "id must be null for an import");
    assert_eq!(d["uid"], "lstm-ae-series");
    assert!(d["schemaVersion"].as_u64().unwrap() >= 36);
    assert_eq!(variable(&d, "datasource")["type"], "datasource");
    let key = variable(&d, "key");
    assert_eq!(key["datasource"]["uid"], "${datasource}");
    assert_eq!(
        key["query"]["query"],
        "label_values(lstm_ae_series_normalized_score, key)"
    );
    assert_eq!(key["multi"], false, "one key at a time");

    // Unique ids, no overlaps, every query on the chosen data source.
    let mut ids = BTreeSet::new();
    let mut cells: Vec<(i64, i64, i64, i64)> = vec![];
    for p in d["panels"].as_array().unwrap() {
        assert!(ids.insert(p["id"].as_u64().unwrap()), "{}", p["title"]);
        let g = &p["gridPos"];
        let c = ["x", "y", "w", "h"].map(|k| g[k].as_i64().unwrap());
        assert!(c[0] + c[2] <= 24, "{}", p["title"]);
        for o in &cells {
            let overlap =
                c[0] < o.0 + o.2 && o.0 < c[0] + c[2] && c[1] < o.1 + o.3 && o.1 < c[1] + c[3];
            assert!(!overlap, "{} overlaps another panel", p["title"]);
        }
        cells.push((c[0], c[1], c[2], c[3]));
        for t in p["targets"].as_array().into_iter().flatten() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        }
    }

    // The score against a threshold line at 1.
    let score = panel(&d, "Normalised score vs threshold");
    let defaults = &score["fieldConfig"]["defaults"];
    assert!(defaults["custom"]["thresholdsStyle"]["mode"]
        .as_str()
        .unwrap()
        .contains("line"));
    assert!(defaults["thresholds"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["value"] == 1));
    // Anomalous windows as a state band, and as annotations.
    assert_eq!(panel(&d, "Anomalous windows")["type"], "state-timeline");
    assert!(queries(&d)
        .iter()
        .any(|(w, e)| w.starts_with("annotation") && e.contains("lstm_ae_series_anomalous")));
    // Value and expected value, one panel per feature.
    let values = panel(&d, "$feature: value and expected value");
    assert_eq!(values["repeat"], "feature");
    // The table of keys, and a link to the health dashboard by its uid.
    assert_eq!(
        panel(&d, "Keys with the highest score now")["type"],
        "table"
    );
    let health_uid = json("deploy/grafana/lstm-ae.json")["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let about = panel(&d, "About this dashboard");
    assert!(about["options"]["content"]
        .as_str()
        .unwrap()
        .contains(&format!("(/d/{health_uid})")));

    // Every metric a query names is one the daemon exports and writes.
    let m = Metrics::new();
    let defined: BTreeSet<String> = [
        m.series_normalized_score.clone(),
        m.series_anomalous.clone(),
        m.series_threshold.clone(),
        m.series_value.clone(),
        m.series_expected_value.clone(),
        m.series_last_anomaly.clone(),
    ]
    .iter()
    .map(|g| {
        use prometheus::core::Collector;
        g.desc()[0].fq_name.clone()
    })
    .collect();
    for (w, e) in queries(&d) {
        for name in metric_names(&e) {
            assert!(defined.contains(&name), "{w}: {name} is not a series gauge");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_dashboard_query_returns_data_for_a_known_key_from_remote_writes() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = Receiver::prometheus(dir.path());
    let f = features();
    let end = now_ms() - 2_000;
    let ws = windows(&["pump-1", "pump-2", "pump-3"], 60, end);
    let m = Metrics::new();
    let w = RemoteWriter::start(&settings(&prometheus.write_url()), no_env, &m).unwrap();
    push_all(&w, &ws, &f);
    let total = samples_of(&ws, &f) as u64;
    eventually("every sample sent", || sent(&m) == total).await;
    w.shutdown(Duration::from_secs(5)).await;

    let d = dashboard();
    let at = Some(now_ms() as f64 / 1000.0);
    for (what, expr) in queries(&d) {
        for feature in &f {
            let q = substitute(&promql(&expr), "pump-1", feature);
            let result = prometheus.query_at(&q, at);
            assert!(!result.is_empty(), "{what}: {q} returned nothing");
        }
    }

    // The values behind the panels are the known key's.
    let last = ws.iter().rfind(|w| w.key == "pump-1").unwrap();
    let last_anomaly = ws
        .iter()
        .rfind(|w| w.key == "pump-1" && w.anomalous)
        .unwrap();
    let value = |expr: &str| -> f64 {
        let r = prometheus.query_at(expr, at);
        assert_eq!(r.len(), 1, "{expr}: {r:?}");
        r[0]["value"][1].as_str().unwrap().parse().unwrap()
    };
    assert_eq!(
        value(&substitute(
            panel(&d, "Normalised score vs threshold")["targets"][0]["expr"]
                .as_str()
                .unwrap(),
            "pump-1",
            "",
        )),
        last.score as f64
    );
    let table = &panel(&d, "Keys with the highest score now")["targets"];
    let last_anomaly_ms = prometheus
        .query_at(&substitute(table[1]["expr"].as_str().unwrap(), "", ""), at)
        .into_iter()
        .find(|s| s["metric"]["key"] == "pump-1")
        .map(|s| s["value"][1].as_str().unwrap().parse::<f64>().unwrap());
    assert_eq!(last_anomaly_ms, Some(last_anomaly.end_ts_ms as f64));
    let keys: BTreeSet<String> = prometheus
        .query_at(table[0]["expr"].as_str().unwrap(), at)
        .iter()
        .map(|s| s["metric"]["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["pump-1", "pump-2", "pump-3"].map(String::from))
    );
}

// ---------------------------------------------------------------------------
// docker compose

#[test]
fn compose_runs_prometheus_as_the_daemons_receiver_and_provisions_both_dashboards() {
    use yaml_rust2::YamlLoader;
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let doc = &YamlLoader::load_from_str(&text).unwrap()[0];
    let services = &doc["services"];
    let strings = |y: &yaml_rust2::Yaml| -> Vec<String> {
        y.as_vec()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert!(strings(&services["prometheus"]["command"])
        .contains(&"--web.enable-remote-write-receiver".to_string()));
    let url = services["lstm-ae"]["environment"]["LSTM_AE__REMOTE_WRITE__URL"]
        .as_str()
        .expect("the daemon's remote-write URL");
    let port = strings(&services["prometheus"]["ports"])[0]
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(url, format!("http://prometheus:{port}/api/v1/write"));
    let volumes = strings(&services["grafana"]["volumes"]);
    for file in ["lstm-ae.json", "lstm-ae-series.json"] {
        assert!(
            volumes
                .iter()
                .any(|v| v.starts_with(&format!("./deploy/grafana/{file}:"))
                    && v.contains(&format!(":/var/lib/grafana/dashboards/{file}"))),
            "{file} provisioned: {volumes:?}"
        );
        assert!(root().join("deploy/grafana").join(file).is_file());
    }
    // The daemon's settings in the compose file load, with remote write on.
    let s = lstm_ae::config::Settings::load_with_env(
        Some(&root().join("deploy/docker/serve.toml")),
        [("LSTM_AE__REMOTE_WRITE__URL".to_string(), url.to_string())],
    )
    .unwrap();
    assert!(s.remote_write.enabled());
    assert_eq!(s.remote_write.url, url);
}
