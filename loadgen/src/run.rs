//! Running a profile: check the target is reachable, start the collector, run the goose
//! attack, and end it on time, on a threshold abort or on cancel; then build the results.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Duration;

use ballast_model::load::{EndedBy, Results, Second, ThresholdOutcome, TransactionResults};
use tokio::sync::{Mutex, mpsc, watch};
use tokio::time::Instant;

use crate::collector::Collector;
use crate::error::LoadError;
use crate::profile::Profile;
use crate::schedule::Schedule;
use crate::shape::Shape;
use crate::shared::{Shared, open_draw};

/// goose keeps process-wide state (its killswitch, logger and Ctrl-C handler): one attack at
/// a time per process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

/// What a run is given besides its profile.
#[derive(Default)]
pub struct Options {
    /// Each second, as it closes (skipped while the receiver is full).
    pub feed: Option<mpsc::Sender<Second>>,
    /// Write the per-request log (`requests.csv`) here while the run goes.
    pub requests_csv: Option<PathBuf>,
    /// Told when the run's clock starts (its [`Instant`] and Unix milliseconds, as
    /// `started_at_ms` and every second's `at_ms` count them), so a caller can count its own
    /// seconds from the same origin.
    pub started: Option<tokio::sync::oneshot::Sender<(Instant, u64)>>,
}

/// Run a profile inside the caller's tokio runtime until its shape is done or `cancel`
/// resolves. `feed` gets a [`Second`] as each second of the run closes.
pub async fn run(
    profile: &Profile,
    feed: Option<mpsc::Sender<Second>>,
    cancel: impl Future<Output = ()>,
) -> Result<Results, LoadError> {
    run_with(
        profile,
        Options {
            feed,
            ..Options::default()
        },
        cancel,
    )
    .await
}

/// [`run`] with every option.
pub async fn run_with(
    profile: &Profile,
    options: Options,
    cancel: impl Future<Output = ()>,
) -> Result<Results, LoadError> {
    let _one = ONE_AT_A_TIME.lock().await;
    crate::preflight::reach(profile).await?;
    let client = crate::client::build(profile, false)?;
    let log = match &options.requests_csv {
        Some(path) => Some(csv::Writer::from_writer(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|source| LoadError::Write {
                path: path.display().to_string(),
                source,
            })?,
        ))),
        None => None,
    };

    let start = Instant::now();
    let start_unix_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    if let Some(started) = options.started {
        let _ = started.send((start, start_unix_us / 1000));
    }
    let (done_tx, done) = tokio::sync::oneshot::channel();
    let (abort_tx, mut abort_rx) = mpsc::unbounded_channel();
    let schedule = match &profile.shape {
        Shape::Open { stages, iterations, .. } => Some(Schedule::new(stages, *iterations)),
        Shape::Closed { .. } => None,
    };
    let shared = Arc::new(Shared {
        profile: profile.clone(),
        start,
        seq: AtomicU64::new(0),
        stop: watch::Sender::new(false),
        draw: schedule.is_some().then(|| open_draw(profile)),
        schedule,
        records: std::sync::Mutex::new(Vec::new()),
        in_flight: AtomicU64::new(0),
        pending: AtomicU64::new(0),
        client,
        next_user: AtomicUsize::new(0),
    });
    let collector = tokio::spawn(Collector::new(shared.clone(), start_unix_us, options.feed, log, abort_tx).run(done));

    // Before goose sets its Ctrl-C handler, which exits the process on a Ctrl-C while its
    // killswitch is set (a second one, or any during a run's end).
    crate::interrupt::install();
    let attack = crate::attack::build(&shared)?;
    let goose = attack.execute();
    tokio::pin!(goose, cancel);
    // A closed model without iterations ends with its stages: stop thinking users then.
    let end_at = match &profile.shape {
        Shape::Closed { iterations: None, .. } => Some(start + profile.shape.duration()),
        _ => None,
    };
    let mut ended_by: Option<EndedBy> = None;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    let outcome = loop {
        tokio::select! {
            result = &mut goose => break result,
            _ = &mut cancel, if ended_by.is_none() => ended_by = Some(EndedBy::Canceled),
            Some(expr) = abort_rx.recv(), if ended_by.is_none() => ended_by = Some(EndedBy::Aborted { threshold: expr }),
            _ = tokio::time::sleep_until(end_at.unwrap_or(start)), if end_at.is_some() && ended_by.is_none() => {
                ended_by = Some(EndedBy::Completed);
            }
            _ = poll.tick() => {
                // Open model: done once every scheduled request is sent and answered.
                if ended_by.is_none()
                    && shared.schedule.as_ref().is_some_and(|s| s.remaining() == 0)
                    && shared.pending.load(std::sync::atomic::Ordering::Relaxed) == 0
                {
                    ended_by = Some(EndedBy::Completed);
                }
            }
        }
        if ended_by.is_some() {
            shared.stop.send_replace(true);
            // Again at each poll: goose clears the killswitch when its run starts.
            goose::trigger_killswitch("ballast: the load run is over");
        }
    };
    let canceled_by_goose = goose::is_killswitch_triggered() && ended_by.is_none();
    goose::reset_killswitch();
    let _ = done_tx.send(());
    let mut collector = collector.await.expect("the collector does not panic");
    if let Err(e) = outcome {
        return Err(LoadError::Goose(e.to_string()));
    }
    if let Some(e) = collector.log_error() {
        return Err(LoadError::Write {
            path: options.requests_csv.unwrap_or_default().display().to_string(),
            source: e,
        });
    }
    let ended_by = ended_by.unwrap_or(if canceled_by_goose {
        // Its killswitch stopped it: our Ctrl-C handler (`interrupt`), or anyone else's call.
        EndedBy::Canceled
    } else {
        EndedBy::Completed
    });
    Ok(results(profile, collector, start, start_unix_us, ended_by))
}

fn results(profile: &Profile, c: Collector, start: Instant, start_unix_us: u64, ended_by: EndedBy) -> Results {
    let duration_s = if c.all.requests > 0 {
        c.last_end_us as f64 / 1e6
    } else {
        start.elapsed().as_secs_f64()
    }
    .max(1e-3);
    let transactions: std::collections::BTreeMap<String, TransactionResults> = profile
        .transactions
        .iter()
        .zip(&c.per_tx)
        .map(|(t, tally)| {
            (
                t.name.clone(),
                TransactionResults {
                    rps: tally.requests as f64 / duration_s,
                    latency_ms: tally.percentiles(),
                    tally: tally.clone(),
                },
            )
        })
        .collect();
    let tallies = transactions.iter().map(|(k, v)| (k.clone(), v.tally.clone())).collect();
    let thresholds = profile
        .thresholds
        .iter()
        .map(|t| {
            let observed = t.observe(&c.all, &tallies, duration_s);
            ThresholdOutcome {
                expr: t.expr.clone(),
                observed,
                passed: t.verdict(observed),
            }
        })
        .collect();
    Results {
        name: profile.name.clone(),
        model: profile.shape.model(),
        started_at_ms: start_unix_us / 1000,
        duration_s,
        ended_by,
        requests: c.all.requests,
        failed: c.all.failed,
        rps: c.all.requests as f64 / duration_s,
        error_rate: c.all.error_rate(),
        latency_ms: c.all.percentiles(),
        all: c.all.clone(),
        transactions,
        thresholds,
        timeline: c.timeline,
    }
}
