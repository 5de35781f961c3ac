//! `ballast`: the command line of the ballast suite.
//!
//! # Layout
//! - `main.rs`: argument parsing (clap) and exit codes.
//! - [`chaos`]: `ballast chaos`, a chaos experiment against running sidecars (the experiments
//!   themselves are the `ballast-chaos` crate's).
//! - [`demo`]: `ballast demo`, the built-in default job (demo upstream + sidecar + traffic).
//! - [`demo_upstream`]: `ballast demo-upstream`, a service with tunable latency and errors.
//! - [`fault`]: `ballast fault add|list|clear`, faults on a running sidecar.
//! - [`load`]: `ballast load PROFILE.toml`, a load profile run by the load generator
//!   (`ballast-loadgen`), with thresholds that set the exit code.
//! - [`report`]: `ballast report RUN_DIR`, the post-mortem draft of a recorded run
//!   (`ballast-report`): Markdown and a self-contained HTML page with charts.
//! - [`run`]: `ballast run SCENARIO.toml`, the scenario runner and its run folder.
//! - [`validate`]: `ballast validate FILE...`, any of ballast's TOML files checked.
//! - [`slo`]: `ballast slo rules|status`: Prometheus rules for SLOs, and where they stand (live
//!   sidecars, Prometheus, span files).
//! - [`tui`]: `ballast tui`, the incident dashboard (`ballast-tui`), live or replaying a run.
//!
//! Exit codes: 0 success, 1 failure, 2 usage error, 78 config error.

mod chaos;
mod demo;
mod demo_upstream;
mod fault;
mod load;
mod report;
mod run;
mod slo;
mod tui;
mod validate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ballast",
    version,
    about = "SRE reliability testing: sidecar, load, chaos, SLOs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the built-in demo: demo upstream + sidecar + traffic, then a simulated bad deploy.
    Demo {
        /// Requests in the steady phase (the bad-deploy phase sends half as many).
        #[arg(long, default_value_t = 400)]
        requests: usize,
    },
    /// Check sidecar configs, scenarios, load profiles, experiments and SLO files; print every error with
    /// file:line:column (exit 78 if any).
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Inject, list and clear faults on a running sidecar (through its admin API).
    Fault(fault::FaultArgs),
    /// Run a load profile (TOML): closed or open model, thresholds that set the exit code.
    Load(load::LoadArgs),
    /// Run a scenario (TOML): target, load, SLOs evaluated live; records a run folder. Exits 1
    /// when a threshold or SLO did not hold.
    Run(run::RunArgs),
    /// Draft the post-mortem of a recorded run: report.md and report.html (exit 78 if the run
    /// folder is missing, incomplete or damaged).
    Report(report::ReportArgs),
    /// SLOs: Prometheus recording and burn-rate alerting rules; where SLOs stand.
    Slo(slo::SloArgs),
    /// Run a chaos experiment against running sidecars: steady-state hypothesis, timed
    /// faults and actions, rollbacks, abort conditions, a journal (exit 1 unless it held).
    Chaos(chaos::ChaosArgs),
    /// The sidecar itself, as `ballast-sidecar --config FILE` runs it (for scenarios run
    /// where only this binary is installed).
    #[command(hide = true)]
    Sidecar {
        #[arg(long)]
        config: PathBuf,
    },
    /// The incident dashboard: live sidecars (--admin URL...) or a recorded run (--replay DIR).
    Tui(tui::TuiArgs),
    /// Run the demo upstream: per-path latency, errors and sizes, changeable at run time.
    DemoUpstream {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// TOML file of behaviours by path prefix (default: a small shop).
        #[arg(long)]
        behaviours: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result = match cli.command {
        Command::Validate { files } => return validate::run(&files),
        Command::Slo(args) => match slo::run(args) {
            Ok(()) => return ExitCode::SUCCESS,
            Err(e) if e.is::<slo::Invalid>() => {
                eprintln!("{e}");
                return ExitCode::from(ballast_sidecar::EXIT_CONFIG);
            }
            Err(e) if e.is::<slo::OverBudget>() => {
                eprintln!("ballast: {e}");
                return ExitCode::FAILURE;
            }
            Err(e) => Err(e),
        },
        Command::Report(args) => match report::run(args) {
            Ok(()) => return ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("ballast: {e}");
                // A damaged run folder is invalid input, as a bad config is.
                return ExitCode::from(if e.is_invalid_input() {
                    ballast_sidecar::EXIT_CONFIG
                } else {
                    1
                });
            }
        },
        Command::Fault(args) => match rt.block_on(fault::run(args)) {
            Ok(()) => return ExitCode::SUCCESS,
            // A refused fault is bad input: usage error.
            Err(e) if e.is::<fault::Refused>() => {
                eprintln!("ballast: {e}");
                return ExitCode::from(2);
            }
            Err(e) => Err(e),
        },
        Command::Chaos(args) => match rt.block_on(chaos::run(args)) {
            Ok(code) => return code,
            Err(e) if e.is::<chaos::Invalid>() => {
                eprint!("{e}");
                return ExitCode::from(ballast_sidecar::EXIT_CONFIG);
            }
            Err(e) if e.is::<chaos::Usage>() => {
                eprintln!("ballast: {e}");
                return ExitCode::from(2);
            }
            Err(e) => Err(e),
        },
        Command::Sidecar { config } => {
            init_logging("info");
            match ballast_sidecar::config::load_file(&config) {
                Ok(c) => ballast_sidecar::sidecar::run(&config, c),
                Err(e) => {
                    eprint!("{e}");
                    return ExitCode::from(ballast_sidecar::EXIT_CONFIG);
                }
            }
        }
        Command::Run(args) => {
            init_logging("warn,goose=error");
            match rt.block_on(run::run(args)) {
                Ok(_) => return ExitCode::SUCCESS,
                Err(e) if run::is_invalid(&e) => {
                    eprintln!("{e}");
                    return ExitCode::from(ballast_sidecar::EXIT_CONFIG);
                }
                Err(e) if let Some(code) = run::failed_exit_code(&e) => {
                    eprintln!("ballast: {e}");
                    return ExitCode::from(code);
                }
                Err(e) => Err(e),
            }
        }
        Command::Load(args) => {
            // goose logs through `log`: routed to tracing, its per-request warnings hidden.
            init_logging("warn,goose=error");
            match load::main(args) {
                Ok(()) => return ExitCode::SUCCESS,
                Err(e) if e.is::<load::Invalid>() => {
                    eprint!("{e}");
                    return ExitCode::from(ballast_sidecar::EXIT_CONFIG);
                }
                Err(e) if e.is::<load::Failed>() => {
                    eprintln!("ballast: {e}");
                    return ExitCode::FAILURE;
                }
                Err(e) => Err(e),
            }
        }
        Command::Tui(args) => match rt.block_on(tui::run(args)) {
            Err(e) if e.is::<slo::Invalid>() => {
                eprintln!("{e}");
                return ExitCode::from(ballast_sidecar::EXIT_CONFIG);
            }
            r => r,
        },
        Command::Demo { requests } => {
            init_logging("warn");
            rt.block_on(demo::run(requests))
        }
        Command::DemoUpstream { listen, behaviours } => {
            init_logging("info");
            let behaviours = match behaviours {
                Some(path) => demo_upstream::load_behaviours(&path),
                None => Ok(demo_upstream::default_behaviours()),
            };
            match behaviours {
                Ok(b) => rt.block_on(demo_upstream::run(listen, b)),
                Err(e) => {
                    eprintln!("ballast: {e:#}");
                    return ExitCode::from(ballast_sidecar::EXIT_CONFIG);
                }
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ballast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BALLAST_LOG").unwrap_or_else(|_| default.into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
