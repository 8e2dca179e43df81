//! The README's tour runs as written. Its commands are taken from the
//! fenced `sh` blocks of README.md's section "A tour on your own CSV" (not
//! from a copy here), run in order with the binary cargo built for this test
//! in place of `lstm-ae`, in a temporary folder holding a copy of the files
//! they name, and each must exit 0 and leave what the README says it does: a
//! bundle, a scores file with charts, a readable manifest, a daemon that
//! publishes one embedding per window and the anomalies `score` found, a
//! model store with a retrained version.
//!
//! Skipped, and why:
//! - the Quick start's `scripts/demo.sh` and `scripts/test.sh`: CI runs
//!   `scripts/test.sh` (this test among the rest), and the demo is the
//!   whole product on a fresh machine, measured separately;
//! - the tour's build line (`scripts/setup.sh && cargo build --release`):
//!   cargo built the binary under test.
//!
//! Any other command block in the README fails this test, so every command
//! a reader is shown is either run here or named above.
//!
//! `serve` needs a broker: a tansu process (as the other broker tests use)
//! with the daemon's default topics; the daemon is pointed at it through
//! `LSTM_AE__…` variables, as a reader would, runs in the background until
//! `/readyz` says ready, sees the next commands' input and is stopped with
//! SIGTERM, which must end it with exit code 0. Needs the tansu binary that
//! `scripts/setup.sh --test` installs.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::broker::{free_port, procs_http_ready, test_dir, Broker, TopicReader};
use common::text;

const TOUR: &str = "## A tour on your own CSV";
const QUICK_START: &str = "## Quick start";
const BUILD_LINE: &str = "scripts/setup.sh && cargo build --release";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// (section heading, fenced `sh` block) for every `sh` block of the README.
fn sh_blocks(readme: &str) -> Vec<(String, String)> {
    enum In {
        Text,
        Sh(String),
        OtherBlock,
    }
    let mut out = vec![];
    let mut section = String::new();
    let mut state = In::Text;
    for line in readme.lines() {
        let fence = line.trim_start().starts_with("```");
        state = match state {
            In::Sh(b) if fence => {
                out.push((section.clone(), b));
                In::Text
            }
            In::Sh(mut b) => {
                b.push_str(line);
                b.push('\n');
                In::Sh(b)
            }
            In::OtherBlock if fence => In::Text,
            In::OtherBlock => In::OtherBlock,
            In::Text if fence => {
                let info = line.trim_start().trim_start_matches('`').trim();
                if matches!(info, "sh" | "bash" | "shell" | "console") {
                    In::Sh(String::new())
                } else {
                    In::OtherBlock
                }
            }
            In::Text => {
                if line.starts_with("## ") {
                    section = line.to_string();
                }
                In::Text
            }
        };
    }
    out
}

/// The commands of a block: continuation lines joined, comments and blank
/// lines dropped.
fn commands(block: &str) -> Vec<String> {
    let mut out = vec![];
    let mut current = String::new();
    for line in block.lines() {
        let line = line.split(" #").next().unwrap_or_default();
        let line = if line.trim_start().starts_with('#') {
            ""
        } else {
            line
        };
        if let Some(part) = line.trim_end().strip_suffix('\\') {
            current.push_str(part.trim());
            current.push(' ');
            continue;
        }
        current.push_str(line.trim());
        if !current.trim().is_empty() {
            out.push(current.trim().to_string());
        }
        current.clear();
    }
    out
}

/// The tour's commands, in order; checks that every other `sh` block is one
/// this test skips on purpose (see the module docs).
fn tour() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let fences = readme
        .lines()
        .filter(|l| l.trim_start().starts_with("```"))
        .count();
    assert_eq!(fences % 2, 0, "README.md has an unclosed code block");
    let mut tour = vec![];
    for (section, block) in sh_blocks(&readme) {
        for cmd in commands(&block) {
            if section == QUICK_START {
                assert!(
                    cmd.starts_with("scripts/demo.sh") || cmd.starts_with("scripts/test.sh"),
                    "a Quick start command this test neither runs nor skips: {cmd}"
                );
            } else if section == TOUR {
                if cmd == BUILD_LINE {
                    continue;
                }
                assert!(
                    cmd.starts_with("lstm-ae "),
                    "a tour command this test cannot run: {cmd}"
                );
                assert!(
                    !cmd.contains(['\'', '"', '$', '|', ';', '&', '<', '>', '*', '`']),
                    "the test splits commands on spaces; keep the tour's commands plain: {cmd}"
                );
                tour.push(cmd.split_whitespace().map(str::to_string).collect());
            } else {
                panic!("a command block outside the Quick start and the tour ({section}): {cmd}");
            }
        }
    }
    tour
}

#[test]
fn the_readme_parser_finds_the_blocks_and_joins_continued_lines() {
    let md = "## Quick start\n\n```sh\nscripts/demo.sh   # run it\n```\n\n## A tour on your own CSV\n\n\
              ```\nnot sh: lstm-ae nothing\n```\n\n```sh\n# a comment\nlstm-ae score --model m \\\n  f.csv --out o.csv\n\nlstm-ae inspect m\n```\n";
    let blocks = sh_blocks(md);
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    assert_eq!(commands(&blocks[0].1), vec!["scripts/demo.sh"]);
    assert_eq!(blocks[1].0, TOUR);
    assert_eq!(
        commands(&blocks[1].1),
        vec![
            "lstm-ae score --model m f.csv --out o.csv",
            "lstm-ae inspect m"
        ]
    );
}

/// The value after `flag` in a command.
fn arg<'a>(cmd: &'a [String], flag: &str) -> Option<&'a str> {
    cmd.iter()
        .position(|a| a == flag)
        .and_then(|i| cmd.get(i + 1))
        .map(String::as_str)
}

/// The arguments that are not flags or flag values (after the subcommand).
fn positionals(cmd: &[String], skip: usize) -> Vec<&str> {
    let mut out = vec![];
    let mut i = skip;
    while i < cmd.len() {
        let a = &cmd[i];
        if a.starts_with("--") {
            // Boolean flags of the tour's commands take no value.
            if !matches!(
                a.as_str(),
                "--warm-start" | "--quiet" | "--json" | "--force"
            ) {
                i += 1;
            }
        } else {
            out.push(a.as_str());
        }
        i += 1;
    }
    out
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (timestamp, value) rows of a NAB-style CSV, parsed here.
fn csv_rows(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect()
}

fn epoch_ms(ts: &str) -> i64 {
    lstm_ae::data::parse_timestamp(ts).unwrap_or_else(|| panic!("not a timestamp: {ts}"))
}

/// A running `lstm-ae serve` of the tour, and what it serves.
struct Served {
    child: Child,
    port: u16,
    bundle: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the tour has left so far, for the later commands' checks.
#[derive(Default)]
struct State {
    /// The scores file and the data it scored.
    scored: Option<(PathBuf, PathBuf)>,
}

#[test]
fn the_tour_runs_as_written() {
    let tour = tour();
    let names: Vec<&str> = tour.iter().map(|c| c[1].as_str()).collect();
    for step in ["train", "score", "inspect", "serve", "produce", "retrain"] {
        assert!(
            names.contains(&step),
            "the tour has no `lstm-ae {step}`: {names:?}"
        );
    }

    let dir = test_dir();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // A copy of every file the commands name, at the same relative path.
    for cmd in &tour {
        for a in cmd {
            let src = root().join(a);
            if !a.starts_with('-') && src.is_file() {
                let dst = work.join(a);
                std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
                std::fs::copy(&src, &dst).unwrap();
            }
        }
    }
    let broker = Broker::with_daemon_topics(dir.path(), 1);
    let bin = env!("CARGO_BIN_EXE_lstm-ae");
    let run = |cmd: &[String]| {
        let out = Command::new(bin)
            .args(&cmd[1..])
            .current_dir(&work)
            .env("LSTM_AE__KAFKA__BROKERS", broker.brokers())
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "`{}` exited {:?}: {}",
            cmd.join(" "),
            out.status.code(),
            text(&out.stderr)
        );
        text(&out.stdout)
    };

    let mut served: Option<Served> = None;
    let mut state = State::default();
    for cmd in &tour {
        let what = cmd.join(" ");
        eprintln!("tour: {what}");
        if cmd[1] != "produce" {
            if let Some(s) = served.take() {
                stop(s);
            }
        }
        match cmd[1].as_str() {
            "train" => {
                run(cmd);
                let out = work.join(arg(cmd, "--out").expect("train --out"));
                let data = work.join(arg(cmd, "--data").expect("train --data"));
                for f in ["model.onnx", "manifest.json", "report/loss.svg"] {
                    let p = out.join(f);
                    assert!(
                        p.metadata().is_ok_and(|m| m.len() > 0),
                        "{what}: no {}",
                        p.display()
                    );
                }
                let m = json(&out.join("manifest.json"));
                let header = std::fs::read_to_string(&data).unwrap();
                let features: Vec<&str> =
                    header.lines().next().unwrap().split(',').skip(1).collect();
                assert_eq!(m["feature_names"], serde_json::json!(features), "{what}");
                if let Some(rows) = arg(cmd, "--rows") {
                    let rows: usize = rows.parse().unwrap();
                    assert_eq!(
                        m["training_data"]["rows"], rows,
                        "{what}: trained on --rows rows"
                    );
                }
            }
            "score" => {
                let stdout = run(cmd);
                let model = work.join(arg(cmd, "--model").expect("score --model"));
                let data = work.join(arg(cmd, "--data").expect("score --data"));
                let out = work.join(arg(cmd, "--out").expect("the tour names its scores file"));
                let window = json(&model.join("manifest.json"))["spec"]["window"]
                    .as_u64()
                    .unwrap() as usize;
                let text = std::fs::read_to_string(&out).unwrap();
                let mut lines = text.lines();
                let header = lines.next().unwrap();
                assert!(
                    header.ends_with(
                        ",score,normalized_score,anomaly_likelihood,is_anomaly,filled,peak_row_ts"
                    ),
                    "{what}: header {header}"
                );
                let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
                let input = csv_rows(&data);
                assert_eq!(rows.len(), input.len(), "{what}: one line per input row");
                let score_col = header.split(',').position(|c| c == "score").unwrap();
                for (r, row) in rows.iter().enumerate() {
                    assert_eq!(
                        row[score_col].is_empty(),
                        r + 1 < window,
                        "{what}: row {r}: a score exactly from the first full window on"
                    );
                }
                let flag_col = header.split(',').position(|c| c == "is_anomaly").unwrap();
                let anomalous = rows.iter().filter(|r| r[flag_col] == "true").count();
                assert!(
                    anomalous > 0,
                    "{what}: the tour's series has an anomaly to find"
                );
                for chart in [out.with_extension("svg"), out.with_extension("score.svg")] {
                    let svg = std::fs::read_to_string(&chart).unwrap_or_default();
                    assert!(svg.contains("<svg"), "{what}: no chart {}", chart.display());
                }
                if arg(cmd, "--labels").is_some() {
                    let line = stdout
                        .lines()
                        .find(|l| l.starts_with("labelled windows detected:"))
                        .unwrap_or_else(|| panic!("{what}: no labelled windows line in {stdout}"));
                    assert!(
                        !line.starts_with("labelled windows detected: 0 "),
                        "{what}: the tour's model misses the labelled anomaly: {line}"
                    );
                }
                state.scored = Some((out, data));
            }
            "inspect" => {
                let stdout = run(cmd);
                let bundle = work.join(positionals(cmd, 2)[0]);
                let m = json(&bundle.join("manifest.json"));
                let id = m["model_id"].as_str().unwrap();
                assert!(stdout.contains(id), "{what}: the model id {id} in {stdout}");
                assert!(
                    stdout.contains("threshold"),
                    "{what}: the threshold in {stdout}"
                );
            }
            "serve" => served = Some(start(cmd, &work, &broker)),
            "produce" => {
                let stdout = run(cmd);
                let data = work.join(positionals(cmd, 2)[0]);
                let rows = csv_rows(&data);
                assert!(
                    stdout.starts_with(&format!("produced {} messages", rows.len())),
                    "{what}: {stdout}"
                );
                if let Some(s) = &served {
                    check_served(s, &broker, &data, state.scored.as_ref());
                }
            }
            "models" => {
                assert_eq!(
                    cmd[2], "import",
                    "{what}: a models command this test does not check"
                );
                let (store, bundle) = (work.join(&cmd[3]), work.join(&cmd[4]));
                let before = store.join("current").exists().then(|| current(&store));
                run(cmd);
                let v = current(&store);
                assert_eq!(
                    v,
                    before.map_or(1, |b| b + 1),
                    "{what}: the next version, live"
                );
                let imported = json(&store.join(v.to_string()).join("manifest.json"));
                let original = json(&bundle.join("manifest.json"));
                assert_eq!(imported["model_version"], v, "{what}: renumbered");
                for field in ["spec", "feature_names", "threshold", "scaler"] {
                    assert_eq!(imported[field], original[field], "{what}: {field}");
                }
            }
            "retrain" => {
                let store = work.join(arg(cmd, "--store").expect("retrain --store"));
                let before = store.join("current").exists().then(|| current(&store));
                let stdout = run(cmd);
                let after = current(&store);
                assert!(stdout.starts_with("retrain: "), "{what}: {stdout}");
                assert!(stdout.contains(" promoted"), "{what}: {stdout}");
                assert_eq!(Some(after), before.map(|b| b + 1).or(Some(1)), "{what}");
                let lineage =
                    json(&store.join(after.to_string()).join("manifest.json"))["lineage"].clone();
                assert_eq!(
                    lineage["parent_version"],
                    serde_json::json!(before),
                    "{what}"
                );
                assert_eq!(
                    lineage["warm_start"],
                    cmd.iter().any(|a| a == "--warm-start") && before.is_some(),
                    "{what}"
                );
                if before.is_some() {
                    assert_eq!(lineage["gate"]["passed"], true, "{what}: gated");
                }
            }
            other => {
                panic!("the test does not know what `lstm-ae {other}` should leave: add a check")
            }
        }
    }
    if let Some(s) = served.take() {
        stop(s);
    }
}

/// The live version of a store.
fn current(store: &Path) -> i64 {
    std::fs::read_to_string(store.join("current"))
        .unwrap_or_else(|e| panic!("{}: {e}", store.display()))
        .trim()
        .parse()
        .unwrap()
}

/// Starts the tour's `serve` command in the background against `broker`
/// and waits until it is ready (model loaded, partitions assigned).
fn start(cmd: &[String], work: &Path, broker: &Broker) -> Served {
    let port = free_port();
    let bundle = work.join(arg(cmd, "--model").expect("the tour serves a --model"));
    let child = Command::new(env!("CARGO_BIN_EXE_lstm-ae"))
        .args(&cmd[1..])
        .current_dir(work)
        .env("LSTM_AE__KAFKA__BROKERS", broker.brokers())
        .env(
            "LSTM_AE__SERVE__METRICS_LISTEN",
            format!("127.0.0.1:{port}"),
        )
        // Dynamic membership: never a static id from the CI host's name.
        .env("LSTM_AE__KAFKA__STATIC_MEMBERSHIP", "false")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut served = Served {
        child,
        port,
        bundle,
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    while procs_http_ready(port) != Some(200) {
        if let Ok(Some(status)) = served.child.try_wait() {
            panic!("serve exited before it was ready: {status}");
        }
        assert!(Instant::now() < deadline, "serve not ready after 90 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    served
}

/// A gauge or counter of the daemon's /metrics, if it answers.
fn procs_metric(port: u16, series: &str) -> Option<f64> {
    let (status, body) = common::procs::http_get(port, "/metrics").ok()?;
    (status == 200).then(|| common::procs::metric(&body, series))
}

/// SIGTERM: the daemon drains, commits and exits 0.
fn stop(mut s: Served) {
    let st = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert!(status.success(), "serve after SIGTERM: {status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "serve still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The daemon's output for the replayed file: one embedding per window (the
/// count from the file's rows and the model's window length) under the
/// file's name as key, and on the anomalies topic exactly the incidents of
/// the windows `score` flagged: an open per incident, a close per incident
/// followed by `anomalies.close_after` normal windows before the file's
/// end, nothing else (a window within rounding of the threshold may go
/// either way, and move an incident's edge next to it).
fn check_served(s: &Served, broker: &Broker, data: &Path, scored: Option<&(PathBuf, PathBuf)>) {
    let rows = csv_rows(data);
    let window = json(&s.bundle.join("manifest.json"))["spec"]["window"]
        .as_u64()
        .unwrap() as usize;
    let key = data.file_stem().unwrap().to_string_lossy().into_owned();
    let expected: BTreeSet<i64> = rows[window - 1..].iter().map(|t| epoch_ms(t)).collect();

    let mut embeddings = TopicReader::new(&broker.brokers(), "lstm-ae.embeddings");
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while seen.len() < expected.len() {
        assert!(
            Instant::now() < deadline,
            "{} of {} windows published after 180 s",
            seen.len(),
            expected.len()
        );
        embeddings.poll_for(Duration::from_millis(500), |r| {
            let v = r.json();
            assert_eq!(v["key"], key.as_str());
            assert_eq!(r.key.as_deref(), Some(key.as_str()));
            seen.insert(epoch_ms(v["window_end_ts"].as_str().unwrap()));
        });
    }
    assert_eq!(seen, expected, "one embedding per window, each window once");
    // Every output of those windows acknowledged, anomalies included.
    let deadline = Instant::now() + Duration::from_secs(60);
    while procs_metric(s.port, "lstm_ae_windows_in_flight") != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "windows still in flight after 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let Some((scores, scored_data)) = scored else {
        return;
    };
    if scored_data != data {
        return;
    }
    let text = std::fs::read_to_string(scores).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let (norm, flag) = (col("normalized_score"), col("is_anomaly"));
    // Scored windows in order: (end time, flagged, borderline).
    let mut windows: Vec<(i64, bool, bool)> = vec![];
    for l in lines {
        let f: Vec<&str> = l.split(',').collect();
        if f[norm].is_empty() {
            continue;
        }
        let borderline = (f[norm].parse::<f64>().unwrap() - 1.0).abs() < 1e-3;
        windows.push((epoch_ms(f[0]), f[flag] == "true", borderline));
    }
    // The incidents of the flagged windows under the default
    // `anomalies.close_after`, grouped here from the flags alone.
    let close_after = lstm_ae::config::CLOSE_AFTER;
    let mut opens = BTreeSet::new();
    let mut closes = BTreeSet::new();
    let mut open: Option<(i64, i64, usize)> = None; // first, last, normal run
    for &(t, flagged, _) in &windows {
        open = match (open, flagged) {
            (None, true) => {
                opens.insert(t);
                Some((t, t, 0))
            }
            (Some((first, _, _)), true) => Some((first, t, 0)),
            (Some((first, last, n)), false) if n + 1 >= close_after => {
                closes.insert((first, last));
                None
            }
            (Some((first, last, n)), false) => Some((first, last, n + 1)),
            (None, false) => None,
        };
    }
    let mut anomalies = TopicReader::new(&broker.brokers(), "lstm-ae.anomalies");
    let mut published_opens = BTreeSet::new();
    let mut published_closes = BTreeSet::new();
    let mut records = 0;
    anomalies.read_to_end(Duration::from_secs(60), |r| {
        records += 1;
        let v = r.json();
        let first = epoch_ms(v["first_window_end_ts"].as_str().unwrap());
        match v["state"].as_str().unwrap() {
            "open" => {
                published_opens.insert(first);
            }
            "close" => {
                let last = epoch_ms(v["last_window_end_ts"].as_str().unwrap());
                published_closes.insert((first, last));
            }
            other => panic!("a {other} record with anomalies.update_every = 0: {v}"),
        }
    });
    // An edge that differs must sit within close_after windows of a
    // borderline one.
    let near_borderline = |t: i64| {
        let i = windows.partition_point(|w| w.0 < t);
        let (a, b) = (
            i.saturating_sub(close_after + 1),
            (i + close_after + 2).min(windows.len()),
        );
        windows[a..b].iter().any(|w| w.2)
    };
    let differ: Vec<String> = opens
        .symmetric_difference(&published_opens)
        .copied()
        .chain(
            closes
                .symmetric_difference(&published_closes)
                .flat_map(|&(a, b)| [a, b]),
        )
        .filter(|&t| !near_borderline(t))
        .map(lstm_ae::data::format_timestamp)
        .collect();
    assert!(
        differ.is_empty(),
        "incidents published by serve and grouped from score's flags differ at {} edges, first {:?} ({} opened, {} closed published; {} and {} from score)",
        differ.len(),
        &differ[..differ.len().min(5)],
        published_opens.len(),
        published_closes.len(),
        opens.len(),
        closes.len()
    );
    assert_eq!(
        records,
        published_opens.len() + published_closes.len(),
        "one open and at most one close per incident, nothing else"
    );
    assert!(
        published_closes
            .iter()
            .all(|(first, _)| published_opens.contains(first)),
        "every close follows its open"
    );
    assert!(
        !published_opens.is_empty(),
        "the replayed series has anomalies"
    );
}
