//! `ballast chaos FILE --admin URL...`: run a chaos experiment against running sidecars (and
//! demo upstreams, and processes named by pid file). The experiment is the file's top level or
//! its `[experiment]` table, so a scenario's experiment runs on its own too.
//!
//! Progress goes to stderr as it happens, the summary to stdout, the journal (JSON) to
//! `--journal`. Ctrl-C and SIGTERM end the experiment early; its rollbacks still run. Exit 0
//! when the hypothesis held and every rollback succeeded, 1 otherwise, 2 for usage errors, 78
//! for an invalid experiment.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use ballast_chaos::journal::Journal;
use ballast_chaos::live::{LiveAct, LiveObserver, LiveSidecars};
use ballast_chaos::{Experiment, Verdict};
use ballast_model::client::AdminClient;
use ballast_model::event::unix_ms;
use ballast_model::units::HumanDuration;
use ballast_model::{Event, EventKind};
use clap::Args;

#[derive(Args)]
pub struct ChaosArgs {
    /// The experiment (TOML); a scenario's `[experiment]` table works too.
    file: PathBuf,
    /// A sidecar's admin API (repeat for several: faults go to each, their stats add up).
    #[arg(long = "admin", env = "BALLAST_ADMIN", value_delimiter = ',')]
    admins: Vec<String>,
    /// Bearer token of the admin APIs.
    #[arg(long, env = "BALLAST_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print the plan with absolute times, and run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Write the journal (JSON: every step, every probe reading, the verdict) to this file.
    #[arg(long)]
    journal: Option<PathBuf>,
}

/// The experiment cannot run as written: every problem, already formatted (exit 78).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

/// The command line asks for something that cannot be done (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(String);

pub async fn run(args: ChaosArgs) -> anyhow::Result<ExitCode> {
    let loaded = ballast_chaos::load::load_file(&args.file).map_err(|e| Invalid(e.to_string()))?;
    let e = loaded.experiment;
    let file = args.file.display().to_string();
    let names = e.process_names();
    if !names.is_empty() {
        return Err(Invalid(format!(
            "{file}: the experiment names processes ({}) that only `ballast run` knows (those a scenario spawns)\n  \
             fix: name processes by pid file here, e.g. `stop = {{ pid_file = \"/run/app.pid\" }}`\n",
            names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
        ))
        .into());
    }
    if args.dry_run {
        print!("{}", ballast_chaos::plan::plan(&e, SystemTime::now()));
        return Ok(ExitCode::SUCCESS);
    }
    if e.uses_sidecars() && args.admins.is_empty() {
        return Err(Usage(
            "the experiment uses sidecars (faults or stats probes): give their admin APIs with --admin URL".into(),
        )
        .into());
    }
    // Scrapes at least as often as the checks, and every second at most.
    let scrape = e.interval.min(Duration::from_secs(1));
    let sidecars = if args.admins.is_empty() {
        None
    } else {
        let keep = e.longest_window() + 2 * scrape;
        Some(
            LiveSidecars::start(&args.admins, args.token.clone(), scrape, keep)
                .await
                .map_err(|err| anyhow::anyhow!("cannot read the sidecars' stats: {err}"))?,
        )
    };
    let observer = LiveObserver::new(sidecars.as_ref().map(LiveSidecars::history));
    let actor = LiveAct::new(
        args.admins
            .iter()
            .map(|a| AdminClient::new(a, args.token.clone()))
            .collect(),
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let start_ms = unix_ms();
    let progress = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if let Some(line) = progress_line(&event, start_ms) {
                eprintln!("{line}");
            }
        }
    });
    eprintln!(
        "ballast chaos: {} (method ends at +{}; Ctrl-C ends it early and rolls back)",
        e.title,
        HumanDuration(e.method_end)
    );
    let journal = e.run(&observer, &actor, interrupted(), Some(tx)).await;
    // Stress ends with the actor; the last progress lines are printed before the summary.
    drop(actor);
    let _ = progress.await;
    print!("{}", summary(&e, &journal));
    if let Some(path) = &args.journal {
        let json = serde_json::to_string_pretty(&journal)?;
        std::fs::write(path, json + "\n").with_context(|| format!("cannot write {}", path.display()))?;
        println!("journal: {}", path.display());
    }
    Ok(if journal.verdict == Verdict::Held && journal.rollbacks_failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Resolves on Ctrl-C or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// One stderr line per step, undo and verdict change.
fn progress_line(event: &Event, start_ms: u64) -> Option<String> {
    let at = format!(
        "{:>8}",
        format!("+{:.1}s", event.at_ms.saturating_sub(start_ms) as f64 / 1000.0)
    );
    Some(match &event.kind {
        EventKind::ExperimentStepFinished {
            step, action, ok: true, ..
        } => format!("{at}  {step}: {action}"),
        EventKind::ExperimentStepFinished {
            step, action, error, ..
        } => format!(
            "{at}  {step}: {action}: FAILED: {}",
            error.as_deref().unwrap_or("unknown error")
        ),
        EventKind::HypothesisChecked {
            phase, held, failed, ..
        } => {
            let verdict = if *held { "holds" } else { "does NOT hold" };
            let mut line = format!("{at}  steady state {phase}: {verdict}");
            for f in failed {
                line.push_str(&format!("\n{:>10}{f}", ""));
            }
            line
        }
        EventKind::ExperimentFinished { verdict, .. } => format!("{at}  verdict: {verdict}"),
        _ => return None,
    })
}

fn summary(e: &Experiment, j: &Journal) -> String {
    let mut out = format!("experiment: {}\nverdict: {}\n", e.title, j.verdict.as_str());
    if let Some(reason) = &j.reason {
        out.push_str(&format!("reason: {reason}\n"));
    }
    let h = &j.hypothesis;
    let yes_no = |b: Option<bool>| match b {
        Some(true) => "held",
        Some(false) => "did not hold",
        None => "not checked",
    };
    out.push_str(&format!("steady state before: {}\n", yes_no(h.held_before)));
    let failed = h.during.iter().filter(|c| !c.held).count();
    out.push_str(&format!(
        "steady state during: {} ({} checks, {failed} failed)\n",
        yes_no(h.held_during),
        h.during.len()
    ));
    let after = match (h.held_after, h.recovered_in_ms) {
        (Some(true), Some(ms)) => format!("back after {}", HumanDuration(Duration::from_millis(ms))),
        (b, _) => yes_no(b).to_owned(),
    };
    out.push_str(&format!("steady state after: {after}\n"));
    for s in &j.steps {
        let status = match &s.run.error {
            None => "ok".to_owned(),
            Some(err) => format!("FAILED: {err}"),
        };
        out.push_str(&format!(
            "step {} at +{}: {}: {status}\n",
            s.run.step,
            HumanDuration(Duration::from_millis(s.run.offset_ms)),
            s.run.action
        ));
    }
    out.push_str(&format!(
        "rollbacks: {} ran, {} failed\n",
        j.rollbacks.len(),
        j.rollbacks_failed
    ));
    for r in j.rollbacks.iter().filter(|r| !r.ok) {
        out.push_str(&format!(
            "  {} ({}): {}\n",
            r.step,
            r.action,
            r.error.as_deref().unwrap_or_default()
        ));
    }
    out
}
