//! The sink's per-series outputs: after each scored window, its facts
//! ([`WindowFacts`]: score, anomalous, threshold, last point and expected
//! value) go to the `lstm_ae_series_*` gauges when `series_metrics.enabled`,
//! and to the remote-write client when `remote_write.url` is set. Neither
//! ever waits: the gauges are memory, and the remote writer's push drops
//! and counts what its full queue cannot take, so a slow or dead receiver
//! never holds up scoring, produces or commits.
//!
//! The gauges' upkeep runs with each batch and on the sink's timer
//! ([`SeriesOutputs::tick`]): keys quiet past `series_metrics.ttl_ms` lose
//! their series, and so do keys whose input partition was revoked from this
//! daemon (another daemon scores them now; two daemons exporting one key
//! would show two series). A window of a revoked partition still in flight
//! after the revocation does not bring its key back.

use std::collections::HashSet;

use super::error::ServeError;
use super::ingest::Revoked;
use super::remote_write::{RemoteWriteSettings, RemoteWriter};
use super::series::{
    remote_write_series, Partition, SeriesGauges, SeriesMetricsSettings, WindowFacts,
};
use crate::score::{Decision, WindowScore};
use crate::telemetry::Metrics;

/// The gauges and the remote writer, each there only when configured.
pub struct SeriesOutputs {
    gauges: Option<SeriesGauges>,
    writer: Option<RemoteWriter>,
    revoked: Revoked,
    /// The generation of `revoked` applied to the gauges.
    seen: u64,
    /// Partitions revoked now: their windows leave the gauges alone.
    lost: HashSet<Partition>,
}

impl SeriesOutputs {
    /// The outputs the settings ask for; the remote writer starts on the
    /// current Tokio runtime, with its credentials from the environment.
    pub fn start(
        series: &SeriesMetricsSettings,
        remote: &RemoteWriteSettings,
        revoked: Revoked,
        metrics: &Metrics,
    ) -> Result<SeriesOutputs, ServeError> {
        let gauges = if series.enabled {
            Some(SeriesGauges::new(series, metrics)?)
        } else {
            None
        };
        let writer = if remote.enabled() {
            let w = RemoteWriter::start(remote, |n| std::env::var(n).ok(), metrics)?;
            tracing::info!(url = %remote.url, "remote write of the per-series samples");
            Some(w)
        } else {
            None
        };
        Ok(SeriesOutputs {
            gauges,
            writer,
            revoked,
            seen: 0,
            lost: HashSet::new(),
        })
    }

    /// The remote writer, for the drain to shut it down.
    pub fn writer(&self) -> Option<RemoteWriter> {
        self.writer.clone()
    }

    /// Whether there are gauges to keep up (the sink's timer runs then).
    pub fn has_gauges(&self) -> bool {
        self.gauges.is_some()
    }

    /// Records a scored window of input `partition` (`(topic, partition)`):
    /// `w` and `d` as the scorer saw and decided them, under `threshold`,
    /// for a model with `features` named `names`. `now_ms`: processing time.
    #[allow(clippy::too_many_arguments)]
    pub fn window(
        &mut self,
        w: &WindowScore<'_>,
        d: &Decision,
        threshold: f32,
        names: &[String],
        features: usize,
        partition: (&str, i32),
        now_ms: u64,
    ) {
        if self.gauges.is_none() && self.writer.is_none() {
            return;
        }
        let facts = WindowFacts {
            key: w.key,
            end_ts_ms: w.end_ts_ms,
            normalized_score: d.normalized,
            anomalous: d.anomalous.is_some(),
            threshold,
            features: names,
            values: w.last_point(features),
            expected: w.expected,
        };
        if let Some(g) = &mut self.gauges {
            let (topic, p) = partition;
            if !self.lost.iter().any(|(t, q)| t == topic && *q == p) {
                g.record_from(&facts, Some(partition), now_ms);
            }
        }
        if let Some(writer) = &self.writer {
            // false: dropped and counted by the writer; scoring goes on.
            writer.push(remote_write_series(&facts));
        }
    }

    /// The gauges' upkeep at processing time `now_ms`: the keys of newly
    /// revoked partitions and the keys quiet past the TTL lose their
    /// series.
    pub fn tick(&mut self, now_ms: u64) {
        let Some(g) = &mut self.gauges else {
            return;
        };
        if let Some((generation, lost)) = self.revoked.changed_since(self.seen) {
            self.seen = generation;
            g.remove_partitions(&lost);
            self.lost = lost;
        }
        g.expire(now_ms);
    }
}
