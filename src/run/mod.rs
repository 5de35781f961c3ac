//! `ballast run scenario.toml`: bring up (or attach to) the target, drive the scenario's load
//! and its chaos experiment, evaluate its SLOs live from the sidecar's stats and the load
//! generator's seconds, and leave a run folder behind (docs/run-folder.md) with the
//! post-mortem draft (`report.md`, `report.html`). Exit 0 when every threshold and SLO held, 1 when
//! one did not, 130 when interrupted, 78 for an invalid scenario.
//!
//! # Layout
//! - [`clock`]: the run's seconds, counted from the load's start.
//! - [`scenario`]: the scenario as written and checked; [`placeholders`] fill in the
//!   addresses known only once the run starts.
//! - [`target`]: the scenario's processes, the demo upstream and the sidecar as child
//!   processes (restartable), or an attached sidecar.
//! - [`watch`]: once a second, the sidecar's `/stats` (rows, SLO feed, `stats.jsonl`); its
//!   `/events` as they come.
//! - [`slos`]: the SLOs evaluated live, with alert events.
//! - [`expect`]: the events the scenario expects, judged on the run's timeline.
//! - [`record`]: the run folder's files.
//! - [`dashboard`]: the live dashboard when stdout is a terminal (a progress line otherwise).
//!
//! Everything spawned is stopped at the end, also on Ctrl-C or SIGTERM (the load stops,
//! the files are written, then the processes get SIGTERM).

mod clock;
mod dashboard;
mod expect;
mod placeholders;
mod record;
pub mod scenario;
mod slos;
mod target;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ballast_loadgen::interrupt::Presses;
use ballast_model::event::unix_ms;
use ballast_model::{Event, EventKind};
use clap::Args;
use serde::Serialize;
use tokio::sync::mpsc;

use record::RunFolder;
use slos::Slos;

#[derive(Args)]
pub struct RunArgs {
    /// The scenario (TOML).
    pub scenario: PathBuf,
    /// Where run folders go (default: the scenario's `[record] dir`, else `runs`).
    #[arg(long)]
    pub runs: Option<PathBuf>,
    /// A progress line instead of the dashboard (the default when stdout is not a terminal).
    #[arg(long)]
    pub no_tui: bool,
}

/// A threshold, hypothesis, SLO or expectation did not hold (exit 1), or the run was
/// interrupted before its end (exit 130, as a shell reports Ctrl-C).
#[derive(Debug, thiserror::Error)]
#[error("the scenario did not hold: see {summary}")]
pub struct Failed {
    pub summary: String,
    pub exit_code: u8,
}

/// The exit code of a run interrupted by Ctrl-C, SIGTERM or quitting the dashboard.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Ctrl-C or SIGTERM came while the target was starting: what had started was stopped (exit
/// 130).
#[derive(Debug, thiserror::Error)]
#[error("interrupted while the target was starting; what had started is stopped")]
pub struct Interrupted;

/// Ctrl-C or SIGTERM.
async fn interruption(presses: &mut Presses) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("signal handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = presses.next() => {}
    }
}

/// Set when the run is interrupted (Ctrl-C, SIGTERM, quitting the dashboard).
type Cancel = Arc<tokio::sync::watch::Sender<bool>>;

/// Cancel the run at the first interruption. Rollbacks always run: later Ctrl-Cs, until the
/// run has stopped everything, only hear so.
async fn cancel_on_interruption(mut presses: Presses, cancel: Cancel) {
    interruption(&mut presses).await;
    // Kept even before the run's parts subscribe.
    cancel.send_replace(true);
    loop {
        presses.next().await;
        eprintln!("ballast: stopping already: rolling back and stopping what the run started");
    }
}

/// What `summary.json` says.
#[derive(Serialize)]
struct Summary {
    scenario: String,
    started_at_ms: u64,
    ended_at_ms: u64,
    passed: bool,
    exit_code: u8,
    /// Stopped before its end (Ctrl-C, SIGTERM, the dashboard quit): what ran is judged, but
    /// the run does not pass.
    interrupted: bool,
    thresholds: Vec<ballast_model::load::ThresholdOutcome>,
    hypotheses: Vec<serde_json::Value>,
    slos: Vec<SloVerdict>,
    expectations: Vec<expect::Verdict>,
}

#[derive(Serialize)]
struct SloVerdict {
    name: String,
    budget_remaining: f64,
    passed: bool,
}

pub async fn run(args: RunArgs) -> anyhow::Result<PathBuf> {
    let scenario = scenario::load(&args.scenario)?;
    let started_at_ms = unix_ms();
    let runs = args.runs.unwrap_or_else(|| scenario.runs_dir.clone());
    // Absolute, because the processes a scenario spawns run inside the folder: a path relative
    // to the runner's directory (`runs/...`, the default) would not resolve from there.
    let dir = std::path::absolute(runs.join(record::folder_name(&scenario.title, started_at_ms)))
        .map_err(|e| anyhow::anyhow!("cannot resolve the run folder's path: {e}"))?;
    let mut folder = RunFolder::create(dir.clone(), &scenario.text)?;
    // Ctrl-C is ours from here on, never goose's, which would exit the process on a second one.
    let mut presses = ballast_loadgen::interrupt::presses();
    // Dropping a start cut short kills what it had spawned (their handles kill on drop).
    let mut target = tokio::select! {
        started = target::start(&scenario, &dir) => started?,
        _ = interruption(&mut presses) => return Err(Interrupted.into()),
    };
    let tui = !args.no_tui && std::io::IsTerminal::is_terminal(&std::io::stdout());
    // Ctrl-C or SIGTERM stop the load and the experiment (which then rolls back), until the
    // run has stopped what it started and written its files.
    let cancel_tx = Arc::new(tokio::sync::watch::channel(false).0);
    let signals = tokio::spawn(cancel_on_interruption(presses, cancel_tx.clone()));
    let outcome = drive(&scenario, &target, &mut folder, started_at_ms, tui, &cancel_tx).await;
    target.stop(Duration::from_secs(10)).await;
    let (passed, summary) = outcome?;
    folder.json("summary.json", &summary)?;
    let exit_code = summary.exit_code;
    // The post-mortem draft; a run whose report cannot be made still has its files.
    let formats = [ballast_report::Format::Markdown, ballast_report::Format::Html];
    match ballast_report::write(&dir, &formats, None) {
        Ok(written) => println!("  report: {}", written.headline),
        Err(e) => eprintln!("ballast: no report for this run: {e}"),
    }
    eprintln!("run folder: {}", dir.display());
    signals.abort();
    if !passed {
        return Err(Failed {
            summary: dir.join("summary.json").display().to_string(),
            exit_code,
        }
        .into());
    }
    Ok(dir)
}

/// The run proper, between the target's start and stop.
async fn drive(
    scenario: &scenario::Scenario,
    target: &target::Running,
    folder: &mut RunFolder,
    started_at_ms: u64,
    tui: bool,
    cancel_tx: &Cancel,
) -> anyhow::Result<(bool, Summary)> {
    let profile = scenario.profile(&target.placeholders)?;
    let experiment = scenario.experiment(&target.placeholders)?;
    // The timeline, kept for the expectations.
    let mut timeline = Vec::new();
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Event>();
    let (seconds_tx, mut seconds_rx) = mpsc::channel(64);
    let mut slos = Slos::new(&scenario.slos);
    let _ = events_tx.send(Event::now("runner", run_phase("started")));
    let follow = tokio::spawn(watch::follow_events(
        target.admin.clone(),
        target.token.clone(),
        started_at_ms,
        events_tx.clone(),
    ));
    let cancel_rx = cancel_tx.subscribe();
    let cancelled = || {
        let mut rx = cancel_rx.clone();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    };
    let stop = cancelled();
    // The experiment's probes read the runner's own scrapes.
    let history = experiment
        .as_ref()
        .map(|_| ballast_chaos::live::StatsHistory::new(1, Duration::from_secs(15 * 60)));
    let mut scraper = watch::Scraper::new(&target.admin, target.token.clone(), history.clone()).await?;
    let mut dashboard = if tui {
        let shown = dashboard::Dashboard::start(
            watch::SIDECAR,
            &target.admin,
            target.token.clone(),
            scenario.slos.clone(),
            &folder.dir.join("run.log"),
            cancel_tx.clone(),
        );
        shown
            .map_err(|e| eprintln!("ballast: no dashboard ({e:#}); a progress line instead"))
            .ok()
    } else {
        None
    };
    let observer = ballast_chaos::live::LiveObserver::new(history);
    let actor = ballast_chaos::live::LiveAct::new(vec![ballast_model::client::AdminClient::new(
        &target.admin,
        target.token.clone(),
    )]);
    for (name, process) in target.managed() {
        actor.register(name, process);
    }
    let experiment_events = events_tx.clone();
    let mut experiment_done = experiment.is_none();
    // Boxed so it can be dropped before the events are drained: it holds an events sender.
    let mut experiment = Box::pin(async {
        match &experiment {
            Some(e) => Some(e.run(&observer, &actor, cancelled(), Some(experiment_events)).await),
            None => None,
        }
    });
    let mut journal = None;
    let requests_csv = folder.dir.join(ballast_loadgen::files::REQUESTS_CSV);
    // Seconds count from the load's start; without load, from now.
    let (load_started, mut load_start) = tokio::sync::oneshot::channel();
    let mut load_start_seen = false;
    let mut clock = profile
        .is_none()
        .then(|| clock::Clock::starting(tokio::time::Instant::now(), unix_ms()));
    let load = async {
        match &profile {
            Some(p) => {
                let options = ballast_loadgen::Options {
                    feed: Some(seconds_tx),
                    requests_csv: Some(requests_csv),
                    started: Some(load_started),
                };
                ballast_loadgen::run_with(p, options, stop).await.map(Some)
            }
            None => {
                drop(seconds_tx);
                tokio::select! {
                    _ = tokio::time::sleep(scenario.duration.unwrap_or_default()) => {}
                    _ = stop => {}
                }
                Ok(None)
            }
        }
    };
    tokio::pin!(load);
    let progress = Progress::new();
    let mut load_done = None;
    let results = loop {
        if experiment_done && let Some(done) = load_done.take() {
            break done?;
        }
        tokio::select! {
            done = &mut load, if load_done.is_none() => {
                // A load canceled through goose's killswitch (which our Ctrl-C handler sets
                // too) is the run's cancel: the experiment rolls back as well.
                if let Ok(Some(r)) = &done
                    && r.ended_by == ballast_model::load::EndedBy::Canceled
                {
                    let _ = cancel_tx.send(true);
                }
                load_done = Some(done);
            }
            j = &mut experiment, if !experiment_done => {
                journal = j;
                experiment_done = true;
            }
            started = &mut load_start, if clock.is_none() && !load_start_seen => {
                load_start_seen = true;
                if let Ok((at, at_ms)) = started {
                    clock = Some(clock::Clock::starting(at, at_ms));
                }
            }
            closes = clock::tick(&mut clock) => {
                let second = step(closes, &mut scraper, folder, &mut slos, &events_tx, dashboard.as_ref()).await?;
                while let Ok(e) = events_rx.try_recv() {
                    record(folder, &mut timeline, dashboard.as_ref(), e)?;
                }
                if dashboard.as_ref().is_none_or(dashboard::Dashboard::failed) {
                    progress.show(second, scraper.last_line(), &slos);
                }
            }
            Some(s) = seconds_rx.recv() => slos.client(&s),
        }
    };
    // Decided now: quitting the dashboard from here on is no interruption.
    let interrupted = *cancel_rx.borrow();
    // The last second: the sidecar's final counts and what the load's feed still held.
    while let Ok(s) = seconds_rx.try_recv() {
        slos.client(&s);
    }
    // A load that never started has no clock: its seconds count from now.
    let clock = clock.get_or_insert_with(|| clock::Clock::starting(tokio::time::Instant::now(), unix_ms()));
    step(
        clock.last(),
        &mut scraper,
        folder,
        &mut slos,
        &events_tx,
        dashboard.as_ref(),
    )
    .await?;
    let _ = events_tx.send(Event::now("runner", run_phase("ended")));
    follow.abort();
    drop(events_tx);
    drop(experiment);
    // Every sender is gone by now; the timeout only guards against one that is not.
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(5), events_rx.recv()).await {
        record(folder, &mut timeline, dashboard.as_ref(), e)?;
    }
    if let Some(problem) = dashboard.take().and_then(dashboard::Dashboard::finish) {
        eprintln!("ballast: {problem}");
    }
    folder.timeseries(results.as_ref())?;
    if let Some(r) = &results {
        ballast_loadgen::files::write_json(r, &folder.dir.join(ballast_loadgen::files::RESULTS_JSON))?;
        ballast_loadgen::files::write_hlog(r, &folder.dir.join(ballast_loadgen::files::LATENCY_HLOG))?;
    }
    let report = slos.report();
    folder.json("slo.json", &report)?;
    if let Some(j) = &journal {
        folder.json("journal.json", j)?;
    }
    folder.flush()?;

    let thresholds = results.as_ref().map(|r| r.thresholds.clone()).unwrap_or_default();
    let slo_verdicts: Vec<SloVerdict> = report
        .iter()
        .map(|r| {
            let remaining = r.status.as_ref().map_or(1.0, |s| s.budget_remaining);
            SloVerdict {
                name: r.name.clone(),
                budget_remaining: remaining,
                passed: remaining >= 0.0,
            }
        })
        .collect();
    let load_held = results.as_ref().is_none_or(|r| r.passed());
    let experiment_held = journal
        .as_ref()
        .is_none_or(|j| j.verdict == ballast_chaos::Verdict::Held && j.rollbacks_failed == 0);
    let expectations: Vec<expect::Verdict> = scenario
        .expectations
        .iter()
        .map(|x| x.clone().filled(&target.placeholders).judge(&timeline, started_at_ms))
        .collect();
    let passed = !interrupted
        && load_held
        && experiment_held
        && slo_verdicts.iter().all(|s| s.passed)
        && expectations.iter().all(|x| x.passed);
    print_verdict(
        scenario,
        results.as_ref(),
        &slo_verdicts,
        journal.as_ref(),
        &expectations,
    );
    if interrupted {
        println!("  interrupted before its end: what ran is judged above, the run does not pass");
    }
    Ok((
        passed,
        Summary {
            scenario: scenario.title.clone(),
            started_at_ms,
            ended_at_ms: unix_ms(),
            passed,
            exit_code: if interrupted {
                EXIT_INTERRUPTED
            } else {
                u8::from(!passed)
            },
            interrupted,
            thresholds,
            hypotheses: journal.as_ref().map(hypotheses).unwrap_or_default(),
            slos: slo_verdicts,
            expectations,
        },
    ))
}

/// An event into the run folder, the timeline kept for the expectations, and the dashboard.
fn record(
    folder: &mut RunFolder,
    timeline: &mut Vec<Event>,
    dashboard: Option<&dashboard::Dashboard>,
    e: Event,
) -> anyhow::Result<()> {
    folder.event(&e)?;
    if let Some(d) = dashboard {
        d.feed(ballast_tui::Feed::Event(e.clone()));
    }
    timeline.push(e);
    Ok(())
}

/// One second of the run closes (its number and start): scrape the sidecar, evaluate the
/// SLOs, record both; the second's number.
async fn step(
    (second, at_ms): (u64, u64),
    scraper: &mut watch::Scraper,
    folder: &mut RunFolder,
    slos: &mut Slos,
    events: &mpsc::UnboundedSender<Event>,
    dashboard: Option<&dashboard::Dashboard>,
) -> anyhow::Result<u64> {
    let now = unix_ms();
    scraper.scrape(now, (second, at_ms), folder, slos, dashboard).await;
    let (rows, alerts) = slos.evaluate(now);
    folder.slo_rows(second, at_ms, &rows)?;
    for kind in alerts {
        let _ = events.send(Event::now("slo", kind));
    }
    Ok(second)
}

/// `summary.json`'s hypotheses: the experiment's steady state before, during and after.
fn hypotheses(j: &ballast_chaos::Journal) -> Vec<serde_json::Value> {
    let h = &j.hypothesis;
    [
        ("before", h.held_before),
        ("during", h.held_during),
        ("after", h.held_after),
    ]
    .into_iter()
    .filter_map(|(phase, held)| {
        held.map(|passed| {
            serde_json::json!({
                "phase": phase,
                "passed": passed,
                "detail": format!("experiment {:?}: {}", j.title, j.verdict.as_str()),
            })
        })
    })
    .collect()
}

fn run_phase(phase: &str) -> EventKind {
    EventKind::RunPhase {
        phase: phase.to_owned(),
    }
}

fn print_verdict(
    scenario: &scenario::Scenario,
    results: Option<&ballast_model::load::Results>,
    slos: &[SloVerdict],
    journal: Option<&ballast_chaos::Journal>,
    expectations: &[expect::Verdict],
) {
    println!("{}", scenario.title);
    if let Some(d) = &scenario.description {
        println!("  {}", d.trim());
    }
    if let Some(r) = results {
        println!(
            "  load: {} requests, {:.1} req/s, {:.2}% failed, p99 {:.1} ms",
            r.requests,
            r.rps,
            r.error_rate * 100.0,
            r.latency_ms.p99
        );
        for t in &r.thresholds {
            let mark = if t.passed { "held" } else { "FAILED" };
            let seen = t.observed.map_or("-".to_owned(), |v| format!("{v:.3}"));
            println!("  threshold {:<40} {mark} (observed {seen})", t.expr);
        }
    }
    if let Some(j) = journal {
        let mark = if j.verdict == ballast_chaos::Verdict::Held {
            "held"
        } else {
            "FAILED"
        };
        let why = j.reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default();
        println!("  experiment {:<39} {mark} ({}{why})", j.title, j.verdict.as_str());
    }
    for s in slos {
        let mark = if s.passed { "held" } else { "FAILED" };
        println!(
            "  slo {:<46} {mark} (budget left {:.1}%)",
            s.name,
            s.budget_remaining * 100.0
        );
    }
    for x in expectations {
        let mark = if x.passed { "held" } else { "FAILED" };
        let when = x
            .seen_after_ms
            .map(|ms| format!(" (after {:.1}s)", ms as f64 / 1000.0))
            .unwrap_or_default();
        let note = x.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
        println!("  expect {} {mark}{when}{note}", x.expect);
    }
}

/// A line per five seconds on stderr while the run goes.
struct Progress {
    terminal: bool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            terminal: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }

    fn show(&self, second: u64, sidecar: Option<String>, slos: &Slos) {
        if !second.is_multiple_of(5) && !self.terminal {
            return;
        }
        let paging = slos.paging();
        let alerts = if paging.is_empty() {
            String::new()
        } else {
            format!(" | PAGE: {}", paging.join(", "))
        };
        let line = format!("[{second:>4}s] {}{alerts}", sidecar.unwrap_or_default());
        if self.terminal {
            eprint!("\r\x1b[2K{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.terminal {
            eprintln!();
        }
    }
}

/// For errors that name the scenario's problems (exit 78).
pub fn is_invalid(e: &anyhow::Error) -> bool {
    e.is::<scenario::Invalid>()
}

/// The exit code of a finished run that did not hold (1) or was interrupted (130).
pub fn failed_exit_code(e: &anyhow::Error) -> Option<u8> {
    if e.is::<Interrupted>() {
        return Some(EXIT_INTERRUPTED);
    }
    e.downcast_ref::<Failed>().map(|f| f.exit_code)
}
