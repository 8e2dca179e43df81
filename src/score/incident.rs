//! Incidents: a key's anomalous stretch as one event, instead of one record
//! per anomalous window. A key's first anomalous window opens an incident;
//! further anomalous windows extend it (with an update at most every
//! `update_every` windows, 0 = none); `close_after` normal windows in a row
//! close it. An anomalous window among those normal ones continues the same
//! incident, so a score hovering at the line does not page twice.
//!
//! ## State
//!
//! Only keys with an open incident have state, an [`Incident`]: a plain,
//! serde-serialisable value (no references; its size is bounded by the
//! model's feature count), so it can be written out and restored. The map
//! is bounded like the other per-key state ([`RecentKeys`]: at most
//! `max_keys`, and a key idle for `key_ttl_ms` of processing time is
//! dropped). A key dropped with an open incident gets a close record with
//! [`CloseReason::Evicted`], so every open is followed by a close.
//!
//! ## Identity
//!
//! An incident's id is derived from its key, its first window's end time
//! and the model version that opened it ([`incident_id`]), so a replay of
//! the same input after a crash names the same incident alike.

use serde::{Deserialize, Serialize};

use super::{KeyEvictions, Reason, RecentKeys};

/// The incident rule's parameters (`[anomalies]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncidentConfig {
    /// Normal windows in a row that close an open incident (at least 1).
    pub close_after: usize,
    /// At most one update record per this many windows of an open
    /// incident; 0 = no updates.
    pub update_every: usize,
}

/// The record types of an incident, the `state` field of its records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    Open,
    Update,
    Close,
}

impl IncidentState {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentState::Open => "open",
            IncidentState::Update => "update",
            IncidentState::Close => "close",
        }
    }
}

/// Why an incident closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CloseReason {
    /// `close_after` normal windows in a row.
    Normal,
    /// The key's state was dropped (`max_keys` or its TTL).
    Evicted,
    /// A window of the key fell in an operator's `maintenance` mark
    /// ([`Incidents::close`]).
    Maintenance,
    /// A window of the key fell in an operator's `false_positive` mark.
    #[serde(rename = "false_positive")]
    FalsePositive,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Normal => "normal",
            CloseReason::Evicted => "evicted",
            CloseReason::Maintenance => "maintenance",
            CloseReason::FalsePositive => "false_positive",
        }
    }
}

/// The highest window of an incident so far, by what the rule compares.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Peak {
    /// What the rule compares with its line (see [`Observation::level`]).
    pub level: f64,
    /// Raw score (non-finite as the largest `f32`, so it stays comparable).
    pub score: f32,
    pub normalized: f32,
    pub likelihood: Option<f64>,
    pub end_ts_ms: i64,
}

/// One key's open incident: everything its records say, and the counters
/// of the rule. Plain data (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    /// Why its first window was anomalous.
    pub reason: Reason,
    pub first_start_ts_ms: i64,
    pub first_end_ts_ms: i64,
    /// End of its latest anomalous window.
    pub last_end_ts_ms: i64,
    /// Anomalous windows in it.
    pub windows: u64,
    /// Normal windows since its latest anomalous one.
    pub normal_run: u64,
    /// Windows since its last open or update record.
    pub since_record: u64,
    pub peak: Peak,
    /// Per feature, the squared error summed over its anomalous windows
    /// (empty when the windows' errors are not known).
    pub feature_errors: Vec<f32>,
}

/// A record to publish about a key's incident.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentEvent {
    pub state: IncidentState,
    /// Set on a close.
    pub close_reason: Option<CloseReason>,
    /// The incident as of this record.
    pub incident: Incident,
}

/// What one window of a key tells the incident rule.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub start_ts_ms: i64,
    pub end_ts_ms: i64,
    pub anomalous: Option<Reason>,
    pub score: f32,
    pub normalized: f32,
    pub likelihood: Option<f64>,
    /// What the rule compares with its line: the normalised score under
    /// the threshold rule, the likelihood under the likelihood rule; the
    /// largest `f64` for a non-finite score. The peak is the highest.
    pub level: f64,
    /// Per feature, the window's squared error summed over its rows; empty
    /// when unknown.
    pub feature_errors: &'a [f32],
    /// The model version scoring the window (part of a new incident's id).
    pub model_version: &'a str,
}

/// The outcome of one window for its key.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Step {
    /// The record to publish for this window, if any.
    pub event: Option<IncidentEvent>,
    /// The id of the incident the window belongs to: an anomalous window,
    /// or a normal one while an incident is open (the one that closes it
    /// included).
    pub incident_id: Option<String>,
}

/// The deterministic id of the incident of `key` whose first window ends at
/// `first_end_ts_ms`, opened by `model_version`: FNV-1a (128 bits) of the
/// three, written as a UUID (8-4-4-4-12 hex digits). A hash rather than
/// the fields themselves keeps ids short and uniform whatever the key.
pub fn incident_id(key: &str, first_end_ts_ms: i64, model_version: &str) -> String {
    const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
    let mut h = OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u128::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    // Lengths first, so ("ab", "c") and ("a", "bc") differ.
    eat(&(key.len() as u64).to_le_bytes());
    eat(key.as_bytes());
    eat(&first_end_ts_ms.to_le_bytes());
    eat(&(model_version.len() as u64).to_le_bytes());
    eat(model_version.as_bytes());
    let x = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

/// The close record of `key`'s incident, dropped with the key's state.
fn closed_by_eviction(key: &str, incident: Incident) -> (String, IncidentEvent) {
    (
        key.to_string(),
        IncidentEvent {
            state: IncidentState::Close,
            close_reason: Some(CloseReason::Evicted),
            incident,
        },
    )
}

/// Every key's open incident, bounded (see the module docs).
#[derive(Debug)]
pub struct Incidents {
    cfg: IncidentConfig,
    keys: RecentKeys<Incident>,
    /// Close records of keys dropped since the last
    /// [`Incidents::take_evicted`]: at most one per key dropped, drained
    /// after every batch.
    evicted: Vec<(String, IncidentEvent)>,
}

impl Incidents {
    pub fn new(cfg: IncidentConfig, max_keys: usize, key_ttl_ms: u64) -> Self {
        Incidents {
            cfg,
            keys: RecentKeys::new(max_keys, key_ttl_ms),
            evicted: Vec::new(),
        }
    }

    /// Keys with an open incident.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// `key`'s open incident, if any.
    pub fn get(&self, key: &str) -> Option<&Incident> {
        self.keys.get(key)
    }

    /// Keys dropped since the last call, by reason.
    pub fn take_evictions(&mut self) -> KeyEvictions {
        self.keys.take_evictions()
    }

    /// The close records of the keys dropped since the last call, with
    /// their keys.
    pub fn take_evicted(&mut self) -> Vec<(String, IncidentEvent)> {
        std::mem::take(&mut self.evicted)
    }

    /// Every open incident, in no promised order (for the end of an
    /// offline run).
    pub fn open(&mut self) -> impl Iterator<Item = &Incident> {
        self.keys.states_mut().map(|i| &*i)
    }

    /// The next window of `key` (windows of a key in event-time order);
    /// `now_ms` is processing time from a monotonic clock.
    pub fn observe(&mut self, key: &str, o: &Observation<'_>, now_ms: u64) -> Step {
        let evicted = &mut self.evicted;
        self.keys
            .expire_with(now_ms, |k, i| evicted.push(closed_by_eviction(k, i)));
        let peak = Peak {
            level: o.level,
            score: crate::stream::records::finite_or_max(o.score),
            normalized: crate::stream::records::finite_or_max(o.normalized),
            likelihood: o.likelihood,
            end_ts_ms: o.end_ts_ms,
        };
        let Some(reason) = o.anomalous else {
            // Most windows: a quiet key with no state, one lookup.
            let Some(mut i) = self.keys.remove(key) else {
                return Step::default();
            };
            i.normal_run += 1;
            i.since_record += 1;
            let id = Some(i.id.clone());
            if i.normal_run >= self.cfg.close_after as u64 {
                return Step {
                    event: Some(IncidentEvent {
                        state: IncidentState::Close,
                        close_reason: Some(CloseReason::Normal),
                        incident: i,
                    }),
                    incident_id: id,
                };
            }
            // Back in, as the most recently touched: the key made room for itself.
            self.keys.touch(key, now_ms, move || i);
            return Step {
                event: None,
                incident_id: id,
            };
        };
        let cfg = self.cfg;
        let evicted = &mut self.evicted;
        let mut opened = false;
        let i = self.keys.touch_with(
            key,
            now_ms,
            || {
                opened = true;
                Incident {
                    id: incident_id(key, o.end_ts_ms, o.model_version),
                    reason,
                    first_start_ts_ms: o.start_ts_ms,
                    first_end_ts_ms: o.end_ts_ms,
                    last_end_ts_ms: o.end_ts_ms,
                    windows: 0,
                    normal_run: 0,
                    since_record: 0,
                    peak,
                    feature_errors: vec![0.0; o.feature_errors.len()],
                }
            },
            |k, i| evicted.push(closed_by_eviction(k, i)),
        );
        i.windows += 1;
        i.normal_run = 0;
        i.last_end_ts_ms = o.end_ts_ms;
        if peak.level > i.peak.level {
            i.peak = peak;
        }
        if i.feature_errors.len() == o.feature_errors.len() {
            for (sum, &e) in i.feature_errors.iter_mut().zip(o.feature_errors) {
                if e.is_finite() {
                    *sum += e;
                }
            }
        }
        let state = if opened {
            Some(IncidentState::Open)
        } else {
            i.since_record += 1;
            (cfg.update_every > 0 && i.since_record >= cfg.update_every as u64)
                .then_some(IncidentState::Update)
        };
        if state.is_some() {
            i.since_record = 0;
        }
        Step {
            incident_id: Some(i.id.clone()),
            event: state.map(|state| IncidentEvent {
                state,
                close_reason: None,
                incident: i.clone(),
            }),
        }
    }

    /// A window of `key` an operator's mark takes out of the rule: it
    /// neither opens nor extends an incident, and the key's incident, if
    /// one is open, closes now with `reason`.
    pub fn close(&mut self, key: &str, reason: CloseReason, now_ms: u64) -> Step {
        let evicted = &mut self.evicted;
        self.keys
            .expire_with(now_ms, |k, i| evicted.push(closed_by_eviction(k, i)));
        match self.keys.remove(key) {
            None => Step::default(),
            Some(i) => Step {
                incident_id: Some(i.id.clone()),
                event: Some(IncidentEvent {
                    state: IncidentState::Close,
                    close_reason: Some(reason),
                    incident: i,
                }),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(close_after: usize, update_every: usize) -> Incidents {
        Incidents::new(
            IncidentConfig {
                close_after,
                update_every,
            },
            100,
            1_000_000,
        )
    }

    /// Window `t` of a key: anomalous with normalised score `level` when
    /// `level >= 1`.
    fn obs(t: i64, level: f32) -> Observation<'static> {
        Observation {
            start_ts_ms: t * 60_000 - 600_000,
            end_ts_ms: t * 60_000,
            anomalous: (level >= 1.0).then_some(Reason::Threshold),
            score: level * 0.5,
            normalized: level,
            likelihood: None,
            level: f64::from(level),
            feature_errors: &[],
            model_version: "3",
        }
    }

    /// The states of the records of `levels`, one window each, of key `k`.
    fn states(inc: &mut Incidents, k: &str, levels: &[f32]) -> Vec<Option<IncidentState>> {
        levels
            .iter()
            .enumerate()
            .map(|(t, &l)| inc.observe(k, &obs(t as i64, l), 0).event.map(|e| e.state))
            .collect()
    }

    use IncidentState::{Close, Open, Update};

    #[test]
    fn a_stretch_is_one_incident_closed_after_n_normal_windows() {
        let mut inc = rule(3, 0);
        let levels = [0.2, 1.5, 4.0, 2.0, 0.5, 0.5, 0.5, 0.4];
        let mut events = vec![];
        for (t, &l) in levels.iter().enumerate() {
            events.push(inc.observe("k", &obs(t as i64, l), 0));
        }
        let got: Vec<_> = events
            .iter()
            .map(|s| s.event.as_ref().map(|e| e.state))
            .collect();
        assert_eq!(
            got,
            [None, Some(Open), None, None, None, None, Some(Close), None]
        );
        let close = events[6].event.as_ref().unwrap();
        assert_eq!(close.close_reason, Some(CloseReason::Normal));
        let i = &close.incident;
        assert_eq!((i.first_end_ts_ms, i.last_end_ts_ms), (60_000, 180_000));
        assert_eq!(i.windows, 3);
        assert_eq!((i.peak.normalized, i.peak.end_ts_ms), (4.0, 120_000));
        // Every window from the open to the close carries the id; none after.
        let id = &events[1].event.as_ref().unwrap().incident.id;
        for s in &events[1..=6] {
            assert_eq!(s.incident_id.as_ref(), Some(id));
        }
        assert_eq!(events[0].incident_id, None);
        assert_eq!(events[7].incident_id, None);
        assert!(inc.is_empty(), "a closed incident leaves no state");
    }

    #[test]
    fn a_marked_window_closes_the_open_incident_and_opens_none() {
        let mut inc = rule(3, 0);
        let opened = inc.observe("k", &obs(1, 2.0), 0);
        let id = opened.event.unwrap().incident.id;
        let step = inc.close("k", CloseReason::Maintenance, 0);
        let close = step.event.expect("the open incident closes");
        assert_eq!(close.state, Close);
        assert_eq!(close.close_reason, Some(CloseReason::Maintenance));
        assert_eq!(close.incident.id, id);
        assert_eq!(step.incident_id, Some(id));
        assert!(inc.is_empty());
        // Further marked windows: nothing open, nothing to close.
        assert_eq!(inc.close("k", CloseReason::Maintenance, 0), Step::default());
        // After the mark, an anomalous window opens a new incident.
        let again = inc.observe("k", &obs(9, 2.0), 0);
        assert_eq!(again.event.map(|e| e.state), Some(Open));
    }

    #[test]
    fn a_short_dip_continues_the_incident_and_a_later_stretch_opens_a_new_one() {
        let mut inc = rule(3, 0);
        // Two normal windows (fewer than 3) inside the stretch: one incident.
        let levels = [2.0, 0.5, 0.5, 2.0, 0.5, 0.5, 0.5, 2.0, 0.5, 0.5, 0.5];
        let mut ids = vec![];
        let mut got = vec![];
        for (t, &l) in levels.iter().enumerate() {
            let s = inc.observe("k", &obs(t as i64, l), 0);
            if let Some(e) = &s.event {
                ids.push(e.incident.id.clone());
                if e.state == Close {
                    assert_eq!(e.incident.windows, if t == 6 { 2 } else { 1 });
                }
            }
            got.push(s.event.map(|e| e.state));
        }
        assert_eq!(
            got,
            [
                Some(Open),
                None,
                None,
                None,
                None,
                None,
                Some(Close),
                Some(Open),
                None,
                None,
                Some(Close)
            ]
        );
        assert_eq!(ids[0], ids[1], "open and close of one incident");
        assert_eq!(ids[2], ids[3]);
        assert_ne!(ids[0], ids[2], "a re-opened key is a new incident");
    }

    #[test]
    fn updates_come_at_most_once_per_update_every_windows() {
        let mut inc = rule(2, 3);
        let mut levels = vec![2.0f32; 10];
        levels.extend([0.5, 0.5]);
        let got = states(&mut inc, "k", &levels);
        let want = [
            Some(Open),
            None,
            None,
            Some(Update),
            None,
            None,
            Some(Update),
            None,
            None,
            Some(Update),
            None,
            Some(Close),
        ];
        assert_eq!(got, want);
        // Without updates: open and close only.
        let got = states(&mut rule(2, 0), "k", &levels);
        assert_eq!(got.iter().flatten().count(), 2);
    }

    #[test]
    fn under_the_likelihood_rule_the_peak_is_the_highest_likelihood() {
        let mut inc = rule(1, 0);
        let mut close = None;
        // Raw scores fall while the likelihood rises: the peak follows the
        // likelihood, what the rule compares.
        for (t, (score, l)) in [(9.0, 0.6), (5.0, 0.9), (1.0, 0.7), (0.5, 0.1)]
            .into_iter()
            .enumerate()
        {
            let o = Observation {
                anomalous: (l >= 0.5).then_some(Reason::Likelihood),
                score,
                normalized: score,
                likelihood: Some(l),
                level: l,
                ..obs(t as i64, score)
            };
            if let Some(e) = inc.observe("k", &o, 0).event {
                close = Some(e);
            }
        }
        let e = close.unwrap();
        assert_eq!(e.state, Close);
        assert_eq!(e.incident.reason, Reason::Likelihood);
        assert_eq!(e.incident.peak.likelihood, Some(0.9));
        assert_eq!(e.incident.peak.end_ts_ms, 60_000);
        assert_eq!(e.incident.windows, 3);
    }

    #[test]
    fn quiet_keys_leave_no_state() {
        let mut inc = rule(3, 0);
        for k in 0..1000 {
            inc.observe(&k.to_string(), &obs(1, 0.5), 0);
        }
        assert!(inc.is_empty());
    }

    #[test]
    fn state_is_bounded_and_an_evicted_incident_is_closed() {
        // Every key opens an incident and never closes it: without a bound
        // each would be kept for ever.
        let mut inc = Incidents::new(
            IncidentConfig {
                close_after: 3,
                update_every: 0,
            },
            100,
            1_000,
        );
        for k in 0..10_000u64 {
            inc.observe(&k.to_string(), &obs(1, 2.0), k / 100);
            assert!(inc.len() <= 100, "{} keys", inc.len());
        }
        assert_eq!(inc.take_evictions().capacity_keys, 9_900);
        let closed = inc.take_evicted();
        assert_eq!(closed.len(), 9_900, "one close per dropped incident");
        assert_eq!(closed[0].0, "0", "the least recently updated first");
        assert!(closed.iter().all(|(_, e)| e.state == Close
            && e.close_reason == Some(CloseReason::Evicted)
            && e.incident.windows == 1));
        // Idle past the TTL: dropped, and closed.
        inc.observe("late", &obs(1, 0.5), 10_000);
        assert!(inc.is_empty());
        assert_eq!(inc.take_evictions().expired_keys, 100);
        assert_eq!(inc.take_evicted().len(), 100);
        assert!(inc.take_evicted().is_empty(), "drained");
    }

    #[test]
    fn a_new_key_at_the_limit_drops_only_the_least_recently_updated() {
        let mut inc = Incidents::new(
            IncidentConfig {
                close_after: 1_000,
                update_every: 0,
            },
            20,
            1_000_000,
        );
        for k in 0..20u64 {
            inc.observe(&k.to_string(), &obs(1, 2.0), k);
        }
        inc.observe("0", &obs(2, 0.5), 20); // a normal window keeps 0 recent
        inc.observe("new", &obs(1, 2.0), 21);
        assert_eq!(inc.len(), 20);
        assert!(inc.get("1").is_none(), "1 was the least recently updated");
        assert!(inc.get("0").is_some() && inc.get("2").is_some());
        let closed = inc.take_evicted();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].0, "1");
    }

    #[test]
    fn the_id_is_deterministic_and_tells_key_time_and_version_apart() {
        let a = incident_id("pump-1", 1_700_000_000_000, "3");
        assert_eq!(a, incident_id("pump-1", 1_700_000_000_000, "3"));
        let shape: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(shape, [8, 4, 4, 4, 12]);
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        for other in [
            incident_id("pump-2", 1_700_000_000_000, "3"),
            incident_id("pump-1", 1_700_000_060_000, "3"),
            incident_id("pump-1", 1_700_000_000_000, "4"),
            incident_id("pump-13", 1_700_000_000_000, ""),
        ] {
            assert_ne!(a, other);
        }
        // A replay of the same windows opens the same incident.
        let id = |inc: &mut Incidents| {
            states(inc, "k", &[0.5, 2.0]);
            inc.get("k").unwrap().id.clone()
        };
        assert_eq!(id(&mut rule(3, 0)), id(&mut rule(3, 0)));
    }

    #[test]
    fn the_state_round_trips_through_serde() {
        let mut inc = rule(3, 0);
        let errors = [1.5f32, 0.25];
        let o = Observation {
            feature_errors: &errors,
            ..obs(1, 2.0)
        };
        inc.observe("k", &o, 0);
        inc.observe("k", &obs(2, 0.5), 0);
        let i = inc.get("k").unwrap().clone();
        assert_eq!(i.feature_errors, errors);
        let text = serde_json::to_string(&i).unwrap();
        let back: Incident = serde_json::from_str(&text).unwrap();
        assert_eq!(back, i);
        assert_eq!(back.normal_run, 1);
    }
}
