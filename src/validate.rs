//! `ballast validate FILE...`: check any of ballast's TOML files — sidecar configs, scenarios,
//! load profiles, chaos experiments, SLO files — telling them apart by their top-level keys, and print every
//! problem with file:line:column and a fix. Exit 78 if any file has one.

use std::path::Path;
use std::process::ExitCode;

/// What a file is, by its top-level keys.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Sidecar,
    Scenario,
    LoadProfile,
    Experiment,
    Slos,
}

fn kind_of(text: &str) -> Kind {
    let Ok(table) = toml::from_str::<toml::Table>(text) else {
        // Not even TOML: the sidecar's loader locates the syntax error.
        return Kind::Sidecar;
    };
    let has = |k: &str| table.contains_key(k);
    if has("target") {
        Kind::Scenario
    } else if has("transactions") || has("base_url") {
        Kind::LoadProfile
    } else if has("steady_state") || has("method") {
        Kind::Experiment
    } else if has("slo") && table.len() == 1 {
        Kind::Slos
    } else {
        Kind::Sidecar
    }
}

/// One file: `Ok(summary)` or every problem, formatted.
fn check(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}\n", path.display()))?;
    match kind_of(&text) {
        Kind::Sidecar => ballast_sidecar::config::load_file(path)
            .map(|c| {
                format!(
                    "sidecar config: {} routes, {} clusters",
                    c.routes.len(),
                    c.clusters.len()
                )
            })
            .map_err(|e| e.to_string()),
        Kind::Scenario => crate::run::scenario::load(path)
            .map(|s| format!("scenario {:?}: {} SLOs", s.title, s.slos.len()))
            .map_err(|e| format!("{e}\n")),
        Kind::LoadProfile => ballast_loadgen::load_file(path)
            .map(|p| format!("load profile: {} transactions", p.transaction_names().len()))
            .map_err(|e| e.to_string()),
        Kind::Experiment => ballast_chaos::load::load_file(path)
            .map(|l| {
                format!(
                    "experiment {:?}: {} steps",
                    l.spec.title.as_deref().unwrap_or(""),
                    l.spec.method.len()
                )
            })
            .map_err(|e| e.to_string()),
        Kind::Slos => crate::slo::load(path)
            .map(|s| format!("{} SLOs", s.len()))
            .map_err(|e| format!("{e}\n")),
    }
}

pub fn run(files: &[std::path::PathBuf]) -> ExitCode {
    let mut ok = true;
    for path in files {
        match check(path) {
            Ok(summary) => println!("{}: ok ({summary})", path.display()),
            Err(problems) => {
                ok = false;
                eprint!("{problems}");
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(ballast_sidecar::EXIT_CONFIG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_told_apart_by_their_keys() {
        assert_eq!(kind_of("[[routes]]\nname = \"a\""), Kind::Sidecar);
        assert_eq!(kind_of("title = \"x\"\n[target]\n"), Kind::Scenario);
        assert_eq!(kind_of("base_url = \"http://x\"\n"), Kind::LoadProfile);
        assert_eq!(kind_of("[[slo]]\nname = \"a\""), Kind::Slos);
        assert_eq!(kind_of("title = \"x\"\n[[method]]\n"), Kind::Experiment);
        assert_eq!(kind_of("[[slo]]\nname = \"a\"\n[[routes]]\n"), Kind::Sidecar);
        assert_eq!(kind_of("not toml ["), Kind::Sidecar);
    }
}
