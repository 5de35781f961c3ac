//! `ballast tui`: the incident dashboard (`ballast-tui`), live over sidecars' admin APIs or
//! replaying a recorded run folder.

use std::path::PathBuf;

use anyhow::Context;
use ballast_tui::{Rates, ReplayOptions};
use clap::Args;

#[derive(Args)]
pub struct TuiArgs {
    /// A sidecar's admin API, e.g. http://127.0.0.1:9901 (repeat for several).
    #[arg(long = "admin", required_unless_present = "replay", conflicts_with = "replay")]
    admins: Vec<String>,
    /// Bearer token for the admin APIs.
    #[arg(long, env = "BALLAST_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The SLOs to follow: a file with [[slo]] tables (slos.toml, a scenario, a sidecar
    /// config). Routes without an SLO show no budget.
    #[arg(long, conflicts_with = "replay")]
    slos: Option<PathBuf>,
    /// Replay a recorded run folder (runs/<id>) instead; its scenario's SLOs are followed.
    #[arg(long)]
    replay: Option<PathBuf>,
    /// Replay: start this far into the run, e.g. 1m30s.
    #[arg(long, requires = "replay")]
    at: Option<humantime::Duration>,
    /// Replay: start paused (space plays).
    #[arg(long, requires = "replay")]
    paused: bool,
    /// Replay: speed, e.g. 4 for four times as fast (+ and - change it).
    #[arg(long, requires = "replay", default_value_t = 1.0)]
    speed: f64,
}

pub async fn run(args: TuiArgs) -> anyhow::Result<()> {
    let rates = Rates::default();
    let result = match &args.replay {
        Some(folder) => {
            if !(args.speed > 0.0 && args.speed.is_finite()) {
                anyhow::bail!("--speed {}: give a positive number, e.g. 2", args.speed);
            }
            let options = ReplayOptions {
                at: args.at.map(Into::into),
                paused: args.paused,
                speed: args.speed,
            };
            ballast_tui::run_replay(folder, &options, rates).await
        }
        None => {
            let slos = match &args.slos {
                Some(path) => crate::slo::load(path)?,
                None => Vec::new(),
            };
            ballast_tui::run_live(&args.admins, args.token.clone(), slos, rates).await
        }
    };
    match result {
        // Unusable SLOs (a scenario's in a replay) exit 78, as `ballast slo` does.
        Err(ballast_tui::Error::Slos(text)) => Err(crate::slo::Invalid(text).into()),
        r => r.context("ballast tui"),
    }
}
