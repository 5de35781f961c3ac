//! `ballast slo rules FILE`: Prometheus recording and alerting rules (Sloth-style) for the SLOs
//! in a TOML file of `[[slo]]` tables (a scenario's or a sidecar config's `[[slo]]` work too).
//!
//! `ballast slo status FILE`: where the SLOs stand, from whichever sources are given:
//! - [`live`] (`--admin URL`, several add up): the sidecars' stats through the shared stats
//!   client; SLI and budget since the sidecars started, burn rate over a short sample, example
//!   bad trace ids from the sidecars' exemplars;
//! - [`prometheus`] (`--prometheus URL`): PromQL over its HTTP API, the same queries the
//!   generated rules record; SLI and budget over the SLO's window, burn rate per alert window;
//! - [`traces`] (`--traces FILE`, OTLP JSON lines): trace SLIs, evaluated by the SLO engine at
//!   the newest span, with the bad spans' trace ids.
//!
//! Every problem in the file is reported with file:line:column, the field and a fix.

mod live;
mod prometheus;
mod traces;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use ballast_model::slo::{Severity, Sli, SloSpec};
use ballast_model::units::HumanDuration;
use ballast_slo_engine::slo::BurnRate;
use clap::{Args, Subcommand};

#[derive(Args)]
pub struct SloArgs {
    #[command(subcommand)]
    command: SloCommand,
}

#[derive(Subcommand)]
enum SloCommand {
    /// Where the SLOs in FILE stand: SLI, budget left, burn rates, alerts and example bad
    /// trace ids, from live sidecars, Prometheus and span files. Exits 1 when an SLO is over
    /// budget.
    Status {
        file: PathBuf,
        #[command(flatten)]
        sources: Sources,
        /// The sidecars' admin token.
        #[arg(long, env = "BALLAST_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Live sidecars: how long to watch for the burn rate.
        #[arg(long, default_value = "5s")]
        sample: humantime::Duration,
        #[arg(long, value_parser = ["table", "json"], default_value = "table")]
        output: String,
    },
    /// Write Prometheus rules for the SLOs in FILE (to stdout, or --output); check them with
    /// `promtool check rules`.
    Rules {
        file: PathBuf,
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

/// Where `slo status` reads from (at least one).
#[derive(Args)]
#[group(required = true, multiple = true)]
struct Sources {
    /// A sidecar's admin API (repeat for several; their counts add up).
    #[arg(long = "admin", conflicts_with = "prometheus")]
    admins: Vec<String>,
    /// A Prometheus server that scrapes the sidecars (its base URL).
    #[arg(long)]
    prometheus: Option<String>,
    /// Spans for trace SLIs: OTLP JSON lines, as the OpenTelemetry collector's file exporter
    /// writes them (repeat for several files).
    #[arg(long)]
    traces: Vec<PathBuf>,
}

/// An SLO has spent more than its budget (`slo status` exits 1).
#[derive(Debug, thiserror::Error)]
#[error("an SLO is over its error budget")]
pub struct OverBudget;

/// The file's SLOs were not usable: every problem, already formatted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub(crate) String);

/// One SLO's standing, as `slo status` reports it, whatever the source.
#[derive(Debug, Default, serde::Serialize)]
struct Standing {
    name: String,
    objective: f64,
    /// Where the figures come from: `sidecar`, `prometheus` or `traces`; `none` when no source
    /// given can answer this SLO (see `note`).
    source: &'static str,
    /// Good and total events: since the sidecars started (live), over the window (Prometheus,
    /// estimated from rates), or in the window of the spans read (traces).
    good: u64,
    total: u64,
    sli: Option<f64>,
    /// Share of the budget of those events left (below 0: overspent).
    budget_remaining: f64,
    /// Burn rate over each alert window (Prometheus, traces).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    burn_rates: Vec<BurnRate>,
    /// Severities whose burn-rate condition holds now.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    alerts_firing: Vec<Severity>,
    /// Live sidecars: the error ratio over the sample divided by the budget ratio.
    #[serde(skip_serializing_if = "Option::is_none")]
    sample: Option<Sample>,
    /// At the pace of the shortest alert window, when the budget runs out (ms from now).
    #[serde(skip_serializing_if = "Option::is_none")]
    exhaustion_in_ms: Option<u64>,
    /// Example bad requests or spans to look up in the trace store, newest last.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    bad_trace_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct Sample {
    ms: u64,
    total: u64,
    burn_rate: f64,
}

impl Standing {
    /// A standing with its SLI and budget from good/total events.
    fn new(spec: &SloSpec, source: &'static str, good: u64, total: u64) -> Standing {
        let allowed = (1.0 - spec.objective) * total as f64;
        Standing {
            name: spec.name.clone(),
            objective: spec.objective,
            source,
            good,
            total,
            sli: (total > 0).then(|| good as f64 / total as f64),
            budget_remaining: if allowed > 0.0 {
                1.0 - (total - good) as f64 / allowed
            } else {
                1.0
            },
            ..Standing::default()
        }
    }

    /// No source given answers this SLO.
    fn unanswered(spec: &SloSpec, note: String) -> Standing {
        Standing {
            name: spec.name.clone(),
            objective: spec.objective,
            source: "none",
            budget_remaining: 1.0,
            note: Some(note),
            ..Standing::default()
        }
    }

    /// The burn rate to show: the shortest alert window's short rate, or the sample's.
    fn headline_burn(&self) -> Option<(f64, String)> {
        if let Some(b) = self.burn_rates.iter().min_by_key(|b| b.short_ms) {
            return Some((b.short, HumanDuration(Duration::from_millis(b.short_ms)).to_string()));
        }
        self.sample.as_ref().map(|s| {
            (
                s.burn_rate,
                format!("{} sample", HumanDuration(Duration::from_millis(s.ms))),
            )
        })
    }
}

fn print_table(standings: &[Standing]) {
    println!(
        "{:<28} {:<10} {:>9} {:>9} {:>12} {:>20}  {:<12} events",
        "SLO", "source", "SLI", "objective", "budget left", "burn rate", "alerts"
    );
    for s in standings {
        let sli = s.sli.map_or("-".to_owned(), |r| format!("{r:.4}"));
        let burn = s
            .headline_burn()
            .map_or("-".to_owned(), |(rate, over)| format!("{rate:.2}x over {over}"));
        let alerts = if s.alerts_firing.is_empty() {
            "-".to_owned()
        } else {
            s.alerts_firing.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(",")
        };
        println!(
            "{:<28} {:<10} {:>9} {:>9} {:>11.1}% {:>20}  {:<12} {}",
            s.name,
            s.source,
            sli,
            s.objective,
            s.budget_remaining * 100.0,
            burn,
            alerts,
            s.total
        );
        if !s.bad_trace_ids.is_empty() {
            println!("    bad traces: {}", s.bad_trace_ids.join(" "));
        }
        if let Some(note) = &s.note {
            println!("    note: {note}");
        }
    }
}

pub fn run(args: SloArgs) -> anyhow::Result<()> {
    match args.command {
        SloCommand::Status {
            file,
            sources,
            token,
            sample,
            output,
        } => {
            let slos = load(&file)?;
            let rt = tokio::runtime::Runtime::new()?;
            let standings = rt.block_on(status(&slos, &sources, token, sample.into()))?;
            if output == "json" {
                println!("{}", serde_json::to_string_pretty(&standings)?);
            } else {
                print_table(&standings);
            }
            if standings.iter().any(|s| s.budget_remaining < 0.0) {
                return Err(OverBudget.into());
            }
            Ok(())
        }
        SloCommand::Rules { file, output } => {
            let slos = load(&file)?;
            let text = ballast_slo_engine::rules::rules(&slos);
            match output {
                Some(out) => std::fs::write(&out, text).with_context(|| format!("cannot write {}", out.display()))?,
                None => print!("{text}"),
            }
            Ok(())
        }
    }
}

/// Each SLO from the source that can answer it: trace SLIs from span files; the others from
/// Prometheus when given, else from the live sidecars.
async fn status(
    slos: &[SloSpec],
    sources: &Sources,
    token: Option<String>,
    sample: Duration,
) -> anyhow::Result<Vec<Standing>> {
    let (trace_slos, request_slos): (Vec<&SloSpec>, Vec<&SloSpec>) =
        slos.iter().partition(|s| matches!(s.sli, Sli::Trace(_)));
    let mut by_name = std::collections::HashMap::new();
    if !trace_slos.is_empty() {
        if sources.traces.is_empty() {
            for s in &trace_slos {
                by_name.insert(
                    s.name.clone(),
                    Standing::unanswered(s, "a trace SLI: give the spans with --traces FILE".into()),
                );
            }
        } else {
            for st in traces::status(&trace_slos, &sources.traces)? {
                by_name.insert(st.name.clone(), st);
            }
        }
    }
    if !request_slos.is_empty() {
        let standings = if let Some(url) = &sources.prometheus {
            prometheus::status(&request_slos, url).await?
        } else if !sources.admins.is_empty() {
            live::status(&request_slos, &sources.admins, token, sample).await?
        } else {
            request_slos
                .iter()
                .map(|s| {
                    Standing::unanswered(
                        s,
                        "a request SLI: give --prometheus URL or a sidecar's --admin URL".into(),
                    )
                })
                .collect()
        };
        for st in standings {
            by_name.insert(st.name.clone(), st);
        }
    }
    // In the file's order.
    Ok(slos.iter().filter_map(|s| by_name.remove(&s.name)).collect())
}

/// The SLOs of a file, each checked; all problems at once.
pub fn load(path: &Path) -> anyhow::Result<Vec<SloSpec>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {name}"))?;
    let slos = ballast_slo_engine::spec_file::parse(&name, &text).map_err(|e| Invalid(e.0))?;
    if slos.is_empty() {
        return Err(Invalid(format!(
            "{name}: no [[slo]] tables\n  fix: add one, e.g. [[slo]] name = \"api\" ..."
        ))
        .into());
    }
    Ok(slos)
}
