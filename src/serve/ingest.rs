//! The ingest stage: one consumed message in, windows (in batches) and dead
//! letters out, with the offset bookkeeping that makes delivery
//! at-least-once. Synchronous and Kafka-free: it sees a [`MessageView`]
//! (plain bytes and coordinates), so it is unit-tested without a broker.
//!
//! It owns the [`Windower`], the [`Batcher`], the [`OffsetTracker`], the
//! partition ids they share, the application of rebalances and the commit
//! computation (which offsets to commit, and which commits the broker has
//! confirmed). The order of [`crate::stream`]'s contract is kept here:
//! a message's hold is taken on consumption and released only once its
//! window (if any) holds what it needs.
//!
//! ## Clock
//!
//! `now_ms` is processing time from a monotonic clock (milliseconds since
//! the daemon started): key TTLs and batch deadlines never jump with the
//! wall clock.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::kafka::consumer::ConsumerEvent;
use crate::stream::batcher::Batcher;
use crate::stream::codec::{self, Decoded, Format};
use crate::stream::dead_letter::DeadLetterHeaders;
use crate::stream::offsets::{Hold, OffsetTracker};
use crate::stream::records::SourceRef;
use crate::stream::windower::{Eviction, Origin, PointStatus, Rejected, Windower, WindowerConfig};
use crate::stream::ParamError;
use crate::telemetry::Metrics;

/// One consumed message, as the ingest stage needs it.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// The Kafka timestamp (CreateTime or LogAppendTime), epoch ms.
    pub timestamp_ms: Option<i64>,
}

/// One window on its way through the pipeline.
#[derive(Debug)]
pub struct Job {
    pub key: String,
    pub start_ts_ms: i64,
    pub end_ts_ms: i64,
    /// T·F raw values, row-major.
    pub values: Vec<f32>,
    /// The T row timestamps; empty when unknown (a window message without
    /// `start_ts`: only the end is known).
    pub timestamps: Vec<i64>,
    /// Offsets to keep uncommitted until every output is acknowledged.
    pub holds: Vec<Hold>,
    /// The message that completed the window.
    pub source: SourceRef,
    /// Its Kafka timestamp, for end-to-end latency.
    pub input_ts_ms: Option<i64>,
}

/// A message to dead-letter: why, and the hold released once the broker
/// has the dead letter. The glue copies the message's bytes.
#[derive(Debug)]
pub struct DeadLetter {
    pub reason: DeadLetterHeaders,
    pub hold: Hold,
}

/// What one message gave.
#[derive(Debug, Default)]
pub struct Outcome {
    /// A batch of windows, when this message filled one.
    pub batch: Option<Vec<Job>>,
    /// The message itself, when it is dead-lettered.
    pub dead_letter: Option<DeadLetter>,
}

/// The ingest stage's parameters.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Format of each input topic.
    pub formats: HashMap<String, Format>,
    /// Windowing of `points` inputs (T, F, stride, key limits).
    pub windower: WindowerConfig,
    pub max_batch: usize,
    pub max_wait_ms: u64,
    pub max_message_bytes: usize,
}

/// The consumer's events (rebalances, commit results), queued by the Kafka
/// context inside librdkafka's poll and applied by the ingest stage before
/// it handles the next message.
pub type EventQueue = Arc<Mutex<Vec<ConsumerEvent>>>;

/// Partition ids for the offset tracker and the windower, which know only
/// `i32` partitions: one id per (topic, partition) pair. A linear scan: a
/// daemon has few partitions, and it allocates nothing per message.
#[derive(Debug, Default)]
struct PartitionIds {
    names: Vec<(String, i32)>,
}

impl PartitionIds {
    fn id(&mut self, topic: &str, partition: i32) -> i32 {
        match self.find(topic, partition) {
            Some(id) => id,
            None => {
                self.names.push((topic.to_string(), partition));
                (self.names.len() - 1) as i32
            }
        }
    }

    fn find(&self, topic: &str, partition: i32) -> Option<i32> {
        self.names
            .iter()
            .position(|(t, p)| *p == partition && t == topic)
            .map(|i| i as i32)
    }

    fn name(&self, id: i32) -> Option<&(String, i32)> {
        self.names.get(usize::try_from(id).ok()?)
    }
}

/// The ingest stage (see the module docs).
pub struct Ingest {
    cfg: IngestConfig,
    windower: Windower,
    batcher: Batcher<Job>,
    tracker: OffsetTracker,
    ids: PartitionIds,
    events: EventQueue,
    /// Per partition id, the offset the broker confirmed as committed.
    confirmed: HashMap<i32, i64>,
    /// An asynchronous commit was sent and its result has not come back.
    /// At most one is in flight: a group coordinator answers a member's
    /// requests in order on one connection, so commits sent faster than it
    /// answers them queue up ahead of the heartbeats, and the member's
    /// session expires with the coordinator busy on stale commits: on a
    /// broker slower to answer a commit than the commit interval, an
    /// endless rebalance.
    commit_in_flight: bool,
    metrics: Metrics,
    /// The partitions assigned (ids), for readiness: under
    /// `cooperative-sticky` a rebalance revokes or assigns some partitions
    /// only, so readiness follows the set, not the last event.
    owned: HashSet<i32>,
    revoked: Revoked,
    /// The key TTL's clock (see [`Ingest::set_blocked`]).
    ttl: TtlClock,
}

/// Processing time that runs only while intake flows: the clock a key's
/// idleness is measured on.
#[derive(Debug, Default)]
struct TtlClock {
    /// Milliseconds intake was blocked, in stalls that have ended.
    paused_ms: i64,
    /// When the current stall began, if intake is blocked.
    blocked_since: Option<i64>,
}

impl TtlClock {
    fn set_blocked(&mut self, blocked: bool, now_ms: i64) {
        match (blocked, self.blocked_since) {
            (true, None) => self.blocked_since = Some(now_ms),
            (false, Some(since)) => {
                self.paused_ms += now_ms.saturating_sub(since).max(0);
                self.blocked_since = None;
            }
            _ => {}
        }
    }

    /// `now_ms` less the time intake was blocked: stands still during a
    /// stall, so it never runs backwards.
    fn now(&self, now_ms: i64) -> i64 {
        let stalled = self
            .blocked_since
            .map_or(0, |since| now_ms.saturating_sub(since).max(0));
        now_ms - self.paused_ms - stalled
    }
}

impl Ingest {
    pub fn new(
        cfg: IngestConfig,
        events: EventQueue,
        metrics: Metrics,
    ) -> Result<Self, ParamError> {
        Ok(Ingest {
            windower: Windower::new(cfg.windower.clone())?,
            batcher: Batcher::new(cfg.max_batch, cfg.max_wait_ms)?,
            tracker: OffsetTracker::new(),
            ids: PartitionIds::default(),
            events,
            confirmed: HashMap::new(),
            commit_in_flight: false,
            metrics,
            owned: HashSet::new(),
            revoked: Revoked::default(),
            ttl: TtlClock::default(),
            cfg,
        })
    }

    /// The partitions revoked from this daemon, as the rebalances go.
    pub fn revoked(&self) -> Revoked {
        self.revoked.clone()
    }

    /// Whether some partition is assigned (after the last applied event).
    pub fn assigned(&self) -> bool {
        !self.owned.is_empty()
    }

    /// Applies the queued consumer events. Called before every message:
    /// librdkafka runs the rebalance callback inside the poll that returns
    /// the message, so a message of a new assignment must find it applied.
    pub fn apply_events(&mut self) {
        let events = match self.events.lock() {
            Ok(mut ev) if !ev.is_empty() => std::mem::take(&mut *ev),
            _ => return,
        };
        for e in events {
            match e {
                ConsumerEvent::Assigned(parts) => {
                    tracing::info!(partitions = ?parts, "partitions assigned");
                    for (topic, p) in &parts {
                        self.revoked.assign(topic, *p);
                        self.owned.insert(self.ids.id(topic, *p));
                    }
                }
                ConsumerEvent::Revoked(parts) => {
                    tracing::info!(partitions = ?parts, "partitions revoked");
                    for (topic, p) in parts {
                        self.revoke(&topic, p);
                    }
                }
                ConsumerEvent::CommitFailed => self.commit_in_flight = false,
                ConsumerEvent::Committed(offsets) => {
                    self.commit_in_flight = false;
                    for (topic, p, offset) in offsets {
                        if let Some(id) = self.ids.find(&topic, p) {
                            if self.tracker.partitions().any(|q| q == id) {
                                self.confirmed.insert(id, offset);
                            }
                        }
                    }
                }
            }
        }
    }

    fn revoke(&mut self, topic: &str, p: i32) {
        let id = self.ids.id(topic, p);
        self.owned.remove(&id);
        self.tracker.forget(id);
        self.confirmed.remove(&id);
        let ev = self.windower.forget_partition(id);
        self.count_evictions(&ev);
        self.revoked.revoke(topic, p);
        self.metrics
            .live_series_keys
            .set(self.windower.live_keys() as i64);
        // Another consumer reports this partition's lag now; a stale value
        // here would double it in dashboards and alerts.
        let _ = self
            .metrics
            .consumer_lag
            .remove_label_values(&[topic, &p.to_string()]);
    }

    fn count_evictions(&self, ev: &Eviction) {
        if ev.is_empty() {
            return;
        }
        let m = &self.metrics;
        for (reason, n) in [
            ("expired", ev.expired_keys),
            ("capacity", ev.capacity_keys),
            ("revoked", ev.revoked_keys),
            ("moved", ev.moved_keys),
        ] {
            if n > 0 {
                m.window_keys_evicted
                    .with_label_values(&[reason])
                    .inc_by(n as u64);
            }
        }
        m.window_gaps.inc_by(ev.gap_restarts as u64);
        m.buffered_points_dropped.inc_by(ev.dropped_points as u64);
    }

    /// Handles one message: dead letter, a window into the batcher, or a
    /// point into the windower. Returns the batch it filled, if any.
    pub fn on_message(&mut self, msg: &MessageView<'_>, now_ms: i64) -> Outcome {
        self.apply_events();
        let m = &self.metrics;
        m.messages_consumed.with_label_values(&[msg.topic]).inc();
        let pid = self.ids.id(msg.topic, msg.partition);
        let hold = self.tracker.consumed(pid, msg.offset);
        let format = self
            .cfg
            .formats
            .get(msg.topic)
            .copied()
            .unwrap_or(Format::Points);
        let (t, f) = (self.cfg.windower.window, self.cfg.windower.features);
        let source = || SourceRef {
            topic: msg.topic.to_string(),
            partition: msg.partition,
            offset: msg.offset,
        };
        let decoded = codec::decode(
            format,
            msg.key,
            msg.payload,
            f,
            t,
            self.cfg.max_message_bytes,
        );
        let job = match decoded {
            Err(e) => {
                m.dead_letters.with_label_values(&[e.kind()]).inc();
                tracing::debug!(error = %e, topic = msg.topic, partition = msg.partition, offset = msg.offset, "dead letter");
                let reason =
                    DeadLetterHeaders::for_codec_error(&e, msg.topic, msg.partition, msg.offset);
                return Outcome {
                    batch: None,
                    dead_letter: Some(DeadLetter { reason, hold }),
                };
            }
            Ok(Decoded::Window {
                key,
                end_ts_ms,
                start_ts_ms,
                values,
            }) => Job {
                timestamps: start_ts_ms
                    .map(|s| spaced(s, end_ts_ms, t))
                    .unwrap_or_default(),
                start_ts_ms: start_ts_ms.unwrap_or(end_ts_ms),
                key,
                end_ts_ms,
                values,
                holds: vec![hold],
                source: source(),
                input_ts_ms: msg.timestamp_ms,
            },
            Ok(Decoded::Point { key, ts_ms, values }) => {
                let origin = Origin {
                    partition: pid,
                    offset: msg.offset,
                };
                let ttl_now = self.ttl.now(now_ms);
                let out = self.windower.push(&key, ts_ms, &values, origin, ttl_now);
                self.count_evictions(&out.evicted);
                if let PointStatus::Rejected(r) = out.status {
                    m.points_rejected.with_label_values(&[r.kind()]).inc();
                    if let Rejected::OtherPartition { owner } = r {
                        // Loud: the data goes to the dead-letter topic.
                        const KIND: &str = "key_on_two_partitions";
                        m.dead_letters.with_label_values(&[KIND]).inc();
                        let owner = self.ids.name(owner).map_or(-1, |(_, p)| *p);
                        let why = format!(
                            "series key `{key}` already has points from partition {owner}: every point of a key must be on one partition (produce with the series key as the Kafka key)"
                        );
                        tracing::warn!(key = %key, partition = msg.partition, owner, "a key on two partitions: dead-lettered");
                        let reason = DeadLetterHeaders::new(
                            KIND,
                            &why,
                            msg.topic,
                            msg.partition,
                            msg.offset,
                        );
                        return Outcome {
                            batch: None,
                            dead_letter: Some(DeadLetter { reason, hold }),
                        };
                    }
                }
                let job = out.window.map(|w| {
                    let tracker = &mut self.tracker;
                    let holds = w
                        .holds
                        .iter()
                        .filter_map(|o| tracker.hold(o.partition, o.offset))
                        .collect();
                    Job {
                        key: w.key,
                        start_ts_ms: w.start_ts_ms,
                        end_ts_ms: w.end_ts_ms,
                        values: w.values,
                        timestamps: w.timestamps,
                        holds,
                        source: source(),
                        input_ts_ms: msg.timestamp_ms,
                    }
                });
                // The window (if any) holds what it needs; the buffer holds
                // the rest: the message's own hold can go.
                self.tracker.release(hold);
                m.live_series_keys.set(self.windower.live_keys() as i64);
                match job {
                    Some(job) => job,
                    None => return Outcome::default(),
                }
            }
        };
        self.metrics.windows_in_flight.inc();
        Outcome {
            batch: self.batcher.push(job, now_ms),
            dead_letter: None,
        }
    }

    /// When the pending batch is due (monotonic ms), if any.
    pub fn deadline(&self) -> Option<i64> {
        self.batcher.deadline()
    }

    /// The pending batch, if its deadline has passed.
    pub fn poll(&mut self, now_ms: i64) -> Option<Vec<Job>> {
        self.batcher.poll(now_ms)
    }

    /// Everything pending: for the drain, and when every inference thread
    /// waits for work (a batch sent then is scored at once, see `serve`
    /// "Batching").
    pub fn flush(&mut self) -> Option<Vec<Job>> {
        self.batcher.flush()
    }

    /// Gives back holds whose outputs are acknowledged.
    pub fn release(&mut self, holds: Vec<Hold>) {
        for h in holds {
            self.tracker.release(h);
        }
    }

    /// Whether intake is blocked: a batch or dead letter waits for a
    /// permit, so nothing is consumed (a stuck model, a slow broker). The
    /// key TTL stands still meanwhile: a key's points are buffered and the
    /// commit is held at them, so a stall longer than `key_ttl_ms` must not
    /// evict every key, or the commit would move past points whose windows
    /// were never produced, and no restart could produce them.
    pub fn set_blocked(&mut self, blocked: bool, now_ms: i64) {
        self.ttl.set_blocked(blocked, now_ms);
    }

    /// Drops keys idle past the TTL.
    pub fn evict_idle(&mut self, now_ms: i64) {
        let ev = self.windower.evict_idle(self.ttl.now(now_ms));
        self.count_evictions(&ev);
        self.metrics
            .live_series_keys
            .set(self.windower.live_keys() as i64);
    }

    /// Per partition, the offset to commit now when it differs from the one
    /// the broker confirmed: a commit that failed is asked for again at the
    /// next call, until it succeeds. While an asynchronous commit is in
    /// flight (its result not yet applied) nothing is asked for, unless
    /// `last` (the drain's final, synchronous commit). A non-empty answer
    /// marks a commit in flight: the caller sends it, then reports a
    /// failure to send with [`Ingest::commit_failed`]; the broker's answer
    /// comes back as a [`ConsumerEvent`].
    pub fn offsets_to_commit(&mut self, last: bool) -> Vec<(String, i32, i64)> {
        self.apply_events();
        if self.commit_in_flight && !last {
            return vec![];
        }
        let mut out = vec![];
        for pid in self.tracker.partitions() {
            let Some(offset) = self
                .tracker
                .committable(pid, self.windower.min_held_offset(pid))
            else {
                continue;
            };
            if self.confirmed.get(&pid) == Some(&offset) {
                continue;
            }
            if let Some((topic, p)) = self.ids.name(pid) {
                out.push((topic.clone(), *p, offset));
            }
        }
        self.commit_in_flight = !out.is_empty();
        out
    }

    /// The commit [`Ingest::offsets_to_commit`] asked for was not sent, or
    /// failed without a [`ConsumerEvent`]: ask again at the next call.
    pub fn commit_failed(&mut self) {
        self.commit_in_flight = false;
    }

    /// Records commits the broker confirmed (a synchronous commit's result).
    pub fn committed(&mut self, offsets: &[(String, i32, i64)]) {
        self.commit_in_flight = false;
        for (topic, p, offset) in offsets {
            if let Some(id) = self.ids.find(topic, *p) {
                self.confirmed.insert(id, *offset);
            }
        }
    }
}

/// `t` timestamps evenly spaced from `start` to `end` (both included): the
/// row times of a window message that gives both ends.
fn spaced(start: i64, end: i64, t: usize) -> Vec<i64> {
    if t <= 1 {
        return vec![end; t];
    }
    let span = i128::from(end) - i128::from(start);
    let last = (t - 1) as i128;
    (0..t)
        .map(|i| (i128::from(start) + span * i as i128 / last) as i64)
        .collect()
}

/// Input partitions revoked from this daemon and not assigned to it again:
/// for the stages that keep something per partition beyond the ingest
/// stage (the per-series gauges, `super::series_outputs`), which read it
/// when they get to it. Cheap to clone; bounded by the inputs' partitions.
#[derive(Debug, Clone, Default)]
pub struct Revoked(Arc<Mutex<RevokedState>>);

#[derive(Debug, Default)]
struct RevokedState {
    /// Raised by every change.
    generation: u64,
    partitions: HashSet<(String, i32)>,
}

impl Revoked {
    fn state(&self) -> std::sync::MutexGuard<'_, RevokedState> {
        // Each change is one insert or remove: a panic elsewhere while
        // holding the lock cannot leave it half done.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn revoke(&self, topic: &str, partition: i32) {
        let mut s = self.state();
        if s.partitions.insert((topic.to_string(), partition)) {
            s.generation += 1;
        }
    }

    fn assign(&self, topic: &str, partition: i32) {
        let mut s = self.state();
        if s.partitions.remove(&(topic.to_string(), partition)) {
            s.generation += 1;
        }
    }

    /// The partitions revoked now and the generation they are of, if that
    /// is not `generation` (0 before any change).
    pub fn changed_since(&self, generation: u64) -> Option<(u64, HashSet<(String, i32)>)> {
        let s = self.state();
        (s.generation != generation).then(|| (s.generation, s.partitions.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: usize = 3;

    fn ingest() -> (Ingest, EventQueue, Metrics) {
        ingest_with_gaps(0)
    }

    fn ingest_with_gaps(max_gap_steps: u32) -> (Ingest, EventQueue, Metrics) {
        let events: EventQueue = Arc::default();
        let metrics = Metrics::new();
        let cfg = IngestConfig {
            formats: HashMap::from([
                ("in".to_string(), Format::Points),
                ("win".to_string(), Format::Windows),
            ]),
            windower: WindowerConfig {
                window: T,
                stride: 1,
                features: 1,
                key_ttl_ms: 1_000,
                max_keys: 2,
                max_gap_steps,
                key_move_after: 3,
            },
            max_batch: 1,
            max_wait_ms: 0,
            max_message_bytes: 1 << 20,
        };
        (
            Ingest::new(cfg, events.clone(), metrics.clone()).unwrap(),
            events,
            metrics,
        )
    }

    fn point(key: &str, ts: i64) -> Vec<u8> {
        format!(r#"{{"key":"{key}","ts":{ts},"value":1.0}}"#).into_bytes()
    }

    fn msg<'a>(partition: i32, offset: i64, payload: &'a [u8]) -> MessageView<'a> {
        MessageView {
            topic: "in",
            partition,
            offset,
            key: None,
            payload: Some(payload),
            timestamp_ms: None,
        }
    }

    /// What a commit tick asks for, then confirmed by the broker (as the
    /// consumer's commit callback reports it).
    fn commits(i: &mut Ingest) -> Vec<(i32, i64)> {
        let asked = i.offsets_to_commit(false);
        i.committed(&asked);
        let mut c: Vec<(i32, i64)> = asked.into_iter().map(|(_, p, o)| (p, o)).collect();
        c.sort();
        c
    }

    #[test]
    fn a_key_on_two_partitions_is_dead_lettered_and_a_revoke_keeps_the_other_partitions_points() {
        let (mut i, events, metrics) = ingest();
        // Key k: a point on partition 0, then one on partition 1.
        assert!(i
            .on_message(&msg(0, 10, &point("k", 1)), 0)
            .dead_letter
            .is_none());
        let out = i.on_message(&msg(1, 20, &point("k", 2)), 0);
        let dl = out.dead_letter.expect("dead-lettered");
        assert_eq!(dl.reason.pairs()[0].1, "key_on_two_partitions");
        assert!(out.batch.is_none());
        // Key j lives on partition 1 and buffers its point there.
        assert!(i
            .on_message(&msg(1, 21, &point("j", 1)), 0)
            .dead_letter
            .is_none());
        assert_eq!(
            metrics
                .dead_letters
                .with_label_values(&["key_on_two_partitions"])
                .get(),
            1
        );
        // Revoking partition 0 must not release partition 1's holds.
        events
            .lock()
            .unwrap()
            .push(ConsumerEvent::Revoked(vec![("in".into(), 0)]));
        assert_eq!(commits(&mut i), vec![(1, 20)]);
        i.release(vec![dl.hold]);
        assert_eq!(commits(&mut i), vec![(1, 21)]);
    }

    #[test]
    fn rebalance_events_are_applied_before_the_message() {
        let (mut i, events, _) = ingest();
        assert!(i.on_message(&msg(0, 4, &point("k", 1)), 0).batch.is_none());
        // Revoked and assigned again inside the poll that returns offset 5.
        events.lock().unwrap().extend([
            ConsumerEvent::Revoked(vec![("in".into(), 0)]),
            ConsumerEvent::Assigned(vec![("in".into(), 0)]),
        ]);
        assert!(i.on_message(&msg(0, 5, &point("k", 2)), 0).batch.is_none());
        // Offset 5 is buffered in the new assignment: it must stay uncommitted.
        assert_eq!(commits(&mut i), vec![(0, 5)]);
        assert!(i.assigned());
    }

    /// Under `cooperative-sticky` a rebalance revokes only the partitions
    /// that move: the daemon stays ready while it still owns some.
    #[test]
    fn readiness_follows_the_partitions_owned_through_partial_revokes() {
        let (mut i, events, _) = ingest();
        let apply = |i: &mut Ingest, e: ConsumerEvent| {
            events.lock().unwrap().push(e);
            i.apply_events();
            i.assigned()
        };
        let parts = |ps: &[(&str, i32)]| -> Vec<(String, i32)> {
            ps.iter().map(|(t, p)| (t.to_string(), *p)).collect()
        };
        assert!(!i.assigned());
        assert!(apply(
            &mut i,
            ConsumerEvent::Assigned(parts(&[("in", 0), ("in", 1)]))
        ));
        assert!(apply(&mut i, ConsumerEvent::Revoked(parts(&[("in", 0)]))));
        // An incremental assignment adds to what is owned.
        assert!(apply(
            &mut i,
            ConsumerEvent::Assigned(parts(&[("other", 0)]))
        ));
        assert!(apply(&mut i, ConsumerEvent::Revoked(parts(&[("in", 1)]))));
        assert!(apply(&mut i, ConsumerEvent::Assigned(vec![])));
        assert!(!apply(
            &mut i,
            ConsumerEvent::Revoked(parts(&[("other", 0)]))
        ));
        // An eager rebalance revokes everything, then assigns everything.
        assert!(apply(
            &mut i,
            ConsumerEvent::Assigned(parts(&[("in", 0), ("in", 1)]))
        ));
        assert!(!apply(
            &mut i,
            ConsumerEvent::Revoked(parts(&[("in", 0), ("in", 1)]))
        ));
        assert!(apply(&mut i, ConsumerEvent::Assigned(parts(&[("in", 1)]))));
    }

    #[test]
    fn a_commit_is_asked_for_until_the_broker_confirms_it_and_only_one_is_in_flight() {
        let (mut i, events, _) = ingest();
        let ask = |i: &mut Ingest| -> Vec<(i32, i64)> {
            i.offsets_to_commit(false)
                .into_iter()
                .map(|(_, p, o)| (p, o))
                .collect()
        };
        let out = i.on_message(&msg(0, 7, b"not json"), 0);
        i.release(vec![out.dead_letter.unwrap().hold]);
        assert_eq!(ask(&mut i), vec![(0, 8)]);
        // In flight: the next ticks send nothing, even when more is
        // committable, so commits never queue up at the coordinator.
        let out = i.on_message(&msg(0, 8, b"not json"), 0);
        i.release(vec![out.dead_letter.unwrap().hold]);
        assert_eq!(ask(&mut i), vec![]);
        assert_eq!(ask(&mut i), vec![]);
        // The drain's final commit goes regardless.
        assert_eq!(
            i.offsets_to_commit(true)
                .into_iter()
                .map(|(_, p, o)| (p, o))
                .collect::<Vec<_>>(),
            vec![(0, 9)]
        );
        // The async commit of 8 failed: the newest offset is asked for again.
        events.lock().unwrap().push(ConsumerEvent::CommitFailed);
        assert_eq!(ask(&mut i), vec![(0, 9)]);
        // Not sent at all (the client refused it): asked for again.
        i.commit_failed();
        assert_eq!(ask(&mut i), vec![(0, 9)]);
        events
            .lock()
            .unwrap()
            .push(ConsumerEvent::Committed(vec![("in".into(), 0, 9)]));
        assert_eq!(ask(&mut i), vec![]);
        // Confirmed and nothing new: nothing in flight either.
        let out = i.on_message(&msg(0, 9, b"not json"), 0);
        i.release(vec![out.dead_letter.unwrap().hold]);
        assert_eq!(ask(&mut i), vec![(0, 10)]);
    }

    #[test]
    fn a_stall_does_not_age_keys_so_the_commit_stays_at_their_points() {
        let (mut i, _, metrics) = ingest(); // key_ttl_ms = 1_000
        let expired = || {
            metrics
                .window_keys_evicted
                .with_label_values(&["expired"])
                .get()
        };
        i.on_message(&msg(0, 0, &point("a", 1)), 0);
        // Intake blocked from 100 ms on, for ten TTLs: the key's point
        // stays buffered and the commit stays at it.
        i.set_blocked(true, 100);
        i.evict_idle(10_100);
        assert_eq!(expired(), 0, "a key aged out during the stall");
        assert_eq!(commits(&mut i), vec![(0, 0)]);
        // Intake flows again at 10,100 ms: the key had been idle 100 ms of
        // intake time; it expires after 1,000 ms of it, not before.
        i.set_blocked(false, 10_100);
        i.evict_idle(11_000);
        assert_eq!(expired(), 0);
        i.evict_idle(11_001);
        assert_eq!(expired(), 1);
        assert_eq!(commits(&mut i), vec![(0, 1)]);
    }

    /// A key's points a minute apart, then eleven minutes of silence: no
    /// window spans the silence, the key's next window is the first three
    /// points after it, and the gap is counted.
    #[test]
    fn a_gap_in_time_restarts_the_keys_window_and_is_counted() {
        let (mut i, _, metrics) = ingest_with_gaps(10);
        let mut windows = vec![];
        // Epoch seconds (the integer rule): steps of 60 s, then 660 s.
        for (offset, ts) in [60, 120, 180, 240, 900, 960, 1020, 1080]
            .into_iter()
            .enumerate()
        {
            let out = i.on_message(&msg(0, offset as i64, &point("a", ts)), 0);
            for job in out.batch.unwrap_or_default() {
                windows.push((job.start_ts_ms / 1000, job.end_ts_ms / 1000));
            }
        }
        assert_eq!(
            windows,
            vec![(60, 180), (120, 240), (900, 1020), (960, 1080)]
        );
        assert_eq!(metrics.window_gaps.get(), 1);
        assert_eq!(
            metrics.buffered_points_dropped.get(),
            0,
            "the points before the gap were scored"
        );
        // Off: the same points are windowed across the silence.
        let (mut i, _, metrics) = ingest();
        let mut ends = vec![];
        for (offset, ts) in [60, 120, 180, 240, 900].into_iter().enumerate() {
            let out = i.on_message(&msg(0, offset as i64, &point("a", ts)), 0);
            ends.extend(
                out.batch
                    .unwrap_or_default()
                    .iter()
                    .map(|j| j.end_ts_ms / 1000),
            );
        }
        assert_eq!(ends, vec![180, 240, 900]);
        assert_eq!(metrics.window_gaps.get(), 0);
    }

    #[test]
    fn evictions_are_counted() {
        let (mut i, _, metrics) = ingest();
        i.on_message(&msg(0, 0, &point("a", 1)), 0);
        i.on_message(&msg(0, 1, &point("b", 1)), 0);
        // max_keys = 2: c evicts a.
        i.on_message(&msg(0, 2, &point("c", 1)), 0);
        i.evict_idle(5_000);
        let evicted = |r: &str| metrics.window_keys_evicted.with_label_values(&[r]).get();
        assert_eq!((evicted("capacity"), evicted("expired")), (1, 2));
        assert_eq!(metrics.buffered_points_dropped.get(), 3);
    }

    #[test]
    fn revoked_partitions_are_shared_until_they_are_assigned_again() {
        let (mut i, events, _) = ingest();
        let revoked = i.revoked();
        assert_eq!(revoked.changed_since(0), None);
        let push = |e| events.lock().unwrap().push(e);
        push(ConsumerEvent::Revoked(vec![
            ("in".into(), 0),
            ("in".into(), 1),
        ]));
        i.apply_events();
        let (g1, parts) = revoked.changed_since(0).unwrap();
        assert_eq!(
            parts,
            HashSet::from([("in".to_string(), 0), ("in".to_string(), 1)])
        );
        assert_eq!(revoked.changed_since(g1), None, "nothing new");
        push(ConsumerEvent::Assigned(vec![("in".into(), 1)]));
        i.apply_events();
        let (_, parts) = revoked.changed_since(g1).unwrap();
        assert_eq!(parts, HashSet::from([("in".to_string(), 0)]));
    }

    #[test]
    fn a_revoked_partition_loses_its_lag_series() {
        let (mut i, events, metrics) = ingest();
        for p in ["0", "1"] {
            metrics.consumer_lag.with_label_values(&["in", p]).set(42);
        }
        events
            .lock()
            .unwrap()
            .push(ConsumerEvent::Revoked(vec![("in".to_string(), 1)]));
        i.apply_events();
        let lag: Vec<String> = metrics
            .registry
            .gather()
            .iter()
            .filter(|f| f.name() == "lstm_ae_consumer_lag_messages")
            .flat_map(|f| f.get_metric().iter())
            .map(|m| {
                m.get_label()
                    .iter()
                    .map(|l| format!("{}={}", l.name(), l.value()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        assert_eq!(lag, vec!["partition=0,topic=in".to_string()]);
    }

    #[test]
    fn window_messages_get_evenly_spaced_row_times() {
        let (mut i, _, _) = ingest();
        // Epoch milliseconds (integers below 10^11 would be read as seconds).
        let body = br#"{"key":"w","start_ts":1700000001000,"end_ts":1700000003000,"values":[[1],[2],[3]]}"#;
        let m = MessageView {
            topic: "win",
            ..msg(0, 0, body)
        };
        let batch = i.on_message(&m, 0).batch.unwrap();
        assert_eq!(
            batch[0].timestamps,
            vec![1_700_000_001_000, 1_700_000_002_000, 1_700_000_003_000]
        );
        assert_eq!(spaced(0, 10, 1), vec![10]);
        assert_eq!(
            spaced(i64::MIN + 1, i64::MAX, 2),
            vec![i64::MIN + 1, i64::MAX]
        );
    }
}
