//! ballast-report: post-mortem drafts from recorded runs. `ballast report runs/<id>` reads a
//! run folder (`docs/run-folder.md`), analyses it with polars, and writes `report.md` and a
//! self-contained `report.html` (inline SVG charts) laid out as a blameless post-mortem:
//! Summary, Impact, Detection, Timeline, Root causes, Trigger, Resolution, Action items,
//! Lessons learned. Figures are computed; what only people can write is left as marked
//! prompts, seeded with what the data suggests.
//!
//! # Layout
//! - [`load`]: the run folder's files, checked (missing, truncated, malformed: an error naming
//!   the file), `requests.csv` read with polars into typed columns.
//! - [`analysis`]: baseline and degraded seconds ([`analysis::degradation`]), incident window,
//!   time to detect and to recover ([`analysis::detection`]), figures per span of time from
//!   the requests ([`analysis::latency`]), impact ([`analysis::impact`]), error budget
//!   ([`analysis::budget`]), fault ↔ impact correlation ([`analysis::faults`]), the timeline
//!   ([`analysis::timeline`]).
//! - [`charts`]: SVG charts with plotters: latency, error rate and budget over time with fault
//!   and alert spans drawn on them, the latency histogram before vs during.
//! - [`markdown`], [`html`]: the two renderings of one [`analysis::Analysis`].
//! - [`synthetic`]: run folders made from a description, for tests and benchmarks.
//! - [`time`]: offsets, durations and UTC times for people.
//!
//! # Definitions
//! Times are seconds since the run's start; a request belongs to the second its answer
//! completed in (as in `timeseries.csv`). The client's view (the load generator's) is what
//! users saw, and the one judged.
//!
//! - **Baseline**, per route: the seconds before the first injected fault (the whole run when
//!   there is none, or when it came in the first 3 seconds). Its error rate and p99 are the
//!   medians of the per-second values over the seconds with at least `min_requests` (5)
//!   requests.
//! - **Degraded second**, per route: at least 5 requests, and an error rate above
//!   `max(2 × baseline, baseline + 0.01)` or a p99 above `max(2 × baseline, baseline + 50
//!   ms)`.
//! - **Incident**: starts at the first of 2 degraded seconds in a row (any route), or at the
//!   first alert firing if that came first. A degradation that is over (10 healthy seconds)
//!   before the next fault is put in place is a blip, not the start. One incident per
//!   report: later trouble is noted.
//! - **Recovery** ("sustained"): the start of the first 10 seconds in a row, counted from the
//!   end of the last injected fault (or from the incident's start without one), in which no
//!   route is degraded *and* every SLO's SLI over those 10 seconds meets its objective. The
//!   incident ends there; without it, at the end of the run ("not recovered").
//! - **Time to detect**: from the fault in place when the degradation began (the last one
//!   added at or before it), or from the degradation's start without one, to the first alert
//!   firing at or after that point.
//! - **Time to recover**: from the last fault's end (TTL, removal or rollback) to recovery.
//! - **Phases**: before `[0, incident start)`, during `[start, recovery)`, after
//!   `[recovery, end)`.
//! - **Percentiles**: exact, nearest rank, from `requests.csv`.
//! - **Error budget** spent by the incident: bad events (or slices) `total - good` from
//!   `slo.csv` between the second before the incident and its last second; as a share of
//!   the window's budget `(1 - objective) × total` at the incident's end.
//! - **A fault moved a figure** on a route when, over the fault's time in place against the
//!   baseline seconds, its error rate or p50/p99 crossed the degradation limits above, or
//!   its throughput fell by 20% or more.
//!
//! # Memory
//! polars' eager CSV reader with only the columns used, typed up front (integers and
//! categoricals, about 24 bytes a request), so 10 million requests take about 240 MB; each
//! span's figures are computed from a filtered copy and dropped. The lazy engine was not
//! needed for that and would double polars' build.

pub mod analysis;
pub mod charts;
pub mod document;
pub mod error;
pub mod html;
pub mod load;
pub mod markdown;
pub mod synthetic;
pub mod time;

use std::path::{Path, PathBuf};

pub use analysis::{Analysis, Rules, analyze};
pub use error::ReportError;

/// A report format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Markdown,
    Html,
}

impl Format {
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Markdown => "report.md",
            Format::Html => "report.html",
        }
    }
}

/// What [`write`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    pub files: Vec<PathBuf>,
    /// Whether the run had an incident.
    pub incident: bool,
    /// One line for a terminal: the summary's first sentence.
    pub headline: String,
}

/// Analyse the run folder `run_dir` and write the report in each format into `out_dir`
/// (the run folder itself when `None`). `ballast run` calls this at the end of a run.
pub fn write(run_dir: &Path, formats: &[Format], out_dir: Option<&Path>) -> Result<Written, ReportError> {
    let run = load::Run::open(run_dir)?;
    let analysis = analyze(&run, &Rules::default())?;
    drop(run);
    let out = out_dir.unwrap_or(run_dir);
    std::fs::create_dir_all(out).map_err(ReportError::io(out))?;
    let mut files = Vec::new();
    for format in formats {
        let text = match format {
            Format::Markdown => markdown::render(&analysis),
            Format::Html => html::render(&analysis)?,
        };
        let path = out.join(format.file_name());
        std::fs::write(&path, text).map_err(ReportError::io(&path))?;
        files.push(path);
    }
    Ok(Written {
        files,
        incident: analysis.incident.is_some(),
        headline: markdown::headline(&analysis),
    })
}
