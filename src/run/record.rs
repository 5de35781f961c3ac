//! The run folder as the runner writes it (columns and shapes in docs/run-folder.md): events
//! and stats lines as they come, the sidecar's and the SLOs' per-second rows, and at the end
//! the load generator's files, `slo.json` and `summary.json`.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::Context;
use ballast_model::load::Failure;
use ballast_model::stats::Traffic;
use ballast_model::{Event, StatsWindow};
use ballast_tui::recording::{Recorder, StatsRecord};
use serde::Serialize;

use super::slos::{self, Row};

pub struct RunFolder {
    pub dir: PathBuf,
    /// `events.jsonl` and `stats.jsonl`, in the format the dashboard replays.
    recorder: Recorder,
    slo_csv: csv::Writer<BufWriter<File>>,
    /// `timeseries.csv` rows of the sidecar, written after the client's at the end.
    sidecar_rows: Vec<Vec<String>>,
}

fn create(path: &Path) -> anyhow::Result<BufWriter<File>> {
    Ok(BufWriter::new(
        File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
    ))
}

/// `<runs>/<slug of the title>-<UTC time>`.
pub fn folder_name(title: &str, at_ms: u64) -> String {
    let slug: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let slug = slug.split('-').filter(|s| !s.is_empty()).collect::<Vec<_>>().join("-");
    let secs = at_ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = ballast_model::units::civil_from_days(days as i64);
    format!(
        "{}-{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        &slug[..slug.len().min(48)],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl RunFolder {
    pub fn create(dir: PathBuf, scenario_text: &str) -> anyhow::Result<RunFolder> {
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(dir.join("scenario.toml"), scenario_text).context("cannot copy the scenario")?;
        let mut slo_csv = csv::Writer::from_writer(create(&dir.join("slo.csv"))?);
        slo_csv.write_record([
            "second",
            "at_ms",
            "slo",
            "good",
            "total",
            "sli",
            "budget_remaining",
            "burn_short",
            "burn_long",
            "page",
            "ticket",
        ])?;
        Ok(RunFolder {
            recorder: Recorder::open(&dir).with_context(|| format!("cannot write in {}", dir.display()))?,
            slo_csv,
            sidecar_rows: Vec::new(),
            dir,
        })
    }

    pub fn event(&mut self, e: &Event) -> anyhow::Result<()> {
        Ok(self.recorder.event(e)?)
    }

    /// A `stats.jsonl` line: the scrape's snapshot, or why there was none.
    pub fn scrape(&mut self, record: &StatsRecord) -> anyhow::Result<()> {
        Ok(self.recorder.stats(record)?)
    }

    /// The sidecar's rows for one second: every route but the unmatched together (`*`),
    /// then each route.
    pub fn sidecar_second(&mut self, second: u64, at_ms: u64, window: &StatsWindow) {
        let mut all = Traffic::default();
        for (name, t) in &window.routes {
            if name != "(unmatched)" {
                all.add(t);
            }
        }
        self.sidecar_rows.push(sidecar_row(second, at_ms, "*", &all));
        for (name, t) in &window.routes {
            self.sidecar_rows.push(sidecar_row(second, at_ms, name, t));
        }
    }

    pub fn slo_rows(&mut self, second: u64, at_ms: u64, rows: &[Row]) -> anyhow::Result<()> {
        use ballast_model::slo::Severity;
        for r in rows {
            let s = &r.status;
            let (short, long) = slos::headline_burn(s);
            self.slo_csv.write_record([
                second.to_string(),
                at_ms.to_string(),
                r.slo.clone(),
                s.good.to_string(),
                s.total.to_string(),
                s.sli.map_or(String::new(), |v| format!("{v:.6}")),
                format!("{:.6}", s.budget_remaining),
                format!("{short:.4}"),
                format!("{long:.4}"),
                slos::state_name(s.alerts.get(&Severity::Page)).to_owned(),
                slos::state_name(s.alerts.get(&Severity::Ticket)).to_owned(),
            ])?;
        }
        Ok(())
    }

    /// `timeseries.csv`: the client's rows (if there was load), then the sidecar's.
    pub fn timeseries(&mut self, load: Option<&ballast_model::load::Results>) -> anyhow::Result<()> {
        let path = self.dir.join(ballast_loadgen::files::TIMESERIES_CSV);
        match load {
            Some(results) => ballast_loadgen::files::write_timeseries(results, &path)?,
            None => {
                let mut w = csv::Writer::from_path(&path)?;
                w.write_record(ballast_loadgen::files::timeseries_header())?;
                w.flush()?;
            }
        }
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        let mut w = csv::Writer::from_writer(BufWriter::new(file));
        for row in &self.sidecar_rows {
            w.write_record(row)?;
        }
        w.flush()?;
        Ok(())
    }

    pub fn json(&self, name: &str, value: &impl Serialize) -> anyhow::Result<()> {
        let path = self.dir.join(name);
        std::fs::write(&path, serde_json::to_vec_pretty(value)?)
            .with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.recorder.flush()?;
        self.slo_csv.flush()?;
        Ok(())
    }
}

/// A `timeseries.csv` row of the sidecar's view: `ok` is an answer below 500 without a
/// `ballast-error`; `failed` the rest.
fn sidecar_row(second: u64, at_ms: u64, route: &str, t: &Traffic) -> Vec<String> {
    let c = &t.counters;
    let errors: u64 = c.by_error.values().sum();
    let five_with_error: u64 = c
        .by_error
        .iter()
        .filter(|(class, _)| class.status() >= 500)
        .map(|(_, n)| n)
        .sum();
    let failed = (errors + c.status_class(5).saturating_sub(five_with_error)).min(c.requests);
    let h = &t.latency.0;
    let ms = |q: f64| {
        if h.is_empty() {
            0.0
        } else {
            h.value_at_quantile(q) as f64 / 1000.0
        }
    };
    let mut row = vec![
        second.to_string(),
        at_ms.to_string(),
        "sidecar".to_owned(),
        route.to_owned(),
        String::new(),
        c.in_flight.to_string(),
        c.requests.to_string(),
        (c.requests - failed).to_string(),
        failed.to_string(),
        format!("{:.3}", ms(0.5)),
        format!("{:.3}", ms(0.9)),
        format!("{:.3}", ms(0.99)),
        format!("{:.3}", if h.is_empty() { 0.0 } else { h.max() as f64 / 1000.0 }),
    ];
    row.extend((1..=5).map(|class| c.status_class(class).to_string()));
    row.extend(Failure::all().map(|f| match f {
        Failure::Class(class) => c.by_error.get(&class).copied().unwrap_or(0).to_string(),
        Failure::UnexpectedStatus => "0".to_owned(),
    }));
    row
}
