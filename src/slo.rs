//! `ballast slo rules FILE`: Prometheus recording and alerting rules (Sloth-style) for the SLOs
//! in a TOML file of `[[slo]]` tables (a scenario's or a sidecar config's `[[slo]]` work too).
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

/// The file's SLOs were not usable: every problem, already formatted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(String);

pub fn run(args: SloArgs) -> anyhow::Result<()> {
    match args.command {
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
