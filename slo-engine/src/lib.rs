//! ballast-slo-engine: service level objectives evaluated in-process. Pure and synchronous: no
//! I/O, no clock (every call says what time it is), so it runs the same live, in replays and
//! under test.
//!
//! # Layout
//! - [`series`]: good/total counts over time in two tiers of buckets; any window's sum in O(1).
//! - [`latency`]: latency percentiles over recent windows, coarser than HDR, bounded memory.
//! - [`burn`]: burn-rate alert windows: the SRE Workbook's table for any window, scaled, or
//!   written out.
//! - [`alert`]: an alert's state machine (inactive, pending, firing, resolved).
//! - [`rules`]: Prometheus recording and alerting rules (Sloth-style) for fleets.
//! - [`spec_file`]: the `[[slo]]` tables of a TOML file, each checked, every problem at once.
//! - [`source`]: SLI counts from the sidecar's stats windows (availability by class, latency
//!   exactly from the HDR histogram).
//! - [`traces`]: trace SLIs: spans from OTLP JSON lines, matched by a selector, fed to an SLO.
//! - [`slo`]: one SLO over time: budget, burn rates, time to exhaustion, alerts and their
//!   events; occurrences or timeslices; rolling or calendar windows.

pub mod alert;
pub mod burn;
pub mod latency;
pub mod rules;
pub mod series;
pub mod slo;
pub mod source;
pub mod spec_file;
pub mod traces;

pub use series::{Counts, Series};
pub use slo::{Slo, Status};
