//! Operator feedback: marks that tell the detector it was wrong, or keep
//! known events out of it.
//!
//! A **mark** says that, for the series whose key matches `key` (a key, or
//! a glob with `*` and `?`), event time `[from, to)` was one of:
//!
//! - `false_positive`: normal, whatever the model said; retraining keeps
//!   these windows even when the live model flags them;
//! - `incident`: a real anomaly; retraining leaves these windows out, so
//!   the next model does not learn the incident as normal;
//! - `maintenance`: planned work; its anomalies are not published, and
//!   retraining leaves its windows out.
//!
//! Marks travel as one JSON object each, keyed by `id` (on a compacted
//! Kafka topic, or one per line in a file); a later mark with the same `id`
//! replaces the earlier one, and a tombstone (a record with the `id` as key
//! and no value) deletes it. A record is validated whole before it changes
//! anything: a bad record is refused with a reason and leaves the set as it
//! was.
//!
//! [`Marks`] is the bounded set a reader keeps: at most `max_marks` marks,
//! each at most [`MAX_RECORD_BYTES`] as JSON and [`MAX_BYTES_PER_MARK`] in
//! memory with its share of the indexes (a glob key is compiled to one
//! token per byte, which makes the largest marks larger in memory than as
//! JSON).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::data::time::{epoch_integer_ms, format_timestamp, parse_rfc3339};

/// `[feedback]`: the reader's bound and the threshold raise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedbackSettings {
    /// Marks kept at most; a mark beyond is refused and counted. Memory:
    /// at most `max_marks` × [`MAX_BYTES_PER_MARK`].
    pub max_marks: usize,
    /// How long the daemon's start may take to read the whole feedback
    /// topic; past it the daemon does not start.
    pub start_timeout_ms: u64,
    /// False-positive marks of a key, created within `raise_period_ms`
    /// before now, that raise its threshold; 0 turns the raise off.
    pub raise_after: usize,
    /// How far back a false-positive mark's `created` counts for the raise.
    pub raise_period_ms: u64,
    /// What a raised key's threshold (or likelihood threshold) is
    /// multiplied by; above 1.
    pub raise_factor: f64,
}

impl Default for FeedbackSettings {
    fn default() -> Self {
        FeedbackSettings {
            max_marks: 10_000,
            start_timeout_ms: 30_000,
            raise_after: 0,
            raise_period_ms: 7 * 24 * 3600 * 1000,
            raise_factor: 1.5,
        }
    }
}

/// The largest mark record accepted, as JSON bytes.
pub const MAX_RECORD_BYTES: usize = 4096;
/// The most memory one mark of a [`Marks`] set takes, indexes included
/// (tests/feedback_daemon.rs measures it; docs/feedback.md, *The daemon*).
pub const MAX_BYTES_PER_MARK: usize = 16 * 1024;
/// The longest `id`, in bytes.
pub const MAX_ID_BYTES: usize = 128;
/// The longest `key` (or glob), in bytes: the longest series key the
/// daemon accepts.
pub const MAX_KEY_BYTES: usize = crate::stream::codec::MAX_KEY_BYTES;
/// The longest `author`, in bytes.
pub const MAX_AUTHOR_BYTES: usize = 128;
/// The longest `comment`, in bytes.
pub const MAX_COMMENT_BYTES: usize = 1024;

/// What the operator says about a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    FalsePositive,
    Incident,
    Maintenance,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [
        Verdict::FalsePositive,
        Verdict::Incident,
        Verdict::Maintenance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::FalsePositive => "false_positive",
            Verdict::Incident => "incident",
            Verdict::Maintenance => "maintenance",
        }
    }

    pub fn parse(s: &str) -> Option<Verdict> {
        Verdict::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One validated mark.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub id: String,
    /// A series key, or a glob over keys.
    pub key: String,
    /// Event time, epoch ms: the mark covers `from <= t < to`.
    pub from_ms: i64,
    pub to_ms: i64,
    pub verdict: Verdict,
    pub comment: Option<String>,
    pub author: Option<String>,
    /// When the mark was made, epoch ms.
    pub created_ms: Option<i64>,
    matcher: KeyMatcher,
}

#[derive(Debug, Clone, PartialEq)]
enum KeyMatcher {
    Exact,
    Glob(glob::Pattern),
}

/// Why a record was refused. The text names the field and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedbackError {
    #[error("record of {0} bytes: at most {MAX_RECORD_BYTES} are accepted")]
    TooLarge(usize),
    #[error("not a feedback record: {0}")]
    Json(String),
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("the record's Kafka key {found:?} is not its id {id:?} (a compacted topic keeps one record per key: the key must be the id)")]
    KeyIsNotId { found: String, id: String },
    #[error("a tombstone needs the mark's id as its Kafka key")]
    TombstoneWithoutKey,
}

impl FeedbackError {
    /// A low-cardinality name of the error, for dead-letter headers and
    /// metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            FeedbackError::TooLarge(_) => "feedback_oversized",
            FeedbackError::Json(_) => "feedback_invalid_record",
            FeedbackError::Field { .. } => "feedback_invalid_field",
            FeedbackError::KeyIsNotId { .. } => "feedback_key_is_not_id",
            FeedbackError::TombstoneWithoutKey => "feedback_tombstone_without_key",
        }
    }
}

fn field(field: &'static str, reason: impl Into<String>) -> FeedbackError {
    FeedbackError::Field {
        field,
        reason: reason.into(),
    }
}

/// The record as written, before validation. Unknown fields are refused:
/// a misspelt `verdcit` must not become a mark without a verdict.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    id: String,
    key: String,
    from: Instant,
    to: Instant,
    verdict: String,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    author: Option<String>,
    #[serde(default)]
    created: Option<Instant>,
}

/// A time as RFC 3339 text or an epoch integer (seconds or milliseconds by
/// magnitude, as everywhere else in lstm-ae).
#[derive(Deserialize)]
#[serde(untagged)]
enum Instant {
    Int(i64),
    Text(String),
}

fn instant(name: &'static str, v: &Instant) -> Result<i64, FeedbackError> {
    let ms = match v {
        Instant::Int(n) => epoch_integer_ms(*n),
        Instant::Text(s) => parse_rfc3339(s),
    };
    match ms {
        Some(ms) if (0..=crate::stream::codec::MAX_TS_MS).contains(&ms) => Ok(ms),
        Some(_) => Err(field(name, "out of range (1970 to 9999)")),
        None => Err(field(
            name,
            "expected an RFC 3339 time with a zone (2026-12-07T10:00:00Z) or epoch milliseconds",
        )),
    }
}

fn text(name: &'static str, s: &str, max: usize) -> Result<(), FeedbackError> {
    if s.len() > max {
        return Err(field(name, format!("{} bytes, at most {max}", s.len())));
    }
    if s.chars().any(char::is_control) && name != "comment" {
        return Err(field(name, "control characters are not allowed"));
    }
    Ok(())
}

impl Mark {
    /// Builds and validates a mark (the command line's path).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: &str,
        key: &str,
        from_ms: i64,
        to_ms: i64,
        verdict: Verdict,
        comment: Option<String>,
        author: Option<String>,
        created_ms: Option<i64>,
    ) -> Result<Mark, FeedbackError> {
        if id.is_empty() {
            return Err(field("id", "must not be empty"));
        }
        text("id", id, MAX_ID_BYTES)?;
        if key.is_empty() {
            return Err(field("key", "must not be empty"));
        }
        text("key", key, MAX_KEY_BYTES)?;
        let matcher = if key.contains(['*', '?', '[']) {
            KeyMatcher::Glob(
                glob::Pattern::new(key)
                    .map_err(|e| field("key", format!("{key:?} is not a glob: {e}")))?,
            )
        } else {
            KeyMatcher::Exact
        };
        for (name, t) in [("from", from_ms), ("to", to_ms)] {
            if !(0..=crate::stream::codec::MAX_TS_MS).contains(&t) {
                return Err(field(name, "out of range (1970 to 9999)"));
            }
        }
        if from_ms >= to_ms {
            return Err(field(
                "to",
                format!(
                    "{} is not after from ({})",
                    format_timestamp(to_ms),
                    format_timestamp(from_ms)
                ),
            ));
        }
        if let Some(c) = &comment {
            text("comment", c, MAX_COMMENT_BYTES)?;
        }
        if let Some(a) = &author {
            text("author", a, MAX_AUTHOR_BYTES)?;
        }
        Ok(Mark {
            id: id.to_string(),
            key: key.to_string(),
            from_ms,
            to_ms,
            verdict,
            comment,
            author,
            created_ms,
            matcher,
        })
    }

    /// Reads one record's JSON, strictly.
    pub fn from_json(bytes: &[u8]) -> Result<Mark, FeedbackError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(FeedbackError::TooLarge(bytes.len()));
        }
        let w: Wire =
            serde_json::from_slice(bytes).map_err(|e| FeedbackError::Json(e.to_string()))?;
        let verdict = Verdict::parse(&w.verdict).ok_or_else(|| {
            field(
                "verdict",
                format!(
                    "{:?}: expected one of false_positive, incident, maintenance",
                    w.verdict
                ),
            )
        })?;
        let created_ms = match &w.created {
            Some(c) => Some(instant("created", c)?),
            None => None,
        };
        Mark::new(
            &w.id,
            &w.key,
            instant("from", &w.from)?,
            instant("to", &w.to)?,
            verdict,
            w.comment,
            w.author,
            created_ms,
        )
    }

    /// The record's JSON, as [`Mark::from_json`] reads it back.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::json!({
            "id": self.id,
            "key": self.key,
            "from": format_timestamp(self.from_ms),
            "to": format_timestamp(self.to_ms),
            "verdict": self.verdict.as_str(),
        });
        if let Some(c) = &self.comment {
            v["comment"] = c.as_str().into();
        }
        if let Some(a) = &self.author {
            v["author"] = a.as_str().into();
        }
        if let Some(c) = self.created_ms {
            v["created"] = format_timestamp(c).into();
        }
        v.to_string()
    }

    pub fn is_glob(&self) -> bool {
        matches!(self.matcher, KeyMatcher::Glob(_))
    }

    /// Whether the mark applies to series `key`.
    pub fn matches_key(&self, key: &str) -> bool {
        match &self.matcher {
            KeyMatcher::Exact => self.key == key,
            KeyMatcher::Glob(p) => p.matches(key),
        }
    }

    /// Whether `[from, to)` of series `key` overlaps the mark.
    pub fn overlaps(&self, key: &str, from_ms: i64, to_ms: i64) -> bool {
        from_ms < self.to_ms && self.from_ms < to_ms && self.matches_key(key)
    }

    /// Whether instant `ts` of series `key` lies in the mark.
    pub fn covers(&self, key: &str, ts_ms: i64) -> bool {
        self.from_ms <= ts_ms && ts_ms < self.to_ms && self.matches_key(key)
    }
}

/// One record as read from the topic: a Kafka key and a value (none for a
/// tombstone).
pub fn read_record(
    kafka_key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<Change, FeedbackError> {
    let key = kafka_key.map(|k| String::from_utf8_lossy(k).into_owned());
    match value {
        None => match key {
            Some(id) if !id.is_empty() => Ok(Change::Delete(id)),
            _ => Err(FeedbackError::TombstoneWithoutKey),
        },
        Some(bytes) => {
            let mark = Mark::from_json(bytes)?;
            if let Some(k) = key {
                if k != mark.id {
                    return Err(FeedbackError::KeyIsNotId {
                        found: k,
                        id: mark.id,
                    });
                }
            }
            Ok(Change::Put(mark))
        }
    }
}

/// What one record does to the set.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Put(Mark),
    Delete(String),
}

/// What [`Marks::apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Added,
    Replaced,
    Deleted,
    /// A tombstone for an id the set does not hold.
    Unknown,
    /// The set is full: the new mark was not kept.
    Full,
}

/// The marks a reader holds, by id, with an index by exact key.
#[derive(Debug, Default)]
pub struct Marks {
    max_marks: usize,
    by_id: HashMap<String, Mark>,
    /// Ids of marks with an exact key, by that key.
    exact: HashMap<String, Vec<String>>,
    /// Ids of marks with a glob key.
    globs: Vec<String>,
}

impl Marks {
    pub fn new(max_marks: usize) -> Marks {
        Marks {
            max_marks,
            ..Marks::default()
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn get(&self, id: &str) -> Option<&Mark> {
        self.by_id.get(id)
    }

    /// Every mark, in id order.
    pub fn iter_sorted(&self) -> Vec<&Mark> {
        let mut v: Vec<&Mark> = self.by_id.values().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub fn apply(&mut self, change: Change) -> Applied {
        match change {
            Change::Delete(id) => match self.remove(&id) {
                true => Applied::Deleted,
                false => Applied::Unknown,
            },
            Change::Put(mark) => {
                let replaced = self.remove(&mark.id);
                if !replaced && self.by_id.len() >= self.max_marks {
                    return Applied::Full;
                }
                if mark.is_glob() {
                    self.globs.push(mark.id.clone());
                } else {
                    self.exact
                        .entry(mark.key.clone())
                        .or_default()
                        .push(mark.id.clone());
                }
                self.by_id.insert(mark.id.clone(), mark);
                if replaced {
                    Applied::Replaced
                } else {
                    Applied::Added
                }
            }
        }
    }

    fn remove(&mut self, id: &str) -> bool {
        let Some(old) = self.by_id.remove(id) else {
            return false;
        };
        if old.is_glob() {
            self.globs.retain(|g| g != id);
        } else if let Some(ids) = self.exact.get_mut(&old.key) {
            ids.retain(|i| i != id);
            if ids.is_empty() {
                self.exact.remove(&old.key);
            }
        }
        true
    }

    /// The first mark of series `key` that `pred` accepts: the key's exact
    /// marks, then the globs.
    fn find(&self, key: &str, pred: impl Fn(&Mark) -> bool) -> Option<&Mark> {
        let exact = self.exact.get(key).into_iter().flatten();
        exact
            .chain(self.globs.iter())
            .filter_map(|id| self.by_id.get(id))
            .find(|m| m.matches_key(key) && pred(m))
    }

    /// The first mark of `verdict` that covers instant `ts` of `key`.
    pub fn covering(&self, key: &str, ts_ms: i64, verdict: Verdict) -> Option<&Mark> {
        self.find(key, |m| m.verdict == verdict && m.covers(key, ts_ms))
    }

    /// The first mark of `verdict` that overlaps `[from, to)` of `key`.
    pub fn overlapping(
        &self,
        key: &str,
        from_ms: i64,
        to_ms: i64,
        verdict: Verdict,
    ) -> Option<&Mark> {
        self.find(key, |m| {
            m.verdict == verdict && m.overlaps(key, from_ms, to_ms)
        })
    }
}

impl Marks {
    /// What `key`'s threshold is multiplied by at wall-clock `now_ms`:
    /// `settings.raise_factor` once `raise_after` false-positive marks of
    /// the key were created within `raise_period_ms` before now, unless an
    /// `incident` mark of the key was created after the `raise_after`-th
    /// most recent of them; 1 otherwise. It reads only the key's own marks
    /// and the globs, as the per-window lookup does. A mark without
    /// `created` does not count: its age is unknown.
    pub fn raise(&self, key: &str, now_ms: i64, settings: &FeedbackSettings) -> f64 {
        let n = settings.raise_after;
        if n == 0 {
            return 1.0;
        }
        let since =
            now_ms.saturating_sub(i64::try_from(settings.raise_period_ms).unwrap_or(i64::MAX));
        let mut created: Vec<i64> = Vec::new();
        let mut last_incident: Option<i64> = None;
        let exact = self.exact.get(key).into_iter().flatten();
        for m in exact
            .chain(self.globs.iter())
            .filter_map(|id| self.by_id.get(id))
            .filter(|m| m.matches_key(key))
        {
            let Some(c) = m.created_ms else { continue };
            match m.verdict {
                Verdict::FalsePositive if (since..=now_ms).contains(&c) => created.push(c),
                Verdict::Incident => last_incident = last_incident.max(Some(c)),
                _ => {}
            }
        }
        if created.len() < n {
            return 1.0;
        }
        created.sort_unstable_by(|a, b| b.cmp(a));
        let nth = created[n - 1];
        match last_incident {
            Some(i) if i > nth => 1.0,
            _ => settings.raise_factor,
        }
    }

    /// The exact keys whose threshold is raised at `now_ms` (the gauge's
    /// count; glob marks raise no single key here).
    pub fn raised_keys(&self, now_ms: i64, settings: &FeedbackSettings) -> usize {
        if settings.raise_after == 0 {
            return 0;
        }
        self.exact
            .keys()
            .filter(|k| self.raise(k, now_ms, settings) > 1.0)
            .count()
    }
}

/// Reads the plain-file form: one mark per line, blank lines and lines
/// starting with `#` skipped; a later line with the same `id` replaces an
/// earlier one. The first bad line stops the read with its number.
pub fn parse_lines(text: &str, max_marks: usize) -> Result<Marks, (usize, FeedbackError)> {
    let mut marks = Marks::new(max_marks);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mark = Mark::from_json(line.as_bytes()).map_err(|e| (i + 1, e))?;
        if marks.apply(Change::Put(mark)) == Applied::Full {
            return Err((
                i + 1,
                field("id", format!("more than {max_marks} marks in the file")),
            ));
        }
    }
    Ok(marks)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const T0: i64 = 1_796_000_000_000;

    fn rec(id: &str, key: &str, from: i64, to: i64, verdict: &str) -> String {
        serde_json::json!({"id": id, "key": key, "from": from, "to": to, "verdict": verdict})
            .to_string()
    }

    fn put(marks: &mut Marks, json: &str) -> Applied {
        marks.apply(Change::Put(Mark::from_json(json.as_bytes()).unwrap()))
    }

    #[test]
    fn a_record_reads_back_what_it_writes() {
        let m = Mark::from_json(
            br#"{"id":"m1","key":"host-*","from":"2026-12-07T10:00:00Z","to":"2026-12-07T11:30:00Z",
                 "verdict":"maintenance","comment":"kernel update","author":"ops","created":"2026-12-07T09:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(m.verdict, Verdict::Maintenance);
        assert_eq!(m.to_ms - m.from_ms, 90 * 60_000);
        assert_eq!(m.from_ms, parse_rfc3339("2026-12-07T10:00:00Z").unwrap());
        assert!(m.is_glob());
        let again = Mark::from_json(m.to_json().as_bytes()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn bad_records_are_refused_with_the_field_named() {
        let cases: &[(String, &str)] = &[
            (rec("m", "k", T0, T0, "incident"), "to:"),
            (rec("m", "k", T0 + H, T0, "incident"), "is not after from"),
            (rec("m", "k", T0, T0 + H, "falsepositive"), "verdict"),
            (
                rec("", "k", T0, T0 + H, "incident"),
                "id: must not be empty",
            ),
            (
                rec("m", "", T0, T0 + H, "incident"),
                "key: must not be empty",
            ),
            (rec("m", "[a", T0, T0 + H, "incident"), "is not a glob"),
            (
                rec("m", &"k".repeat(300), T0, T0 + H, "incident"),
                "key: 300 bytes",
            ),
            (
                rec(&"i".repeat(200), "k", T0, T0 + H, "incident"),
                "id: 200 bytes",
            ),
            (
                rec("m\n", "k", T0, T0 + H, "incident"),
                "control characters",
            ),
            (
                r#"{"id":"m","key":"k","from":"yesterday","to":1,"verdict":"incident"}"#.into(),
                "from: expected an RFC 3339 time",
            ),
            (
                r#"{"id":"m","key":"k","from":"2026-12-07 10:00:00","to":1,"verdict":"incident"}"#
                    .into(),
                "from: expected an RFC 3339 time",
            ),
            (
                r#"{"id":"m","key":"k","from":1,"to":2,"verdict":"incident","verdcit":"x"}"#.into(),
                "unknown field `verdcit`",
            ),
            (
                r#"{"id":"m","key":"k","from":1,"verdict":"incident"}"#.into(),
                "missing field `to`",
            ),
            ("not json".into(), "not a feedback record"),
            (
                format!(
                    r#"{{"id":"m","key":"k","from":1,"to":2,"verdict":"incident","comment":"{}"}}"#,
                    "c".repeat(MAX_RECORD_BYTES)
                ),
                "at most 4096 are accepted",
            ),
            (
                format!(
                    r#"{{"id":"m","key":"k","from":1,"to":2,"verdict":"incident","comment":"{}"}}"#,
                    "c".repeat(MAX_COMMENT_BYTES + 1)
                ),
                "comment: 1025 bytes",
            ),
            (rec("m", "k", -5_000, T0, "incident"), "from: out of range"),
        ];
        for (json, want) in cases {
            let err = Mark::from_json(json.as_bytes())
                .expect_err(&format!("{json} must be refused"))
                .to_string();
            assert!(err.contains(want), "{json}: {err:?} does not say {want:?}");
        }
    }

    #[test]
    fn the_kafka_key_is_the_id_and_a_tombstone_deletes() {
        let json = rec("m1", "k", T0, T0 + H, "incident");
        assert!(matches!(
            read_record(Some(b"m1"), Some(json.as_bytes())),
            Ok(Change::Put(_))
        ));
        assert_eq!(
            read_record(Some(b"other"), Some(json.as_bytes())),
            Err(FeedbackError::KeyIsNotId {
                found: "other".into(),
                id: "m1".into()
            })
        );
        assert_eq!(
            read_record(Some(b"m1"), None),
            Ok(Change::Delete("m1".into()))
        );
        assert_eq!(
            read_record(None, None),
            Err(FeedbackError::TombstoneWithoutKey)
        );
    }

    #[test]
    fn a_later_mark_replaces_one_with_its_id_and_a_tombstone_removes_it() {
        let mut marks = Marks::new(10);
        assert_eq!(
            put(&mut marks, &rec("m1", "a", T0, T0 + H, "maintenance")),
            Applied::Added
        );
        assert!(marks.covering("a", T0, Verdict::Maintenance).is_some());
        // Same id, now another key and verdict: the old mark is gone whole.
        assert_eq!(
            put(&mut marks, &rec("m1", "b*", T0, T0 + H, "incident")),
            Applied::Replaced
        );
        assert_eq!(marks.len(), 1);
        assert!(marks.covering("a", T0, Verdict::Maintenance).is_none());
        assert!(marks.covering("b7", T0, Verdict::Incident).is_some());
        assert_eq!(marks.apply(Change::Delete("m1".into())), Applied::Deleted);
        assert!(marks.covering("b7", T0, Verdict::Incident).is_none());
        assert!(marks.is_empty());
        assert_eq!(marks.apply(Change::Delete("m1".into())), Applied::Unknown);
    }

    #[test]
    fn ranges_are_half_open_and_keys_match_exactly_or_by_glob() {
        let mut marks = Marks::new(10);
        put(&mut marks, &rec("m1", "host-1", T0, T0 + H, "maintenance"));
        put(&mut marks, &rec("m2", "db-?", T0, T0 + H, "false_positive"));
        assert!(marks.covering("host-1", T0, Verdict::Maintenance).is_some());
        assert!(marks
            .covering("host-1", T0 + H - 1, Verdict::Maintenance)
            .is_some());
        assert!(marks
            .covering("host-1", T0 + H, Verdict::Maintenance)
            .is_none());
        assert!(marks
            .covering("host-1", T0 - 1, Verdict::Maintenance)
            .is_none());
        assert!(marks
            .covering("host-10", T0, Verdict::Maintenance)
            .is_none());
        assert!(marks.covering("host-1", T0, Verdict::Incident).is_none());
        assert!(marks.covering("db-7", T0, Verdict::FalsePositive).is_some());
        assert!(marks
            .covering("db-77", T0, Verdict::FalsePositive)
            .is_none());
        // A window [from, to) overlaps when it shares any instant.
        assert!(marks
            .overlapping("host-1", T0 - H, T0 + 1, Verdict::Maintenance)
            .is_some());
        assert!(marks
            .overlapping("host-1", T0 - H, T0, Verdict::Maintenance)
            .is_none());
        assert!(marks
            .overlapping("host-1", T0 + H, T0 + 2 * H, Verdict::Maintenance)
            .is_none());
    }

    #[test]
    fn a_full_set_keeps_what_it_has_and_still_takes_replacements() {
        let mut marks = Marks::new(2);
        put(&mut marks, &rec("m1", "a", T0, T0 + H, "incident"));
        put(&mut marks, &rec("m2", "b", T0, T0 + H, "incident"));
        assert_eq!(
            put(&mut marks, &rec("m3", "c", T0, T0 + H, "incident")),
            Applied::Full
        );
        assert!(marks.get("m3").is_none());
        assert_eq!(
            put(&mut marks, &rec("m2", "c", T0, T0 + H, "incident")),
            Applied::Replaced
        );
        assert_eq!(marks.len(), 2);
    }

    #[test]
    fn the_file_form_skips_comments_and_names_the_bad_line() {
        let text = format!(
            "# planned work\n{}\n\n{}\n",
            rec("m1", "a", T0, T0 + H, "maintenance"),
            rec("m1", "a", T0, T0 + 2 * H, "maintenance"),
        );
        let marks = parse_lines(&text, 10).unwrap();
        assert_eq!(marks.len(), 1);
        assert_eq!(marks.get("m1").unwrap().to_ms, T0 + 2 * H);
        let bad = format!("{}\n{{\"id\":1}}\n", rec("m1", "a", T0, T0 + H, "incident"));
        let (line, _) = parse_lines(&bad, 10).unwrap_err();
        assert_eq!(line, 2);
    }

    fn mark_at(id: &str, key: &str, verdict: &str, created: i64) -> String {
        serde_json::json!({"id": id, "key": key, "from": T0, "to": T0 + H,
                           "verdict": verdict, "created": created})
        .to_string()
    }

    #[test]
    fn false_positive_marks_within_the_period_raise_a_key_until_a_later_incident() {
        let s = FeedbackSettings {
            raise_after: 3,
            raise_period_ms: 24 * H as u64,
            raise_factor: 1.5,
            ..FeedbackSettings::default()
        };
        let now = T0 + 100 * H;
        let mut marks = Marks::new(100);
        // Two marks in the period, one 25 h old: outside it, not enough.
        put(&mut marks, &mark_at("a", "k", "false_positive", now - H));
        put(
            &mut marks,
            &mark_at("b", "k", "false_positive", now - 2 * H),
        );
        put(
            &mut marks,
            &mark_at("c", "k", "false_positive", now - 25 * H),
        );
        put(
            &mut marks,
            &mark_at("o", "other", "false_positive", now - H),
        );
        assert_eq!(marks.raise("k", now, &s), 1.0);
        assert_eq!(marks.raised_keys(now, &s), 0);
        // The third within the period (a glob matching the key counts).
        put(
            &mut marks,
            &mark_at("g", "k*", "false_positive", now - 3 * H),
        );
        assert_eq!(marks.raise("k", now, &s), 1.5);
        assert_eq!(marks.raise("other", now, &s), 1.0);
        assert_eq!(marks.raised_keys(now, &s), 1);
        // Off: no raise whatever the marks.
        let off = FeedbackSettings {
            raise_after: 0,
            ..s.clone()
        };
        assert_eq!(marks.raise("k", now, &off), 1.0);
        assert_eq!(marks.raised_keys(now, &off), 0);
        // An incident created before the third most recent false positive
        // does not reset; one created after it does.
        put(&mut marks, &mark_at("i", "k", "incident", now - 4 * H));
        assert_eq!(marks.raise("k", now, &s), 1.5);
        put(&mut marks, &mark_at("i", "k", "incident", now - 2 * H - 1));
        assert_eq!(marks.raise("k", now, &s), 1.0);
        assert_eq!(marks.raised_keys(now, &s), 0);
        // Three newer false positives after the incident raise it again.
        put(&mut marks, &mark_at("a", "k", "false_positive", now - 10));
        put(&mut marks, &mark_at("b", "k", "false_positive", now - 20));
        put(&mut marks, &mark_at("g", "k*", "false_positive", now - 30));
        assert_eq!(marks.raise("k", now, &s), 1.5);
        // A mark without `created` does not count.
        marks.apply(Change::Delete("g".into()));
        put(&mut marks, &rec("g", "k", T0, T0 + H, "false_positive"));
        assert_eq!(marks.raise("k", now, &s), 1.0);
    }
}
