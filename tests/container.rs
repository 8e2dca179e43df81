//! The container image (Dockerfile) built and run here, and the other
//! container files checked: hadolint on the Dockerfile, the image's
//! configuration through the daemon's settings loader, the ONNX Runtime pin
//! shared with scripts/setup.sh, docker-compose.yml through docker-compose.
//!
//! The image test builds the image with the Dockerfile (local base image;
//! the binary is cargo's test build of this checkout, stripped, where the
//! Dockerfile takes the release binary: see `common::docker::build_image`), runs it with `--network host` (read-only,
//! no capabilities, as deploy/k8s runs it) against a tansu broker started
//! here, replays a series with a dip and two malformed messages through the
//! image's own `lstm-ae produce`, reads the embeddings, anomalies and dead
//! letters back, scrapes /metrics, waits for Docker's HEALTHCHECK to say
//! healthy, then `docker stop`s it and checks it drained: exit code 0 and the
//! group's committed offset exactly where the daemon's rule puts it.
//!
//! Needs `scripts/setup.sh --test` (Docker engine, base image tools, tansu,
//! hadolint). Where no Docker engine can run, the image test says so loudly
//! and does not run; the file checks run everywhere.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::broker::{free_port, Broker};
use common::docker::{build_image, docker, docker_output, engine, Container};
use common::tools::{root, venv_tool};
use lstm_ae::config::Settings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const T: usize = 64; // the default model's window
const ROWS: usize = 400;
const DIP: std::ops::Range<usize> = 300..310;

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn hadolint_passes_the_dockerfile() {
    let out = Command::new(venv_tool("hadolint"))
        .arg(root().join("Dockerfile"))
        .output()
        .expect("hadolint runs");
    assert!(
        out.status.success(),
        "hadolint Dockerfile:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_image_pins_the_onnx_runtime_of_setup_and_its_config_loads() {
    let pin = |text: &str, key: &str| -> String {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_else(|| panic!("{key} not found"))
    };
    let setup = read("scripts/setup.sh");
    let dockerfile = read("Dockerfile");
    assert_eq!(
        pin(&dockerfile, "ARG ORT_SHA256="),
        pin(&setup, "ORT_LIB_SHA256="),
        "the image checks ONNX Runtime against setup.sh's pin"
    );
    assert_eq!(
        pin(&dockerfile, "ARG ORT_VERSION="),
        pin(&setup, "ORT_VERSION=")
    );
    let s = Settings::load_with_env(
        Some(&root().join("deploy/docker/serve.toml")),
        std::iter::empty(),
    )
    .expect("deploy/docker/serve.toml is a valid daemon config");
    assert!(s.serve.metrics_listen.starts_with("0.0.0.0:"));
    assert!(dockerfile.contains(&format!("/rootfs{}/", s.serve.model)));
    assert!(dockerfile.contains(&format!("/rootfs{}", s.runtime.onnxruntime_library)));
    // The build context holds what the Dockerfile copies (and not target/).
    let ignore = read(".dockerignore");
    for needed in [
        "target/release/lstm-ae",
        "models/machine_temperature/model.onnx",
        "deploy/docker/serve.toml",
    ] {
        assert!(
            ignore.contains(&format!("!{needed}")),
            "{needed} in the context"
        );
    }
}

#[test]
fn docker_compose_accepts_the_compose_file() {
    let out = Command::new("docker-compose")
        .current_dir(root())
        .args(["-f", "docker-compose.yml", "config"])
        .output()
        .expect("docker-compose (scripts/setup.sh --test installs it) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for service in ["kafka:", "lstm-ae:", "replayer:", "prometheus:", "grafana:"] {
        assert!(text.contains(&format!("  {service}")), "service {service}");
    }
    // Its Prometheus configuration is one promtool accepts, with the rules.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("deploy/compose/prometheus.yml"),
        dir.path().join("prometheus.yml"),
    )
    .unwrap();
    std::fs::copy(
        root().join("deploy/prometheus/alerts.yml"),
        dir.path().join("alerts.yml"),
    )
    .unwrap();
    let out = Command::new("promtool")
        .args(["check", "config"])
        .arg(dir.path().join("prometheus.yml"))
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check config (compose): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first ROWS rows of NAB's machine_temperature, with rows DIP set to
/// 20 °C (the series runs at 70–100): windows over the dip are anomalous.
fn series_with_a_dip(path: &Path) -> Vec<String> {
    let nab = read("data/nab/realKnownCause/machine_temperature_system_failure.csv");
    let mut out = String::from("timestamp,value\n");
    let mut stamps = vec![];
    for (r, line) in nab.lines().skip(1).take(ROWS).enumerate() {
        let (ts, v) = line.split_once(',').unwrap();
        let v = if DIP.contains(&r) { "20.0" } else { v };
        out.push_str(&format!("{ts},{v}\n"));
        stamps.push(ts.to_string());
    }
    std::fs::write(path, out).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    stamps
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    common::procs::http_get(port, path).ok()
}

fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_image_scores_a_real_broker_stream_and_drains_on_docker_stop() {
    let version = match engine() {
        Ok(v) => v,
        Err(e) => {
            // CI runs scripts/setup.sh --test, which starts dockerd: a
            // missing engine there is a broken setup, not a reason to pass.
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "no Docker engine runs ({e}): scripts/setup.sh --test starts dockerd"
            );
            eprintln!(
                "\n==================================================================\n\
                 SKIPPED: the container image test needs a Docker engine and none\n\
                 runs here ({e}).\n\
                 scripts/setup.sh --test starts dockerd; where it cannot start\n\
                 (no privileges), the image is NOT built or run by the tests.\n\
                 ==================================================================\n"
            );
            return;
        }
    };
    let started = Instant::now();
    let built = build_image("lstm-ae:test");
    eprintln!(
        "docker {version}: image {} built in {:.1} s, {:.1} MB",
        built.tag,
        built.seconds,
        built.size_bytes as f64 / 1e6
    );
    assert!(
        built.size_bytes < 200_000_000,
        "the image is {} bytes: something big slipped in",
        built.size_bytes
    );

    let dir = common::broker::test_dir();
    let broker = Broker::with_daemon_topics(dir.path(), 1);
    // Two malformed messages first, then the series.
    broker.produce(
        "lstm-ae.points",
        &[
            ("bad".into(), b"not json".to_vec()),
            (
                "bad".into(),
                br#"{"key":"bad","ts":1,"values":[1.0,2.0]}"#.to_vec(),
            ),
        ],
    );
    let data = tempfile::tempdir().unwrap();
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let stamps = series_with_a_dip(&data.path().join("series.csv"));

    let mport = free_port();
    let name = format!("lstm-ae-test-{}", std::process::id());
    let brokers = format!("LSTM_AE__KAFKA__BROKERS={}", broker.brokers());
    let listen = format!("LSTM_AE__SERVE__METRICS_LISTEN=127.0.0.1:{mport}");
    let container = Container(name.clone());
    docker(&[
        "run",
        "-d",
        "--name",
        &name,
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--cap-drop",
        "ALL",
        "-e",
        &brokers,
        "-e",
        &listen,
        "-e",
        "LSTM_AE__KAFKA__COMMIT_INTERVAL_MS=200",
        // The container has a HOSTNAME, which would make it a static group
        // member; tansu 0.6 loops static members through rebalances (see
        // docs/daemon.md, *Restarts and static membership*), so the test
        // broker gets a dynamic member.
        "-e",
        "LSTM_AE__KAFKA__STATIC_MEMBERSHIP=false",
        &built.tag,
    ]);
    let logs = || {
        let o = docker_output(&["logs", &name]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let ready = Instant::now() + Duration::from_secs(60);
    while get(mport, "/readyz").map(|r| r.0) != Some(200) {
        assert!(
            Instant::now() < ready,
            "the container was not ready in 60 s:\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // The replayer, as docker-compose.yml runs it: the image's `produce`.
    let mount = format!("{}:/data:ro", data.path().display());
    let out = docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-v",
        &mount,
        &built.tag,
        "produce",
        "--brokers",
        &broker.brokers(),
        "--topic",
        "lstm-ae.points",
        "--key",
        "machine-7",
        "/data/series.csv",
    ]);
    assert!(out.contains(&format!("produced {ROWS} messages")), "{out}");

    let windows = ROWS - (T - 1);
    let metric = |series: &str| {
        get(mport, "/metrics")
            .map(|(_, body)| common::procs::metric(&body, series))
            .unwrap_or(0.0)
    };
    wait_for(120, "every window scored and acknowledged", || {
        metric("lstm_ae_windows_scored_total") as usize >= windows
            && metric("lstm_ae_outputs_produced_total{topic=\"lstm-ae.embeddings\"}") as usize
                >= windows
            && metric("lstm_ae_windows_in_flight") == 0.0
    });
    let (status, body) = get(mport, "/metrics").expect("scrape");
    assert_eq!(status, 200);
    let m = |s: &str| common::procs::metric(&body, s);
    assert_eq!(
        m("lstm_ae_messages_consumed_total{topic=\"lstm-ae.points\"}") as usize,
        ROWS + 2
    );
    assert_eq!(m("lstm_ae_windows_scored_total") as usize, windows);
    assert_eq!(
        m("lstm_ae_dead_letters_total{reason=\"invalid_json\"}"),
        1.0
    );
    assert_eq!(
        m("lstm_ae_dead_letters_total{reason=\"wrong_feature_count\"}"),
        1.0
    );
    assert!(body.contains("lstm_ae_model_info{"));

    // Docker's own HEALTHCHECK (`lstm-ae healthcheck` in the image).
    wait_for(60, "docker's health check to report healthy", || {
        docker(&["inspect", "-f", "{{.State.Health.Status}}", &name]) == "healthy"
    });
    let stats = docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.MemUsage}} cpu {{.CPUPerc}}",
        &name,
    ]);
    eprintln!("container after scoring {windows} windows: {stats}");

    // The outputs, read to the end of each topic.
    let idle = Duration::from_secs(3);
    let embeddings: BTreeSet<String> = broker
        .read_all("lstm-ae.embeddings", idle)
        .iter()
        .map(|r| {
            let v = r.json();
            assert_eq!(v["key"], "machine-7");
            assert_eq!(v["embedding"].as_array().map(Vec::len), Some(64));
            v["window_end_ts"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(embeddings.len(), windows, "one embedding per window");
    let ts = |r: usize| {
        lstm_ae::stream::records::format_ts_ms(lstm_ae::data::parse_timestamp(&stamps[r]).unwrap())
    };
    let (dip_first, dip_last) = (ts(DIP.start), ts(DIP.end - 1 + T - 1));
    // Incident records: every one names its first and latest anomalous
    // window's end; an incident over the dip overlaps its windows' ends.
    let incidents: Vec<(String, String)> = broker
        .read_all("lstm-ae.anomalies", idle)
        .iter()
        .map(|r| {
            let v = r.json();
            let end = |f: &str| v[f].as_str().unwrap_or_default().to_string();
            (end("first_window_end_ts"), end("last_window_end_ts"))
        })
        .collect();
    assert!(
        incidents
            .iter()
            .any(|(first, last)| *first <= dip_last && *last >= dip_first),
        "no incident over the dip ({dip_first} .. {dip_last}): {incidents:?}"
    );
    let mut dead: Vec<String> = broker
        .read_all("lstm-ae.dead-letters", idle)
        .iter()
        .map(|r| r.header("lstm_ae.error.kind").unwrap_or("").to_string())
        .collect();
    // Dead letters are produced concurrently (up to
    // serve.max_dead_letters_in_flight), so their order on the topic is
    // not the input order: compare them as a set with counts.
    dead.sort();
    assert_eq!(dead, ["invalid_json", "wrong_feature_count"]);

    // docker stop: SIGTERM, drain, commit, exit 0 (well within -t 30).
    let stop = Instant::now();
    docker(&["stop", "-t", "30", &name]);
    let stop_s = stop.elapsed().as_secs_f64();
    let code = docker(&["inspect", "-f", "{{.State.ExitCode}}", &name]);
    // Without the terminal colours tracing adds to its text lines.
    let mut log = String::new();
    let mut in_escape = false;
    for ch in logs().chars() {
        match (in_escape, ch) {
            (false, '\u{1b}') => in_escape = true,
            (true, 'm') => in_escape = false,
            (true, _) => {}
            (false, c) => log.push(c),
        }
    }
    assert_eq!(code, "0", "exit code after docker stop:\n{log}");
    assert!(
        log.contains("\"drained\":true"),
        "the daemon logged a full drain:\n{log}"
    );
    assert!(stop_s < 25.0, "docker stop took {stop_s:.1} s");

    // The group's committed offset: everything but the points still held in
    // the key's window buffer (T − 1 of them), which a restart replays.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.brokers())
        .set("group.id", "lstm-ae")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("lstm-ae.points", 0);
    let committed = c.committed_offsets(tpl, Duration::from_secs(10)).unwrap();
    let offset = committed
        .find_partition("lstm-ae.points", 0)
        .unwrap()
        .offset();
    let (_, end) = c
        .fetch_watermarks("lstm-ae.points", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(end as usize, ROWS + 2);
    assert_eq!(
        offset,
        Offset::Offset(end - (T as i64 - 1)),
        "committed offset after the drain"
    );
    drop(container);
    eprintln!(
        "container test: {:.1} s in all (image build {:.1} s, docker stop {:.1} s)",
        started.elapsed().as_secs_f64(),
        built.seconds,
        stop_s
    );
}
