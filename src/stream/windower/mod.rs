//! Per-key sliding windows over a stream of points, with bounded memory and
//! an exact account of which input offsets its buffers still need.
//!
//! The windower owns, for every live series key, the last few points (at
//! most T − 1 between calls) and the bookkeeping that decides when a window
//! of T points is complete. It knows nothing about Kafka beyond an
//! [`Origin`] (partition, offset) attached to each point.
//!
//! ## Windows and stride
//!
//! A key's accepted points are numbered 1, 2, 3, … A window is T
//! consecutive points; the first ends at point T, the next at T + stride,
//! then T + 2·stride, … So each window is emitted once every `stride`
//! points after the buffer first fills. With `stride > T` the points
//! between two windows belong to no window; they are accepted (they advance
//! the key's clock) but reported as [`PointStatus::Skipped`] and not kept.
//!
//! ## Late data policy
//!
//! Event time must strictly increase per key. A point whose timestamp is
//! equal to the key's last accepted one is [`Rejected::Duplicate`]; an
//! earlier one is [`Rejected::OutOfOrder`]. Rejected points change nothing
//! (not even the key's idle clock). The daemon **counts** them (by
//! [`Rejected::kind`]) and releases their offsets at once; it does not
//! dead-letter them, because late data is not malformed and a replay after
//! a restart produces exactly such duplicates. A point with the wrong
//! number of values is [`Rejected::FeatureMismatch`]: the codec already
//! checks this, so it only guards against a glue bug without panicking.
//!
//! ## Eviction (bounded memory)
//!
//! Memory is bounded by `max_keys × T × F` values; per key that is a ring
//! of `T × (4F + 2)` bytes for a regularly spaced series (values, and event
//! times and offsets as 1-byte codes of the steps from the previous point;
//! up to `T × (4F + 5)` for irregular times, see `ring.rs`) plus a fixed
//! part: the key's map node, name and hold ([`Windower::key_bytes`]).
//!
//! - **Idle keys**: a key not updated for more than `key_ttl_ms` of
//!   processing time (`now_ms`, made monotonic internally) is dropped by
//!   [`Windower::evict_idle`]; a key found idle on [`Windower::push`] is
//!   dropped before the point is applied, so no window ever spans an idle
//!   gap regardless of how often `evict_idle` runs. The key then starts
//!   over (it needs T new points, and its last timestamp is forgotten).
//! - **Too many keys**: when a new key would exceed `max_keys`, the least
//!   recently updated key is dropped.
//! - **Revoked partitions**: [`Windower::forget_partition`] drops every key
//!   of that partition; its new owner rebuilds them from the committed offset.
//! - **Event-time gaps beyond 4-byte steps**: a point more than `u32::MAX`
//!   ms (49.7 days) of event time after its key's previous one starts the
//!   key over, counted as an expired key (no window spans such a gap).
//!
//! ## Gaps in time
//!
//! A key whose points stop and resume is not windowed across the pause as
//! if it were contiguous: a step longer than `max_gap_steps` times the
//! key's typical step ([`crate::data::window::is_gap`]) restarts the key's
//! window. Its buffered points are given up (they were in earlier windows
//! already with stride 1), the point after the gap is the first of a new
//! window, and the restart is counted ([`Eviction::gap_restarts`]). The
//! typical step is the median step of the key's buffered points (the last
//! T − 1 with stride 1), found only when a step exceeds `max_gap_steps`
//! times the ring's time unit (no median is below it), so a regular series
//! pays nothing for the rule; a key with fewer than two buffered points has
//! none and finds no gap. Offline `score` applies the same rule with the
//! file's median step.
//!
//! ## One partition per key
//!
//! A key's points must all arrive on one partition: Kafka orders messages
//! only within a partition, so points of one key spread over two partitions
//! interleave arbitrarily (and a revocation of one partition would drop
//! points of the other). While a key is live, a point of it from another
//! partition is [`Rejected::OtherPartition`]; the daemon dead-letters it
//! (reason `key_on_two_partitions`) so that the data is not lost silently.
//! A key's partition is decided again once it is dropped (TTL, capacity,
//! revocation), or once it has moved: `key_move_after` points in a row
//! from one other partition, each later in event time than the key's last
//! accepted point, with none from its own partition between them — what a
//! partition-count increase does to a key's later points. The last of them
//! starts the key over on the new partition (its buffered points are given
//! up, counted as a moved key); the earlier ones stay rejected. Only later
//! points count, so a backlog of the old partition read after the move does
//! not move the key back.
//!
//! Dropping a key releases its holds: those points are given up (they will
//! not be replayed after a restart either), which is what keeps one dead
//! series from blocking commits for its whole partition forever.
//!
//! ## Offset holds
//!
//! A point is still needed while some future window will contain it. Every
//! point the windower keeps is needed (the buffer is trimmed to exactly the
//! points of the next window). A key's points all come from one partition,
//! so what the key needs of it is one offset, its oldest point's. Offsets
//! are stored as 1-byte codes of the step from the previous point's stored
//! offset, exact while a key's points are less than 256 messages apart and
//! rounded down beyond, by less than 1/128 of the key's widest kept step
//! (see `ring.rs`), and lowered to a new point's offset should offsets ever
//! fall: a stored offset is never above the true one, so a hold is exact or
//! a little lower than needed (a restart replays a little more), never
//! higher. Each key's hold is counted in a per-partition multiset,
//! so [`Windower::min_held_offset`] is a lookup of the smallest key, not a
//! scan over keys, and the multiset has one entry per key, not one per
//! buffered point (T − 1 entries a key would outweigh the ring itself). An
//! emitted [`Window`] carries, in [`Window::holds`], the lowest offset among
//! its points: the daemon turns it into a tracker hold until the window's
//! outputs are delivered (see [`super::offsets`]).

mod ring;

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};

use hashlink::linked_hash_map::RawEntryMut;
use hashlink::LinkedHashMap;

use self::ring::Points;
use super::ParamError;
use crate::data::window::{is_gap, DEFAULT_MAX_GAP_STEPS};

/// Where a point came from in Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    /// Input partition.
    pub partition: i32,
    /// Offset of the message within the partition.
    pub offset: i64,
}

/// Windowing parameters; validated by [`Windower::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowerConfig {
    /// T: points per window (the model's window length).
    pub window: usize,
    /// Points between the ends of consecutive windows; 1 scores every point.
    pub stride: usize,
    /// F: values per point.
    pub features: usize,
    /// A key not updated for longer than this (processing time) is dropped.
    pub key_ttl_ms: u64,
    /// Most keys kept at once; the least recently updated makes room.
    pub max_keys: usize,
    /// A step longer than this many typical steps restarts the key's
    /// window (see "Gaps in time"); 0 windows across any step.
    pub max_gap_steps: u32,
    /// Points in a row from another partition after which a key moves
    /// there (see "One partition per key"); 0 = never.
    pub key_move_after: u32,
}

impl WindowerConfig {
    /// T and F with the defaults: stride 1, one hour TTL, 100 000 keys,
    /// gaps at [`DEFAULT_MAX_GAP_STEPS`] typical steps.
    pub fn new(window: usize, features: usize) -> Self {
        Self {
            window,
            stride: 1,
            features,
            key_ttl_ms: 3_600_000,
            max_keys: 100_000,
            max_gap_steps: DEFAULT_MAX_GAP_STEPS,
            key_move_after: 3,
        }
    }
}

/// A complete window of one key, ready for the batcher.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// Series key.
    pub key: String,
    /// Event time of the first point.
    pub start_ts_ms: i64,
    /// Event time of the last point.
    pub end_ts_ms: i64,
    /// T·F values, row-major, oldest point first.
    pub values: Vec<f32>,
    /// The T event times.
    pub timestamps: Vec<i64>,
    /// Lowest offset per partition among the window's points, sorted by
    /// partition: holding these until the outputs are delivered keeps every
    /// point of the window replayable.
    pub holds: Vec<Origin>,
    /// The point that completed the window (for the anomaly's source).
    pub completed_by: Origin,
}

/// Why a point was not windowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// Same event time as the key's last accepted point.
    Duplicate,
    /// Earlier event time than the key's last accepted point.
    OutOfOrder,
    /// The key's buffered points come from another partition: a key must
    /// arrive on one partition (see "One partition per key" above).
    OtherPartition {
        /// The partition the key's points come from.
        owner: i32,
    },
    /// Not F values (a glue bug: the codec checks this).
    FeatureMismatch {
        /// F.
        expected: usize,
        /// What was pushed.
        got: usize,
    },
}

impl Rejected {
    /// Low-cardinality metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::OutOfOrder => "out_of_order",
            Self::OtherPartition { .. } => "other_partition",
            Self::FeatureMismatch { .. } => "feature_mismatch",
        }
    }
}

/// What happened to a pushed point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointStatus {
    /// Accepted and part of the next window (kept, or in the emitted one).
    Accepted,
    /// Accepted (it advanced the key's clock) but in no window: it falls in
    /// the gap of a stride larger than the window.
    Skipped,
    /// Not windowed; see the late-data policy in the module docs.
    Rejected(Rejected),
}

/// Keys dropped to bound memory, for metrics and logs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Eviction {
    /// Keys dropped for being idle longer than the TTL.
    pub expired_keys: usize,
    /// Keys dropped to make room under `max_keys`.
    pub capacity_keys: usize,
    /// Keys dropped because their partition was revoked.
    pub revoked_keys: usize,
    /// Keys whose window restarted after a gap in time (the key stays).
    pub gap_restarts: usize,
    /// Keys started over on another partition (they moved).
    pub moved_keys: usize,
    /// Buffered points discarded with them.
    pub dropped_points: usize,
}

impl Eviction {
    /// Whether anything was dropped.
    pub fn is_empty(&self) -> bool {
        self.expired_keys
            + self.capacity_keys
            + self.revoked_keys
            + self.moved_keys
            + self.gap_restarts
            == 0
    }
}

/// The result of [`Windower::push`].
#[derive(Debug, Clone, PartialEq)]
pub struct PushOutcome {
    /// What happened to the point.
    pub status: PointStatus,
    /// The window this point completed, if any (at most one per point).
    pub window: Option<Window>,
    /// Keys dropped while handling this point.
    pub evicted: Eviction,
}

/// One key's state: exactly the points of its next window seen so far.
/// Every buffered point comes from `last_partition` (a point from another
/// one is rejected while the key is live), so only offsets are kept.
#[derive(Debug)]
struct KeyState {
    points: Points,
    /// Accepted points still to ignore before the next window starts
    /// (`stride` − T; `Windower::new` keeps `stride` below 2³²).
    skip: u32,
    last_ts: i64,
    last_partition: i32,
    /// Later points in a row from `moving_to`, another partition.
    moving_points: u32,
    moving_to: i32,
    touched_ms: i64,
}

impl KeyState {
    /// The key's hold, counted in `Windower::held` while points are
    /// buffered: the oldest point's stored offset, the lowest stored one.
    fn hold(&self) -> Origin {
        Origin {
            partition: self.last_partition,
            offset: self.points.first_offset(),
        }
    }
}

/// Per-key sliding windows; see the module docs for the policies.
#[derive(Debug)]
pub struct Windower {
    cfg: WindowerConfig,
    /// Keys in order of last update, least recent first: as updates follow
    /// the monotonic clock, the front key is both the one to make room
    /// and the most idle. The order is kept by links inside each entry's
    /// node, so an update moves no memory: an ordered index beside the map
    /// (a `BTreeMap` of update numbers) would allocate and free tree nodes
    /// as keys move to its end, and its live nodes, scattered over the
    /// allocator's pages, would keep those pages resident (the daemon's
    /// memory per key is in docs/performance.md). SipHash (`RandomState`):
    /// key names come from the input.
    keys: LinkedHashMap<Box<str>, KeyState, RandomState>,
    clock_ms: i64,
    /// Per partition, a multiset (offset → count) of the keys' holds
    /// (`KeyState::hold`).
    held: HashMap<i32, BTreeMap<i64, usize>>,
    buffered: usize,
}

fn add_hold(held: &mut HashMap<i32, BTreeMap<i64, usize>>, o: Origin) {
    *held
        .entry(o.partition)
        .or_default()
        .entry(o.offset)
        .or_insert(0) += 1;
}

fn remove_hold(held: &mut HashMap<i32, BTreeMap<i64, usize>>, o: Origin) {
    if let Some(set) = held.get_mut(&o.partition) {
        if let Some(n) = set.get_mut(&o.offset) {
            *n -= 1;
            if *n == 0 {
                set.remove(&o.offset);
            }
        }
        if set.is_empty() {
            held.remove(&o.partition);
        }
    }
}

impl Windower {
    /// A windower with no keys; rejects parameters that would make it
    /// emit nothing or grow without bound.
    pub fn new(cfg: WindowerConfig) -> Result<Self, ParamError> {
        for (field, v) in [
            ("window", cfg.window),
            ("stride", cfg.stride),
            ("features", cfg.features),
            ("max_keys", cfg.max_keys),
        ] {
            if v == 0 {
                return Err(ParamError::new(field, "must be at least 1"));
            }
        }
        // A key's ring counts its slots, and its skipped points, in u32.
        for (field, v) in [("window", cfg.window), ("stride", cfg.stride)] {
            if u32::try_from(v).is_err() {
                return Err(ParamError::new(field, "must be below 2^32"));
            }
        }
        if cfg.key_ttl_ms == 0 || i64::try_from(cfg.key_ttl_ms).is_err() {
            return Err(ParamError::new(
                "key_ttl_ms",
                "must be at least 1 and fit in i64",
            ));
        }
        Ok(Self {
            cfg,
            keys: LinkedHashMap::with_hasher(RandomState::new()),
            clock_ms: i64::MIN,
            held: HashMap::new(),
            buffered: 0,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &WindowerConfig {
        &self.cfg
    }

    /// Number of keys with state.
    pub fn live_keys(&self) -> usize {
        self.keys.len()
    }

    /// Number of points kept in buffers (each holds its offset).
    pub fn buffered_points(&self) -> usize {
        self.buffered
    }

    /// Bytes held for `key`, if it is live: its node (name, state and
    /// the two links of the update order), its hash-table slot (a pointer
    /// and a control byte), its name, its ring of points and its share of
    /// the offset multiset — not counting the hash table's spare room or
    /// the allocator's own overhead.
    pub fn key_bytes(&self, key: &str) -> Option<usize> {
        use std::mem::size_of;
        let s = self.keys.get(key)?;
        let node = size_of::<(Box<str>, KeyState)>() + 2 * size_of::<usize>();
        let slot = size_of::<usize>() + 1;
        let held = size_of::<i64>() + size_of::<usize>();
        Some(node + slot + key.len() + held + s.points.heap_bytes())
    }

    /// The lowest offset of `partition` still needed by a future window,
    /// or `None` when no buffered point comes from it.
    pub fn min_held_offset(&self, partition: i32) -> Option<i64> {
        self.held
            .get(&partition)
            .and_then(|set| set.first_key_value())
            .map(|(&offset, _)| offset)
    }

    /// Drops every key idle for longer than `key_ttl_ms` at `now_ms`,
    /// releasing its holds. Cost is proportional to the keys dropped.
    pub fn evict_idle(&mut self, now_ms: i64) -> Eviction {
        self.clock_ms = self.clock_ms.max(now_ms);
        let mut ev = Eviction::default();
        while self
            .keys
            .front()
            .is_some_and(|(_, s)| is_idle(self.clock_ms, s.touched_ms, &self.cfg))
        {
            if let Some((_, state)) = self.keys.pop_front() {
                ev.dropped_points += give_up_points(&mut self.held, &mut self.buffered, &state);
                ev.expired_keys += 1;
            }
        }
        ev
    }

    /// Drops every key fed from a revoked partition (see module docs); a
    /// key's points all come from one partition, so no other partition's
    /// holds are released. Scans all keys: revocation is rare.
    pub fn forget_partition(&mut self, partition: i32) -> Eviction {
        let Windower {
            keys,
            held,
            buffered,
            ..
        } = self;
        let mut ev = Eviction::default();
        keys.retain(|_, s| {
            if s.last_partition != partition {
                return true;
            }
            ev.dropped_points += give_up_points(held, buffered, s);
            ev.revoked_keys += 1;
            false
        });
        ev
    }

    /// Applies one point of `key`; see the module docs for what is
    /// emitted, rejected and evicted. `now_ms` is processing time.
    pub fn push(
        &mut self,
        key: &str,
        ts_ms: i64,
        values: &[f32],
        origin: Origin,
        now_ms: i64,
    ) -> PushOutcome {
        let mut evicted = Eviction::default();
        let rejected = |r: Rejected, evicted: Eviction| PushOutcome {
            status: PointStatus::Rejected(r),
            window: None,
            evicted,
        };
        if values.len() != self.cfg.features {
            return rejected(
                Rejected::FeatureMismatch {
                    expected: self.cfg.features,
                    got: values.len(),
                },
                evicted,
            );
        }
        self.clock_ms = self.clock_ms.max(now_ms);
        let clock = self.clock_ms;
        let Windower {
            cfg,
            keys,
            held,
            buffered,
            ..
        } = self;

        // A new key beyond `max_keys` makes room first: the least recently
        // updated key goes.
        if keys.len() >= cfg.max_keys && !keys.contains_key(key) {
            if let Some((_, lru)) = keys.pop_front() {
                evicted.dropped_points += give_up_points(held, buffered, &lru);
                evicted.capacity_keys += 1;
            }
        }
        let fresh = || KeyState {
            points: Points::default(),
            skip: 0,
            last_ts: ts_ms,
            last_partition: origin.partition,
            moving_points: 0,
            moving_to: origin.partition,
            touched_ms: clock,
        };
        let state = match keys.raw_entry_mut().from_key(key) {
            RawEntryMut::Occupied(mut entry) => {
                let state = entry.get_mut();
                if is_idle(clock, state.touched_ms, cfg) {
                    evicted.dropped_points += give_up_points(held, buffered, state);
                    evicted.expired_keys += 1;
                    *state = fresh();
                } else if state.last_partition != origin.partition {
                    if !moves(cfg, state, ts_ms, origin.partition) {
                        let owner = state.last_partition;
                        return rejected(Rejected::OtherPartition { owner }, evicted);
                    }
                    evicted.dropped_points += give_up_points(held, buffered, state);
                    evicted.moved_keys += 1;
                    *state = fresh();
                } else if ts_ms <= state.last_ts {
                    let r = if ts_ms == state.last_ts {
                        Rejected::Duplicate
                    } else {
                        Rejected::OutOfOrder
                    };
                    return rejected(r, evicted);
                }
                // Accepted: now the most recently updated key. (A rejected
                // point returned above without moving it.)
                entry.to_back();
                entry.into_mut()
            }
            RawEntryMut::Vacant(entry) => entry.insert(Box::from(key), fresh()).1,
        };

        state.touched_ms = clock;
        // A new key's `last_ts` is `ts_ms`: a step of 0.
        let ts_step = ts_ms.saturating_sub(state.last_ts);
        state.last_ts = ts_ms;
        state.last_partition = origin.partition;
        state.moving_points = 0;
        let point = Point {
            ts_ms,
            ts_step,
            values,
            origin,
        };
        apply(cfg, held, buffered, key, state, point, evicted)
    }
}

/// Counts a point of the key from `partition`, not the key's own: whether
/// it is the `key_move_after`-th later point in a row from there.
fn moves(cfg: &WindowerConfig, state: &mut KeyState, ts_ms: i64, partition: i32) -> bool {
    if cfg.key_move_after == 0 || ts_ms <= state.last_ts {
        return false;
    }
    if state.moving_to != partition || state.moving_points == 0 {
        state.moving_to = partition;
        state.moving_points = 0;
    }
    state.moving_points += 1;
    state.moving_points >= cfg.key_move_after
}

/// Whether a key last updated at `touched_ms` is idle at `clock_ms`
/// (both from the monotonic clock, so `clock_ms ≥ touched_ms`).
fn is_idle(clock_ms: i64, touched_ms: i64, cfg: &WindowerConfig) -> bool {
    clock_ms.saturating_sub(touched_ms).unsigned_abs() > cfg.key_ttl_ms
}

/// Releases a key's hold and uncounts its buffered points (the caller
/// drops or clears them); returns how many there were.
fn give_up_points(
    held: &mut HashMap<i32, BTreeMap<i64, usize>>,
    buffered: &mut usize,
    state: &KeyState,
) -> usize {
    let n = state.points.len();
    if n > 0 {
        remove_hold(held, state.hold());
    }
    *buffered -= n;
    n
}

/// Buffers an accepted point and emits the window it completes.
#[allow(clippy::too_many_arguments)]
fn apply(
    cfg: &WindowerConfig,
    held: &mut HashMap<i32, BTreeMap<i64, usize>>,
    buffered: &mut usize,
    key: &str,
    state: &mut KeyState,
    point: Point,
    mut evicted: Eviction,
) -> PushOutcome {
    let (t, f, stride) = (cfg.window, cfg.features, cfg.stride);
    if state.skip > 0 {
        state.skip -= 1;
        return PushOutcome {
            status: PointStatus::Skipped,
            window: None,
            evicted,
        };
    }
    // Buffered event-time codes have at most 4 bytes: a point more than
    // u32::MAX ms (49.7 days) after the key's last one starts the key
    // over, like an idle key; no window spans such a gap.
    let ts_step = match u32::try_from(point.ts_step) {
        Ok(step) => step,
        Err(_) => {
            evicted.dropped_points += give_up_points(held, buffered, state);
            evicted.expired_keys += 1;
            state.points.clear();
            0
        }
    };
    // A gap in time: the next window starts after it (module docs).
    let step = i64::from(ts_step);
    let limit = i64::from(cfg.max_gap_steps);
    if limit > 0
        && step > state.points.ts_unit().saturating_mul(limit)
        && state
            .points
            .median_step()
            .is_some_and(|typical| is_gap(step, typical, cfg.max_gap_steps))
    {
        // Not counted as dropped: with stride 1 they were all in earlier
        // windows; the restart itself is counted.
        give_up_points(held, buffered, state);
        evicted.gap_restarts += 1;
        state.points.clear();
        state.skip = 0;
    }

    // The key's one hold follows its oldest stored offset.
    let before = (state.points.len() > 0).then(|| state.hold());
    state
        .points
        .push(t, point.values, point.ts_ms, ts_step, point.origin.offset);
    *buffered += 1;
    let hold = state.hold();
    if before != Some(hold) {
        if let Some(old) = before {
            remove_hold(held, old);
        }
        add_hold(held, hold);
    }

    let window = if state.points.len() == t {
        let w = Window {
            key: key.to_owned(),
            start_ts_ms: state.points.first_ts(),
            end_ts_ms: point.ts_ms,
            values: state.points.values(f),
            timestamps: state.points.timestamps(),
            holds: vec![hold],
            completed_by: point.origin,
        };
        // Slide: keep exactly the points the next window needs.
        let drop = stride.min(t);
        remove_hold(held, hold);
        state.points.drop_oldest(drop);
        if state.points.len() > 0 {
            add_hold(held, state.hold());
        }
        *buffered -= drop;
        state.skip = u32::try_from(stride.saturating_sub(t)).unwrap_or(u32::MAX);
        Some(w)
    } else {
        None
    };
    PushOutcome {
        status: PointStatus::Accepted,
        window,
        evicted,
    }
}

/// An accepted point on its way into a key's buffer.
struct Point<'a> {
    ts_ms: i64,
    /// Event time since the key's previous accepted point.
    ts_step: i64,
    values: &'a [f32],
    origin: Origin,
}
#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn cfg(window: usize, stride: usize, features: usize) -> WindowerConfig {
        WindowerConfig {
            window,
            stride,
            features,
            key_ttl_ms: 1_000,
            max_keys: 100,
            // Off: these tests step time freely; the gap tests turn it on.
            max_gap_steps: 0,
            key_move_after: 3,
        }
    }

    pub(super) fn at(partition: i32, offset: i64) -> Origin {
        Origin { partition, offset }
    }

    /// Pushes a single-feature point at processing time 0.
    fn push1(w: &mut Windower, key: &str, ts: i64, v: f32, o: Origin) -> PushOutcome {
        w.push(key, ts, &[v], o, 0)
    }

    #[test]
    fn interleaved_keys_give_exact_windows() {
        // T = 3, F = 2, stride 1. Key a: ts i → [i, 10i]; key b: ts i → [100 + i, -i].
        let mut w = Windower::new(cfg(3, 1, 2)).unwrap();
        let mut windows = Vec::new();
        let mut offset = 0;
        for i in 1..=4 {
            for (key, vals) in [
                ("a", [i as f32, 10.0 * i as f32]),
                ("b", [100.0 + i as f32, -(i as f32)]),
            ] {
                let out = w.push(key, i, &vals, at(0, offset), 0);
                assert_eq!(out.status, PointStatus::Accepted);
                offset += 1;
                windows.extend(out.window);
            }
        }
        let got: Vec<(&str, Vec<f32>, Vec<i64>)> = windows
            .iter()
            .map(|w| (w.key.as_str(), w.values.clone(), w.timestamps.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", vec![1., 10., 2., 20., 3., 30.], vec![1, 2, 3]),
                ("b", vec![101., -1., 102., -2., 103., -3.], vec![1, 2, 3]),
                ("a", vec![2., 20., 3., 30., 4., 40.], vec![2, 3, 4]),
                ("b", vec![102., -2., 103., -3., 104., -4.], vec![2, 3, 4]),
            ]
        );
        // Offsets: a got 0, 2, 4, 6 and b got 1, 3, 5, 7.
        assert_eq!(windows[0].holds, vec![at(0, 0)]);
        assert_eq!(windows[0].completed_by, at(0, 4));
        assert_eq!(windows[3].holds, vec![at(0, 3)]);
        assert_eq!((windows[3].start_ts_ms, windows[3].end_ts_ms), (2, 4));
        // Buffers now: a {3: off 4, 4: off 6}, b {3: off 5, 4: off 7}.
        assert_eq!(w.buffered_points(), 4);
        assert_eq!(w.min_held_offset(0), Some(4));
        assert_eq!(w.min_held_offset(1), None);
        assert_eq!(w.live_keys(), 2);
    }

    #[test]
    fn stride_smaller_than_window() {
        // T = 3, stride 2: windows end at points 3, 5, 7, 9.
        let mut w = Windower::new(cfg(3, 2, 1)).unwrap();
        let mut ends = Vec::new();
        for i in 1..=9 {
            let out = push1(&mut w, "k", i, i as f32, at(0, i));
            assert_eq!(out.status, PointStatus::Accepted);
            if let Some(win) = out.window {
                ends.push(win.values);
            }
        }
        assert_eq!(
            ends,
            vec![
                vec![1., 2., 3.],
                vec![3., 4., 5.],
                vec![5., 6., 7.],
                vec![7., 8., 9.]
            ]
        );
        // Next window is points 9, 10, 11: only point 9 (offset 9) is kept.
        assert_eq!(w.buffered_points(), 1);
        assert_eq!(w.min_held_offset(0), Some(9));
    }

    #[test]
    fn stride_larger_than_window_skips_and_holds_nothing_in_gaps() {
        // T = 2, stride 4: windows are points (1,2), (5,6), (9,10); 3, 4, 7, 8 skipped.
        let mut w = Windower::new(cfg(2, 4, 1)).unwrap();
        let mut statuses = Vec::new();
        let mut windows = Vec::new();
        let mut held_after = Vec::new();
        for i in 1..=10 {
            let out = push1(&mut w, "k", i * 10, i as f32, at(3, 100 + i));
            statuses.push(out.status);
            windows.extend(out.window.map(|w| w.values));
            held_after.push(w.min_held_offset(3));
        }
        use PointStatus::{Accepted as A, Skipped as S};
        assert_eq!(statuses, vec![A, A, S, S, A, A, S, S, A, A]);
        assert_eq!(windows, vec![vec![1., 2.], vec![5., 6.], vec![9., 10.]]);
        assert_eq!(
            held_after,
            vec![
                Some(101),
                None,
                None,
                None,
                Some(105),
                None,
                None,
                None,
                Some(109),
                None
            ]
        );
        assert_eq!(w.buffered_points(), 0);
    }

    #[test]
    fn duplicates_and_out_of_order_are_rejected_without_effect() {
        let mut w = Windower::new(cfg(2, 1, 1)).unwrap();
        assert_eq!(
            push1(&mut w, "k", 10, 1.0, at(0, 0)).status,
            PointStatus::Accepted
        );
        let mut counts = std::collections::BTreeMap::new();
        for (ts, off) in [(10, 1), (9, 2), (10, 3), (5, 4)] {
            let out = push1(&mut w, "k", ts, 99.0, at(0, off));
            assert!(out.window.is_none());
            let PointStatus::Rejected(r) = out.status else {
                panic!("ts {ts} accepted");
            };
            *counts.entry(r.kind()).or_insert(0) += 1;
        }
        assert_eq!(
            counts,
            std::collections::BTreeMap::from([("duplicate", 2), ("out_of_order", 2)])
        );
        // Rejected points are not held and not windowed: the next window is (10, 11).
        assert_eq!(w.min_held_offset(0), Some(0));
        let out = push1(&mut w, "k", 11, 2.0, at(0, 5));
        assert_eq!(out.window.unwrap().values, vec![1.0, 2.0]);
        // Another key with the same timestamps is unaffected.
        assert_eq!(
            push1(&mut w, "j", 10, 1.0, at(0, 6)).status,
            PointStatus::Accepted
        );
        // Wrong number of values is rejected, not a panic.
        let out = w.push("k", 50, &[1.0, 2.0], at(0, 7), 0);
        assert_eq!(
            out.status,
            PointStatus::Rejected(Rejected::FeatureMismatch {
                expected: 1,
                got: 2
            })
        );
    }

    #[test]
    fn ttl_eviction_releases_holds() {
        // TTL 1000 ms.
        let mut w = Windower::new(cfg(3, 1, 1)).unwrap();
        w.push("a", 1, &[1.0], at(0, 10), 0);
        w.push("a", 2, &[2.0], at(0, 11), 500);
        w.push("b", 1, &[1.0], at(1, 20), 900);
        assert_eq!(w.min_held_offset(0), Some(10));
        // a was last updated at 500: idle 1000 at 1500 is not *more* than the TTL.
        assert!(w.evict_idle(1_500).is_empty());
        let ev = w.evict_idle(1_501);
        assert_eq!(
            ev,
            Eviction {
                expired_keys: 1,
                dropped_points: 2,
                ..Eviction::default()
            }
        );
        assert_eq!(w.min_held_offset(0), None);
        assert_eq!(w.min_held_offset(1), Some(20));
        assert_eq!(w.live_keys(), 1);
        // A clock going backwards does not resurrect anything or expire early.
        assert!(w.evict_idle(0).is_empty());
        let ev = w.evict_idle(1_901);
        assert_eq!(ev.expired_keys, 1);
        assert_eq!(w.live_keys(), 0);
        assert_eq!(w.buffered_points(), 0);
    }

    #[test]
    fn idle_key_starts_over_on_push_without_evict_idle() {
        let mut w = Windower::new(cfg(2, 1, 1)).unwrap();
        w.push("a", 100, &[1.0], at(0, 1), 0);
        // 1001 ms later: a's buffer is dropped, so no window (1, 2) spanning the gap,
        // and its last timestamp is forgotten, so an earlier ts is accepted.
        let out = w.push("a", 50, &[2.0], at(0, 2), 1_001);
        assert_eq!(out.status, PointStatus::Accepted);
        assert!(out.window.is_none());
        assert_eq!(out.evicted.expired_keys, 1);
        assert_eq!(out.evicted.dropped_points, 1);
        assert_eq!(w.min_held_offset(0), Some(2));
        let out = w.push("a", 60, &[3.0], at(0, 3), 1_002);
        assert_eq!(out.window.unwrap().values, vec![2.0, 3.0]);
    }

    /// Room for two keys (T = 3); `a` (offset 1) then `b` (offset 2) on
    /// partition 0, so `a` is the least recently updated.
    fn two_keys_a_then_b() -> Windower {
        let mut w = Windower::new(WindowerConfig {
            max_keys: 2,
            ..cfg(3, 1, 1)
        })
        .unwrap();
        w.push("a", 1, &[1.0], at(0, 1), 1);
        w.push("b", 1, &[1.0], at(0, 2), 2);
        w
    }

    #[test]
    fn max_keys_evicts_least_recently_updated() {
        let mut w = two_keys_a_then_b();
        w.push("a", 2, &[1.0], at(0, 3), 3); // a is now more recent than b
        assert_eq!(w.min_held_offset(0), Some(1));
        let out = w.push("c", 1, &[1.0], at(1, 4), 4);
        assert_eq!(
            out.evicted,
            Eviction {
                capacity_keys: 1,
                dropped_points: 1,
                ..Eviction::default()
            }
        );
        assert_eq!(w.live_keys(), 2);
        // b (offset 2) is gone; a still holds 1 and 3.
        assert_eq!(w.min_held_offset(0), Some(1));
        assert_eq!(w.buffered_points(), 3);
        // b comes back as a new key and evicts a, the LRU now: partition 0 keeps only b's point.
        let out = w.push("b", 2, &[1.0], at(0, 5), 5);
        assert_eq!(out.evicted.capacity_keys, 1);
        assert_eq!(out.evicted.dropped_points, 2);
        assert_eq!(w.min_held_offset(0), Some(5));
        assert_eq!(w.min_held_offset(1), Some(4));
    }

    #[test]
    fn a_rejected_point_does_not_make_its_key_recent() {
        // "Rejected points change nothing": a key sending only duplicates,
        // late or misrouted points stays where its last accepted point put
        // it in the eviction order, and is the first to make room.
        for bad in [
            (1, at(0, 3)), // duplicate
            (0, at(0, 3)), // out of order
            (2, at(1, 3)), // from another partition
        ] {
            let mut w = two_keys_a_then_b();
            let (ts, origin) = bad;
            let out = w.push("a", ts, &[1.0], origin, 3);
            assert!(matches!(out.status, PointStatus::Rejected(_)), "{bad:?}");
            w.push("c", 1, &[1.0], at(0, 4), 4);
            assert!(w.key_bytes("a").is_none(), "{bad:?}: a should be evicted");
            assert!(w.key_bytes("b").is_some(), "{bad:?}: b was updated later");
        }
    }

    /// After a partition-count increase a key's later points come from a
    /// new partition: the third in a row moves the key there.
    #[test]
    fn a_key_moves_to_another_partition_after_key_move_after_later_points() {
        let mut w = Windower::new(cfg(3, 1, 1)).unwrap();
        for (i, ts) in (1..=4).enumerate() {
            w.push("k", ts, &[0.], at(0, i as i64), 0);
        }
        assert_eq!(w.min_held_offset(0), Some(2));
        let other = PointStatus::Rejected(Rejected::OtherPartition { owner: 0 });
        assert_eq!(w.push("k", 5, &[0.], at(1, 0), 0).status, other);
        // A point of its own partition in between starts the count over.
        assert_eq!(
            w.push("k", 6, &[0.], at(0, 4), 0).status,
            PointStatus::Accepted
        );
        assert_eq!(w.push("k", 7, &[0.], at(1, 1), 0).status, other);
        // An earlier point does not count (a backlog of the other partition).
        assert_eq!(w.push("k", 6, &[0.], at(1, 2), 0).status, other);
        assert_eq!(w.push("k", 8, &[0.], at(1, 3), 0).status, other);
        let out = w.push("k", 9, &[0.], at(1, 4), 0);
        assert_eq!(out.status, PointStatus::Accepted);
        assert_eq!(out.evicted.moved_keys, 1);
        assert_eq!(out.evicted.dropped_points, 2);
        // Started over on partition 1: partition 0 holds nothing, and the
        // old partition's later backlog is refused without moving it back.
        assert_eq!(
            (w.min_held_offset(0), w.min_held_offset(1)),
            (None, Some(4))
        );
        let back = PointStatus::Rejected(Rejected::OtherPartition { owner: 1 });
        for (i, ts) in (5..8).enumerate() {
            assert_eq!(w.push("k", ts, &[0.], at(0, 5 + i as i64), 0).status, back);
        }
        w.push("k", 10, &[0.], at(1, 5), 0);
        let win = w
            .push("k", 11, &[0.], at(1, 6), 0)
            .window
            .expect("a window");
        assert_eq!(win.holds, vec![at(1, 4)]);
        // 0 keeps a key on its partition for good.
        let mut w = Windower::new(WindowerConfig {
            key_move_after: 0,
            ..cfg(3, 1, 1)
        })
        .unwrap();
        w.push("k", 1, &[0.], at(0, 0), 0);
        for ts in 2..10 {
            assert!(matches!(
                w.push("k", ts, &[0.], at(1, ts), 0).status,
                PointStatus::Rejected(_)
            ));
        }
    }

    #[test]
    fn min_held_offset_across_keys_partitions_and_slides() {
        // T = 3, stride 1. Key a on partition 0, keys b and x on partition 1.
        let mut w = Windower::new(cfg(3, 1, 1)).unwrap();
        w.push("a", 1, &[0.], at(0, 0), 0);
        w.push("b", 1, &[0.], at(1, 0), 0);
        w.push("x", 1, &[0.], at(1, 1), 0);
        // x's next point comes from partition 0: refused, nothing changes.
        let out = w.push("x", 2, &[0.], at(0, 1), 0);
        assert_eq!(
            out.status,
            PointStatus::Rejected(Rejected::OtherPartition { owner: 1 })
        );
        assert_eq!(w.buffered_points(), 3);
        w.push("x", 2, &[0.], at(1, 2), 0);
        w.push("a", 2, &[0.], at(0, 2), 0);
        assert_eq!(
            (w.min_held_offset(0), w.min_held_offset(1)),
            (Some(0), Some(0))
        );
        // a's third point completes (0, 2, 4); a keeps offsets 2, 4.
        let win = w.push("a", 3, &[0.], at(0, 4), 0).window.unwrap();
        assert_eq!(win.holds, vec![at(0, 0)]);
        assert_eq!(w.min_held_offset(0), Some(2));
        let win = w.push("x", 3, &[0.], at(1, 3), 0).window.unwrap();
        assert_eq!(win.holds, vec![at(1, 1)]);
        // x slid: it keeps (1, 2), (1, 3); partition 1 still has b at 0.
        assert_eq!(
            (w.min_held_offset(0), w.min_held_offset(1)),
            (Some(2), Some(0))
        );
        // Revoking partition 1 drops b and x, not a.
        let ev = w.forget_partition(1);
        assert_eq!((ev.revoked_keys, ev.dropped_points), (2, 3));
        assert_eq!(
            (w.min_held_offset(0), w.min_held_offset(1)),
            (Some(2), None)
        );
        assert_eq!(w.live_keys(), 1);
        // Once dropped, x may start over on another partition.
        assert_eq!(
            w.push("x", 9, &[0.], at(0, 5), 0).status,
            PointStatus::Accepted
        );
    }

    #[test]
    fn a_key_holds_its_lowest_offset_once() {
        // T = 4 over three keys: the multiset has one entry per live key,
        // not one per buffered point, and it follows each key's minimum even
        // when a key's offsets do not rise.
        let mut w = Windower::new(cfg(4, 1, 1)).unwrap();
        for i in 0..10 {
            for (k, key) in ["a", "b", "c"].iter().enumerate() {
                w.push(key, i, &[0.0], at(0, 100 + 3 * i + k as i64), 0);
            }
        }
        assert_eq!(w.buffered_points(), 9);
        assert_eq!(w.held[&0].values().sum::<usize>(), 3);
        // a keeps ts 7, 8, 9 at offsets 121, 124, 127.
        assert_eq!(w.min_held_offset(0), Some(121));
        let mut w = Windower::new(cfg(3, 1, 1)).unwrap();
        w.push("k", 1, &[0.0], at(0, 50), 0);
        w.push("k", 2, &[0.0], at(0, 40), 0);
        assert_eq!(w.min_held_offset(0), Some(40));
        let win = w.push("k", 3, &[0.0], at(0, 60), 0).window.unwrap();
        assert_eq!(win.holds, vec![at(0, 40)]);
        // Kept: offsets 40 and 60.
        assert_eq!(w.min_held_offset(0), Some(40));
        w.push("k", 4, &[0.0], at(0, 70), 0);
        assert_eq!(w.min_held_offset(0), Some(60));
        assert_eq!(w.held[&0].values().sum::<usize>(), 1);
    }

    #[test]
    fn a_key_costs_under_a_kilobyte_at_t64() {
        // The daemon's default model: T = 64, F = 1. A key's bytes are
        // reached on its first point and stay there.
        let mut w = Windower::new(WindowerConfig::new(64, 1)).unwrap();
        let key = "machine-00001";
        w.push(key, 0, &[0.5], at(0, 0), 0);
        let first = w.key_bytes(key).unwrap();
        for i in 1..1_000 {
            w.push(key, i, &[0.5], at(0, i), 0);
        }
        let bytes = w.key_bytes(key).unwrap();
        assert_eq!(bytes, first, "grew after its first point");
        // The ring: 64 × (4-byte value + 1-byte time code + 1-byte offset
        // code) in one allocation, a regular series; the rest is the key's
        // node in the map (with the links of the update order), its table
        // slot, one multiset entry and the name (and in the state, the
        // count of a partition move).
        assert!(bytes <= 560, "{bytes} bytes per key");
        assert!(bytes >= 64 * 6, "{bytes}: the ring alone is 384");
        // A key's node (name, state, two links) is one allocation of
        // jemalloc's 128-byte class; the hash table's buckets, 131,072 for
        // 100,000 keys used or not, are one pointer each.
        let node = std::mem::size_of::<(Box<str>, KeyState)>() + 2 * std::mem::size_of::<usize>();
        assert!(node <= 128, "{node} bytes per key node");
    }

    /// A tiny deterministic generator for the reference tests.
    pub(super) fn lcg(state: &mut u64) -> u64 {
        *state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        *state >> 33
    }

    #[test]
    fn windows_match_a_plain_slice_of_the_accepted_points() {
        // Every (T, stride, F) over 60 points of rising times and offsets on
        // one key: each window is exactly the T accepted points ending at
        // the one that completed it, whatever the ring's position. Two kinds
        // of steps: small and irregular (every code fits at once: the hold
        // is exactly the lowest offset), and mostly regular with one point
        // in eight far away in time or offset (the ring recodes its times
        // to a smaller unit or wider codes, and raises its offset shift):
        // times stay exact, and the hold is never above the lowest offset
        // and less than T·2^24 below it (steps under 2^32: shift ≤ 24).
        let mut rng = 7;
        for wide in [false, true] {
            for t in 1..=6 {
                for stride in 1..=8 {
                    for f in 1..=2 {
                        let mut w = Windower::new(cfg(t, stride, f)).unwrap();
                        let (mut ts, mut off) = (1_000_i64, 0_i64);
                        let mut seen: Vec<(i64, i64, Vec<f32>)> = Vec::new();
                        let mut windows = 0;
                        for n in 1..=60_usize {
                            let far = wide && lcg(&mut rng).is_multiple_of(8);
                            ts += match (wide, far) {
                                (false, _) => 1 + (lcg(&mut rng) % 5_000) as i64,
                                (true, false) => 300_000,
                                (true, true) => 1 + lcg(&mut rng) as i64,
                            };
                            off += match far {
                                false => 1 + (lcg(&mut rng) % 3) as i64,
                                true => 1 + lcg(&mut rng) as i64,
                            };
                            let vals: Vec<f32> = (0..f).map(|j| (n * 10 + j) as f32).collect();
                            let out = w.push("k", ts, &vals, at(2, off), 0);
                            seen.push((ts, off, vals));
                            let ends_window = n >= t && (n - t) % stride == 0;
                            assert_eq!(out.window.is_some(), ends_window, "T {t} s {stride} n {n}");
                            if let Some(win) = out.window {
                                windows += 1;
                                let want = &seen[n - t..n];
                                let ts_want: Vec<i64> = want.iter().map(|p| p.0).collect();
                                let v_want: Vec<f32> =
                                    want.iter().flat_map(|p| p.2.iter().copied()).collect();
                                assert_eq!(win.timestamps, ts_want);
                                assert_eq!(win.values, v_want);
                                assert_eq!((win.start_ts_ms, win.end_ts_ms), (want[0].0, ts));
                                let [hold] = win.holds[..] else {
                                    panic!("{:?}", win.holds)
                                };
                                assert_eq!(hold.partition, 2);
                                let lowest = want[0].1;
                                if wide {
                                    assert!(hold.offset <= lowest, "{hold:?} above {lowest}");
                                    let slack = lowest - hold.offset;
                                    assert!(slack < (t as i64) << 24, "{slack} below");
                                } else {
                                    assert_eq!(hold.offset, lowest);
                                }
                            }
                        }
                        assert_eq!(windows, (60 - t) / stride + 1);
                    }
                }
            }
        }
    }

    /// Regular steps of 10 ms, then 101 ms (over 10 steps): the window
    /// restarts after the gap, the key's hold moves to the first point
    /// after it, and a step of exactly 10 typical steps is not a gap. The
    /// typical step is the median of the buffered points' steps (T − 1 = 2
    /// points here, so one step).
    #[test]
    fn a_gap_in_time_restarts_the_window_and_releases_the_points_before_it() {
        let mut w = Windower::new(WindowerConfig {
            max_gap_steps: 10,
            ..cfg(3, 1, 1)
        })
        .unwrap();
        let mut ends = vec![];
        let mut gaps = 0;
        let mut push = |w: &mut Windower, ts: i64, offset: i64| {
            let out = push1(w, "a", ts, ts as f32, at(0, offset));
            gaps += out.evicted.gap_restarts;
            assert_eq!(out.evicted.dropped_points, 0);
            if let Some(win) = out.window {
                ends.push((win.start_ts_ms, win.end_ts_ms));
            }
        };
        // One buffered point has no typical step: 500 ms is no gap.
        for (o, ts) in [0, 500, 510, 520].into_iter().enumerate() {
            push(&mut w, ts, o as i64);
        }
        assert_eq!(w.min_held_offset(0), Some(2));
        // Buffered: 510, 520, a step of 10 ms.
        push(&mut w, 621, 4);
        assert_eq!(
            w.min_held_offset(0),
            Some(4),
            "the points before the gap are released"
        );
        assert_eq!(w.buffered_points(), 1);
        for (o, ts) in [(5, 631), (6, 641), (7, 741), (8, 751), (9, 852)] {
            // 741: exactly 10 steps, not a gap; 852: 101 ms, a gap.
            push(&mut w, ts, o);
        }
        assert_eq!(
            ends,
            vec![(0, 510), (500, 520), (621, 641), (631, 741), (641, 751)]
        );
        assert_eq!(gaps, 2);
        assert_eq!(w.min_held_offset(0), Some(9));
    }

    #[test]
    fn a_gap_beyond_four_byte_steps_starts_the_key_over() {
        let mut w = Windower::new(cfg(3, 1, 1)).unwrap();
        let day = 86_400_000_i64;
        w.push("k", 0, &[1.0], at(0, 1), 0);
        w.push("k", day, &[2.0], at(0, 2), 0);
        assert_eq!(w.min_held_offset(0), Some(1));
        // 2^32 ms is 49.7 days: 50 days later the two points are given up,
        // counted as an expired key's, and their holds released.
        let out = w.push("k", 51 * day, &[3.0], at(0, 3), 0);
        assert_eq!(out.status, PointStatus::Accepted);
        assert!(out.window.is_none());
        assert_eq!(
            (out.evicted.expired_keys, out.evicted.dropped_points),
            (1, 2)
        );
        assert_eq!(w.min_held_offset(0), Some(3));
        assert_eq!(w.buffered_points(), 1);
        // 49 days apart fits: a window of exact times.
        w.push("k", 100 * day, &[4.0], at(0, 4), 0);
        let win = w.push("k", 149 * day, &[5.0], at(0, 5), 0).window.unwrap();
        assert_eq!(win.timestamps, vec![51 * day, 100 * day, 149 * day]);
        assert_eq!(win.values, vec![3.0, 4.0, 5.0]);
    }

    #[test]
    fn rejects_degenerate_config() {
        for bad in [
            WindowerConfig {
                window: 0,
                ..cfg(3, 1, 1)
            },
            WindowerConfig {
                stride: 0,
                ..cfg(3, 1, 1)
            },
            WindowerConfig {
                features: 0,
                ..cfg(3, 1, 1)
            },
            WindowerConfig {
                max_keys: 0,
                ..cfg(3, 1, 1)
            },
            WindowerConfig {
                key_ttl_ms: 0,
                ..cfg(3, 1, 1)
            },
            WindowerConfig {
                key_ttl_ms: u64::MAX,
                ..cfg(3, 1, 1)
            },
            // Counted in u32 per key (the ring's slots, the skipped points).
            WindowerConfig {
                window: usize::MAX,
                ..cfg(3, 1, 1)
            },
            WindowerConfig {
                stride: usize::MAX,
                ..cfg(3, 1, 1)
            },
        ] {
            assert!(Windower::new(bad).is_err());
        }
        let d = WindowerConfig::new(64, 3);
        assert_eq!((d.window, d.stride, d.features), (64, 1, 3));
    }
}
