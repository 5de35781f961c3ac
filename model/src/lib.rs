//! ballast-model: the types that cross a crate or process boundary.
//!
//! Every part of ballast (sidecar, load generator, SLO engine, TUI, reports) speaks these types,
//! so a failure the sidecar classifies is counted under the same name everywhere.
//!
//! # Layout
//! - [`error_class`]: the `ballast-error` classification of failed requests.
//! - [`event`]: the timeline: what happened when (config reloads, later faults, alerts, ...).
//! - [`fault`]: faults and TCP toxics as written, checked, and as they run.
//! - [`load`]: the load generator's results: per-second snapshots (its live feed) and a
//!   whole run's tallies, thresholds and timeline.
//! - [`problems`]: problems in a file someone wrote, rendered one way (file:line:column,
//!   field, fix), and "did you mean".
//! - [`slo`]: service level objectives as written (`[[slo]]`), and their checks.
//! - [`stats`]: the sidecar's cumulative counters and HDR latency histograms, and windows
//!   between two snapshots.
//! - `client` (feature `client`): fetch snapshots from a sidecar and compute windows; list,
//!   add and remove its faults.
//! - [`units`]: human-friendly durations (`"250ms"`) and byte sizes (`"64KiB"`) for TOML files.

#[cfg(feature = "client")]
pub mod client;
pub mod error_class;
pub mod event;
pub mod fault;
pub mod load;
pub mod problems;
pub mod slo;
pub mod stats;
pub mod units;

pub use error_class::ErrorClass;
pub use event::{Event, EventKind};
pub use fault::{ActiveFault, FaultSpec};
pub use stats::{StatsSnapshot, StatsWindow};
pub use units::{ByteSize, HumanDuration};
