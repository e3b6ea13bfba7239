//! Telemetry: typed events that write the log line and the counters together.
//!
//! Every observable thing the engine does is an event in `events.rs` whose `emit(self)` updates
//! the in-process [`Counters`] (read by the progress line and the final summary) and the `metrics`
//! facade (read by the Prometheus exporter), and logs a line when it is worth one. One emission,
//! one source: the bar, the summary and the dashboards cannot disagree. Metric names live in
//! `names.rs` only.

pub mod counters;
pub mod events;
pub mod exporter;
pub mod names;

pub use counters::Counters;
