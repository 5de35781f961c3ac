//! The live observer and actor: real sidecars, processes, demo upstreams and stress.
//!
//! - [`history`]: the sidecars' recent stats windows, polled every interval through the shared
//!   stats client (or pushed by a caller that scrapes already, such as the scenario runner).
//! - [`observer`]: [`LiveObserver`]: probes over that history, and HTTP probes.
//! - [`actor`]: [`LiveAct`]: faults through the admin API client, signals, restarts,
//!   demo-upstream behaviours, stress.
//! - [`process`]: processes by registered name ([`Managed`]) or pid file, and signals.
//! - [`stress`]: CPU and memory stress on threads of this process, always ended.

pub mod actor;
pub mod history;
pub mod observer;
pub mod process;
pub mod stress;

pub use actor::LiveAct;
pub use history::{LiveSidecars, StatsHistory};
pub use observer::LiveObserver;
pub use process::Managed;
