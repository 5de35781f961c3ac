//! ballast-tui: the incident dashboard. What an SRE keeps open during an incident: which
//! routes hurt, how fast the error budget burns, which endpoints are ejected, which faults
//! are in place, and what changed. Live, over the admin APIs of one or more sidecars
//! ([`run_live`]), or replaying a recorded run folder ([`run_replay`]).
//!
//! Elm style: one [`Model`], changed only by [`update`] (keys and data), drawn only by
//! [`view`]. Data comes from a [`Source`] (live or replay) as [`Feed`]s, so views never know
//! where it came from; SLOs are computed in the model from the stats windows with the SLO
//! engine, the same code live and in a replay.
//!
//! # Layout
//! - [`source`]: the [`Source`] trait and its [`Feed`]s; [`source::live`] (scrapes `/stats`
//!   each second and follows `/events` on tasks, fault actions through the admin API) and
//!   [`source::replay`] (a position over a recording: play, pause, speed, scrub).
//! - [`recording`]: the run folder's `stats.jsonl`, `events.jsonl` and `scenario.toml`:
//!   written by [`recording::Recorder`], read by [`recording::Recording`].
//! - [`model`]: the data (per sidecar: routes with five minutes of per-scrape samples,
//!   clusters, endpoints, faults) and the UI state; [`slos`]: SLO standing per scrape;
//!   [`timeline`]: events, deduplicated; [`ui`]: views, selection, filter, dialogs.
//! - [`update`]: keys and feeds into the model; what needs the outside comes back as a
//!   [`update::Command`].
//! - [`views`]: one module per view (overview, route, upstreams, faults, timeline), the help,
//!   dialogs, formats and the 16-colour theme.
//! - [`presets`]: the faults offered in the faults view; [`describe`]: faults and events in
//!   words.
//! - [`app`]: the loop (tick and frame rates apart); [`terminal`]: raw mode and the alternate
//!   screen, restored on exit, Ctrl-C and panic.

pub mod app;
pub mod describe;
mod error;
pub mod model;
pub mod presets;
pub mod recording;
pub mod slos;
pub mod source;
pub mod terminal;
pub mod timeline;
pub mod ui;
pub mod update;
pub mod views;

use std::path::Path;

use ballast_model::slo::SloSpec;

pub use app::Rates;
pub use error::Error;
pub use model::Model;
pub use source::replay::ReplayOptions;
pub use source::{Feed, Source};
pub use update::{Msg, update};
pub use views::view;

use recording::Recording;
pub use source::live::{LiveSource, Sidecar};
use source::replay::ReplaySource;

/// Watch live sidecars (their admin URLs), with `slos` computed from their stats. Runs until
/// the user quits; must be called inside a tokio runtime.
pub async fn run_live(admins: &[String], token: Option<String>, slos: Vec<SloSpec>, rates: Rates) -> Result<(), Error> {
    let sidecars: Vec<Sidecar> = admins.iter().map(|a| Sidecar::from_admin(a)).collect();
    let model = Model::new(sidecars.iter().map(|s| s.name.clone()).collect(), slos)?;
    app::run(Box::new(LiveSource::start(sidecars, token)), model, rates).await
}

/// A dashboard of sidecars whose feeds the caller sends (the scenario runner): the model
/// and source to give [`app::run_until`], and the sender for the feeds.
pub fn fed(
    sidecars: Vec<Sidecar>,
    token: Option<String>,
    slos: Vec<SloSpec>,
) -> Result<(Model, LiveSource, tokio::sync::mpsc::Sender<Feed>), Error> {
    let model = Model::new(sidecars.iter().map(|s| s.name.clone()).collect(), slos)?;
    let (source, tx) = LiveSource::fed(sidecars, token);
    Ok((model, source, tx))
}

/// Replay a run folder (`runs/<id>`), its SLOs from its `scenario.toml`.
pub async fn run_replay(folder: &Path, options: &ReplayOptions, rates: Rates) -> Result<(), Error> {
    let (model, source) = open_replay(folder, options)?;
    app::run(Box::new(source), model, rates).await
}

/// A model and a replay source for a run folder, ready to run (or to drive in tests).
pub fn open_replay(folder: &Path, options: &ReplayOptions) -> Result<(Model, ReplaySource), Error> {
    replay(Recording::read(folder)?, options)
}

/// A model and a replay source for a recording already read.
pub fn replay(recording: Recording, options: &ReplayOptions) -> Result<(Model, ReplaySource), Error> {
    let model = Model::new(recording.sidecars.clone(), recording.slos.clone())?;
    Ok((model, ReplaySource::new(recording, options)))
}
