//! `ballast slo rules FILE`: Prometheus recording and alerting rules (Sloth-style) for the SLOs
//! in a TOML file of `[[slo]]` tables (a scenario's or a sidecar config's `[[slo]]` work too).
//! `ballast slo status FILE --admin URL...`: where they stand on live sidecars, through the
//! shared stats client: SLI and budget since the sidecars started, burn rate over a sample.
//! Every problem in the file is reported with file:line:column, the field and a fix.

use std::path::{Path, PathBuf};

use anyhow::Context;
use ballast_model::slo::SloSpec;
use clap::{Args, Subcommand};
use serde::Deserialize;

#[derive(Args)]
pub struct SloArgs {
    #[command(subcommand)]
    command: SloCommand,
}

#[derive(Subcommand)]
enum SloCommand {
    /// Where the SLOs in FILE stand on live sidecars: the SLI and budget since each sidecar
    /// started, and the burn rate over a short sample. Exits 1 when an SLO is over budget.
    Status {
        file: PathBuf,
        /// A sidecar's admin API (repeat for several; their counts add up).
        #[arg(long = "admin", required = true)]
        admins: Vec<String>,
        #[arg(long, env = "BALLAST_ADMIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// How long to watch for the burn rate.
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

/// Only the `[[slo]]` tables of the file matter; other sections are left to their owners.
#[derive(Deserialize)]
struct SlosFile {
    #[serde(default)]
    slo: Vec<toml::Spanned<SloSpec>>,
}

/// An SLO has spent more than its budget (`slo status` exits 1).
#[derive(Debug, thiserror::Error)]
#[error("an SLO is over its error budget")]
pub struct OverBudget;

/// The file's SLOs were not usable: every problem, already formatted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

/// One SLO's standing, as `slo status` reports it.
#[derive(serde::Serialize)]
struct Standing {
    name: String,
    objective: f64,
    /// Since the sidecars started.
    good: u64,
    total: u64,
    sli: Option<f64>,
    /// Share of the budget of those events left (below 0: overspent).
    budget_remaining: f64,
    /// Error ratio over the sample window divided by the error budget ratio.
    burn_rate: f64,
    sample_total: u64,
}

async fn status(
    slos: &[SloSpec],
    admins: &[String],
    token: Option<String>,
    sample: std::time::Duration,
) -> anyhow::Result<Vec<Standing>> {
    use ballast_slo_engine::Counts;
    use ballast_slo_engine::source::sidecar_counts;
    let mut clients: Vec<_> = admins
        .iter()
        .map(|a| ballast_model::client::StatsClient::new(a, token.clone()))
        .collect();
    let mut since_start = Vec::new();
    for c in &mut clients {
        since_start.push(c.next_window().await?);
    }
    tokio::time::sleep(sample).await;
    let mut recent = Vec::new();
    for c in &mut clients {
        recent.push(c.next_window().await?);
    }
    let sum = |spec: &SloSpec, windows: &[ballast_model::StatsWindow]| {
        windows
            .iter()
            .filter_map(|w| sidecar_counts(spec, w))
            .fold(Counts::default(), |a, b| Counts {
                good: a.good + b.good,
                total: a.total + b.total,
            })
    };
    Ok(slos
        .iter()
        .filter(|s| !matches!(s.sli, ballast_model::slo::Sli::Trace(_)))
        .map(|spec| {
            let (all, last) = (sum(spec, &since_start), sum(spec, &recent));
            let allowed = 1.0 - spec.objective;
            let budget = allowed * all.total as f64;
            Standing {
                name: spec.name.clone(),
                objective: spec.objective,
                good: all.good,
                total: all.total,
                sli: all.ratio(),
                budget_remaining: if budget > 0.0 {
                    1.0 - all.bad() as f64 / budget
                } else {
                    1.0
                },
                burn_rate: last.ratio().map_or(0.0, |r| (1.0 - r) / allowed),
                sample_total: last.total,
            }
        })
        .collect())
}

pub fn run(args: SloArgs) -> anyhow::Result<()> {
    match args.command {
        SloCommand::Status {
            file,
            admins,
            token,
            sample,
            output,
        } => {
            let slos = load(&file)?;
            let rt = tokio::runtime::Runtime::new()?;
            let standings = rt.block_on(status(&slos, &admins, token, sample.into()))?;
            if output == "json" {
                println!("{}", serde_json::to_string_pretty(&standings)?);
            } else {
                println!(
                    "{:<28} {:>9} {:>9} {:>12} {:>10}  events",
                    "SLO", "SLI", "objective", "budget left", "burn rate"
                );
                for s in &standings {
                    let sli = s.sli.map_or("-".to_owned(), |r| format!("{:.4}", r));
                    println!(
                        "{:<28} {:>9} {:>9} {:>11.1}% {:>9.2}x  {} (sample {})",
                        s.name,
                        sli,
                        s.objective,
                        s.budget_remaining * 100.0,
                        s.burn_rate,
                        s.total,
                        s.sample_total
                    );
                }
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

/// The SLOs of a file, each checked; all problems at once.
pub fn load(path: &Path) -> anyhow::Result<Vec<SloSpec>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {name}"))?;
    let file: SlosFile = toml::from_str(&text).map_err(|e| Invalid(format!("{name}: {e}")))?;
    if file.slo.is_empty() {
        return Err(Invalid(format!(
            "{name}: no [[slo]] tables\n  fix: add one, e.g. [[slo]] name = \"api\" ..."
        ))
        .into());
    }
    let mut problems = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, slo) in file.slo.iter().enumerate() {
        let (line, col) = line_col(&text, slo.span().start);
        let mut errors = slo.get_ref().validate().err().unwrap_or_default();
        if !names.insert(slo.get_ref().name.clone()) {
            errors.push(ballast_model::fault::FieldError {
                field: "name".into(),
                message: format!("duplicate SLO name {:?}", slo.get_ref().name),
                fix: "give each SLO a unique name".into(),
            });
        }
        for e in errors {
            problems.push(format!(
                "{name}:{line}:{col}: slo[{i}].{}: {}\n  fix: {}",
                e.field, e.message, e.fix
            ));
        }
    }
    if !problems.is_empty() {
        return Err(Invalid(problems.join("\n")).into());
    }
    Ok(file.slo.into_iter().map(toml::Spanned::into_inner).collect())
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
