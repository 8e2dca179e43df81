//! Streaming post-processing of the model's raw window errors into anomaly
//! scores in `[0, 1]`, shared by the NAB evaluation, `lstm-ae score` and the
//! daemon.
//!
//! - [`likelihood`]: the per-key state machine ([`Postprocessor`]) and its
//!   serde-deserialisable configuration ([`PostprocessConfig`]), whose
//!   defaults are the configuration measured best on NAB;
//! - [`decision`]: the anomaly decision of one window ([`Scorer`]: rule,
//!   incident, contributors, typed records), shared by the daemon and
//!   `lstm-ae score`;
//! - [`incident`]: a key's anomalous stretch as one incident (open,
//!   updates, close), with bounded, serialisable per-key state;
//! - [`keyed`]: one post-processor per series key with bounded memory, and
//!   the prediction error of a window from earlier windows' forecasts;
//! - [`recent`]: the bounded map of recently seen keys under the
//!   likelihood's and the incidents' per-key state (and the daemon's
//!   per-series gauges, `serve::series`).

pub mod decision;
pub mod incident;
pub mod keyed;
pub mod likelihood;
pub mod recent;

pub use decision::{
    AnomalyRule, Decision, ModelChange, Reason, Scorer, ScorerConfig, ScorerEvictions, WindowScore,
};
pub use incident::{
    incident_id, CloseReason, Incident, IncidentConfig, IncidentEvent, IncidentState, Incidents,
};
pub use keyed::{prediction_errors, KeyedLikelihood, WindowErrors};
pub use likelihood::{gaussian_tail, PostprocessConfig, PostprocessError, Postprocessor};
pub use recent::{KeyEvictions, RecentKeys};
