//! The commit rule: which offset of each partition is safe to commit.
//!
//! [`OffsetTracker`] owns, per assigned partition, the multiset of offsets
//! still held by work in flight and the last consumed offset. It answers one
//! question, [`OffsetTracker::committable`], and is the only place that
//! answers it.
//!
//! ## The rule
//!
//! Kafka commits "the next offset to read": after a restart the group
//! resumes there, and everything before it is never seen again. So the
//! committed offset for a partition is
//!
//! ```text
//! min( lowest offset held by the tracker,
//!      lowest offset held by a point in a windower buffer,
//!      last consumed offset + 1 )
//! ```
//!
//! and nothing past a held offset is ever committed. An offset is held by
//! the tracker from [`consumed`](OffsetTracker::consumed) until its
//! [`Hold`] is [`release`](OffsetTracker::release)d, and by every extra
//! [`hold`](OffsetTracker::hold) until that one is released:
//!
//! - a message that produces outputs is held until each is acknowledged
//!   by the broker (the daemon holds once per output, or once per window
//!   and releases after the last ack);
//! - a dead-lettered message is held until the dead letter is acknowledged;
//! - a late or stride-skipped point produces nothing and is released at once;
//! - a point kept in a windower buffer is covered by the windower's own
//!   minimum ([`super::windower::Windower::min_held_offset`]), passed in.
//!
//! Replaying from the committed offset therefore re-creates every window
//! whose outputs were not all delivered: at-least-once. Outputs delivered
//! after the committed offset are produced again on replay (duplicates,
//! never gaps).
//!
//! ## Revocation and stale acknowledgements
//!
//! [`forget`](OffsetTracker::forget) drops a revoked partition. Each
//! [`Hold`] remembers the *generation* of the partition's state it was taken
//! in, so an acknowledgement that arrives after the partition was revoked
//! (and perhaps assigned again, re-consuming the same offsets) cannot
//! release a hold of the new assignment: it is ignored.

use std::collections::{BTreeMap, HashMap};

/// Proof that an offset is held; give it back to
/// [`OffsetTracker::release`] exactly once. Not `Clone`: two releases of
/// one hold would be a double count.
#[derive(Debug, PartialEq, Eq, Hash)]
#[must_use = "an offset stays uncommitted until its Hold is released"]
pub struct Hold {
    partition: i32,
    offset: i64,
    generation: u64,
}

impl Hold {
    /// The held partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// The held offset.
    pub fn offset(&self) -> i64 {
        self.offset
    }
}

#[derive(Debug, Default)]
struct PartitionState {
    generation: u64,
    /// offset → number of holds on it.
    held: BTreeMap<i64, usize>,
    /// Last consumed offset + 1.
    next_offset: Option<i64>,
}

/// Per-partition offset bookkeeping; see the module docs for the rule.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<i32, PartitionState>,
    next_generation: u64,
}

impl OffsetTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&mut self, partition: i32) -> &mut PartitionState {
        let next_generation = &mut self.next_generation;
        self.partitions.entry(partition).or_insert_with(|| {
            *next_generation += 1;
            PartitionState {
                generation: *next_generation,
                ..PartitionState::default()
            }
        })
    }

    /// Registers a consumed message and holds its offset until the returned
    /// [`Hold`] is released. A partition seen for the first time (or again
    /// after [`forget`](Self::forget)) starts a new generation.
    pub fn consumed(&mut self, partition: i32, offset: i64) -> Hold {
        let state = self.state(partition);
        state.next_offset = Some(state.next_offset.map_or(offset.saturating_add(1), |n| {
            n.max(offset.saturating_add(1))
        }));
        *state.held.entry(offset).or_insert(0) += 1;
        Hold {
            partition,
            offset,
            generation: state.generation,
        }
    }

    /// Adds a hold on an offset of a tracked partition (e.g. a window's
    /// lowest offset, until its outputs are delivered). `None` if the
    /// partition is not tracked (revoked): there is nothing to protect.
    ///
    /// Take it while something else still holds an offset ≤ `offset` (the
    /// message's own hold or the windower buffer), so the committable offset
    /// never has to move backwards.
    pub fn hold(&mut self, partition: i32, offset: i64) -> Option<Hold> {
        let state = self.partitions.get_mut(&partition)?;
        *state.held.entry(offset).or_insert(0) += 1;
        Some(Hold {
            partition,
            offset,
            generation: state.generation,
        })
    }

    /// Gives a hold back. Returns `false` (and changes nothing) for a hold
    /// of a revoked partition or an earlier assignment of it.
    pub fn release(&mut self, hold: Hold) -> bool {
        let Some(state) = self.partitions.get_mut(&hold.partition) else {
            return false;
        };
        if state.generation != hold.generation {
            return false;
        }
        match state.held.get_mut(&hold.offset) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                state.held.remove(&hold.offset);
            }
            // Unreachable: a Hold of this generation is counted until released.
            None => return false,
        }
        true
    }

    /// The offset to commit for `partition` — the next offset to read after
    /// a restart — given the windower's lowest buffered offset for it.
    /// `None` if nothing has been consumed from it (in this assignment).
    pub fn committable(&self, partition: i32, windower_min: Option<i64>) -> Option<i64> {
        let state = self.partitions.get(&partition)?;
        let next = state.next_offset?;
        let tracked = state.held.first_key_value().map(|(&o, _)| o);
        Some(
            [tracked, windower_min]
                .into_iter()
                .flatten()
                .fold(next, i64::min),
        )
    }

    /// Drops a revoked partition's state; outstanding holds of it become
    /// stale and their release is ignored.
    pub fn forget(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// The tracked partitions, for the commit loop.
    pub fn partitions(&self) -> impl Iterator<Item = i32> + '_ {
        self.partitions.keys().copied()
    }

    /// Number of outstanding holds on `partition` (a gauge for metrics).
    pub fn holds(&self, partition: i32) -> usize {
        self.partitions
            .get(&partition)
            .map_or(0, |s| s.held.values().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::windower::{Origin, PointStatus, Windower, WindowerConfig};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn next_offset_when_nothing_is_held() {
        let mut t = OffsetTracker::new();
        assert_eq!(t.committable(0, None), None);
        for o in 5..8 {
            let h = t.consumed(0, o);
            assert_eq!(t.committable(0, None), Some(o));
            assert!(t.release(h));
        }
        assert_eq!(t.committable(0, None), Some(8));
        assert_eq!(t.committable(1, None), None);
    }

    #[test]
    fn lowest_hold_wins_whatever_the_release_order() {
        let mut t = OffsetTracker::new();
        let mut holds: Vec<Hold> = (0..5).map(|o| t.consumed(0, o)).collect();
        // Release 4, 3, 2, 1: offset 0 is still held.
        for h in holds.drain(1..).rev() {
            assert!(t.release(h));
            assert_eq!(t.committable(0, None), Some(0));
        }
        assert!(t.release(holds.remove(0)));
        assert_eq!(t.committable(0, None), Some(5));
    }

    #[test]
    fn extra_holds_and_windower_minimum() {
        let mut t = OffsetTracker::new();
        let m0 = t.consumed(2, 0);
        let m1 = t.consumed(2, 1);
        // Two outputs of message 1, held separately.
        let out_a = t.hold(2, 1).unwrap();
        let out_b = t.hold(2, 1).unwrap();
        assert!(t.release(m0));
        assert!(t.release(m1));
        assert_eq!(t.holds(2), 2);
        assert_eq!(t.committable(2, None), Some(1));
        assert!(t.release(out_a));
        assert_eq!(t.committable(2, None), Some(1));
        assert!(t.release(out_b));
        assert_eq!(t.committable(2, None), Some(2));
        // A point of offset 0 still in a window buffer pins the commit.
        assert_eq!(t.committable(2, Some(0)), Some(0));
        // A windower minimum above the consumed range cannot push it forward.
        assert_eq!(t.committable(2, Some(9)), Some(2));
        assert_eq!(t.hold(7, 0), None);
    }

    #[test]
    fn stale_release_after_revocation_is_ignored() {
        let mut t = OffsetTracker::new();
        let old = t.consumed(0, 10);
        t.forget(0);
        assert_eq!(t.committable(0, None), None);
        assert_eq!(t.partitions().count(), 0);
        // Reassigned: the same offset is consumed again.
        let new = t.consumed(0, 10);
        assert!(!t.release(old));
        assert_eq!(t.committable(0, None), Some(10));
        assert!(t.release(new));
        assert_eq!(t.committable(0, None), Some(11));
    }

    /// Smallest window end (T + k·stride, k ≥ 0) after point `n`.
    fn next_window_end(n: usize, t: usize, stride: usize) -> usize {
        if n < t {
            t
        } else {
            t + ((n - t) / stride + 1) * stride
        }
    }

    /// Whether point `i` (1-based) is in some window T + k·stride.
    fn in_some_window(i: usize, t: usize, stride: usize) -> bool {
        next_window_end(i - 1, t, stride) - t < i
    }

    /// The daemon's protocol driven at random against the windower and the
    /// tracker; after every step the committed offset must equal the one a
    /// reference model computes from scratch: the lowest offset of any
    /// undelivered dead letter, any point of an undelivered window, any
    /// point a future window of its key will contain — else last + 1.
    #[test]
    fn randomized_commit_matches_reference_and_never_passes_a_held_offset() {
        const KEYS: usize = 4;
        for seed in 0..150u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let t_len = rng.random_range(1..=4usize);
            let stride = rng.random_range(1..=5usize);
            let mut w = Windower::new(WindowerConfig {
                window: t_len,
                stride,
                features: 1,
                key_ttl_ms: 1 << 40,
                max_keys: 100,
                // The reference model below knows no gap rule.
                max_gap_steps: 0,
                key_move_after: 3,
            })
            .unwrap();
            let mut tracker = OffsetTracker::new();
            let mut next_off = [0i64; 2];
            let mut last_ts: [Option<i64>; KEYS] = [None; KEYS];
            let mut accepted: Vec<Vec<Origin>> = vec![Vec::new(); KEYS];
            let mut in_flight: Vec<(Vec<Origin>, Vec<Hold>)> = Vec::new();
            let mut dead: Vec<(Origin, Hold)> = Vec::new();

            for step in 0..300 {
                let roll = rng.random_range(0..100);
                if roll < 60 {
                    let p = rng.random_range(0..2i32);
                    let o = next_off[p as usize];
                    next_off[p as usize] += 1;
                    let origin = Origin {
                        partition: p,
                        offset: o,
                    };
                    let msg = tracker.consumed(p, o);
                    if rng.random_range(0..10) == 0 {
                        dead.push((origin, msg));
                        continue;
                    }
                    // Keys 0, 1 live on partition 0, keys 2, 3 on 1 (a key
                    // on two partitions is refused: see the windower).
                    let k = if p == 0 {
                        rng.random_range(0..2)
                    } else {
                        rng.random_range(2..4)
                    };
                    let late = last_ts[k].is_some() && rng.random_range(0..7) == 0;
                    let ts = match last_ts[k] {
                        None => rng.random_range(0..5),
                        Some(l) if late => l - rng.random_range(0..2),
                        Some(l) => l + rng.random_range(1..4),
                    };
                    let out = w.push(&format!("k{k}"), ts, &[ts as f32], origin, 0);
                    if late {
                        assert!(matches!(out.status, PointStatus::Rejected(_)));
                        assert!(out.window.is_none());
                    } else {
                        last_ts[k] = Some(ts);
                        accepted[k].push(origin);
                        let n = accepted[k].len();
                        let expect_status = if in_some_window(n, t_len, stride) {
                            PointStatus::Accepted
                        } else {
                            PointStatus::Skipped
                        };
                        assert_eq!(out.status, expect_status, "seed {seed} step {step}");
                        let completes = n >= t_len && (n - t_len).is_multiple_of(stride);
                        assert_eq!(out.window.is_some(), completes, "seed {seed} step {step}");
                        if let Some(win) = out.window {
                            let points = accepted[k][n - t_len..].to_vec();
                            let holds: Vec<Hold> = win
                                .holds
                                .iter()
                                .map(|h| tracker.hold(h.partition, h.offset).unwrap())
                                .collect();
                            in_flight.push((points, holds));
                        }
                    }
                    assert!(tracker.release(msg));
                } else if roll < 85 {
                    if !in_flight.is_empty() {
                        let i = rng.random_range(0..in_flight.len());
                        for h in in_flight.swap_remove(i).1 {
                            assert!(tracker.release(h));
                        }
                    }
                } else if !dead.is_empty() {
                    let i = rng.random_range(0..dead.len());
                    assert!(tracker.release(dead.swap_remove(i).1));
                }

                for p in 0..2i32 {
                    let got = tracker.committable(p, w.min_held_offset(p));
                    let mut needed: Vec<i64> = dead
                        .iter()
                        .map(|(o, _)| *o)
                        .chain(in_flight.iter().flat_map(|(pts, _)| pts.iter().copied()))
                        .filter(|o| o.partition == p)
                        .map(|o| o.offset)
                        .collect();
                    for pts in &accepted {
                        let n = pts.len();
                        let first_needed = next_window_end(n, t_len, stride) + 1 - t_len;
                        for (i, o) in pts.iter().enumerate() {
                            if i + 1 >= first_needed && o.partition == p {
                                needed.push(o.offset);
                            }
                        }
                    }
                    let consumed = next_off[p as usize];
                    let expect = if consumed == 0 {
                        None
                    } else {
                        Some(needed.iter().copied().min().unwrap_or(consumed))
                    };
                    assert_eq!(got, expect, "seed {seed} step {step} partition {p}");
                    if let Some(c) = got {
                        assert!(needed.iter().all(|&o| c <= o));
                    }
                }
            }
        }
    }
}
