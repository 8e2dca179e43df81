//! Per-key state for a bounded set of recently seen series keys: the map
//! under the likelihood's state ([`super::KeyedLikelihood`]), the incidents
//! ([`super::Incidents`]) and the keys of the per-series gauges
//! (`crate::serve::series`, which removes a dropped key's gauges).
//!
//! Keys are kept in the order they were last touched, least recent first,
//! with the links of that order inside the map's nodes (as the windower's
//! keys, `crate::stream::windower`): touching a key relinks its node and
//! allocates nothing, and the front key is both the one to make room and
//! the most idle, so both evictions cost in proportion to the keys dropped.
//! A new key beyond `max_keys` drops the least recently touched key; a key
//! idle for longer than the TTL (processing time, monotonic) is dropped by
//! [`RecentKeys::expire`]. Both are counted ([`KeyEvictions`]). SipHash
//! (`RandomState`): key names come from the input.

use std::collections::hash_map::RandomState;

use hashlink::linked_hash_map::RawEntryMut;
use hashlink::LinkedHashMap;

/// Keys dropped from a per-key state, by reason, since the last
/// [`RecentKeys::take_evictions`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyEvictions {
    /// Keys idle for longer than the TTL.
    pub expired_keys: u64,
    /// Keys dropped to stay under `max_keys`.
    pub capacity_keys: u64,
}

/// A key's state and when it was last touched (processing time, ms).
#[derive(Debug)]
struct Entry<V> {
    state: V,
    touched_ms: u64,
}

/// At most `max_keys` keys' states, dropped after `ttl_ms` idle.
#[derive(Debug)]
pub struct RecentKeys<V> {
    keys: LinkedHashMap<Box<str>, Entry<V>, RandomState>,
    max_keys: usize,
    /// `u64::MAX`: keys never expire (offline scoring).
    ttl_ms: u64,
    evicted: KeyEvictions,
}

impl<V> RecentKeys<V> {
    /// `max_keys` below 1 is taken as 1.
    pub fn new(max_keys: usize, ttl_ms: u64) -> Self {
        RecentKeys {
            keys: LinkedHashMap::with_hasher(RandomState::new()),
            max_keys: max_keys.max(1),
            ttl_ms,
            evicted: KeyEvictions::default(),
        }
    }

    /// Drops the keys idle for longer than the TTL at `now_ms`, from the
    /// front of the order.
    pub fn expire(&mut self, now_ms: u64) {
        self.expire_with(now_ms, |_, _| {});
    }

    /// [`RecentKeys::expire`], handing each dropped key and its state to
    /// `dropped` (for an owner that keeps something outside the map per key).
    pub fn expire_with(&mut self, now_ms: u64, mut dropped: impl FnMut(&str, V)) {
        while self
            .keys
            .front()
            .is_some_and(|(_, e)| now_ms.saturating_sub(e.touched_ms) > self.ttl_ms)
        {
            if let Some((key, e)) = self.keys.pop_front() {
                dropped(&key, e.state);
            }
            self.evicted.expired_keys += 1;
        }
    }

    /// `key`'s state, now the most recently touched; a new key starts
    /// from `fresh()` and, beyond `max_keys`, makes room by dropping the
    /// least recently touched key. An existing key costs one hash lookup.
    pub fn touch(&mut self, key: &str, now_ms: u64, fresh: impl FnOnce() -> V) -> &mut V {
        self.touch_with(key, now_ms, fresh, |_, _| {})
    }

    /// [`RecentKeys::touch`], handing the key dropped to make room, if any,
    /// and its state to `dropped`.
    pub fn touch_with(
        &mut self,
        key: &str,
        now_ms: u64,
        fresh: impl FnOnce() -> V,
        dropped: impl FnOnce(&str, V),
    ) -> &mut V {
        let is_new = match self.keys.raw_entry_mut().from_key(key) {
            RawEntryMut::Occupied(mut entry) => {
                entry.to_back();
                false
            }
            RawEntryMut::Vacant(_) => true,
        };
        if is_new {
            // Room first: the vacant entry above borrows the map.
            if self.keys.len() >= self.max_keys {
                if let Some((old, e)) = self.keys.pop_front() {
                    self.evicted.capacity_keys += 1;
                    dropped(&old, e.state);
                }
            }
            self.keys.insert(
                key.into(),
                Entry {
                    state: fresh(),
                    touched_ms: now_ms,
                },
            );
        }
        let entry = self
            .keys
            .back_entry()
            .map(|e| e.into_mut())
            .expect("the key was just moved to or inserted at the back");
        entry.touched_ms = now_ms;
        &mut entry.state
    }

    /// `key`'s state, if it has one; its place in the order is unchanged.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.keys.get(key).map(|e| &e.state)
    }

    pub fn remove(&mut self, key: &str) -> Option<V> {
        self.keys.remove(key).map(|e| e.state)
    }

    /// Drops every key for which `drop_it` holds, handing each and its
    /// state to `dropped`; not counted as an eviction (the owner decided).
    /// Visits every key: for rare events (a partition revoked).
    pub fn remove_where(
        &mut self,
        mut drop_it: impl FnMut(&str, &V) -> bool,
        mut dropped: impl FnMut(&str, V),
    ) {
        let gone: Vec<Box<str>> = self
            .keys
            .iter()
            .filter(|(k, e)| drop_it(k, &e.state))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(e) = self.keys.remove(&k) {
                dropped(&k, e.state);
            }
        }
    }

    /// Every key's state, in no promised order.
    pub fn states_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.keys.values_mut().map(|e| &mut e.state)
    }

    /// Keys with state.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys dropped since the last call.
    pub fn take_evictions(&mut self) -> KeyEvictions {
        std::mem::take(&mut self.evicted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(r: &RecentKeys<u32>) -> Vec<&str> {
        r.keys.keys().map(|k| &**k).collect()
    }

    #[test]
    fn a_new_key_at_the_limit_drops_only_the_least_recently_touched() {
        let mut r = RecentKeys::new(3, u64::MAX);
        for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
            *r.touch(k, i as u64, || 0) += 1;
        }
        *r.touch("a", 3, || 0) += 1; // a is now the most recent
        *r.touch("d", 4, || 10) += 1;
        assert_eq!(keys(&r), ["c", "a", "d"]);
        assert_eq!(r.get("a"), Some(&2), "a kept its state");
        assert_eq!(r.get("d"), Some(&11), "d started from fresh()");
        assert_eq!(
            r.take_evictions(),
            KeyEvictions {
                expired_keys: 0,
                capacity_keys: 1
            }
        );
        assert_eq!(r.take_evictions(), KeyEvictions::default());
    }

    #[test]
    fn keys_idle_past_the_ttl_expire_and_a_touch_renews_the_ttl() {
        let mut r = RecentKeys::new(10, 100);
        r.touch("a", 0, || 1);
        r.touch("b", 50, || 2);
        r.touch("a", 90, || 3); // renewed: idle from 90
        r.expire(150); // b idle 100: not past the TTL
        assert_eq!(keys(&r), ["b", "a"]);
        r.expire(151);
        assert_eq!(keys(&r), ["a"]);
        assert_eq!(r.get("a"), Some(&1), "a's state from its first touch");
        r.expire(191);
        assert!(r.is_empty());
        assert_eq!(r.take_evictions().expired_keys, 2);
    }

    #[test]
    fn dropped_keys_are_handed_over_with_their_state() {
        let mut r = RecentKeys::new(2, 100);
        let mut out = vec![];
        r.touch_with("a", 0, || 1, |k, v| out.push((k.to_string(), v)));
        r.touch_with("b", 10, || 2, |k, v| out.push((k.to_string(), v)));
        assert!(out.is_empty());
        r.touch_with("c", 20, || 3, |k, v| out.push((k.to_string(), v)));
        assert_eq!(out, [("a".to_string(), 1)], "room made by the oldest");
        r.expire_with(115, |k, v| out.push((k.to_string(), v)));
        assert_eq!(
            out[1..],
            [("b".to_string(), 2)],
            "b idle 105 ms: past the TTL"
        );
        assert_eq!(keys(&r), ["c"]);
        assert_eq!(
            r.take_evictions(),
            KeyEvictions {
                expired_keys: 1,
                capacity_keys: 1
            }
        );
    }

    #[test]
    fn get_and_remove_leave_the_order_of_the_others() {
        let mut r = RecentKeys::new(10, u64::MAX);
        for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
            r.touch(k, i as u64, || i as u32);
        }
        assert_eq!(r.get("a"), Some(&0));
        assert_eq!(r.remove("b"), Some(1));
        assert_eq!(r.remove("b"), None);
        assert_eq!(keys(&r), ["a", "c"]);
        r.expire(u64::MAX);
        assert_eq!(r.len(), 2, "no TTL: nothing expires");
        assert_eq!(r.take_evictions(), KeyEvictions::default());
    }

    #[test]
    fn remove_where_drops_the_chosen_keys_keeps_the_order_and_counts_nothing() {
        let mut r = RecentKeys::new(10, u64::MAX);
        for (i, k) in ["a", "b", "c", "d"].into_iter().enumerate() {
            r.touch(k, i as u64, || i as u32);
        }
        let mut out = vec![];
        r.remove_where(|_, v| v % 2 == 1, |k, v| out.push((k.to_string(), v)));
        out.sort();
        assert_eq!(out, [("b".to_string(), 1), ("d".to_string(), 3)]);
        assert_eq!(keys(&r), ["a", "c"]);
        assert_eq!(r.take_evictions(), KeyEvictions::default());
    }
}
