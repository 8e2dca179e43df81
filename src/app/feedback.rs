//! `lstm-ae feedback add | list | delete`: an operator's marks, on
//! `kafka.feedback_topic` or in a file (`--file`, one JSON object per line).
//!
//! In a file, a later line with a mark's id replaces an earlier one, as a
//! later record does on the topic; `delete` rewrites the file without the
//! id's lines (atomically: a temporary file renamed over it).

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::cli::{FeedbackAddArgs, FeedbackCommand, FeedbackTarget};
use crate::config::Settings;
use crate::data::time::{format_timestamp, parse_instant, parse_rfc3339};
use crate::feedback::{parse_lines, read_record, Applied, Change, Mark, Marks, Verdict};
use crate::kafka::feedback::{publish, read_all};

const TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(cmd: FeedbackCommand) -> Result<()> {
    match cmd {
        FeedbackCommand::Add(a) => add(a),
        FeedbackCommand::List { target, json } => {
            let marks = load(&target)?;
            for m in marks.iter_sorted() {
                if json {
                    println!("{}", m.to_json());
                } else {
                    println!("{}", describe(m));
                }
            }
            if !json {
                eprintln!("{} marks", marks.len());
            }
            Ok(())
        }
        FeedbackCommand::Delete { id, target } => delete(&id, &target),
    }
}

/// Where `target` says the marks are: a file, or the settings' topic.
enum Store {
    File(std::path::PathBuf, usize),
    Topic(Box<Settings>),
}

fn store(t: &FeedbackTarget) -> Result<Store> {
    let s = Settings::load(t.config.as_deref())?;
    if let Some(f) = &t.file {
        return Ok(Store::File(f.clone(), s.feedback.max_marks));
    }
    if s.kafka.feedback_topic.is_empty() {
        bail!("no place for marks: pass --file FILE, or set kafka.feedback_topic (--config, or LSTM_AE__KAFKA__FEEDBACK_TOPIC)");
    }
    Ok(Store::Topic(Box::new(s)))
}

fn load(t: &FeedbackTarget) -> Result<Marks> {
    match store(t)? {
        Store::File(path, max) => read_file(&path, max),
        Store::Topic(s) => read_topic(&s),
    }
}

/// The marks `retrain` and `recalibrate` act on: from `file` when given,
/// else from `kafka.feedback_topic` when set, else none.
pub fn marks_for(settings: &Settings, file: Option<&Path>) -> Result<Option<Marks>> {
    let max = settings.feedback.max_marks;
    match file {
        Some(f) => read_file(f, max).map(Some),
        None if !settings.kafka.feedback_topic.is_empty() => read_topic(settings).map(Some),
        None => Ok(None),
    }
}

/// A file of marks' text; a file not there yet holds none.
fn read_text(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn parse_file(path: &Path, text: &str, max: usize) -> Result<Marks> {
    parse_lines(text, max).map_err(|(line, e)| anyhow::anyhow!("{}:{line}: {e}", path.display()))
}

fn read_file(path: &Path, max: usize) -> Result<Marks> {
    parse_file(path, &read_text(path)?, max)
}

/// The topic's marks. A record that is not a valid mark is skipped with a
/// warning naming its offset: one bad record must not hide the others.
fn read_topic(s: &Settings) -> Result<Marks> {
    let topic = &s.kafka.feedback_topic;
    let records = read_all(&s.kafka, topic, TIMEOUT)
        .with_context(|| format!("reading the feedback topic {topic:?}"))?;
    let mut marks = Marks::new(s.feedback.max_marks);
    for r in records {
        match read_record(r.key.as_deref(), r.value.as_deref()) {
            Ok(change) => {
                if marks.apply(change) == Applied::Full {
                    tracing::warn!(
                        partition = r.partition,
                        offset = r.offset,
                        max_marks = s.feedback.max_marks,
                        "feedback.max_marks reached: mark not kept"
                    );
                }
            }
            Err(e) => tracing::warn!(
                partition = r.partition,
                offset = r.offset,
                error = %e,
                "not a valid mark: skipped"
            ),
        }
    }
    Ok(marks)
}

fn add(a: FeedbackAddArgs) -> Result<()> {
    let verdict = Verdict::parse(&a.verdict).context("--verdict")?;
    let anomaly = match a.from_anomaly.as_deref() {
        Some(text) => Some(anomaly_range(text)?),
        None => None,
    };
    let now = chrono::Utc::now().timestamp_millis();
    let key = a
        .key
        .clone()
        .or_else(|| anomaly.as_ref().map(|r| r.0.clone()))
        .context("--key is required (or --from-anomaly)")?;
    let instant = |flag: &str, v: &Option<String>, from_anomaly: Option<i64>| -> Result<i64> {
        match v {
            Some(s) => parse_instant(s, now).with_context(|| format!("--{flag}")),
            None => {
                from_anomaly.with_context(|| format!("--{flag} is required (or --from-anomaly)"))
            }
        }
    };
    let from_ms = instant("from", &a.from, anomaly.as_ref().map(|r| r.1))?;
    let to_ms = instant("to", &a.to, anomaly.as_ref().map(|r| r.2))?;
    // One mark per incident: marking its open record and later its close
    // record replaces the first mark with the whole incident's range.
    let incident = anomaly.as_ref().map(|r| r.3.clone());
    let id = match (a.id.clone(), incident) {
        (Some(id), _) => id,
        (None, Some(incident)) => format!("{}-{incident}", verdict.as_str()),
        (None, None) => default_id(verdict, &key, from_ms, to_ms),
    };
    let author = a.author.clone().or_else(|| std::env::var("USER").ok());
    let mark = Mark::new(
        &id,
        &key,
        from_ms,
        to_ms,
        verdict,
        a.comment.clone(),
        author,
        Some(now),
    )?;
    let json = mark.to_json();
    match store(&a.target)? {
        Store::File(path, max) => {
            let mut marks = read_file(&path, max)?;
            if marks.apply(Change::Put(mark.clone())) == Applied::Full {
                bail!(
                    "{} holds feedback.max_marks = {max} marks already",
                    path.display()
                );
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            writeln!(f, "{json}").with_context(|| format!("writing {}", path.display()))?;
            f.sync_all()?;
        }
        Store::Topic(s) => publish(&s.kafka, &s.kafka.feedback_topic, &id, Some(&json), TIMEOUT)
            .with_context(|| format!("writing to {:?}", s.kafka.feedback_topic))?,
    }
    println!("{}", describe(&mark));
    Ok(())
}

fn delete(id: &str, t: &FeedbackTarget) -> Result<()> {
    match store(t)? {
        Store::File(path, max) => {
            let text = read_text(&path)?;
            if parse_file(&path, &text, max)?.get(id).is_none() {
                bail!(
                    "{} has no mark {id:?} (lstm-ae feedback list --file {} shows them)",
                    path.display(),
                    path.display()
                );
            }
            let kept: String = text
                .lines()
                .filter(|l| Mark::from_json(l.trim().as_bytes()).map_or(true, |m| m.id != id))
                .map(|l| format!("{l}\n"))
                .collect();
            // A random name made with create_new, not the process id: that
            // is 1 in every container, and two deletes must not share it.
            let tmp = path.with_extension(format!("tmp-{:016x}", rand::random::<u64>()));
            {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&tmp)
                    .with_context(|| format!("writing {}", tmp.display()))?;
                f.write_all(kept.as_bytes())?;
                f.sync_all()?;
            }
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("replacing {}", path.display()))?;
        }
        Store::Topic(s) => {
            if read_topic(&s)?.get(id).is_none() {
                bail!(
                    "topic {:?} has no mark {id:?} (lstm-ae feedback list shows them)",
                    s.kafka.feedback_topic
                );
            }
            publish(&s.kafka, &s.kafka.feedback_topic, id, None, TIMEOUT)
                .with_context(|| format!("writing to {:?}", s.kafka.feedback_topic))?;
        }
    }
    println!("deleted {id}");
    Ok(())
}

/// The series key marks name: a Kafka key as the daemon saw it, or a
/// CSV's file name without extension (what `produce` sends as the key).
pub fn series_key(path: &Path) -> String {
    match path.to_str().and_then(|p| p.strip_prefix("kafka:")) {
        Some(key) => key.to_string(),
        None => super::pipeline::file_stem(path),
    }
}

/// Whether a window of series `key` whose rows run from `first_ms` to
/// `last_ms` (both included) overlaps a mark of one of `verdicts`.
pub fn marked(marks: &Marks, key: &str, first_ms: i64, last_ms: i64, verdicts: &[Verdict]) -> bool {
    let to = last_ms.saturating_add(1);
    verdicts
        .iter()
        .any(|&v| marks.overlapping(key, first_ms, to, v).is_some())
}

/// A stable id: the same verdict, key and range give the same id, so
/// adding a mark twice keeps it once.
fn default_id(verdict: Verdict, key: &str, from_ms: i64, to_ms: i64) -> String {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(from_ms.to_be_bytes());
    h.update(to_ms.to_be_bytes());
    let digest = h.finalize();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", verdict.as_str())
}

/// (key, from, to, incident id) of a record of the anomalies topic: the
/// incident so far (from its first window's first row to its latest
/// window's last row, included), as a half-open range.
fn anomaly_range(text: &str) -> Result<(String, i64, i64, String)> {
    let mut buf = String::new();
    let text = if text == "-" {
        std::io::stdin()
            .read_to_string(&mut buf)
            .context("reading the anomaly record from stdin")?;
        buf.as_str()
    } else {
        text
    };
    let v: serde_json::Value =
        serde_json::from_str(text.trim()).context("--from-anomaly: not a JSON record")?;
    let field = |name: &str| -> Result<&str> {
        v[name]
            .as_str()
            .with_context(|| format!("--from-anomaly: the record has no text field {name:?}"))
    };
    let ts = |name: &str| -> Result<i64> {
        let s = field(name)?;
        parse_rfc3339(s)
            .with_context(|| format!("--from-anomaly: {name} {s:?} is not an RFC 3339 time"))
    };
    let key = field("key")?.to_string();
    let from = ts("first_window_start_ts")?;
    let end = ts("last_window_end_ts")?;
    let incident = field("incident_id")?.to_string();
    Ok((key, from, end.saturating_add(1), incident))
}

fn describe(m: &Mark) -> String {
    let mut s = format!(
        "{}  {}  {}  {} .. {}",
        m.id,
        m.verdict.as_str(),
        m.key,
        format_timestamp(m.from_ms),
        format_timestamp(m.to_ms)
    );
    if let Some(a) = &m.author {
        s.push_str(&format!("  by {a}"));
    }
    if let Some(c) = &m.comment {
        s.push_str(&format!("  \"{c}\""));
    }
    s
}
