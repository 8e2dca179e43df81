//! Telemetry: the Prometheus registry ([`metrics`], every metric defined in
//! one file), the HTTP endpoints `/metrics`, `/healthz`, `/readyz`
//! ([`http`]) and the tracing setup ([`logging`]).

pub mod http;
pub mod logging;
pub mod metrics;

pub use metrics::Metrics;
