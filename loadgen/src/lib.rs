//! ballast-loadgen: load profiles in TOML, run by [goose](https://book.goose.rs) 0.19, with
//! results in ballast's own types ([`ballast_model::load`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let profile = ballast_loadgen::load_file("shop.toml".as_ref())?;
//! let (feed, mut seconds) = tokio::sync::mpsc::channel(64);
//! tokio::spawn(async move { while let Some(s) = seconds.recv().await { println!("{} req", s.all.requests) } });
//! let results = ballast_loadgen::run(&profile, Some(feed), std::future::pending()).await?;
//! println!("p99 {} ms, passed: {}", results.latency_ms.p99, results.passed());
//! # Ok(()) }
//! ```
//!
//! # How the load is made
//!
//! goose runs the users: it starts and stops them along the load shape (a goose test plan for
//! the closed model's stages), gives them to scenarios by weight and calls their transactions.
//! Our transactions are built from the profile at run time (`Transaction::new` over a closure)
//! and measure each request themselves, to the end of the body, into our HDR histograms;
//! goose's own metrics are off. goose types never leave this crate.
//!
//! **Open model and coordinated omission.** goose has no arrival rate: `--throttle-requests`
//! is only a ceiling on closed-model users, and `--co-mitigation` back-fills synthetic
//! samples from each user's average cadence, in whole milliseconds, after the fact. Neither
//! sends requests on a schedule nor counts a late request from when it should have gone. So
//! the open model is built on top: a [`schedule`] of intended send times (evenly spaced at a
//! constant rate, as wrk2's `-R`; thinning or crowding along ramps) that a pool of
//! `max_users` goose users draws from. Each user takes the next slot, sleeps until its time,
//! sends, and the latency is counted **from the slot's time**. When the target stalls, the
//! users are all waiting, slots pile up, and every request sent late carries its wait in its
//! latency, as with wrk2 and `oha --latency-correction`. `requests.csv` keeps both times, so
//! the service time alone (latency minus the send delay) is there too. With too small a pool
//! the rate is not reached and the lateness shows in the latency; raise `max_users`.
//!
//! **What goose brings along, and what we do about it.** goose keeps process-wide state: a
//! killswitch (we use it to stop a run: a duration reached, a threshold abort, a cancel), a
//! global `log` logger (installed only if the process has none: install yours first; the CLI
//! routes it to `tracing` at warn) and a Ctrl-C handler, which exits the process on a Ctrl-C
//! while its killswitch is set (a second one, or any while a run ends): [`interrupt`] sets ours
//! before goose can (a Ctrl-C stops the run, counted as canceled, and counts for
//! [`interrupt::presses`]; none exits). So one run at a time per process: [`run`] waits for
//! the previous one. goose is configured in code
//! (`GooseAttack::initialize_with_config`, never `initialize()`, which reads our process's
//! arguments): no telnet or WebSocket controller, quiet, no metrics printed or kept. goose's
//! test plans count whole seconds, so closed-model stage durations are whole seconds. goose
//! builds a client per user before the start; we hand it one shared client instead and give
//! each user ours on its first call (shared, or one per user with `cookies = true`).
//!
//! # Layout
//! - [`profile`]: profiles as written ([`profile::spec`]) and checked ([`Profile`]);
//!   [`load_file`], [`load_str`], [`load_section`] report every problem at once.
//! - [`template`]: `{{seq}}`, `{{random_int A B}}`, `{{uuid}}`, `{{user}}`, `{{var.NAME}}`,
//!   `{{data.SET.COLUMN}}` in paths, headers and bodies; [`data`]: the CSV data sets.
//! - [`shape`]: stages of users or rates; [`schedule`]: the open model's intended send times.
//! - [`threshold`]: k6-style pass/fail rules, optionally aborting the run.
//! - `attack`: the goose attack for a profile; `user`: what a goose user does per call, and
//!   sending, measuring and classifying one request.
//! - `collector`: records to tallies, seconds, the live feed, `requests.csv`, aborts.
//! - `run`: [`run`] and [`run_with`], a run from start to [`Results`]; [`files`]: the run
//!   folder's files.
//! - `preflight`: an unreachable target is one clear error before any load; `client`: the
//!   HTTP client.
//! - [`interrupt`]: Ctrl-C taken before goose can, so a second one never exits the process.
//! - [`error`]: [`ProfileErrors`] and [`LoadError`].

mod attack;
mod client;
mod collector;
pub mod data;
pub mod error;
pub mod files;
pub mod interrupt;
mod preflight;
pub mod profile;
mod run;
pub mod schedule;
pub mod shape;
mod shared;
pub mod template;
pub mod threshold;
mod user;

pub use ballast_model::load::{Results, Second};
pub use error::{LoadError, ProfileErrors};
pub use profile::{Profile, load_file, load_section, load_str};
pub use run::{Options, run, run_with};
