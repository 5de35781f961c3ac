//! `ballast load PROFILE.toml`: run a load profile, print what happened (a table, or the
//! results as JSON), write the run's files with `--out DIR`, exit 1 when a threshold fails.
//! A progress line shows on stderr when it is a terminal.

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use ballast_loadgen::files;
use ballast_model::load::{EndedBy, Results, Tally};
use clap::Args;

#[derive(Args)]
pub struct LoadArgs {
    /// The load profile (TOML).
    profile: PathBuf,
    #[arg(long, value_parser = ["table", "json"], default_value = "table")]
    output: String,
    /// Write results.json, timeseries.csv, requests.csv and latency.hlog into this folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Only check the profile (exit 78 with every problem if it has any).
    #[arg(long)]
    check: bool,
    /// Threads sending the load (default: one per CPU core). 1 runs everything on one thread,
    /// with no cross-thread wake-ups: the most requests per CPU second.
    #[arg(long)]
    threads: Option<usize>,
}

/// Run `ballast load` on a runtime of its own, sized by `--threads`.
pub fn main(args: LoadArgs) -> anyhow::Result<()> {
    let rt = match args.threads {
        Some(1) => tokio::runtime::Builder::new_current_thread().enable_all().build()?,
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n.max(1))
            .enable_all()
            .build()?,
        None => tokio::runtime::Runtime::new()?,
    };
    rt.block_on(run(args))
}

/// The profile has problems: every one, already formatted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

/// A threshold failed, or the run was aborted or canceled.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failed(String);

pub async fn run(args: LoadArgs) -> anyhow::Result<()> {
    let profile = ballast_loadgen::load_file(&args.profile).map_err(|e| Invalid(e.to_string()))?;
    if args.check {
        println!(
            "{}: ok ({} transactions, {:?} model)",
            args.profile.display(),
            profile.transactions.len(),
            profile.shape.model()
        );
        return Ok(());
    }
    let requests_csv = match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            Some(dir.join(files::REQUESTS_CSV))
        }
        None => None,
    };
    let (feed, progress) = if std::io::stderr().is_terminal() {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        (
            Some(tx),
            Some(tokio::spawn(show_progress(rx, profile.shape.duration().as_secs()))),
        )
    } else {
        (None, None)
    };
    // The first Ctrl-C stops the load and waits for the requests in flight (up to the profile's
    // timeout); a second one does not wait.
    let mut presses = ballast_loadgen::interrupt::presses();
    let cancel = async move {
        presses.next().await;
        tokio::spawn(async move {
            presses.next().await;
            eprintln!("ballast: stopped without waiting for the requests in flight");
            std::process::exit(130);
        });
    };
    let options = ballast_loadgen::Options {
        feed,
        requests_csv,
        ..Default::default()
    };
    let quiet = StdoutToStderr::new();
    let outcome = ballast_loadgen::run_with(&profile, options, cancel).await;
    drop(quiet);
    let results = match outcome {
        Ok(r) => r,
        Err(ballast_loadgen::LoadError::Unreachable { url, reason }) => {
            anyhow::bail!("cannot reach {url} ({reason})\n  fix: start the service, or correct base_url in the profile")
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(p) = progress {
        let _ = p.await;
    }
    if let Some(dir) = &args.out {
        files::write_all(&results, dir)?;
    }
    if args.output == "json" {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print!("{}", table(&results));
    }
    match &results.ended_by {
        EndedBy::Canceled => Err(Failed("the run was canceled".into()).into()),
        EndedBy::Aborted { threshold } => Err(Failed(format!("aborted early: {threshold} failed")).into()),
        EndedBy::Completed if !results.passed() => {
            let n = results.thresholds.iter().filter(|t| !t.passed).count();
            Err(Failed(format!("{n} threshold{} failed", if n == 1 { "" } else { "s" })).into())
        }
        EndedBy::Completed => Ok(()),
    }
}

async fn show_progress(mut rx: tokio::sync::mpsc::Receiver<ballast_loadgen::Second>, planned_secs: u64) {
    let bar = if planned_secs > 0 {
        indicatif::ProgressBar::new(planned_secs)
    } else {
        indicatif::ProgressBar::no_length()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len}s  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    while let Some(s) = rx.recv().await {
        bar.set_position(s.second + 1);
        bar.set_message(format!(
            "{} req/s  p99 {:.1}ms  errors {:.2}%  in flight {}",
            s.all.requests,
            s.all.quantile_ms(0.99),
            s.all.error_rate() * 100.0,
            s.in_flight
        ));
    }
    bar.finish_and_clear();
}

/// The run for people: totals, per transaction, statuses, errors, thresholds.
fn table(r: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} requests in {:.1}s ({:.1} req/s), {} failed ({:.2}%), {:?} model",
        r.name,
        r.requests,
        r.duration_s,
        r.rps,
        r.failed,
        r.error_rate * 100.0,
        r.model
    );
    let _ = writeln!(
        out,
        "\n{:<32} {:>9} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "transaction", "requests", "failed", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let line = |out: &mut String, name: &str, t: &Tally, rps: f64| {
        let p = t.percentiles();
        let _ = writeln!(
            out,
            "{:<32} {:>9} {:>7} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            name, t.requests, t.failed, rps, p.p50, p.p90, p.p99, p.max
        );
    };
    for (name, t) in &r.transactions {
        line(&mut out, name, &t.tally, t.rps);
    }
    line(&mut out, "(all)", &r.all, r.rps);
    let statuses: Vec<String> = r.all.by_status.iter().map(|(s, n)| format!("{s} x{n}")).collect();
    let _ = writeln!(
        out,
        "\nstatuses: {}",
        if statuses.is_empty() {
            "none".into()
        } else {
            statuses.join(", ")
        }
    );
    let errors: Vec<String> = r.all.by_error.iter().map(|(e, n)| format!("{e} x{n}")).collect();
    let _ = writeln!(
        out,
        "errors: {}",
        if errors.is_empty() {
            "none".into()
        } else {
            errors.join(", ")
        }
    );
    if !r.thresholds.is_empty() {
        let _ = writeln!(out, "\nthresholds:");
        for t in &r.thresholds {
            let observed = t.observed.map_or("no data".to_owned(), |v| format!("{v:.3}"));
            let _ = writeln!(
                out,
                "  {:<5} {:<40} observed {observed}",
                if t.passed { "ok" } else { "FAIL" },
                t.expr
            );
        }
    }
    match &r.ended_by {
        EndedBy::Completed => {}
        EndedBy::Canceled => {
            let _ = writeln!(out, "\nended early: canceled");
        }
        EndedBy::Aborted { threshold } => {
            let _ = writeln!(out, "\nended early: {threshold} failed over its abort window");
        }
    }
    out
}

/// goose prints "N users launched." on stdout once its users are up, whatever it is told;
/// while it runs, stdout goes to stderr so `--output json` stays JSON.
struct StdoutToStderr(Option<i32>);

impl StdoutToStderr {
    fn new() -> Self {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        // SAFETY: dup/dup2 on the process's own standard descriptors; restored on drop.
        let saved = unsafe { libc::dup(1) };
        if saved < 0 || unsafe { libc::dup2(2, 1) } < 0 {
            return StdoutToStderr(None);
        }
        StdoutToStderr(Some(saved))
    }
}

impl Drop for StdoutToStderr {
    fn drop(&mut self) {
        use std::io::Write;
        if let Some(saved) = self.0 {
            let _ = std::io::stdout().flush();
            // SAFETY: as in `new`.
            unsafe {
                libc::dup2(saved, 1);
                libc::close(saved);
            }
        }
    }
}
